//! The two callbacks of a handshake and the per-connection state they share with the loop.
//!
//! The ClientHello callback reads the SNI extension itself (`servername()` is not set yet at
//! that point), judges it and maps it to a certificate name. Only a full handshake goes on to
//! the certificate callback (a resumed one needs no certificate, so it costs nothing more):
//! it looks in the in-memory cache and on a hit installs that certificate on the connection.
//! On a miss it records what it needs and asks to be called again: OpenSSL reports
//! WANT_X509_LOOKUP, the loop takes the lookup (`take_lookup`) and hands the connection to
//! `server::handoff`, which parks it and asks the signer; when the certificate arrives it is
//! handed over (`install`) and the handshake driven again, which calls the certificate
//! callback again. A client without SNI gets the certificate for the address it connected
//! to, which the loop gave the state when it accepted the connection (`attach`).
//!
//! The state lives in OpenSSL's per-connection ex_data because the callback can reach
//! nothing else; every function here takes the connection's `SslRef`.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::pkey::{PKeyRef, Private};
use openssl::ssl::{ErrorCode, Ssl, SslAlert, SslContext, SslContextBuilder, SslRef};
use openssl::x509::X509Ref;

use super::backend;
use super::certs::{Certs, Leaf};
use super::names::{self, CertName};
use super::psl::Psl;
use super::sni;
use crate::stats::top_names::{self, Observed};
use crate::stats::HandshakeFailure;

/// Names in log lines are cut like the original's (64 bytes).
const LOG_NAME_MAX: usize = 64;
const TLSEXT_TYPE_SERVER_NAME: libc::c_uint = 0;
const SSL_R_SSLV3_ALERT_BAD_CERTIFICATE: i32 = 1042;
const SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN: i32 = 1046;
const SSL_R_TLSV1_ALERT_UNKNOWN_CA: i32 = 1048;

#[derive(Default)]
enum Phase {
    #[default]
    Fresh,
    /// The ClientHello asked for this certificate (without SNI: the one for the local
    /// address); the certificate callback installs it if the handshake is a full one.
    Named(CertName),
    /// The certificate callback asked for a retry; the loop takes this and finds it.
    Lookup(CertName),
    /// The loop found it: the certificate callback installs it when called again.
    Install(Leaf),
    /// The loop found none: the certificate callback fails the handshake, counted as this.
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
    /// The connection's socket: without SNI, its local address names the certificate
    /// (asked only then, which spares every other handshake a system call).
    socket: Option<RawFd>,
}

/// The `Mutex` is only there because ex_data must be `Sync`: the callback and the loop run on
/// the same thread, one after the other, so it is never contended. The state is boxed apart
/// so that `release` can free it: the slot OpenSSL keeps until the connection is freed is
/// then a `Mutex` around `None` (16 bytes on 64-bit CPUs instead of 144).
type Slot = Mutex<Option<Box<Hello>>>;

fn index() -> Index<Ssl, Slot> {
    static INDEX: OnceLock<Index<Ssl, Slot>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

/// Gives a new connection its hello state: empty but for its socket, which outlives it.
pub fn attach(ssl: &mut SslRef, socket: Option<RawFd>) {
    let hello = Hello {
        socket,
        ..Hello::default()
    };
    ssl.set_ex_data(index(), Mutex::new(Some(Box::new(hello))));
}

/// Frees the hello state once the handshake is done (the SNI copy kept for log lines, a
/// leaf not yet installed): nothing reads it afterwards, and an idle keep-alive connection
/// should not carry it. The slot itself stays, owned by OpenSSL until the connection is freed.
pub fn release(ssl: &SslRef) {
    if let Some(slot) = ssl.ex_data(index()) {
        *crate::sys::lock(slot) = None;
    }
}

/// No SNI: the certificate for the address the client connected to.
fn local_name(ssl: &SslRef) -> Option<CertName> {
    let fd = with(ssl, |h| h.socket).flatten()?;
    let ip = crate::sys::ports::local_ip(fd).ok()?;
    Some(names::cert_name_for_ip(ip))
}

fn state(ssl: &SslRef) -> Option<MutexGuard<'_, Option<Box<Hello>>>> {
    ssl.ex_data(index()).map(crate::sys::lock)
}

/// `None` without a state: before `attach` or after `release`.
fn with<R>(ssl: &SslRef, f: impl FnOnce(&mut Hello) -> R) -> Option<R> {
    state(ssl)?.as_deref_mut().map(f)
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

/// Builds the ClientHello callback installed on the server context.
pub fn callback(
    psl: Arc<Psl>,
) -> impl Fn(&mut SslRef, &mut SslAlert) -> Result<(), ErrorStack> + Send + Sync + 'static {
    move |ssl, alert| {
        let set = |ssl: &SslRef, phase: Phase| {
            with(ssl, |h| h.phase = phase);
        };
        let raw = match client_hello_ext(ssl, TLSEXT_TYPE_SERVER_NAME).map(sni::server_name) {
            None | Some(Ok(None)) => match local_name(ssl) {
                Some(name) => {
                    set(ssl, Phase::Named(name));
                    return Ok(());
                }
                None => {
                    set(ssl, Phase::Refuse(HandshakeFailure::Other));
                    *alert = SslAlert::HANDSHAKE_FAILURE;
                    return Err(ErrorStack::get());
                }
            },
            Some(Ok(Some(raw))) => raw.to_vec(),
            Some(Err(_)) => {
                with(ssl, |h| h.observed = Some(Observed::Invalid));
                set(ssl, Phase::Invalid);
                *alert = SslAlert::DECODE_ERROR;
                return Err(ErrorStack::get());
            }
        };
        with(ssl, |h| {
            h.sni = crate::log::escape(&raw[..raw.len().min(LOG_NAME_MAX)]);
            h.observed = Some(top_names::from_sni(&raw));
        });
        match names::cert_name(&raw, &psl) {
            Ok(name) => {
                set(ssl, Phase::Named(name));
                Ok(())
            }
            Err(_) => {
                set(ssl, Phase::Invalid);
                *alert = SslAlert::UNRECOGNIZED_NAME;
                Err(ErrorStack::get())
            }
        }
    }
}

/// The certificate cache, kept on the server context for the certificate callback.
fn certs_index() -> Index<SslContext, Arc<Mutex<Certs>>> {
    static INDEX: OnceLock<Index<SslContext, Arc<Mutex<Certs>>>> = OnceLock::new();
    *INDEX.get_or_init(|| SslContext::new_ex_index().expect("OpenSSL ex_data index"))
}

/// Installs the certificate callback, which looks in `certs`.
pub fn set_cert_callback(b: &mut SslContextBuilder, certs: Arc<Mutex<Certs>>) {
    b.set_ex_data(certs_index(), certs);
    backend::set_cert_callback(b, cert_callback);
}

unsafe extern "C" fn cert_callback(
    ssl: *mut openssl_sys::SSL,
    _: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: OpenSSL passes the live `SSL*` of the handshake it is running, and `SslRef`
    // is an opaque stand-in for `SSL` (the openssl crate's own `from_ptr_mut` is this cast).
    let ssl = unsafe { &mut *(ssl as *mut SslRef) };
    let Some(certs) = ssl.ssl_context().ex_data(certs_index()).cloned() else {
        return 0;
    };
    choose_certificate(ssl, &certs)
}

/// What the certificate callback answers: 1 go on, 0 fail, -1 ask again later.
fn choose_certificate(ssl: &mut SslRef, certs: &Mutex<Certs>) -> libc::c_int {
    let phase = with(ssl, |h| std::mem::take(&mut h.phase)).unwrap_or_default();
    let leaf = match phase {
        Phase::Install(leaf) => leaf,
        Phase::Named(name) => {
            let cached = crate::sys::lock(certs).get(name.file_name());
            match cached {
                Some(leaf) => leaf,
                None => {
                    with(ssl, |h| h.phase = Phase::Lookup(name));
                    return -1;
                }
            }
        }
        other => {
            with(ssl, |h| h.phase = other);
            return 0;
        }
    };
    if use_leaf(ssl, &leaf).is_err() {
        return 0;
    }
    with(ssl, |h| h.phase = Phase::Served);
    1
}

/// Serves `leaf` on this connection. Installing the certificate per connection costs a few
/// microseconds of a ~350 µs handshake; a context per certificate instead cost ~27 kB of
/// memory per cached certificate (13 MB for the default 500) and ~0.2 ms to build.
/// One call for both: the two separate installs each compare certificate and key, which for a
/// key parsed apart from its certificate costs about 15,000 instructions per handshake.
fn use_leaf(ssl: &mut SslRef, leaf: &Leaf) -> Result<(), ErrorStack> {
    let cert: &X509Ref = &leaf.cert;
    let key: &PKeyRef<Private> = &leaf.key;
    // The context's extra chain certificates are sent after it.
    backend::use_cert_and_key(ssl, cert, key)
}

/// After WANT_X509_LOOKUP: the certificate the loop has to find.
pub fn take_lookup(ssl: &SslRef) -> Option<CertName> {
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

/// Classifies a failed handshake as COMPATIBILITY.md §6.5 describes.
/// `raw_alert`: an unencrypted alert the client's last bytes ended with.
pub fn classify_failure(
    ssl: &SslRef,
    e: &openssl::ssl::Error,
    raw_alert: Option<u8>,
) -> HandshakeFailure {
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
        .map(backend::reason_code);
    let reason = backend::reason_with_raw_alert(reason, raw_alert);
    match reason {
        None if !seen(ssl) && backend::refused_sni(ssl, true) => HandshakeFailure::InvalidSni,
        Some(SSL_R_TLSV1_ALERT_UNKNOWN_CA) => HandshakeFailure::UnknownCa,
        Some(SSL_R_SSLV3_ALERT_BAD_CERTIFICATE) => HandshakeFailure::BadCertificate,
        Some(SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN) => HandshakeFailure::CertificateUnknown,
        Some(r) if served && Some(r) == backend::R_UNEXPECTED_EOF => HandshakeFailure::ClientHungUp,
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
        attach(&mut ssl, None);
        ssl
    }

    #[test]
    fn state_round_trips_until_released() {
        let ssl = ssl();
        let name = CertName::from_file_name("_.a.example").unwrap();
        with(&ssl, |h| h.phase = Phase::Lookup(name.clone()));
        assert_eq!(take_lookup(&ssl), Some(name));
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
