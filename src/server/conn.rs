//! One client connection: an explicit state machine over a plain or TLS transport.
//!
//! `drive` runs the connection as far as it can go without blocking: handshake, read,
//! parse, respond, write. It returns what the connection waits for; the readiness interest
//! it is registered with is derived from its state (`interest`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::Interest;
use openssl::ssl::SslVersion;

use super::buffers::{Pool, RxBuf};
use super::timer::{Armed, TimerKey};
use super::transport::{Handshake, Io, Transport, Want};
use crate::http::body::BodyDecoder;
use crate::http::dispatch::{self, Reply};
use crate::http::parser::{self, BodyFraming, Head};
use crate::http::response::{self, Canned, Mode};
use crate::log::{self, INFO};
use crate::plog;
use crate::stats::{Counter, Stats};
use crate::stats_render;
use crate::tls::hello;

/// Stop turning pipelined requests into responses while this much is unsent: memory per
/// connection stays bounded however many requests a client pipelines.
const TX_HIGH_WATER: usize = 64 * 1024;
/// Reads per `drive` before yielding to other connections.
const READ_BUDGET: usize = 16;

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub handshake: Duration,
    pub keepalive: Duration,
    pub header: Duration,
    pub write: Duration,
}

/// What does not change while the server runs.
pub struct Site {
    pub settings: dispatch::Settings,
    pub timeouts: Timeouts,
    /// `/ca.crt` body, when there is a CA certificate that is safe to publish.
    pub ca_pem: Option<Vec<u8>>,
    pub version: String,
    /// `-A` given: admin URIs only on the admin port.
    pub admin_restricted: bool,
}

/// What a connection borrows from the loop while it is driven.
pub struct Env<'a> {
    pub now: Instant,
    pub stats: &'a mut Stats,
    pub pool: &'a mut Pool,
    pub site: &'a Site,
    /// Fills the gauges (`kcc`, `sct`, `ssh`..) before a stats page is rendered.
    pub gauges: &'a dyn Fn(&mut Stats),
}

pub enum State {
    /// TLS: reading 0-RTT early data, which starts the handshake.
    EarlyData(Want),
    /// TLS: handshake after any early data.
    Handshake(Want),
    /// TLS: parked until a certificate worker delivers this connection's certificate;
    /// `early_done` says which handshake phase to resume.
    CertWait { early_done: bool },
    /// Waiting for the first byte of a request (keep-alive idle).
    Idle,
    /// Part of a request head has arrived.
    Head,
    /// Discarding a request body; its response is already queued. `then_close`: the
    /// request asked to close the connection after it.
    Body {
        decoder: BodyDecoder,
        then_close: bool,
        /// At log level 4, the start of a POST body for the access log.
        capture: Option<Capture>,
    },
    /// No more requests: flush what is queued, then close.
    Closing,
}

/// The first `POST_LOG_MAX` bytes of a body, and whether there were more.
pub struct Capture {
    bytes: Vec<u8>,
    truncated: bool,
}

/// One syslog message's worth (the original split longer bodies into 8000-byte chunks).
const POST_LOG_MAX: usize = 8000;

impl Capture {
    fn add(&mut self, data: &[u8]) {
        let room = POST_LOG_MAX - self.bytes.len();
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
        self.truncated |= data.len() > room;
    }
}

pub enum Step {
    Wait,
    /// The ClientHello callback needs a certificate that is not in the cache.
    NeedCert,
    /// Yielded with work left (read budget used up): drive again soon.
    Again,
    Close,
}

pub struct Conn {
    pub transport: Transport,
    pub state: State,
    pub key: TimerKey,
    pub armed: Armed,
    pub registered: Interest,
    pub admin: bool,
    pub peer: SocketAddr,
    /// When the current state began, or its last progress (write or body bytes).
    since: Instant,
    rx: Option<RxBuf>,
    tx: Vec<u8>,
    tx_pos: usize,
    requests: u64,
    req_start: Instant,
    /// Bytes of 0-RTT early data not yet consumed by requests (`zrt`).
    early: usize,
}

impl Conn {
    pub fn new(
        transport: Transport,
        key: TimerKey,
        admin: bool,
        peer: SocketAddr,
        now: Instant,
    ) -> Conn {
        let state = if transport.is_tls() {
            State::EarlyData(Want::Read)
        } else {
            State::Idle
        };
        Conn {
            transport,
            state,
            key,
            armed: Armed::default(),
            registered: Interest::READABLE,
            admin,
            peer,
            since: now,
            rx: None,
            tx: Vec::new(),
            tx_pos: 0,
            requests: 0,
            req_start: now,
            early: 0,
        }
    }

    /// Nothing in flight: safe to close at shutdown.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
            && !self.tx_pending()
            && self.rx.as_ref().is_none_or(RxBuf::is_empty)
    }

    /// A TLS connection past its handshake (close_notify is owed, `slc` may count).
    fn handshaken(&self) -> bool {
        self.transport.is_tls()
            && !matches!(
                self.state,
                State::EarlyData(_) | State::Handshake(_) | State::CertWait { .. }
            )
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    fn tx_pending(&self) -> bool {
        self.tx_pos < self.tx.len()
    }

    /// Readiness this connection waits for, derived from its state.
    pub fn interest(&self) -> Interest {
        match &self.state {
            State::EarlyData(w) | State::Handshake(w) => w.interest(),
            _ if self.tx_pending() => Interest::WRITABLE,
            _ => Interest::READABLE,
        }
    }

    /// When this connection times out, derived from its state.
    pub fn deadline(&self, t: &Timeouts) -> Instant {
        let span = match &self.state {
            State::EarlyData(_) | State::Handshake(_) | State::CertWait { .. } => t.handshake,
            _ if self.tx_pending() => t.write,
            State::Idle => t.keepalive,
            State::Head | State::Body { .. } => t.header,
            State::Closing => t.write,
        };
        self.since + span
    }

    fn enter(&mut self, state: State, now: Instant) {
        self.state = state;
        self.since = now;
    }

    /// Parks the connection until its certificate is ready.
    pub fn wait_cert(&mut self) {
        let early_done = matches!(self.state, State::Handshake(_));
        // Not `enter`: the handshake deadline keeps counting from the accept.
        self.state = State::CertWait { early_done };
    }

    /// The loop installed (or refused) this connection's certificate: drive the handshake
    /// phase that asked for it.
    pub fn cert_ready(&mut self) {
        if let State::CertWait { early_done } = self.state {
            self.state = if early_done {
                State::Handshake(Want::Read)
            } else {
                State::EarlyData(Want::Read)
            };
        }
    }

    /// `read_closed`: the readiness event said the peer half-closed; read to the end.
    pub fn drive(&mut self, env: &mut Env, read_closed: bool) -> Step {
        let mut budget = READ_BUDGET;
        // A short read on plain TCP took everything the kernel had: anything arriving later
        // raises a new edge, so the read that would only say EAGAIN is skipped.
        let mut drained = false;
        loop {
            match self.state {
                State::EarlyData(_) | State::Handshake(_) => {
                    if let Some(step) = self.drive_handshake(env) {
                        return step;
                    }
                    continue;
                }
                State::CertWait { .. } => return Step::Wait,
                _ => {}
            }
            let backlog = self.process(env);
            if self.tx_pending() {
                match self.flush(env) {
                    Some(Step::Wait) => return Step::Wait,
                    Some(step) => return step,
                    None => {}
                }
            }
            if matches!(self.state, State::Closing) {
                return self.close(env, None);
            }
            if backlog {
                // Requests are still buffered and no new edge will announce them.
                continue;
            }
            if budget == 0 {
                return Step::Again;
            }
            if drained {
                self.release_idle_buffers(env.pool);
                return Step::Wait;
            }
            budget -= 1;
            match self.read(env) {
                (Io::Done(_), short) => drained = short && !read_closed && !self.transport.is_tls(),
                (Io::Blocked(_), _) => {
                    self.release_idle_buffers(env.pool);
                    return Step::Wait;
                }
                (Io::Eof, _) => {
                    // Half-close: answer what was fully received, then close.
                    self.process(env);
                    let partial = matches!(self.state, State::Head | State::Body { .. });
                    self.enter(State::Closing, env.now);
                    if partial || self.requests == 0 {
                        return self.close(env, Some(Counter::Cls));
                    }
                    if !self.tx_pending() {
                        return self.close(env, None);
                    }
                }
                (Io::Gone, _) => return self.close(env, Some(Counter::Cls)),
                (Io::Failed(why), _) => {
                    plog!(log::DEBUG, "read error from {}: {}", self.peer.ip(), why);
                    return self.close(env, Some(Counter::Err));
                }
            }
        }
    }

    fn drive_handshake(&mut self, env: &mut Env) -> Option<Step> {
        let early_done = matches!(self.state, State::Handshake(_));
        let rx = self.rx.get_or_insert_with(|| RxBuf::new(env.pool.rx()));
        match self.transport.handshake(rx.spare(), early_done) {
            Handshake::Early(0) => {
                self.state = State::Handshake(Want::Read);
                None
            }
            Handshake::Early(n) => {
                rx.filled(n);
                self.early += n;
                None
            }
            Handshake::Done => {
                hello::release(&mut self.transport);
                self.enter(State::Idle, env.now);
                None
            }
            Handshake::Blocked(w) => {
                self.state = if early_done {
                    State::Handshake(w)
                } else {
                    State::EarlyData(w)
                };
                Some(Step::Wait)
            }
            Handshake::NeedCert => Some(Step::NeedCert),
            Handshake::Failed(e) => {
                let (main, detail) = hello::classify_failure(&self.transport, &e);
                if let Some(d) = detail {
                    env.stats.bump(d);
                }
                plog!(
                    log::WARNING,
                    "handshake failed: client {} server {}. {}",
                    self.peer,
                    hello::server_name(&self.transport),
                    e
                );
                Some(self.close(env, Some(main)))
            }
        }
    }

    /// Turns complete requests in the receive buffer into queued responses; true when it
    /// stopped because too much is unsent, with input left to process.
    fn process(&mut self, env: &mut Env) -> bool {
        loop {
            let Some(rx) = self.rx.as_mut() else {
                return false;
            };
            if rx.is_empty() {
                return false;
            }
            if self.tx.len() - self.tx_pos >= TX_HIGH_WATER {
                return true;
            }
            match &mut self.state {
                State::Idle | State::Head => {
                    if matches!(self.state, State::Idle) {
                        self.req_start = env.now;
                        self.enter(State::Head, env.now);
                    }
                    if !self.parse_one(env) {
                        return false;
                    }
                }
                State::Body {
                    decoder,
                    then_close,
                    capture,
                } => match decoder.feed(rx.data(), &mut |data| {
                    if let Some(c) = capture.as_mut() {
                        c.add(data);
                    }
                }) {
                    Ok(feed) => {
                        rx.consume(feed.consumed);
                        self.since = env.now;
                        if feed.done {
                            if let Some(c) = capture.take() {
                                plog!(INFO, "{}", log::post_body_line(&c.bytes, c.truncated));
                            }
                            let next = if *then_close {
                                State::Closing
                            } else {
                                State::Idle
                            };
                            self.enter(next, env.now);
                        }
                    }
                    Err(_) => {
                        rx.consume(rx.data().len());
                        self.ensure_tx(env.pool);
                        response::write_error(400, &mut self.tx);
                        env.stats.bump(Counter::Bad);
                        self.enter(State::Closing, env.now);
                        return false;
                    }
                },
                State::Closing => {
                    // Nothing after a request that closes the connection is answered.
                    rx.consume(rx.data().len());
                    return false;
                }
                State::EarlyData(_) | State::Handshake(_) | State::CertWait { .. } => return false,
            }
        }
    }

    fn ensure_tx(&mut self, pool: &mut Pool) {
        if self.tx.capacity() == 0 {
            self.tx = pool.tx();
        }
    }

    /// Parses and answers one request head; false when more bytes are needed or the
    /// connection is closing.
    fn parse_one(&mut self, env: &mut Env) -> bool {
        self.ensure_tx(env.pool);
        let Some(rx) = self.rx.as_mut() else {
            return false;
        };
        let head = match parser::parse(rx.data()) {
            Ok(None) => return false,
            Ok(Some(head)) => head,
            Err(e) => {
                let bytes = rx.data().len() as u64;
                rx.consume(rx.data().len());
                response::write_error(e.status(), &mut self.tx);
                plog!(
                    log::DEBUG,
                    "bad request from {}: {}",
                    self.peer.ip(),
                    e.status()
                );
                self.count(env, Counter::Bad, bytes);
                self.enter(State::Closing, env.now);
                return false;
            }
        };
        let len = head.len;
        let framing = head.body;
        let keep_alive = head.keep_alive;
        let capture = (head.method == b"POST" && log::enabled(INFO)).then(|| Capture {
            bytes: Vec::new(),
            truncated: false,
        });
        let body_len = match framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        let counter = respond(
            &head,
            self.admin,
            &self.transport,
            self.peer,
            &mut self.tx,
            env,
        );
        rx.consume(len);
        match counter {
            Some(c) => self.count(env, c, len as u64 + body_len),
            // `/log=N` is not in `req`, but the connection was used: no `cls` at its end.
            None => self.requests += 1,
        }
        let next = match (framing, keep_alive) {
            (BodyFraming::None, true) => State::Idle,
            (BodyFraming::None, false) => State::Closing,
            (other, keep_alive) => State::Body {
                decoder: BodyDecoder::new(other),
                then_close: !keep_alive,
                capture,
            },
        };
        let go_on = !matches!(next, State::Closing);
        self.enter(next, env.now);
        go_on
    }

    /// Counts one answered request.
    fn count(&mut self, env: &mut Env, counter: Counter, bytes: u64) {
        self.requests += 1;
        let micros = env
            .now
            .saturating_duration_since(self.req_start)
            .as_micros() as u64;
        env.stats.request(counter, bytes, micros);
        if let Some(v) = self.transport.tls_version() {
            env.stats.bump(Counter::Slh);
            env.stats.bump(version_counter(v));
            if self.early > 0 {
                env.stats.bump(Counter::Zrt);
                self.early = self.early.saturating_sub(bytes as usize);
            }
        }
        self.req_start = env.now;
    }

    /// Writes queued bytes; `None` when everything is sent.
    fn flush(&mut self, env: &mut Env) -> Option<Step> {
        while self.tx_pending() {
            match self.transport.write(&self.tx[self.tx_pos..]) {
                Io::Done(n) => {
                    self.tx_pos += n;
                    self.since = env.now;
                }
                Io::Blocked(_) => return Some(Step::Wait),
                Io::Gone | Io::Eof => {
                    plog!(log::WARNING, "disconnected client: {}", self.peer.ip());
                    return Some(self.close(env, Some(Counter::Cly)));
                }
                Io::Failed(why) => {
                    plog!(
                        log::ERROR,
                        "attempt to send response resulted in error: {}",
                        why
                    );
                    return Some(self.close(env, Some(Counter::Err)));
                }
            }
        }
        self.tx_pos = 0;
        env.pool.put_tx(std::mem::take(&mut self.tx));
        if matches!(self.state, State::Idle) {
            self.since = env.now;
        }
        None
    }

    /// One read into the receive buffer; true with it when fewer bytes came than fit.
    fn read(&mut self, env: &mut Env) -> (Io, bool) {
        let rx = self.rx.get_or_insert_with(|| RxBuf::new(env.pool.rx()));
        let spare = rx.spare();
        let room = spare.len();
        if room == 0 {
            // A full buffer always holds a complete head or an oversized one, which
            // `process` answers; reaching here means the body is being discarded faster
            // than it is parsed, so just parse again.
            return (Io::Done(0), false);
        }
        let io = self.transport.read(spare);
        let short = matches!(io, Io::Done(n) if n < room);
        if let Io::Done(n) = io {
            rx.filled(n);
        }
        (io, short)
    }

    /// An idle connection holds no buffers.
    fn release_idle_buffers(&mut self, pool: &mut Pool) {
        if let Some(rx) = self.rx.take_if(|rx| rx.is_empty()) {
            pool.put_rx(rx.buf);
        }
    }

    /// A deadline passed: count why and close.
    pub fn expire(&mut self, env: &mut Env) -> Step {
        let outcome = match &self.state {
            State::EarlyData(_) | State::Handshake(_) | State::CertWait { .. } => {
                plog!(
                    log::WARNING,
                    "handshake failed: timeout. client {} server {}",
                    self.peer,
                    hello::server_name(&self.transport)
                );
                env.stats.bump(Counter::Tmo);
                Some(Counter::Slu)
            }
            State::Idle if !self.tx_pending() => (self.requests == 0).then_some(Counter::Cls),
            _ => {
                env.stats.bump(Counter::Tmo);
                (self.requests == 0).then_some(Counter::Cls)
            }
        };
        self.close(env, outcome)
    }

    /// Counts how the connection ended and gives its buffers back; the loop drops it.
    pub fn close(&mut self, env: &mut Env, outcome: Option<Counter>) -> Step {
        if let Some(c) = outcome {
            env.stats.event(c);
            if self.handshaken() && self.requests == 0 && c == Counter::Cls {
                env.stats.bump(Counter::Slc);
                if let Some(v) = self.transport.tls_version() {
                    env.stats.bump(version_counter(v));
                }
            }
        }
        if self.handshaken() && !matches!(outcome, Some(Counter::Cly) | Some(Counter::Err)) {
            self.transport.close_notify();
        }
        if let Some(rx) = self.rx.take() {
            env.pool.put_rx(rx.buf);
        }
        env.pool.put_tx(std::mem::take(&mut self.tx));
        self.tx_pos = 0;
        Step::Close
    }
}

fn version_counter(v: SslVersion) -> Counter {
    if v == SslVersion::TLS1_3 {
        Counter::V13
    } else if v == SslVersion::TLS1_2 {
        Counter::V12
    } else if v == SslVersion::TLS1_1 {
        Counter::V11
    } else {
        Counter::V10
    }
}

fn tls_label(t: &Transport) -> &'static str {
    match t.tls_version() {
        None => "none",
        Some(v) if v == SslVersion::TLS1_3 => "1.3",
        Some(v) if v == SslVersion::TLS1_2 => "1.2",
        Some(v) if v == SslVersion::TLS1_1 => "1.1",
        Some(_) => "1.0",
    }
}

/// Dispatches one request and renders its response into `out`; the counter to count.
fn respond(
    head: &Head,
    admin: bool,
    transport: &Transport,
    peer: SocketAddr,
    out: &mut Vec<u8>,
    env: &mut Env,
) -> Option<Counter> {
    let decision = dispatch::dispatch(head, admin, &env.site.settings);
    let mode = Mode {
        keep_alive: head.keep_alive,
        head_only: head.method == b"HEAD",
    };
    match decision.reply {
        Reply::Static(asset) => response::write_static(asset.into(), mode, out),
        Reply::NoContent => response::write_static(Canned::NoContent, mode, out),
        Reply::Options => response::write_static(Canned::Options, mode, out),
        Reply::NotImplemented => response::write_static(Canned::NotImplemented, mode, out),
        Reply::Text => response::write_text(head.origin, mode, out),
        Reply::Redirect(location) => response::write_redirect(&location, head.origin, mode, out),
        Reply::CaCert => match &env.site.ca_pem {
            Some(pem) => response::write_ca_cert(pem, mode, out),
            None => response::write_not_found(mode, out),
        },
        Reply::NotFound => response::write_not_found(mode, out),
        Reply::StatsHtml | Reply::StatsText | Reply::StatsJson | Reply::Metrics => {
            (env.gauges)(env.stats);
            let version = env.site.version.as_str();
            let (body, ctype) = match decision.reply {
                Reply::StatsHtml => (stats_render::html_page(version, env.stats), "text/html"),
                Reply::StatsText => (stats_render::text_page(version, env.stats), "text/plain"),
                Reply::StatsJson => (stats_render::json(version, env.stats), "application/json"),
                _ => (
                    stats_render::metrics(env.stats),
                    "text/plain; version=0.0.4",
                ),
            };
            response::write_body("200 OK", ctype, body.as_bytes(), mode, out);
        }
        Reply::SetLogLevel(level) => {
            log::set_level(level);
            response::write_text(head.origin, mode, out);
        }
    }
    if log::enabled(INFO) {
        plog!(
            INFO,
            "{} {} {} tls_{}",
            peer.ip(),
            log::escape(head.host.unwrap_or(b"")),
            log::escape(head.request_line),
            tls_label(transport)
        );
    }
    decision.counter
}
