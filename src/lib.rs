//! pixelserv-tls: a tiny HTTP/1.1 + HTTPS server that answers every request with nothing.
//!
//! Data path: `server::listener` accepts → `server::conn` drives the transport
//! (`server::transport`, plain or TLS) → `http::parser` frames requests →
//! `http::dispatch` classifies them → `http::response` renders the bytes.

pub mod config;
pub mod http;
pub mod log;
pub mod stats;
pub mod stats_render;
pub mod tls;
pub mod version;
