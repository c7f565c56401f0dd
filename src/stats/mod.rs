//! Server statistics: the counters of the original's servstats (same names, same meanings,
//! with its counting defects fixed), the running averages, and the one place that says
//! which counters an outcome moves (a TLS version, a failed handshake, a closed connection).
//!
//! `Detail` holds what only `/metrics` shows (counts by close reason, handshake failure and
//! TLS version, sums for averages) and `names` the most requested names (`top_names`); both
//! are kept apart from the counters so that the servstats pages stay as they are.
//!
//! The event loop owns the one `Stats`; certificate workers report through the loop, so
//! nothing here needs atomics. Gauges that live elsewhere (the certificate and session
//! caches, the log level) arrive as a `Gauges` snapshot when a page is rendered.

use std::time::Instant;

use crate::top_names::{Observed, Source, TopNames};

/// Every counter shown on the stats pages, in display order: first the original's 51 (the
/// layout scripts parse), then ours. `uts` and the averages are computed here; `log`, `sct`,
/// `sch`, `scm`, `scp`, `ssh`, `ssm` and `ssp` come from a `Gauges` snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Counter {
    Uts,
    Log,
    Kcc,
    Kmx,
    Kvg,
    Krq,
    Req,
    Avg,
    Rmx,
    Tav,
    Tmx,
    Slh,
    Slm,
    Sle,
    Slc,
    Slu,
    V13,
    V12,
    V10,
    Zrt,
    Uca,
    Ucb,
    Uce,
    Ush,
    Sct,
    Sch,
    Scm,
    Scp,
    Ssh,
    Ssm,
    Ssp,
    Nfe,
    Gif,
    Ico,
    Txt,
    Jpg,
    Png,
    Swf,
    Ufe,
    Opt,
    Pst,
    Hed,
    Rdr,
    Nou,
    Pth,
    N204,
    Bad,
    Cls,
    Cly,
    /// Connections closed to admit a new one at the `-T` limit (idle or silent ones,
    /// `CloseReason::Evicted`); the original counted requests dropped for want of a thread.
    Clt,
    Err,
    // Ours, after the original 51.
    V11,
    Sta,
    Stt,
    Tmo,
    Snx,
    Cgn,
    Cgf,
    Cqf,
    Dsk,
    Dsx,
    Dse,
}

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

macro_rules! info {
    ($c:ident, $n:expr, $f:ident, $l:expr) => {
        CounterInfo {
            counter: Counter::$c,
            name: $n,
            label: $l,
            format: Format::$f,
        }
    };
}

/// Display table: order, names and the original's HTML labels (byte-exact).
pub const TABLE: &[CounterInfo] = &[
    info!(Uts, "uts", Uptime, "process uptime"),
    info!(
        Log,
        "log", Int, "critical (0) error (1) warning (2) notice (3) info (4) debug (5)"
    ),
    info!(Kcc, "kcc", Int, "number of active service threads"),
    info!(Kmx, "kmx", Int, "maximum number of service threads"),
    info!(
        Kvg,
        "kvg", Fixed2, "average number of requests per service thread"
    ),
    info!(
        Krq,
        "krq", Int, "max number of requests by one service thread"
    ),
    info!(
        Req,
        "req", Int, "total # of requests (HTTP, HTTPS, success, failure etc)"
    ),
    info!(Avg, "avg", Bytes, "average size of requests"),
    info!(Rmx, "rmx", Bytes, "largest size of request(s)"),
    info!(Tav, "tav", Millis, "average processing time (per request)"),
    info!(Tmx, "tmx", Millis, "longest processing time (per request)"),
    info!(Slh, "slh", Int, "# of accepted HTTPS requests"),
    info!(
        Slm,
        "slm", Int, "# of rejected HTTPS requests (missing certificate)"
    ),
    info!(
        Sle,
        "sle", Int, "# of rejected HTTPS requests (certificate available but not usable)"
    ),
    info!(
        Slc,
        "slc", Int, "# of dropped HTTPS requests (client disconnect without sending any request)"
    ),
    info!(
        Slu,
        "slu", Int, "# of dropped HTTPS requests (other TLS handshake errors)"
    ),
    info!(V13, "v13", Int, "slh/slc break-down: TLS 1.3"),
    info!(V12, "v12", Int, "slh/slc break-down: TLS 1.2"),
    info!(V10, "v10", Int, "slh/slc break-down: TLS 1.0"),
    info!(
        Zrt,
        "zrt", Int, "slh break-down: TLS 1.3 Early Data aka 0-RTT"
    ),
    info!(
        Uca,
        "uca", Int, "slu break-down: # of unknown CA reported by clients"
    ),
    info!(
        Ucb,
        "ucb", Int, "slu break-down: # of bad certificate reported by clients"
    ),
    info!(
        Uce,
        "uce", Int, "slu break-down: # of unknown cert reported by clients"
    ),
    info!(
        Ush,
        "ush", Int, "slu break-down: # of shutdown by clients after ServerHello"
    ),
    info!(Sct, "sct", Int, "cert cache: # of certs in cache"),
    info!(Sch, "sch", Int, "cert cache: # of reuses of cached certs"),
    info!(
        Scm,
        "scm", Int, "cert cache: # of misses to find a cert in cache"
    ),
    info!(
        Scp,
        "scp", Int, "cert cache: # of purges to give room for a new cert"
    ),
    info!(
        Ssh,
        "ssh", Int, "sess cache: # of reuses of cached TLS sessions"
    ),
    info!(
        Ssm,
        "ssm", Int, "sess cache: # of misses to find a TLS session in cache"
    ),
    info!(
        Ssp,
        "ssp", Int, "sess cache: # of purges to give room for a new TLS session"
    ),
    info!(
        Nfe,
        "nfe", Int, "# of GET requests for server-side scripting"
    ),
    info!(Gif, "gif", Int, "# of GET requests for GIF"),
    info!(Ico, "ico", Int, "# of GET requests for ICO"),
    info!(Txt, "txt", Int, "# of GET requests for Javascripts"),
    info!(Jpg, "jpg", Int, "# of GET requests for JPG"),
    info!(Png, "png", Int, "# of GET requests for PNG"),
    info!(Swf, "swf", Int, "# of GET requests for SWF"),
    info!(
        Ufe,
        "ufe", Int, "# of GET requests /w unknown file extension"
    ),
    info!(Opt, "opt", Int, "# of OPTIONS requests"),
    info!(Pst, "pst", Int, "# of POST requests"),
    info!(Hed, "hed", Int, "# of HEAD requests (HTTP 501 response)"),
    info!(
        Rdr,
        "rdr", Int, "# of GET requests resulted in REDIRECT response"
    ),
    info!(Nou, "nou", Int, "# of GET requests /w empty URL"),
    info!(Pth, "pth", Int, "# of GET requests /w malformed URL"),
    info!(N204, "204", Int, "# of GET requests (HTTP 204 response)"),
    info!(
        Bad,
        "bad", Int, "# of unknown HTTP requests (HTTP 501 response)"
    ),
    info!(
        Cls,
        "cls", Int, "# of dropped requests (client disconnect without sending any  request)"
    ),
    info!(
        Cly,
        "cly", Int, "# of dropped requests (client disconnect before response sent)"
    ),
    info!(
        Clt,
        "clt", Int, "# of dropped requests (reached maximum service threads)"
    ),
    info!(Err, "err", Int, "# of dropped requests (unknown reason)"),
    info!(V11, "v11", Int, "slh/slc break-down: TLS 1.1"),
    info!(Sta, "sta", Int, "# of HTML statistics pages served"),
    info!(
        Stt,
        "stt", Int, "# of text/JSON/metrics statistics pages served"
    ),
    info!(
        Tmo,
        "tmo", Int, "# of connections closed by a read, write or handshake deadline"
    ),
    info!(
        Snx,
        "snx", Int, "# of TLS names refused a certificate (invalid SNI)"
    ),
    info!(Cgn, "cgn", Int, "cert workers: # of certificates generated"),
    info!(
        Cgf,
        "cgf", Int, "cert workers: # of certificate jobs that failed"
    ),
    info!(
        Cqf,
        "cqf", Int, "cert workers: # of jobs refused because the queue was full"
    ),
    info!(
        Dsk,
        "dsk", Int, "cert files: # of certificate files in CERT_PATH"
    ),
    info!(
        Dsx,
        "dsx", Int, "cert files: most certificate files kept (--cert-files)"
    ),
    info!(
        Dse,
        "dse", Int, "cert files: # of files removed to stay within --cert-files"
    ),
];

/// Number of counters the original printed; scripts parse exactly these first.
pub const ORIGINAL_COUNT: usize = 51;
pub const COUNT: usize = 62;

/// The TLS version a connection negotiated: counted in `v10`..`v13` and shown in the access
/// log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    V10,
    V11,
    V12,
    V13,
}

impl TlsVersion {
    pub const ALL: [TlsVersion; 4] = [
        TlsVersion::V10,
        TlsVersion::V11,
        TlsVersion::V12,
        TlsVersion::V13,
    ];

    pub fn counter(self) -> Counter {
        match self {
            TlsVersion::V10 => Counter::V10,
            TlsVersion::V11 => Counter::V11,
            TlsVersion::V12 => Counter::V12,
            TlsVersion::V13 => Counter::V13,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TlsVersion::V10 => "1.0",
            TlsVersion::V11 => "1.1",
            TlsVersion::V12 => "1.2",
            TlsVersion::V13 => "1.3",
        }
    }
}

/// Why a TLS handshake did not complete (reference §6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// No certificate could be had for the name (`slm`).
    NoCertificate,
    /// The SNI is not a name we make certificates for (`slu`, `snx`).
    InvalidSni,
    /// The client's alert: it does not trust our CA (`slu`, `uca`).
    UnknownCa,
    /// The client's alert: bad certificate (`slu`, `ucb`).
    BadCertificate,
    /// The client's alert: certificate unknown (`slu`, `uce`).
    CertificateUnknown,
    /// The client hung up after our ServerHello instead of sending an alert (`slu`, `ush`).
    ClientHungUp,
    /// The handshake deadline passed (`slu`, `tmo`).
    Timeout,
    /// Anything else: bad records, no shared cipher, no local address (`slu`).
    Other,
}

impl HandshakeFailure {
    pub const ALL: [HandshakeFailure; 8] = [
        HandshakeFailure::NoCertificate,
        HandshakeFailure::InvalidSni,
        HandshakeFailure::UnknownCa,
        HandshakeFailure::BadCertificate,
        HandshakeFailure::CertificateUnknown,
        HandshakeFailure::ClientHungUp,
        HandshakeFailure::Timeout,
        HandshakeFailure::Other,
    ];

    /// The `reason` label of `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::InvalidSni => "invalid_sni",
            HandshakeFailure::UnknownCa => "unknown_ca",
            HandshakeFailure::BadCertificate => "bad_certificate",
            HandshakeFailure::CertificateUnknown => "certificate_unknown",
            HandshakeFailure::ClientHungUp => "client_hung_up",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Other => "other",
        }
    }
}

/// Why a connection closed. `Stats::closed` maps each to the counters it moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Everything asked for was answered (or the server is shutting down): nothing counted.
    Done,
    /// The client closed or reset the connection while we were reading; `partial`: in the
    /// middle of a request (`cls` then, or when it never completed a request).
    PeerClosed {
        partial: bool,
    },
    /// The client went away while a response was being sent (`cly`).
    PeerGone,
    /// A socket or TLS error that is not the client leaving (`err`).
    Failed,
    /// A request head, body or response made no progress in time (`tmo`, and `cls` when no
    /// request was answered).
    Stalled,
    /// Keep-alive idle time ran out (`cls` when the connection never carried a request).
    Idle,
    Handshake(HandshakeFailure),
    /// Closed while idle or silent to admit a new connection at the `-T` limit (`clt`).
    Evicted,
}

/// `CloseReason` without its details: the `reason` label of closed connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    Done,
    ClientClosed,
    ClientGone,
    Error,
    Stalled,
    Idle,
    HandshakeFailed,
    Evicted,
}

impl CloseKind {
    pub const ALL: [CloseKind; 8] = [
        CloseKind::Done,
        CloseKind::ClientClosed,
        CloseKind::ClientGone,
        CloseKind::Error,
        CloseKind::Stalled,
        CloseKind::Idle,
        CloseKind::HandshakeFailed,
        CloseKind::Evicted,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseKind::Done => "done",
            CloseKind::ClientClosed => "client_closed",
            CloseKind::ClientGone => "client_gone",
            CloseKind::Error => "error",
            CloseKind::Stalled => "stalled",
            CloseKind::Idle => "idle",
            CloseKind::HandshakeFailed => "handshake_failed",
            CloseKind::Evicted => "evicted",
        }
    }
}

impl CloseReason {
    pub fn kind(self) -> CloseKind {
        match self {
            CloseReason::Done => CloseKind::Done,
            CloseReason::PeerClosed { .. } => CloseKind::ClientClosed,
            CloseReason::PeerGone => CloseKind::ClientGone,
            CloseReason::Failed => CloseKind::Error,
            CloseReason::Stalled => CloseKind::Stalled,
            CloseReason::Idle => CloseKind::Idle,
            CloseReason::Handshake(_) => CloseKind::HandshakeFailed,
            CloseReason::Evicted => CloseKind::Evicted,
        }
    }
}

/// What `Stats::closed` needs to know about the connection besides the reason.
#[derive(Clone, Copy, Debug)]
pub struct Ended {
    pub reason: CloseReason,
    /// Requests answered on the connection.
    pub requests: u64,
    /// The TLS version, once the handshake completed.
    pub tls: Option<TlsVersion>,
}

/// Gauges owned outside the loop's `Stats`, read when a page or the stats line is rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    pub log_level: u8,
    /// Certificate cache: entries, reuses, misses (loads), evictions.
    pub certs_cached: u64,
    pub cert_hits: u64,
    pub cert_misses: u64,
    pub cert_purges: u64,
    /// Certificate cache: lookups that found nothing usable, and the `-c` limit.
    pub cert_lookup_misses: u64,
    pub certs_capacity: u64,
    /// Session cache: sessions stored plus reused (`ssh`, as the original), misses, purges.
    pub sessions: u64,
    pub session_misses: u64,
    pub session_purges: u64,
    /// The two parts of `sessions`.
    pub sessions_stored: u64,
    pub session_hits: u64,
    /// Disk budget: certificate files in CERT_PATH, the most allowed, files removed.
    pub cert_files: u64,
    pub cert_files_max: u64,
    pub cert_files_removed: u64,
}

/// Counters and gauges together: what a stats page shows.
pub struct Snapshot<'a> {
    pub stats: &'a Stats,
    pub gauges: Gauges,
}

impl Snapshot<'_> {
    /// The value of `c` as a number; averages as floats.
    pub fn value(&self, c: Counter) -> f64 {
        let g = &self.gauges;
        let gauge = match c {
            Counter::Log => u64::from(g.log_level),
            Counter::Sct => g.certs_cached,
            Counter::Sch => g.cert_hits,
            Counter::Scm => g.cert_misses,
            Counter::Scp => g.cert_purges,
            Counter::Ssh => g.sessions,
            Counter::Ssm => g.session_misses,
            Counter::Ssp => g.session_purges,
            Counter::Dsk => g.cert_files,
            Counter::Dsx => g.cert_files_max,
            Counter::Dse => g.cert_files_removed,
            _ => return self.stats.value(c),
        };
        gauge as f64
    }

    pub fn uptime_secs(&self) -> u64 {
        self.stats.uptime_secs()
    }
}

/// The original's running average (§8.3): arithmetic mean while fewer than 500 requests
/// have been counted, then an exponential moving average with weight 0.002.
#[derive(Clone, Copy, Debug, Default)]
pub struct Average {
    value: f64,
    samples: u64,
}

impl Average {
    pub const SWITCH_AT: u64 = 500;

    pub fn add(&mut self, sample: f64, req: u64) {
        self.samples += 1;
        if req < Self::SWITCH_AT {
            self.value += (sample - self.value) / self.samples as f64;
        } else {
            self.value += 0.002 * (sample - self.value);
        }
    }

    pub fn value(&self) -> f64 {
        self.value
    }
}

/// A sum and the number of samples in it: a Prometheus summary without quantiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum {
    pub sum: u64,
    pub count: u64,
}

impl Sum {
    fn add(&mut self, v: u64) {
        self.sum = self.sum.saturating_add(v);
        self.count += 1;
    }
}

/// Measurements only `/metrics` shows.
#[derive(Clone, Debug, Default)]
pub struct Detail {
    pub accepted: u64,
    /// By `CloseKind`.
    pub closed: [u64; CloseKind::ALL.len()],
    /// By `HandshakeFailure`.
    pub handshake_failures: [u64; HandshakeFailure::ALL.len()],
    /// Completed handshakes by `TlsVersion`.
    pub handshakes: [u64; TlsVersion::ALL.len()],
    /// Certificate jobs that found a usable file on disk, and jobs skipped because every
    /// client waiting for them had gone.
    pub certs_loaded: u64,
    pub certs_abandoned: u64,
    /// Requests that sent bytes: their sizes and processing times.
    pub request_bytes: Sum,
    pub request_micros: Sum,
    /// Longest processing time of any request.
    pub request_micros_max: u64,
    /// Requests per closed connection.
    pub conn_requests: Sum,
}

pub struct Stats {
    counts: [u64; COUNT],
    detail: Detail,
    names: TopNames,
    avg: Average,
    tav: Average,
    kvg: Average,
    started: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            counts: [0; COUNT],
            detail: Detail::default(),
            names: TopNames::new(),
            avg: Average::default(),
            tav: Average::default(),
            kvg: Average::default(),
            started: Instant::now(),
        }
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.counts[c as usize]
    }

    /// Tests set any counter, gauges included, to check the pages' layout.
    #[cfg(test)]
    pub fn set(&mut self, c: Counter, v: u64) {
        self.counts[c as usize] = v;
    }

    pub fn bump(&mut self, c: Counter) {
        self.counts[c as usize] += 1;
    }

    /// One answered (or failed) request: its outcome counter, `req`, and the size/time
    /// samples. `bytes` = request bytes received (head + body); `micros` = processing time.
    pub fn request(&mut self, outcome: Counter, bytes: u64, micros: u64) {
        self.bump(outcome);
        self.bump(Counter::Req);
        let req = self.get(Counter::Req);
        let ms = micros / 1000;
        if bytes > 0 {
            self.avg.add(bytes as f64, req);
            self.tav.add(ms as f64, req);
            self.max(Counter::Rmx, bytes);
            self.detail.request_bytes.add(bytes);
            self.detail.request_micros.add(micros);
        }
        self.max(Counter::Tmx, ms);
        let max = &mut self.detail.request_micros_max;
        *max = (*max).max(micros);
    }

    /// An event that counts in `req` without size/time samples (failed handshakes,
    /// connections closed before any request).
    pub fn event(&mut self, outcome: Counter) {
        self.bump(outcome);
        self.bump(Counter::Req);
    }

    /// A TLS handshake completed and carried a request: `slh` and its version.
    pub fn tls_request(&mut self, version: TlsVersion, early_data: bool) {
        self.bump(Counter::Slh);
        self.bump(version.counter());
        if early_data {
            self.bump(Counter::Zrt);
        }
    }

    /// A TLS handshake completed.
    pub fn handshake_done(&mut self, version: TlsVersion) {
        self.detail.handshakes[version as usize] += 1;
    }

    /// A certificate job found a usable file.
    pub fn cert_loaded(&mut self) {
        self.detail.certs_loaded += 1;
    }

    /// A certificate job was skipped: nobody waited for it any more.
    pub fn cert_abandoned(&mut self) {
        self.detail.certs_abandoned += 1;
    }

    /// A client asked for a name (`top_names` says which sources count).
    pub fn name_seen(&mut self, source: Source, seen: Observed) {
        self.names.observe(source, seen);
    }

    pub fn names(&self) -> &TopNames {
        &self.names
    }

    pub fn detail(&self) -> &Detail {
        &self.detail
    }

    /// A connection closed: the counters its reason moves (the only place that decides).
    pub fn closed(&mut self, end: Ended) {
        self.detail.closed[end.reason.kind() as usize] += 1;
        let silent = end.requests == 0;
        match end.reason {
            CloseReason::Done => {}
            CloseReason::PeerClosed { partial } => {
                if partial || silent {
                    self.dropped_silent(end);
                }
            }
            CloseReason::PeerGone => self.event(Counter::Cly),
            CloseReason::Failed => self.event(Counter::Err),
            CloseReason::Stalled => {
                self.bump(Counter::Tmo);
                if silent {
                    self.dropped_silent(end);
                }
            }
            CloseReason::Idle => {
                if silent {
                    self.dropped_silent(end);
                }
            }
            CloseReason::Handshake(f) => self.handshake_failed(f),
            // Not a request: an idle connection, or one that never sent one.
            CloseReason::Evicted => self.bump(Counter::Clt),
        }
    }

    /// `cls`; over TLS also `slc` and the version (a handshake that carried no request).
    fn dropped_silent(&mut self, end: Ended) {
        self.event(Counter::Cls);
        if let (Some(v), 0) = (end.tls, end.requests) {
            self.bump(Counter::Slc);
            self.bump(v.counter());
        }
    }

    fn handshake_failed(&mut self, f: HandshakeFailure) {
        self.detail.handshake_failures[f as usize] += 1;
        let detail = match f {
            HandshakeFailure::NoCertificate => return self.event(Counter::Slm),
            HandshakeFailure::InvalidSni => Some(Counter::Snx),
            HandshakeFailure::UnknownCa => Some(Counter::Uca),
            HandshakeFailure::BadCertificate => Some(Counter::Ucb),
            HandshakeFailure::CertificateUnknown => Some(Counter::Uce),
            HandshakeFailure::ClientHungUp => Some(Counter::Ush),
            HandshakeFailure::Timeout => Some(Counter::Tmo),
            HandshakeFailure::Other => None,
        };
        if let Some(d) = detail {
            self.bump(d);
        }
        self.event(Counter::Slu);
    }

    /// A connection opened: `kcc`/`kmx`.
    pub fn conn_opened(&mut self) {
        self.detail.accepted += 1;
        self.bump(Counter::Kcc);
        let kcc = self.get(Counter::Kcc);
        self.max(Counter::Kmx, kcc);
    }

    /// A connection ended after serving `requests` requests: `kcc`, `kvg`, `krq`.
    pub fn conn_closed(&mut self, requests: u64) {
        let kcc = &mut self.counts[Counter::Kcc as usize];
        *kcc = kcc.saturating_sub(1);
        let req = self.get(Counter::Req);
        self.kvg.add(requests as f64, req);
        self.max(Counter::Krq, requests);
        self.detail.conn_requests.add(requests);
    }

    fn max(&mut self, c: Counter, v: u64) {
        let slot = &mut self.counts[c as usize];
        *slot = (*slot).max(v);
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// The value of `c` as a number; averages as floats.
    pub fn value(&self, c: Counter) -> f64 {
        match c {
            Counter::Uts => self.uptime_secs() as f64,
            Counter::Avg => self.avg.value(),
            Counter::Tav => self.tav.value(),
            Counter::Kvg => self.kvg.value(),
            _ => self.get(c) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_enum_order_and_counts() {
        assert_eq!(TABLE.len(), COUNT);
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

    #[test]
    fn average_is_mean_then_ema() {
        let mut a = Average::default();
        a.add(10.0, 1);
        a.add(20.0, 2);
        assert_eq!(a.value(), 15.0);
        a.add(1015.0, 500);
        assert!((a.value() - (15.0 + 0.002 * 1000.0)).abs() < 1e-9);
    }

    #[test]
    fn request_counts_req_and_samples() {
        let mut s = Stats::new();
        s.request(Counter::Gif, 100, 2500);
        s.request(Counter::Gif, 300, 500);
        assert_eq!(s.get(Counter::Gif), 2);
        assert_eq!(s.get(Counter::Req), 2);
        assert_eq!(s.get(Counter::Rmx), 300);
        assert_eq!(s.get(Counter::Tmx), 2);
        assert_eq!(s.value(Counter::Avg), 200.0);
        assert_eq!(s.value(Counter::Tav), 1.0);
    }

    #[test]
    fn connections_track_kcc_kmx_kvg_krq() {
        let mut s = Stats::new();
        s.conn_opened();
        s.conn_opened();
        s.conn_closed(3);
        assert_eq!(s.get(Counter::Kcc), 1);
        assert_eq!(s.get(Counter::Kmx), 2);
        assert_eq!(s.get(Counter::Krq), 3);
        assert_eq!(s.value(Counter::Kvg), 3.0);
    }

    #[test]
    fn label_tables_follow_the_enums() {
        for (i, v) in TlsVersion::ALL.iter().enumerate() {
            assert_eq!(*v as usize, i);
        }
        for (i, f) in HandshakeFailure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
        for (i, k) in CloseKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
    }

    #[test]
    fn detail_counts_what_the_counters_merge() {
        let mut s = Stats::new();
        s.conn_opened();
        s.conn_opened();
        s.request(Counter::Gif, 100, 2500);
        s.request(Counter::Png, 50, 700);
        s.handshake_done(TlsVersion::V13);
        let end = |reason, requests| Ended {
            reason,
            requests,
            tls: None,
        };
        s.closed(end(CloseReason::Handshake(HandshakeFailure::Timeout), 0));
        s.closed(end(CloseReason::Stalled, 2));
        s.closed(end(CloseReason::Done, 2));
        s.conn_closed(2);
        s.conn_closed(0);
        let d = s.detail();
        assert_eq!(d.accepted, 2);
        assert_eq!(d.handshakes, [0, 0, 0, 1]);
        assert_eq!(d.handshake_failures[HandshakeFailure::Timeout as usize], 1);
        assert_eq!(d.closed[CloseKind::HandshakeFailed as usize], 1);
        assert_eq!(d.closed[CloseKind::Stalled as usize], 1);
        assert_eq!(d.closed[CloseKind::Done as usize], 1);
        assert_eq!(d.request_bytes, Sum { sum: 150, count: 2 });
        assert_eq!(
            d.request_micros,
            Sum {
                sum: 3200,
                count: 2
            }
        );
        assert_eq!(d.request_micros_max, 2500);
        assert_eq!(d.conn_requests, Sum { sum: 2, count: 2 });
        // Both timeouts are in `tmo`; the detail tells them apart.
        assert_eq!(s.get(Counter::Tmo), 2);
    }
}
