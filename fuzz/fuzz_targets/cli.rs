//! Command-line arguments (NUL-separated, lossy UTF-8) → `Config`.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use pixelserv::config::{parse_args, Parsed, MAX_PORTS, MAX_TLS_PORTS};

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    let Ok(Parsed::Run(cfg)) = parse_args(&args) else {
        return;
    };
    assert!(!cfg.ports.is_empty() && cfg.ports.len() <= MAX_PORTS);
    assert!(cfg.ports.iter().filter(|p| p.tls).count() <= MAX_TLS_PORTS);
    assert!(cfg.ports.iter().all(|p| p.port != 0));
    let mut seen = HashSet::new();
    assert!(
        cfg.ports.iter().all(|p| seen.insert(p.port)),
        "{:?}",
        cfg.ports
    );
    assert!(cfg.ports.iter().any(|p| !p.admin));
    if let Some(a) = cfg.admin_port {
        assert!(cfg.ports.iter().any(|p| p.port == a && p.tls && p.admin));
    }
    assert!(cfg
        .ports
        .iter()
        .all(|p| !p.admin || Some(p.port) == cfg.admin_port));
    assert!(cfg.log_level <= 5);
    assert!(cfg.cert_cache_size >= 1 && cfg.max_conns >= 1 && cfg.cert_workers >= 1);
    assert!(cfg.keepalive_secs >= 1);
    assert!(!cfg.stats_html_url.is_empty() && !cfg.stats_text_url.is_empty());
    assert!(cfg.listen_addr.as_ref().is_none_or(|a| !a.is_empty()));
});
