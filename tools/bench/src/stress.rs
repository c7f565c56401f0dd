//! First-visit stress (`--first-visits N`): N never-seen names, each visited once by one of C
//! concurrent clients that verify the chain and the name against the server's CA. The server
//! makes certificates on its workers while its loop runs handshakes, so any thread-safety
//! defect in the linked OpenSSL (issue 22: a static glibc link whose OpenSSL was configured
//! without threads) shows up as failed verifications, TLS alerts or a dead server. It passes
//! only when every visit verified and the server is still running; the time is printed, not
//! judged.

use crate::conn;
use crate::target::Target;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub struct Opts<'a> {
    pub server: &'a Path,
    pub server_args: &'a [String],
    /// Run the server behind this (e.g. `qemu-arm -cpu cortex-a9`); empty: natively.
    pub wrapper: &'a [String],
    pub visits: usize,
    pub clients: usize,
}

/// The first few failures are kept word for word; the rest are only counted.
const KEEP: usize = 8;

struct Tally {
    next: AtomicUsize,
    ok: AtomicUsize,
    failed: AtomicUsize,
    first: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, name: &str, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() < KEEP {
            f.push(format!("{name}: {why}"));
        }
    }
}

pub fn run(o: &Opts) -> Result<(), String> {
    crate::sys::raise_nofile();
    let mut t = Target::start(o.server, o.clients * 4 + 64, o.server_args, o.wrapper, None)?;
    let verify = conn::verifying_connector(&t.cacert)?;
    // Names unique to this run, so nothing could answer from an earlier run's disk cache.
    let run_id = format!("{}-{}", std::process::id(), crate::sys::self_cpu_us());
    let tally = Tally {
        next: AtomicUsize::new(0),
        ok: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        first: Mutex::new(Vec::new()),
    };
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..o.clients {
            s.spawn(|| loop {
                let i = tally.next.fetch_add(1, Ordering::Relaxed);
                if i >= o.visits {
                    break;
                }
                // Each its own registrable domain: names under one domain share a wildcard certificate.
                let name = format!("www.v{i}-{run_id}.com");
                match conn::visit(&verify, t.https, &name) {
                    Ok(_) => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tally.fail(&name, e),
                }
            });
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    let alive = t.alive();
    let log = t.log();
    t.stop();
    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    println!(
        "first visits: {ok} of {} verified, {failed} failed, {} clients, {secs:.1} s \
         ({:.0} names/s); server {}",
        o.visits,
        o.clients,
        ok as f64 / secs.max(1e-9),
        match &alive {
            Ok(()) => "alive".to_string(),
            Err(e) => format!("DEAD: {e}"),
        }
    );
    for f in tally.first.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("  failed: {f}");
    }
    if alive.is_err() || failed > 0 || ok != o.visits {
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        for l in tail.iter().rev() {
            println!("  server log: {l}");
        }
        return Err("first-visit stress failed".into());
    }
    println!("PASS first-visit stress");
    Ok(())
}
