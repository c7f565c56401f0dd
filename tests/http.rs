//! Plain-HTTP behaviour of the real binary: COMPATIBILITY.md Appendix A, with the fixes of
//! DEFECTS.md, framing, connection semantics, timeouts and the connection limit.
mod common;
use common::*;

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

const GIF: &[u8] = include_bytes!("../include-docs/assets/pixel.gif");
const PNG: &[u8] = include_bytes!("../include-docs/assets/pixel.png");
const JPEG: &[u8] = include_bytes!("../include-docs/assets/pixel.jpg");
const SWF: &[u8] = include_bytes!("../include-docs/assets/pixel.swf");
const ICO: &[u8] = include_bytes!("../include-docs/assets/pixel.ico");
const FAVICON: &[u8] = include_bytes!("../include-docs/assets/favicon.ico");

const TEXT_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n\
                         Connection: keep-alive\r\nContent-Length: 0\r\n\r\n";

fn head(r: &Response) -> String {
    String::from_utf8_lossy(&r.head_raw).into_owned()
}

fn assert_text(r: &Response) {
    assert_eq!(head(r), TEXT_HEAD);
    assert!(r.body.is_empty());
}

fn has_cors(r: &Response) -> bool {
    r.headers
        .iter()
        .any(|(n, _)| n.starts_with("Access-Control-"))
}

fn stats_of(srv: &Server) -> Vec<(String, String)> {
    srv.stats()
}

#[test]
fn appendix_a_responses_and_counters() {
    let srv = Server::start(&[]);
    let mut c = srv.connect();

    let r = exchange(&mut c, "GET /ad.gif HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        head(&r),
        "HTTP/1.1 200 OK\r\nContent-type: image/gif\r\nContent-length: 42\r\n\
         Connection: keep-alive\r\n\r\n"
    );
    assert_eq!(r.body, GIF);
    assert!(srv.wait_log(
        "127.0.0.1 a GET /ad.gif HTTP/1.1 tls_none",
        Duration::from_secs(5)
    ));

    // JPEG: our fix says keep-alive and the connection stays usable.
    for p in ["/x.JPG", "/x.jpeg"] {
        let r = exchange(&mut c, &get_req(p));
        assert_eq!(
            head(&r),
            "HTTP/1.1 200 OK\r\nContent-type: image/jpeg\r\nContent-length: 159\r\n\
             Connection: keep-alive\r\n\r\n"
        );
        assert_eq!(r.body, JPEG);
    }

    let r = exchange(&mut c, &get_req("/x.ico"));
    assert_eq!(
        head(&r),
        "HTTP/1.1 200 OK\r\nContent-type: image/x-icon\r\nCache-Control: max-age=2592000\r\n\
         Content-length: 70\r\nConnection: keep-alive\r\n\r\n"
    );
    assert_eq!(r.body, ICO);

    let r = exchange(&mut c, &get_req("/favicon.ico"));
    assert_eq!(
        head(&r),
        "HTTP/1.1 200 OK\r\nContent-type: image/x-icon\r\nContent-length: 598\r\n\
         Connection: keep-alive\r\n\r\n"
    );
    assert_eq!(r.body, FAVICON);

    for p in ["/", "/a.b/c", "/foo?bar.gif", "/a;x.gif"] {
        assert_text(&exchange(&mut c, &get_req(p)));
    }
    for p in ["/x.css", "/x.html", "/x.js", "/x.json"] {
        assert_text(&exchange(&mut c, &get_req(p)));
    }
    for p in ["/x.gif?y=1", "/PAGEAD/conversion/1"] {
        let r = exchange(&mut c, &get_req(p));
        assert_eq!(r.header("Content-type"), Some("image/gif"));
        assert_eq!(r.body, GIF);
    }
    for p in ["/generate_204", "/GEN_204"] {
        let r = exchange(&mut c, &get_req(p));
        assert_eq!(r.status, 204);
        assert_eq!(r.header("Content-Length"), Some("0"));
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=UTF-8"));
    }
    assert_text(&exchange(&mut c, &get_req("/generate_204?x")));

    // HEAD: the GET headers, Content-Length included, and no body (the next response
    // must start right after the head).
    c.write_all(b"HEAD /x.gif HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let r = read_response_opts(&mut c, true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-length"), Some("42"));
    assert_eq!(r.header("Content-type"), Some("image/gif"));

    for raw in ["PUT /x HTTP/1.1\r\n\r\n", "get /x HTTP/1.1\r\n\r\n"] {
        let r = exchange(&mut c, raw);
        assert_eq!(r.status_line, "HTTP/1.1 501 Method Not Implemented");
        assert_eq!(r.header("Content-Length"), Some("0"));
        assert!(r.body.is_empty());
    }

    let r = exchange(
        &mut c,
        "OPTIONS /x HTTP/1.1\r\nHost: a\r\nOrigin: http://foo.com\r\n\r\n",
    );
    assert_eq!(
        head(&r),
        "HTTP/1.1 200 OK\r\nContent-type: text/html\r\nContent-length: 11\r\n\
         Allow: GET,OPTIONS\r\nConnection: keep-alive\r\n\r\n"
    );
    assert_eq!(r.body, b"GET,OPTIONS");

    assert_text(&exchange(&mut c, "GET * HTTP/1.1\r\n\r\n"));
    // The original crashed on a path of only delimiters (DEFECTS.md #5).
    assert_text(&exchange(&mut c, "GET ? HTTP/1.1\r\n\r\n"));
    let r = exchange(&mut c, &get_req("/x.png"));
    assert_eq!(r.header("Content-type"), Some("image/png"));
    assert_eq!(r.body, PNG);
    let r = exchange(&mut c, &get_req("http://host/dir/pic.png?x=1"));
    assert_eq!(r.body, PNG);
    let r = exchange(&mut c, &get_req("/x.swf"));
    assert_eq!(
        r.header("Content-type"),
        Some("application/x-shockwave-flash")
    );
    assert_eq!(r.body, SWF);
    drop(c);

    let st = stats_of(&srv);
    let expect = [
        ("gif", 3),
        ("jpg", 2),
        ("ico", 2),
        ("nfe", 5),
        ("ufe", 2),
        ("txt", 2),
        ("204", 2),
        ("hed", 1),
        ("bad", 2),
        ("opt", 1),
        ("nou", 1),
        ("pth", 1),
        ("png", 2),
        ("swf", 1),
        ("err", 0),
        ("cls", 0),
        ("req", 27),
    ];
    for (name, v) in expect {
        assert_eq!(stat_in(&st, name), v, "counter {name}");
    }
}

#[test]
fn head_with_curl_does_not_hang() {
    let srv = Server::start(&[]);
    let out = std::process::Command::new("curl")
        .args(["-sS", "-I", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{}/x.png", srv.http))
        .output();
    let Ok(out) = out else {
        eprintln!("curl not available: skipped");
        return;
    };
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Content-length: 67"), "{text}");
    assert_eq!(srv.stat("hed"), 1);
}

#[test]
fn ca_crt_serves_the_created_ca() {
    let srv = Server::start(&[]);
    let r = srv.get("/ca.crt");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/x-x509-ca-cert"));
    let file = std::fs::read(srv.dir.path().join("ca.crt")).unwrap();
    assert_eq!(r.body, file);
    assert!(r.body.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert_eq!(srv.stat("txt"), 1);
}

/// A ca.crt that also holds the CA key: /ca.crt serves the certificate re-encoded from what
/// was parsed at startup, never the key or any other byte of the file.
#[test]
fn ca_crt_with_private_key_serves_the_certificate_only() {
    let first = Server::start(&[]);
    let crt = std::fs::read(first.dir.path().join("ca.crt")).unwrap();
    let key = std::fs::read(first.dir.path().join("ca.key")).unwrap();
    drop(first);
    let dir = TempDir::new("cakey");
    let junk = b"# a comment the PEM reader skips\n";
    std::fs::write(dir.path().join("ca.crt"), [&junk[..], &crt, &key].concat()).unwrap();
    std::fs::write(dir.path().join("ca.key"), key).unwrap();
    let srv = Server::start_with(Options {
        args: vec![],
        dir: Some(dir),
    });
    let mut c = srv.connect();
    let r = exchange(&mut c, &get_req("/ca.crt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, crt);
    assert!(!String::from_utf8_lossy(&r.body).contains("PRIVATE KEY"));
    // Framed exactly: the next response starts right away.
    let r = exchange(&mut c, &get_req("/x.gif"));
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert!(silent_for(&mut c, Duration::from_millis(200)));
    assert!(srv
        .log_text()
        .contains("ca.crt also contains a private key"));
}

#[test]
fn blank_lines_before_a_request_are_ignored() {
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    c.write_all(b"\r\n\r\n\n").unwrap();
    assert!(silent_for(&mut c, Duration::from_millis(300)));
    let r = exchange(&mut c, "\r\nGET /x.gif HTTP/1.1\r\n\r\n");
    assert_eq!(r.body, GIF);
    assert!(silent_for(&mut c, Duration::from_millis(200)));
    let st = stats_of(&srv);
    assert_eq!(stat_in(&st, "err"), 0);
    assert_eq!(stat_in(&st, "gif"), 1);
}

#[test]
fn pipelined_and_split_requests() {
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    c.write_all(b"GET /a.gif HTTP/1.1\r\nHost: a\r\n\r\nGET /b.png HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c).unwrap().body, GIF);
    assert_eq!(read_response(&mut c).unwrap().body, PNG);
    assert!(silent_for(&mut c, Duration::from_millis(200)));

    c.write_all(b"GET /x.gif HTTP/1.1\r\n").unwrap();
    c.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(b"Host: a.com\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).unwrap().body, GIF);
    assert!(silent_for(&mut c, Duration::from_millis(300)));
    let st = stats_of(&srv);
    assert_eq!(stat_in(&st, "bad"), 0);
    assert_eq!(stat_in(&st, "gif"), 2);
}

#[test]
fn cors_reflects_only_the_current_origin() {
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    let r = exchange(
        &mut c,
        "GET /x.js HTTP/1.1\r\nHost: a\r\nOrigin: https://www.site.com\r\n\r\n",
    );
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://www.site.com")
    );
    assert_eq!(r.header("Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(
        r.header("Access-Control-Allow-Headers"),
        Some("Origin, X-Requested-With, Content-Type, Accept, documentReferer")
    );
    let r = exchange(&mut c, &get_req("/b.js"));
    assert!(!has_cors(&r), "{}", head(&r));
    let r = exchange(&mut c, "GET /c.js HTTP/1.1\r\nOrigin: null\r\n\r\n");
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("null"));
    // Images never carry CORS.
    let r = exchange(&mut c, "GET /c.gif HTTP/1.1\r\nOrigin: http://x\r\n\r\n");
    assert!(!has_cors(&r));
    // X-Origin is another header, not Origin.
    let r = exchange(&mut c, "GET /c.js HTTP/1.1\r\nX-Origin: evil\r\n\r\n");
    assert!(!has_cors(&r));
}

#[test]
fn post_bodies_are_consumed_not_answered() {
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    let r = exchange(
        &mut c,
        "POST /track HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nOrigin: null\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("null"));
    // A body that looks like a request is still a body.
    let body = "GET /evil.png HTTP/1.1\r\n\r\n";
    let raw = format!(
        "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET /x.gif HTTP/1.1\r\n\r\n",
        body.len()
    );
    assert_text(&exchange(&mut c, &raw));
    assert_eq!(read_response(&mut c).unwrap().body, GIF);
    let raw = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
               1a\r\nGET /evil.png HTTP/1.1\r\n\r\n\r\n0\r\n\r\nGET /y.swf HTTP/1.1\r\n\r\n";
    assert_text(&exchange(&mut c, raw));
    assert_eq!(read_response(&mut c).unwrap().body, SWF);
    assert!(silent_for(&mut c, Duration::from_millis(200)));
    let st = stats_of(&srv);
    assert_eq!(stat_in(&st, "pst"), 3);
    assert_eq!(stat_in(&st, "png"), 0);
}

/// A body error is answered after the POST's own response: 413 for a chunked body over the
/// 1 MiB limit, 400 for a malformed one; either way the connection closes.
#[test]
fn bad_bodies_get_413_or_400_and_close() {
    let srv = Server::start(&[]);
    for (chunk, status) in [("200000", 413), ("zz", 400)] {
        let mut c = srv.connect();
        let raw = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}\r\n");
        c.write_all(raw.as_bytes()).unwrap();
        assert_eq!(read_response(&mut c).unwrap().status, 200);
        let r = read_response(&mut c).unwrap();
        assert_eq!(r.status, status, "{}", r.status_line);
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(closed_within(&mut c, Duration::from_secs(3)));
    }
    assert_eq!(srv.stat("bad"), 2);
}

#[test]
fn generate_204_disabled_by_dash_2() {
    let srv = Server::start(&["-2"]);
    let mut c = srv.connect();
    assert_text(&exchange(&mut c, &get_req("/generate_204")));
    assert_text(&exchange(&mut c, &get_req("/gen_204")));
    let st = stats_of(&srv);
    assert_eq!(stat_in(&st, "204"), 0);
    assert_eq!(stat_in(&st, "nfe"), 2);
}

#[test]
fn log_level_change_is_not_a_request() {
    let srv = Server::start(&[]);
    let before = stats_of(&srv);
    assert_eq!(stat_in(&before, "log"), 4);
    assert_text(&srv.get_keepalive("/log=5"));
    let after = stats_of(&srv);
    assert_eq!(stat_in(&after, "log"), 5);
    // +1: the first stats request itself.
    assert_eq!(stat_in(&after, "req"), stat_in(&before, "req") + 1);
    assert_text(&srv.get_keepalive("/log=9"));
    let last = stats_of(&srv);
    assert_eq!(stat_in(&last, "log"), 5);
    assert_eq!(stat_in(&last, "bad"), 1);
    assert_eq!(stat_in(&last, "req"), stat_in(&after, "req") + 2);
}

#[test]
fn redirects_and_no_header_injection() {
    let srv = Server::start(&["-R"]);
    let mut c = srv.connect();
    let cases = [
        (
            "/click?url=http%3A%2F%2Fwww.example.org%2Fpage%3Fa%3D1",
            "http://www.example.org/page?a=1",
        ),
        (
            "/click?url=http%253A%252F%252Fwww.example.org%252Fpage",
            "http://www.example.org/page",
        ),
        ("/c?u=http://a.com/?r=http://b.com/z", "http://b.com/z"),
        (
            "/c?u=https://secure.example.org/x?y=http",
            "https://secure.example.org/x?y=http",
        ),
    ];
    for (path, target) in cases {
        let r = exchange(&mut c, &get_req(path));
        assert_eq!(r.status_line, "HTTP/1.1 307 Temporary Redirect", "{path}");
        assert_eq!(r.header("Location"), Some(target), "{path}");
        assert_eq!(r.header("Content-length"), Some("0"));
    }
    // Upper-case scheme: no target, classified by extension.
    let r = exchange(&mut c, &get_req("/c?u=HTTP://A.COM/z.gif"));
    assert_eq!(r.status, 200);
    // A Referer equal to the target suppresses the redirect.
    let r = exchange(
        &mut c,
        "GET /click?url=http%3A%2F%2Fa.com%2Fz HTTP/1.1\r\nReferer: http://a.com/z\r\n\r\n",
    );
    assert_text(&r);
    for path in [
        "/c?u=http://a.com/%0d%0aSet-Cookie:%20x=1",
        "/c?u=http://a.com/%250d%250aSet-Cookie:%2520x=1",
        "/c?u=http%3A%2F%2Fa.com%2F%0D%0ASet-Cookie%3A%20x%3D1",
        "/c?u=http://a.com/%0aSet-Cookie:x=1",
    ] {
        let r = exchange(&mut c, &get_req(path));
        let h = head(&r);
        assert!(
            !h.to_ascii_lowercase().contains("set-cookie"),
            "{path}: {h}"
        );
        assert_eq!(h.matches("\r\n").count(), r.headers.len() + 2, "{h}");
        // Still the same framing: the connection remains usable.
        assert_eq!(exchange(&mut c, &get_req("/z.gif")).body, GIF);
    }
    let st = stats_of(&srv);
    assert_eq!(stat_in(&st, "rdr"), 4);
}

#[test]
fn admin_port_makes_admin_uris_plain_text_on_http() {
    let admin = free_port();
    let srv = Server::start(&["-A", &admin.to_string()]);
    let mut c = srv.connect();
    for p in [
        "/servstats",
        "/servstats.txt",
        "/servstats.json",
        "/metrics",
        "/log=1",
    ] {
        assert_text(&exchange(&mut c, &get_req(p)));
    }
    drop(c);
    let st = srv.stats_by_signal();
    assert_eq!(stat_in(&st, "log"), 4, "/log= must not work here");
    assert_eq!(stat_in(&st, "sta") + stat_in(&st, "stt"), 0);
    assert_eq!(stat_in(&st, "nfe"), 3); // /servstats, /metrics, /log=1 (file "/log")
    assert_eq!(stat_in(&st, "ufe"), 1); // .txt
    assert_eq!(stat_in(&st, "txt"), 1); // .json starts with .js
}

const ORIGINAL_51: &str =
    "uts log kcc kmx kvg krq req avg rmx tav tmx slh slm sle slc slu v13 v12 \
     v10 zrt uca ucb uce ush sct sch scm scp ssh ssm ssp nfe gif ico txt jpg png swf ufe opt pst \
     hed rdr nou pth 204 bad cls cly clt err";

#[test]
fn stats_pages() {
    let srv = Server::start(&[]);
    srv.get("/x.gif");
    let r = srv.get("/servstats.txt");
    assert_eq!(r.header("Content-type"), Some("text/plain"));
    let text = String::from_utf8(r.body).unwrap();
    let mut lines = text.split('\n');
    let version = lines.next().unwrap();
    assert!(version.starts_with("pixelserv-tls "), "{version}");
    assert!(version.contains(" options: "), "{version}");
    let line = lines.next().unwrap();
    assert!(line.ends_with('\r') && text.ends_with("\r\n"));
    let names: Vec<&str> = line
        .trim_end()
        .split(", ")
        .map(|i| i.split_once(' ').unwrap().1)
        .collect();
    let original: Vec<&str> = ORIGINAL_51.split_whitespace().collect();
    assert_eq!(original.len(), 51);
    assert_eq!(&names[..51], &original[..]);
    assert!(names.len() > 51);
    for extra in ["sta", "stt", "tmo"] {
        assert!(names[51..].contains(&extra), "{extra} missing");
    }

    let r = srv.get("/servstats");
    assert_eq!(r.header("Content-type"), Some("text/html"));
    let html = String::from_utf8(r.body).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<table>"));
    assert!(html.contains("<tr><td>gif</td><td>1</td><td># of GET requests for GIF</td></tr>"));
    assert!(html.ends_with("</table></body></html>\r\n"));

    let r = srv.get("/servstats.json");
    let json = String::from_utf8(r.body).unwrap();
    assert!(json.starts_with("{\"version\":\"pixelserv-tls "), "{json}");
    assert!(json.ends_with('}'));
    assert!(json.contains(",\"gif\":1,"), "{json}");
    assert!(json.contains(",\"req\":"), "{json}");
    assert!(json.contains(",\"top_names\":{"), "{json}");

    // tests/metrics.rs reads it with a Prometheus parser.
    let r = srv.get("/metrics");
    let m = String::from_utf8(r.body).unwrap();
    assert!(m.contains("# TYPE pixelserv_responses_total counter\n"));
    assert!(
        m.contains("\npixelserv_responses_total{type=\"gif\"} 1\n"),
        "{m}"
    );
}

#[test]
fn connection_close_semantics() {
    let srv = Server::start(&[]);
    // HTTP/1.0 without keep-alive.
    let mut c = srv.connect();
    let r = exchange(&mut c, "GET /x.gif HTTP/1.0\r\n\r\n");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(closed_within(&mut c, Duration::from_secs(3)));
    // Connection: close on 1.1; a request behind it is not answered.
    let mut c = srv.connect();
    let r = exchange(
        &mut c,
        "GET /x.gif HTTP/1.1\r\nConnection: close\r\n\r\nGET /y.gif HTTP/1.1\r\n\r\n",
    );
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(closed_within(&mut c, Duration::from_secs(3)));
    // HTTP/1.0 with keep-alive stays open.
    let mut c = srv.connect();
    let raw = "GET /x.gif HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    assert_eq!(
        exchange(&mut c, raw).header("Connection"),
        Some("keep-alive")
    );
    assert_eq!(exchange(&mut c, raw).body, GIF);
    let r = exchange(
        &mut c,
        "GET /x.png HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_eq!(r.body, PNG);
    assert!(silent_for(&mut c, Duration::from_millis(200)));
}

#[test]
fn oversized_head_and_garbage_are_refused() {
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    let big = format!("GET /x.gif HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(9000));
    let _ = c.write_all(big.as_bytes());
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 431);
    assert!(closed_within(&mut c, Duration::from_secs(3)));

    // The first bytes of a TLS ClientHello.
    let mut c = srv.connect();
    c.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 400);
    assert!(closed_within(&mut c, Duration::from_secs(3)));
    assert_eq!(srv.stat("bad"), 2);
    assert_eq!(srv.get("/x.gif").body, GIF);
}

#[test]
fn ten_thousand_pipelined_requests_in_order() {
    const N: usize = 10_000;
    let srv = Server::start(&[]);
    let c = srv.connect();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut all = Vec::new();
        for i in 0..N {
            let p = if i % 2 == 0 { "/a.gif" } else { "/b.png" };
            all.extend_from_slice(get_req(p).as_bytes());
        }
        w.write_all(&all).unwrap();
    });
    let mut r = BufReader::with_capacity(64 * 1024, c);
    let mut max_rss = 0;
    for i in 0..N {
        let resp = read_response(&mut r).unwrap_or_else(|e| panic!("response {i}: {e}"));
        let want = if i % 2 == 0 { GIF } else { PNG };
        assert_eq!(resp.body, want, "response {i} out of order");
        if i % 1000 == 0 {
            max_rss = max_rss.max(srv.rss_kib());
        }
    }
    writer.join().unwrap();
    max_rss = max_rss.max(srv.rss_kib());
    assert!(max_rss < 64 * 1024, "RSS {max_rss} KiB");
    assert!(silent_for(r.get_mut(), Duration::from_millis(200)));
}

#[test]
fn half_close_gets_the_response_then_eof() {
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    c.write_all(b"GET /x.gif HTTP/1.1\r\n\r\nGET /y.png HTTP/1.1\r\n\r\n")
        .unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_response(&mut c).unwrap().body, GIF);
    assert_eq!(read_response(&mut c).unwrap().body, PNG);
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn reset_mid_request_does_not_hurt_others() {
    let srv = Server::start(&[]);
    let other = srv.connect();
    for _ in 0..5 {
        let c = srv.connect();
        (&c).write_all(b"GET /x.gif HTTP/1.1\r\nHo").unwrap();
        set_linger_zero(&c);
        drop(c);
    }
    let mut other = other;
    assert_eq!(exchange(&mut other, &get_req("/x.gif")).body, GIF);
    assert_eq!(srv.get("/y.png").body, PNG);
}

#[test]
fn idle_keepalive_and_never_used_connections_time_out() {
    // Keep-alive idle time after a request; the header deadline before the first one.
    let srv = Server::start(&["-O", "1", "--header-timeout", "1"]);
    let mut c = srv.connect();
    exchange(&mut c, &get_req("/x.gif"));
    let t = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(3)));
    let idle = t.elapsed();
    assert!(idle >= Duration::from_millis(500), "closed after {idle:?}");

    let mut c = srv.connect();
    let t = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(3)));
    assert!(t.elapsed() >= Duration::from_millis(500));
    let st = stats_of(&srv);
    assert_eq!(stat_in(&st, "cls"), 1);
}

/// How long the server keeps a connection that never sends a byte, plain or TLS.
fn silent_lifetime(port: u16) -> Duration {
    let mut c = common::tls::tcp(port);
    let t = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(15)));
    t.elapsed()
}

#[test]
fn silent_connections_go_at_the_keepalive_time_when_it_is_shorter() {
    // The header (and handshake) deadline is 10 s; -O 2 must close a silent socket first.
    let srv = Server::start(&["-O", "2"]);
    for port in [srv.http, srv.https] {
        let life = silent_lifetime(port);
        assert!(
            life >= Duration::from_millis(1900) && life < Duration::from_millis(3500),
            "port {port}: {life:?}"
        );
    }
}

/// Only silence gets the shorter deadline: a TLS connection that was served and then went
/// idle keeps the keep-alive time (-O), not the header timeout.
#[test]
fn served_tls_connections_idle_for_the_keepalive_time() {
    let srv = Server::start(&["-O", "6", "--header-timeout", "1"]);
    let mut s = common::tls::tls_connect(&srv, "idle.example.com").unwrap();
    common::tls::assert_gif(&common::tls::request(&mut s, "/a.gif", false));
    std::thread::sleep(Duration::from_millis(2500));
    common::tls::assert_gif(&common::tls::request(&mut s, "/b.gif", false));
}

#[test]
fn silent_connections_get_the_header_deadline_when_keepalive_is_longer() {
    let srv = Server::start(&["-O", "30", "--header-timeout", "2"]);
    let life = silent_lifetime(srv.http);
    assert!(
        life >= Duration::from_millis(1900) && life < Duration::from_millis(3500),
        "{life:?}"
    );
}

#[test]
fn slowloris_is_cut_at_the_header_deadline() {
    let srv = Server::start(&["--header-timeout", "1"]);
    let mut c = srv.connect();
    let req = b"GET /x.gif HTTP/1.1\r\nHost: slow.example\r\nUser-Agent: drip\r\n\r\n";
    let start = Instant::now();
    let mut closed_at = None;
    for b in req.iter() {
        let _ = c.write_all(&[*b]);
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 256];
        match c.read(&mut buf) {
            Ok(0) => {
                closed_at = Some(start.elapsed());
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed_at = Some(start.elapsed());
                break;
            }
            Err(_) => {}
        }
        if start.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let at = closed_at.expect("slow client was never cut off");
    assert!(
        at >= Duration::from_millis(700) && at < Duration::from_millis(3500),
        "{at:?}"
    );
    assert!(srv.stat("tmo") >= 1);
}

#[test]
fn a_client_that_never_reads_is_cut_by_the_write_deadline() {
    let srv = Server::start(&["--write-timeout", "1"]);
    let hog = srv.connect();
    let mut w = hog.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let all = get_req("/servstats").repeat(2000);
        let _ = w.write_all(all.as_bytes());
    });
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let t = Instant::now();
        assert_eq!(srv.get("/x.gif").body, GIF);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    let tmo = srv.wait_stat_until("tmo", |v| v >= 1, Duration::from_secs(6));
    assert!(tmo >= 1, "the hog was not cut off");
    writer.join().unwrap();
    drop(hog);
    assert_eq!(srv.get("/y.png").body, PNG);
}

/// At `-T` busy connections are never dropped: a new client waits in the kernel backlog
/// until one is done. Once one is idle between requests, it is closed (`clt`) to admit the
/// waiting client (nginx's reusable connections) instead of holding the slot for `-O`.
#[test]
fn connection_limit_queues_then_reuses_idle_slots() {
    let srv = Server::start(&["-T", "3"]);
    // Three connections in the middle of a request head: busy, not reusable.
    let mut busy: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut c = srv.connect();
            c.write_all(b"GET /x.gif HTTP/1.1\r\nHost: a\r\n").unwrap();
            c
        })
        .collect();
    let mut fourth = srv.connect();
    fourth.write_all(get_req("/y.png").as_bytes()).unwrap();
    assert!(silent_for(&mut fourth, Duration::from_millis(700)));
    // One finishes its request and is idle now: it makes room for the fourth.
    busy[0].write_all(b"\r\n").unwrap();
    assert_eq!(read_response(&mut busy[0]).unwrap().body, GIF);
    fourth
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    assert_eq!(read_response(&mut fourth).unwrap().body, PNG);
    assert!(closed_within(&mut busy[0], Duration::from_secs(3)));
    // The other two were never touched.
    for c in &mut busy[1..] {
        c.write_all(b"\r\n").unwrap();
        assert_eq!(read_response(c).unwrap().body, GIF);
    }
    drop(fourth);
    drop(busy);
    assert_eq!(
        srv.wait_stat_until("kcc", |v| v == 1, Duration::from_secs(5)),
        1
    );
    let st = stats_of(&srv);
    assert!(stat_in(&st, "clt") >= 1, "{st:?}");
    assert_eq!(stat_in(&st, "kmx"), 3);
    assert_eq!(stat_in(&st, "png"), 1);
    assert_eq!(stat_in(&st, "gif"), 3);
}

/// More pipelined requests in one write than fit under the unsent-response limit: after
/// the first 64 KiB of responses drain, the rest must be answered without the client
/// sending anything more (no readiness edge announces bytes already buffered).
#[test]
fn buffered_pipeline_beyond_the_write_limit_is_answered() {
    let srv = Server::start(&[]);
    let mut s = srv.connect();
    let one = "GET /a.gif HTTP/1.1\r\nHost: t\r\n\r\n";
    let n = 14 * 1024 / one.len();
    s.write_all(one.repeat(n).as_bytes()).unwrap();
    for i in 0..n {
        let r = read_response(&mut s).unwrap_or_else(|e| panic!("response {i} of {n}: {e}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 42);
    }
}

/// At level 4 a POST body follows its access line as `[body]` (COMPATIBILITY.md §9.2),
/// chunked too; a binary body is not dumped.
#[test]
fn post_bodies_are_logged_at_level_4() {
    let srv = Server::start(&[]);
    let mut s = srv.connect();
    let r = exchange(
        &mut s,
        "POST /t HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello=world",
    );
    assert_eq!(r.status, 200);
    let r = exchange(
        &mut s,
        "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let r = exchange(
        &mut s,
        "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n\x01\x02\x03",
    );
    assert_eq!(r.status, 200);
    // The body line is logged once the body has been read: a later request proves it was.
    assert_eq!(exchange(&mut s, &get_req("/x.gif")).status, 200);
    assert!(
        srv.wait_log("[hello=world]", Duration::from_secs(5)),
        "{}",
        srv.log_text()
    );
    assert!(
        srv.wait_log("[abcde]", Duration::from_secs(5)),
        "{}",
        srv.log_text()
    );
    assert!(srv.wait_log("[-binary POST content not dumped-]", Duration::from_secs(5)));
}
