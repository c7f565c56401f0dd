//! The bytes of a (damaged, hand-edited) CERT_PATH/prefetch file → the names to warm.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use pixelserv::tls::prefetch::{parse, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    let names = parse(data);
    let mut seen = HashSet::new();
    for name in &names {
        assert!(!name.is_empty(), "{names:?}");
        assert!(name.len() <= MAX_LINE, "{}", name.len());
        assert!(!name.chars().any(char::is_whitespace), "{name:?}");
        assert!(!name.starts_with('#'), "{name:?}");
        assert!(seen.insert(name), "duplicate {name:?}");
    }
});
