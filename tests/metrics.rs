//! `/metrics` read by a strict parser of the Prometheus text format (the
//! `openmetrics-parser` crate's `parse_prometheus`, a grammar of the whole format that
//! refuses any line it does not match), and the most requested names in
//! `/servstats.json` (read with serde_json) and `/servstats/top`, against the real binary.
mod common;
use common::tls::*;
use common::*;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricNumber, PrometheusValue};
use serde_json::{json, Value};

/// What the parser understood: family → (type, help), and `name{labels}` → value (labels
/// sorted, values unquoted; a summary as `name_sum` and `name_count`).
#[derive(Debug)]
struct Parsed {
    families: BTreeMap<String, (String, String)>,
    samples: BTreeMap<String, f64>,
}

impl Parsed {
    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in {:#?}", self.samples.keys()))
    }

    fn add(&mut self, name: &str, labels: &str, value: f64) {
        let series = if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{labels}}}")
        };
        assert!(self.samples.insert(series, value).is_none(), "{name} twice");
    }
}

fn parse(text: &str) -> Result<Parsed, String> {
    let exposition = parse_prometheus(text).map_err(|e| e.to_string())?;
    let mut parsed = Parsed {
        families: BTreeMap::new(),
        samples: BTreeMap::new(),
    };
    for (name, family) in &exposition.families {
        let kind = family.family_type.to_string();
        parsed
            .families
            .insert(name.clone(), (kind, family.help.clone()));
        for sample in family.iter_samples() {
            let set = sample.get_labelset().map_err(|e| e.to_string())?;
            let mut labels: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let labels = labels.join(",");
            match &sample.value {
                PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => {
                    parsed.add(name, &labels, n.as_f64())
                }
                PrometheusValue::Counter(c) => parsed.add(name, &labels, c.value.as_f64()),
                PrometheusValue::Summary(s) => {
                    let sum = s.sum.as_ref().map_or(f64::NAN, MetricNumber::as_f64);
                    parsed.add(&format!("{name}_sum"), &labels, sum);
                    let count = s.count.map_or(f64::NAN, |c| c as f64);
                    parsed.add(&format!("{name}_count"), &labels, count);
                }
                PrometheusValue::Histogram(_) => return Err(format!("{name}: a histogram")),
            }
        }
    }
    Ok(parsed)
}

fn scrape(srv: &Server) -> (String, Parsed) {
    let r = srv.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-type"), Some("text/plain; version=0.0.4"));
    let text = String::from_utf8(r.body).unwrap();
    let parsed = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, parsed)
}

/// Families a Prometheus user looks for, with their types.
const FAMILIES: &[(&str, &str)] = &[
    ("pixelserv_build_info", "gauge"),
    ("pixelserv_log_level", "gauge"),
    ("pixelserv_connections_accepted_total", "counter"),
    ("pixelserv_connections_open", "gauge"),
    ("pixelserv_connections_open_max", "gauge"),
    ("pixelserv_connections_closed_total", "counter"),
    ("pixelserv_connection_requests", "summary"),
    ("pixelserv_connection_requests_max", "gauge"),
    ("pixelserv_responses_total", "counter"),
    ("pixelserv_request_size_bytes", "summary"),
    ("pixelserv_request_size_max_bytes", "gauge"),
    ("pixelserv_request_duration_seconds", "summary"),
    ("pixelserv_request_duration_max_seconds", "gauge"),
    ("pixelserv_https_requests_total", "counter"),
    ("pixelserv_tls_early_data_requests_total", "counter"),
    ("pixelserv_tls_handshakes_total", "counter"),
    ("pixelserv_tls_handshake_failures_total", "counter"),
    ("pixelserv_tls_connections_unused_total", "counter"),
    ("pixelserv_tls_session_cache_sessions", "gauge"),
    ("pixelserv_tls_session_cache_lookups_total", "counter"),
    ("pixelserv_tls_session_cache_full_total", "counter"),
    ("pixelserv_certificate_cache_entries", "gauge"),
    ("pixelserv_certificate_cache_capacity", "gauge"),
    ("pixelserv_certificate_cache_lookups_total", "counter"),
    ("pixelserv_certificate_cache_evictions_total", "counter"),
    ("pixelserv_certificates_total", "counter"),
    ("pixelserv_certificate_files", "gauge"),
    ("pixelserv_certificate_files_max", "gauge"),
    ("pixelserv_certificate_files_removed_total", "counter"),
    ("pixelserv_certificate_files_replaced_total", "counter"),
    ("process_cpu_seconds_total", "counter"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
];

#[test]
fn the_parser_rejects_what_is_not_the_format() {
    // The harness must be able to fail.
    assert!(parse("x{a=\"b} 1\n").is_err());
    assert!(parse("x 1\n").is_ok());
    assert!(parse("# TYPE x counter\nx one\n").is_err());
}

/// One broken line in a real exposition fails the parse: what `metrics_parse_and_move`
/// reads is checked line by line, not skimmed.
#[test]
fn a_broken_exposition_line_fails() {
    let srv = Server::start(&[]);
    let text = String::from_utf8(srv.get("/metrics").body).unwrap();
    assert!(parse(&text).is_ok(), "{text}");
    for (from, to) in [
        ("pixelserv_log_level 4", "pixelserv_log_level 4 4 4"),
        ("{type=\"gif\"}", "{type=\"gif}"),
        (
            "# TYPE pixelserv_log_level gauge",
            "# TYPE pixelserv_log_level gauges",
        ),
    ] {
        assert!(text.contains(from), "{from} not in\n{text}");
        let broken = text.replacen(from, to, 1);
        assert!(parse(&broken).is_err(), "{to} was accepted");
    }
}

#[test]
fn metrics_parse_and_move() {
    let srv = Server::start(&[]);
    let (_, before) = scrape(&srv);
    for (name, kind) in FAMILIES {
        let (got, help) = before
            .families
            .get(*name)
            .unwrap_or_else(|| panic!("family {name} missing: {:?}", before.families.keys()));
        assert_eq!(got, kind, "{name}");
        assert!(!help.is_empty(), "{name} has no HELP");
    }
    assert_eq!(
        before.families.len(),
        FAMILIES.len(),
        "{:?}",
        before.families
    );
    assert_eq!(before.get("pixelserv_responses_total{type=gif}"), 0.0);
    assert_eq!(
        before.get(&format!(
            "pixelserv_build_info{{openssl={},version={}}}",
            openssl::version::version(),
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );

    srv.get("/x.gif");
    let mut c = srv.connect();
    c.write_all(b"HEAD /y.png HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response_opts(&mut c, true).unwrap().status, 200);
    assert_gif(&https_get(&srv, "ads.example.com", "/a.gif").unwrap());
    // Plain HTTP on the TLS port: a failed handshake.
    let mut plain = tcp(srv.https);
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let _ = plain.read_to_end(&mut Vec::new());

    let (text, m) = scrape(&srv);
    assert_eq!(m.get("pixelserv_responses_total{type=gif}"), 2.0, "{text}");
    assert_eq!(m.get("pixelserv_responses_total{type=hed}"), 1.0);
    assert_eq!(m.get("pixelserv_responses_total{type=png}"), 0.0);
    // The first scrape, counted after it was answered.
    assert_eq!(m.get("pixelserv_responses_total{type=stt}"), 1.0);
    assert_eq!(m.get("pixelserv_https_requests_total"), 1.0);
    assert_eq!(m.get("pixelserv_tls_handshakes_total{version=1.3}"), 1.0);
    assert_eq!(
        m.get("pixelserv_tls_handshake_failures_total{reason=other}"),
        1.0
    );
    assert_eq!(
        m.get("pixelserv_connections_closed_total{reason=handshake_failed}"),
        1.0
    );
    assert_eq!(
        m.get("pixelserv_certificates_total{outcome=generated}"),
        1.0
    );
    assert_eq!(
        m.get("pixelserv_certificate_cache_lookups_total{result=miss}"),
        1.0
    );
    assert_eq!(m.get("pixelserv_certificate_cache_entries"), 1.0);
    assert_eq!(m.get("pixelserv_certificate_files"), 1.0);
    assert_eq!(m.get("pixelserv_certificate_files_max"), 2000.0);
    // Five before this one, every one closed by now.
    assert_eq!(m.get("pixelserv_connections_accepted_total"), 6.0);
    assert_eq!(m.get("pixelserv_connections_open"), 1.0);
    assert_eq!(m.get("pixelserv_connection_requests_count"), 5.0);
    assert_eq!(m.get("pixelserv_request_size_bytes_count"), 4.0);
    assert!(m.get("pixelserv_request_size_bytes_sum") >= 4.0 * 16.0);
    // Measured when each response was ready, not on the loop's once-per-wake-up clock:
    // however fast, four requests take more than 0 µs.
    assert!(
        m.get("pixelserv_request_duration_seconds_sum") > 0.0,
        "{text}"
    );
    assert_eq!(m.get("pixelserv_log_level"), 4.0);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = m.get("process_start_time_seconds");
    assert!(
        start > now - 600.0 && start <= now + 1.0,
        "{start} vs {now}"
    );
    let fds = m.get("process_open_fds");
    assert!(fds >= 5.0 && fds <= m.get("process_max_fds"), "{fds}");
    assert!(m.get("process_resident_memory_bytes") > 1e6);
    assert!(m.get("process_virtual_memory_bytes") > m.get("process_resident_memory_bytes"));
    assert!(m.get("process_cpu_seconds_total") >= before.get("process_cpu_seconds_total"));
    // The servstats-style families are gone.
    for old in [
        "pixelserv_uts",
        "pixelserv_gif_total",
        "pixelserv_kcc",
        "pixelserv_tav",
    ] {
        assert!(!text.contains(&format!("\n{old} ")), "{old}");
    }
}

/// One request with this `Host` on a fresh plain-HTTP connection.
fn get_with_host(srv: &Server, host: &str) {
    let mut c = srv.connect();
    let r = exchange(
        &mut c,
        &format!("GET /x.gif HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 200);
}

fn top_json(srv: &Server) -> Value {
    let mut c = srv.connect();
    // No Host: the stats request itself names nothing.
    let r = exchange(&mut c, "GET /servstats.json HTTP/1.0\r\n\r\n");
    assert_eq!(r.header("Content-type"), Some("application/json"));
    let v: Value = serde_json::from_slice(&r.body).expect("valid JSON");
    v["top_names"].clone()
}

#[test]
fn most_requested_names() {
    let srv = Server::start(&[]);
    for host in ["Ads.Example.com", "ads.example.com:80", "ads.example.com."] {
        get_with_host(&srv, host);
    }
    get_with_host(&srv, "t.example");
    get_with_host(&srv, "<script>alert(1)</script>");
    get_with_host(&srv, "a\"b");
    // HTTPS counts the SNI, once per connection; the requests' Host ("x") does not count.
    let mut s = tls_connect(&srv, "ads.example.com").unwrap();
    for _ in 0..3 {
        assert_gif(&request(&mut s, "/a.gif", false));
    }
    drop(s);
    let _ = https_get(&srv, "cdn.example.net", "/b.gif").unwrap();

    let top = top_json(&srv);
    assert_eq!(top["capacity"], 128);
    assert_eq!(top["invalid"], json!({"http": 2, "tls": 0}));
    let names = top["names"].as_array().unwrap();
    assert_eq!(
        names[0],
        json!({"name": "ads.example.com", "count": 4, "error": 0, "http": 3, "tls": 1})
    );
    let listed: Vec<&str> = names.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.contains(&"t.example") && listed.contains(&"cdn.example.net"));
    assert_eq!(top["counted"], 6);

    let page = srv.get("/servstats/top");
    assert_eq!(page.header("Content-type"), Some("text/html"));
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains(
        "<tr><td>1</td><td>ads.example.com</td><td>4</td><td>0</td><td>3</td><td>1</td></tr>"
    ));
    assert!(!html.contains("<script>") && !html.contains("alert"));
    assert!(html.ends_with("</table></body></html>\r\n"));
}

#[test]
fn top_names_page_is_admin_only_with_dash_a() {
    let admin = free_port();
    let srv = Server::start(&["-A", &admin.to_string()]);
    assert!(
        srv.wait_log(&format!(":{admin} (TLS)"), T),
        "{}",
        srv.log_text()
    );
    // Elsewhere it is an ordinary path: the empty text answer.
    let r = srv.get("/servstats/top");
    assert_eq!((r.status, r.body.len()), (200, 0));
    let json = srv.get("/servstats.json");
    assert!(!String::from_utf8_lossy(&json.body).contains("top_names"));
    let mut s = connector(&ca_file(&srv))
        .connect("admin.example.com", tcp(admin))
        .unwrap();
    let r = request(&mut s, "/servstats/top", true);
    let html = String::from_utf8(r.body).unwrap();
    assert!(html.contains("<th>name</th>"), "{html}");
    // The admin connection's own SNI was counted at its handshake.
    assert!(html.contains("<td>admin.example.com</td>"), "{html}");
}
