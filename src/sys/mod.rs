//! Thin, safe wrappers over the few libc calls the server needs: process lifecycle
//! (daemon, privilege drop, file limits), files opened without following links, signal
//! delivery into the event loop, who holds a TCP port, and the process's own figures from
//! `/proc/self`.

use std::sync::{Mutex, MutexGuard};

pub mod children;
pub mod cpu;
pub mod daemon;
pub mod files;
pub mod packets;
pub mod ports;
pub mod process;
pub mod procfs;
pub mod seccomp;
pub mod signals;

/// Locks `m`, and takes the value of a poisoned mutex as it is: the one policy for every
/// lock in the server. Release builds abort on panic, so a poisoned mutex is only ever seen
/// in a test build, after a panic that the test already reports; every value behind our
/// locks (caches, the disk budget, a job queue's receiver, one handshake's state) is left
/// consistent by each of its methods, so serving on is better than turning every later
/// lookup into a miss or a second panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
