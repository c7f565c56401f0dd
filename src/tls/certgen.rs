//! Leaf certificate generation (COMPATIBILITY.md §7.3, with DEFECTS.md #19 and #20 fixed): a
//! modern server certificate with a 128-bit random serial and a 397-day lifetime (the
//! browsers' limit; the original's 825 days is rejected by Apple and Chrome). Blocking:
//! worker threads.

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::net::IpAddr;

use super::backend;
use super::ca::Ca;
use crate::x509::{self, asn1_time, random_serial, unix_now, BACKDATE_SECS, DAY};

/// Browsers and Apple refuse longer server certificate lifetimes (backdating included).
const LIFETIME_SECS: i64 = 397 * DAY;
/// X.520 upper bound of commonName; longer names go in the SAN only.
const MAX_CN: usize = 64;

/// Signs a server certificate for `subject` (`*.example.com`, `shop.co.uk`, or the address
/// text when `ip` is Some). Fails with an empty ErrorStack when the CA has no key.
pub fn generate(
    subject: &str,
    ip: Option<IpAddr>,
    ca: &Ca,
    leaf_key: &PKey<Private>,
) -> Result<X509, ErrorStack> {
    let ca_key = ca.key.as_ref().ok_or_else(ErrorStack::get)?;
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    let serial = random_serial()?;
    builder.set_serial_number(&serial)?;
    let now = unix_now();
    builder.set_not_before(asn1_time(now - BACKDATE_SECS)?.as_ref())?;
    // The lifetime counts from notBefore: at most 397 days in all (Apple and browsers limit
    // the span, back-dating included).
    builder.set_not_after(asn1_time(now - BACKDATE_SECS + LIFETIME_SECS)?.as_ref())?;
    builder.set_issuer_name(ca.cert.subject_name())?;
    let mut name = X509NameBuilder::new()?;
    let has_cn = subject.len() <= MAX_CN;
    if has_cn {
        name.append_entry_by_nid(Nid::COMMONNAME, subject)?;
    }
    builder.set_subject_name(&name.build())?;
    builder.set_pubkey(leaf_key)?;

    let mut san = SubjectAlternativeName::new();
    if !has_cn {
        // RFC 5280 4.2.1.6: critical when the subject is empty.
        san.critical();
    }
    match ip {
        Some(ip) => san.ip(&ip.to_string()),
        None => san.dns(subject),
    };
    let san = san.build(&builder.x509v3_context(Some(&ca.cert), None))?;
    builder.append_extension(san)?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    let mut usage = KeyUsage::new();
    usage.critical().digital_signature();
    if leaf_key.id() == Id::RSA {
        // TLS 1.2 RSA key exchange (AES128-SHA) encrypts to the certificate key.
        usage.key_encipherment();
    }
    builder.append_extension(usage.build()?)?;
    builder.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    // A user-supplied CA may lack a subjectKeyIdentifier; OpenSSL then refuses the AKI.
    if ca.cert.subject_key_id().is_some() {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&builder.x509v3_context(Some(&ca.cert), None))?;
        builder.append_extension(aki)?;
    }
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(Some(&ca.cert), None))?;
    builder.append_extension(ski)?;
    // EdDSA signs the message itself, with no digest.
    let digest = if backend::is_eddsa(ca_key.id()) {
        backend::eddsa_digest()
    } else {
        MessageDigest::sha256()
    };
    builder.sign(ca_key, digest)?;
    x509::reparsed(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ca::load_or_create_at as load_or_create;
    use crate::tls::store::tests::TempDir;
    use crate::x509::{needs_renewal, new_key as new_leaf_key, to_unix, KeyType};
    use openssl::asn1::Asn1Time;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509ExtendedKeyUsage, X509KeyUsage, X509StoreContext, X509VerifyResult};
    use std::time::Instant;

    fn ca(kind: KeyType) -> (TempDir, Ca) {
        let dir = TempDir::new("certgen");
        let ca = load_or_create(&dir.0, kind).unwrap().0;
        (dir, ca)
    }

    /// Full chain verification as a TLS client would do it, including host name checks.
    fn verify(ca: &Ca, cert: &X509, host: Option<&str>, ip: Option<&str>) -> X509VerifyResult {
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(ca.cert.clone()).unwrap();
        let mut param = openssl::x509::verify::X509VerifyParam::new().unwrap();
        if let Some(host) = host {
            param.set_host(host).unwrap();
        }
        if let Some(ip) = ip {
            param.set_ip(ip.parse().unwrap()).unwrap();
        }
        param
            .set_purpose(openssl::x509::X509PurposeId::SSL_SERVER)
            .unwrap();
        store.set_param(&param).unwrap();
        let store = store.build();
        let mut ctx = X509StoreContext::new().unwrap();
        let chain = Stack::new().unwrap();
        ctx.init(&store, cert, &chain, |c| {
            c.verify_cert()?;
            Ok(c.error())
        })
        .unwrap()
    }

    fn text(cert: &X509) -> String {
        String::from_utf8(cert.to_text().unwrap()).unwrap()
    }

    #[test]
    fn fields_for_every_key_combination() {
        for ca_kind in [KeyType::Ecdsa, KeyType::Rsa] {
            let (_dir, ca) = ca(ca_kind);
            for leaf_kind in [KeyType::Ecdsa, KeyType::Rsa] {
                let key = new_leaf_key(leaf_kind).unwrap();
                let cert = generate("*.example.com", None, &ca, &key).unwrap();
                let ca_public = ca.cert.public_key().unwrap();
                assert!(cert.verify(&ca_public).unwrap());
                assert!(cert.public_key().unwrap().public_eq(&key));
                assert_eq!(backend::x509_version(&cert), 2);
                assert_eq!(
                    cert.issuer_name().to_der().unwrap(),
                    ca.cert.subject_name().to_der().unwrap()
                );
                let cn = cert
                    .subject_name()
                    .entries_by_nid(Nid::COMMONNAME)
                    .next()
                    .unwrap();
                assert_eq!(cn.data().as_slice(), b"*.example.com");
                assert_eq!(cert.subject_name().entries().count(), 1);
                let sans = cert.subject_alt_names().unwrap();
                assert_eq!(sans.len(), 1);
                assert_eq!(sans.get(0).unwrap().dnsname(), Some("*.example.com"));
                assert_eq!(
                    cert.extended_key_usage(),
                    Some(X509ExtendedKeyUsage::SSL_SERVER)
                );
                let mut ku = X509KeyUsage::DIGITAL_SIGNATURE;
                if leaf_kind == KeyType::Rsa {
                    ku |= X509KeyUsage::KEY_ENCIPHERMENT;
                }
                assert_eq!(cert.key_usage(), Some(ku));
                assert_eq!(cert.pathlen(), None);
                assert_eq!(
                    cert.authority_key_id().unwrap().as_slice(),
                    ca.cert.subject_key_id().unwrap().as_slice()
                );
                assert!(cert.subject_key_id().is_some());
                let t = text(&cert);
                assert!(t.contains("X509v3 Basic Constraints: critical\n"), "{t}");
                assert!(t.contains("CA:FALSE"), "{t}");
                assert!(t.contains("X509v3 Key Usage: critical\n"), "{t}");
                assert!(t.contains("TLS Web Server Authentication"), "{t}");
                assert!(
                    t.contains("Signature Algorithm: ecdsa-with-SHA256")
                        == (ca_kind == KeyType::Ecdsa),
                    "{t}"
                );
                assert_eq!(
                    t.contains("Key Encipherment"),
                    leaf_kind == KeyType::Rsa,
                    "{t}"
                );
                assert_eq!(
                    verify(&ca, &cert, Some("ads.example.com"), None),
                    X509VerifyResult::OK
                );
                assert_ne!(
                    verify(&ca, &cert, Some("example.com"), None),
                    X509VerifyResult::OK
                );
            }
        }
    }

    #[test]
    fn validity_window() {
        let (_dir, ca) = ca(KeyType::Ecdsa);
        let key = new_leaf_key(KeyType::Ecdsa).unwrap();
        let cert = generate("a.example", None, &ca, &key).unwrap();
        let now = asn1_time(unix_now()).unwrap();
        let back = cert.not_before().diff(&now).unwrap();
        assert!(back.days == 2 && back.secs < 5 || back.days == 1 && back.secs > 86395);
        let ahead = now.diff(cert.not_after()).unwrap();
        assert!(ahead.days == 395 || ahead.days == 394 && ahead.secs > 86395);
        let span = cert.not_before().diff(cert.not_after()).unwrap();
        assert_eq!((span.days, span.secs), (397, 0));
        assert!(!needs_renewal(to_unix(cert.not_after()), unix_now()));
    }

    #[test]
    fn serials_are_positive_random_128_bit() {
        let (_dir, ca) = ca(KeyType::Ecdsa);
        let key = new_leaf_key(KeyType::Ecdsa).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut max_bits = 0;
        for _ in 0..64 {
            let cert = generate("a.example", None, &ca, &key).unwrap();
            let bn = cert.serial_number().to_bn().unwrap();
            assert!(!bn.is_negative());
            assert!(
                bn.num_bits() <= 127 && bn.num_bits() > 64,
                "{}",
                bn.num_bits()
            );
            max_bits = max_bits.max(bn.num_bits());
            assert!(seen.insert(bn.to_vec()));
        }
        // Only the sign bit is sacrificed: 2^-64 chance of a false failure.
        assert_eq!(max_bits, 127);
    }

    #[test]
    fn ip_certificates() {
        let (_dir, ca) = ca(KeyType::Rsa);
        let key = new_leaf_key(KeyType::Ecdsa).unwrap();
        for addr in ["127.0.0.1", "2001:db8::1"] {
            let ip: IpAddr = addr.parse().unwrap();
            let cert = generate(addr, Some(ip), &ca, &key).unwrap();
            let sans = cert.subject_alt_names().unwrap();
            assert_eq!(sans.len(), 1);
            let raw = sans.get(0).unwrap().ipaddress().unwrap();
            let expected = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            assert_eq!(raw, &expected[..]);
            assert_eq!(verify(&ca, &cert, None, Some(addr)), X509VerifyResult::OK);
        }
    }

    #[test]
    fn long_names_go_in_san_only() {
        let (_dir, ca) = ca(KeyType::Ecdsa);
        let key = new_leaf_key(KeyType::Ecdsa).unwrap();
        let long = format!("{}.example.com", "a".repeat(60));
        let cert = generate(&long, None, &ca, &key).unwrap();
        assert_eq!(cert.subject_name().entries().count(), 0);
        assert!(text(&cert).contains("X509v3 Subject Alternative Name: critical"));
        assert_eq!(verify(&ca, &cert, Some(&long), None), X509VerifyResult::OK);
        let exact = format!("{}.com", "b".repeat(60));
        assert_eq!(exact.len(), 64);
        let cert = generate(&exact, None, &ca, &key).unwrap();
        assert_eq!(cert.subject_name().entries().count(), 1);
    }

    #[test]
    fn no_ca_key_fails() {
        let (_dir, mut ca) = ca(KeyType::Ecdsa);
        ca.key = None;
        let key = new_leaf_key(KeyType::Ecdsa).unwrap();
        assert!(generate("a.example", None, &ca, &key).is_err());
    }

    #[test]
    fn ed25519_ca_without_ski_signs() {
        let (_dir, mut ca) = ca(KeyType::Ecdsa);
        let ca_key = PKey::generate_ed25519().unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "ed").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&ca_key).unwrap();
        b.set_not_before(Asn1Time::days_from_now(0).unwrap().as_ref())
            .unwrap();
        b.set_not_after(Asn1Time::days_from_now(9).unwrap().as_ref())
            .unwrap();
        b.append_extension(BasicConstraints::new().ca().build().unwrap())
            .unwrap();
        b.sign(&ca_key, backend::eddsa_digest()).unwrap();
        ca.cert = b.build();
        ca.key = Some(ca_key);
        let key = new_leaf_key(KeyType::Ecdsa).unwrap();
        let cert = generate("a.example", None, &ca, &key).unwrap();
        assert!(cert.verify(&ca.cert.public_key().unwrap()).unwrap());
        // This CA has no subjectKeyIdentifier, so the leaf has no AKI but still verifies.
        assert!(cert.authority_key_id().is_none());
        assert_eq!(
            verify(&ca, &cert, Some("a.example"), None),
            X509VerifyResult::OK
        );
    }

    fn with_not_after(ca: &Ca, not_after: i64) -> X509 {
        let key = new_leaf_key(KeyType::Ecdsa).unwrap();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&asn1_time(not_after - 10 * DAY).unwrap())
            .unwrap();
        b.set_not_after(&asn1_time(not_after).unwrap()).unwrap();
        b.sign(ca.key.as_ref().unwrap(), MessageDigest::sha256())
            .unwrap();
        b.build()
    }

    #[test]
    fn renewal_threshold() {
        let (_dir, ca) = ca(KeyType::Ecdsa);
        let now = unix_now();
        for (offset, renew) in [
            (-DAY, true),
            (0, true),
            (29 * DAY, true),
            (30 * DAY - 60, true),
            (30 * DAY + 60, false),
            (31 * DAY, false),
            (397 * DAY, false),
        ] {
            assert_eq!(
                needs_renewal(to_unix(with_not_after(&ca, now + offset).not_after()), now),
                renew,
                "{offset}"
            );
        }
    }

    /// Generation cost per certificate. Run with
    /// `cargo test --release --lib bench_generation -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_generation() {
        const N: u32 = 50;
        for ca_kind in [KeyType::Ecdsa, KeyType::Rsa] {
            let (_dir, ca) = ca(ca_kind);
            for leaf_kind in [KeyType::Ecdsa, KeyType::Rsa] {
                let shared = new_leaf_key(leaf_kind).unwrap();
                let start = Instant::now();
                for _ in 0..N {
                    generate("*.example.com", None, &ca, &shared).unwrap();
                }
                let shared_ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(N);
                let start = Instant::now();
                for _ in 0..N {
                    let key = new_leaf_key(leaf_kind).unwrap();
                    generate("*.example.com", None, &ca, &key).unwrap();
                }
                let fresh_ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(N);
                println!(
                    "CA {ca_kind:?} leaf {leaf_kind:?}: shared key {shared_ms:.3} ms, fresh key {fresh_ms:.3} ms"
                );
            }
        }
    }
}
