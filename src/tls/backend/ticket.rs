//! OpenSSL's session ticket, made and read without OpenSSL, so that an AWS-LC instance and
//! an OpenSSL one sharing `--ticket-keys` resume each other's sessions. Two parts:
//!
//! - the envelope: key name (16) | IV (16) | AES-256-CBC ciphertext (PKCS#7) | HMAC-SHA256
//!   over everything before it, with the 80-byte key file name (16) | HMAC key (32) |
//!   AES key (32) (OpenSSL's `SSL_CTX_set_tlsext_ticket_keys` layout);
//! - the plaintext: OpenSSL's `i2d_SSL_SESSION` DER (ssl/ssl_asn1.c, SSL_SESSION_ASN1),
//!   transcoded to and from AWS-LC's `SSL_SESSION_to_bytes_for_ticket` DER
//!   (ssl/ssl_asn1.cc, "An SSL_SESSION is serialized as").
//!
//! Both session encodings are a SEQUENCE of version 1, protocol version, cipher (2 bytes),
//! session ID, master key, then fields wrapped in EXPLICIT context tags [n] in increasing
//! order. The shared fields keep their tags ([1] time, [2] timeout, [4] session ID context,
//! [5] verify result); the others move:
//!
//! | OpenSSL                         | AWS-LC                          |
//! |---------------------------------|---------------------------------|
//! | [6] SNI host name               | (skipped by its parser)         |
//! | [13] flags, bit 0x1 = EMS       | [17] extendedMasterSecret BOOL  |
//! | [14] tick_age_add INTEGER       | [21] ticketAgeAdd OCTET(4, BE)  |
//! | [15] max_early_data             | [24] ticketMaxEarlyData         |
//! | [16] alpn_selected              | [26] earlyALPN                  |
//! | [19] kex_group                  | [18] groupID                    |
//! | (none)                          | [22] isServer, default TRUE     |
//! | (none)                          | [25] authTimeout, default [2]   |
//!
//! What has no counterpart is dropped: client certificates (this server asks for none),
//! client-only ticket fields, PSK/SRP identities, compression, fragment length, and AWS-LC's
//! authTimeout (how long resumptions may renew a TLS 1.3 session: 7 days from its full
//! handshake). Read back, that one defaults to the timeout (2 days for TLS 1.3 under
//! AWS-LC), so an AWS-LC instance now renews a session up to 2 days from its full handshake
//! instead of 7.
//!
//! In TLS 1.3 both libraries keep the ticket's resumption PSK in the master key field
//! (OpenSSL: tls_construct_new_session_ticket expands the resumption secret with the
//! ticket nonce into `session->master_key`; AWS-LC: tls13_derive_session_psk writes
//! `session->secret`), so the field carries over as it is.
//!
//! Integers: both write minimal DER. OpenSSL's Z-types leave a zero value out and read a
//! missing one as zero (time: now; timeout: 3 s); AWS-LC requires [1] and [2] and refuses
//! non-minimal or negative integers, tags out of order, unknown tags and trailing bytes, so
//! what is written for it holds only fields it knows, in order.
//!
//! Everything read here comes from a client (after the MAC check, from a holder of the
//! keys): every failure is an `Err`, never a panic.

use openssl::hash::{Hasher, MessageDigest};
use openssl::symm::{decrypt, encrypt, Cipher};

use super::TICKET_KEYS_LEN;

/// Why a ticket or session encoding was not used.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// The ticket is under another key name.
    UnknownKey,
    /// Too short, bad MAC or bad padding.
    Envelope,
    /// The plaintext is not a session encoding we read.
    Malformed,
    /// The crypto library failed.
    Crypto,
}

const NAME_LEN: usize = 16;
const IV_LEN: usize = 16;
const MAC_LEN: usize = 32;
/// AES block: PKCS#7 adds 1 to 16 bytes.
const BLOCK: usize = 16;
/// Bytes the envelope adds to a plaintext at most.
pub const ENVELOPE_OVERHEAD: usize = NAME_LEN + IV_LEN + BLOCK + MAC_LEN;
/// Bytes the AWS-LC → OpenSSL transcoding adds at most: the SNI name (255 bytes and its
/// headers), [19] always present, flags, and an INTEGER for the 4-byte age add.
pub const TRANSCODE_GROWTH: usize = 255 + 8 + 9 + 9 + 9 + 16;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
/// Explicit context tag [n].
const fn ctx(n: u8) -> u8 {
    0xa0 | n
}

const TLS1_3: u16 = 0x0304;
/// SSL_SESS_FLAG_EXTMS in OpenSSL's session flags.
const FLAG_EXTMS: u64 = 0x1;
/// The largest secret AWS-LC keeps (SSL_MAX_MASTER_KEY_LENGTH); OpenSSL's is larger.
const MAX_SECRET: usize = 48;
/// Session ID and session ID context limit in both libraries.
const MAX_ID: usize = 32;

/// The fields the two encodings share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Session {
    pub ssl_version: u16,
    pub cipher: [u8; 2],
    pub session_id: Vec<u8>,
    pub secret: Vec<u8>,
    pub time: u64,
    pub timeout: u32,
    pub sid_ctx: Vec<u8>,
    pub verify_result: u32,
    /// OpenSSL only; AWS-LC's parser skips it.
    pub hostname: Option<Vec<u8>>,
    pub extended_master_secret: bool,
    pub ticket_age_add: Option<u32>,
    pub max_early_data: u32,
    pub alpn: Vec<u8>,
    pub group: u16,
}

// ---- DER reading ----

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    /// One element: its tag and contents (single-byte tags, definite minimal lengths).
    fn element(&mut self) -> Result<(u8, &'a [u8]), Error> {
        let (&tag, rest) = self.buf.split_first().ok_or(Error::Malformed)?;
        if tag & 0x1f == 0x1f {
            return Err(Error::Malformed);
        }
        let (&first, rest) = rest.split_first().ok_or(Error::Malformed)?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n || rest[0] == 0 {
                return Err(Error::Malformed);
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, &b| a << 8 | usize::from(b));
            if len < 0x80 {
                return Err(Error::Malformed);
            }
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(Error::Malformed);
        }
        self.buf = &rest[len..];
        Ok((tag, &rest[..len]))
    }

    fn expect(&mut self, tag: u8) -> Result<&'a [u8], Error> {
        match self.element()? {
            (t, c) if t == tag => Ok(c),
            _ => Err(Error::Malformed),
        }
    }
}

/// The contents of `der`, which must be exactly one element with this tag.
fn only(der: &[u8], tag: u8) -> Result<&[u8], Error> {
    let mut r = Reader::new(der);
    let c = r.expect(tag)?;
    if r.is_empty() {
        Ok(c)
    } else {
        Err(Error::Malformed)
    }
}

/// A non-negative minimal DER INTEGER of at most 64 bits.
fn uint(c: &[u8]) -> Result<u64, Error> {
    match c {
        [] => Err(Error::Malformed),
        [b, ..] if b & 0x80 != 0 => Err(Error::Malformed),
        [0, b, ..] if b & 0x80 == 0 => Err(Error::Malformed),
        [0, rest @ ..] if rest.len() == 8 => Ok(be(rest)),
        _ if c.len() > 8 => Err(Error::Malformed),
        _ => Ok(be(c)),
    }
}

fn be(c: &[u8]) -> u64 {
    c.iter().fold(0u64, |a, &b| a << 8 | u64::from(b))
}

fn int_field(c: &[u8]) -> Result<u64, Error> {
    uint(only(c, INTEGER)?)
}

fn narrow<T: TryFrom<u64>>(v: u64) -> Result<T, Error> {
    T::try_from(v).map_err(|_| Error::Malformed)
}

fn octets(c: &[u8], max: usize) -> Result<Vec<u8>, Error> {
    let v = only(c, OCTET_STRING)?;
    if v.len() > max {
        return Err(Error::Malformed);
    }
    Ok(v.to_vec())
}

fn boolean(c: &[u8]) -> Result<bool, Error> {
    match only(c, BOOLEAN)? {
        [0x00] => Ok(false),
        [0xff] => Ok(true),
        _ => Err(Error::Malformed),
    }
}

/// The header both encodings start with, up to the master key; the reader is left at the
/// tagged fields.
fn header<'a>(der: &'a [u8], s: &mut Session) -> Result<Reader<'a>, Error> {
    let mut r = Reader::new(only(der, SEQUENCE)?);
    if uint(r.expect(INTEGER)?)? != 1 {
        return Err(Error::Malformed);
    }
    s.ssl_version = narrow(uint(r.expect(INTEGER)?)?)?;
    if s.ssl_version >> 8 != 3 {
        return Err(Error::Malformed);
    }
    s.cipher = r
        .expect(OCTET_STRING)?
        .try_into()
        .map_err(|_| Error::Malformed)?;
    s.session_id = r.expect(OCTET_STRING)?.to_vec();
    s.secret = r.expect(OCTET_STRING)?.to_vec();
    if s.session_id.len() > MAX_ID || s.secret.len() > MAX_SECRET {
        return Err(Error::Malformed);
    }
    Ok(r)
}

/// The tagged fields, each an explicit [n] (or, OpenSSL's [0], implicit) in strictly
/// increasing order, handed to `f` with their number and contents.
fn tagged<'a>(
    mut r: Reader<'a>,
    mut f: impl FnMut(u8, &'a [u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut last: Option<u8> = None;
    while r.peek_tag().is_some() {
        let (tag, c) = r.element()?;
        if tag & 0xc0 != 0x80 {
            return Err(Error::Malformed);
        }
        let n = tag & 0x1f;
        if last.is_some_and(|l| n <= l) {
            return Err(Error::Malformed);
        }
        last = Some(n);
        f(n, c)?;
    }
    Ok(())
}

/// OpenSSL's `i2d_SSL_SESSION` encoding. `now`: the time OpenSSL gives a session without
/// one.
pub fn from_openssl(der: &[u8], now: u64) -> Result<Session, Error> {
    let mut s = Session::default();
    let r = header(der, &mut s)?;
    let (mut time, mut timeout, mut age_add) = (None, None, None);
    tagged(r, |n, c| {
        match n {
            1 => time = Some(int_field(c)?),
            2 => timeout = Some(int_field(c)?),
            4 => s.sid_ctx = octets(c, MAX_ID)?,
            5 => s.verify_result = narrow(int_field(c)?)?,
            6 => s.hostname = Some(octets(c, 255)?),
            13 => s.extended_master_secret = int_field(c)? & FLAG_EXTMS != 0,
            14 => age_add = Some(narrow(int_field(c)?)?),
            15 => s.max_early_data = narrow(int_field(c)?)?,
            16 => s.alpn = octets(c, 255)?,
            19 => s.group = narrow(int_field(c)?)?,
            // Client certificate, PSK and SRP identities, ticket and lifetime (client
            // side), compression, fragment length, app data, raw public key.
            0 | 3 | 7..=12 | 17 | 18 | 20 => {}
            _ => return Err(Error::Malformed),
        }
        Ok(())
    })?;
    s.time = time.filter(|&t| t != 0).unwrap_or(now);
    s.timeout = narrow(timeout.filter(|&t| t != 0).unwrap_or(3))?;
    // A zero age add is left out by OpenSSL; TLS 1.3 sessions always have one.
    s.ticket_age_add = age_add.or((s.ssl_version == TLS1_3).then_some(0));
    Ok(s)
}

/// AWS-LC's `SSL_SESSION_to_bytes_for_ticket` (or `SSL_SESSION_to_bytes`) encoding.
pub fn from_awslc(der: &[u8]) -> Result<Session, Error> {
    let mut s = Session::default();
    let mut r = header(der, &mut s)?;
    s.time = int_field(r.expect(ctx(1))?)?;
    s.timeout = narrow(int_field(r.expect(ctx(2))?)?)?;
    tagged(r, |n, c| {
        match n {
            4 => s.sid_ctx = octets(c, MAX_ID)?,
            5 => s.verify_result = narrow(int_field(c)?)?,
            17 => s.extended_master_secret = boolean(c)?,
            18 => s.group = narrow(int_field(c)?)?,
            21 => {
                let b: [u8; 4] = octets(c, 4)?.try_into().map_err(|_| Error::Malformed)?;
                s.ticket_age_add = Some(u32::from_be_bytes(b));
            }
            24 => s.max_early_data = narrow(int_field(c)?)?,
            26 => s.alpn = octets(c, 255)?,
            // Peer certificates and hashes, PSK identity, client-side ticket fields, SCTs,
            // OCSP, is-server, signature algorithm, auth timeout, QUIC, ALPS.
            3 | 6 | 8..=10 | 13..=16 | 19 | 22 | 23 | 25 | 27..=30 => {}
            _ => return Err(Error::Malformed),
        }
        Ok(())
    })?;
    Ok(s)
}

// ---- DER writing ----

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    push_len(out, content.len());
    out.extend_from_slice(content);
}

fn int_bytes(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    let mut c = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        c.push(0);
    }
    c.extend_from_slice(&bytes[skip..]);
    c
}

fn int(out: &mut Vec<u8>, v: u64) {
    tlv(out, INTEGER, &int_bytes(v));
}

/// [n] wrapping an INTEGER.
fn tagged_int(out: &mut Vec<u8>, n: u8, v: u64) {
    let mut c = Vec::with_capacity(11);
    int(&mut c, v);
    tlv(out, ctx(n), &c);
}

/// [n] wrapping an OCTET STRING.
fn tagged_octets(out: &mut Vec<u8>, n: u8, v: &[u8]) {
    let mut c = Vec::with_capacity(v.len() + 4);
    tlv(&mut c, OCTET_STRING, v);
    tlv(out, ctx(n), &c);
}

fn header_out(s: &Session) -> Vec<u8> {
    let mut b = Vec::with_capacity(160);
    int(&mut b, 1);
    int(&mut b, u64::from(s.ssl_version));
    tlv(&mut b, OCTET_STRING, &s.cipher);
    tlv(&mut b, OCTET_STRING, &s.session_id);
    tlv(&mut b, OCTET_STRING, &s.secret);
    b
}

fn sequence(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    tlv(&mut out, SEQUENCE, body);
    out
}

/// What OpenSSL's `i2d_SSL_SESSION` writes for this session (zero Z-integers left out,
/// [4] and [19] always present).
pub fn to_openssl(s: &Session) -> Vec<u8> {
    let mut b = header_out(s);
    if s.time != 0 {
        tagged_int(&mut b, 1, s.time);
    }
    if s.timeout != 0 {
        tagged_int(&mut b, 2, u64::from(s.timeout));
    }
    tagged_octets(&mut b, 4, &s.sid_ctx);
    if s.verify_result != 0 {
        tagged_int(&mut b, 5, u64::from(s.verify_result));
    }
    if let Some(h) = &s.hostname {
        tagged_octets(&mut b, 6, h);
    }
    if s.extended_master_secret {
        tagged_int(&mut b, 13, FLAG_EXTMS);
    }
    if let Some(a) = s.ticket_age_add.filter(|&a| a != 0) {
        tagged_int(&mut b, 14, u64::from(a));
    }
    if s.max_early_data != 0 {
        tagged_int(&mut b, 15, u64::from(s.max_early_data));
    }
    if !s.alpn.is_empty() {
        tagged_octets(&mut b, 16, &s.alpn);
    }
    tagged_int(&mut b, 19, u64::from(s.group));
    sequence(&b)
}

/// What AWS-LC's `SSL_SESSION_to_bytes_for_ticket` writes for this (server) session.
pub fn to_awslc(s: &Session) -> Vec<u8> {
    let mut b = header_out(s);
    tagged_int(&mut b, 1, s.time);
    tagged_int(&mut b, 2, u64::from(s.timeout));
    tagged_octets(&mut b, 4, &s.sid_ctx);
    if s.verify_result != 0 {
        tagged_int(&mut b, 5, u64::from(s.verify_result));
    }
    if s.extended_master_secret {
        tlv(&mut b, ctx(17), &[BOOLEAN, 1, 0xff]);
    }
    if s.group != 0 {
        tagged_int(&mut b, 18, u64::from(s.group));
    }
    if let Some(a) = s.ticket_age_add {
        tagged_octets(&mut b, 21, &a.to_be_bytes());
    }
    if s.max_early_data != 0 {
        tagged_int(&mut b, 24, u64::from(s.max_early_data));
    }
    if !s.alpn.is_empty() {
        tagged_octets(&mut b, 26, &s.alpn);
    }
    sequence(&b)
}

// ---- the envelope ----

struct Keys<'a> {
    name: &'a [u8],
    hmac: &'a [u8],
    aes: &'a [u8],
}

fn split(keys: &[u8; TICKET_KEYS_LEN]) -> Keys<'_> {
    let (name, rest) = keys.split_at(NAME_LEN);
    let (hmac, aes) = rest.split_at(32);
    Keys { name, hmac, aes }
}

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`, with a 32-byte key.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<[u8; MAC_LEN], Error> {
    const B: usize = 64;
    let mut k = [0u8; B];
    k[..key.len()].copy_from_slice(key);
    let pad = |x: u8| k.map(|b| b ^ x);
    let run = |pad: &[u8], parts: &[&[u8]]| -> Result<[u8; MAC_LEN], openssl::error::ErrorStack> {
        let mut h = Hasher::new(MessageDigest::sha256())?;
        h.update(pad)?;
        for p in parts {
            h.update(p)?;
        }
        let d = h.finish()?;
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&d);
        Ok(out)
    };
    let inner = run(&pad(0x36), parts).map_err(|_| Error::Crypto)?;
    run(&pad(0x5c), &[&inner]).map_err(|_| Error::Crypto)
}

/// The ticket for `plaintext` under `keys`, with this IV.
pub fn seal(
    keys: &[u8; TICKET_KEYS_LEN],
    iv: &[u8; IV_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let k = split(keys);
    let ct =
        encrypt(Cipher::aes_256_cbc(), k.aes, Some(iv), plaintext).map_err(|_| Error::Crypto)?;
    let mut out = Vec::with_capacity(NAME_LEN + IV_LEN + ct.len() + MAC_LEN);
    out.extend_from_slice(k.name);
    out.extend_from_slice(iv);
    out.extend_from_slice(&ct);
    let mac = hmac_sha256(k.hmac, &[&out])?;
    out.extend_from_slice(&mac);
    Ok(out)
}

/// The plaintext of a ticket made under `keys`.
pub fn open(keys: &[u8; TICKET_KEYS_LEN], ticket: &[u8]) -> Result<Vec<u8>, Error> {
    let k = split(keys);
    if ticket.len() < NAME_LEN + IV_LEN + BLOCK + MAC_LEN {
        return Err(Error::Envelope);
    }
    if ticket[..NAME_LEN] != *k.name {
        return Err(Error::UnknownKey);
    }
    let (body, mac) = ticket.split_at(ticket.len() - MAC_LEN);
    let want = hmac_sha256(k.hmac, &[body])?;
    if !openssl::memcmp::eq(&want, mac) {
        return Err(Error::Envelope);
    }
    let (iv, ct) = body[NAME_LEN..].split_at(IV_LEN);
    if ct.len() % BLOCK != 0 {
        return Err(Error::Envelope);
    }
    decrypt(Cipher::aes_256_cbc(), k.aes, Some(iv), ct).map_err(|_| Error::Envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls13() -> Session {
        Session {
            ssl_version: TLS1_3,
            cipher: [0x13, 0x01],
            session_id: vec![],
            secret: (0..32).collect(),
            time: 1_780_000_000,
            timeout: 7200,
            sid_ctx: b"pixelserv-tls".to_vec(),
            verify_result: 0,
            hostname: None,
            extended_master_secret: false,
            ticket_age_add: Some(0x8123_4567),
            max_early_data: 14336,
            alpn: b"h2".to_vec(),
            group: 29,
        }
    }

    fn tls12() -> Session {
        Session {
            ssl_version: 0x0303,
            cipher: [0xc0, 0x2f],
            session_id: vec![7; 32],
            secret: vec![9; 48],
            extended_master_secret: true,
            ticket_age_add: None,
            max_early_data: 0,
            alpn: vec![],
            group: 23,
            ..tls13()
        }
    }

    #[test]
    fn integers_are_minimal_der() {
        assert_eq!(int_bytes(0), [0]);
        assert_eq!(int_bytes(0x7f), [0x7f]);
        assert_eq!(int_bytes(0x80), [0, 0x80]);
        assert_eq!(int_bytes(0x0100), [1, 0]);
        assert_eq!(
            int_bytes(u64::MAX),
            [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        for v in [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x8000_0000, u64::MAX] {
            assert_eq!(uint(&int_bytes(v)), Ok(v));
        }
        assert!(uint(&[0, 1]).is_err(), "padding");
        assert!(uint(&[0x80]).is_err(), "negative");
        assert!(uint(&[]).is_err());
        assert!(uint(&[1; 9]).is_err(), "too long");
    }

    #[test]
    fn both_formats_round_trip() {
        for s in [tls13(), tls12()] {
            assert_eq!(from_awslc(&to_awslc(&s)), Ok(s.clone()));
            assert_eq!(from_openssl(&to_openssl(&s), 1), Ok(s.clone()));
            let with_name = Session {
                hostname: Some(b"ads.example".to_vec()),
                ..s.clone()
            };
            // AWS-LC has no host name: it is dropped on the way there.
            let back = from_awslc(&to_awslc(&with_name)).unwrap();
            assert_eq!(back, s);
            assert_eq!(from_openssl(&to_openssl(&with_name), 1), Ok(with_name));
        }
    }

    #[test]
    fn openssl_defaults_for_missing_fields() {
        let s = Session {
            time: 0,
            timeout: 0,
            ticket_age_add: Some(0),
            ..tls13()
        };
        let der = to_openssl(&s);
        let back = from_openssl(&der, 42).unwrap();
        assert_eq!(
            (back.time, back.timeout, back.ticket_age_add),
            (42, 3, Some(0))
        );
    }

    #[test]
    fn awslc_field_layout() {
        let der = to_awslc(&tls13());
        // [21] OCTET STRING, four bytes, big-endian.
        let age = [0xb5, 6, 0x04, 4, 0x81, 0x23, 0x45, 0x67];
        assert!(der.windows(age.len()).any(|w| w == age), "{der:02x?}");
        let der = to_awslc(&tls12());
        assert!(
            der.windows(5).any(|w| w == [0xb1, 3, 0x01, 1, 0xff]),
            "EMS bool"
        );
    }

    #[test]
    fn hostile_input_is_an_error() {
        let good = to_openssl(&tls12());
        for cut in 0..good.len() {
            assert!(from_openssl(&good[..cut], 1).is_err(), "cut at {cut}");
            assert!(from_awslc(&to_awslc(&tls12())[..cut.min(10)]).is_err());
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(from_openssl(&trailing, 1).is_err());
        // Huge and indefinite lengths, multi-byte tags.
        for bad in [
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x88, 1, 2, 3, 4, 5, 6, 7, 8],
            &[0x30, 0x80, 0, 0],
            &[0x30, 0x81, 0x05, 1, 2, 3, 4, 5],
            &[0x3f, 0x01, 0x00],
            &[],
        ] {
            assert!(from_openssl(bad, 1).is_err(), "{bad:02x?}");
            assert!(from_awslc(bad).is_err(), "{bad:02x?}");
        }
        // Wrong version, tags out of order, an unknown tag.
        let mut v2 = good.clone();
        v2[4] = 2;
        assert!(from_openssl(&v2, 1).is_err());
        let s = tls12();
        let mut b = header_out(&s);
        tagged_int(&mut b, 2, 5);
        tagged_int(&mut b, 1, 5);
        assert!(from_openssl(&sequence(&b), 1).is_err(), "order");
        let mut b = header_out(&s);
        tagged_int(&mut b, 1, 5);
        tagged_int(&mut b, 2, 5);
        tagged_int(&mut b, 31 - 1, 5);
        assert!(from_openssl(&sequence(&b), 1).is_err(), "unknown tag");
        // Flip every byte: no panic, whatever the result.
        let a = to_awslc(&tls13());
        for i in 0..a.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut m = a.clone();
                m[i] ^= x;
                let _ = from_awslc(&m);
                let mut m = good.clone();
                if i < m.len() {
                    m[i] ^= x;
                    let _ = from_openssl(&m, 1);
                }
            }
        }
    }

    #[test]
    fn envelope_round_trip_and_refusals() {
        let keys: [u8; TICKET_KEYS_LEN] = std::array::from_fn(|i| i as u8);
        let iv = [3u8; IV_LEN];
        let pt = to_openssl(&tls13());
        let t = seal(&keys, &iv, &pt).unwrap();
        assert_eq!(&t[..16], &keys[..16]);
        assert!(t.len() <= pt.len() + ENVELOPE_OVERHEAD);
        assert_eq!(open(&keys, &t), Ok(pt));
        let mut other = keys;
        other[0] ^= 1;
        assert_eq!(open(&other, &t), Err(Error::UnknownKey));
        let mut other = keys;
        other[20] ^= 1;
        assert_eq!(open(&other, &t), Err(Error::Envelope), "other HMAC key");
        for i in 16..t.len() {
            let mut m = t.clone();
            m[i] ^= 0x40;
            assert_eq!(open(&keys, &m), Err(Error::Envelope), "byte {i}");
        }
        for n in 0..t.len() {
            assert!(open(&keys, &t[..n]).is_err());
        }
    }

    /// The library this build links reads what is written for it, and writes it back the
    /// same: OpenSSL's d2i/i2d_SSL_SESSION, or AWS-LC's SSL_SESSION_from_bytes/to_bytes.
    #[test]
    fn the_linked_library_reads_its_encoding() {
        use openssl::ssl::SslSession;
        for s in [tls13(), tls12()] {
            let s = Session {
                hostname: Some(b"ads.example".to_vec()),
                ..s
            };
            #[cfg(not(feature = "aws-lc"))]
            let (der, back) = {
                let der = to_openssl(&s);
                let again = SslSession::from_der(&der).unwrap().to_der().unwrap();
                (der, from_openssl(&again, 1).unwrap())
            };
            #[cfg(feature = "aws-lc")]
            let (der, back, s) = {
                let der = to_awslc(&s);
                let again = SslSession::from_der(&der).unwrap().to_der().unwrap();
                let s = Session {
                    hostname: None,
                    ..s
                };
                (der, from_awslc(&again).unwrap(), s)
            };
            assert_eq!(back, s, "{der:02x?}");
        }
    }

    #[test]
    fn transcoding_growth_is_bounded() {
        let s = Session {
            hostname: Some(vec![b'a'; 255]),
            ticket_age_add: Some(u32::MAX),
            group: 0x11ec,
            ..tls12()
        };
        let grown = to_openssl(&s).len() - to_awslc(&s).len();
        assert!(grown <= TRANSCODE_GROWTH, "{grown}");
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2 uses a 4-byte key: padded with zeros like ours.
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]).unwrap();
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let got: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want);
    }
}
