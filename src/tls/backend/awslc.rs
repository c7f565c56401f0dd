//! The AWS-LC side of `tls::backend`: what it binds itself (the ClientHello callback, the
//! OpenSSL-format tickets) and the choices OpenSSL makes inside the library (suite order).

use std::ffi::CString;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{ErrorCode, NameType, SslAlert, SslContext, SslContextBuilder};
use openssl::ssl::{Ssl, SslStream};
use openssl::ssl::{SslContextRef, SslRef};
use openssl_sys as ffi;

use super::{ticket, SessionCounters, TICKET_KEYS_LEN};

type HelloFn = dyn Fn(&mut SslRef, &mut SslAlert) -> Result<(), ErrorStack> + Send + Sync + 'static;
type Keys = Mutex<[u8; TICKET_KEYS_LEN]>;

fn hello_index() -> Index<SslContext, Arc<HelloFn>> {
    static I: OnceLock<Index<SslContext, Arc<HelloFn>>> = OnceLock::new();
    *I.get_or_init(|| SslContext::new_ex_index().expect("ex_data index"))
}

fn keys_index() -> Index<SslContext, Arc<Keys>> {
    static I: OnceLock<Index<SslContext, Arc<Keys>>> = OnceLock::new();
    *I.get_or_init(|| SslContext::new_ex_index().expect("ex_data index"))
}

fn ok(rc: libc::c_int) -> Result<(), ErrorStack> {
    if rc == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// SAFETY (for callers): `ssl` is the live `SSL*` a callback was handed.
unsafe fn ssl_ref<'a>(ssl: *mut ffi::SSL) -> &'a mut SslRef {
    // SAFETY: `SslRef` is the crate's opaque stand-in for `SSL` (its own from_ptr_mut).
    unsafe { &mut *(ssl as *mut SslRef) }
}

pub fn set_ciphersuites(b: &mut SslContextBuilder, list: &str) -> Result<(), ErrorStack> {
    let c = CString::new(list).map_err(|_| ErrorStack::get())?;
    // SAFETY: the builder's live `SSL_CTX*` and a NUL-terminated string AWS-LC parses.
    ok(unsafe { ffi::SSL_CTX_set_ciphersuites(b.as_ptr(), c.as_ptr()) })
}

/// One ticket, 0-RTT on, and our own ticket keys (random until `--ticket-keys` replaces
/// them), so that tickets are made and read by `TICKET_METHOD` in OpenSSL's format.
pub fn set_tickets_and_early_data(b: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    let mut keys = [0u8; TICKET_KEYS_LEN];
    openssl::rand::rand_bytes(&mut keys)?;
    b.set_ex_data(keys_index(), Arc::new(Mutex::new(keys)));
    // SAFETY: the builder's live `SSL_CTX*`; the method is a static that outlives it and
    // its callbacks have AWS-LC's signatures.
    unsafe {
        ok(ffi::SSL_CTX_set_num_tickets(b.as_ptr(), 1))?;
        ffi::SSL_CTX_set_early_data_enabled(b.as_ptr(), 1);
        ffi::SSL_CTX_set_ticket_aead_method(b.as_ptr(), &TICKET_METHOD);
    }
    Ok(())
}

pub fn set_ticket_keys(
    ctx: &SslContextRef,
    keys: &[u8; TICKET_KEYS_LEN],
) -> Result<(), ErrorStack> {
    match ctx.ex_data(keys_index()) {
        Some(k) => {
            *k.lock().unwrap_or_else(|e| e.into_inner()) = *keys;
            Ok(())
        }
        None => Err(ErrorStack::get()),
    }
}

/// The keys of the context `ssl` belongs to.
fn keys_of(ssl: &SslRef) -> Option<[u8; TICKET_KEYS_LEN]> {
    let k = ssl.ssl_context().ex_data(keys_index())?;
    Some(*k.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Tickets exactly as OpenSSL makes them, so that an OpenSSL instance with the same
/// `--ticket-keys` reads ours and we read its (`ticket`): AWS-LC hands its own session
/// encoding to `seal` and takes it back from `open`; in between it is OpenSSL's, inside
/// OpenSSL's envelope.
static TICKET_METHOD: ffi::SSL_TICKET_AEAD_METHOD = ffi::SSL_TICKET_AEAD_METHOD {
    max_overhead: Some(ticket_max_overhead),
    seal: Some(ticket_seal),
    open: Some(ticket_open),
};

unsafe extern "C" fn ticket_max_overhead(_: *mut ffi::SSL) -> usize {
    ticket::ENVELOPE_OVERHEAD + ticket::TRANSCODE_GROWTH
}

/// 1 with the ticket in `out`, 0 on failure (AWS-LC then fails the handshake; AWS-LC's
/// own encoding always transcodes, and `max_overhead` covers the growth).
unsafe extern "C" fn ticket_seal(
    ssl: *mut ffi::SSL,
    out: *mut u8,
    out_len: *mut usize,
    max_out_len: usize,
    input: *const u8,
    in_len: usize,
) -> libc::c_int {
    // SAFETY: AWS-LC passes the live SSL and its serialized session, `in_len` bytes.
    let (ssl, input) = unsafe { (ssl_ref(ssl), std::slice::from_raw_parts(input, in_len)) };
    let Some(keys) = keys_of(ssl) else {
        return 0;
    };
    let Ok(mut session) = ticket::from_awslc(input) else {
        return 0;
    };
    // OpenSSL keeps the SNI name in its sessions (what a resumed TLS 1.2 connection reports).
    session.hostname = ssl.servername_raw(NameType::HOST_NAME).map(<[u8]>::to_vec);
    let mut iv = [0u8; 16];
    if openssl::rand::rand_bytes(&mut iv).is_err() {
        return 0;
    }
    match ticket::seal(&keys, &iv, &ticket::to_openssl(&session)) {
        // SAFETY: AWS-LC's output buffer and length, as it passed them.
        Ok(t) if unsafe { copy_out(&t, out, out_len, max_out_len) } => 1,
        _ => 0,
    }
}

/// Puts `bytes` into a seal or open callback's output; false when they do not fit.
///
/// SAFETY: `out` has room for `max_out_len` bytes and `out_len` is writable.
unsafe fn copy_out(bytes: &[u8], out: *mut u8, out_len: *mut usize, max_out_len: usize) -> bool {
    if bytes.len() > max_out_len {
        return false;
    }
    // SAFETY: see above; `bytes` fits.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len());
        *out_len = bytes.len();
    }
    true
}

/// A ticket a client offers: success with AWS-LC's session encoding in `out`, or
/// ignore_ticket (a full handshake follows) for anything else: another key name, a bad
/// MAC, a session we cannot read. Never error: that would fail the handshake.
unsafe extern "C" fn ticket_open(
    ssl: *mut ffi::SSL,
    out: *mut u8,
    out_len: *mut usize,
    max_out_len: usize,
    input: *const u8,
    in_len: usize,
) -> ffi::ssl_ticket_aead_result_t {
    const IGNORE: ffi::ssl_ticket_aead_result_t =
        ffi::ssl_ticket_aead_result_t_ssl_ticket_aead_ignore_ticket;
    // SAFETY: AWS-LC passes the live SSL and the client's ticket, `in_len` bytes.
    let (ssl, input) = unsafe { (ssl_ref(ssl), std::slice::from_raw_parts(input, in_len)) };
    let Some(keys) = keys_of(ssl) else {
        return IGNORE;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let der = match ticket::open(&keys, input).and_then(|pt| ticket::from_openssl(&pt, now)) {
        Ok(s) => ticket::to_awslc(&s),
        Err(_) => return IGNORE,
    };
    // SAFETY: AWS-LC's output buffer and length, as it passed them.
    match unsafe { copy_out(&der, out, out_len, max_out_len) } {
        true => ffi::ssl_ticket_aead_result_t_ssl_ticket_aead_success,
        false => IGNORE,
    }
}

/// Our ClientHello callback, then the suite choice (which needs the client's suites, given
/// only to the select-certificate callback), and the alert watcher for `refused_sni`.
pub fn set_client_hello_callback(b: &mut SslContextBuilder, f: Arc<HelloFn>) {
    b.set_ex_data(hello_index(), f);
    // SAFETY: the builder's live `SSL_CTX*`; the callbacks have AWS-LC's signatures.
    unsafe {
        ffi::SSL_CTX_set_client_hello_cb(b.as_ptr(), Some(hello_trampoline), std::ptr::null_mut());
        ffi::SSL_CTX_set_select_certificate_cb(b.as_ptr(), Some(select_certificate));
        ffi::SSL_CTX_set_info_callback(b.as_ptr(), Some(info_callback));
    }
}

/// SSL_CB_WRITE_ALERT: AWS-LC sent an alert (value: level << 8 | description).
const CB_WRITE_ALERT: libc::c_int = 0x4008;

fn alert_index() -> Index<Ssl, u8> {
    static I: OnceLock<Index<Ssl, u8>> = OnceLock::new();
    *I.get_or_init(|| Ssl::new_ex_index().expect("ex_data index"))
}

/// Keeps the first alert AWS-LC sends on a connection.
unsafe extern "C" fn info_callback(ssl: *const ffi::SSL, kind: libc::c_int, value: libc::c_int) {
    if kind & CB_WRITE_ALERT != CB_WRITE_ALERT {
        return;
    }
    // SAFETY: the live SSL AWS-LC is running the callback for; nothing else holds it now.
    let ssl = unsafe { ssl_ref(ssl as *mut ffi::SSL) };
    if ssl.ex_data(alert_index()).is_none() {
        ssl.set_ex_data(alert_index(), (value & 0xff) as u8);
    }
}

/// AWS-LC checks the server_name extension itself before any callback (one host name of at
/// most 255 bytes, no NUL): a ClientHello it refuses that way ends with decode_error or
/// unrecognized_name and no error of its own on the queue.
pub fn refused_sni(ssl: &SslRef, queue_empty: bool) -> bool {
    let alert = ssl.ex_data(alert_index()).copied();
    queue_empty
        && (alert == Some(ffi::SSL_AD_DECODE_ERROR as u8)
            || alert == Some(ffi::SSL_AD_UNRECOGNIZED_NAME as u8))
}

unsafe extern "C" fn select_certificate(
    hello: *const ffi::SSL_CLIENT_HELLO,
) -> ffi::ssl_select_cert_result_t {
    // SAFETY: AWS-LC passes the parsed ClientHello of a live SSL, its suites `len` bytes.
    unsafe {
        let h = &*hello;
        let suites = if h.cipher_suites.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(h.cipher_suites, h.cipher_suites_len)
        };
        choose_suites(ssl_ref(h.ssl), suites);
    }
    ffi::ssl_select_cert_result_t_ssl_select_cert_success
}

/// The alert a failed ClientHello callback asked for (the crate keeps `SslAlert`'s value
/// private, and the callback only uses these).
fn alert_value(a: SslAlert) -> libc::c_int {
    if a == SslAlert::DECODE_ERROR {
        ffi::SSL_AD_DECODE_ERROR as libc::c_int
    } else if a == SslAlert::UNRECOGNIZED_NAME {
        ffi::SSL_AD_UNRECOGNIZED_NAME as libc::c_int
    } else if a == SslAlert::HANDSHAKE_FAILURE {
        ffi::SSL_AD_HANDSHAKE_FAILURE as libc::c_int
    } else {
        ffi::SSL_AD_INTERNAL_ERROR as libc::c_int
    }
}

unsafe extern "C" fn hello_trampoline(
    ssl: *mut ffi::SSL,
    al: *mut libc::c_int,
    _: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: AWS-LC passes the live SSL and a writable alert.
    let ssl = unsafe { ssl_ref(ssl) };
    let Some(f) = ssl.ssl_context().ex_data(hello_index()).cloned() else {
        return 0;
    };
    let mut alert = SslAlert::INTERNAL_ERROR;
    match f(ssl, &mut alert) {
        Ok(()) => 1,
        Err(_) => {
            // SAFETY: see above.
            unsafe { *al = alert_value(alert) };
            0
        }
    }
}

const TLS13_AES128: u16 = 0x1301;
const TLS13_AES256: u16 = 0x1302;
const TLS13_CHACHA: u16 = 0x1303;
/// Server order, and the order for a client that puts ChaCha20 first (OpenSSL's
/// PRIORITIZE_CHACHA: a client without AES instructions) or on a CPU without them.
const TLS13_ORDER: [(u16, &std::ffi::CStr); 3] = [
    (TLS13_AES128, c"TLS_AES_128_GCM_SHA256"),
    (TLS13_CHACHA, c"TLS_CHACHA20_POLY1305_SHA256"),
    (TLS13_AES256, c"TLS_AES_256_GCM_SHA384"),
];
const TLS13_ORDER_CHACHA: [(u16, &std::ffi::CStr); 3] = [
    (TLS13_CHACHA, c"TLS_CHACHA20_POLY1305_SHA256"),
    (TLS13_AES128, c"TLS_AES_128_GCM_SHA256"),
    (TLS13_AES256, c"TLS_AES_256_GCM_SHA384"),
];
/// TLS 1.2 for a ChaCha-first client: the ChaCha suites move to the front.
const TLS12_CHACHA_FIRST: &std::ffi::CStr = crate::tls::context::CIPHERS_TLS12_CHACHA_FIRST;

fn is_grease(c: u16) -> bool {
    c & 0x0f0f == 0x0a0a && c >> 8 == c & 0xff
}

/// The client's cipher suites, in its order.
fn client_suites(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .filter(|&c| !is_grease(c))
        .collect()
}

/// What OpenSSL does with CIPHER_SERVER_PREFERENCE and PRIORITIZE_CHACHA, for AWS-LC, which
/// takes TLS 1.3 suites in the client's order: the suite is chosen here and set on the
/// connection, unless AWS-LC would pick the same one itself.
fn choose_suites(ssl: &mut SslRef, suites: &[u8]) {
    let client = client_suites(suites);
    let aes_hw = super::aes_hardware();
    // The context's own order (context::suite_order) is ChaCha-first already without AES
    // instructions; a client that prefers ChaCha20 gets it too.
    let client_chacha = matches!(client.first(), Some(&(TLS13_CHACHA | 0xcca8 | 0xcca9)));
    let chacha_first = client_chacha || !aes_hw;
    let order = if chacha_first {
        &TLS13_ORDER_CHACHA
    } else {
        &TLS13_ORDER
    };
    let raw = ssl as *mut SslRef as *mut ffi::SSL;
    if let Some((id, name)) = order.iter().find(|(id, _)| client.contains(id)) {
        let tls13 = |c: &&u16| matches!(**c, TLS13_AES128 | TLS13_AES256 | TLS13_CHACHA);
        let theirs = match client.iter().find(|c| !aes_hw && **c == TLS13_CHACHA) {
            Some(c) => Some(*c),
            None => client.iter().find(tls13).copied(),
        };
        if theirs != Some(*id) {
            // SAFETY: the live SSL and a NUL-terminated suite name.
            unsafe { ffi::SSL_set_ciphersuites(raw, name.as_ptr()) };
        }
    }
    if client_chacha && aes_hw && client.first() != Some(&TLS13_CHACHA) {
        // SAFETY: as above.
        unsafe { ffi::SSL_set_strict_cipher_list(raw, TLS12_CHACHA_FIRST.as_ptr()) };
    }
}

pub fn set_cert_callback(b: &mut SslContextBuilder, cb: super::CertCallback) {
    // SAFETY: the builder's live `SSL_CTX*`; `cb` has the C signature and takes no argument.
    unsafe { ffi::SSL_CTX_set_cert_cb(b.as_ptr(), Some(cb), std::ptr::null_mut()) };
}

/// SSL_use_cert_and_key with the context's extra chain, which AWS-LC would otherwise drop.
///
/// SAFETY: live `SSL*`, `X509*` and `EVP_PKEY*`.
pub unsafe fn use_cert_and_key(
    ssl: *mut ffi::SSL,
    x: *mut ffi::X509,
    k: *mut ffi::EVP_PKEY,
) -> libc::c_int {
    // SAFETY: see above; the chain stays owned by the context, and AWS-LC copies it.
    unsafe {
        let mut chain: *mut ffi::stack_st_X509 = std::ptr::null_mut();
        ffi::SSL_CTX_get_extra_chain_certs(ffi::SSL_get_SSL_CTX(ssl), &mut chain);
        ffi::SSL_use_cert_and_key(ssl, x, k, chain, 1)
    }
}

pub fn read_early_data<S: Read + Write>(
    s: &mut SslStream<S>,
    buf: &mut [u8],
) -> Result<usize, openssl::ssl::Error> {
    s.do_handshake()?;
    let raw = s.ssl() as *const SslRef as *const ffi::SSL;
    // SAFETY: the live SSL of this stream; the call only reads.
    if unsafe { ffi::SSL_in_early_data(raw) } == 0 {
        return Ok(0);
    }
    match s.ssl_read(buf) {
        Err(e) if e.code() == ErrorCode::ZERO_RETURN => Ok(0),
        // The client's EndOfEarlyData came in this read and AWS-LC went on to the rest of
        // the handshake inside it: early data is over (OpenSSL's read_early_data says
        // FINISH here). Waiting for more input instead would stall a client that sent its
        // one early request and waits for the answer, until the handshake timeout.
        // SAFETY: as above.
        Err(e)
            if e.code() == ErrorCode::WANT_READ && unsafe { ffi::SSL_in_early_data(raw) } == 0 =>
        {
            Ok(0)
        }
        other => other,
    }
}

pub fn session_counters(ctx: &SslContextRef) -> SessionCounters {
    let raw = ctx as *const SslContextRef as *const ffi::SSL_CTX;
    let n = |v: libc::c_int| u64::try_from(v).unwrap_or(0);
    // SAFETY: the live `SSL_CTX*`; these only read counters.
    unsafe {
        SessionCounters {
            stored: ffi::SSL_CTX_sess_number(raw) as u64,
            hits: n(ffi::SSL_CTX_sess_hits(raw)),
            misses: n(ffi::SSL_CTX_sess_misses(raw)),
            full: n(ffi::SSL_CTX_sess_cache_full(raw)),
        }
    }
}
