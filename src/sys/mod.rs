//! Thin, safe wrappers over the few libc calls the server needs: process lifecycle
//! (daemon, privilege drop, file limits), files opened without following links, and signal
//! delivery into the event loop.

pub mod files;
pub mod process;
pub mod signals;
