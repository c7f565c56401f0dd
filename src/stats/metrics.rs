//! `/metrics`: the Prometheus text exposition format (0.0.4), named the way Prometheus'
//! naming practices ask: base units in the name (`_seconds`, `_bytes`), `_total` on
//! counters, one family with a label where counts split one thing (responses by `type`,
//! handshakes by `version`, failures by `reason`), sums and counts instead of running
//! averages, `pixelserv_build_info`, and the standard `process_*` families. HELP texts say
//! what this server counts and name the servstats counter that shows the same thing, if
//! any. Every value is a measurement; a figure that cannot be read is left out, never 0.

use std::fmt::{Display, Write};

use crate::stats::{CloseKind, Counter, HandshakeFailure, Snapshot, Sum, TlsVersion, TABLE};
use crate::sys::procfs::{self, ProcessStats};

/// Response classes, as the servstats counters name them.
const RESPONSE_TYPES: [Counter; 18] = [
    Counter::Gif,
    Counter::Png,
    Counter::Jpg,
    Counter::Ico,
    Counter::Swf,
    Counter::Script,
    Counter::NoExtension,
    Counter::OtherExtension,
    Counter::Options,
    Counter::Post,
    Counter::Head,
    Counter::Redirect,
    Counter::EmptyUrl,
    Counter::MalformedPath,
    Counter::NoContent,
    Counter::BadRequest,
    Counter::StatsHtml,
    Counter::StatsText,
];

/// The whole page, with this process's figures read now.
pub fn page(s: &Snapshot) -> String {
    render(s, procfs::read().ok().as_ref())
}

fn render(s: &Snapshot, process: Option<&ProcessStats>) -> String {
    let mut m = Exposition {
        out: String::with_capacity(12 * 1024),
    };
    build_info(&mut m);
    connections(&mut m, s);
    requests(&mut m, s);
    tls(&mut m, s);
    certificates(&mut m, s);
    if let Some(p) = process {
        process_families(&mut m, p);
    }
    m.out
}

/// Writes families into one string; `fmt::Write` on a `String` cannot fail.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        for (i, (label, v)) in labels.iter().enumerate() {
            self.out.push(if i == 0 { '{' } else { ',' });
            let _ = write!(self.out, "{label}=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        if !labels.is_empty() {
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// A family with one label, one sample per `(label value, count)`.
    fn labelled<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.family(name, kind, help);
        for (v, n) in values {
            self.sample(name, &[(label, v)], n);
        }
    }

    /// A summary without quantiles; `scale` turns the stored unit into the base unit.
    fn summary(&mut self, name: &str, help: &str, s: Sum, scale: f64) {
        self.family(name, "summary", help);
        let _ = writeln!(self.out, "{name}_sum {}", s.sum as f64 * scale);
        let _ = writeln!(self.out, "{name}_count {}", s.count);
    }
}

fn build_info(m: &mut Exposition) {
    m.family(
        "pixelserv_build_info",
        "gauge",
        "Always 1: the labels say which pixelserv-tls this is and which OpenSSL it runs on.",
    );
    m.sample(
        "pixelserv_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("openssl", openssl::version::version()),
        ],
        1,
    );
}

fn connections(m: &mut Exposition, s: &Snapshot) {
    let d = s.stats.detail();
    m.gauge(
        "pixelserv_log_level",
        "Log level now (-l or /log=N): 0 critical, 1 error, 2 warning, 3 notice, 4 info, 5 debug (servstats log).",
        s.gauges.log_level,
    );
    m.counter(
        "pixelserv_connections_accepted_total",
        "Client connections accepted, HTTP and HTTPS.",
        d.accepted,
    );
    m.gauge(
        "pixelserv_connections_open",
        "Client connections open now, this one included (servstats kcc: one event loop serves them all; there are no service threads).",
        s.stats.get(Counter::ConnsOpen),
    );
    m.gauge(
        "pixelserv_connections_open_max",
        "Most client connections open at once since the start (servstats kmx).",
        s.stats.get(Counter::ConnsOpenMax),
    );
    m.labelled(
        "pixelserv_connections_closed_total",
        "counter",
        "Client connections closed, by reason: done (all it asked for was answered, or the server shut down), client_closed (the client closed or reset it before completing a request), client_gone (the client left while a response was being sent; servstats cly), error (a socket or TLS error; servstats err), stalled (a request or response made no progress before its deadline), idle (the keep-alive time -O ran out), handshake_failed (see pixelserv_tls_handshake_failures_total), evicted (idle, or silent since it connected, and closed to admit a new connection at the -T limit; servstats clt).",
        "reason",
        CloseKind::ALL.map(|k| (k.label(), d.closed[k as usize])),
    );
    m.summary(
        "pixelserv_connection_requests",
        "Requests answered per closed connection (servstats kvg averages these).",
        d.conn_requests,
        1.0,
    );
    m.gauge(
        "pixelserv_connection_requests_max",
        "Most requests answered on one connection (servstats krq).",
        s.stats.get(Counter::RequestsPerConnMax),
    );
}

fn requests(m: &mut Exposition, s: &Snapshot) {
    let d = s.stats.detail();
    m.labelled(
        "pixelserv_responses_total",
        "counter",
        "Requests answered, by the class servstats counts them in: gif, png, jpg, swf, ico (a 1x1 image; ico includes /favicon.ico), txt (.js paths and /ca.crt), nfe (no file extension), ufe (another extension), opt (OPTIONS), pst (POST), hed (HEAD, answered like GET without a body), rdr (-R redirect), nou (GET *), pth (malformed path), 204 (/generate_204), bad (unknown method or malformed request: 400 or 501), sta (the HTML statistics pages), stt (the text, JSON and metrics pages).",
        "type",
        RESPONSE_TYPES.map(|c| (TABLE[c as usize].name, s.stats.get(c))),
    );
    m.summary(
        "pixelserv_request_size_bytes",
        "Bytes received per request, head and body (servstats avg averages these).",
        d.request_bytes,
        1.0,
    );
    m.gauge(
        "pixelserv_request_size_max_bytes",
        "Largest request received (servstats rmx).",
        s.stats.get(Counter::RequestSizeMax),
    );
    m.summary(
        "pixelserv_request_duration_seconds",
        "Time from the event-loop wake-up that read the first byte of a request to its response being ready to send (servstats tav averages these, in ms).",
        d.request_micros,
        1e-6,
    );
    m.gauge(
        "pixelserv_request_duration_max_seconds",
        "Longest time of any request from its first byte to its response (servstats tmx).",
        d.request_micros_max as f64 * 1e-6,
    );
}

fn tls(m: &mut Exposition, s: &Snapshot) {
    let d = s.stats.detail();
    let g = &s.gauges;
    m.counter(
        "pixelserv_https_requests_total",
        "Requests answered over TLS (servstats slh).",
        s.stats.get(Counter::HttpsAnswered),
    );
    m.counter(
        "pixelserv_tls_early_data_requests_total",
        "Requests answered from TLS 1.3 early data, 0-RTT (servstats zrt).",
        s.stats.get(Counter::EarlyData),
    );
    m.labelled(
        "pixelserv_tls_handshakes_total",
        "counter",
        "TLS handshakes completed, by protocol version.",
        "version",
        TlsVersion::ALL.map(|v| (v.label(), d.handshakes[v as usize])),
    );
    m.labelled(
        "pixelserv_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed, by reason: no_certificate (none could be had: no usable ca.key, or the job failed or was refused; servstats slm), invalid_sni (a name no certificate is made for; snx), unknown_ca, bad_certificate, certificate_unknown (the client's alert: it does not trust the CA; uca, ucb, uce), client_hung_up (it closed after the ServerHello without an alert; ush), timeout (--handshake-timeout), other (bad records, no shared cipher, plain HTTP on a TLS port). All but no_certificate are servstats slu.",
        "reason",
        HandshakeFailure::ALL.map(|f| (f.label(), d.handshake_failures[f as usize])),
    );
    m.counter(
        "pixelserv_tls_connections_unused_total",
        "TLS connections that completed the handshake and closed without a request (servstats slc; browsers open some ahead of need).",
        s.stats.get(Counter::HttpsSilent),
    );
    m.gauge(
        "pixelserv_tls_session_cache_sessions",
        "TLS sessions in the server's session cache.",
        g.sessions_stored,
    );
    m.labelled(
        "pixelserv_tls_session_cache_lookups_total",
        "counter",
        "Resumptions asked for by clients, by whether the session was found (servstats ssh is sessions plus hits, ssm is misses).",
        "result",
        [("hit", g.session_hits), ("miss", g.session_misses)],
    );
    m.counter(
        "pixelserv_tls_session_cache_full_total",
        "Sessions dropped because the session cache was full (servstats ssp).",
        g.session_purges,
    );
}

fn certificates(m: &mut Exposition, s: &Snapshot) {
    let g = &s.gauges;
    m.gauge(
        "pixelserv_certificate_cache_entries",
        "Certificates in the in-memory cache (servstats sct).",
        g.certs_cached,
    );
    m.gauge(
        "pixelserv_certificate_cache_capacity",
        "Certificates the in-memory cache holds at most (-c).",
        g.certs_capacity,
    );
    m.labelled(
        "pixelserv_certificate_cache_lookups_total",
        "counter",
        "Certificate cache lookups, one per TLS handshake, by result: hit (servstats sch) or miss (no usable entry: a worker loads or makes one).",
        "result",
        [("hit", g.cert_hits), ("miss", g.cert_lookup_misses)],
    );
    m.counter(
        "pixelserv_certificate_cache_evictions_total",
        "Certificates evicted from the cache to make room for another (servstats scp).",
        g.cert_purges,
    );
    m.labelled(
        "pixelserv_certificates_total",
        "counter",
        "Certificates asked of the workers after a cache miss, by outcome: generated (made and signed by the CA; servstats cgn), loaded (a usable file in CERT_PATH), failed (servstats cgf), queue_full (refused, the job queue was full; servstats cqf), abandoned (every client waiting for it had gone before a worker took it: nothing was done).",
        "outcome",
        [
            ("generated", s.stats.get(Counter::CertsGenerated)),
            ("loaded", s.stats.detail().certs_loaded),
            ("failed", s.stats.get(Counter::CertJobsFailed)),
            ("queue_full", s.stats.get(Counter::CertQueueFull)),
            ("abandoned", s.stats.detail().certs_abandoned),
        ],
    );
    m.gauge(
        "pixelserv_certificate_files",
        "Certificate files in CERT_PATH (servstats dsk).",
        g.cert_files,
    );
    m.gauge(
        "pixelserv_certificate_files_max",
        "Certificate files kept in CERT_PATH at most, --cert-files (servstats dsx).",
        g.cert_files_max,
    );
    m.counter(
        "pixelserv_certificate_files_removed_total",
        "Least recently used certificate files removed to stay within --cert-files (servstats dse).",
        g.cert_files_removed,
    );
    m.counter(
        "pixelserv_certificate_files_replaced_total",
        "Certificate files in CERT_PATH found corrupt or unusable and made again (servstats sle).",
        s.stats.get(Counter::HttpsCertificateUnusable),
    );
}

/// The families every Prometheus client library exports, with their usual HELP texts.
fn process_families(m: &mut Exposition, p: &ProcessStats) {
    m.counter(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        p.cpu_seconds,
    );
    m.gauge(
        "process_open_fds",
        "Number of open file descriptors.",
        p.open_fds,
    );
    m.gauge(
        "process_max_fds",
        "Maximum number of open file descriptors.",
        p.max_fds,
    );
    m.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        p.virtual_bytes,
    );
    m.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        p.resident_bytes,
    );
    m.gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        p.start_time_seconds,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::top_names;
    use crate::stats::{CloseReason, Ended, Gauges, Stats};
    use std::collections::{BTreeMap, BTreeSet};

    fn process() -> ProcessStats {
        ProcessStats {
            cpu_seconds: 1.25,
            virtual_bytes: 50_000_000,
            resident_bytes: 4_096_000,
            start_time_seconds: 1_700_000_000.5,
            open_fds: 12,
            max_fds: 1024,
        }
    }

    fn sample_stats() -> Stats {
        let mut s = Stats::new();
        s.conn_opened();
        s.request(Counter::Gif, 120, 2_500);
        s.request(Counter::NoContent, 80, 500);
        s.handshake_done(TlsVersion::V12);
        s.tls_request(TlsVersion::V12, false);
        s.closed(Ended {
            reason: CloseReason::Handshake(HandshakeFailure::UnknownCa),
            requests: 0,
            tls: None,
        });
        s.conn_closed(2);
        s.bump(Counter::CertsGenerated);
        s.cert_loaded();
        s.name_seen(top_names::Source::Http, top_names::from_host(b"x.example"));
        s
    }

    fn gauges() -> Gauges {
        Gauges {
            log_level: 3,
            certs_cached: 7,
            certs_capacity: 500,
            cert_hits: 9,
            cert_lookup_misses: 2,
            sessions_stored: 4,
            session_hits: 5,
            session_misses: 6,
            session_purges: 1,
            ..Gauges::default()
        }
    }

    /// A strict reading of the text format: HELP then TYPE once per family, then only that
    /// family's samples, valid names, label sets unique, values numbers. Returns each
    /// sample as `name{labels}` → value, and each family's type.
    fn parse(text: &str) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
        let valid = |n: &str| {
            let mut c = n.chars();
            c.next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let (mut samples, mut types) = (BTreeMap::new(), BTreeMap::new());
        let mut family = String::new();
        let mut lines = text.lines().peekable();
        assert!(text.ends_with('\n'));
        while let Some(line) = lines.next() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("help text");
                assert!(valid(name) && !help.is_empty(), "{line}");
                let ty = lines.next().expect("TYPE after HELP");
                let kind = ty
                    .strip_prefix(&format!("# TYPE {name} "))
                    .unwrap_or_else(|| panic!("{ty}"));
                assert!(["counter", "gauge", "summary"].contains(&kind), "{ty}");
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "{name} twice"
                );
                family = name.to_string();
                continue;
            }
            assert!(!line.starts_with('#'), "{line}");
            let (series, value) = line.rsplit_once(' ').expect("value");
            let name = series.split('{').next().unwrap();
            assert!(valid(name), "{line}");
            let kind = &types[&family];
            let ok = match kind.as_str() {
                "summary" => name == format!("{family}_sum") || name == format!("{family}_count"),
                _ => name == family,
            };
            assert!(ok, "{name} in family {family}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            assert!(v.is_finite() && v >= 0.0, "{line}");
            assert!(
                samples.insert(series.to_string(), v).is_none(),
                "{series} twice"
            );
        }
        (samples, types)
    }

    #[test]
    fn every_family_is_well_formed_and_measured() {
        let stats = sample_stats();
        let snap = Snapshot {
            stats: &stats,
            gauges: gauges(),
        };
        let text = render(&snap, Some(&process()));
        let (samples, types) = parse(&text);
        let get = |k: &str| {
            *samples
                .get(k)
                .unwrap_or_else(|| panic!("{k} missing:\n{text}"))
        };
        assert_eq!(get("pixelserv_log_level"), 3.0);
        assert_eq!(get("pixelserv_responses_total{type=\"gif\"}"), 1.0);
        assert_eq!(get("pixelserv_responses_total{type=\"204\"}"), 1.0);
        assert_eq!(get("pixelserv_responses_total{type=\"png\"}"), 0.0);
        assert_eq!(get("pixelserv_request_size_bytes_sum"), 200.0);
        assert_eq!(get("pixelserv_request_size_bytes_count"), 2.0);
        assert_eq!(get("pixelserv_request_duration_seconds_sum"), 0.003);
        assert_eq!(get("pixelserv_request_duration_max_seconds"), 0.0025);
        assert_eq!(get("pixelserv_request_size_max_bytes"), 120.0);
        assert_eq!(get("pixelserv_tls_handshakes_total{version=\"1.2\"}"), 1.0);
        assert_eq!(get("pixelserv_tls_handshakes_total{version=\"1.3\"}"), 0.0);
        assert_eq!(get("pixelserv_https_requests_total"), 1.0);
        assert_eq!(
            get("pixelserv_tls_handshake_failures_total{reason=\"unknown_ca\"}"),
            1.0
        );
        assert_eq!(
            get("pixelserv_connections_closed_total{reason=\"handshake_failed\"}"),
            1.0
        );
        assert_eq!(get("pixelserv_connection_requests_sum"), 2.0);
        assert_eq!(get("pixelserv_connection_requests_count"), 1.0);
        assert_eq!(
            get("pixelserv_certificates_total{outcome=\"generated\"}"),
            1.0
        );
        assert_eq!(get("pixelserv_certificates_total{outcome=\"loaded\"}"), 1.0);
        assert_eq!(
            get("pixelserv_certificate_cache_lookups_total{result=\"miss\"}"),
            2.0
        );
        assert_eq!(get("pixelserv_certificate_cache_capacity"), 500.0);
        assert_eq!(
            get("pixelserv_tls_session_cache_lookups_total{result=\"hit\"}"),
            5.0
        );
        assert_eq!(get("pixelserv_tls_session_cache_sessions"), 4.0);
        assert_eq!(get("process_cpu_seconds_total"), 1.25);
        assert_eq!(get("process_start_time_seconds"), 1_700_000_000.5);
        assert_eq!(get("process_resident_memory_bytes"), 4_096_000.0);
        let build = format!(
            "pixelserv_build_info{{version=\"{}\",openssl=\"{}\"}}",
            env!("CARGO_PKG_VERSION"),
            openssl::version::version()
        );
        assert_eq!(get(&build), 1.0);
        // Every response class servstats has, and only those, with the servstats names.
        let classes: BTreeSet<&str> = samples
            .keys()
            .filter_map(|k| k.strip_prefix("pixelserv_responses_total{type=\""))
            .map(|k| k.trim_end_matches("\"}"))
            .collect();
        assert_eq!(classes.len(), RESPONSE_TYPES.len());
        assert!(classes.contains("hed") && classes.contains("sta"));
        // No cryptic three-letter families are left, and none counts in ms.
        for name in types.keys() {
            assert!(name.starts_with("pixelserv_") || name.starts_with("process_"));
            assert!(!name.contains("_ms") && !name.ends_with("_kcc"), "{name}");
        }
        assert_eq!(types["pixelserv_request_duration_seconds"], "summary");
        assert!(text.contains("# HELP pixelserv_responses_total "));
        assert!(text.contains("hed (HEAD, answered like GET without a body)"));
    }

    #[test]
    fn process_families_are_left_out_when_unreadable() {
        let stats = Stats::new();
        let snap = Snapshot {
            stats: &stats,
            gauges: Gauges::default(),
        };
        let text = render(&snap, None);
        parse(&text);
        assert!(!text.contains("process_"));
        assert!(page(&snap).contains("\nprocess_open_fds "));
    }

    #[test]
    fn help_and_label_values_are_escaped() {
        let mut m = Exposition { out: String::new() };
        m.family("x", "gauge", "a\\b\nc");
        m.sample("x", &[("l", "q\"\\\n")], 1);
        assert_eq!(
            m.out,
            "# HELP x a\\\\b\\nc\n# TYPE x gauge\nx{l=\"q\\\"\\\\\\n\"} 1\n"
        );
    }
}
