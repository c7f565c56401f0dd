//! Certificate workers: a small thread pool in the signer process that loads certificates
//! from CERT_PATH or makes new ones, so that the network process never reads a file or
//! holds the CA key. Jobs come over a bounded channel; each result goes to a sink (the
//! signer sends it to the network process). The workers also keep CERT_PATH within its
//! disk budget (`tls::disk`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::{io, thread};

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::ca::Ca;
use super::cache::LruCache;
use super::certgen;
use super::certs::Leaf;
use super::disk::DiskBudget;
use super::names::CertName;
use super::store::{self, StoreError};
use crate::log;
use crate::plog;
use crate::sys::files::{Dir, Owners};
use crate::sys::lock;
use crate::x509::{self, KeyType};

/// How a job ended.
pub enum Outcome {
    Ready(Leaf),
    Failed(String),
    /// Every client waiting for it had gone before it ran: nothing was done.
    Abandoned,
}

/// A finished job.
pub struct Done {
    /// Certificate file name.
    pub name: String,
    pub outcome: Outcome,
    /// A new certificate was made (`cgn`).
    pub generated: bool,
    /// The file on disk was unusable (corrupt, signed by another CA, not a regular file)
    /// and was replaced (`sle`).
    pub replaced: bool,
}

/// A queued job: the name, and a flag the loop sets when nobody waits for it any more.
pub struct Job {
    pub name: CertName,
    pub abandoned: Arc<AtomicBool>,
}

/// Everything a worker needs to produce a certificate.
pub struct Maker {
    dir: Arc<Dir>,
    /// Who may own the certificate files we read (see `sys::files::Owners`).
    owners: Owners,
    ca: Ca,
    leaf_kind: KeyType,
    /// RSA-2048 takes seconds per key on a router's ARM core: RSA leaves share one key,
    /// made once. ECDSA keys cost microseconds, so each certificate gets its own.
    shared_rsa: OnceLock<PKey<Private>>,
    disk: Arc<Mutex<DiskBudget>>,
    /// Names delivered lately, as many as the network process caches (`-c`): the disk
    /// budget spares their files, which the prefetch list will name at the next start.
    recent: Mutex<LruCache<()>>,
    disk_warned: AtomicBool,
}

impl Maker {
    pub fn new(
        dir: Arc<Dir>,
        owners: Owners,
        ca: Ca,
        leaf_kind: KeyType,
        disk: Arc<Mutex<DiskBudget>>,
        cache_size: usize,
    ) -> Maker {
        Maker {
            dir,
            owners,
            ca,
            leaf_kind,
            shared_rsa: OnceLock::new(),
            disk,
            recent: Mutex::new(LruCache::new(cache_size.max(1))),
            disk_warned: AtomicBool::new(false),
        }
    }

    /// `name` went to the network process's cache.
    pub fn delivered(&self, name: &str) {
        lock(&self.recent).insert(name.to_string(), ());
    }

    /// The disk budget and whether the CA can sign, as the stats pages show them.
    pub fn disk_figures(&self) -> (bool, u64, u64, u64) {
        let d = lock(&self.disk);
        (
            self.ca.key.is_some(),
            d.files() as u64,
            d.max_files() as u64,
            d.evicted(),
        )
    }

    /// A valid, not-expiring certificate from disk, if there is one; a file signed by
    /// another CA (the CA was replaced) is unusable, so that it gets regenerated.
    pub fn load(&self, name: &str) -> Result<Option<Leaf>, StoreError> {
        let Some(stored) = store::load(&self.dir, name, &self.owners)? else {
            return Ok(None);
        };
        if !self.signed_by_ca(&stored.cert) {
            return Err(StoreError::Corrupt("not signed by the current CA".into()));
        }
        if stored.mode & 0o077 != 0 {
            self.make_private(name, &stored.cert, &stored.key);
        }
        let leaf = Leaf::new(stored.cert, stored.key);
        if leaf.needs_renewal(x509::unix_now()) {
            return Ok(None);
        }
        lock(&self.disk).used(name);
        Ok(Some(leaf))
    }

    fn signed_by_ca(&self, cert: &X509) -> bool {
        let same_issuer = match (
            cert.issuer_name().to_der(),
            self.ca.cert.subject_name().to_der(),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        same_issuer
            && self
                .ca
                .cert
                .public_key()
                .and_then(|k| cert.verify(&k))
                .unwrap_or(false)
    }

    /// A file readable by others (the C version wrote 0644) becomes 0600: changed in place
    /// when it is ours, else rewritten as ours.
    fn make_private(&self, name: &str, cert: &X509, key: &PKey<Private>) {
        if self.dir.set_mode(name, store::MODE).is_err() {
            if let Err(e) = store::save(&self.dir, name, cert, key) {
                plog!(log::WARNING, "cannot make {} private: {}", name, e);
            }
        }
    }

    fn leaf_key(&self) -> Result<PKey<Private>, String> {
        match self.leaf_kind {
            KeyType::Ecdsa => x509::new_key(KeyType::Ecdsa).map_err(|e| e.to_string()),
            KeyType::Rsa => {
                if let Some(k) = self.shared_rsa.get() {
                    return Ok(k.clone());
                }
                let k = x509::new_key(KeyType::Rsa).map_err(|e| e.to_string())?;
                Ok(self.shared_rsa.get_or_init(|| k).clone())
            }
        }
    }

    /// Makes a new certificate and stores it within the disk budget. The first write that
    /// fails (full or read-only disk, permissions) is logged, once; the certificate is
    /// served from memory either way.
    pub fn generate(&self, name: &CertName) -> Result<Leaf, String> {
        let ca_key = self.ca.key.as_ref();
        if ca_key.is_none() {
            return Err("no usable ca.key: certificates are not generated".into());
        }
        let key = self.leaf_key()?;
        let cert = certgen::generate(&name.subject(), name.ip(), &self.ca, &key)
            .map_err(|e| e.to_string())?;
        if lock(&self.disk).enabled() {
            self.store(name.file_name(), &cert, &key);
        }
        Ok(Leaf::new(cert, key))
    }

    fn store(&self, file: &str, cert: &X509, key: &PKey<Private>) {
        let bytes = match store::save(&self.dir, file, cert, key) {
            Ok(bytes) => bytes,
            Err(e) => {
                if !self.disk_warned.swap(true, Ordering::Relaxed) {
                    plog!(
                        log::ERROR,
                        "cannot write certificates to {}: {}; serving them from memory",
                        self.dir.path().display(),
                        e
                    );
                }
                return;
            }
        };
        plog!(log::NOTICE, "cert generated to disk: {}", file);
        let in_memory = |n: &str| lock(&self.recent).peek(n).is_some();
        let (victims, first) = {
            let mut disk = lock(&self.disk);
            let victims = disk.stored(file, bytes, &in_memory);
            (victims, disk.first_reached().then(|| disk.max_files()))
        };
        if let Some(max) = first {
            plog!(
                log::NOTICE,
                "{} holds its budget of {} certificate files (--cert-files): the least recently used are removed as new ones are written",
                self.dir.path().display(),
                max
            );
        }
        self.remove(&victims);
    }

    /// Removes files the budget picked (at startup too, for files over a smaller budget).
    pub fn remove(&self, victims: &[String]) {
        for v in victims {
            if let Err(e) = self.dir.remove(v) {
                if e.kind() != io::ErrorKind::NotFound {
                    plog!(log::WARNING, "cannot remove {}: {}", v, e);
                }
            }
        }
    }

    /// Load from disk, or generate: what a job does.
    pub fn obtain(&self, job: &Job) -> Done {
        let file = job.name.file_name().to_string();
        let done = |outcome, generated, replaced| Done {
            name: file.clone(),
            outcome,
            generated,
            replaced,
        };
        if job.abandoned.load(Ordering::Relaxed) {
            return done(Outcome::Abandoned, false, false);
        }
        let mut replaced = false;
        match self.load(&file) {
            Ok(Some(leaf)) => return done(Outcome::Ready(leaf), false, false),
            Ok(None) => {}
            Err(StoreError::Corrupt(why)) => {
                log::limited(
                    log::WARNING,
                    &log::CERT_FILE,
                    format_args!("replacing unusable certificate {file}: {why}"),
                );
                replaced = true;
            }
            Err(e) => log::limited(
                log::WARNING,
                &log::CERT_FILE,
                format_args!("cannot read certificate {file}: {e}"),
            ),
        }
        match self.generate(&job.name) {
            Ok(leaf) => done(Outcome::Ready(leaf), true, replaced),
            Err(why) => done(Outcome::Failed(why), false, replaced),
        }
    }
}

/// Where a worker puts each finished job.
pub type Sink = Arc<dyn Fn(Done) + Send + Sync>;

pub struct Workers {
    jobs: SyncSender<Job>,
}

impl Workers {
    /// Starts `threads` workers behind a queue of `queue` jobs.
    pub fn start(
        threads: usize,
        queue: usize,
        maker: Arc<Maker>,
        sink: Sink,
    ) -> io::Result<Workers> {
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(queue);
        let job_rx: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(job_rx));
        for i in 0..threads.max(1) {
            let job_rx = job_rx.clone();
            let maker = maker.clone();
            let sink = sink.clone();
            thread::Builder::new()
                .name(format!("cert-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || loop {
                    let job = lock(&job_rx).recv();
                    let Ok(job) = job else { return };
                    sink(maker.obtain(&job));
                })?;
        }
        Ok(Workers { jobs })
    }

    /// Queues a job; gives it back when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(j)) | Err(TrySendError::Disconnected(j)) => Err(j),
        }
    }
}
