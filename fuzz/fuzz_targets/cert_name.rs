//! Raw bytes as an SNI host_name → the certificate file name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pixelserv_fuzz::check_sni_name(data));
