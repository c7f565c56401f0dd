//! Invariants shared by several fuzz targets.

use std::path::Path;
use std::sync::OnceLock;

use pixelserv::tls::names::{cert_name, CertName};
use pixelserv::tls::psl::Psl;

/// Built once: the compiled-in list is what a server without a PSL file uses.
pub fn psl() -> &'static Psl {
    static PSL: OnceLock<Psl> = OnceLock::new();
    PSL.get_or_init(Psl::builtin)
}

/// Maps an SNI name to its certificate file name and checks that the name cannot leave
/// CERT_PATH, hit one of our own files, or fail to read back.
pub fn check_sni_name(sni: &[u8]) {
    let Ok(c) = cert_name(sni, psl()) else {
        return;
    };
    let f = c.file_name();
    assert!(!f.is_empty() && f.len() <= 255, "{sni:?} -> {f:?}");
    assert!(!f.contains('/') && !f.contains('\0'), "{sni:?} -> {f:?}");
    assert!(f != "." && f != "..", "{sni:?} -> {f:?}");
    assert!(
        !pixelserv::tls::names::RESERVED.contains(&f) && !f.ends_with(".tmp"),
        "{sni:?} -> {f:?}"
    );
    let dir = Path::new("/cert");
    assert_eq!(dir.join(f).parent(), Some(dir), "{sni:?} -> {f:?}");
    assert_eq!(
        CertName::from_file_name(f).as_ref(),
        Ok(&c),
        "{sni:?} -> {f:?}"
    );
}
