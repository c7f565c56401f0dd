//! The in-memory certificate cache (COMPATIBILITY.md §7.6, `-c` entries): an O(1) LRU
//! instead of the original's linear scan and re-sort (DEFECTS.md #17). Slots live in one Vec
//! linked into a most-recent-first list; freed slots are reused, so steady-state operation
//! allocates only the key of an insert. Reuse counts only order the prefetch file, and reading
//! them never disturbs the cache (DEFECTS.md #11).

use std::collections::HashMap;

const NIL: usize = usize::MAX;

struct Slot<V> {
    /// None while the slot is on the free list.
    entry: Option<(String, V)>,
    reuse: u64,
    prev: usize,
    next: usize,
}

pub struct LruCache<V> {
    map: HashMap<String, usize>,
    slots: Vec<Slot<V>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used: the next eviction.
    tail: usize,
    capacity: usize,
}

impl<V> LruCache<V> {
    pub fn new(capacity: usize) -> Self {
        // A huge -c should not cost memory before it is used.
        let initial = capacity.min(1024);
        LruCache {
            map: HashMap::with_capacity(initial),
            slots: Vec::with_capacity(initial),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A hit: the entry becomes the most recently used and its reuse count grows.
    pub fn get(&mut self, key: &str) -> Option<&V> {
        let i = *self.map.get(key)?;
        self.unlink(i);
        self.push_front(i);
        let slot = &mut self.slots[i];
        slot.reuse += 1;
        slot.entry.as_ref().map(|(_, v)| v)
    }

    /// Looks without counting a use or changing the order.
    pub fn peek(&self, key: &str) -> Option<&V> {
        let i = *self.map.get(key)?;
        self.slots[i].entry.as_ref().map(|(_, v)| v)
    }

    /// Inserts as most recently used. Returns the evicted least recently used entry when the
    /// cache was full (with capacity 0, the entry itself). Replacing an existing key keeps its
    /// reuse count, drops the old value and evicts nothing.
    pub fn insert(&mut self, key: String, value: V) -> Option<(String, V)> {
        if self.capacity == 0 {
            return Some((key, value));
        }
        if let Some(&i) = self.map.get(&key) {
            if let Some((_, old)) = self.slots[i].entry.as_mut() {
                *old = value;
            }
            self.unlink(i);
            self.push_front(i);
            return None;
        }
        let evicted = if self.map.len() >= self.capacity {
            self.pop_lru()
        } else {
            None
        };
        let slot = Slot {
            entry: Some((key.clone(), value)),
            reuse: 0,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.map.insert(key, i);
        self.push_front(i);
        evicted
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let i = self.map.remove(key)?;
        self.release(i).map(|(_, v)| v)
    }

    /// Every entry with its reuse count, most reused first, then by name: the prefetch order.
    pub fn iter_by_reuse(&self) -> Vec<(&str, u64)> {
        let mut all: Vec<(&str, u64)> = self
            .slots
            .iter()
            .filter_map(|s| s.entry.as_ref().map(|(k, _)| (k.as_str(), s.reuse)))
            .collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        all
    }

    /// Removes and returns the least recently used entry.
    pub fn pop_lru(&mut self) -> Option<(String, V)> {
        if self.tail == NIL {
            return None;
        }
        let i = self.tail;
        let entry = self.release(i)?;
        self.map.remove(&entry.0);
        Some(entry)
    }

    /// Unlinks slot `i` and puts it on the free list.
    fn release(&mut self, i: usize) -> Option<(String, V)> {
        self.unlink(i);
        self.free.push(i);
        let slot = &mut self.slots[i];
        slot.reuse = 0;
        slot.entry.take()
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next].prev = prev;
        }
        self.slots[i].prev = NIL;
        self.slots[i].next = NIL;
    }

    fn push_front(&mut self, i: usize) {
        self.slots[i].prev = NIL;
        self.slots[i].next = self.head;
        if self.head == NIL {
            self.tail = i;
        } else {
            self.slots[self.head].prev = i;
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys from most to least recently used, walking the list both ways.
    fn order<V>(c: &LruCache<V>) -> Vec<String> {
        let mut forward = Vec::new();
        let mut i = c.head;
        while i != NIL {
            forward.push(c.slots[i].entry.as_ref().unwrap().0.clone());
            i = c.slots[i].next;
        }
        let mut backward = Vec::new();
        let mut i = c.tail;
        while i != NIL {
            backward.push(c.slots[i].entry.as_ref().unwrap().0.clone());
            i = c.slots[i].prev;
        }
        backward.reverse();
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), c.len());
        forward
    }

    #[test]
    fn basic_lru_eviction() {
        let mut c = LruCache::new(3);
        assert!(c.is_empty());
        assert_eq!(c.insert("a".into(), 1), None);
        assert_eq!(c.insert("b".into(), 2), None);
        assert_eq!(c.insert("c".into(), 3), None);
        assert_eq!(order(&c), ["c", "b", "a"]);
        assert_eq!(c.get("a"), Some(&1));
        assert_eq!(order(&c), ["a", "c", "b"]);
        assert_eq!(c.insert("d".into(), 4), Some(("b".into(), 2)));
        assert_eq!(order(&c), ["d", "a", "c"]);
        assert_eq!(c.len(), 3);
        assert_eq!(c.capacity(), 3);
        assert_eq!(c.get("b"), None);
    }

    #[test]
    fn peek_does_not_touch() {
        let mut c = LruCache::new(2);
        c.insert("a".into(), 1);
        c.insert("b".into(), 2);
        assert_eq!(c.peek("a"), Some(&1));
        assert_eq!(c.peek("zz"), None);
        assert_eq!(order(&c), ["b", "a"]);
        assert_eq!(c.iter_by_reuse(), [("a", 0), ("b", 0)]);
        assert_eq!(c.insert("c".into(), 3), Some(("a".into(), 1)));
    }

    #[test]
    fn replace_keeps_reuse_and_evicts_nothing() {
        let mut c = LruCache::new(2);
        c.insert("a".into(), 1);
        c.insert("b".into(), 2);
        c.get("a");
        c.get("a");
        c.get("b");
        assert_eq!(c.insert("a".into(), 10), None);
        assert_eq!(c.len(), 2);
        assert_eq!(c.peek("a"), Some(&10));
        assert_eq!(order(&c), ["a", "b"]);
        assert_eq!(c.iter_by_reuse(), [("a", 2), ("b", 1)]);
    }

    #[test]
    fn remove_and_slot_reuse() {
        let mut c = LruCache::new(3);
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            c.insert(k.to_string(), i);
        }
        c.get("b");
        assert_eq!(c.remove("b"), Some(1));
        assert_eq!(c.remove("b"), None);
        assert_eq!(order(&c), ["c", "a"]);
        c.insert("d".into(), 3);
        // The freed slot was reused and its reuse count reset.
        assert_eq!(c.slots.len(), 3);
        assert_eq!(c.iter_by_reuse(), [("a", 0), ("c", 0), ("d", 0)]);
        assert_eq!(c.remove("a"), Some(0));
        assert_eq!(c.remove("d"), Some(3));
        assert_eq!(c.remove("c"), Some(2));
        assert!(c.is_empty());
        assert_eq!(order(&c), Vec::<String>::new());
        assert_eq!(c.insert("e".into(), 5), None);
        assert_eq!(order(&c), ["e"]);
    }

    #[test]
    fn capacity_zero_and_one() {
        let mut c = LruCache::new(0);
        assert_eq!(c.insert("a".into(), 1), Some(("a".into(), 1)));
        assert!(c.is_empty());
        assert_eq!(c.get("a"), None);
        let mut c = LruCache::new(1);
        assert_eq!(c.insert("a".into(), 1), None);
        assert_eq!(c.insert("b".into(), 2), Some(("a".into(), 1)));
        assert_eq!(c.insert("b".into(), 3), None);
        assert_eq!(order(&c), ["b"]);
    }

    #[test]
    fn iter_by_reuse_sorts_and_does_not_disturb() {
        let mut c = LruCache::new(10);
        for k in ["m", "z", "a", "q"] {
            c.insert(k.to_string(), ());
        }
        for _ in 0..3 {
            c.get("z");
        }
        c.get("q");
        c.get("a");
        let before = order(&c);
        assert_eq!(c.iter_by_reuse(), [("z", 3), ("a", 1), ("q", 1), ("m", 0)]);
        assert_eq!(order(&c), before);
        // Lookups still work after producing the prefetch order (DEFECTS.md #11).
        for k in ["m", "z", "a", "q"] {
            assert!(c.peek(k).is_some());
        }
    }

    #[test]
    fn huge_capacity_does_not_preallocate() {
        let c: LruCache<u8> = LruCache::new(usize::MAX);
        assert!(c.slots.capacity() <= 1024);
    }

    /// Naive reference: a Vec ordered most recent first.
    struct Model {
        entries: Vec<(String, u32, u64)>,
        capacity: usize,
    }

    impl Model {
        fn get(&mut self, k: &str) -> Option<u32> {
            let i = self.entries.iter().position(|e| e.0 == k)?;
            let mut e = self.entries.remove(i);
            e.2 += 1;
            let v = e.1;
            self.entries.insert(0, e);
            Some(v)
        }
        fn insert(&mut self, k: String, v: u32) -> Option<(String, u32)> {
            if self.capacity == 0 {
                return Some((k, v));
            }
            if let Some(i) = self.entries.iter().position(|e| e.0 == k) {
                let mut e = self.entries.remove(i);
                e.1 = v;
                self.entries.insert(0, e);
                return None;
            }
            let evicted = if self.entries.len() >= self.capacity {
                self.entries.pop().map(|e| (e.0, e.1))
            } else {
                None
            };
            self.entries.insert(0, (k, v, 0));
            evicted
        }
        fn remove(&mut self, k: &str) -> Option<u32> {
            let i = self.entries.iter().position(|e| e.0 == k)?;
            Some(self.entries.remove(i).1)
        }
    }

    /// xorshift: deterministic, no dev-dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn randomized_against_model() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for capacity in [0usize, 1, 2, 3, 7, 16] {
            let mut c = LruCache::new(capacity);
            let mut m = Model {
                entries: Vec::new(),
                capacity,
            };
            for step in 0..20_000u32 {
                let key = format!("k{}", rng.next(capacity as u64 * 2 + 3));
                match rng.next(10) {
                    0..=3 => assert_eq!(c.get(&key).copied(), m.get(&key), "{step}"),
                    4..=6 => assert_eq!(c.insert(key.clone(), step), m.insert(key, step)),
                    7 => assert_eq!(c.remove(&key), m.remove(&key), "{step}"),
                    8 => {
                        let expected = m.entries.iter().find(|e| e.0 == key).map(|e| e.1);
                        assert_eq!(c.peek(&key).copied(), expected);
                    }
                    _ => {
                        let mut expected: Vec<(&str, u64)> =
                            m.entries.iter().map(|e| (e.0.as_str(), e.2)).collect();
                        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                        assert_eq!(c.iter_by_reuse(), expected);
                    }
                }
                let expected: Vec<&str> = m.entries.iter().map(|e| e.0.as_str()).collect();
                assert_eq!(order(&c), expected, "step {step}");
                assert!(c.slots.len() <= capacity.max(1));
            }
        }
    }
}
