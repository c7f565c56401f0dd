//! One client connection: an explicit state machine over a plain or TLS transport.
//!
//! `drive` runs the connection as far as it can go without blocking: handshake, read,
//! parse, respond, write. It returns what the connection waits for; the readiness interest
//! it is registered with and its deadline are derived from its state (`interest`,
//! `deadline`), and the loop only ever asks for them.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};
use openssl::ssl::SslRef;

use super::buffers::{Pool, RxBuf};
use super::reusable::Reusable;
use super::timer::{Armed, Timers};
use super::transport::{Handshake, Io, Transport, Want};
use super::Tls;
use crate::http::body::BodyDecoder;
use crate::http::parser::{self, BodyFraming};
use crate::http::response;
use crate::http::service::{self, Capture, Request, Site};
use crate::log;
use crate::plog;
use crate::stats::top_names::{self, Source};
use crate::stats::{CloseReason, Counter, Ended, HandshakeFailure, Snapshot, Stats, TlsVersion};
use crate::tls::hello;

/// Stop turning pipelined requests into responses while this much is unsent: memory per
/// connection stays bounded however many requests a client pipelines.
const TX_HIGH_WATER: usize = 64 * 1024;
/// Reads per `drive` before yielding to other connections.
const READ_BUDGET: usize = 16;
/// A body, or a batch of responses, gets this many times its no-progress timeout in all:
/// a client that sends or reads one byte at a time cannot hold its slot for ever.
const TOTAL_FACTOR: u32 = 6;

/// Identifies a connection across slab slot reuse: the slot is its `mio` token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnId {
    pub slot: usize,
    pub serial: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub handshake: Duration,
    pub keepalive: Duration,
    pub header: Duration,
    pub write: Duration,
}

/// What a connection borrows from the loop while it is driven.
pub struct Env<'a> {
    pub now: Instant,
    pub stats: &'a mut Stats,
    pub pool: &'a mut Pool,
    pub site: &'a Site,
    /// Read for the gauges of a stats page, and only then.
    pub tls: &'a Tls,
}

enum State {
    /// TLS: reading 0-RTT early data, which starts the handshake.
    EarlyData(Want),
    /// TLS: handshake after any early data.
    Handshake(Want),
    /// TLS: parked until a worker delivers certificate `file` (`tls::pending` holds the
    /// other side); `early_done` says which handshake phase to resume.
    CertWait { file: String, early_done: bool },
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

pub enum Step {
    Wait,
    /// The ClientHello callback needs a certificate that is not in the cache.
    NeedCert,
    /// Yielded with work left (read budget used up): drive again soon.
    Again,
    Close,
}

pub struct Conn {
    id: ConnId,
    transport: Transport,
    state: State,
    /// This connection's entry in the loop's timer heap.
    armed: Armed,
    /// What the socket is registered for; compared with `interest()` after each step.
    registered: Interest,
    /// Since when it is listed as reusable (`server::reusable`), if it is.
    reusable: Option<Instant>,
    admin: bool,
    /// IPv4 peers of a dual-stack socket in their IPv4 form.
    peer: SocketAddr,
    /// When the current state began, or its last progress (write or body bytes).
    since: Instant,
    rx: Option<RxBuf>,
    tx: Vec<u8>,
    tx_pos: usize,
    /// When the bytes now queued started to be sent (the absolute write deadline).
    tx_since: Instant,
    requests: u64,
    req_start: Instant,
    /// Bytes of 0-RTT early data not yet consumed by requests (`zrt`).
    early: usize,
}

impl Conn {
    pub fn new(
        transport: Transport,
        id: ConnId,
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
            id,
            transport,
            state,
            armed: Armed::default(),
            registered: Interest::READABLE,
            reusable: None,
            admin,
            peer: SocketAddr::new(peer.ip().to_canonical(), peer.port()),
            since: now,
            rx: None,
            tx: Vec::new(),
            tx_pos: 0,
            tx_since: now,
            requests: 0,
            req_start: now,
            early: 0,
        }
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The TLS connection, for the certificate handover (`tls::hello`).
    pub fn ssl(&self) -> Option<&SslRef> {
        self.transport.ssl()
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

    /// Response bytes not yet taken by the transport.
    fn unsent(&self) -> bool {
        self.tx_pos < self.tx.len()
    }

    /// TLS bytes gathered that must go out before the connection waits: all of them, but
    /// the TLS 1.3 NewSessionTicket written when the handshake ended, which waits for the
    /// first response and leaves in the same write (the client needs nothing from it to
    /// send its request).
    fn must_send(&self) -> bool {
        self.transport.gathered()
            && !(matches!(self.state, State::Idle)
                && self.requests == 0
                && self.transport.tls_version() == Some(TlsVersion::V13))
    }

    /// Anything still to go out now: responses, or TLS records that cannot wait.
    fn tx_pending(&self) -> bool {
        self.unsent() || self.must_send()
    }

    /// Readiness this connection waits for, derived from its state.
    fn interest(&self) -> Interest {
        if self.must_send() {
            return Interest::WRITABLE;
        }
        match &self.state {
            State::EarlyData(w) | State::Handshake(w) => w.interest(),
            _ if self.unsent() => Interest::WRITABLE,
            _ => Interest::READABLE,
        }
    }

    /// Not a byte from the client yet: a plain connection with no request begun, a TLS one
    /// before its ClientHello.
    fn silent(&self) -> bool {
        match (&self.state, self.ssl()) {
            (State::EarlyData(_) | State::Handshake(_), Some(ssl)) => !hello::seen(ssl),
            (State::Idle, None) => self.requests == 0 && self.is_idle(),
            // A TLS connection past its handshake has spoken (its hello state is released).
            _ => false,
        }
    }

    /// When this connection times out, derived from its state. Until its first byte a
    /// connection gets the shorter of the keep-alive time (-O) and the header or handshake
    /// timeout, as users who lower -O expect (COMPATIBILITY.md §4.2); until its first
    /// request, the header timeout; bodies and responses have a total limit besides the one
    /// for progress.
    fn deadline(&self, t: &Timeouts) -> Instant {
        match &self.state {
            State::EarlyData(_) | State::Handshake(_) if self.silent() => {
                self.since + t.handshake.min(t.keepalive)
            }
            State::EarlyData(_) | State::Handshake(_) | State::CertWait { .. } => {
                self.since + t.handshake
            }
            _ if self.tx_pending() => {
                (self.since + t.write).min(self.tx_since + t.write * TOTAL_FACTOR)
            }
            State::Idle if self.silent() => self.since + t.header.min(t.keepalive),
            State::Idle if self.requests == 0 => self.since + t.header,
            State::Idle => self.since + t.keepalive,
            State::Head => self.since + t.header,
            State::Body { .. } => {
                (self.since + t.header).min(self.req_start + t.header * TOTAL_FACTOR)
            }
            State::Closing => self.since + t.write,
        }
    }

    /// Since when this connection could be closed to admit another (`server::reusable`):
    /// idle between requests, or never past the start of a TLS handshake.
    fn reusable_since(&self) -> Option<Instant> {
        match &self.state {
            State::Idle if self.is_idle() => Some(self.since),
            State::EarlyData(_) | State::Handshake(_) => self
                .ssl()
                .is_some_and(|ssl| !hello::seen(ssl))
                .then_some(self.since),
            _ => None,
        }
    }

    /// Keeps this connection's entry in `r` in step with its state.
    pub fn list_reusable(&mut self, r: &mut Reusable<ConnId>) {
        let since = self.reusable_since();
        r.update(self.id, &mut self.reusable, since);
    }

    /// Takes this connection out of the loop's books: reusable list and timer heap.
    pub fn unlist(&mut self, r: &mut Reusable<ConnId>, timers: &mut Timers<ConnId>) {
        r.update(self.id, &mut self.reusable, None);
        timers.cancel(&mut self.armed);
    }

    /// Whether the timer entry due at `at` is this connection's live one.
    pub fn owns_timer(&self, at: Instant) -> bool {
        self.armed.0 == Some(at)
    }

    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        self.registered = self.interest();
        registry.register(self.transport.tcp(), Token(self.id.slot), self.registered)
    }

    /// Re-registers when the state now waits for other readiness than before.
    pub fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let want = self.interest();
        if want != self.registered {
            registry.reregister(self.transport.tcp(), Token(self.id.slot), want)?;
            self.registered = want;
        }
        Ok(())
    }

    /// Makes sure the timer heap wakes the loop by this connection's deadline.
    pub fn schedule(&mut self, timers: &mut Timers<ConnId>, t: &Timeouts) {
        let deadline = self.deadline(t);
        timers.arm(self.id, &mut self.armed, deadline);
    }

    /// A timer entry for this connection, due at `at`, was popped: whether the deadline
    /// really passed at `now` (if not, it is re-armed for the real one).
    pub fn timer_due(
        &mut self,
        at: Instant,
        now: Instant,
        timers: &mut Timers<ConnId>,
        t: &Timeouts,
    ) -> bool {
        if !self.armed.fired(at) {
            return false;
        }
        if self.deadline(t) > now {
            self.schedule(timers, t);
            return false;
        }
        true
    }

    /// The certificate file this connection is parked on.
    pub fn parked_on(&self) -> Option<&str> {
        match &self.state {
            State::CertWait { file, .. } => Some(file),
            _ => None,
        }
    }

    /// Parks the connection until certificate `file` is ready.
    pub fn park(&mut self, file: String) {
        let early_done = matches!(self.state, State::Handshake(_));
        // Not `enter`: the handshake deadline keeps counting from the accept.
        self.state = State::CertWait { file, early_done };
    }

    /// The loop installed (or refused) this connection's certificate: drive the handshake
    /// phase that asked for it.
    pub fn cert_ready(&mut self) {
        if let State::CertWait { early_done, .. } = self.state {
            self.state = if early_done {
                State::Handshake(Want::Read)
            } else {
                State::EarlyData(Want::Read)
            };
        }
    }

    fn enter(&mut self, state: State, now: Instant) {
        self.state = state;
        self.since = now;
    }

    /// Drives the connection after a readiness event for it.
    pub fn drive_event(&mut self, env: &mut Env, read_closed: bool) -> Step {
        self.transport.readable(read_closed);
        self.drive(env, read_closed)
    }

    /// `read_closed`: the readiness event said the peer half-closed; read to the end.
    pub fn drive(&mut self, env: &mut Env, read_closed: bool) -> Step {
        let step = self.run(env, read_closed);
        if matches!(step, Step::Close) || !self.must_send() {
            return step;
        }
        // Whatever TLS gathered in this step (a flight, a ticket, responses) leaves now, in
        // one write, before the connection waits for anything.
        self.send_gathered(env).unwrap_or(step)
    }

    /// Sends gathered TLS bytes: None when all left, else the step to take.
    fn send_gathered(&mut self, env: &mut Env) -> Option<Step> {
        match self.transport.send_gathered() {
            Io::Done(_) => None,
            Io::Blocked(_) => Some(Step::Wait),
            Io::Reset | Io::Eof => Some(self.close(env, CloseReason::PeerGone)),
            Io::Failed(e) => {
                plog!(log::DEBUG, "send to {} failed: {}", self.peer.ip(), e);
                Some(self.close(env, CloseReason::Failed))
            }
        }
    }

    fn run(&mut self, env: &mut Env, read_closed: bool) -> Step {
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
                if let Some(step) = self.flush(env) {
                    return step;
                }
            }
            if matches!(self.state, State::Closing) {
                return self.finish(env);
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
            let (io, short) = self.read(env);
            match io {
                Io::Done(_) => drained = !read_closed && self.transport.drained(short),
                Io::Blocked(_) => {
                    self.release_idle_buffers(env.pool);
                    return Step::Wait;
                }
                Io::Eof => {
                    if let Some(step) = self.read_ended(env) {
                        return step;
                    }
                }
                Io::Reset => return self.reset(env),
                Io::Failed(e) => {
                    plog!(log::DEBUG, "read error from {}: {}", self.peer.ip(), e);
                    return self.close(env, CloseReason::Failed);
                }
            }
        }
    }

    /// No more requests and everything answered: the close_notify goes in the same write as
    /// the last response when that has not left yet.
    fn finish(&mut self, env: &mut Env) -> Step {
        if self.handshaken() {
            self.transport.close_notify();
        }
        match self.send_gathered(env) {
            None => self.close(env, CloseReason::Done),
            Some(step) => step,
        }
    }

    /// The client closed its side: answer what was fully received, then close.
    fn read_ended(&mut self, env: &mut Env) -> Option<Step> {
        self.process(env);
        let partial = matches!(self.state, State::Head | State::Body { .. });
        self.enter(State::Closing, env.now);
        if partial || self.requests == 0 {
            return Some(self.close(env, CloseReason::PeerClosed { partial }));
        }
        if !self.tx_pending() {
            return Some(self.close(env, CloseReason::Done));
        }
        None
    }

    /// The client reset the connection: nothing more can be sent.
    fn reset(&mut self, env: &mut Env) -> Step {
        let reason = if self.tx_pending() {
            CloseReason::PeerGone
        } else {
            let partial = matches!(self.state, State::Head | State::Body { .. })
                || self.rx.as_ref().is_some_and(|rx| !rx.is_empty());
            CloseReason::PeerClosed { partial }
        };
        self.close(env, reason)
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
                self.count_sni(env.stats);
                if let Some(v) = self.transport.tls_version() {
                    env.stats.handshake_done(v);
                }
                if let Some(ssl) = self.transport.ssl() {
                    hello::release(ssl);
                }
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
                let (why, sni) = match self.transport.ssl() {
                    Some(ssl) => (
                        hello::classify_failure(ssl, &e, self.transport.raw_alert()),
                        hello::server_name(ssl),
                    ),
                    None => (HandshakeFailure::Other, String::new()),
                };
                log::limited(
                    log::WARNING,
                    &log::HANDSHAKE,
                    format_args!(
                        "handshake failed: client {} server {}. {}",
                        self.peer, sni, e
                    ),
                );
                Some(self.close(env, CloseReason::Handshake(why)))
            }
        }
    }

    /// Turns complete requests in the receive buffer into queued responses; true when it
    /// stopped because too much is unsent, with input left to process.
    fn process(&mut self, env: &mut Env) -> bool {
        loop {
            if self.rx.as_ref().is_none_or(RxBuf::is_empty) {
                return false;
            }
            if self.tx.len() - self.tx_pos >= TX_HIGH_WATER {
                return true;
            }
            let go_on = match self.state {
                State::Idle => {
                    // A pipelined request waiting in the buffer starts when the one before
                    // it was answered (`count` leaves that time here), not at the wake-up
                    // that read them both; one that arrives later starts at its wake-up.
                    self.req_start = env.now.max(self.req_start);
                    self.enter(State::Head, env.now);
                    self.parse_one(env)
                }
                State::Head => self.parse_one(env),
                State::Body { .. } => self.discard_body(env),
                State::Closing => {
                    // Nothing after a request that closes the connection is answered.
                    if let Some(rx) = self.rx.as_mut() {
                        rx.consume(rx.data().len());
                    }
                    false
                }
                State::EarlyData(_) | State::Handshake(_) | State::CertWait { .. } => false,
            };
            if !go_on {
                return false;
            }
        }
    }

    /// Makes sure there is a send buffer; `now` starts the total write time when nothing
    /// was queued.
    fn ensure_tx(&mut self, pool: &mut Pool, now: Instant) {
        if self.tx.capacity() == 0 {
            self.tx = pool.tx();
        }
        if !self.tx_pending() {
            self.tx_since = now;
        }
    }

    /// Parses and answers one request head; false when more bytes are needed or the
    /// connection is closing.
    fn parse_one(&mut self, env: &mut Env) -> bool {
        self.ensure_tx(env.pool, env.now);
        let Some(rx) = self.rx.as_mut() else {
            return false;
        };
        let head = match parser::parse(rx.data()) {
            Ok(None) => return false,
            Ok(Some(head)) => head,
            Err(e) => {
                let bytes = rx.data().len() as u64;
                rx.consume(rx.data().len());
                plog!(
                    log::DEBUG,
                    "bad request from {}: {}",
                    self.peer.ip(),
                    e.status()
                );
                return self.refuse(env, e.status(), bytes);
            }
        };
        let transport = &self.transport;
        let local = || local_ip(transport).ok();
        let req = Request {
            head: &head,
            admin: self.admin,
            tls: self.transport.tls_version(),
            peer: self.peer.ip(),
            early_data: self.early > 0,
            local: &local,
        };
        let decision = req.decide(env.site);
        let snapshot = decision.reply.needs_snapshot().then(|| Snapshot {
            stats: &*env.stats,
            gauges: env.tls.gauges(),
        });
        let counter = service::respond(&req, &decision, env.site, snapshot.as_ref(), &mut self.tx);
        // Over TLS the connection's SNI was counted instead (`top_names`).
        if let (Some(host), false) = (head.host, self.transport.is_tls()) {
            env.stats
                .name_seen(Source::Http, top_names::from_host(host));
        }
        let (len, framing, keep_alive) = (head.len, head.body, head.keep_alive);
        let capture = Capture::for_request(&head);
        rx.consume(len);
        let body_len = match framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
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

    /// Discards body bytes of the request being answered; false when more are needed or
    /// the body was bad.
    fn discard_body(&mut self, env: &mut Env) -> bool {
        let (
            Some(rx),
            State::Body {
                decoder, capture, ..
            },
        ) = (self.rx.as_mut(), &mut self.state)
        else {
            return false;
        };
        let fed = decoder.feed(rx.data(), &mut |data| {
            if let Some(c) = capture.as_mut() {
                c.add(data);
            }
        });
        match fed {
            Ok(feed) => {
                rx.consume(feed.consumed);
                self.since = env.now;
                if !feed.done {
                    return true;
                }
                let State::Body {
                    then_close,
                    capture,
                    ..
                } = std::mem::replace(&mut self.state, State::Idle)
                else {
                    return false;
                };
                if let Some(c) = capture {
                    c.log();
                }
                let next = if then_close {
                    State::Closing
                } else {
                    State::Idle
                };
                self.enter(next, env.now);
                true
            }
            Err(e) => {
                rx.consume(rx.data().len());
                self.ensure_tx(env.pool, env.now);
                response::write_error(e.status(), &mut self.tx);
                env.stats.bump(Counter::BadRequest);
                self.enter(State::Closing, env.now);
                false
            }
        }
    }

    /// Answers a request that cannot be served with `status` and closes after it.
    fn refuse(&mut self, env: &mut Env, status: u16, bytes: u64) -> bool {
        response::write_error(status, &mut self.tx);
        self.count(env, Counter::BadRequest, bytes);
        self.enter(State::Closing, env.now);
        false
    }

    /// Counts one answered request. Its time runs from when the server could start on it
    /// (the wake-up that read its first byte, or the answer to the request pipelined before
    /// it) to now, when its response is ready. The loop's own clock is read once per
    /// wake-up, which would make nearly every request take 0, so this reads the monotonic
    /// clock once more (a vDSO call, about 27 ns here; PERFORMANCE.md).
    fn count(&mut self, env: &mut Env, counter: Counter, bytes: u64) {
        self.requests += 1;
        let done = Instant::now();
        let micros = done.saturating_duration_since(self.req_start).as_micros() as u64;
        env.stats.request(counter, bytes, micros);
        if let Some(v) = self.transport.tls_version() {
            env.stats.tls_request(v, self.early > 0);
            self.early = self.early.saturating_sub(bytes as usize);
        }
        self.req_start = done;
    }

    /// Writes queued bytes; `None` when everything is sent.
    fn flush(&mut self, env: &mut Env) -> Option<Step> {
        while self.unsent() {
            match self.transport.write(&self.tx[self.tx_pos..]) {
                Io::Done(n) => {
                    self.tx_pos += n;
                    self.since = env.now;
                }
                Io::Blocked(_) => return Some(Step::Wait),
                Io::Reset | Io::Eof => {
                    plog!(log::WARNING, "disconnected client: {}", self.peer.ip());
                    return Some(self.close(env, CloseReason::PeerGone));
                }
                Io::Failed(e) => {
                    plog!(
                        log::ERROR,
                        "attempt to send response resulted in error: {}",
                        e
                    );
                    return Some(self.close(env, CloseReason::Failed));
                }
            }
        }
        self.tx_pos = 0;
        env.pool.put_tx(std::mem::take(&mut self.tx));
        // A closing connection sends its close_notify with these bytes (`finish`).
        if !matches!(self.state, State::Closing) {
            if let Some(step) = self.send_gathered(env) {
                return Some(step);
            }
        }
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

    /// The SNI counts once per TLS connection, when its handshake ends, either way.
    fn count_sni(&self, stats: &mut Stats) {
        if let Some(seen) = self.transport.ssl().and_then(hello::take_name) {
            stats.name_seen(Source::Tls, seen);
        }
    }

    /// A deadline passed: count why and close.
    pub fn expire(&mut self, env: &mut Env) -> Step {
        let reason = match &self.state {
            State::EarlyData(_) | State::Handshake(_) | State::CertWait { .. } => {
                let sni = self.ssl().map(hello::server_name).unwrap_or_default();
                log::limited(
                    log::WARNING,
                    &log::HANDSHAKE,
                    format_args!(
                        "handshake failed: timeout. client {} server {}",
                        self.peer, sni
                    ),
                );
                CloseReason::Handshake(HandshakeFailure::Timeout)
            }
            State::Idle if !self.tx_pending() => CloseReason::Idle,
            _ => CloseReason::Stalled,
        };
        self.close(env, reason)
    }

    /// Counts how the connection ended and gives its buffers back; the loop drops it.
    pub fn close(&mut self, env: &mut Env, reason: CloseReason) -> Step {
        self.count_sni(env.stats);
        let handshaken = self.handshaken();
        env.stats.closed(Ended {
            reason,
            requests: self.requests,
            tls: self.transport.tls_version().filter(|_| handshaken),
        });
        if !matches!(reason, CloseReason::PeerGone | CloseReason::Failed) {
            if handshaken {
                self.transport.close_notify();
            }
            // Best effort: the close_notify, or the alert of a failed handshake.
            let _ = self.transport.send_gathered();
        }
        if let Some(rx) = self.rx.take() {
            env.pool.put_rx(rx.buf);
        }
        env.pool.put_tx(std::mem::take(&mut self.tx));
        self.tx_pos = 0;
        Step::Close
    }
}

/// The address the client connected to, IPv4-mapped IPv6 as IPv4.
fn local_ip(transport: &Transport) -> io::Result<IpAddr> {
    Ok(transport.tcp_ref().local_addr()?.ip().to_canonical())
}
