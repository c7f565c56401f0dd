//! The in-memory certificate cache the ClientHello callback looks in: certificate file
//! name → ready-to-use TLS context, LRU-bounded by `-c`.

use std::time::{SystemTime, UNIX_EPOCH};

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::cache::LruCache;
use crate::stats::{Counter, Stats};

/// A cached entry closer than this to its notAfter is regenerated before use.
const RENEW_MARGIN_SECS: i64 = 24 * 3600;

/// A certificate ready to serve. The CA chain is not here: it is the same for every leaf
/// and sits once on the server context.
#[derive(Clone)]
pub struct Leaf {
    pub cert: X509,
    pub key: PKey<Private>,
    /// notAfter as seconds since the epoch.
    pub not_after: i64,
}

pub struct Certs {
    lru: LruCache<Leaf>,
    hits: u64,
    loads: u64,
    purges: u64,
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Certs {
    pub fn new(capacity: usize) -> Certs {
        Certs {
            lru: LruCache::new(capacity),
            hits: 0,
            loads: 0,
            purges: 0,
        }
    }

    /// A usable context for `file`; an entry about to expire is dropped so that the miss
    /// makes a worker renew it.
    pub fn get(&mut self, file: &str) -> Option<Leaf> {
        let fresh = self
            .lru
            .peek(file)
            .map(|leaf| leaf.not_after - unix_now() > RENEW_MARGIN_SECS)?;
        if !fresh {
            self.lru.remove(file);
            return None;
        }
        self.hits += 1;
        self.lru.get(file).cloned()
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

    pub fn fill_gauges(&self, s: &mut Stats) {
        s.set(Counter::Sct, self.lru.len() as u64);
        s.set(Counter::Sch, self.hits);
        s.set(Counter::Scm, self.loads);
        s.set(Counter::Scp, self.purges);
    }
}
