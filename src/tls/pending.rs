//! Connections parked on a certificate that a worker is making: the one record of "who waits
//! for which certificate file". The loop parks a connection here when its handshake needs a
//! certificate that is not cached, and takes the waiters back when the worker reports. One
//! job runs per file however many connections wait for it, and a job whose every waiter
//! has gone is flagged so that the worker skips it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

struct Waiting<Id> {
    ids: Vec<Id>,
    /// Shared with the queued job: set while nobody waits.
    abandoned: Arc<AtomicBool>,
}

/// Waiters by certificate file name; `Id` identifies a connection across slot reuse.
pub struct Pending<Id> {
    waiters: HashMap<String, Waiting<Id>>,
}

impl<Id> Default for Pending<Id> {
    fn default() -> Self {
        Pending {
            waiters: HashMap::new(),
        }
    }
}

impl<Id: Copy + PartialEq> Pending<Id> {
    /// Parks `id` on `file`. When no job for it is queued or running, returns the flag for a
    /// new one, which the caller must queue.
    pub fn park(&mut self, file: &str, id: Id) -> Option<Arc<AtomicBool>> {
        match self.waiters.get_mut(file) {
            Some(w) => {
                w.ids.push(id);
                w.abandoned.store(false, Ordering::Relaxed);
                None
            }
            None => {
                let abandoned = Arc::new(AtomicBool::new(false));
                let w = Waiting {
                    ids: vec![id],
                    abandoned: abandoned.clone(),
                };
                self.waiters.insert(file.to_string(), w);
                Some(abandoned)
            }
        }
    }

    /// `id` stopped waiting (its deadline passed, or it closed); when it was the last, the
    /// job is flagged as abandoned.
    pub fn forget(&mut self, file: &str, id: Id) {
        if let Some(w) = self.waiters.get_mut(file) {
            w.ids.retain(|x| *x != id);
            if w.ids.is_empty() {
                w.abandoned.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The job for `file` finished: everyone who still waits, in the order they came.
    pub fn take(&mut self, file: &str) -> Vec<Id> {
        self.waiters.remove(file).map(|w| w.ids).unwrap_or_default()
    }

    /// Files with a job queued or running.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_per_file_and_waiters_in_order() {
        let mut p = Pending::default();
        assert!(p.park("_.a.com", 1).is_some());
        assert!(p.park("_.a.com", 2).is_none());
        assert!(p.park("_.b.com", 3).is_some());
        assert!(p.park("_.a.com", 4).is_none());
        assert_eq!(p.len(), 2);
        p.forget("_.a.com", 2);
        p.forget("_.nothing", 9);
        assert_eq!(p.take("_.a.com"), [1, 4]);
        assert_eq!(p.take("_.a.com"), Vec::<i32>::new());
        // A new job is needed once the old one reported.
        assert!(p.park("_.a.com", 5).is_some());
        assert_eq!(p.take("_.b.com"), [3]);
        assert_eq!(p.take("_.a.com"), [5]);
        assert!(p.is_empty());
    }

    #[test]
    fn a_job_nobody_waits_for_is_flagged_until_someone_does() {
        let mut p = Pending::default();
        let flag = p.park("_.a.com", 1).unwrap();
        assert!(p.park("_.a.com", 2).is_none());
        p.forget("_.a.com", 1);
        assert!(!flag.load(Ordering::Relaxed));
        p.forget("_.a.com", 2);
        assert!(flag.load(Ordering::Relaxed));
        // Someone asks again before the worker got to it: the same job serves them.
        assert!(p.park("_.a.com", 3).is_none());
        assert!(!flag.load(Ordering::Relaxed));
        assert_eq!(p.take("_.a.com"), [3]);
    }
}
