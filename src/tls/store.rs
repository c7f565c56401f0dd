//! Certificate files in CERT_PATH (reference §7.4): one file `<name>` holding the certificate
//! PEM then the PKCS#8 private key PEM. Files are written atomically with mode 0600, so a
//! reader never sees half a file (§12 #19) and leaf keys are not world-readable (§12 #14).
//! Blocking: runs on certificate workers or at startup only.

use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Larger files are not certificates we wrote; refusing them bounds the memory of a load.
pub const MAX_FILE: u64 = 64 * 1024;

#[derive(Debug)]
pub enum StoreError {
    /// CERT_PATH itself is missing (on save).
    NotFound,
    /// The file is not a usable certificate + key: the caller regenerates it.
    Corrupt(String),
    Io(io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("certificate directory not found"),
            StoreError::Corrupt(why) => write!(f, "unusable certificate file: {why}"),
            StoreError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::NotFound {
            StoreError::NotFound
        } else {
            StoreError::Io(e)
        }
    }
}

fn cert_path(dir: &Path, name: &str) -> Result<PathBuf, StoreError> {
    // Names arrive validated; this only keeps a bug elsewhere from escaping CERT_PATH or
    // overwriting one of our own files (`ca.key` is a valid-looking DNS name).
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\0'])
        || super::names::RESERVED.contains(&name);
    if bad {
        return Err(StoreError::Corrupt(format!("refused file name {name:?}")));
    }
    Ok(dir.join(name))
}

/// Reads at most `limit + 1` bytes, so callers can tell "too large" without reading it all.
pub(crate) fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Ok(None) when there is no file; Err when it exists but cannot be used.
pub fn load(dir: &Path, name: &str) -> Result<Option<(X509, PKey<Private>)>, StoreError> {
    let path = cert_path(dir, name)?;
    let bytes = match read_limited(&path, MAX_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::Io(e)),
    };
    if bytes.len() as u64 > MAX_FILE {
        return Err(StoreError::Corrupt(format!("larger than {MAX_FILE} bytes")));
    }
    let cert =
        X509::from_pem(&bytes).map_err(|e| StoreError::Corrupt(format!("certificate: {e}")))?;
    // An empty passphrase instead of OpenSSL's default terminal prompt for encrypted keys.
    let key = PKey::private_key_from_pem_callback(&bytes, |_| Ok(0))
        .map_err(|e| StoreError::Corrupt(format!("private key: {e}")))?;
    let matches = cert
        .public_key()
        .map(|public| public.public_eq(&key))
        .unwrap_or(false);
    if !matches {
        return Err(StoreError::Corrupt(
            "private key does not match the certificate".into(),
        ));
    }
    Ok(Some((cert, key)))
}

pub fn pem_bytes(cert: &X509, key: &PKey<Private>) -> Result<Vec<u8>, ErrorStack> {
    let mut pem = cert.to_pem()?;
    pem.extend_from_slice(&key.private_key_to_pem_pkcs8()?);
    Ok(pem)
}

pub fn save(dir: &Path, name: &str, cert: &X509, key: &PKey<Private>) -> Result<(), StoreError> {
    let path = cert_path(dir, name)?;
    let pem = pem_bytes(cert, key).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // No fsync: a certificate can always be made again, and a file torn by a power cut is
    // detected as corrupt and replaced; an fsync per certificate would cost a router's
    // flash several milliseconds per new name.
    replace_file(&path, &pem, 0o600, false).map_err(StoreError::from)
}

static TMP_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Removes temporary files a killed process left behind (`write_atomic` never leaves one
/// otherwise). Startup only: runs before the event loop. Returns how many were removed.
pub fn sweep_temp_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".tmp")))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// Writes `<path>.<pid>.<n>.tmp` (exclusive create, exact `mode`), fsyncs it and renames it
/// over `path`; on any failure the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    replace_file(path, bytes, mode, true)
}

fn replace_file(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let pid = std::process::id();
    let mut attempts = 0;
    let (tmp, file) = loop {
        let mut tmp_name = name.to_os_string();
        tmp_name.push(format!(
            ".{pid}.{}.tmp",
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = path.with_file_name(tmp_name);
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp);
        match opened {
            Ok(file) => break (tmp, file),
            // A stale file of a previous process with the same pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
            Err(e) => return Err(e),
        }
    };
    let written = finish(file, bytes, mode, durable).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn finish(mut file: File, bytes: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    // The umask must not widen or narrow the mode we promise.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tls::ca::Ca;
    use crate::tls::certgen;
    use crate::x509::KeyType;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;

    /// A unique directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "pixelserv-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::set_permissions(&self.0, Permissions::from_mode(0o700));
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn test_ca(dir: &Path) -> Ca {
        crate::tls::ca::load_or_create(dir, KeyType::Ecdsa)
            .unwrap()
            .0
    }

    fn leaf(ca: &Ca, subject: &str, kind: KeyType) -> (X509, PKey<Private>) {
        let key = crate::x509::new_key(kind).unwrap();
        (certgen::generate(subject, None, ca, &key).unwrap(), key)
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn save_then_load_round_trip() {
        let dir = TempDir::new("store-rt");
        let ca = test_ca(&dir.0);
        for kind in [KeyType::Ecdsa, KeyType::Rsa] {
            let (cert, key) = leaf(&ca, "*.example.com", kind);
            save(&dir.0, "_.example.com", &cert, &key).unwrap();
            let path = dir.0.join("_.example.com");
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let (c2, k2) = load(&dir.0, "_.example.com").unwrap().unwrap();
            assert_eq!(c2.to_der().unwrap(), cert.to_der().unwrap());
            assert!(k2.public_eq(&key));
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
            assert!(text.contains("-----BEGIN PRIVATE KEY-----\n"));
        }
        // No temporary files left behind.
        assert_eq!(listing(&dir.0), ["_.example.com", "ca.crt", "ca.key"]);
    }

    #[test]
    fn missing_file_is_none() {
        let dir = TempDir::new("store-none");
        assert!(load(&dir.0, "nothing.example").unwrap().is_none());
        assert!(load(&dir.0.join("no-such-dir"), "x.example")
            .unwrap()
            .is_none());
    }

    #[test]
    fn reads_original_rsa_formats() {
        let dir = TempDir::new("store-orig");
        let ca = test_ca(&dir.0);
        let (cert, key) = leaf(&ca, "shop.co.uk", KeyType::Rsa);
        // Traditional `RSA PRIVATE KEY` after the certificate.
        let mut pem = cert.to_pem().unwrap();
        pem.extend(key.rsa().unwrap().private_key_to_pem().unwrap());
        assert!(String::from_utf8_lossy(&pem).contains("BEGIN RSA PRIVATE KEY"));
        fs::write(dir.0.join("shop.co.uk"), &pem).unwrap();
        let (_, k2) = load(&dir.0, "shop.co.uk").unwrap().unwrap();
        assert!(k2.public_eq(&key));
        // PKCS#8 `PRIVATE KEY` (what the original writes).
        fs::write(dir.0.join("shop.co.uk"), pem_bytes(&cert, &key).unwrap()).unwrap();
        assert!(load(&dir.0, "shop.co.uk").unwrap().is_some());
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = TempDir::new("store-bad");
        let ca = test_ca(&dir.0);
        let (cert, key) = leaf(&ca, "a.example", KeyType::Ecdsa);
        let (_, other_key) = leaf(&ca, "b.example", KeyType::Ecdsa);
        let good = pem_bytes(&cert, &key).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("garbage", b"hello\n\xff\x00".to_vec()),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("cert only", cert.to_pem().unwrap()),
            ("key only", key.private_key_to_pem_pkcs8().unwrap()),
            ("mismatch", pem_bytes(&cert, &other_key).unwrap()),
            ("too large", {
                let mut big = good.clone();
                big.resize(MAX_FILE as usize + 1, b'\n');
                big
            }),
        ];
        for (what, bytes) in cases {
            fs::write(dir.0.join("a.example"), &bytes).unwrap();
            match load(&dir.0, "a.example") {
                Err(StoreError::Corrupt(_)) => {}
                other => panic!("{what}: {:?}", other.map(|o| o.is_some())),
            }
        }
        // Exactly at the limit is still read.
        let mut padded = good.clone();
        padded.resize(MAX_FILE as usize, b'\n');
        fs::write(dir.0.join("a.example"), &padded).unwrap();
        assert!(load(&dir.0, "a.example").unwrap().is_some());
    }

    #[test]
    fn encrypted_key_is_corrupt_not_a_prompt() {
        let dir = TempDir::new("store-enc");
        let ca = test_ca(&dir.0);
        let (cert, key) = leaf(&ca, "a.example", KeyType::Rsa);
        let mut pem = cert.to_pem().unwrap();
        pem.extend(
            key.private_key_to_pem_pkcs8_passphrase(
                openssl::symm::Cipher::aes_128_cbc(),
                b"secret",
            )
            .unwrap(),
        );
        fs::write(dir.0.join("a.example"), &pem).unwrap();
        assert!(matches!(
            load(&dir.0, "a.example"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn refuses_bad_and_reserved_names() {
        let dir = TempDir::new("store-names");
        let ca = test_ca(&dir.0);
        let (cert, key) = leaf(&ca, "a.example", KeyType::Ecdsa);
        let ca_key_before = fs::read(dir.0.join("ca.key")).unwrap();
        for name in [
            "", ".", "..", "../x", "a/b", "a\0b", "ca.key", "ca.crt", "prefetch",
        ] {
            assert!(save(&dir.0, name, &cert, &key).is_err(), "{name:?}");
            assert!(load(&dir.0, name).is_err(), "{name:?}");
        }
        assert_eq!(fs::read(dir.0.join("ca.key")).unwrap(), ca_key_before);
    }

    #[test]
    fn save_into_missing_dir_is_not_found() {
        let dir = TempDir::new("store-nodir");
        let ca = test_ca(&dir.0);
        let (cert, key) = leaf(&ca, "a.example", KeyType::Ecdsa);
        let err = save(&dir.0.join("gone"), "a.example", &cert, &key).unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err}");
    }

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let dir = TempDir::new("store-ro");
        let ca = test_ca(&dir.0);
        let (cert, key) = leaf(&ca, "a.example", KeyType::Ecdsa);
        fs::set_permissions(&dir.0, Permissions::from_mode(0o500)).unwrap();
        // Root ignores directory permissions: then this case cannot be provoked.
        if File::create(dir.0.join("probe")).is_ok() {
            return;
        }
        let err = save(&dir.0, "a.example", &cert, &key).unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err}");
        fs::set_permissions(&dir.0, Permissions::from_mode(0o700)).unwrap();
        assert_eq!(listing(&dir.0), ["ca.crt", "ca.key"]);
    }

    #[test]
    fn missing_files_are_not_found() {
        let enoent = StoreError::from(io::Error::from_raw_os_error(libc::ENOENT));
        assert!(matches!(enoent, StoreError::NotFound));
    }

    #[test]
    fn write_atomic_replaces_with_exact_mode() {
        let dir = TempDir::new("store-atomic");
        let path = dir.0.join("f");
        write_atomic(&path, b"one", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(listing(&dir.0), ["f"]);
        assert!(write_atomic(Path::new("/"), b"x", 0o600).is_err());
    }

    #[test]
    fn ec_and_rsa_keys_from_other_tools_load() {
        let dir = TempDir::new("store-tools");
        let ca = test_ca(&dir.0);
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = EcKey::generate(&group).unwrap();
        let ec_pem = ec.private_key_to_pem().unwrap(); // `EC PRIVATE KEY`
        let key = PKey::from_ec_key(ec).unwrap();
        let cert = certgen::generate("a.example", None, &ca, &key).unwrap();
        let mut pem = cert.to_pem().unwrap();
        pem.extend(ec_pem);
        fs::write(dir.0.join("a.example"), &pem).unwrap();
        assert!(load(&dir.0, "a.example").unwrap().is_some());
    }
}
