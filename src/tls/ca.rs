//! The signing CA (COMPATIBILITY.md §7.1): `CERT_PATH/ca.crt` + `ca.key` (+ `ca.key.passphrase`),
//! created on first start when neither exists. Unlike the original, the key must match the
//! certificate and the certificate must be a CA; without a usable key the server still runs
//! and serves existing certificates only. The files are read with `sys::files` checks (no
//! link, regular, size-capped, owned by root or the `-u` user): anything else is refused with
//! a clear error. Blocking: runs at startup.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys::files::{self, Contents, Dir, FileError, Owners};
use crate::x509::{self, asn1_time, unix_now, KeyType, BACKDATE_SECS, DAY};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

pub struct Ca {
    pub cert: X509,
    /// None: certificates are served from disk but never generated.
    pub key: Option<PKey<Private>>,
    /// Every certificate of ca.crt, in file order.
    pub chain: Vec<X509>,
    /// `/ca.crt`: the certificates of the chain re-encoded as PEM, never the file's own bytes
    /// (which may hold a key, or anything else).
    pub pem: Vec<u8>,
    /// Problems that do not stop the server, to be logged as warnings.
    pub warnings: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CaStatus {
    Loaded,
    Created,
    /// ca.crt is usable but there is no usable key; the string says why.
    CertOnly(String),
}

const MAX_PEM: u64 = 1024 * 1024;
const MAX_PASSPHRASE: u64 = 4096;
const CA_DAYS: i64 = 3653;

/// How the CA files may be read and written.
#[derive(Clone, Debug)]
pub struct Access {
    /// Who may own ca.crt, ca.key and ca.key.passphrase.
    pub owners: Owners,
    /// A new ca.crt is given to this user (the `-u` user, so that it can read it).
    pub crt_owner: Option<(libc::uid_t, libc::gid_t)>,
}

impl Access {
    /// No ownership rules: for a process that does not run as root.
    pub fn unrestricted() -> Access {
        Access {
            owners: Owners::Any,
            crt_owner: None,
        }
    }
}

fn contains_private_key(pem: &[u8]) -> bool {
    // Matches `PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`.
    memchr::memmem::find(pem, b"PRIVATE KEY-----").is_some()
}

/// Reads one CA file; a file that fails the `sys::files` checks is an error naming it.
fn read(dir: &Dir, name: &str, cap: u64, access: &Access) -> Result<Option<Contents>, String> {
    dir.read(name, cap, &access.owners).map_err(|e| match e {
        FileError::Io(e) => format!("cannot read {}: {e}", dir.path().join(name).display()),
        refused => format!("refusing {}: {refused}", dir.path().join(name).display()),
    })
}

pub fn load_or_create(
    dir: &Dir,
    key_type: KeyType,
    access: &Access,
) -> Result<(Ca, CaStatus), String> {
    match load_existing(dir, access)? {
        Some(found) => Ok(found),
        None => create(dir, key_type, access),
    }
}

/// The CA in `dir`, or `None` when neither ca.crt nor ca.key exists (`--check` creates
/// nothing; startup creates one after checking that the `-u` user can write CERT_PATH).
pub fn load_existing(dir: &Dir, access: &Access) -> Result<Option<(Ca, CaStatus)>, String> {
    let crt = read(dir, "ca.crt", MAX_PEM, access)?;
    let key = read(dir, "ca.key", MAX_PEM, access)?;
    match (crt, key) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(format!(
            "{} exists but {} is missing; restore ca.crt or remove ca.key to create a new CA",
            dir.path().join("ca.key").display(),
            dir.path().join("ca.crt").display()
        )),
        (Some(crt), key) => load(dir, crt.bytes, key.map(|k| k.bytes), access).map(Some),
    }
}

/// The CA's secret files, opened (as root, before the privilege drop) and kept by the
/// monitor, which never reads them: each signer process it starts reads the key from them.
/// So the key is never in the memory of a process that forks the network process.
pub struct KeyFiles {
    key: Option<OwnedFd>,
    passphrase: Option<OwnedFd>,
}

impl KeyFiles {
    pub fn open(dir: &Dir) -> Result<KeyFiles, String> {
        let open = |name: &str| {
            dir.open_for_later(name)
                .map_err(|e| format!("cannot open {}: {e}", dir.path().join(name).display()))
        };
        Ok(KeyFiles {
            key: open("ca.key")?,
            passphrase: open("ca.key.passphrase")?,
        })
    }

    /// In a forked network process: its copies of the descriptors are closed, while the
    /// monitor's stay open (the memory that owns them is never dropped there).
    pub fn close_here(&self) {
        for fd in self.key.iter().chain(&self.passphrase) {
            crate::sys::children::close_inherited(fd.as_raw_fd());
        }
    }
}

/// The public half of the CA (what the network process needs: the chain it sends and the
/// bytes of `/ca.crt`); no key. `None` when there is no ca.crt.
pub fn load_public(dir: &Dir, access: &Access) -> Result<Option<Ca>, String> {
    let Some(crt) = read(dir, "ca.crt", MAX_PEM, access)? else {
        return Ok(None);
    };
    let chain = X509::stack_from_pem(&crt.bytes).map_err(|e| format!("ca.crt: {e}"))?;
    let cert = chain
        .first()
        .cloned()
        .ok_or_else(|| "ca.crt contains no certificate".to_string())?;
    let pem = chain_pem(&chain)?;
    Ok(Some(Ca {
        cert,
        key: None,
        chain,
        pem,
        warnings: Vec::new(),
    }))
}

/// The CA with its key read from `files` (the signer process); warnings were logged when
/// the monitor checked the CA at startup.
pub fn load_with(dir: &Dir, files: &KeyFiles, access: &Access) -> Result<(Ca, CaStatus), String> {
    let crt = read(dir, "ca.crt", MAX_PEM, access)?.ok_or("ca.crt is missing")?;
    let read_fd = |fd: &Option<OwnedFd>, name: &str, cap| match fd {
        Some(fd) => files::read_open(fd, cap, &access.owners)
            .map(|c| Some(c.bytes))
            .map_err(|e| format!("cannot read {}: {e}", dir.path().join(name).display())),
        None => Ok(None),
    };
    let key = read_fd(&files.key, "ca.key", MAX_PEM)?;
    let passphrase =
        read_fd(&files.passphrase, "ca.key.passphrase", MAX_PASSPHRASE)?.map(strip_newline);
    load_parts(crt.bytes, key, passphrase)
}

/// Every certificate of the chain as PEM, in order.
fn chain_pem(chain: &[X509]) -> Result<Vec<u8>, String> {
    let mut pem = Vec::new();
    for c in chain {
        pem.extend(c.to_pem().map_err(|e| format!("ca.crt: {e}"))?);
    }
    Ok(pem)
}

fn load(
    dir: &Dir,
    file: Vec<u8>,
    key: Option<Vec<u8>>,
    access: &Access,
) -> Result<(Ca, CaStatus), String> {
    // Read (and checked) whether or not the key needs it: a link or FIFO here is refused.
    let passphrase =
        read(dir, "ca.key.passphrase", MAX_PASSPHRASE, access)?.map(|c| strip_newline(c.bytes));
    load_parts(file, key, passphrase)
}

fn load_parts(
    file: Vec<u8>,
    key: Option<Vec<u8>>,
    passphrase: Option<Vec<u8>>,
) -> Result<(Ca, CaStatus), String> {
    let chain = X509::stack_from_pem(&file).map_err(|e| format!("ca.crt: {e}"))?;
    let cert = chain
        .first()
        .cloned()
        .ok_or_else(|| "ca.crt contains no certificate".to_string())?;
    let pem = chain_pem(&chain)?;
    let mut warnings = Vec::new();
    if contains_private_key(&file) {
        warnings.push(
            "ca.crt also contains a private key: keep it in ca.key only (/ca.crt serves the certificates alone)"
                .to_string(),
        );
    }
    let expired = Asn1Time::days_from_now(0)
        .map(|now| cert.not_after() < now)
        .unwrap_or(false);
    if expired {
        warnings.push("the CA certificate in ca.crt has expired".to_string());
    }
    let usable = check_ca(&cert).and_then(|warning| {
        warnings.extend(warning);
        let bytes = key.ok_or_else(|| "ca.key is missing".to_string())?;
        let key = parse_key(&bytes, passphrase)?;
        let matches = cert
            .public_key()
            .map(|public| public.public_eq(&key))
            .unwrap_or(false);
        if matches {
            Ok(key)
        } else {
            Err("ca.key does not match the first certificate of ca.crt".to_string())
        }
    });
    let (key, status) = match usable {
        Ok(key) => (Some(key), CaStatus::Loaded),
        Err(why) => (None, CaStatus::CertOnly(why)),
    };
    let ca = Ca {
        cert,
        key,
        chain,
        pem,
        warnings,
    };
    Ok((ca, status))
}

/// Ok(Some(warning)) for a v1 certificate, which cannot say whether it is a CA.
fn check_ca(cert: &X509) -> Result<Option<String>, String> {
    if super::backend::x509_version(cert) == 0 {
        return Ok(Some(
            "ca.crt is an X.509 v1 certificate; accepted as CA without basicConstraints"
                .to_string(),
        ));
    }
    let der = cert.to_der().map_err(|e| format!("ca.crt: {e}"))?;
    if basic_constraints_ca(&der) {
        Ok(None)
    } else {
        Err("ca.crt is not a CA certificate (no basicConstraints CA:TRUE)".to_string())
    }
}

/// The cA flag of basicConstraints, read from the DER because the openssl crate has no
/// accessor for it. The layout is fixed: OID 2.5.29.19, optional critical BOOLEAN, then an
/// OCTET STRING wrapping `SEQUENCE { BOOLEAN cA DEFAULT FALSE, INTEGER pathLen OPTIONAL }`,
/// all short-form lengths.
fn basic_constraints_ca(der: &[u8]) -> bool {
    const OID: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x13];
    let Some(at) = memchr::memmem::find(der, OID) else {
        return false;
    };
    let mut rest = der.get(at + OID.len()..).unwrap_or(&[]);
    if rest.starts_with(&[0x01, 0x01]) {
        rest = rest.get(3..).unwrap_or(&[]);
    }
    match rest {
        [0x04, _, 0x30, _, 0x01, 0x01, flag, ..] => *flag != 0,
        _ => false,
    }
}

fn parse_key(pem: &[u8], passphrase: Option<Vec<u8>>) -> Result<PKey<Private>, String> {
    let mut asked = false;
    let key = PKey::private_key_from_pem_callback(pem, |buf| {
        asked = true;
        // Without a passphrase file: an empty passphrase rather than a terminal prompt.
        let pass = passphrase.as_deref().unwrap_or(&[]);
        match buf.get_mut(..pass.len()) {
            Some(dst) => {
                dst.copy_from_slice(pass);
                Ok(pass.len())
            }
            None => Ok(0),
        }
    });
    key.map_err(|e| match (asked, &passphrase) {
        (true, None) => "ca.key is encrypted and ca.key.passphrase is missing".to_string(),
        (true, Some(_)) => format!("cannot decrypt ca.key with ca.key.passphrase: {e}"),
        (false, _) => format!("cannot parse ca.key: {e}"),
    })
}

/// The passphrase file without its line ending; the original dropped the last byte
/// unconditionally (DEFECTS.md #14).
fn strip_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    bytes
}

pub fn create(dir: &Dir, key_type: KeyType, access: &Access) -> Result<(Ca, CaStatus), String> {
    let key = x509::new_key(key_type).map_err(|e| format!("CA key: {e}"))?;
    let cert = build_ca_cert(&key).map_err(|e| format!("CA certificate: {e}"))?;
    let pem = cert.to_pem().map_err(|e| e.to_string())?;
    let key_pem = key.private_key_to_pem_pkcs8().map_err(|e| e.to_string())?;
    let path = |name: &str| dir.path().join(name).display().to_string();
    // ca.key stays its creator's (root's: it is loaded before the privilege drop).
    dir.write_atomic("ca.key", &key_pem, 0o600, None, true)
        .map_err(|e| format!("cannot write {}: {e}", path("ca.key")))?;
    if let Err(e) = dir.write_atomic("ca.crt", &pem, 0o644, access.crt_owner, true) {
        // A key without its certificate would block every later start.
        let _ = dir.remove("ca.key");
        return Err(format!("cannot write {}: {e}", path("ca.crt")));
    }
    // Make the new names durable: clients will be told to trust this CA.
    let _ = dir.sync();
    let ca = Ca {
        chain: vec![cert.clone()],
        cert,
        key: Some(key),
        pem,
        warnings: Vec::new(),
    };
    Ok((ca, CaStatus::Created))
}

fn build_ca_cert(key: &PKey<Private>) -> Result<X509, openssl::error::ErrorStack> {
    let mut tag = [0u8; 4];
    openssl::rand::rand_bytes(&mut tag)?;
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", &format!("Pixelserv CA {hex}"))?;
    name.append_entry_by_text("O", "pixelserv-tls")?;
    let name = name.build();

    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    let serial = x509::random_serial()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(key)?;
    let now = unix_now();
    builder.set_not_before(asn1_time(now - BACKDATE_SECS)?.as_ref())?;
    builder.set_not_after(asn1_time(now + CA_DAYS * DAY)?.as_ref())?;
    builder.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
    builder.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(ski)?;
    builder.sign(key, MessageDigest::sha256())?;
    x509::reparsed(builder.build())
}

/// Loads or creates the CA in `path` without ownership rules (tests run as anyone).
#[cfg(test)]
pub(crate) fn load_or_create_at(
    path: &std::path::Path,
    kind: KeyType,
) -> Result<(Ca, CaStatus), String> {
    let dir = Dir::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    load_or_create(&dir, kind, &Access::unrestricted())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::store::tests::TempDir;
    use openssl::symm::Cipher;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn cert_only_reason(status: CaStatus) -> String {
        match status {
            CaStatus::CertOnly(why) => why,
            other => panic!("expected CertOnly, got {other:?}"),
        }
    }

    #[test]
    fn load_existing_creates_nothing() {
        let dir = TempDir::new("ca-existing");
        let open = Dir::open(&dir.0).unwrap();
        let access = Access::unrestricted();
        assert!(load_existing(&open, &access).unwrap().is_none());
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 0);
        load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        let (_, status) = load_existing(&open, &access).unwrap().unwrap();
        assert_eq!(status, CaStatus::Loaded);
    }

    #[test]
    fn creates_then_loads() {
        for kind in [KeyType::Ecdsa, KeyType::Rsa] {
            let dir = TempDir::new("ca-create");
            let (ca, status) = load_or_create_at(&dir.0, kind).unwrap();
            assert_eq!(status, CaStatus::Created);
            assert_eq!(mode(&dir.0.join("ca.key")), 0o600);
            assert_eq!(mode(&dir.0.join("ca.crt")), 0o644);
            assert_eq!(fs::read(dir.0.join("ca.crt")).unwrap(), ca.pem);
            let key = ca.key.as_ref().unwrap();
            let expected = match kind {
                KeyType::Ecdsa => openssl::pkey::Id::EC,
                KeyType::Rsa => openssl::pkey::Id::RSA,
            };
            assert_eq!(key.id(), expected);
            if kind == KeyType::Rsa {
                assert_eq!(key.bits(), 2048);
            }
            // Self-signed, a CA, 10 years, backdated, with the expected name.
            assert!(ca.cert.verify(key).unwrap());
            assert!(basic_constraints_ca(&ca.cert.to_der().unwrap()));
            assert_eq!(ca.cert.pathlen(), Some(0));
            assert!(ca.cert.subject_key_id().is_some());
            let cn = ca
                .cert
                .subject_name()
                .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                .next()
                .unwrap()
                .data()
                .as_slice()
                .to_vec();
            let cn = String::from_utf8(cn).unwrap();
            assert!(cn.starts_with("Pixelserv CA ") && cn.len() == 21, "{cn}");
            let now = Asn1Time::days_from_now(0).unwrap();
            let d = ca.cert.not_before().diff(&now).unwrap();
            assert!(d.days == 2 || (d.days == 1 && d.secs > 86000), "{d:?}");
            let d = now.diff(ca.cert.not_after()).unwrap();
            assert!((3650..=3653).contains(&d.days), "{d:?}");
            let text = String::from_utf8(ca.cert.to_text().unwrap()).unwrap();
            assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
            use openssl::x509::X509KeyUsage as Ku;
            assert_eq!(ca.cert.key_usage(), Some(Ku::KEY_CERT_SIGN | Ku::CRL_SIGN));

            let (again, status) = load_or_create_at(&dir.0, kind).unwrap();
            assert_eq!(status, CaStatus::Loaded);
            assert!(again.warnings.is_empty(), "{:?}", again.warnings);
            assert_eq!(again.cert.to_der().unwrap(), ca.cert.to_der().unwrap());
            assert!(again.key.unwrap().public_eq(key));
        }
    }

    #[test]
    fn chain_keeps_file_order() {
        let dir = TempDir::new("ca-chain");
        let (ca, _) = load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        let other = TempDir::new("ca-chain2");
        let (root, _) = load_or_create_at(&other.0, KeyType::Ecdsa).unwrap();
        let mut pem = ca.pem.clone();
        pem.extend(&root.pem);
        fs::write(dir.0.join("ca.crt"), &pem).unwrap();
        let (loaded, status) = load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        assert_eq!(status, CaStatus::Loaded);
        assert_eq!(loaded.chain.len(), 2);
        assert_eq!(loaded.chain[0].to_der().unwrap(), ca.cert.to_der().unwrap());
        assert_eq!(
            loaded.chain[1].to_der().unwrap(),
            root.cert.to_der().unwrap()
        );
        assert_eq!(loaded.pem, pem);
    }

    #[test]
    fn passphrase_file_loses_only_its_line_ending() {
        let dir = TempDir::new("ca-pass");
        let (ca, _) = load_or_create_at(&dir.0, KeyType::Rsa).unwrap();
        let key = ca.key.unwrap();
        let encrypted = key
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"s3cret")
            .unwrap();
        fs::write(dir.0.join("ca.key"), &encrypted).unwrap();

        let pass = dir.0.join("ca.key.passphrase");
        for good in [&b"s3cret"[..], b"s3cret\n", b"s3cret\r\n"] {
            fs::write(&pass, good).unwrap();
            let (loaded, status) = load_or_create_at(&dir.0, KeyType::Rsa).unwrap();
            assert_eq!(status, CaStatus::Loaded, "{good:?}");
            assert!(loaded.key.unwrap().public_eq(&key));
        }
        for bad in [&b"s3cre"[..], b"s3cret\n\n", b"s3cret ", b""] {
            fs::write(&pass, bad).unwrap();
            let (loaded, status) = load_or_create_at(&dir.0, KeyType::Rsa).unwrap();
            let why = cert_only_reason(status);
            assert!(why.contains("decrypt"), "{why}");
            assert!(loaded.key.is_none());
        }
        fs::remove_file(&pass).unwrap();
        let why = cert_only_reason(load_or_create_at(&dir.0, KeyType::Rsa).unwrap().1);
        assert!(why.contains("passphrase is missing"), "{why}");
    }

    #[test]
    fn cert_without_usable_key_is_cert_only() {
        let dir = TempDir::new("ca-certonly");
        let (ca, _) = load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        let key_path = dir.0.join("ca.key");

        fs::remove_file(&key_path).unwrap();
        let (loaded, status) = load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        assert!(cert_only_reason(status).contains("ca.key"));
        assert_eq!(loaded.cert.to_der().unwrap(), ca.cert.to_der().unwrap());
        // Nothing was created over the existing ca.crt.
        assert!(!key_path.exists());

        fs::write(&key_path, b"not a key\n").unwrap();
        let why = cert_only_reason(load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap().1);
        assert!(why.contains("cannot parse"), "{why}");

        let other = x509::new_key(KeyType::Ecdsa).unwrap();
        fs::write(&key_path, other.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let why = cert_only_reason(load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap().1);
        assert!(why.contains("does not match"), "{why}");
    }

    #[test]
    fn key_without_cert_is_an_error() {
        let dir = TempDir::new("ca-keyonly");
        load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        let key_before = fs::read(dir.0.join("ca.key")).unwrap();
        fs::remove_file(dir.0.join("ca.crt")).unwrap();
        let err = load_or_create_at(&dir.0, KeyType::Ecdsa).err().unwrap();
        assert!(err.contains("ca.crt is missing"), "{err}");
        assert_eq!(fs::read(dir.0.join("ca.key")).unwrap(), key_before);
    }

    #[test]
    fn missing_cert_path_is_an_error() {
        let dir = TempDir::new("ca-nodir");
        let err = load_or_create_at(&dir.0.join("nope"), KeyType::Ecdsa)
            .err()
            .unwrap();
        assert!(err.contains("nope"), "{err}");
        fs::write(dir.0.join("file"), b"").unwrap();
        assert!(load_or_create_at(&dir.0.join("file"), KeyType::Ecdsa).is_err());
    }

    #[test]
    fn unparsable_cert_is_an_error() {
        let dir = TempDir::new("ca-badcrt");
        fs::write(dir.0.join("ca.crt"), b"garbage").unwrap();
        assert!(load_or_create_at(&dir.0, KeyType::Ecdsa).is_err());
        fs::write(dir.0.join("ca.crt"), b"").unwrap();
        assert!(load_or_create_at(&dir.0, KeyType::Ecdsa).is_err());
    }

    #[test]
    fn private_key_in_ca_crt_is_never_served() {
        let dir = TempDir::new("ca-leak");
        let (ca, _) = load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        let mut pem = ca.pem.clone();
        pem.extend(fs::read(dir.0.join("ca.key")).unwrap());
        fs::write(dir.0.join("ca.crt"), &pem).unwrap();
        let (loaded, status) = load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        assert_eq!(status, CaStatus::Loaded);
        // /ca.crt gets the certificate re-encoded, never the key.
        assert_eq!(loaded.pem, ca.pem);
        assert!(!contains_private_key(&loaded.pem));
        assert!(loaded.warnings.iter().any(|w| w.contains("private key")));
        assert!(contains_private_key(b"-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(!contains_private_key(b"-----BEGIN CERTIFICATE-----\n"));
    }

    fn self_signed(version: i32, ca_flag: Option<bool>) -> (X509, PKey<Private>) {
        let key = x509::new_key(KeyType::Ecdsa).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "test").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(version).unwrap();
        b.set_serial_number(&x509::random_serial().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        match ca_flag {
            Some(true) => b
                .append_extension(BasicConstraints::new().ca().build().unwrap())
                .unwrap(),
            Some(false) => b
                .append_extension(BasicConstraints::new().critical().build().unwrap())
                .unwrap(),
            None => {}
        }
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }

    fn install(dir: &Path, cert: &X509, key: &PKey<Private>) {
        fs::write(dir.join("ca.crt"), cert.to_pem().unwrap()).unwrap();
        fs::write(dir.join("ca.key"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    }

    #[test]
    fn ca_flag_is_required_v1_is_accepted_with_warning() {
        let dir = TempDir::new("ca-flags");
        let (cert, key) = self_signed(2, Some(true));
        install(&dir.0, &cert, &key);
        let (ca, status) = load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        assert_eq!(status, CaStatus::Loaded, "non-critical CA:TRUE");
        assert!(ca.warnings.is_empty());

        for flag in [Some(false), None] {
            let (cert, key) = self_signed(2, flag);
            install(&dir.0, &cert, &key);
            let why = cert_only_reason(load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap().1);
            assert!(why.contains("not a CA"), "{flag:?}: {why}");
        }

        let (cert, key) = self_signed(0, None);
        install(&dir.0, &cert, &key);
        let (ca, status) = load_or_create_at(&dir.0, KeyType::Ecdsa).unwrap();
        assert_eq!(status, CaStatus::Loaded);
        assert!(ca.warnings.iter().any(|w| w.contains("v1")));
    }

    #[test]
    fn basic_constraints_scanner_is_bounded() {
        let oid = [0x06, 0x03, 0x55, 0x1d, 0x13];
        assert!(!basic_constraints_ca(&oid));
        assert!(!basic_constraints_ca(&[]));
        let mut v = oid.to_vec();
        v.extend([0x01, 0x01]);
        assert!(!basic_constraints_ca(&v));
        let mut v = oid.to_vec();
        v.extend([0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0xff]);
        assert!(basic_constraints_ca(&v));
        let mut v = oid.to_vec();
        v.extend([0x04, 0x02, 0x30, 0x00]);
        assert!(!basic_constraints_ca(&v));
    }

    #[test]
    fn strip_newline_cases() {
        assert_eq!(strip_newline(b"a\n".to_vec()), b"a");
        assert_eq!(strip_newline(b"a\r\n".to_vec()), b"a");
        assert_eq!(strip_newline(b"a\n\n".to_vec()), b"a\n");
        assert_eq!(strip_newline(b"a".to_vec()), b"a");
        assert_eq!(strip_newline(b"\n".to_vec()), b"");
        assert_eq!(strip_newline(Vec::new()), b"");
    }
}
