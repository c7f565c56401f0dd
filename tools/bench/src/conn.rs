//! Client connections: plain or TLS, one request at a time, responses framed by Content-Length.

use openssl::pkey::Id;
use openssl::ssl::{
    SslConnector, SslMethod, SslMode, SslRef, SslSession, SslSessionCacheMode, SslStream,
    SslVerifyMode, SslVersion,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Conn {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(b),
            Conn::Tls(s) => s.read(b),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(b),
            Conn::Tls(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

pub fn request(host: &str) -> Vec<u8> {
    format!("GET /pixel.gif HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pixelserv-bench\r\n\r\n")
        .into_bytes()
}

pub fn tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Reads one response (head, then Content-Length bytes of body); returns the status code.
pub fn read_response<S: Read>(s: &mut S) -> io::Result<u16> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::other("response head too long"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other("bad status line"))?;
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - head_end;
    while have < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
    }
    Ok(status)
}

/// One request/response exchange on an open connection.
pub fn exchange(c: &mut Conn, req: &[u8]) -> io::Result<u16> {
    c.write_all(req)?;
    read_response(c)
}

/// TLS client settings for load: no verification (the client's core is the scarce one),
/// no automatic session reuse, small per-connection memory.
pub fn load_connector(max: Option<SslVersion>) -> Result<SslConnector, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_verify(SslVerifyMode::NONE);
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    b.set_mode(SslMode::RELEASE_BUFFERS);
    b.set_max_proto_version(max).map_err(|e| e.to_string())?;
    Ok(b.build())
}

/// TLS client settings that check the chain against the server's CA and the name.
pub fn verifying_connector(cacert: &Path) -> Result<SslConnector, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_ca_file(cacert)
        .map_err(|e| format!("{}: {e}", cacert.display()))?;
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    Ok(b.build())
}

/// Opens a TLS connection for SNI `name`, resuming the DER `session` when given.
pub fn tls(
    c: &SslConnector,
    addr: SocketAddr,
    name: &str,
    session: Option<&[u8]>,
) -> Result<Conn, String> {
    let sock = tcp(addr).map_err(|e| format!("connect: {e}"))?;
    tls_over(c, sock, name, session).map(|s| Conn::Tls(Box::new(s)))
}

/// A TLS handshake for SNI `name` over `sock`, resuming the DER `session` when given.
pub fn tls_over<S: Read + Write + std::fmt::Debug>(
    c: &SslConnector,
    sock: S,
    name: &str,
    session: Option<&[u8]>,
) -> Result<SslStream<S>, String> {
    let mut ssl = c
        .configure()
        .and_then(|cf| cf.into_ssl(name))
        .map_err(|e| e.to_string())?;
    if let Some(der) = session {
        let s = SslSession::from_der(der).map_err(|e| e.to_string())?;
        // SAFETY: every session passed here came from a connection made with this connector's
        // own context (each figure keeps its sessions with the connector that made them).
        unsafe { ssl.set_session(&s) }.map_err(|e| e.to_string())?;
    }
    ssl.connect(sock).map_err(|e| format!("handshake: {e}"))
}

pub fn plain(addr: SocketAddr) -> Result<Conn, String> {
    tcp(addr)
        .map(Conn::Plain)
        .map_err(|e| format!("connect: {e}"))
}

/// A first visit: fresh connection, handshake, one GET; returns its latency.
pub fn visit(c: &SslConnector, addr: SocketAddr, name: &str) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut conn = tls(c, addr, name, None)?;
    match exchange(&mut conn, &request(name)) {
        Ok(200..=299) => Ok(t0.elapsed()),
        Ok(s) => Err(format!("status {s}")),
        Err(e) => Err(format!("response: {e}")),
    }
}

/// Describes the negotiated protocol and leaf key of a verified visit (for the notes).
pub fn describe(c: &SslConnector, addr: SocketAddr, name: &str) -> Result<String, String> {
    let conn = tls(c, addr, name, None)?;
    let Conn::Tls(s) = &conn else {
        return Err("not TLS".into());
    };
    let key = s
        .ssl()
        .peer_certificate()
        .and_then(|c| c.public_key().ok())
        .map(|k| match k.id() {
            Id::EC => "ECDSA",
            Id::RSA => "RSA",
            _ => "other",
        })
        .unwrap_or("none");
    Ok(format!("{} {key} leaf", s.ssl().version_str()))
}

/// The session to resume next time (for TLS 1.3 the latest ticket's) and whether this one was.
pub fn session(c: &Conn) -> (Option<Vec<u8>>, bool) {
    match c {
        Conn::Tls(s) => session_of(s.ssl()),
        Conn::Plain(_) => (None, false),
    }
}

/// Kept as DER, a copy: closing a connection without a recorded shutdown marks its live
/// session object not resumable (OpenSSL's ssl_clear_bad_session).
pub fn session_of(ssl: &SslRef) -> (Option<Vec<u8>>, bool) {
    (
        ssl.session().and_then(|s| s.to_der().ok()),
        ssl.session_reused(),
    )
}

/// The DER of the leaf certificate served for SNI `name` (not verified).
pub fn served_leaf(addr: SocketAddr, name: &str) -> Result<Vec<u8>, String> {
    let c = load_connector(None)?;
    let conn = tls(&c, addr, name, None)?;
    let Conn::Tls(s) = &conn else {
        return Err("not TLS".into());
    };
    s.ssl()
        .peer_certificate()
        .ok_or("no certificate served")?
        .to_der()
        .map_err(|e| e.to_string())
}

/// The body of a plain-HTTP GET of `path` (the connection is closed after it).
pub fn get_body(addr: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    let mut s = tcp(addr).map_err(|e| format!("connect: {e}"))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(|e| e.to_string())?;
    let at = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no response head")?;
    Ok(all[at + 4..].to_vec())
}
