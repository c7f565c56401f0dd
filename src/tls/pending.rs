//! Connections parked on a certificate that a worker is making: the one record of "who waits
//! for which certificate file". The loop parks a connection here when its handshake needs a
//! certificate that is not cached, and takes the waiters back when the worker reports. One
//! job runs per file however many connections wait for it.

use std::collections::HashMap;

/// Waiters by certificate file name; `Id` identifies a connection across slot reuse.
pub struct Pending<Id> {
    waiters: HashMap<String, Vec<Id>>,
}

impl<Id> Default for Pending<Id> {
    fn default() -> Self {
        Pending {
            waiters: HashMap::new(),
        }
    }
}

impl<Id: Copy + PartialEq> Pending<Id> {
    /// Parks `id` on `file`; true when nobody waited for it yet, so a job must be queued.
    pub fn park(&mut self, file: &str, id: Id) -> bool {
        match self.waiters.get_mut(file) {
            Some(list) => {
                list.push(id);
                false
            }
            None => {
                self.waiters.insert(file.to_string(), vec![id]);
                true
            }
        }
    }

    /// `id` stopped waiting (its deadline passed, or it closed).
    pub fn forget(&mut self, file: &str, id: Id) {
        if let Some(list) = self.waiters.get_mut(file) {
            list.retain(|w| *w != id);
        }
    }

    /// The job for `file` finished: everyone who still waits, in the order they came.
    pub fn take(&mut self, file: &str) -> Vec<Id> {
        self.waiters.remove(file).unwrap_or_default()
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
        assert!(p.park("_.a.com", 1));
        assert!(!p.park("_.a.com", 2));
        assert!(p.park("_.b.com", 3));
        assert!(!p.park("_.a.com", 4));
        assert_eq!(p.len(), 2);
        p.forget("_.a.com", 2);
        p.forget("_.nothing", 9);
        assert_eq!(p.take("_.a.com"), [1, 4]);
        assert_eq!(p.take("_.a.com"), Vec::<i32>::new());
        // A new job is needed once the old one reported.
        assert!(p.park("_.a.com", 5));
        assert_eq!(p.take("_.b.com"), [3]);
        assert_eq!(p.take("_.a.com"), [5]);
        assert!(p.is_empty());
    }
}
