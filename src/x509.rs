//! X.509 building blocks shared by the CA and the leaf certificates: clock and validity
//! helpers, serial numbers, key making, and the one renewal policy that both the in-memory
//! cache and the files on disk follow.

use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time, Asn1TimeRef};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::X509;

pub const DAY: i64 = 86400;
/// Every certificate we make starts this far in the past: routers boot with wrong clocks and
/// clients may run slightly behind.
pub const BACKDATE_SECS: i64 = 2 * DAY;
/// A certificate this close to its notAfter is replaced before it is served, whether it
/// comes from the cache or from a file (a leaf lives 397 days, so this is its last month).
pub const RENEW_BEFORE_SECS: i64 = 30 * DAY;

/// The key type of generated certificates (`--leaf-key`) and of a CA we create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256: microseconds to make, small handshakes.
    Ecdsa,
    /// RSA-2048, for clients that cannot verify ECDSA.
    Rsa,
}

pub fn new_key(kind: KeyType) -> Result<PKey<Private>, ErrorStack> {
    match kind {
        KeyType::Ecdsa => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            PKey::from_ec_key(EcKey::generate(&group)?)
        }
        KeyType::Rsa => PKey::from_rsa(Rsa::generate(2048)?),
    }
}

/// Seconds since the epoch; 0 for a clock before 1970.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2))
        .unwrap_or(0)
}

/// `Asn1Time` from seconds since the epoch; where `time_t` is 32 bits, dates past 2038 are
/// clamped rather than wrapped.
pub fn asn1_time(unix: i64) -> Result<Asn1Time, ErrorStack> {
    let t = libc::time_t::try_from(unix).unwrap_or(if unix < 0 {
        libc::time_t::MIN
    } else {
        libc::time_t::MAX
    });
    Asn1Time::from_unix(t)
}

/// A certificate time as seconds since the epoch (0 if it cannot be read).
pub fn to_unix(t: &Asn1TimeRef) -> i64 {
    let now = unix_now();
    match asn1_time(now).and_then(|n| n.diff(t)) {
        Ok(d) => now + i64::from(d.days) * DAY + i64::from(d.secs),
        Err(_) => 0,
    }
}

/// The renewal policy: true when `not_after` (seconds since the epoch) is at most
/// `RENEW_BEFORE_SECS` away from `now`.
pub fn needs_renewal(not_after: i64, now: i64) -> bool {
    not_after - now <= RENEW_BEFORE_SECS
}

/// A certificate just built, parsed back from its DER. OpenSSL keeps the encoding of a parsed
/// certificate but not of a built one, which it would encode again for every handshake that
/// sends it (about 100,000 instructions each time).
pub fn reparsed(cert: X509) -> Result<X509, ErrorStack> {
    X509::from_der(&cert.to_der()?)
}

/// 128 random bits with the top bit cleared, so the DER INTEGER is positive (RFC 5280).
pub fn random_serial() -> Result<Asn1Integer, ErrorStack> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes)?;
    bytes[0] &= 0x7f;
    BigNum::from_slice(&bytes)?.to_asn1_integer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_threshold() {
        let now = 1_700_000_000;
        for (offset, renew) in [
            (-DAY, true),
            (0, true),
            (29 * DAY, true),
            (30 * DAY, true),
            (30 * DAY + 60, false),
            (397 * DAY, false),
        ] {
            assert_eq!(needs_renewal(now + offset, now), renew, "{offset}");
        }
    }

    #[test]
    fn times_round_trip() {
        let now = unix_now();
        assert!(now > 1_600_000_000);
        for t in [now - BACKDATE_SECS, now, now + 397 * DAY] {
            let back = to_unix(&asn1_time(t).unwrap());
            assert!((back - t).abs() <= 1, "{t} -> {back}");
        }
    }

    #[test]
    fn serials_are_positive_and_distinct() {
        let a = random_serial().unwrap().to_bn().unwrap();
        let b = random_serial().unwrap().to_bn().unwrap();
        assert!(!a.is_negative() && a.num_bits() <= 127);
        assert_ne!(a.to_vec(), b.to_vec());
    }

    #[test]
    fn keys_of_each_type() {
        assert_eq!(new_key(KeyType::Ecdsa).unwrap().id(), openssl::pkey::Id::EC);
        let rsa = new_key(KeyType::Rsa).unwrap();
        assert_eq!((rsa.id(), rsa.bits()), (openssl::pkey::Id::RSA, 2048));
    }
}
