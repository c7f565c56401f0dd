//! Thin, safe wrappers over the few libc calls the server needs: process lifecycle
//! (daemon, privilege drop, file limits), files opened without following links, signal
//! delivery into the event loop, who holds a TCP port, and the process's own figures from
//! `/proc/self`.

pub mod daemon;
pub mod files;
pub mod ports;
pub mod process;
pub mod procfs;
pub mod signals;
