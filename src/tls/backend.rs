//! Every difference between the two TLS libraries the server builds against: OpenSSL (the
//! default) and AWS-LC (cargo feature `aws-lc`), both through the `openssl` crate. Each item
//! is one difference: a line saying what differs, then the OpenSSL and the AWS-LC version
//! side by side. The rest of the server calls these and holds no `cfg` of its own.
//!
//! Hand-written declarations are OpenSSL's own, for symbols its openssl-sys lacks; under
//! AWS-LC every symbol comes from openssl-sys (which re-exports aws-lc-sys with AWS-LC's
//! prefixed link names).

use std::io::{Read, Write};

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKeyRef, Private};
use openssl::ssl::{SslAlert, SslContextBuilder, SslContextRef, SslOptions, SslRef, SslStream};
use openssl::x509::{X509Ref, X509};

#[cfg(feature = "aws-lc")]
mod awslc;
// OpenSSL's ticket format in Rust: used by the AWS-LC build, tested under both.
#[cfg_attr(not(feature = "aws-lc"), allow(dead_code))]
mod ticket;

/// Ticket key material in the `--ticket-keys` file: 16-byte name, 32-byte HMAC secret,
/// 32-byte AES key: nginx's and OpenSSL's layout, under both libraries.
pub const TICKET_KEYS_LEN: usize = 80;

/// The library, as `/metrics` and `-v` name it: its own version string names it.
pub fn library() -> &'static str {
    openssl::version::version()
}

/// OpenSSL 3 refuses TLS 1.0/1.1's SHA-1 signatures above security level 0; AWS-LC has no
/// levels and rejects the rule (it allows those versions when asked for them).
#[cfg(not(feature = "aws-lc"))]
pub const SECLEVEL: &str = ":@SECLEVEL=0";
#[cfg(feature = "aws-lc")]
pub const SECLEVEL: &str = "";

/// The most 0-RTT data a session may carry: OpenSSL takes ours, AWS-LC has a fixed limit.
#[cfg(not(feature = "aws-lc"))]
pub const MAX_EARLY_DATA: u32 = 16384;
#[cfg(feature = "aws-lc")]
pub const MAX_EARLY_DATA: u32 = 14336;

/// Options that only OpenSSL has: no compression (AWS-LC has none); ChaCha20 first for a
/// client that prefers it (AWS-LC: chosen per connection in the ClientHello callback); a
/// peer's EOF without close_notify is no error (AWS-LC keeps the session anyway); and no
/// anti-replay cache for 0-RTT (see context.rs; AWS-LC has none).
#[cfg(not(feature = "aws-lc"))]
pub fn library_options() -> SslOptions {
    /// SSL_OP_NO_ANTI_REPLAY (not named by the openssl crate).
    const NO_ANTI_REPLAY: SslOptions = SslOptions::from_bits_retain(1 << 24);
    SslOptions::NO_COMPRESSION
        | SslOptions::PRIORITIZE_CHACHA
        | SslOptions::IGNORE_UNEXPECTED_EOF
        | NO_ANTI_REPLAY
}
#[cfg(feature = "aws-lc")]
pub fn library_options() -> SslOptions {
    SslOptions::empty()
}

/// Whether AES-GCM runs in hardware on this CPU: OpenSSL has no public call for it (we read
/// the CPU's features, `sys::cpu`); AWS-LC answers itself.
#[cfg(not(feature = "aws-lc"))]
pub fn aes_hardware() -> bool {
    crate::sys::cpu::aes_instructions()
}
#[cfg(feature = "aws-lc")]
pub fn aes_hardware() -> bool {
    // SAFETY: a query of the CPU's features.
    unsafe { openssl_sys::EVP_has_aes_hardware() == 1 }
}

/// TLS 1.3 suites. OpenSSL picks them in this order (server preference); AWS-LC follows
/// the client's order, so there the ClientHello callback picks one per connection.
#[cfg(not(feature = "aws-lc"))]
pub fn set_tls13_suites(b: &mut SslContextBuilder, list: &str) -> Result<(), ErrorStack> {
    b.set_ciphersuites(list)
}
#[cfg(feature = "aws-lc")]
pub fn set_tls13_suites(b: &mut SslContextBuilder, list: &str) -> Result<(), ErrorStack> {
    awslc::set_ciphersuites(b, list)
}

/// One ticket per full handshake, and 0-RTT: OpenSSL takes a size limit, AWS-LC a switch
/// (early data then arrives through the normal reads, see `read_early_data`).
#[cfg(not(feature = "aws-lc"))]
pub fn set_tickets_and_early_data(b: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    b.set_num_tickets(1)?;
    b.set_max_early_data(MAX_EARLY_DATA)
}
#[cfg(feature = "aws-lc")]
pub fn set_tickets_and_early_data(b: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    awslc::set_tickets_and_early_data(b)
}

/// The ClientHello callback: the crate binds OpenSSL's; under AWS-LC it is bound here, and
/// also chooses the cipher suite the way OpenSSL's server preference would.
#[cfg(not(feature = "aws-lc"))]
pub fn set_client_hello_callback<F>(b: &mut SslContextBuilder, f: F)
where
    F: Fn(&mut SslRef, &mut SslAlert) -> Result<(), ErrorStack> + Send + Sync + 'static,
{
    b.set_client_hello_callback(move |ssl, alert| {
        f(ssl, alert).map(|()| openssl::ssl::ClientHelloResponse::SUCCESS)
    });
}
#[cfg(feature = "aws-lc")]
pub fn set_client_hello_callback<F>(b: &mut SslContextBuilder, f: F)
where
    F: Fn(&mut SslRef, &mut SslAlert) -> Result<(), ErrorStack> + Send + Sync + 'static,
{
    awslc::set_client_hello_callback(b, std::sync::Arc::new(f));
}

/// The certificate callback's C signature.
pub type CertCallback =
    unsafe extern "C" fn(*mut openssl_sys::SSL, *mut libc::c_void) -> libc::c_int;

#[cfg(not(feature = "aws-lc"))]
extern "C" {
    // In libssl since 1.0.2; not bound by openssl-sys.
    fn SSL_CTX_set_cert_cb(
        ctx: *mut openssl_sys::SSL_CTX,
        cb: Option<CertCallback>,
        arg: *mut libc::c_void,
    );
    // In libssl since 1.1.1; not bound by openssl-sys.
    fn SSL_use_cert_and_key(
        ssl: *mut openssl_sys::SSL,
        x509: *mut openssl_sys::X509,
        key: *mut openssl_sys::EVP_PKEY,
        chain: *mut libc::c_void,
        replace: libc::c_int,
    ) -> libc::c_int;
    // In libssl since 1.1.0; not bound by openssl-sys.
    fn SSL_has_pending(s: *const openssl_sys::SSL) -> libc::c_int;
}

/// The certificate callback: OpenSSL calls it on full handshakes only; AWS-LC on every
/// one, before it decides to resume, and it needs a certificate then (PERFORMANCE.md, the
/// AWS-LC section: why a resumption there still looks its certificate up).
pub fn set_cert_callback(b: &mut SslContextBuilder, cb: CertCallback) {
    // SAFETY: the builder's live `SSL_CTX*`; `cb` has the C signature and takes no argument.
    #[cfg(not(feature = "aws-lc"))]
    unsafe {
        SSL_CTX_set_cert_cb(b.as_ptr(), Some(cb), std::ptr::null_mut())
    };
    #[cfg(feature = "aws-lc")]
    awslc::set_cert_callback(b, cb);
}

/// Whether the library refused the ClientHello's server_name before our callback saw it
/// (`queue_empty`: the failure left no error of the library's). OpenSSL calls the callback
/// first; AWS-LC checks the extension itself.
#[cfg(not(feature = "aws-lc"))]
pub fn refused_sni(_ssl: &SslRef, _queue_empty: bool) -> bool {
    false
}
#[cfg(feature = "aws-lc")]
pub fn refused_sni(ssl: &SslRef, queue_empty: bool) -> bool {
    awslc::refused_sni(ssl, queue_empty)
}

/// Serves a leaf on this connection in one call (certificate and key compared once).
/// OpenSSL keeps the context's chain when given none; AWS-LC drops it, so it is passed.
pub fn use_cert_and_key(
    ssl: &mut SslRef,
    cert: &X509Ref,
    key: &PKeyRef<Private>,
) -> Result<(), ErrorStack> {
    let raw = ssl as *mut SslRef as *mut openssl_sys::SSL;
    let x = cert as *const X509Ref as *mut openssl_sys::X509;
    let k = key as *const PKeyRef<Private> as *mut openssl_sys::EVP_PKEY;
    // SAFETY: live `SSL*`, `X509*` and `EVP_PKEY*` behind the crate's opaque references; the
    // library takes its own references to them.
    #[cfg(not(feature = "aws-lc"))]
    let ok = unsafe { SSL_use_cert_and_key(raw, x, k, std::ptr::null_mut(), 1) };
    #[cfg(feature = "aws-lc")]
    let ok = unsafe { awslc::use_cert_and_key(raw, x, k) };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// Whether the library holds decrypted bytes not yet read (same call, different binding).
pub fn has_pending(ssl: &SslRef) -> bool {
    let raw = ssl as *const SslRef as *const openssl_sys::SSL;
    // SAFETY: the live `SSL*`; the call only reads.
    #[cfg(not(feature = "aws-lc"))]
    let n = unsafe { SSL_has_pending(raw) };
    #[cfg(feature = "aws-lc")]
    let n = unsafe { openssl_sys::SSL_has_pending(raw) };
    n != 0
}

/// Reads 0-RTT data at the start of a handshake (Ok(0): no more). OpenSSL has a call for it;
/// AWS-LC returns from the handshake early and hands early data to the normal reads.
#[cfg(not(feature = "aws-lc"))]
pub fn read_early_data<S: Read + Write>(
    s: &mut SslStream<S>,
    buf: &mut [u8],
) -> Result<usize, openssl::ssl::Error> {
    s.read_early_data(buf)
}
#[cfg(feature = "aws-lc")]
pub fn read_early_data<S: Read + Write>(
    s: &mut SslStream<S>,
    buf: &mut [u8],
) -> Result<usize, openssl::ssl::Error> {
    awslc::read_early_data(s, buf)
}

/// Session cache counters: OpenSSL's are controls, AWS-LC's are functions.
pub struct SessionCounters {
    pub stored: u64,
    pub hits: u64,
    pub misses: u64,
    pub full: u64,
}

#[cfg(not(feature = "aws-lc"))]
pub fn session_counters(ctx: &SslContextRef) -> SessionCounters {
    const SSL_CTRL_SESS_NUMBER: libc::c_int = 20;
    const SSL_CTRL_SESS_HIT: libc::c_int = 27;
    const SSL_CTRL_SESS_MISSES: libc::c_int = 29;
    const SSL_CTRL_SESS_CACHE_FULL: libc::c_int = 31;
    let read = |cmd| {
        let raw = ctx as *const SslContextRef as *mut openssl_sys::SSL_CTX;
        // SAFETY: the live `SSL_CTX*`; these controls only read counters.
        let v = unsafe { openssl_sys::SSL_CTX_ctrl(raw, cmd, 0, std::ptr::null_mut()) };
        u64::try_from(v).unwrap_or(0)
    };
    SessionCounters {
        stored: read(SSL_CTRL_SESS_NUMBER),
        hits: read(SSL_CTRL_SESS_HIT),
        misses: read(SSL_CTRL_SESS_MISSES),
        full: read(SSL_CTRL_SESS_CACHE_FULL),
    }
}
#[cfg(feature = "aws-lc")]
pub fn session_counters(ctx: &SslContextRef) -> SessionCounters {
    awslc::session_counters(ctx)
}

/// The `--ticket-keys` material: OpenSSL takes the 80 bytes as they are; AWS-LC's own keys
/// are 48 bytes and its session encoding differs, so there a ticket AEAD method makes and
/// reads OpenSSL's tickets (`ticket`: the same envelope and session encoding), and an
/// OpenSSL and an AWS-LC instance sharing the keys resume each other's sessions.
#[cfg(not(feature = "aws-lc"))]
pub fn set_ticket_keys(
    ctx: &SslContextRef,
    keys: &[u8; TICKET_KEYS_LEN],
) -> Result<(), ErrorStack> {
    const SSL_CTRL_SET_TLSEXT_TICKET_KEYS: libc::c_int = 59;
    let mut copy = *keys;
    // SAFETY: OpenSSL copies exactly TICKET_KEYS_LEN bytes from the buffer we own.
    let rc = unsafe {
        openssl_sys::SSL_CTX_ctrl(
            ctx as *const SslContextRef as *mut openssl_sys::SSL_CTX,
            SSL_CTRL_SET_TLSEXT_TICKET_KEYS,
            TICKET_KEYS_LEN as libc::c_long,
            copy.as_mut_ptr().cast(),
        )
    };
    if rc == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}
#[cfg(feature = "aws-lc")]
pub fn set_ticket_keys(
    ctx: &SslContextRef,
    keys: &[u8; TICKET_KEYS_LEN],
) -> Result<(), ErrorStack> {
    awslc::set_ticket_keys(ctx, keys)
}

/// The library's reason code for a peer that closed in the middle of a handshake: OpenSSL
/// has one (SSL_R_UNEXPECTED_EOF_WHILE_READING); AWS-LC reports a bare SYSCALL instead.
#[cfg(not(feature = "aws-lc"))]
pub const R_UNEXPECTED_EOF: Option<i32> = Some(294);
#[cfg(feature = "aws-lc")]
pub const R_UNEXPECTED_EOF: Option<i32> = None;

/// The reason code of an error: OpenSSL's error crate decodes it; AWS-LC packs codes
/// differently, and the alert reasons (1000 + alert) are what is compared.
pub fn reason_code(e: &openssl::error::Error) -> i32 {
    e.reason_code()
}

/// A TLS 1.3 client that rejects our certificate may send its alert unencrypted (OpenSSL's
/// client does, before it writes with handshake keys). OpenSSL reads it and reports the
/// alert; AWS-LC fails to decrypt it (DECRYPTION_FAILED_OR_BAD_RECORD_MAC), so there the
/// alert is read from the raw bytes and given OpenSSL's reason (1000 + its description).
#[cfg(not(feature = "aws-lc"))]
pub fn reason_with_raw_alert(reason: Option<i32>, _raw_alert: Option<u8>) -> Option<i32> {
    reason
}
#[cfg(feature = "aws-lc")]
pub fn reason_with_raw_alert(reason: Option<i32>, raw_alert: Option<u8>) -> Option<i32> {
    /// SSL_R_BAD_PACKET_LENGTH and SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC in AWS-LC.
    const UNREADABLE: [i32; 2] = [112, 139];
    match (reason, raw_alert) {
        (Some(r), Some(d)) if UNREADABLE.contains(&r) => Some(1000 + i32::from(d)),
        _ => reason,
    }
}

/// The digest an EdDSA key signs a certificate with: none. OpenSSL takes EVP_md_null()
/// for it; AWS-LC wants a null pointer.
pub fn eddsa_digest() -> MessageDigest {
    #[cfg(not(feature = "aws-lc"))]
    let md = MessageDigest::null();
    // SAFETY: a null EVP_MD* is what X509_sign takes for EdDSA; nothing dereferences it.
    #[cfg(feature = "aws-lc")]
    let md = unsafe { MessageDigest::from_ptr(std::ptr::null()) };
    md
}

/// Whether a key signs without a digest: OpenSSL has Ed25519 and Ed448, AWS-LC Ed25519 only.
pub fn is_eddsa(id: Id) -> bool {
    #[cfg(not(feature = "aws-lc"))]
    let ed = id == Id::ED25519 || id == Id::ED448;
    #[cfg(feature = "aws-lc")]
    let ed = id == Id::ED25519;
    ed
}

/// A certificate's version field (0 for v1): the crate's accessor is OpenSSL-only.
pub fn x509_version(cert: &X509) -> i64 {
    // SAFETY: the live `X509*`; the call only reads.
    #[cfg(feature = "aws-lc")]
    let v = unsafe { openssl_sys::X509_get_version(&**cert as *const X509Ref as *const _) } as i64;
    #[cfg(not(feature = "aws-lc"))]
    let v = i64::from(cert.version());
    v
}
