//! TLS client helpers shared by the integration tests: verified connections against the
//! test's CA, raw ClientHello records for hostile input, certificate files.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::nid::Nid;
use openssl::ssl::{SslConnector, SslMethod, SslStream};
use openssl::x509::X509;

use super::{read_response, Response, Server};

pub const T: Duration = Duration::from_secs(10);

pub fn ca_file(srv: &Server) -> PathBuf {
    srv.dir.path().join("ca.crt")
}

pub fn connector(ca: &Path) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(ca).unwrap();
    b.build()
}

pub fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.set_write_timeout(Some(T)).unwrap();
    s
}

/// A verified TLS connection to `name` (SNI + host name check against the test's CA).
pub fn tls_connect(srv: &Server, name: &str) -> Result<SslStream<TcpStream>, String> {
    connector(&ca_file(srv))
        .connect(name, tcp(srv.https))
        .map_err(|e| format!("{name}: {e}"))
}

pub fn request(s: &mut SslStream<TcpStream>, path: &str, close: bool) -> Response {
    let conn = if close { "Connection: close\r\n" } else { "" };
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{conn}\r\n").unwrap();
    read_response(s).expect("response")
}

pub fn https_get(srv: &Server, name: &str, path: &str) -> Result<Response, String> {
    let mut s = tls_connect(srv, name)?;
    Ok(request(&mut s, path, true))
}

pub fn assert_gif(r: &Response) {
    assert_eq!(r.status, 200, "{}", r.status_line);
    assert_eq!(r.header("Content-type"), Some("image/gif"));
    assert_eq!(r.body.len(), 42);
}

pub fn load_cert(path: &Path) -> X509 {
    X509::from_pem(&std::fs::read(path).unwrap()).unwrap()
}

pub fn cn(cert: &X509) -> String {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
        .unwrap_or_default()
}

/// Certificate files (everything but our own files) in CERT_PATH.
pub fn cert_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !matches!(
                n.as_str(),
                "ca.crt" | "ca.key" | "ca.key.passphrase" | "prefetch"
            )
        })
        .collect();
    v.sort();
    v
}

pub fn ext(ty: u16, body: &[u8]) -> Vec<u8> {
    let mut v = ty.to_be_bytes().to_vec();
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A server_name extension body holding these host_name entries.
pub fn sni_body(names: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for n in names {
        list.push(0);
        list.extend_from_slice(&(n.len() as u16).to_be_bytes());
        list.extend_from_slice(n);
    }
    let mut v = (list.len() as u16).to_be_bytes().to_vec();
    v.extend(list);
    v
}

/// A TLS 1.2/1.3 ClientHello record whose server_name extension body is `sni`.
pub fn client_hello(sni: Option<&[u8]>) -> Vec<u8> {
    records(&hello_message(sni, &[]), 16384)
}

/// The ClientHello handshake message: `sni` as the server_name extension body, then the
/// raw extensions `extra` (for padding and the like).
pub fn hello_message(sni: Option<&[u8]>, extra: &[u8]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    body.push(32);
    body.extend([7u8; 32]);
    let suites: [u16; 5] = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend([1, 0]);
    let mut exts = Vec::new();
    if let Some(sni) = sni {
        exts.extend(ext(0, sni));
    }
    exts.extend(ext(10, &[0, 4, 0x00, 0x1d, 0x00, 0x17]));
    exts.extend(ext(11, &[1, 0]));
    exts.extend(ext(13, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]));
    exts.extend(ext(43, &[4, 0x03, 0x04, 0x03, 0x03]));
    let mut ks = vec![0, 36, 0x00, 0x1d, 0, 32];
    ks.extend([9u8; 32]);
    exts.extend(ext(51, &ks));
    exts.extend_from_slice(extra);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    hs
}

/// Handshake bytes cut into handshake records of at most `max` bytes each.
pub fn records(hs: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in hs.chunks(max) {
        out.extend([0x16, 0x03, 0x01]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}
