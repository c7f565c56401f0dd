//! Connections parked on a certificate that the signer is making: the one record of "who
//! waits for which certificate file". The loop parks a connection here when its handshake
//! needs a certificate that is not cached, and takes the waiters back when the signer
//! answers. One request runs per file however many connections wait for it; when its every
//! waiter has gone the signer is told, so that it can skip the job.

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
    /// Parks `id` on `file`; true when no request for it is out yet, which the caller must
    /// then send. A file whose waiters had all gone is still asked for: the same request
    /// serves the newcomer unless the signer skipped it (it then says so, and the caller
    /// asks again for whoever waits by then).
    pub fn park(&mut self, file: &str, id: Id) -> bool {
        match self.waiters.get_mut(file) {
            Some(ids) => {
                ids.push(id);
                false
            }
            None => {
                self.waiters.insert(file.to_string(), vec![id]);
                true
            }
        }
    }

    /// `id` stopped waiting (its deadline passed, or it closed); true when it was the last,
    /// so that the signer may skip the job.
    pub fn forget(&mut self, file: &str, id: Id) -> bool {
        match self.waiters.get_mut(file) {
            Some(ids) => {
                let before = ids.len();
                ids.retain(|x| *x != id);
                ids.is_empty() && before > 0
            }
            None => false,
        }
    }

    /// The request for `file` was answered: everyone who still waits, in the order they came.
    pub fn take(&mut self, file: &str) -> Vec<Id> {
        self.waiters.remove(file).unwrap_or_default()
    }

    /// Every file with a request out, and who waits for it (the signer has gone).
    pub fn take_all(&mut self) -> Vec<(String, Vec<Id>)> {
        self.waiters.drain().collect()
    }

    /// Files with a request out.
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
    fn one_request_per_file_and_waiters_in_order() {
        let mut p = Pending::default();
        assert!(p.park("_.a.com", 1));
        assert!(!p.park("_.a.com", 2));
        assert!(p.park("_.b.com", 3));
        assert!(!p.park("_.a.com", 4));
        assert_eq!(p.len(), 2);
        assert!(!p.forget("_.a.com", 2));
        assert!(!p.forget("_.nothing", 9));
        assert_eq!(p.take("_.a.com"), [1, 4]);
        assert_eq!(p.take("_.a.com"), Vec::<i32>::new());
        // A new request is needed once the old one was answered.
        assert!(p.park("_.a.com", 5));
        assert_eq!(p.take("_.b.com"), [3]);
        assert_eq!(p.take_all(), vec![("_.a.com".to_string(), vec![5])]);
        assert!(p.is_empty());
    }

    #[test]
    fn the_last_waiter_leaving_is_told_once() {
        let mut p = Pending::default();
        assert!(p.park("_.a.com", 1));
        assert!(!p.park("_.a.com", 2));
        assert!(!p.forget("_.a.com", 1));
        assert!(p.forget("_.a.com", 2));
        assert!(!p.forget("_.a.com", 2));
        // Someone asks again before the signer answered: the same request serves them.
        assert!(!p.park("_.a.com", 3));
        assert_eq!(p.take("_.a.com"), [3]);
    }
}
