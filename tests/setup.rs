//! The setup page (issue 20) against the real binary: it appears at the server's own
//! address only, blocked names keep the exact bytes they got before it existed, and its live
//! check works with real clients (curl, the openssl command).
mod common;
use common::tls::ca_file;
use common::*;

use std::io::{Read, Write};
use std::process::Command;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// Requests and the exact bytes main answered before the setup page existed (captured from
/// the binary built at 94884e0 over plain HTTP, each on its own connection read to EOF).
/// `{UA}` stands for `IPHONE`.
const BEFORE: [(&str, &str); 7] = [
    (
        "GET / HTTP/1.1\r\nHost: ads.example.com\r\nUser-Agent: {UA}\r\nAccept: text/html\r\n\r\n\
         GET / HTTP/1.1\r\nHost: ads.example.com\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: keep-alive\r\n\
         Content-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n\
         Connection: close\r\nContent-Length: 0\r\n\r\n",
    ),
    (
        "HEAD / HTTP/1.1\r\nHost: ads.example.com\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: close\r\n\
         Content-Length: 0\r\n\r\n",
    ),
    (
        "GET / HTTP/1.1\r\nHost: ads.example.com\r\nOrigin: https://www.example.org\r\n\
         Connection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: close\r\n\
         Content-Length: 0\r\nAccess-Control-Allow-Origin: https://www.example.org\r\n\
         Access-Control-Allow-Credentials: true\r\nAccess-Control-Allow-Headers: Origin, \
         X-Requested-With, Content-Type, Accept, documentReferer\r\n\r\n",
    ),
    (
        "GET / HTTP/1.0\r\nHost: ads.example.com:80\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: close\r\n\
         Content-Length: 0\r\n\r\n",
    ),
    // Absolute form names the host (RFC 9112 §3.2.2), whatever Host says.
    (
        "GET http://ads.example.com/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: close\r\n\
         Content-Length: 0\r\n\r\n",
    ),
    // An address that is not ours.
    (
        "GET / HTTP/1.1\r\nHost: 10.9.8.7\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: close\r\n\
         Content-Length: 0\r\n\r\n",
    ),
    // Ours, but not `/`.
    (
        "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: close\r\n\
         Content-Length: 0\r\n\r\n",
    ),
];

fn raw_exchange(srv: &Server, request: &str) -> Vec<u8> {
    let mut s = srv.connect();
    s.write_all(request.replace("{UA}", IPHONE).as_bytes())
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

fn body_text(r: &Response) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

fn page(srv: &Server, host: &str, user_agent: &str) -> Response {
    let mut s = srv.connect();
    exchange(
        &mut s,
        &format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n\r\n"),
    )
}

/// `openssl x509 -fingerprint -sha256 -noout` of the server's ca.crt, after the `=`.
fn openssl_fingerprint(srv: &Server) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-fingerprint", "-sha256", "-noout", "-in"])
        .arg(ca_file(srv))
        .output()
        .expect("openssl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (_, fp) = text.trim().split_once('=').expect("fingerprint line");
    fp.to_string()
}

fn curl(args: &[&str]) -> (Option<i32>, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    (out.status.code(), out.stdout)
}

#[test]
fn blocked_names_keep_todays_bytes() {
    let srv = Server::start(&["--setup-host", "pixelserv.lan"]);
    for (request, before) in BEFORE {
        let got = raw_exchange(&srv, request);
        assert_eq!(String::from_utf8_lossy(&got), before, "request {request:?}");
    }
    // Over TLS the same: a blocked name's `/` is the empty answer.
    let mut s = common::tls::tls_connect(&srv, "ads.example.com").unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: ads.example.com\r\nUser-Agent: {IPHONE}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    // Captured like the others, over TLS with SNI ads.example.com.
    assert_eq!(
        String::from_utf8_lossy(&got),
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: close\r\n\
         Content-Length: 0\r\n\r\n"
    );
}

#[test]
fn the_page_at_our_address() {
    let srv = Server::start(&[]);
    let before = srv.stat("nfe");
    let host = format!("127.0.0.1:{}", srv.http);
    let r = page(&srv, &host, IPHONE);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    let body = body_text(&r);
    let fp = openssl_fingerprint(&srv);
    assert!(body.contains(&format!("<code id=fp>{fp}</code>")), "{body}");
    assert!(body.contains("<b>Pixelserv CA "));
    assert!(body.contains("href=\"/ca.crt\""));
    assert!(body.contains(&format!("data-port=\"{}\"", srv.https)));
    assert!(body.contains("<h2>Steps for this device</h2>\n<details open id=ios>"));
    assert!(body.contains("Certificate Trust Settings"));
    assert!(!body.contains("{{"));
    // Still counted as before (an empty `/` was `nfe`).
    assert_eq!(srv.wait_stat("nfe", tls::T, |n| n > before), before + 1);

    // curl, a real client, with its own Host and User-Agent; no platform: all folded.
    let (code, out) = curl(&[&format!("http://127.0.0.1:{}/", srv.http)]);
    assert_eq!(code, Some(0));
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("<h2>Steps for each device</h2>\n<details id=ios>"));
    assert!(out.contains(&fp));

    // HEAD: the same head, no body.
    let mut s = srv.connect();
    s.write_all(
        format!("HEAD / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {IPHONE}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let h = read_response_opts(&mut s, true).unwrap();
    assert_eq!(h.head_raw, r.head_raw);
    // The connection goes on.
    let again = exchange(&mut s, &get_req("/x.gif"));
    assert_eq!(again.header("Content-type"), Some("image/gif"));
}

#[test]
fn the_live_check_verifies_for_the_ip_address() {
    let srv = Server::start(&[]);
    let ca = ca_file(&srv);
    // What the page loads: no SNI for an IP literal, so the certificate must carry the
    // address as an IP SAN; curl checks it against the CA.
    let url = format!(
        "https://127.0.0.1:{}/pixelserv-check.gif?1730000000000x",
        srv.https
    );
    let (code, gif) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
    assert_eq!(code, Some(0));
    assert_eq!(gif, include_bytes!("../include-docs/assets/pixel.gif"));
    // Without the CA it fails on the certificate (curl's 60).
    let (code, _) = curl(&["--capath", "/nonexistent", "--cacert", "/dev/null", &url]);
    assert_ne!(code, Some(0));
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(srv.dir.path().join("127.0.0.1"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("IP Address:127.0.0.1"));
}

#[test]
fn setup_host_and_the_admin_port() {
    let admin = free_port();
    let admin_arg = admin.to_string();
    let srv = Server::start(&["--setup-host", "Pixelserv.LAN", "-A", &admin_arg]);
    // Not admin-only: the page is on the normal port, and its check uses the -k port.
    let r = page(
        &srv,
        "pixelserv.lan",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8)",
    );
    assert_eq!(r.status, 200);
    let body = body_text(&r);
    assert!(body.contains(&format!("data-port=\"{}\"", srv.https)));
    assert!(body.contains("<details open id=android>"));
    assert!(body.contains("opt in"));
    let r = page(&srv, "pixelserv.lan.:80", "x");
    assert!(body_text(&r).contains("<h2>Steps for each device</h2>"));
    for host in ["ads.example.com", "pixelserv.lan.example.com", "10.9.8.7"] {
        let r = page(&srv, host, IPHONE);
        assert_eq!(r.header("Content-Length"), Some("0"), "{host}");
    }
    // The live check from http://pixelserv.lan/ sends the name as SNI: an exact
    // certificate for it (a single-label suffix is public), verified by curl.
    let ca = ca_file(&srv);
    let resolve = format!("pixelserv.lan:{}:127.0.0.1", srv.https);
    let url = format!(
        "https://pixelserv.lan:{}/pixelserv-check.gif?17x",
        srv.https
    );
    let (code, gif) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(gif.len(), 42);
}
