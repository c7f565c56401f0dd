//! The TLS context every connection uses: protocols, ciphers, sessions, the CA chain, and
//! the ClientHello callback that installs each connection's certificate.

use std::sync::{Arc, Mutex};

use openssl::error::ErrorStack;
use openssl::ssl::{
    SslContext, SslContextBuilder, SslContextRef, SslMethod, SslMode, SslOptions,
    SslSessionCacheMode, SslVersion,
};
use openssl::x509::{X509VerifyResult, X509};

use super::backend;
pub use super::backend::TICKET_KEYS_LEN;
use super::certs::Certs;
use super::hello;
use super::psl::Psl;
use crate::sys::files::{read_path, FileError, Owners};

/// Ties cached sessions to this server (OpenSSL refuses to resume without one when the
/// session cache is on).
const SESSION_ID_CONTEXT: &[u8] = b"pixelserv-tls";
/// The original's size: enough for a home network, and every cached session pins heap.
const SESSION_CACHE_SIZE: i32 = 2560;

/// TLS 1.0-1.2: forward-secret suites first; ChaCha20 goes first for clients that prefer
/// it (phones without AES instructions), and for every client where this CPU has no AES
/// instructions (`CIPHERS_TLS12_CHACHA_FIRST`); `@SECLEVEL=0` keeps TLS 1.0/1.1 (SHA-1
/// signatures) working for old devices under OpenSSL 3 (`backend::SECLEVEL`).
const CIPHERS_TLS12: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:\
AES128-GCM-SHA256:AES128-SHA:AES256-SHA";
pub(super) const CIPHERS_TLS12_CHACHA_FIRST: &std::ffi::CStr =
    c"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:\
AES128-GCM-SHA256:AES128-SHA:AES256-SHA";
const CIPHERS_TLS13: &str =
    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384";
const CIPHERS_TLS13_CHACHA_FIRST: &str =
    "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";

/// The server's order of suites: AES-GCM first where this CPU runs it in hardware, ChaCha20
/// first where it does not (software AES-GCM is slower, not constant-time, and its context
/// larger on every idle connection: PERFORMANCE.md, "ChaCha20 first on CPUs without AES
/// instructions"). TLS 1.2 list, TLS 1.3 list.
pub fn suite_order(aes_hardware: bool) -> (&'static str, &'static str) {
    if aes_hardware {
        (CIPHERS_TLS12, CIPHERS_TLS13)
    } else {
        let tls12 = CIPHERS_TLS12_CHACHA_FIRST.to_str().unwrap_or(CIPHERS_TLS12);
        (tls12, CIPHERS_TLS13_CHACHA_FIRST)
    }
}
const GROUPS: &str = "X25519:P-256:P-384";

// backend::library_options: SSL_OP_NO_ANTI_REPLAY. With 0-RTT on, OpenSSL would otherwise
// keep every TLS 1.3 session in the server cache only to refuse a replayed early request:
// thousands of sessions that pin heap pages after a burst of connections. A replayed
// request for an empty pixel is harmless.

/// Protocols, ciphers and modes (also used by the timing tests below).
fn base() -> Result<SslContextBuilder, ErrorStack> {
    let mut b = SslContext::builder(SslMethod::tls_server())?;
    b.set_session_id_context(SESSION_ID_CONTEXT)?;
    b.set_min_proto_version(Some(SslVersion::TLS1))?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))?;
    let (tls12, tls13) = suite_order(backend::aes_hardware());
    b.set_cipher_list(&format!("{tls12}{}", backend::SECLEVEL))?;
    backend::set_tls13_suites(&mut b, tls13)?;
    b.set_groups_list(GROUPS)?;
    // backend::library_options: no compression, ChaCha20 for clients that prefer it, and
    // IGNORE_UNEXPECTED_EOF: clients rarely send close_notify; without it OpenSSL 3 treats
    // their EOF as an error and drops the session from the cache (DEFECTS.md #21).
    b.set_options(
        SslOptions::CIPHER_SERVER_PREFERENCE
            | SslOptions::NO_RENEGOTIATION
            | backend::library_options(),
    );
    // Idle connections hold no TLS buffers; writes may be partial and resumed.
    // No chain built from a certificate store: the chain sent is exactly the one configured.
    b.set_mode(
        SslMode::RELEASE_BUFFERS
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::NO_AUTO_CHAIN,
    );
    // One read(2) per burst of records instead of one for each header and each body.
    b.set_read_ahead(true);
    Ok(b)
}

/// `chain`: the certificates of ca.crt. Those that are not self-signed (intermediates) are
/// sent after every leaf; a self-signed root is left out, since a client must already trust
/// it: fewer bytes and less client work per handshake. The ClientHello callback installs only
/// the leaf's certificate and key on each connection.
pub fn server_context(
    certs: Arc<Mutex<Certs>>,
    psl: Arc<Psl>,
    chain: &[X509],
) -> Result<SslContext, ErrorStack> {
    let mut b = base()?;
    b.set_session_cache_mode(SslSessionCacheMode::SERVER);
    // Sessions live for the library default (2 h for TLS), bounded in number.
    b.set_session_cache_size(SESSION_CACHE_SIZE);
    // One ticket per full handshake is enough for a client that reconnects.
    backend::set_tickets_and_early_data(&mut b)?;
    for c in chain.iter().filter(|c| !self_signed(c)) {
        b.add_extra_chain_cert(c.clone())?;
    }
    backend::set_client_hello_callback(&mut b, hello::callback(psl));
    hello::set_cert_callback(&mut b, certs);
    Ok(b.build())
}

/// Issued by itself and signed with its own key: a root.
fn self_signed(c: &X509) -> bool {
    c.issued(c) == X509VerifyResult::OK
        && c.public_key().and_then(|k| c.verify(&k)).unwrap_or(false)
}

/// Session cache figures for `ssh`, `ssm`, `ssp` (COMPATIBILITY.md §8.2).
pub struct SessionStats {
    pub stored: u64,
    pub hits: u64,
    pub misses: u64,
    pub full: u64,
}

pub fn session_stats(ctx: &SslContextRef) -> SessionStats {
    let c = backend::session_counters(ctx);
    SessionStats {
        stored: c.stored,
        hits: c.hits,
        misses: c.misses,
        full: c.full,
    }
}

/// Installs session-ticket keys shared with other instances (`--ticket-keys`).
pub fn set_ticket_keys(
    ctx: &SslContextRef,
    keys: &[u8; TICKET_KEYS_LEN],
) -> Result<(), ErrorStack> {
    backend::set_ticket_keys(ctx, keys)
}

/// Reads a ticket-key file: exactly 80 bytes of key material (e.g. `head -c 80
/// /dev/urandom`), the format nginx's `ssl_session_ticket_key` uses. Opened like every file
/// we read (`sys::files`): no link, regular, owned by `owners`, and at most a few bytes.
pub fn read_ticket_keys(
    path: &std::path::Path,
    owners: &Owners,
) -> Result<[u8; TICKET_KEYS_LEN], String> {
    let fail = |e: String| format!("{}: {}", path.display(), e);
    let bytes = match read_path(path, TICKET_KEYS_LEN as u64 + 1, owners) {
        Ok(Some(c)) => c.bytes,
        Ok(None) => return Err(fail("no such file".into())),
        Err(FileError::TooLarge { .. }) => {
            return Err(fail(format!(
                "must hold exactly {TICKET_KEYS_LEN} bytes, has more"
            )))
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    <[u8; TICKET_KEYS_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "{}: must hold exactly {} bytes, has {}",
            path.display(),
            TICKET_KEYS_LEN,
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_aes_instructions_chacha20_leads_and_no_suite_is_lost() {
        let sorted = |l: &str| {
            let mut v: Vec<String> = l.split(':').map(str::to_owned).collect();
            v.sort();
            v
        };
        let (aes12, aes13) = suite_order(true);
        let (cha12, cha13) = suite_order(false);
        assert!(aes13.starts_with("TLS_AES_128_GCM_SHA256:"), "{aes13}");
        assert!(
            aes12.starts_with("ECDHE-ECDSA-AES128-GCM-SHA256:"),
            "{aes12}"
        );
        assert!(
            cha13.starts_with("TLS_CHACHA20_POLY1305_SHA256:"),
            "{cha13}"
        );
        assert!(
            cha12.starts_with("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"),
            "{cha12}"
        );
        assert_eq!(sorted(aes12), sorted(cha12));
        assert_eq!(sorted(aes13), sorted(cha13));
    }

    use super::*;
    use crate::tls::certgen;
    use crate::x509::KeyType;
    use openssl::pkey::{PKeyRef, Private};
    use openssl::x509::X509Ref;

    #[test]
    fn self_signed_roots_are_not_sent() {
        let dir = crate::tls::store::tests::TempDir::new("chain");
        let (ca, _) = crate::tls::ca::load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        let key = crate::x509::new_key(KeyType::Ecdsa).unwrap();
        // A certificate signed by the CA stands in for an intermediate.
        let below = certgen::generate("*.example.com", None, &ca, &key).unwrap();
        assert!(self_signed(&ca.cert));
        assert!(!self_signed(&below));
        let psl = Arc::new(Psl::builtin());
        let certs = Arc::new(Mutex::new(crate::tls::certs::Certs::new(1)));
        // No extra chain at all (the crate's accessor assumes there is one, so no call here).
        server_context(certs.clone(), psl.clone(), &ca.chain).unwrap();
        let ctx = server_context(certs, psl, &[below.clone(), ca.cert.clone()]).unwrap();
        let sent = ctx.extra_chain_certs();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent.get(0).unwrap().to_der().unwrap(),
            below.to_der().unwrap()
        );
    }

    /// What the server did before: a context per certificate, switched to per connection.
    fn leaf_context(cert: &X509Ref, key: &PKeyRef<Private>, chain: &[X509]) -> SslContext {
        let mut b = base().unwrap();
        b.set_certificate(cert).unwrap();
        b.set_private_key(key).unwrap();
        for c in chain {
            b.add_extra_chain_cert(c.clone()).unwrap();
        }
        b.build()
    }

    /// One SSL_CTX per certificate (switched to per connection) against installing the
    /// certificate on each connection: CPU per connection for each.
    #[test]
    #[ignore = "timing: cargo test --release --lib switch_vs_install_cost -- --ignored --nocapture"]
    fn switch_vs_install_cost() {
        use openssl::ssl::Ssl;
        let key = crate::x509::new_key(KeyType::Ecdsa).unwrap();
        let dir = std::env::temp_dir().join(format!("pxs-sw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, _) = crate::tls::ca::load_or_create_at(&dir, KeyType::Ecdsa).unwrap();
        let cert = certgen::generate("*.example.com", None, &ca, &key).unwrap();
        let leaf = leaf_context(&cert, &key, &ca.chain);
        let server = base().unwrap().build();
        let n = 20000;
        for round in 0..2 {
            let t = std::time::Instant::now();
            for _ in 0..n {
                let ssl = Ssl::new(&server).unwrap();
                std::hint::black_box(&ssl);
            }
            let bare = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            let t = std::time::Instant::now();
            for _ in 0..n {
                let mut ssl = Ssl::new(&server).unwrap();
                ssl.set_ssl_context(&leaf).unwrap();
            }
            let switch = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            let t = std::time::Instant::now();
            for _ in 0..n {
                // What the certificate callback does (the chain comes from the context).
                let mut ssl = Ssl::new(&server).unwrap();
                backend::use_cert_and_key(&mut ssl, &cert, &key).unwrap();
            }
            let install = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!(
                "round {round}: SSL_new {bare:.2} us; + SSL_set_SSL_CTX {:.2} us; + use cert/key/chain {:.2} us",
                switch - bare,
                install - bare
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    #[ignore = "timing: cargo test --release --lib leaf_context_cost -- --ignored --nocapture"]
    fn leaf_context_cost() {
        let key = crate::x509::new_key(KeyType::Ecdsa).unwrap();
        let dir = std::env::temp_dir().join(format!("pxs-ctx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, _) = crate::tls::ca::load_or_create_at(&dir, KeyType::Ecdsa).unwrap();
        let cert = certgen::generate("*.example.com", None, &ca, &key).unwrap();
        let n = 200;
        let t = std::time::Instant::now();
        for _ in 0..n {
            leaf_context(&cert, &key, &ca.chain);
        }
        println!(
            "leaf_context: {:.1} us",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let t = std::time::Instant::now();
        for _ in 0..n {
            SslContext::builder(SslMethod::tls_server())
                .unwrap()
                .build();
        }
        println!(
            "bare SSL_CTX_new: {:.1} us",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let pem = crate::tls::store::pem_bytes(&cert, &key).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..n {
            X509::from_pem(&pem).unwrap();
            openssl::pkey::PKey::private_key_from_pem(&pem).unwrap();
        }
        println!(
            "parse cert+key: {:.1} us",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let t = std::time::Instant::now();
        for _ in 0..n {
            X509::from_pem(&pem).unwrap();
        }
        println!(
            "parse cert: {:.1} us",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let der = key.private_key_to_pkcs8().unwrap();
        let t = std::time::Instant::now();
        for _ in 0..n {
            openssl::pkey::PKey::private_key_from_pkcs8(&der).unwrap();
        }
        println!(
            "parse key pkcs8 der: {:.1} us",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let der = key.private_key_to_der().unwrap();
        let t = std::time::Instant::now();
        for _ in 0..n {
            openssl::pkey::PKey::private_key_from_der(&der).unwrap();
        }
        println!(
            "parse key der: {:.1} us",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let ecder = key.ec_key().unwrap().private_key_to_der().unwrap();
        let t = std::time::Instant::now();
        for _ in 0..n {
            openssl::ec::EcKey::private_key_from_der(&ecder).unwrap();
        }
        println!(
            "parse EC key der (legacy d2i): {:.1} us",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
