//! Connections that may be closed to admit a new one when `-T` is reached (nginx's reusable
//! connections): those that never sent a byte of a request and keep-alive ones between
//! requests, oldest first. Without this, a few silent sockets could hold every slot until
//! their deadlines while real clients wait in the kernel backlog.

use std::collections::BTreeSet;
use std::time::Instant;

/// `K` identifies a connection (`conn::ConnId`).
pub struct Reusable<K> {
    set: BTreeSet<(Instant, K)>,
}

impl<K: Ord> Default for Reusable<K> {
    fn default() -> Self {
        Reusable {
            set: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Copy> Reusable<K> {
    /// Moves `id`'s entry from `listed` (what it was listed under, kept by the connection)
    /// to `since` (None: not reusable now).
    pub fn update(&mut self, id: K, listed: &mut Option<Instant>, since: Option<Instant>) {
        if *listed == since {
            return;
        }
        if let Some(old) = listed.take() {
            self.set.remove(&(old, id));
        }
        if let Some(new) = since {
            self.set.insert((new, id));
            *listed = Some(new);
        }
    }

    /// The connection to close first.
    pub fn oldest(&self) -> Option<K> {
        self.set.first().map(|(_, id)| *id)
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn oldest_first_and_entries_move() {
        let t0 = Instant::now();
        let id = |slot: usize| (slot, 1u64);
        let mut r = Reusable::default();
        let (mut a, mut b) = (None, None);
        r.update(id(1), &mut a, Some(t0 + Duration::from_secs(2)));
        r.update(id(2), &mut b, Some(t0 + Duration::from_secs(1)));
        assert_eq!(r.oldest(), Some(id(2)));
        // Busy again: no longer a candidate.
        r.update(id(2), &mut b, None);
        assert_eq!((r.oldest(), r.len(), b), (Some(id(1)), 1, None));
        // Idle again later.
        r.update(id(2), &mut b, Some(t0 + Duration::from_secs(3)));
        r.update(id(1), &mut a, Some(t0 + Duration::from_secs(4)));
        assert_eq!(r.oldest(), Some(id(2)));
        r.update(id(2), &mut b, None);
        r.update(id(1), &mut a, None);
        assert!(r.is_empty());
    }
}
