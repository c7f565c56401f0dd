//! Thin, safe wrappers over the few libc calls the server needs: process lifecycle
//! (daemon, privilege drop, file limits), files opened without following links, signal
//! delivery into the event loop, and the process's own figures from `/proc/self`.

pub mod files;
pub mod process;
pub mod procfs;
pub mod signals;
