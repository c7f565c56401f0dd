//! `-R`: a request path (and Referer) → the Location of the 307, which must be a clean
//! http(s) URL that cannot break the response head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelserv::http::redirect::decode_target;

fuzz_target!(|data: &[u8]| {
    // Path, then an optional Referer after the first NUL.
    let mut parts = data.splitn(2, |&b| b == 0);
    let path = parts.next().unwrap_or_default();
    let referer = parts.next();
    let (decoded, location) = decode_target(path, referer);
    assert!(decoded.len() <= path.len());
    if let Some(loc) = location {
        assert!(
            loc.iter().all(|&b| b >= 0x21 && b != 0x7f),
            "{:?}",
            String::from_utf8_lossy(&loc)
        );
        assert!(loc.starts_with(b"http://") || loc.starts_with(b"https://"));
        if let Some(r) = referer {
            assert!(!r.windows(loc.len()).any(|w| w == loc.as_slice()));
        }
    }
});
