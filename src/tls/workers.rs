//! Certificate workers: a small thread pool that loads certificates from CERT_PATH or
//! makes new ones, so that the event loop never reads a file or creates a key. Jobs come
//! over a bounded channel; results go back over a channel plus a `mio::Waker`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::{io, thread};

use mio::Waker;
use openssl::pkey::{PKey, Private};

use super::ca::Ca;
use super::certgen;
use super::certs::Leaf;
use super::names::CertName;
use super::store::{self, StoreError};
use crate::log;
use crate::plog;
use crate::x509::{self, KeyType};

/// A finished job.
pub struct Done {
    /// Certificate file name.
    pub name: String,
    pub result: Result<Leaf, String>,
    /// A new certificate was made (`cgn`).
    pub generated: bool,
    /// The file on disk was corrupt or unusable and was replaced (`sle`).
    pub replaced: bool,
}

/// Everything a worker needs to produce a certificate.
pub struct Maker {
    pub dir: PathBuf,
    pub ca: Ca,
    pub leaf_kind: KeyType,
    /// RSA-2048 takes seconds per key on a router's ARM core: RSA leaves share one key,
    /// made once. ECDSA keys cost microseconds, so each certificate gets its own.
    shared_rsa: OnceLock<PKey<Private>>,
    disk_warned: AtomicBool,
}

impl Maker {
    pub fn new(dir: PathBuf, ca: Ca, leaf_kind: KeyType) -> Maker {
        Maker {
            dir,
            ca,
            leaf_kind,
            shared_rsa: OnceLock::new(),
            disk_warned: AtomicBool::new(false),
        }
    }

    /// A valid, not-expiring certificate from disk, if there is one.
    pub fn load(&self, name: &str) -> Result<Option<Leaf>, StoreError> {
        match store::load(&self.dir, name)? {
            Some((cert, key)) => {
                let leaf = Leaf::new(cert, key);
                Ok((!leaf.needs_renewal(x509::unix_now())).then_some(leaf))
            }
            None => Ok(None),
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

    /// Makes a new certificate and stores it. The first write that fails (full or read-only
    /// disk, permissions) is logged, once; the certificate is served from memory either way.
    pub fn generate(&self, name: &CertName) -> Result<Leaf, String> {
        if self.ca.key.is_none() {
            return Err("no usable ca.key: certificates are not generated".into());
        }
        let key = self.leaf_key()?;
        let cert = certgen::generate(&name.subject(), name.ip(), &self.ca, &key)
            .map_err(|e| e.to_string())?;
        match store::save(&self.dir, name.file_name(), &cert, &key) {
            Ok(()) => plog!(log::NOTICE, "cert generated to disk: {}", name.file_name()),
            Err(e) => {
                if !self.disk_warned.swap(true, Ordering::Relaxed) {
                    plog!(
                        log::ERROR,
                        "cannot write certificates to {}: {}; serving them from memory",
                        self.dir.display(),
                        e
                    );
                }
            }
        }
        Ok(Leaf::new(cert, key))
    }

    /// Load from disk, or generate: what a job does.
    pub fn obtain(&self, name: &CertName) -> Done {
        let file = name.file_name().to_string();
        let mut replaced = false;
        match self.load(&file) {
            Ok(Some(leaf)) => {
                return Done {
                    name: file,
                    result: Ok(leaf),
                    generated: false,
                    replaced,
                }
            }
            Ok(None) => {}
            Err(StoreError::Corrupt(why)) => {
                plog!(
                    log::WARNING,
                    "replacing unusable certificate {}: {}",
                    file,
                    why
                );
                replaced = true;
            }
            Err(e) => plog!(log::WARNING, "cannot read certificate {}: {}", file, e),
        }
        let result = self.generate(name);
        let generated = result.is_ok();
        Done {
            name: file,
            result,
            generated,
            replaced,
        }
    }
}

pub struct Workers {
    jobs: SyncSender<CertName>,
    done: Receiver<Done>,
    can_sign: bool,
}

impl Workers {
    /// Starts `threads` workers behind a queue of `queue` jobs.
    pub fn start(
        threads: usize,
        queue: usize,
        maker: Arc<Maker>,
        waker: Arc<Waker>,
    ) -> io::Result<Workers> {
        let (jobs, job_rx) = mpsc::sync_channel::<CertName>(queue);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done) = mpsc::channel();
        let can_sign = maker.ca.key.is_some();
        for i in 0..threads.max(1) {
            let job_rx = job_rx.clone();
            let done_tx = done_tx.clone();
            let maker = maker.clone();
            let waker = waker.clone();
            thread::Builder::new()
                .name(format!("cert-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || loop {
                    let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(name) = job else { return };
                    if done_tx.send(maker.obtain(&name)).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                })?;
        }
        Ok(Workers {
            jobs,
            done,
            can_sign,
        })
    }

    /// Whether new certificates can be made; when not, startup has said why, at ERROR.
    pub fn can_sign(&self) -> bool {
        self.can_sign
    }

    /// Queues a job; gives the name back when the queue is full.
    pub fn submit(&self, name: CertName) -> Result<(), CertName> {
        match self.jobs.try_send(name) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(n)) | Err(TrySendError::Disconnected(n)) => Err(n),
        }
    }

    pub fn try_recv(&self) -> Option<Done> {
        self.done.try_recv().ok()
    }
}
