//! The ClientHello callback and the per-connection state it shares with the loop.
//!
//! The callback reads the SNI extension itself (`servername()` is not set yet at that
//! point), maps it to a certificate name and looks in the in-memory cache. On a hit it
//! switches the connection to that certificate's context and the handshake goes on. On a
//! miss it returns RETRY: OpenSSL reports WANT_CLIENT_HELLO_CB, the loop parks the
//! connection and asks a worker, and when the certificate arrives the loop stores it here
//! and drives the handshake again, which calls the callback again.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{ClientHelloResponse, ErrorCode, Ssl, SslAlert, SslRef};

use super::certs::{Certs, Leaf};
use super::names::{self, CertName};
use super::psl::Psl;
use super::sni;
use crate::server::transport::Transport;
use crate::stats::Counter;

/// Names in log lines are cut like the original's (64 bytes).
const LOG_NAME_MAX: usize = 64;
const TLSEXT_TYPE_SERVER_NAME: libc::c_uint = 0;
const SSL_R_SSLV3_ALERT_BAD_CERTIFICATE: i32 = 1042;
const SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN: i32 = 1046;
const SSL_R_TLSV1_ALERT_UNKNOWN_CA: i32 = 1048;
const SSL_R_UNEXPECTED_EOF_WHILE_READING: i32 = 294;

/// What the loop must look up after the callback asked for a retry.
pub enum Lookup {
    Name(CertName),
    /// No SNI: the certificate is for the local address the client connected to.
    NoSni,
}

#[derive(Default)]
enum Phase {
    #[default]
    Fresh,
    Lookup(Lookup),
    /// Parked until the worker for this certificate file reports.
    Waiting(String),
    Install(Leaf),
    Refuse(Counter),
    Invalid,
    /// A certificate is installed; the handshake goes on.
    Served,
}

#[derive(Default)]
pub struct Hello {
    phase: Phase,
    /// The SNI as received (cut, escaped) for log lines.
    sni: String,
}

fn index() -> Index<Ssl, Mutex<Hello>> {
    static INDEX: OnceLock<Index<Ssl, Mutex<Hello>>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

/// Gives a new connection its (empty) hello state.
pub fn attach(ssl: &mut SslRef) -> Result<(), ErrorStack> {
    ssl.set_ex_data(index(), Mutex::new(Hello::default()));
    Ok(())
}

/// Empties the hello state once the handshake is done (the SNI copy kept for log lines, any
/// context): nothing reads it afterwards, and an idle keep-alive connection should not carry
/// it. The slot itself stays, owned by OpenSSL until the connection is freed.
pub fn release(t: &mut Transport) {
    with(t, |h| *h = Hello::default());
}

fn state(ssl: &SslRef) -> Option<MutexGuard<'_, Hello>> {
    ssl.ex_data(index())
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

fn with<R>(t: &Transport, f: impl FnOnce(&mut Hello) -> R) -> Option<R> {
    match t {
        Transport::Tls(s) => state(s.ssl()).map(|mut h| f(&mut h)),
        Transport::Plain(_) => None,
    }
}

/// The raw bytes of a ClientHello extension, read inside the callback.
fn client_hello_ext(ssl: &SslRef, ty: libc::c_uint) -> Option<&[u8]> {
    let mut out: *const u8 = std::ptr::null();
    let mut len: usize = 0;
    // SAFETY: `&SslRef` is the `SSL*` itself (foreign-types opaque reference); OpenSSL
    // returns a pointer into the ClientHello it keeps alive for the callback's duration,
    // which the returned slice's lifetime (tied to `ssl`) does not exceed.
    unsafe {
        let raw = ssl as *const SslRef as *mut openssl_sys::SSL;
        if openssl_sys::SSL_client_hello_get0_ext(raw, ty, &mut out, &mut len) != 1 || out.is_null()
        {
            return None;
        }
        Some(std::slice::from_raw_parts(out, len))
    }
}

/// Builds the callback installed on the server context.
pub fn callback(
    certs: Arc<Mutex<Certs>>,
    psl: Arc<Psl>,
) -> impl Fn(&mut SslRef, &mut SslAlert) -> Result<ClientHelloResponse, ErrorStack> + Send + Sync + 'static
{
    move |ssl, alert| {
        let phase = match state(ssl) {
            Some(mut h) => std::mem::take(&mut h.phase),
            None => {
                *alert = SslAlert::INTERNAL_ERROR;
                return Err(ErrorStack::get());
            }
        };
        let set = |ssl: &SslRef, phase: Phase| {
            if let Some(mut h) = state(ssl) {
                h.phase = phase;
            }
        };
        match phase {
            Phase::Install(leaf) => {
                use_leaf(ssl, &leaf)?;
                set(ssl, Phase::Served);
                return Ok(ClientHelloResponse::SUCCESS);
            }
            Phase::Refuse(c) => {
                set(ssl, Phase::Refuse(c));
                *alert = SslAlert::INTERNAL_ERROR;
                return Err(ErrorStack::get());
            }
            _ => {}
        }
        let raw = match client_hello_ext(ssl, TLSEXT_TYPE_SERVER_NAME).map(sni::server_name) {
            None | Some(Ok(None)) => {
                set(ssl, Phase::Lookup(Lookup::NoSni));
                return Ok(ClientHelloResponse::RETRY);
            }
            Some(Ok(Some(raw))) => raw.to_vec(),
            Some(Err(_)) => {
                set(ssl, Phase::Invalid);
                *alert = SslAlert::DECODE_ERROR;
                return Err(ErrorStack::get());
            }
        };
        if let Some(mut h) = state(ssl) {
            h.sni = crate::log::escape(&raw[..raw.len().min(LOG_NAME_MAX)]);
        }
        let name = match names::cert_name(&raw, &psl) {
            Ok(name) => name,
            Err(_) => {
                set(ssl, Phase::Invalid);
                *alert = SslAlert::UNRECOGNIZED_NAME;
                return Err(ErrorStack::get());
            }
        };
        let cached = certs.lock().ok().and_then(|mut c| c.get(name.file_name()));
        match cached {
            Some(leaf) => {
                use_leaf(ssl, &leaf)?;
                set(ssl, Phase::Served);
                Ok(ClientHelloResponse::SUCCESS)
            }
            None => {
                set(ssl, Phase::Lookup(Lookup::Name(name)));
                Ok(ClientHelloResponse::RETRY)
            }
        }
    }
}

/// Serves `leaf` on this connection. Installing the certificate per connection costs a few
/// microseconds of a ~350 µs handshake; a context per certificate instead cost ~27 kB of
/// memory per cached certificate (13 MB for the default 500) and ~0.2 ms to build.
fn use_leaf(ssl: &mut SslRef, leaf: &Leaf) -> Result<(), ErrorStack> {
    ssl.set_certificate(&leaf.cert)?;
    ssl.set_private_key(&leaf.key)
}

/// After WANT_CLIENT_HELLO_CB: what the loop has to find.
pub fn lookup(t: &Transport) -> Option<Lookup> {
    with(t, |h| match std::mem::take(&mut h.phase) {
        Phase::Lookup(l) => Some(l),
        other => {
            h.phase = other;
            None
        }
    })
    .flatten()
}

pub fn set_waiting(t: &Transport, file: &str) {
    with(t, |h| h.phase = Phase::Waiting(file.to_string()));
}

pub fn waiting_for(t: &Transport) -> Option<String> {
    with(t, |h| match &h.phase {
        Phase::Waiting(f) => Some(f.clone()),
        _ => None,
    })
    .flatten()
}

pub fn install(t: &Transport, leaf: Leaf) {
    with(t, |h| h.phase = Phase::Install(leaf));
}

/// Fails the handshake at the next callback, counting `counter` (`slm`, `sle`..).
pub fn refuse(t: &Transport, counter: Counter) {
    with(t, |h| h.phase = Phase::Refuse(counter));
}

/// The SNI for log lines ("" when none was sent).
pub fn server_name(t: &Transport) -> String {
    with(t, |h| h.sni.clone()).unwrap_or_default()
}

/// Classifies a failed handshake as reference §6.5: the main counter (`slm`/`sle`/`slu`)
/// and the detail (`uca`/`ucb`/`uce`/`ush`/`snx`).
pub fn classify_failure(t: &Transport, e: &openssl::ssl::Error) -> (Counter, Option<Counter>) {
    let served = match with(t, |h| match h.phase {
        Phase::Refuse(c) => Err((c, None)),
        Phase::Invalid => Err((Counter::Slu, Some(Counter::Snx))),
        Phase::Served => Ok(true),
        _ => Ok(false),
    }) {
        Some(Err(result)) => return result,
        Some(Ok(served)) => served,
        None => false,
    };
    let reason = e
        .ssl_error()
        .and_then(|s| s.errors().first())
        .map(|err| err.reason_code());
    let detail = match reason {
        Some(SSL_R_TLSV1_ALERT_UNKNOWN_CA) => Some(Counter::Uca),
        Some(SSL_R_SSLV3_ALERT_BAD_CERTIFICATE) => Some(Counter::Ucb),
        Some(SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN) => Some(Counter::Uce),
        // The client hung up after our ServerHello instead of sending an alert.
        Some(SSL_R_UNEXPECTED_EOF_WHILE_READING) if served => Some(Counter::Ush),
        _ if served && matches!(e.code(), ErrorCode::SYSCALL | ErrorCode::ZERO_RETURN) => {
            Some(Counter::Ush)
        }
        _ => None,
    };
    (Counter::Slu, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ssl::{SslContext, SslMethod, SslStream};

    fn transport() -> Transport {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let ctx = SslContext::builder(SslMethod::tls_server())
            .unwrap()
            .build();
        let mut ssl = Ssl::new(&ctx).unwrap();
        attach(&mut ssl).unwrap();
        let stream = SslStream::new(ssl, mio::net::TcpStream::from_std(tcp)).unwrap();
        Transport::Tls(stream)
    }

    #[test]
    fn state_round_trips_until_released() {
        let mut t = transport();
        set_waiting(&t, "_.example.com");
        assert_eq!(waiting_for(&t).as_deref(), Some("_.example.com"));
        release(&mut t);
        assert_eq!(waiting_for(&t), None);
        assert_eq!(server_name(&t), "");
        assert!(lookup(&t).is_none());
        // Twice is harmless, and so is using the released state.
        release(&mut t);
        refuse(&t, Counter::Slm);
        assert_eq!(waiting_for(&t), None);
    }

    #[test]
    fn plain_transport_has_no_state() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut t = Transport::Plain(mio::net::TcpStream::from_std(tcp));
        release(&mut t);
        assert_eq!(waiting_for(&t), None);
        assert_eq!(server_name(&t), "");
    }
}
