//! The ClientHello callback and the per-connection state it shares with the loop.
//!
//! The callback reads the SNI extension itself (`servername()` is not set yet at that
//! point), maps it to a certificate name and looks in the in-memory cache. On a hit it
//! installs that certificate on the connection and the handshake goes on. On a miss it
//! records what it needs and returns RETRY: OpenSSL reports WANT_CLIENT_HELLO_CB, the loop
//! takes the lookup (`take_lookup`), parks the connection (`tls::pending`) and asks a worker;
//! when the certificate arrives the loop hands it over (`install`) and drives the handshake
//! again, which calls the callback again.
//!
//! The state lives in OpenSSL's per-connection ex_data because the callback can reach
//! nothing else; every function here takes the connection's `SslRef`.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{ClientHelloResponse, ErrorCode, Ssl, SslAlert, SslRef};

use super::certs::{Certs, Leaf};
use super::names::{self, CertName};
use super::psl::Psl;
use super::sni;
use crate::stats::HandshakeFailure;
use crate::top_names::{self, Observed};

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
    /// The callback asked for a retry; the loop takes this and finds the certificate.
    Lookup(Lookup),
    /// The loop found it: the callback installs it when called again.
    Install(Leaf),
    /// The loop found none: the callback fails the handshake, counted as this.
    Refuse(HandshakeFailure),
    /// The SNI was unusable: the callback failed the handshake.
    Invalid,
    /// A certificate is installed; the handshake goes on.
    Served,
}

#[derive(Default)]
pub struct Hello {
    phase: Phase,
    /// The SNI as received (cut, escaped) for log lines.
    sni: String,
    /// The SNI for the most requested names, until the loop takes it (`take_name`).
    observed: Option<Observed>,
}

/// The `Mutex` is only there because ex_data must be `Sync`: the callback and the loop run on
/// the same thread, one after the other, so it is never contended.
fn index() -> Index<Ssl, Mutex<Hello>> {
    static INDEX: OnceLock<Index<Ssl, Mutex<Hello>>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

/// Gives a new connection its (empty) hello state.
pub fn attach(ssl: &mut SslRef) {
    ssl.set_ex_data(index(), Mutex::new(Hello::default()));
}

/// Empties the hello state once the handshake is done (the SNI copy kept for log lines, a
/// leaf not yet installed): nothing reads it afterwards, and an idle keep-alive connection
/// should not carry it. The slot itself stays, owned by OpenSSL until the connection is freed.
pub fn release(ssl: &SslRef) {
    with(ssl, |h| *h = Hello::default());
}

fn state(ssl: &SslRef) -> Option<MutexGuard<'_, Hello>> {
    ssl.ex_data(index())
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

fn with<R>(ssl: &SslRef, f: impl FnOnce(&mut Hello) -> R) -> Option<R> {
    state(ssl).map(|mut h| f(&mut h))
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
            Phase::Refuse(why) => {
                set(ssl, Phase::Refuse(why));
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
                with(ssl, |h| h.observed = Some(Observed::Invalid));
                set(ssl, Phase::Invalid);
                *alert = SslAlert::DECODE_ERROR;
                return Err(ErrorStack::get());
            }
        };
        if let Some(mut h) = state(ssl) {
            h.sni = crate::log::escape(&raw[..raw.len().min(LOG_NAME_MAX)]);
            h.observed = Some(top_names::from_sni(&raw));
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
pub fn take_lookup(ssl: &SslRef) -> Option<Lookup> {
    with(ssl, |h| match std::mem::take(&mut h.phase) {
        Phase::Lookup(l) => Some(l),
        other => {
            h.phase = other;
            None
        }
    })
    .flatten()
}

/// The certificate the loop found: installed when the handshake is driven again.
pub fn install(ssl: &SslRef, leaf: Leaf) {
    with(ssl, |h| h.phase = Phase::Install(leaf));
}

/// No certificate: the handshake fails when it is driven again, counted as `why`.
pub fn refuse(ssl: &SslRef, why: HandshakeFailure) {
    with(ssl, |h| h.phase = Phase::Refuse(why));
}

/// The SNI the client sent, judged, once per connection: `None` when it sent none or it
/// was taken before.
pub fn take_name(ssl: &SslRef) -> Option<Observed> {
    with(ssl, |h| h.observed.take()).flatten()
}

/// Whether the callback has seen this connection's ClientHello (false for a client that has
/// not finished sending one).
pub fn seen(ssl: &SslRef) -> bool {
    with(ssl, |h| !matches!(h.phase, Phase::Fresh)).unwrap_or(true)
}

/// The SNI for log lines ("" when none was sent).
pub fn server_name(ssl: &SslRef) -> String {
    with(ssl, |h| h.sni.clone()).unwrap_or_default()
}

/// Classifies a failed handshake as reference §6.5.
pub fn classify_failure(ssl: &SslRef, e: &openssl::ssl::Error) -> HandshakeFailure {
    let served = match with(ssl, |h| match h.phase {
        Phase::Refuse(why) => Err(why),
        Phase::Invalid => Err(HandshakeFailure::InvalidSni),
        Phase::Served => Ok(true),
        _ => Ok(false),
    }) {
        Some(Err(why)) => return why,
        Some(Ok(served)) => served,
        None => false,
    };
    let reason = e
        .ssl_error()
        .and_then(|s| s.errors().first())
        .map(|err| err.reason_code());
    match reason {
        Some(SSL_R_TLSV1_ALERT_UNKNOWN_CA) => HandshakeFailure::UnknownCa,
        Some(SSL_R_SSLV3_ALERT_BAD_CERTIFICATE) => HandshakeFailure::BadCertificate,
        Some(SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN) => HandshakeFailure::CertificateUnknown,
        Some(SSL_R_UNEXPECTED_EOF_WHILE_READING) if served => HandshakeFailure::ClientHungUp,
        _ if served && matches!(e.code(), ErrorCode::SYSCALL | ErrorCode::ZERO_RETURN) => {
            HandshakeFailure::ClientHungUp
        }
        _ => HandshakeFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ssl::{SslContext, SslMethod};

    fn ssl() -> Ssl {
        let ctx = SslContext::builder(SslMethod::tls_server())
            .unwrap()
            .build();
        let mut ssl = Ssl::new(&ctx).unwrap();
        attach(&mut ssl);
        ssl
    }

    #[test]
    fn state_round_trips_until_released() {
        let ssl = ssl();
        with(&ssl, |h| h.phase = Phase::Lookup(Lookup::NoSni));
        assert!(matches!(take_lookup(&ssl), Some(Lookup::NoSni)));
        assert!(take_lookup(&ssl).is_none());
        refuse(&ssl, HandshakeFailure::NoCertificate);
        with(&ssl, |h| h.sni = "a.example".into());
        assert_eq!(server_name(&ssl), "a.example");
        with(&ssl, |h| h.observed = Some(Observed::Invalid));
        assert_eq!(take_name(&ssl), Some(Observed::Invalid));
        assert_eq!(take_name(&ssl), None);
        release(&ssl);
        assert_eq!(server_name(&ssl), "");
        assert!(take_lookup(&ssl).is_none());
        // Twice is harmless, and so is using the released state.
        release(&ssl);
        refuse(&ssl, HandshakeFailure::NoCertificate);
        assert!(take_lookup(&ssl).is_none());
    }

    #[test]
    fn a_connection_without_state_is_harmless() {
        let ctx = SslContext::builder(SslMethod::tls_server())
            .unwrap()
            .build();
        let ssl = Ssl::new(&ctx).unwrap();
        release(&ssl);
        refuse(&ssl, HandshakeFailure::Other);
        assert!(take_lookup(&ssl).is_none());
        assert_eq!(server_name(&ssl), "");
        assert_eq!(take_name(&ssl), None);
    }
}
