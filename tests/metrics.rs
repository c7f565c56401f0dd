//! `/metrics` read by a real Prometheus parser (Python's `prometheus_client`, through
//! tests/metrics/parse.py), and the most requested names in `/servstats.json` (read with
//! serde_json) and `/servstats/top`, against the real binary.
mod common;
use common::tls::*;
use common::*;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const PARSER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/metrics/parse.py");

/// A Python that has `prometheus_client`: the one on PATH (pip) or Debian's (apt).
fn python() -> &'static str {
    static FOUND: OnceLock<&'static str> = OnceLock::new();
    FOUND.get_or_init(find_python)
}

fn find_python() -> &'static str {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import prometheus_client"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .unwrap_or_else(|| {
            panic!(
                "these tests read /metrics with Python's prometheus_client, and no python3 \
                 here has it: `python3 -m pip install prometheus_client` or \
                 `apt-get install python3-prometheus-client` (.ci/run installs it)"
            )
        })
}

/// What the parser understood: family → (type, help), and `name{labels}` → value.
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
}

fn parse(text: &str) -> Result<Parsed, String> {
    let mut child = Command::new(python())
        .arg(PARSER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the parser");
    let mut stdin = child.stdin.take().unwrap();
    let input = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    writer.join().unwrap().unwrap();
    if !child.wait().unwrap().success() {
        return Err(err);
    }
    let mut parsed = Parsed {
        families: BTreeMap::new(),
        samples: BTreeMap::new(),
    };
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[..] {
            ["family", name, kind, help] => {
                let dup = parsed
                    .families
                    .insert(name.into(), (kind.into(), help.into()));
                assert!(dup.is_none(), "family {name} twice");
            }
            ["sample", name, labels, value] => {
                let series = if labels.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}{{{labels}}}")
                };
                let value: f64 = value.parse().unwrap();
                assert!(parsed.samples.insert(series, value).is_none(), "{line}");
            }
            _ => panic!("parser output: {line}"),
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

/// Families a Prometheus user looks for, with their types (counters without `_total`, as
/// the parser names them).
const FAMILIES: &[(&str, &str)] = &[
    ("pixelserv_build_info", "gauge"),
    ("pixelserv_log_level", "gauge"),
    ("pixelserv_connections_accepted", "counter"),
    ("pixelserv_connections_open", "gauge"),
    ("pixelserv_connections_open_max", "gauge"),
    ("pixelserv_connections_closed", "counter"),
    ("pixelserv_connection_requests", "summary"),
    ("pixelserv_connection_requests_max", "gauge"),
    ("pixelserv_responses", "counter"),
    ("pixelserv_request_size_bytes", "summary"),
    ("pixelserv_request_size_max_bytes", "gauge"),
    ("pixelserv_request_duration_seconds", "summary"),
    ("pixelserv_request_duration_max_seconds", "gauge"),
    ("pixelserv_https_requests", "counter"),
    ("pixelserv_tls_early_data_requests", "counter"),
    ("pixelserv_tls_handshakes", "counter"),
    ("pixelserv_tls_handshake_failures", "counter"),
    ("pixelserv_tls_connections_unused", "counter"),
    ("pixelserv_tls_session_cache_sessions", "gauge"),
    ("pixelserv_tls_session_cache_lookups", "counter"),
    ("pixelserv_tls_session_cache_full", "counter"),
    ("pixelserv_certificate_cache_entries", "gauge"),
    ("pixelserv_certificate_cache_capacity", "gauge"),
    ("pixelserv_certificate_cache_lookups", "counter"),
    ("pixelserv_certificate_cache_evictions", "counter"),
    ("pixelserv_certificates", "counter"),
    ("pixelserv_certificate_files", "gauge"),
    ("pixelserv_certificate_files_max", "gauge"),
    ("pixelserv_certificate_files_removed", "counter"),
    ("pixelserv_certificate_files_replaced", "counter"),
    ("process_cpu_seconds", "counter"),
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
