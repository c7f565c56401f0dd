//! The counter vocabulary: every counter the stats pages show, its servstats name, its
//! label on the original's HTML page, and how it is printed. Names and labels are the
//! original's byte for byte (include-docs/COMPATIBILITY.md §8.2); the Rust names say what
//! each counts.

/// How a value is printed on the pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Int,
    /// Two decimals (`kvg`).
    Fixed2,
    /// `<n> bytes` on the HTML page.
    Bytes,
    /// `<n> ms` on the HTML page.
    Millis,
    /// seconds in text, `<d>d <HH>:<MM>` in HTML.
    Uptime,
}

pub struct CounterInfo {
    pub counter: Counter,
    pub name: &'static str,
    pub label: &'static str,
    pub format: Format,
}

/// One list gives the enum (in display order) and the table, so the two cannot drift.
macro_rules! counters {
    ($($(#[$doc:meta])* $c:ident = ($n:expr, $f:ident, $l:expr),)*) => {
        /// Every counter shown on the stats pages, in display order: first the original's
        /// 51 (the layout scripts parse), then ours. `Uptime` and the averages are computed
        /// in `Stats`; `LogLevel`, the certificate and session cache figures and the
        /// certificate-file figures come from a `Gauges` snapshot.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum Counter {
            $($(#[$doc])* $c,)*
        }

        /// Display table: order, servstats names and the original's HTML labels.
        pub const TABLE: &[CounterInfo] = &[
            $(CounterInfo { counter: Counter::$c, name: $n, label: $l, format: Format::$f },)*
        ];
    };
}

counters! {
    Uptime = ("uts", Uptime, "process uptime"),
    LogLevel = ("log", Int, "critical (0) error (1) warning (2) notice (3) info (4) debug (5)"),
    ConnsOpen = ("kcc", Int, "number of active service threads"),
    ConnsOpenMax = ("kmx", Int, "maximum number of service threads"),
    RequestsPerConnAvg = ("kvg", Fixed2, "average number of requests per service thread"),
    RequestsPerConnMax = ("krq", Int, "max number of requests by one service thread"),
    Requests = ("req", Int, "total # of requests (HTTP, HTTPS, success, failure etc)"),
    RequestSizeAvg = ("avg", Bytes, "average size of requests"),
    RequestSizeMax = ("rmx", Bytes, "largest size of request(s)"),
    RequestTimeAvg = ("tav", Millis, "average processing time (per request)"),
    RequestTimeMax = ("tmx", Millis, "longest processing time (per request)"),
    HttpsAnswered = ("slh", Int, "# of accepted HTTPS requests"),
    HttpsNoCertificate = ("slm", Int, "# of rejected HTTPS requests (missing certificate)"),
    HttpsCertificateUnusable = ("sle", Int, "# of rejected HTTPS requests (certificate available but not usable)"),
    HttpsSilent = ("slc", Int, "# of dropped HTTPS requests (client disconnect without sending any request)"),
    HttpsHandshakeFailed = ("slu", Int, "# of dropped HTTPS requests (other TLS handshake errors)"),
    Tls13 = ("v13", Int, "slh/slc break-down: TLS 1.3"),
    Tls12 = ("v12", Int, "slh/slc break-down: TLS 1.2"),
    Tls10 = ("v10", Int, "slh/slc break-down: TLS 1.0"),
    EarlyData = ("zrt", Int, "slh break-down: TLS 1.3 Early Data aka 0-RTT"),
    AlertUnknownCa = ("uca", Int, "slu break-down: # of unknown CA reported by clients"),
    AlertBadCertificate = ("ucb", Int, "slu break-down: # of bad certificate reported by clients"),
    AlertCertificateUnknown = ("uce", Int, "slu break-down: # of unknown cert reported by clients"),
    HungUpAfterHello = ("ush", Int, "slu break-down: # of shutdown by clients after ServerHello"),
    CertCacheEntries = ("sct", Int, "cert cache: # of certs in cache"),
    CertCacheHits = ("sch", Int, "cert cache: # of reuses of cached certs"),
    CertCacheMisses = ("scm", Int, "cert cache: # of misses to find a cert in cache"),
    CertCachePurges = ("scp", Int, "cert cache: # of purges to give room for a new cert"),
    SessionCacheHits = ("ssh", Int, "sess cache: # of reuses of cached TLS sessions"),
    SessionCacheMisses = ("ssm", Int, "sess cache: # of misses to find a TLS session in cache"),
    SessionCachePurges = ("ssp", Int, "sess cache: # of purges to give room for a new TLS session"),
    NoExtension = ("nfe", Int, "# of GET requests for server-side scripting"),
    Gif = ("gif", Int, "# of GET requests for GIF"),
    Ico = ("ico", Int, "# of GET requests for ICO"),
    Script = ("txt", Int, "# of GET requests for Javascripts"),
    Jpg = ("jpg", Int, "# of GET requests for JPG"),
    Png = ("png", Int, "# of GET requests for PNG"),
    Swf = ("swf", Int, "# of GET requests for SWF"),
    OtherExtension = ("ufe", Int, "# of GET requests /w unknown file extension"),
    Options = ("opt", Int, "# of OPTIONS requests"),
    Post = ("pst", Int, "# of POST requests"),
    Head = ("hed", Int, "# of HEAD requests (HTTP 501 response)"),
    Redirect = ("rdr", Int, "# of GET requests resulted in REDIRECT response"),
    EmptyUrl = ("nou", Int, "# of GET requests /w empty URL"),
    MalformedPath = ("pth", Int, "# of GET requests /w malformed URL"),
    NoContent = ("204", Int, "# of GET requests (HTTP 204 response)"),
    BadRequest = ("bad", Int, "# of unknown HTTP requests (HTTP 501 response)"),
    ClosedSilent = ("cls", Int, "# of dropped requests (client disconnect without sending any  request)"),
    ClientGone = ("cly", Int, "# of dropped requests (client disconnect before response sent)"),
    /// Connections closed to admit a new one at the `-T` limit (idle or silent ones,
    /// `CloseReason::Evicted`); the original counted requests dropped for want of a thread.
    Evicted = ("clt", Int, "# of dropped requests (reached maximum service threads)"),
    Failed = ("err", Int, "# of dropped requests (unknown reason)"),
    // Ours, after the original 51.
    Tls11 = ("v11", Int, "slh/slc break-down: TLS 1.1"),
    StatsHtml = ("sta", Int, "# of HTML statistics pages served"),
    StatsText = ("stt", Int, "# of text/JSON/metrics statistics pages served"),
    Timeouts = ("tmo", Int, "# of connections closed by a read, write or handshake deadline"),
    InvalidSni = ("snx", Int, "# of TLS names refused a certificate (invalid SNI)"),
    CertsGenerated = ("cgn", Int, "cert workers: # of certificates generated"),
    CertJobsFailed = ("cgf", Int, "cert workers: # of certificate jobs that failed"),
    CertQueueFull = ("cqf", Int, "cert workers: # of jobs refused because the queue was full"),
    CertFiles = ("dsk", Int, "cert files: # of certificate files in CERT_PATH"),
    CertFilesMax = ("dsx", Int, "cert files: most certificate files kept (--cert-files)"),
    CertFilesRemoved = ("dse", Int, "cert files: # of files removed to stay within --cert-files"),
}

/// Number of counters the original printed; scripts parse exactly these first.
pub const ORIGINAL_COUNT: usize = 51;
pub const COUNT: usize = TABLE.len();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_counters_come_first_in_its_order() {
        assert_eq!(COUNT, 62);
        for (i, info) in TABLE.iter().enumerate() {
            assert_eq!(info.counter as usize, i, "{}", info.name);
        }
        let names: Vec<&str> = TABLE[..ORIGINAL_COUNT].iter().map(|i| i.name).collect();
        assert_eq!(
            names.join(" "),
            "uts log kcc kmx kvg krq req avg rmx tav tmx slh slm sle slc slu v13 v12 v10 zrt \
             uca ucb uce ush sct sch scm scp ssh ssm ssp nfe gif ico txt jpg png swf ufe opt \
             pst hed rdr nou pth 204 bad cls cly clt err"
        );
    }
}
