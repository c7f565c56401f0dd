//! HTTPS: certificate names, the CA, certificate making and storage, the in-memory cache,
//! the worker pool, the messages between the network and signer processes, and the TLS
//! contexts with their ClientHello callback.

pub mod backend;
pub mod ca;
pub mod cache;
pub mod certgen;
pub mod certs;
pub mod context;
pub mod disk;
pub mod hello;
pub mod names;
pub mod pending;
pub mod prefetch;
pub mod psl;
pub mod signer_msg;
pub mod sni;
pub mod store;
pub mod workers;
