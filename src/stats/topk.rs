//! Space-saving top-k (Metwally, Agrawal, El Abbadi, "Efficient computation of frequent and
//! top-k elements in data streams", ICDT 2005): the most frequent keys of an unbounded
//! stream in a fixed number of slots.
//!
//! Every slot holds a key, its `count` and an `error`. A key already in a slot adds one to
//! its count. A new key takes a free slot, or else the slot with the smallest count `m`,
//! starting at `count = m + 1, error = m`. So for every tracked key
//! `count - error <= true count <= count`, the counts sum to the stream length `N`, the
//! smallest count is at most `N / CAP`, and every key seen more than `N / CAP` times is
//! tracked.
//!
//! Memory is fixed at construction (keys are stored inline, at most `KEY` bytes); adding
//! never allocates. A key is found through an open-addressing index at most half full
//! (linear probing, backward-shift deletion, so no tombstones build up); an eviction scans
//! the counts, one contiguous array of `CAP` integers, for the smallest.
//!
//! `TAGS` per-slot sub-counters split the occurrences seen while a key was tracked by
//! where they came from (`tags[i]` sum to `count - error`).

/// One tracked key, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a, const TAGS: usize> {
    pub key: &'a [u8],
    /// An upper bound of the key's occurrences.
    pub count: u64,
    /// How much `count` may overstate: the true number is at least `count - error`.
    pub error: u64,
    /// Occurrences counted while the key was tracked, by tag.
    pub tags: [u64; TAGS],
}

#[derive(Clone, Copy)]
struct Slot<const KEY: usize, const TAGS: usize> {
    key: [u8; KEY],
    len: u8,
    error: u64,
    tags: [u64; TAGS],
}

/// An unused position of the index.
const EMPTY: u16 = u16::MAX;

pub struct TopK<const CAP: usize, const KEY: usize, const TAGS: usize> {
    /// Slot numbers by hash; a power of two at least twice `CAP`.
    index: Box<[u16]>,
    /// Parallel to `slots` and apart from them: the eviction scan reads only `counts`.
    hashes: Box<[u64; CAP]>,
    counts: Box<[u64; CAP]>,
    slots: Box<[Slot<KEY, TAGS>; CAP]>,
    len: usize,
    total: u64,
    /// The smallest count, once the table is full. Counts only grow, so it only grows:
    /// an eviction looks for a slot at it, from where the last one was found, and
    /// recomputes it only when none is left.
    floor: u64,
    cursor: usize,
}

impl<const CAP: usize, const KEY: usize, const TAGS: usize> Default for TopK<CAP, KEY, TAGS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAP: usize, const KEY: usize, const TAGS: usize> TopK<CAP, KEY, TAGS> {
    /// Keys are stored with a one-byte length, slot numbers in a `u16` below `EMPTY`.
    const KEY_FITS: () = assert!(KEY <= u8::MAX as usize && CAP > 0 && CAP < EMPTY as usize);

    pub fn new() -> Self {
        let () = Self::KEY_FITS;
        let empty = Slot {
            key: [0; KEY],
            len: 0,
            error: 0,
            tags: [0; TAGS],
        };
        TopK {
            index: vec![EMPTY; (2 * CAP).next_power_of_two()].into_boxed_slice(),
            hashes: Box::new([0; CAP]),
            counts: Box::new([0; CAP]),
            slots: Box::new([empty; CAP]),
            len: 0,
            total: 0,
            floor: 0,
            cursor: 0,
        }
    }

    /// Counts one occurrence of `key` (cut to `KEY` bytes) under `tag` (`< TAGS`).
    pub fn add(&mut self, key: &[u8], tag: usize) {
        let key = &key[..key.len().min(KEY)];
        let hash = key_hash(key);
        self.total = self.total.saturating_add(1);
        let i = match self.find(key, hash) {
            Some(i) => i,
            None => self.take_slot(key, hash),
        };
        self.counts[i] = self.counts[i].saturating_add(1);
        if let Some(t) = self.slots[i].tags.get_mut(tag) {
            *t = t.saturating_add(1);
        }
    }

    fn find(&self, key: &[u8], hash: u64) -> Option<usize> {
        let mask = self.index.len() - 1;
        let mut pos = hash as usize & mask;
        // The index is never more than half full: an empty position ends every probe.
        loop {
            let i = usize::from(self.index[pos]);
            if i == usize::from(EMPTY) {
                return None;
            }
            let slot = &self.slots[i];
            if self.hashes[i] == hash && &slot.key[..usize::from(slot.len)] == key {
                return Some(i);
            }
            pos = (pos + 1) & mask;
        }
    }

    /// A slot for a new key: a free one, else the one with the smallest count, whose count
    /// becomes the new key's error.
    fn take_slot(&mut self, key: &[u8], hash: u64) -> usize {
        let (i, floor) = if self.len < CAP {
            self.len += 1;
            (self.len - 1, 0)
        } else {
            let i = self.smallest();
            self.unindex(i);
            (i, self.counts[i])
        };
        let slot = &mut self.slots[i];
        slot.key[..key.len()].copy_from_slice(key);
        slot.len = key.len() as u8;
        slot.error = floor;
        self.counts[i] = floor;
        slot.tags = [0; TAGS];
        self.hashes[i] = hash;
        let mask = self.index.len() - 1;
        let mut pos = hash as usize & mask;
        while self.index[pos] != EMPTY {
            pos = (pos + 1) & mask;
        }
        self.index[pos] = i as u16;
        i
    }

    /// A slot with the smallest count (the table is full).
    fn smallest(&mut self) -> usize {
        let floor = self.floor;
        let at = |from: usize, counts: &[u64; CAP]| {
            (from..CAP).chain(0..from).find(|&i| counts[i] == floor)
        };
        let i = match at(self.cursor, &self.counts) {
            Some(i) => i,
            None => {
                self.floor = self.counts.iter().fold(u64::MAX, |m, &c| m.min(c));
                let floor = self.floor;
                self.counts.iter().position(|&c| c == floor).unwrap_or(0)
            }
        };
        self.cursor = (i + 1) % CAP;
        i
    }

    /// Takes slot `i` out of the index, moving later entries of its probe run back into the
    /// hole where their own probe allows it.
    fn unindex(&mut self, i: usize) {
        let mask = self.index.len() - 1;
        let start = self.hashes[i] as usize & mask;
        let Some(mut hole) = (0..self.index.len())
            .map(|step| (start + step) & mask)
            .find(|&pos| usize::from(self.index[pos]) == i)
        else {
            return;
        };
        let mut next = (hole + 1) & mask;
        while self.index[next] != EMPTY {
            let home = self.hashes[usize::from(self.index[next])] as usize & mask;
            // It may move back if the hole is between its home and where it is now.
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                self.index[hole] = self.index[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.index[hole] = EMPTY;
    }

    /// Occurrences counted so far (the stream length `N`).
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub const fn capacity(&self) -> usize {
        CAP
    }

    /// Heap memory held, all of it allocated by `new`.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.index)
            + CAP * (2 * std::mem::size_of::<u64>() + std::mem::size_of::<Slot<KEY, TAGS>>())
    }

    /// The `n` largest counts, largest first (ties by key, so the order is stable).
    pub fn top(&self, n: usize) -> Vec<Entry<'_, TAGS>> {
        let mut all: Vec<Entry<'_, TAGS>> = self.slots[..self.len]
            .iter()
            .zip(self.counts.iter())
            .map(|(s, &count)| Entry {
                key: &s.key[..usize::from(s.len)],
                count,
                error: s.error,
                tags: s.tags,
            })
            .collect();
        all.sort_unstable_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(b.key)));
        all.truncate(n);
        all
    }
}

/// Eight bytes at a time (FxHash's multiply, the high half folded down because the index
/// takes the low bits): one multiply per eight bytes where FNV-1a takes one per byte. Keys
/// come from clients, but a crafted collision only lengthens a probe run (bounded: the
/// index is at most half full) and costs key comparisons, never a wrong count.
fn key_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    for c in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(c);
        h = mix(h, u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(word));
    }
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    type Small = TopK<16, 32, 2>;

    /// xorshift64*: deterministic streams without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    /// The guarantees of the algorithm, checked against the true counts.
    fn check_bounds<const C: usize, const K: usize, const T: usize>(
        t: &TopK<C, K, T>,
        truth: &HashMap<Vec<u8>, u64>,
    ) {
        let n = truth.values().sum::<u64>();
        assert_eq!(t.total(), n);
        // The index holds every slot once and finds each key where it is.
        let indexed = t.index.iter().filter(|&&e| e != EMPTY).count();
        assert_eq!(indexed, t.len());
        for (i, s) in t.slots[..t.len()].iter().enumerate() {
            let key = &s.key[..usize::from(s.len)];
            assert_eq!(t.find(key, key_hash(key)), Some(i));
        }
        let entries = t.top(C);
        assert_eq!(entries.iter().map(|e| e.count).sum::<u64>(), n);
        for e in &entries {
            let real = truth[e.key];
            assert!(e.count - e.error <= real, "{:?}: {real}", e);
            assert!(real <= e.count, "{:?}: {real}", e);
            assert_eq!(e.tags.iter().sum::<u64>(), e.count - e.error);
        }
        // Everything seen more than N/CAP times is tracked.
        for (key, &real) in truth {
            if real * C as u64 > n {
                assert!(
                    entries.iter().any(|e| e.key == key.as_slice()),
                    "heavy hitter {} ({real} of {n}) lost",
                    String::from_utf8_lossy(key)
                );
            }
        }
    }

    fn feed<const C: usize, const K: usize, const T: usize>(
        t: &mut TopK<C, K, T>,
        truth: &mut HashMap<Vec<u8>, u64>,
        key: &[u8],
    ) {
        t.add(key, key.len() % T);
        *truth.entry(key.to_vec()).or_default() += 1;
    }

    #[test]
    fn exact_while_everything_fits() {
        let mut t = Small::new();
        for (key, times) in [("a", 5), ("b", 3), ("c", 9)] {
            for _ in 0..times {
                t.add(key.as_bytes(), 0);
            }
        }
        t.add(b"b", 1);
        let top = t.top(10);
        let got: Vec<(&[u8], u64, u64)> = top.iter().map(|e| (e.key, e.count, e.error)).collect();
        assert_eq!(
            got,
            [(&b"c"[..], 9, 0), (&b"a"[..], 5, 0), (&b"b"[..], 4, 0)]
        );
        assert_eq!(top[2].tags, [3, 1]);
        assert_eq!(t.top(1).len(), 1);
        assert_eq!((t.len(), t.total(), t.capacity()), (3, 18, 16));
    }

    #[test]
    fn a_full_table_replaces_the_smallest_count() {
        let mut t = TopK::<2, 8, 1>::new();
        t.add(b"a", 0);
        t.add(b"a", 0);
        t.add(b"b", 0);
        t.add(b"c", 0); // takes b's slot: count 2, error 1
        let top = t.top(2);
        assert_eq!((top[0].key, top[0].count, top[0].error), (&b"a"[..], 2, 0));
        assert_eq!((top[1].key, top[1].count, top[1].error), (&b"c"[..], 2, 1));
        assert_eq!(top[1].tags, [1]);
    }

    #[test]
    fn long_keys_are_cut_and_bad_tags_ignored() {
        let mut t = TopK::<4, 4, 1>::new();
        t.add(b"abcdef", 0);
        t.add(b"abcdXY", 7);
        let top = t.top(4);
        assert_eq!((top[0].key, top[0].count), (&b"abcd"[..], 2));
        assert_eq!(top[0].tags, [1]);
    }

    #[test]
    fn heavy_hitters_survive_a_flood_of_unique_keys() {
        // Each round: every heavy key, a dozen never-repeated keys, every heavy key again,
        // another dozen. The unique keys outnumber the free slots, so every one of them
        // evicts the smallest count: the stream that evicts the most. Each heavy key makes
        // 2/30 of the stream, just above the 1/16 the guarantee needs.
        let mut t = Small::new();
        let mut truth = HashMap::new();
        let heavy = ["ads.example", "t.tracker", "pixel.cdn"];
        for round in 0..3000u32 {
            for half in 0..2 {
                for h in heavy {
                    feed(&mut t, &mut truth, h.as_bytes());
                }
                for i in 0..12u32 {
                    let junk = format!("junk{round}-{half}-{i}");
                    feed(&mut t, &mut truth, junk.as_bytes());
                }
            }
        }
        check_bounds(&t, &truth);
        let top: Vec<&[u8]> = t.top(heavy.len()).iter().map(|e| e.key).collect();
        for h in heavy {
            assert!(top.contains(&h.as_bytes()), "{h} not in the top");
        }
    }

    #[test]
    fn zipf_like_random_stream_keeps_its_order() {
        // Key k drawn with probability ∝ 1/(k+1) over 5000 keys.
        let keys = 5000u64;
        let weights: Vec<f64> = (0..keys).map(|k| 1.0 / (k + 1) as f64).collect();
        let sum: f64 = weights.iter().sum();
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut acc = 0.0;
        for w in &weights {
            acc += w / sum;
            cumulative.push(acc);
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut t = TopK::<64, 16, 2>::new();
        let mut truth = HashMap::new();
        for _ in 0..200_000 {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let k = cumulative.partition_point(|&c| c < u);
            feed(&mut t, &mut truth, format!("k{k}").as_bytes());
        }
        check_bounds(&t, &truth);
        // The five most frequent keys, in order.
        let top: Vec<String> = t
            .top(5)
            .iter()
            .map(|e| String::from_utf8_lossy(e.key).into_owned())
            .collect();
        assert_eq!(top, ["k0", "k1", "k2", "k3", "k4"]);
    }

    #[test]
    fn random_keys_never_grow_memory() {
        let mut t = Small::new();
        let mut truth = HashMap::new();
        let mut rng = Rng(42);
        for _ in 0..100_000 {
            let key = format!("{:x}", rng.next() % 50_000);
            feed(&mut t, &mut truth, key.as_bytes());
        }
        check_bounds(&t, &truth);
        assert_eq!(t.len(), 16);
        // Everything lives in the three boxes made by `new`.
        assert_eq!(
            std::mem::size_of_val(&*t.slots),
            16 * std::mem::size_of::<Slot<32, 2>>()
        );
        assert!(std::mem::size_of::<Slot<32, 2>>() <= 64);
        assert_eq!(std::mem::size_of_val(&*t.counts), 16 * 8);
    }

    #[test]
    fn the_index_survives_every_eviction() {
        // Tiny tables keep probe runs long and wrapping around: after every add each key
        // is found in its own slot and no key is in two.
        for seed in 1..40u64 {
            let mut t = TopK::<5, 4, 1>::new();
            let mut truth = HashMap::new();
            let mut rng = Rng(seed);
            for _ in 0..1500 {
                let key = format!("{}", rng.next() % 23);
                feed(&mut t, &mut truth, key.as_bytes());
                let keys: Vec<&[u8]> = t.slots[..t.len()]
                    .iter()
                    .map(|s| &s.key[..usize::from(s.len)])
                    .collect();
                for (i, key) in keys.iter().enumerate() {
                    assert_eq!(t.find(key, key_hash(key)), Some(i), "seed {seed}");
                    assert!(!keys[..i].contains(key), "seed {seed}: duplicate");
                }
            }
            check_bounds(&t, &truth);
        }
    }

    #[test]
    fn counts_saturate() {
        let mut t = TopK::<1, 1, 1>::new();
        t.add(b"a", 0);
        t.counts[0] = u64::MAX;
        t.slots[0].tags[0] = u64::MAX;
        t.total = u64::MAX;
        t.add(b"a", 0);
        t.add(b"b", 0);
        assert_eq!(t.top(1)[0].count, u64::MAX);
        assert_eq!(t.total(), u64::MAX);
    }
}
