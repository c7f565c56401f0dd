//! The signer process (SECURITY.md, "Processes"): the only process that holds the CA key.
//! It reads requests from the network process over its socket, checks each (a valid name,
//! a bounded size, a rate), has its workers load or make the certificate, and sends back
//! the certificate and the leaf key, or why not. It also keeps CERT_PATH: the disk budget,
//! the prefetch list. It has no network socket and cannot be traced or dumped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::log::{self, ERROR, NOTICE, WARNING};
use crate::plog;
use crate::sys;
use crate::sys::children;
use crate::sys::files::{Dir, Owners};
use crate::sys::packets::Packets;
use crate::tls::ca::{self, Access, KeyFiles};
use crate::tls::certs::Leaf;
use crate::tls::disk::DiskBudget;
use crate::tls::names::CertName;
use crate::tls::prefetch;
use crate::tls::signer_msg::{self, Disk, Flags, Reply, Request};
use crate::tls::workers::{Done, Job, Maker, Outcome, Sink, Workers};
use crate::x509::KeyType;

/// Jobs waiting for a worker before new names are refused (`cqf`).
const CERT_QUEUE: usize = 4096;
/// New certificates a second, on average, and in a burst: far above what a household
/// asks for (a first visit of a page names a few dozen), and a bound on what a network
/// process taken over by an attacker could make the signer mint and write.
const MINT_RATE: f64 = 1000.0;
const MINT_BURST: f64 = 4096.0;

/// What the monitor gives each signer it starts.
#[derive(Clone)]
pub struct Setup {
    /// CERT_PATH: ca.crt (the key comes from `key_files`).
    pub ca_dir: Arc<Dir>,
    /// Where certificates are kept: CERT_PATH, or `--leaf-dir`.
    pub dir: Arc<Dir>,
    pub key_files: Arc<KeyFiles>,
    pub ca_access: Access,
    /// Who may own the certificate files read (the signer runs as the `-u` user).
    pub owners: Owners,
    pub leaf_key: KeyType,
    pub workers: usize,
    pub cert_files: usize,
    pub cache_size: usize,
}

/// A token bucket: `take` is false while the rate is exceeded.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * MINT_RATE;
        self.tokens = (self.tokens + refill).min(MINT_BURST);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

struct Signer {
    chan: Arc<Packets>,
    maker: Arc<Maker>,
    workers: Workers,
    dir: Arc<Dir>,
    /// Jobs queued or running, with the flag that skips them.
    jobs: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
    bucket: Bucket,
    prefetch: Vec<(String, u64)>,
}

/// Runs the signer in a child the monitor just forked; never returns.
pub fn run(setup: Setup, chan: Packets) -> ! {
    // First, before the key is read: no ptrace, no core, /proc/PID/mem root's.
    if let Err(e) = children::set_not_dumpable() {
        plog!(ERROR, "signer: PR_SET_DUMPABLE: {}", e);
    }
    let code = match start(setup, chan) {
        Ok(mut signer) => {
            signer.serve();
            0
        }
        Err(msg) => {
            plog!(log::CRITICAL, "signer: {}", msg);
            1
        }
    };
    children::exit(code)
}

fn start(s: Setup, chan: Packets) -> Result<Signer, String> {
    let (ca, _) = ca::load_with(&s.ca_dir, &s.key_files, &s.ca_access)?;
    let entries = s.dir.entries().unwrap_or_default();
    let disk = Arc::new(Mutex::new(DiskBudget::new(s.cert_files, &entries)));
    let maker = Maker::new(
        s.dir.clone(),
        s.owners.clone(),
        ca,
        s.leaf_key,
        disk.clone(),
        s.cache_size,
    );
    let over = sys::lock(&disk).over_budget();
    if !over.is_empty() {
        plog!(
            NOTICE,
            "removing {} certificate file(s) over --cert-files {}",
            over.len(),
            s.cert_files
        );
        maker.remove(&over);
    }
    let chan = Arc::new(chan);
    let maker = Arc::new(maker);
    let jobs = Arc::new(Mutex::new(HashMap::new()));
    let sink = sink(chan.clone(), maker.clone(), jobs.clone());
    let workers = Workers::start(s.workers, CERT_QUEUE, maker.clone(), sink)
        .map_err(|e| format!("workers: {e}"))?;
    let signer = Signer {
        chan,
        maker,
        workers,
        dir: s.dir,
        jobs,
        bucket: Bucket {
            tokens: MINT_BURST,
            at: Instant::now(),
        },
        prefetch: Vec::new(),
    };
    signer.preload(&s.owners, s.cache_size);
    Ok(signer)
}

fn send(chan: &Packets, reply: &Reply) {
    // The network process gone is the end of this one too: `serve` sees it and returns.
    let _ = chan.send(&reply.encode());
}

fn disk_reply(maker: &Maker) -> Reply {
    let (can_sign, files, max_files, removed) = maker.disk_figures();
    Reply::Disk(Disk {
        can_sign,
        files,
        max_files,
        removed,
    })
}

fn leaf_reply(name: String, flags: Flags, leaf: &Leaf) -> Reply {
    let der = leaf
        .cert
        .to_der()
        .and_then(|c| Ok((c, leaf.key.private_key_to_der()?)));
    match der {
        Ok((cert_der, key_der)) => Reply::Ready {
            name,
            flags,
            cert_der,
            key_der,
        },
        Err(e) => Reply::Failed {
            name,
            flags,
            why: format!("cannot encode the certificate: {e}"),
        },
    }
}

/// What the workers do with a finished job: answer, then report the disk figures.
fn sink(
    chan: Arc<Packets>,
    maker: Arc<Maker>,
    jobs: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
) -> Sink {
    Arc::new(move |done: Done| {
        sys::lock(&jobs).remove(&done.name);
        let flags = Flags {
            generated: done.generated,
            replaced: done.replaced,
            ..Flags::default()
        };
        let reply = match done.outcome {
            Outcome::Ready(leaf) => {
                maker.delivered(&done.name);
                leaf_reply(done.name, flags, &leaf)
            }
            Outcome::Failed(why) => Reply::Failed {
                name: done.name,
                flags,
                why,
            },
            Outcome::Abandoned => Reply::Abandoned { name: done.name },
        };
        send(&chan, &reply);
        send(&chan, &disk_reply(&maker));
    })
}

impl Signer {
    /// At start: the certificates the prefetch list names go to the network process's
    /// cache (missing, expiring, corrupt or foreign ones are made on first use instead).
    fn preload(&self, owners: &Owners, cache_size: usize) {
        let file = self.dir.path().join(prefetch::FILE_NAME);
        let names = match prefetch::read(&self.dir, owners) {
            Ok(Some(n)) => n,
            Ok(None) => {
                plog!(
                    WARNING,
                    "sslctx_tbl_load: {} doesn't exist.",
                    file.display()
                );
                Vec::new()
            }
            Err(e) => {
                plog!(ERROR, "cannot use {}: {}", file.display(), e);
                Vec::new()
            }
        };
        for name in names.into_iter().take(cache_size) {
            let Ok(name) = CertName::from_file_name(&name) else {
                plog!(
                    WARNING,
                    "prefetch: ignoring invalid name {}",
                    log::escape_capped(name.as_bytes())
                );
                continue;
            };
            if let Ok(Some(leaf)) = self.maker.load(name.file_name()) {
                let flags = Flags {
                    preload: true,
                    ..Flags::default()
                };
                self.maker.delivered(name.file_name());
                send(
                    &self.chan,
                    &leaf_reply(name.file_name().to_string(), flags, &leaf),
                );
                plog!(NOTICE, "sslctx_tbl_load: {}", name.file_name());
            }
        }
        send(&self.chan, &disk_reply(&self.maker));
    }

    /// Answers requests until the network process closes its end.
    fn serve(&mut self) {
        let mut buf = vec![0u8; signer_msg::MAX];
        loop {
            let n = match self.chan.recv(&mut buf) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    plog!(ERROR, "signer: {}: ignored", e);
                    continue;
                }
                Err(e) => {
                    plog!(ERROR, "signer: {}", e);
                    return;
                }
            };
            match Request::decode(&buf[..n]) {
                Ok(req) => self.handle(req),
                Err(e) => plog!(ERROR, "signer: bad request ({}), ignored", e),
            }
        }
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::Cert(name) => self.submit(name),
            Request::Cancel(name) => {
                if let Some(flag) = sys::lock(&self.jobs).get(name.file_name()) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            Request::Prefetch { entries, last } => {
                if self.prefetch.len() < prefetch::MAX_LINES {
                    self.prefetch.extend(entries);
                }
                if last {
                    self.save_prefetch();
                }
            }
        }
    }

    fn submit(&mut self, name: CertName) {
        let file = name.file_name().to_string();
        let refuse = |why: &str| Reply::Failed {
            name: file.clone(),
            flags: Flags {
                queue_full: true,
                ..Flags::default()
            },
            why: why.to_string(),
        };
        if let Some(flag) = sys::lock(&self.jobs).get(&file) {
            // Asked again while queued: whoever waits now wants it after all.
            flag.store(false, Ordering::Relaxed);
            return;
        }
        if !self.bucket.take() {
            log::limited(
                ERROR,
                &log::QUEUE_FULL,
                format_args!("certificate rate limit ({MINT_RATE}/s) reached: refusing {file}"),
            );
            return send(&self.chan, &refuse("rate limit"));
        }
        let abandoned = Arc::new(AtomicBool::new(false));
        sys::lock(&self.jobs).insert(file.clone(), abandoned.clone());
        if self.workers.submit(Job { name, abandoned }).is_err() {
            sys::lock(&self.jobs).remove(&file);
            send(&self.chan, &refuse("queue full"));
        }
    }

    fn save_prefetch(&mut self) {
        let entries = std::mem::take(&mut self.prefetch);
        let borrowed: Vec<(&str, u64)> = entries.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        if let Err(e) = prefetch::write(&self.dir, &borrowed) {
            plog!(
                ERROR,
                "sslctx_tbl_save: failed to open {}: {}",
                self.dir.path().join(prefetch::FILE_NAME).display(),
                e
            );
        }
    }
}
