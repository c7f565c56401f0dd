//! The in-memory certificate cache the ClientHello callback looks in: certificate file
//! name → certificate and key, LRU-bounded by `-c`. The `Mutex` around it (in `app` and
//! `server`) exists because the callback must be `Send + Sync`. The loop thread takes it to
//! look up, insert and report; a certificate worker takes it only to ask which names the
//! cache holds, so that the disk budget spares their files (`tls/workers.rs`).

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::cache::LruCache;
use crate::stats::Gauges;
use crate::x509;

/// A certificate ready to serve. The CA chain is not here: it is the same for every leaf
/// and sits once on the server context.
#[derive(Clone)]
pub struct Leaf {
    pub cert: X509,
    pub key: PKey<Private>,
    /// notAfter as seconds since the epoch.
    pub not_after: i64,
}

impl Leaf {
    pub fn new(cert: X509, key: PKey<Private>) -> Leaf {
        let not_after = x509::to_unix(cert.not_after());
        Leaf {
            cert,
            key,
            not_after,
        }
    }

    /// The same policy for a cached entry as for a file on disk (`x509::RENEW_BEFORE_SECS`).
    pub fn needs_renewal(&self, now: i64) -> bool {
        x509::needs_renewal(self.not_after, now)
    }
}

pub struct Certs {
    lru: LruCache<Leaf>,
    hits: u64,
    /// Lookups that found nothing usable.
    misses: u64,
    loads: u64,
    purges: u64,
}

impl Certs {
    pub fn new(capacity: usize) -> Certs {
        Certs {
            lru: LruCache::new(capacity),
            hits: 0,
            misses: 0,
            loads: 0,
            purges: 0,
        }
    }

    /// A usable certificate for `file`; an entry about to expire is dropped so that the
    /// miss makes a worker renew it.
    pub fn get(&mut self, file: &str) -> Option<Leaf> {
        let fresh = self
            .lru
            .peek(file)
            .map(|leaf| !leaf.needs_renewal(x509::unix_now()));
        if fresh != Some(true) {
            if fresh.is_some() {
                self.lru.remove(file);
            }
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        self.lru.get(file).cloned()
    }

    /// Whether `file` is cached (no use counted).
    pub fn contains(&self, file: &str) -> bool {
        self.lru.peek(file).is_some()
    }

    pub fn insert(&mut self, file: String, leaf: Leaf) {
        self.loads += 1;
        if self.lru.insert(file, leaf).is_some() {
            self.purges += 1;
        }
    }

    /// Prefetch entries loaded at startup are not misses (`scm` as the original).
    pub fn forget_loads(&mut self) {
        self.loads = 0;
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    pub fn capacity(&self) -> usize {
        self.lru.capacity()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.len() == 0
    }

    /// Entries for the prefetch file, most reused first; the cache itself is untouched.
    pub fn by_reuse(&self) -> Vec<(&str, u64)> {
        self.lru.iter_by_reuse()
    }

    /// `sct`, `sch`, `scm`, `scp`, and for `/metrics` the misses and the capacity.
    pub fn fill_gauges(&self, g: &mut Gauges) {
        g.certs_cached = self.lru.len() as u64;
        g.cert_hits = self.hits;
        g.cert_misses = self.loads;
        g.cert_purges = self.purges;
        g.cert_lookup_misses = self.misses;
        g.certs_capacity = self.lru.capacity() as u64;
    }
}
