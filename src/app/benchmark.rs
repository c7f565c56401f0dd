//! `-B [CERT_FILE]`: times certificate generation and loading, then exits (COMPATIBILITY.md §7.9).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::Config;
use crate::sys::files::{Dir, Owners};
use crate::sys::process;
use crate::tls::ca::{self, Access};
use crate::tls::disk::DiskBudget;
use crate::tls::names::CertName;
use crate::tls::workers::Maker;

const ROUNDS: u32 = 10;
const PER_ROUND: u32 = 5;

/// Prints the timings; returns the exit status (0 even when the CA or name is unusable,
/// as the original, which printed the problem).
pub fn run(cfg: &Config, dir: &Path, file: Option<&str>) -> i32 {
    let name = file.unwrap_or("_.bing.com");
    println!("CERT_PATH: {}", dir.display());
    let opened = Dir::open(dir).map_err(|e| e.to_string());
    let owners = Owners::for_process(process::euid(), None);
    let access = Access {
        owners: owners.clone(),
        crt_owner: None,
    };
    let loaded = opened.and_then(|d| Ok((ca::load_or_create(&d, cfg.leaf_key, &access)?, d)));
    let ((ca, _), opened) = match loaded {
        Ok(v) => v,
        Err(e) => {
            println!("CA: {e}");
            return 0;
        }
    };
    let cert_name = match CertName::from_file_name(name) {
        Ok(n) => n,
        Err(e) => {
            println!("CERT_FILE: {name} invalid: {e}");
            return 0;
        }
    };
    if file.is_some() && !dir.join(name).exists() {
        println!("CERT_FILE: {name} not found");
        return 0;
    }
    println!("CERT_FILE: {name}");
    let disk = Arc::new(Mutex::new(DiskBudget::new(cfg.cert_files.max(1), &[])));
    let maker = Maker::new(Arc::new(opened), owners, ca, cfg.leaf_key, disk, 1);
    let (mut gen_total, mut load_total) = (0.0, 0.0);
    for round in 1..=ROUNDS {
        let Some(gen_ms) = time_ms(|| maker.generate(&cert_name).map(|_| ())) else {
            return 0;
        };
        let load_ms = time_ms(|| {
            // A missing or stale file is part of what is timed, not an error.
            let _ = maker.load(name);
            Ok(())
        })
        .unwrap_or_default();
        gen_total += gen_ms;
        load_total += load_ms;
        println!(
            "{round:2}. generate cert to disk: {gen_ms:.3} ms\tload from disk: {load_ms:.3} ms"
        );
    }
    let rounds = f64::from(ROUNDS);
    println!("generate to disk average: {:.3} ms", gen_total / rounds);
    println!("  load from disk average: {:.3} ms", load_total / rounds);
    0
}

/// Milliseconds per call of `f` over `PER_ROUND` calls; None (after printing why) on error.
fn time_ms(mut f: impl FnMut() -> Result<(), String>) -> Option<f64> {
    let start = Instant::now();
    for _ in 0..PER_ROUND {
        if let Err(e) = f() {
            println!("generate failed: {e}");
            return None;
        }
    }
    Some(start.elapsed().as_secs_f64() * 1000.0 / f64::from(PER_ROUND))
}
