//! Connection deadlines: a min-heap the loop sleeps on, keyed by connection id.
//!
//! Each connection keeps at most one live entry. A deadline that moves later (the common
//! case: another request on a keep-alive connection) costs nothing: the old entry fires,
//! sees the connection's real deadline is later and re-arms once. Only a deadline that
//! moves earlier pushes a new entry; the superseded one is recognised as stale and dropped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

pub struct Timers<K> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
    /// Entries that will never fire for a live connection (closed, or superseded by an
    /// earlier deadline); when they outnumber the rest the heap is compacted, so that churn
    /// cannot pile up entries for `-O` seconds.
    stale: usize,
}

impl<K: Ord> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            stale: 0,
        }
    }
}

/// Compaction pays off only past this many stale entries.
const COMPACT_AFTER: usize = 1024;

/// What a connection remembers about its heap entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Armed(pub Option<Instant>);

impl<K: Ord + Copy> Timers<K> {
    /// Makes sure an entry fires no later than `deadline`.
    pub fn arm(&mut self, key: K, armed: &mut Armed, deadline: Instant) {
        match armed.0 {
            Some(at) if at <= deadline => {}
            previous => {
                self.stale += usize::from(previous.is_some());
                self.heap.push(Reverse((deadline, key)));
                armed.0 = Some(deadline);
            }
        }
    }

    /// The connection owning `armed` closed: its entry is dead weight from now on.
    pub fn cancel(&mut self, armed: &mut Armed) {
        if armed.0.take().is_some() {
            self.stale += 1;
        }
    }

    /// Drops the entries `live` says are stale once they are the majority.
    pub fn compact_if_stale(&mut self, live: impl Fn(Instant, K) -> bool) {
        if self.stale > COMPACT_AFTER && self.stale * 2 > self.heap.len() {
            self.heap.retain(|Reverse((at, key))| live(*at, *key));
            self.stale = 0;
        }
    }

    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops the next entry due at `now`; the caller checks it against the connection
    /// (`fired`) and re-arms or expires it.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => {
                let popped = self.heap.pop().map(|Reverse(e)| e);
                // Whether it was stale is for the caller to say; keep the estimate in bounds.
                self.stale = self.stale.min(self.heap.len());
                popped
            }
            _ => None,
        }
    }

    /// After a burst: give back the heap capacity the burst needed.
    pub fn shrink_to_fit(&mut self) {
        self.heap.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

impl Armed {
    /// Whether a popped entry firing at `at` is this connection's live entry; if so the
    /// connection has no entry any more and must re-arm if it lives on.
    pub fn fired(&mut self, at: Instant) -> bool {
        if self.0 == Some(at) {
            self.0 = None;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn later_deadlines_do_not_push() {
        let mut t = Timers::default();
        let key = (1usize, 7u64);
        let mut armed = Armed::default();
        let now = Instant::now();
        t.arm(key, &mut armed, now + Duration::from_secs(5));
        t.arm(key, &mut armed, now + Duration::from_secs(9));
        assert_eq!(t.len(), 1);
        t.arm(key, &mut armed, now + Duration::from_secs(1));
        assert_eq!(t.len(), 2);
        assert_eq!(t.next(), Some(now + Duration::from_secs(1)));
    }

    #[test]
    fn stale_entries_are_recognised() {
        let mut t = Timers::default();
        let key = (0usize, 1u64);
        let mut armed = Armed::default();
        let now = Instant::now();
        t.arm(key, &mut armed, now + Duration::from_secs(5));
        t.arm(key, &mut armed, now + Duration::from_secs(1));
        let later = now + Duration::from_secs(10);
        let (at1, k1) = t.pop_due(later).unwrap();
        assert_eq!(k1, key);
        assert!(armed.fired(at1));
        let (at2, _) = t.pop_due(later).unwrap();
        assert!(!armed.fired(at2));
        assert!(t.pop_due(later).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn closed_connections_do_not_pile_up() {
        let mut t = Timers::default();
        let now = Instant::now();
        let far = now + Duration::from_secs(120);
        let mut live = Armed::default();
        t.arm((0usize, 0u64), &mut live, far);
        for i in 1..=5000u64 {
            let mut armed = Armed::default();
            t.arm((i as usize, i), &mut armed, far);
            t.cancel(&mut armed);
            let keep = live.0;
            t.compact_if_stale(|at, k| k == (0, 0) && Some(at) == keep);
        }
        assert!(t.len() <= COMPACT_AFTER + 2, "{}", t.len());
        assert_eq!(t.next(), Some(far));
    }

    #[test]
    fn nothing_due_before_deadline() {
        let mut t = Timers::default();
        let mut armed = Armed::default();
        let now = Instant::now();
        t.arm((0usize, 0u64), &mut armed, now + Duration::from_millis(50));
        assert!(t.pop_due(now).is_none());
    }
}
