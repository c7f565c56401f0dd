//! Thin, safe wrappers over the few libc calls the server needs: process lifecycle
//! (daemon, privilege drop, file limits), files opened without following links, signal
//! delivery into the event loop, and who holds a TCP port.

pub mod daemon;
pub mod files;
pub mod ports;
pub mod process;
pub mod signals;
