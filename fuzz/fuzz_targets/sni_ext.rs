//! A server_name extension body → its host_name → the certificate file name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelserv::tls::sni::server_name;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(name)) = server_name(data) {
        assert!(!name.is_empty() && name.len() + 5 <= data.len());
        pixelserv_fuzz::check_sni_name(name);
    }
});
