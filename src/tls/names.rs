//! Maps an SNI name to the certificate that serves it, and that certificate's file name.
//!
//! Unlike the original (DEFECTS.md #15, #16) names are validated and lower-cased before they become
//! file names, so no SNI can escape CERT_PATH or overwrite our own files there, and a wildcard
//! is never issued for a public suffix (`*.co.uk`).

use crate::sys::files::TMP_SUFFIX;
use std::fmt;
use std::net::IpAddr;

use super::psl::Psl;

const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;
/// Our own files in CERT_PATH; a certificate must never be written over one of them.
pub const RESERVED: [&str; 5] = [
    "ca.crt",
    "ca.key",
    "ca.key.passphrase",
    "prefetch",
    "public_suffix_list.dat",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    BadChar,
    BadLabel,
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "empty name",
            NameError::TooLong => "name or label too long",
            NameError::BadChar => "invalid character in name",
            NameError::BadLabel => "invalid label in name",
            NameError::Reserved => "name is reserved",
        })
    }
}

impl std::error::Error for NameError {}

/// A certificate name; the file name form uses `_` for the wildcard `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertName {
    file: String,
}

impl CertName {
    /// `_.example.com`, `shop.co.uk`, `127.0.0.1`: safe as a single path component.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// The certificate's CN / SAN text: `*.example.com`.
    pub fn subject(&self) -> String {
        match self.file.strip_prefix("_.") {
            Some(parent) => format!("*.{parent}"),
            None => self.file.clone(),
        }
    }

    /// The address for an `IP:` SAN instead of a `DNS:` one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.file.parse().ok()
    }

    /// Validates a name read back from disk or the prefetch file; only the canonical form that
    /// [`cert_name`] produces is accepted.
    pub fn from_file_name(s: &str) -> Result<CertName, NameError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return if ip.to_string() == s {
                Ok(CertName { file: s.to_owned() })
            } else {
                Err(NameError::BadChar)
            };
        }
        match s.strip_prefix("_.") {
            Some(parent) => check_dns(parent)?,
            None => check_host(s)?,
        }
        if s.len() > MAX_NAME {
            return Err(NameError::TooLong);
        }
        check_reserved(s)?;
        Ok(CertName { file: s.to_owned() })
    }
}

/// The certificate for an SNI host_name: exact for single labels, IP literals and names directly
/// under a public suffix; otherwise a wildcard for the parent (`ads.example.com` →
/// `*.example.com`).
pub fn cert_name(sni: &[u8], psl: &Psl) -> Result<CertName, NameError> {
    let name = sni.strip_suffix(b".").unwrap_or(sni);
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    if !name.is_ascii() {
        return Err(NameError::BadChar);
    }
    let name = String::from_utf8(name.to_ascii_lowercase()).map_err(|_| NameError::BadChar)?;
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(CertName {
            file: ip.to_string(),
        });
    }
    check_host(&name)?;
    let file = match name.split_once('.') {
        Some((_, parent)) if !psl.is_public_suffix(parent) => format!("_.{parent}"),
        _ => name,
    };
    check_reserved(&file)?;
    Ok(CertName { file })
}

/// The certificate used when the client sent no SNI: the address it connected to, in its
/// canonical form (an IPv4 client of a dual-stack socket asked for `a.b.c.d`, not
/// `::ffff:a.b.c.d`).
pub fn cert_name_for_ip(ip: IpAddr) -> CertName {
    CertName {
        file: ip.to_canonical().to_string(),
    }
}

/// A host name: a DNS name whose first label is not `_`, which would read as a wildcard.
fn check_host(name: &str) -> Result<(), NameError> {
    check_dns(name)?;
    if name == "_" || name.starts_with("_.") {
        return Err(NameError::BadLabel);
    }
    Ok(())
}

/// Lower-case LDH labels (plus `_`, which real tracker hosts use), 1..=63 bytes each.
fn check_dns(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    let valid =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.');
    if !name.bytes().all(valid) {
        return Err(NameError::BadChar);
    }
    for label in name.split('.') {
        if label.len() > MAX_LABEL {
            return Err(NameError::TooLong);
        }
        if label.is_empty() || label.starts_with('-') || label.ends_with('-') {
            return Err(NameError::BadLabel);
        }
    }
    Ok(())
}

fn check_reserved(file: &str) -> Result<(), NameError> {
    if RESERVED.contains(&file) || file.ends_with(TMP_SUFFIX) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::path::Path;
    use std::sync::OnceLock;

    fn builtin() -> &'static Psl {
        static P: OnceLock<Psl> = OnceLock::new();
        P.get_or_init(Psl::builtin)
    }

    fn full() -> &'static Psl {
        static P: OnceLock<Psl> = OnceLock::new();
        P.get_or_init(|| {
            let path =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("include-docs/public_suffix_list.dat");
            Psl::load(&path, &crate::sys::files::Owners::Any)
                .unwrap()
                .expect("shipped list")
        })
    }

    fn file(sni: &str, psl: &Psl) -> Result<String, NameError> {
        cert_name(sni.as_bytes(), psl).map(|c| c.file_name().to_owned())
    }

    #[test]
    fn examples() {
        let cases = [
            ("example.com", "example.com"),
            ("ads.example.com", "_.example.com"),
            ("a.b.c.example.com", "_.b.c.example.com"),
            ("shop.co.uk", "shop.co.uk"),
            ("x.y.co.uk", "_.y.co.uk"),
            ("www.google.de", "_.google.de"),
            ("UPPER.Example.COM", "_.example.com"),
            ("localhost", "localhost"),
            ("localhost.", "localhost"),
            ("ads.example.com.", "_.example.com"),
            ("co.uk", "co.uk"),
            ("foo.bar.ck", "foo.bar.ck"),
            ("a.www.ck", "_.www.ck"),
            ("x.city.kawasaki.jp", "_.city.kawasaki.jp"),
            ("x.foo.kawasaki.jp", "x.foo.kawasaki.jp"),
            ("xn--80ak6aa92e.com", "xn--80ak6aa92e.com"),
            ("a.xn--55qx5d.cn", "a.xn--55qx5d.cn"),
            ("_dmarc.example.com", "_.example.com"),
            ("my_host.example.com", "_.example.com"),
            ("_tcp.co.uk", "_tcp.co.uk"),
            ("a._.example.com", "_._.example.com"),
            ("1.2.3.256", "_.2.3.256"),
            ("x.ca.crt", "_.ca.crt"),
        ];
        for psl in [builtin(), full()] {
            for (sni, want) in cases {
                assert_eq!(file(sni, psl).as_deref(), Ok(want), "{sni}");
            }
        }
    }

    #[test]
    fn private_suffixes_only_with_full_list() {
        assert_eq!(
            file("foo.github.io", full()).as_deref(),
            Ok("foo.github.io")
        );
        assert_eq!(
            file("a.foo.github.io", full()).as_deref(),
            Ok("_.foo.github.io")
        );
        assert_eq!(
            file("foo.github.io", builtin()).as_deref(),
            Ok("_.github.io")
        );
    }

    #[test]
    fn subject_and_wildcard() {
        let c = cert_name(b"ads.example.com", builtin()).expect("valid");
        assert_eq!(c.subject(), "*.example.com");
        assert!(c.subject().starts_with("*."));
        assert_eq!(c.ip(), None);
        let c = cert_name(b"example.com", builtin()).expect("valid");
        assert_eq!(c.subject(), "example.com");
        assert!(!c.subject().starts_with("*."));
        assert_eq!(c.ip(), None);
    }

    #[test]
    fn ip_literals() {
        let c = cert_name(b"10.0.0.0", builtin()).expect("ip");
        assert_eq!(c.file_name(), "10.0.0.0");
        assert_eq!(c.ip(), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0))));
        assert_eq!(c.subject(), "10.0.0.0");
        assert!(!c.subject().starts_with("*."));
        let c = cert_name(b"10.0.0.1.", builtin()).expect("ip");
        assert_eq!(c.file_name(), "10.0.0.1");
        let c = cert_name(b"2001:DB8:0:0:0:0:0:1", builtin()).expect("ip6");
        assert_eq!(c.file_name(), "2001:db8::1");
        assert_eq!(c.ip(), Some("2001:db8::1".parse().expect("ip")));
        // Not IP literals, and not valid names either.
        for bad in ["[::1]", "fe80::1%eth0", "1.2.3.4:443", "::g"] {
            assert_eq!(file(bad, builtin()), Err(NameError::BadChar), "{bad}");
        }
        // Leading zeros are not an address: an ordinary (numeric) DNS name.
        assert_eq!(file("010.0.0.1", builtin()).as_deref(), Ok("_.0.0.1"));
    }

    #[test]
    fn no_sni_uses_local_address() {
        let c = cert_name_for_ip(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)));
        assert_eq!(c.file_name(), "192.168.1.2");
        assert_eq!(c.ip(), Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2))));
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(cert_name_for_ip(mapped).file_name(), "127.0.0.1");
        assert_eq!(
            cert_name_for_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)).file_name(),
            "::1"
        );
    }

    #[test]
    fn errors() {
        let p = builtin();
        assert_eq!(file("", p), Err(NameError::Empty));
        assert_eq!(file(".", p), Err(NameError::Empty));
        for bad in [
            "..",
            "a..b",
            ".a",
            "a.b..",
            "-a.com",
            "a-.com",
            "a.-b.com",
            "_",
            "_.com",
            "_.example.com",
        ] {
            assert_eq!(file(bad, p), Err(NameError::BadLabel), "{bad}");
        }
        for bad in [
            "../a",
            "a/b",
            "a\\b",
            "a b",
            "a\0b",
            "a\tb",
            "a*b.com",
            "*.example.com",
            "a:b",
            "ex\u{e4}mple.com",
            "a\x7f",
        ] {
            assert_eq!(file(bad, p), Err(NameError::BadChar), "{bad:?}");
        }
        assert_eq!(cert_name(b"a\xffb", p), Err(NameError::BadChar));
        assert_eq!(cert_name(b"a.com\0junk", p), Err(NameError::BadChar));
        for reserved in [
            "ca.crt",
            "CA.CRT",
            "ca.key",
            "prefetch",
            "public_suffix_list.dat",
            "foo.tmp",
            "a.b.tmp",
            "x.y.z.tmp",
        ] {
            assert_eq!(file(reserved, p), Err(NameError::Reserved), "{reserved}");
        }
        // The check is on the file name: this SNI maps to a harmless wildcard.
        assert_eq!(
            file("ca.key.passphrase", p).as_deref(),
            Ok("_.key.passphrase")
        );
        assert_eq!(file("tmp", p).as_deref(), Ok("tmp"));
        assert_eq!(file("a.tmp.com", p).as_deref(), Ok("_.tmp.com"));
    }

    #[test]
    fn lengths() {
        let p = builtin();
        let label63 = "a".repeat(63);
        assert!(file(&format!("{label63}.com"), p).is_ok());
        assert_eq!(file(&format!("{label63}a.com"), p), Err(NameError::TooLong));
        // 4 * 63 + 3 dots = 255 > 253; 3 * 63 + 61 + 3 dots = 253.
        let name253 = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
        assert_eq!(name253.len(), 253);
        let c = cert_name(name253.as_bytes(), p).expect("253 is fine");
        assert!(c.file_name().len() <= 253);
        assert!(cert_name(format!("{name253}.").as_bytes(), p).is_ok());
        assert_eq!(file(&format!("{name253}b"), p), Err(NameError::TooLong));
        assert_eq!(file(&format!("{name253}.."), p), Err(NameError::TooLong));
        assert_eq!(cert_name(&[b'a'; 100_000], p), Err(NameError::TooLong));
    }

    #[test]
    fn from_file_name_round_trip_and_validation() {
        for f in [
            "_.example.com",
            "example.com",
            "localhost",
            "127.0.0.1",
            "::1",
            "2001:db8::1",
            "_._.example.com",
            "_tcp.co.uk",
            "shop.co.uk",
        ] {
            let c = CertName::from_file_name(f).expect(f);
            assert_eq!(c.file_name(), f);
        }
        assert_eq!(
            CertName::from_file_name("_.example.com")
                .expect("ok")
                .subject(),
            "*.example.com"
        );
        assert_eq!(
            CertName::from_file_name("::1").expect("ok").ip(),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        let cases = [
            ("", NameError::Empty),
            ("_.", NameError::Empty),
            ("_", NameError::BadLabel),
            ("_..a", NameError::BadLabel),
            ("Example.com", NameError::BadChar),
            ("example.com.", NameError::BadLabel),
            ("*.example.com", NameError::BadChar),
            ("../x", NameError::BadChar),
            (".x", NameError::BadLabel),
            ("a/b", NameError::BadChar),
            ("2001:DB8::1", NameError::BadChar),
            ("2001:db8:0::1", NameError::BadChar),
            ("ca.crt", NameError::Reserved),
            ("prefetch", NameError::Reserved),
            ("ca.key.passphrase", NameError::Reserved),
            ("public_suffix_list.dat", NameError::Reserved),
            ("_.foo.tmp", NameError::Reserved),
            ("ex.tmp", NameError::Reserved),
        ];
        for (f, e) in cases {
            assert_eq!(CertName::from_file_name(f), Err(e), "{f:?}");
        }
        let long = format!("_.{}", vec!["a".repeat(63); 4].join("."));
        assert_eq!(CertName::from_file_name(&long), Err(NameError::TooLong));
        let just_fits = format!("_.{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(59));
        assert_eq!(just_fits.len(), 253);
        assert!(CertName::from_file_name(&just_fits).is_ok());
        assert_eq!(
            CertName::from_file_name(&format!("{just_fits}b")),
            Err(NameError::TooLong)
        );
    }

    fn assert_safe(sni: &[u8], c: &CertName) {
        let f = c.file_name();
        assert!(!f.is_empty() && f.len() <= 255, "{sni:?}");
        assert!(!f.contains('/') && !f.contains('\0'), "{sni:?}");
        assert!(
            f != "." && f != ".." && !f.starts_with('.') && !f.starts_with('-'),
            "{sni:?}"
        );
        assert!(!RESERVED.contains(&f) && !f.ends_with(".tmp"), "{sni:?}");
        let dir = Path::new("/var/cache/pixelserv");
        assert_eq!(dir.join(f).parent(), Some(dir), "{sni:?}");
        assert_eq!(
            dir.join(f).file_name().and_then(|n| n.to_str()),
            Some(f),
            "{sni:?}"
        );
        assert_eq!(CertName::from_file_name(f).as_ref(), Ok(c), "{sni:?}");
        assert_eq!(c.subject().len(), f.len());
    }

    #[test]
    fn hostile_names_property() {
        const ALPHABET: &[u8] = b"aZ0-_./\\\0:*%[] \xff\x80\n.a.a-ca.crtmp";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ok = 0;
        for round in 0..50_000 {
            let len = (next() % if round % 10 == 0 { 300 } else { 24 }) as usize;
            let sni: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if round % 3 == 0 {
                        r as u8
                    } else {
                        ALPHABET[(r % ALPHABET.len() as u64) as usize]
                    }
                })
                .collect();
            for psl in [builtin(), full()] {
                if let Ok(c) = cert_name(&sni, psl) {
                    assert_safe(&sni, &c);
                    ok += 1;
                }
            }
            // Read-back validation must never accept something unsafe either.
            if let Ok(s) = std::str::from_utf8(&sni) {
                if let Ok(c) = CertName::from_file_name(s) {
                    assert_safe(&sni, &c);
                }
            }
        }
        assert!(
            ok > 1000,
            "generator too hostile to exercise the Ok path: {ok}"
        );
    }

    #[test]
    fn display() {
        assert_eq!(NameError::Reserved.to_string(), "name is reserved");
        assert!(NameError::BadChar.to_string().contains("character"));
    }
}
