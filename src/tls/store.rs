//! Certificate files in CERT_PATH (COMPATIBILITY.md §7.4): one file `<name>` holding the
//! certificate PEM then the PKCS#8 private key PEM. Files are read and written through
//! `sys::files::Dir` (no link followed, regular files only, size-capped) and written atomically
//! with mode 0600, so a reader never sees half a file (DEFECTS.md #19) and leaf keys are not
//! world-readable (DEFECTS.md #14). Blocking: runs on certificate workers or at startup only.

use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use std::fmt;
use std::io;

use crate::sys::files::{Dir, FileError, Owners, TMP_SUFFIX};

/// Larger files are not certificates we wrote; refusing them bounds the memory of a load.
pub const MAX_FILE: u64 = 64 * 1024;
/// Certificate files are private: they hold the leaf key.
pub const MODE: u32 = 0o600;

#[derive(Debug)]
pub enum StoreError {
    /// The file is not a usable certificate + key: the caller regenerates it.
    Corrupt(String),
    Io(io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Corrupt(why) => write!(f, "unusable certificate file: {why}"),
            StoreError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
    }
}

impl From<FileError> for StoreError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Io(e) => StoreError::Io(e),
            // A link, a FIFO, an oversized or foreign file where a certificate should be:
            // replaced by a certificate of ours.
            other => StoreError::Corrupt(other.to_string()),
        }
    }
}

fn check_name(name: &str) -> Result<(), StoreError> {
    // Names arrive validated; this only keeps a bug elsewhere from overwriting one of our own
    // files (`ca.key` is a valid-looking DNS name). `Dir` refuses anything with a slash.
    if super::names::RESERVED.contains(&name) || name.ends_with(TMP_SUFFIX) {
        return Err(StoreError::Corrupt(format!("refused file name {name:?}")));
    }
    Ok(())
}

/// A certificate file read back.
pub struct Stored {
    pub cert: X509,
    pub key: PKey<Private>,
    /// Permission bits: a file migrated from the C version may be 0644.
    pub mode: u32,
}

/// Ok(None) when there is no file; Err when it exists but cannot be used.
pub fn load(dir: &Dir, name: &str, owners: &Owners) -> Result<Option<Stored>, StoreError> {
    check_name(name)?;
    let Some(contents) = dir.read(name, MAX_FILE, owners)? else {
        return Ok(None);
    };
    let bytes = &contents.bytes;
    let cert =
        X509::from_pem(bytes).map_err(|e| StoreError::Corrupt(format!("certificate: {e}")))?;
    // An empty passphrase instead of OpenSSL's default terminal prompt for encrypted keys.
    let key = PKey::private_key_from_pem_callback(bytes, |_| Ok(0))
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
    Ok(Some(Stored {
        cert,
        key,
        mode: contents.mode,
    }))
}

pub fn pem_bytes(cert: &X509, key: &PKey<Private>) -> Result<Vec<u8>, ErrorStack> {
    let mut pem = cert.to_pem()?;
    pem.extend_from_slice(&key.private_key_to_pem_pkcs8()?);
    Ok(pem)
}

/// Writes the certificate file; returns its size.
pub fn save(dir: &Dir, name: &str, cert: &X509, key: &PKey<Private>) -> Result<u64, StoreError> {
    check_name(name)?;
    let pem = pem_bytes(cert, key).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // No fsync: a certificate can always be made again, and a file torn by a power cut is
    // detected as corrupt and replaced; an fsync per certificate would cost a router's
    // flash several milliseconds per new name.
    dir.write_atomic(name, &pem, MODE, None, false)?;
    Ok(pem.len() as u64)
}

/// Removes temporary files a killed process left behind (`write_atomic` never leaves one
/// otherwise). Startup only: runs before the event loop. Returns how many were removed.
pub fn sweep_temp_files(dir: &Dir) -> usize {
    let Ok(entries) = dir.entries() else {
        return 0;
    };
    entries
        .iter()
        .filter(|e| e.name.ends_with(TMP_SUFFIX))
        .filter(|e| dir.remove(&e.name).is_ok())
        .count()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tls::ca::Ca;
    use crate::tls::certgen;
    use crate::x509::KeyType;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use std::fs::{self, File, Permissions};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    fn load(path: &Path, name: &str) -> Result<Option<(X509, PKey<Private>)>, StoreError> {
        let dir = Dir::open(path)?;
        super::load(&dir, name, &Owners::Any).map(|o| o.map(|s| (s.cert, s.key)))
    }

    fn save(path: &Path, name: &str, cert: &X509, key: &PKey<Private>) -> Result<(), StoreError> {
        let dir = Dir::open(path)?;
        super::save(&dir, name, cert, key).map(|_| ())
    }

    fn test_ca(dir: &Path) -> Ca {
        crate::tls::ca::load_or_create_at(dir, KeyType::Ecdsa)
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
        assert!(load(&dir.0.join("no-such-dir"), "x.example").is_err());
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
    fn links_and_odd_files_are_corrupt_and_temp_files_swept() {
        let dir = TempDir::new("store-odd");
        let ca = test_ca(&dir.0);
        let (cert, key) = leaf(&ca, "a.example", KeyType::Ecdsa);
        save(&dir.0, "a.example", &cert, &key).unwrap();
        std::os::unix::fs::symlink(dir.0.join("a.example"), dir.0.join("b.example")).unwrap();
        assert!(matches!(
            load(&dir.0, "b.example"),
            Err(StoreError::Corrupt(_))
        ));
        std::os::unix::fs::symlink("/dev/zero", dir.0.join("c.example")).unwrap();
        assert!(matches!(
            load(&dir.0, "c.example"),
            Err(StoreError::Corrupt(_))
        ));
        fs::write(dir.0.join(".x.example.0123.tmp"), b"half").unwrap();
        let d = Dir::open(&dir.0).unwrap();
        assert_eq!(sweep_temp_files(&d), 1);
        assert_eq!(
            listing(&dir.0),
            ["a.example", "b.example", "c.example", "ca.crt", "ca.key"]
        );
        let stored = super::load(&d, "a.example", &Owners::Any).unwrap().unwrap();
        assert_eq!(stored.mode, MODE);
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
