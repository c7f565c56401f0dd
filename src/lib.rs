//! pixelserv-tls: a tiny HTTP/1.1 + HTTPS server that answers every request with nothing.
//!
//! # Module map
//!
//! Layers, lowest first; a file imports only from its own layer or lower ones, and no two
//! files import each other (`tests/structure.rs` checks both, and that no function outside
//! tests is longer than 80 lines):
//!
//! | layer | modules | what they hold |
//! |---|---|---|
//! | base | `log`, `sys`, `stats::topk`, `version`, `x509` | syslog/stderr lines; libc wrappers (daemon and its startup report, privilege drop, access as another user, signalfd, who holds a port, `/proc/self` figures, child processes, the socket pair between processes, the seccomp filter); the space-saving top-k; the version line; time, serial, key and renewal helpers |
//! | words | `stats` (with `stats::counter`, `stats::outcome`, `stats::top_names`), `config` | counters and the outcomes that move them (`CloseReason`, `HandshakeFailure`, `TlsVersion`); the most requested names, normalised; the command line |
//! | services | `http/`, `tls/`, `stats::pages`, `stats::metrics` | HTTP framing, dispatch and response bytes; names, CA, certificates, caches, workers, the messages to and from the signer and the ClientHello callback; the stats pages; `/metrics` |
//! | loop | `server/` | the `mio` loop of the network process, connection state machines, transports, timers, listeners, the certificate hand-off |
//! | process | `app/`, `main` | startup phases (listeners and their error hints, CERT_PATH for the `-u` user), the monitor and its two children (the signer, the network process), `--check`, `-B` |
//!
//! # Processes
//!
//! The process started (`app/monitor.rs`, the monitor) keeps the listeners and the CA key's
//! open files, and forks a signer (`app/signer.rs`: the CA key, the certificate workers,
//! CERT_PATH) and a network process (`server/`: everything clients reach), joined by a
//! socket pair; include-docs/SECURITY.md, "Processes", says why.
//!
//! # A request, file by file
//!
//! 1. `server/listener.rs` opened the socket; `server/mod.rs` (`Server::accept`) takes the
//!    connection, wraps it in a `server/transport.rs` `Transport` and gives it a slot.
//! 2. `server/conn.rs` (`Conn::drive`) reads into a pooled buffer (`server/buffers.rs`).
//! 3. `http/parser.rs` frames the head (limits in `http/limits.rs`); `http/body.rs` discards
//!    any body afterwards.
//! 4. `http/service.rs` asks `http/dispatch.rs` what to answer, renders it with
//!    `http/response.rs` (assets from `http/assets.rs`, stats pages from `stats/pages.rs`
//!    and `stats/metrics.rs` with a `stats::Snapshot`), applies `/log=N` and writes the access log
//!    (`log.rs`).
//! 5. `server/conn.rs` counts the request (`stats/`; over plain HTTP its `Host` in
//!    `stats/top_names.rs`), writes the bytes, and its state says
//!    what readiness and deadline to wait for next (`server/timer.rs`). When it ends, its
//!    `CloseReason` goes to `Stats::closed`.
//!
//! # A ClientHello for a name never seen, file by file
//!
//! 1. `server/conn.rs` drives the handshake through `server/transport.rs` and
//!    `server/wire.rs` (which gathers OpenSSL's writes into one send per flight); OpenSSL
//!    calls the ClientHello callback in `tls/hello.rs`.
//! 2. `tls/hello.rs` reads the SNI (`tls/sni.rs`) and names the certificate (`tls/names.rs`
//!    with `tls/psl.rs`; without SNI, the local address). A resumed handshake stops here.
//!    For a full one OpenSSL calls the certificate callback, which misses in the cache
//!    (`tls/certs.rs` over `tls/cache.rs`), records the lookup and asks to be called again.
//! 3. `server/conn.rs` returns `Step::NeedCert`; `server/handoff.rs` (`need_cert`) takes the
//!    lookup, parks the connection (`State::CertWait` and `tls/pending.rs`) and sends one
//!    request per file to the signer (`tls/signer_msg.rs` over `sys/packets.rs`).
//! 4. In the signer process (`app/signer.rs`) a worker of `tls/workers.rs` loads the file
//!    (`tls/store.rs` through `sys/files.rs`) or makes a certificate (`tls/certgen.rs`
//!    signed by `tls/ca.rs`, helpers in `x509.rs`), saves it within the disk budget
//!    (`tls/disk.rs`) and sends back the certificate and its key.
//! 5. `server/handoff.rs` (`signer_readable`) caches it and `deliver`s it to every parked
//!    connection (`tls::hello::install`, ready, drive); the certificate callback installs
//!    it and the handshake completes. From there on it is a request as above.

pub mod app;
pub mod config;
pub mod http;
pub mod log;
pub mod server;
pub mod stats;
pub mod sys;
pub mod tls;
pub mod version;
pub mod x509;
