//! The disk budget: CERT_PATH holds at most `--cert-files` generated certificate files (and
//! `BYTES_PER_FILE` times that many bytes), so no client can fill a router's tmpfs or flash
//! by asking for random names. Least recently used files go first; files we did not make
//! (the CA, `prefetch`, anything that is not a certificate name) are never counted or
//! removed. Only the index lives here; the workers remove the files it picks.

use super::cache::LruCache;
use super::names::CertName;
use crate::sys::files::Entry;

/// Byte budget per allowed file: an RSA-2048 leaf with its key is about 3.1 kB, ECDSA 1.1 kB.
pub const BYTES_PER_FILE: u64 = 4096;

pub struct DiskBudget {
    /// Certificate file name → size, most recently used first.
    files: LruCache<u64>,
    bytes: u64,
    max_files: usize,
    max_bytes: u64,
    evicted: u64,
    /// The budget was reached and said so in the log.
    reported: bool,
}

impl DiskBudget {
    /// The index of the certificate files already in CERT_PATH (oldest modification first).
    pub fn new(max_files: usize, existing: &[Entry]) -> DiskBudget {
        let mut ours: Vec<&Entry> = existing
            .iter()
            .filter(|e| CertName::from_file_name(&e.name).is_ok())
            .collect();
        ours.sort_by_key(|e| (e.mtime, e.name.clone()));
        let mut budget = DiskBudget {
            files: LruCache::new(usize::MAX),
            bytes: 0,
            max_files,
            max_bytes: max_files as u64 * BYTES_PER_FILE,
            evicted: 0,
            reported: false,
        };
        for e in ours {
            budget.bytes += e.size;
            budget.files.insert(e.name.clone(), e.size);
        }
        budget
    }

    /// Files over the budget right now (after a start with a smaller `--cert-files`), least
    /// recently used first; they leave the index.
    pub fn over_budget(&mut self) -> Vec<String> {
        self.evict(&|_| false)
    }

    /// `name` was read from disk: it becomes the most recently used.
    pub fn used(&mut self, name: &str) {
        self.files.get(name);
    }

    /// Whether a new file may be written at all (`--cert-files 0`: never).
    pub fn enabled(&self) -> bool {
        self.max_files > 0
    }

    /// `name` was written with `bytes` bytes. Returns the files to remove to stay within
    /// the budget, least recently used first; `keep` spares names still in use elsewhere
    /// (the memory cache), which move to the front instead.
    pub fn stored(&mut self, name: &str, bytes: u64, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        let old = self.files.peek(name).copied().unwrap_or(0);
        self.files.insert(name.to_string(), bytes);
        self.bytes = self.bytes - old + bytes;
        self.evict(keep)
    }

    fn over(&self) -> bool {
        self.files.len() > self.max_files || self.bytes > self.max_bytes
    }

    fn evict(&mut self, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        // Each entry may be spared once per call, so this ends even if all are kept.
        let mut spared = 0;
        while self.over() {
            let Some((name, size)) = self.files.pop_lru() else {
                break;
            };
            if spared < self.files.len() + 1 && keep(&name) {
                spared += 1;
                self.files.insert(name, size);
                continue;
            }
            self.bytes -= size;
            self.evicted += 1;
            out.push(name);
        }
        out
    }

    /// `name` is gone from disk.
    pub fn removed(&mut self, name: &str) {
        if let Some(size) = self.files.remove(name) {
            self.bytes -= size;
        }
    }

    /// True once, the first time the budget made a file go (for a single log line).
    pub fn first_reached(&mut self) -> bool {
        let first = self.evicted > 0 && !self.reported;
        self.reported |= first;
        first
    }

    pub fn files(&self) -> usize {
        self.files.len()
    }

    pub fn max_files(&self) -> usize {
        self.max_files
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, size: u64, mtime: i64) -> Entry {
        Entry {
            name: name.to_string(),
            size,
            mtime,
        }
    }

    #[test]
    fn counts_only_certificate_files_oldest_first() {
        let existing = [
            entry("ca.crt", 900, 1),
            entry("prefetch", 10, 1),
            entry("notes.txt~", 10, 1),
            entry("_.b.com", 1000, 5),
            entry("_.a.com", 1000, 3),
            entry("_.c.com", 1000, 9),
        ];
        let mut d = DiskBudget::new(2, &existing);
        assert_eq!(d.files(), 3);
        assert_eq!(d.over_budget(), ["_.a.com"]);
        assert_eq!(d.files(), 2);
        assert!(d.first_reached());
        assert!(!d.first_reached());
    }

    #[test]
    fn least_recently_used_goes_and_memory_cached_names_are_spared() {
        let mut d = DiskBudget::new(3, &[]);
        for n in ["a", "b", "c"] {
            assert!(d.stored(n, 100, &|_| false).is_empty());
        }
        d.used("a");
        assert_eq!(d.stored("d", 100, &|_| false), ["b"]);
        // "c" is the oldest now, but in the memory cache: "a" goes instead.
        assert_eq!(d.stored("e", 100, &|n| n == "c"), ["a"]);
        assert_eq!(d.files(), 3);
        assert_eq!(d.evicted(), 2);
        // Everything kept: the budget still holds.
        assert_eq!(d.stored("f", 100, &|_| true).len(), 1);
        assert_eq!(d.files(), 3);
        d.removed("f");
        assert_eq!(d.files(), 2);
    }

    #[test]
    fn bytes_count_too() {
        let mut d = DiskBudget::new(10, &[]);
        assert!(d
            .stored("big", 10 * BYTES_PER_FILE - 10, &|_| false)
            .is_empty());
        assert_eq!(d.stored("more", 100, &|_| false), ["big"]);
        // Rewriting a file replaces its size rather than adding it.
        for _ in 0..20 {
            assert!(d.stored("more", 200, &|_| false).is_empty());
        }
        assert_eq!(d.files(), 1);
    }

    #[test]
    fn zero_means_no_files() {
        let mut d = DiskBudget::new(0, &[entry("a.com", 10, 1)]);
        assert!(!d.enabled());
        assert_eq!(d.over_budget(), ["a.com"]);
    }
}
