//! The event loop of the network process: one `mio::Poll` over the listeners, the
//! connections (a `slab` of `Conn` state machines), the signer's socket (`handoff`), the
//! monitor's command socket and the signalfd.

pub mod buffers;
pub mod conn;
pub mod handoff;
pub mod listener;
pub mod reusable;
pub mod timer;
pub mod transport;
pub mod wire;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use openssl::ssl::{Ssl, SslContext, SslStream};
use slab::Slab;

use self::buffers::Pool;
use self::conn::{Conn, ConnId, Env, Step, Timeouts};
use self::handoff::Handoff;
use self::reusable::Reusable;
use self::timer::Timers;
use self::transport::Transport;
use self::wire::Wire;
use crate::config::ListenPort;
use crate::http::service::Site;
use crate::log::{self, NOTICE};
use crate::plog;
use crate::stats::{CloseReason, Gauges, Snapshot, Stats};
use crate::sys;
use crate::sys::packets::Packets;
use crate::sys::signals::{Signal, SignalFd};
use crate::tls::certs::Certs;
use crate::tls::context::{self, TICKET_KEYS_LEN};
use crate::tls::hello;

const SIGNER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const CONTROL: Token = Token(usize::MAX - 2);
const LISTENER_BASE: usize = usize::MAX - 3;
/// Commands from the monitor (`app::monitor`), one per message.
pub const COMMAND_STATS: u8 = b'U';
pub const COMMAND_TICKET_KEYS: u8 = b'K';
/// Connections accepted per listener wake-up before other work gets a turn.
const ACCEPT_BATCH: usize = 64;
/// How long in-flight responses may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(3);
/// Retry accepting after EMFILE/ENFILE even if no connection closed meanwhile.
const ACCEPT_RETRY: Duration = Duration::from_millis(250);
/// Reusable connections read in search of one that is really idle, per connection admitted.
const EVICT_TRIES: usize = 8;
/// Trim the heap when the connection count falls to an eighth of a peak at least this high.
const TRIM_AFTER: usize = 512;

pub struct Listener {
    pub socket: TcpListener,
    pub port: ListenPort,
}

/// The TLS side of the loop.
pub struct Tls {
    pub ctx: SslContext,
    /// Shared with the ClientHello callback, hence the `Mutex` (see `tls::certs`).
    pub certs: Arc<Mutex<Certs>>,
    pub handoff: Handoff,
    /// The monitor's commands: SIGUSR1's stats and prefetch, SIGHUP's ticket keys.
    pub control: Packets,
}

impl Tls {
    /// The gauges a stats page shows besides the loop's counters.
    pub fn gauges(&self) -> Gauges {
        let mut g = Gauges {
            log_level: log::level(),
            ..Gauges::default()
        };
        sys::lock(&self.certs).fill_gauges(&mut g);
        self.handoff.fill_gauges(&mut g);
        let sess = context::session_stats(&self.ctx);
        // `ssh` as the original: sessions stored plus sessions reused.
        g.sessions = sess.stored + sess.hits;
        g.session_misses = sess.misses;
        g.session_purges = sess.full;
        g.sessions_stored = sess.stored;
        g.session_hits = sess.hits;
        g
    }
}

/// Settings of the loop itself.
#[derive(Clone)]
pub struct Options {
    pub timeouts: Timeouts,
    /// `-A` given: admin URIs only on the admin port.
    pub admin_restricted: bool,
    /// `-T`.
    pub max_conns: usize,
}

/// What one `accept` gave.
enum Accepted {
    Conn(TcpStream, SocketAddr),
    /// Nothing this time, try the next (a connection aborted before we took it).
    Skip,
    /// Stop accepting on this listener for now.
    Stop,
}

pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    conns: Slab<Conn>,
    timers: Timers<ConnId>,
    /// Idle and silent connections, closed oldest first to admit new ones at `-T`.
    reusable: Reusable<ConnId>,
    stats: Stats,
    pool: Pool,
    site: Site,
    options: Options,
    tls: Tls,
    signals: SignalFd,
    serial: u64,
    /// Accepting is paused until this instant (at the connection limit, out of
    /// descriptors, or a listener used up its batch); a closing connection brings it
    /// forward to now.
    paused: Option<Instant>,
    /// Connections that yielded with work left.
    again: Vec<ConnId>,
    draining: Option<Instant>,
    /// Most connections open since the heap was last trimmed.
    peak: usize,
    /// `accept` is failing (EMFILE and the like); logged once until it works again.
    accept_failing: bool,
}

impl Server {
    pub fn new(
        poll: Poll,
        listeners: Vec<Listener>,
        signals: SignalFd,
        tls: Tls,
        site: Site,
        options: Options,
    ) -> io::Result<Server> {
        let mut server = Server {
            poll,
            listeners,
            conns: Slab::new(),
            timers: Timers::default(),
            reusable: Reusable::default(),
            stats: Stats::new(),
            pool: Pool::default(),
            site,
            options,
            tls,
            signals,
            serial: 0,
            paused: None,
            again: Vec::new(),
            draining: None,
            peak: 0,
            accept_failing: false,
        };
        for (i, l) in server.listeners.iter_mut().enumerate() {
            server.poll.registry().register(
                &mut l.socket,
                Token(LISTENER_BASE - i),
                Interest::READABLE,
            )?;
        }
        let registry = server.poll.registry();
        for (fd, token) in [
            (server.signals.as_raw_fd(), SIGNALS),
            (server.tls.control.as_raw_fd(), CONTROL),
        ] {
            registry.register(&mut SourceFd(&fd), token, Interest::READABLE)?;
        }
        server.tls.control.set_nonblocking()?;
        server.tls.handoff.register(registry, SIGNER)?;
        Ok(server)
    }

    /// Runs until SIGTERM/SIGINT and the drain that follows.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    SIGNER => self.signer_readable(now),
                    CONTROL => self.command(),
                    SIGNALS => {
                        if self.signal(now)? {
                            return Ok(());
                        }
                    }
                    Token(t) if t > LISTENER_BASE - self.listeners.len() && t <= LISTENER_BASE => {
                        self.accept(LISTENER_BASE - t, now)
                    }
                    Token(slot) => self.drive_event(slot, now, event.is_read_closed()),
                }
            }
            for id in std::mem::take(&mut self.again) {
                if self.conns.get(id.slot).is_some_and(|c| c.id() == id) {
                    self.drive(id.slot, now);
                }
            }
            self.expire(now);
            self.resume_accepting(now);
            if let Some(since) = self.draining {
                if self.conns.is_empty() || now >= since + DRAIN {
                    return Ok(());
                }
            }
        }
    }

    /// How long the loop may sleep: until the next deadline, a paused accept or the end of
    /// the drain; not at all when connections yielded with work left.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        [
            self.timers.next(),
            self.paused,
            self.draining.map(|d| d + DRAIN),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(now))
    }

    fn resume_accepting(&mut self, now: Instant) {
        let room = self.conns.len() < self.options.max_conns || !self.reusable.is_empty();
        if self.paused.is_some_and(|at| at <= now) && room && self.draining.is_none() {
            self.paused = None;
            for i in 0..self.listeners.len() {
                self.accept(i, now);
            }
        }
    }

    fn accept(&mut self, index: usize, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            if self.draining.is_some() {
                return;
            }
            let victim = if self.conns.len() >= self.options.max_conns {
                let Some(id) = self.idle_victim(now) else {
                    // Every slot is busy: the kernel backlog holds the rest until one frees or
                    // becomes idle (HAProxy maxconn).
                    self.paused = Some(now + Duration::from_secs(3600));
                    return;
                };
                Some(id)
            } else {
                None
            };
            let (stream, peer) = match self.take_connection(index, now) {
                Accepted::Conn(stream, peer) => (stream, peer),
                Accepted::Skip => continue,
                Accepted::Stop => return,
            };
            if let Some(id) = victim {
                self.with_conn(id.slot, now, |conn, env| {
                    conn.close(env, CloseReason::Evicted)
                });
                self.remove(id.slot);
            }
            let port = &self.listeners[index].port;
            let admin = !self.options.admin_restricted || port.admin;
            if let Some(transport) = self.transport(stream, port.tls) {
                self.admit(transport, peer, admin, now);
            }
        }
        // Budget used: come back after others had their turn.
        self.paused.get_or_insert(now);
    }

    fn take_connection(&mut self, index: usize, now: Instant) -> Accepted {
        let (stream, peer) = match self.listeners[index].socket.accept() {
            Ok(pair) => pair,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::Stop,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Accepted::Skip,
            Err(e) => {
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNABORTED) | Some(libc::EPROTO)
                ) {
                    return Accepted::Skip;
                }
                // Out of descriptors or memory: stop accepting instead of spinning on a
                // listener that stays readable; retry when a connection closes. Logged once
                // per episode: a long overload must not flood syslog.
                if !self.accept_failing {
                    plog!(log::ERROR, "accept: {} (retrying until it succeeds)", e);
                    self.accept_failing = true;
                }
                self.paused = Some(now + ACCEPT_RETRY);
                return Accepted::Stop;
            }
        };
        if self.accept_failing {
            self.accept_failing = false;
            plog!(NOTICE, "accept: accepting connections again");
        }
        Accepted::Conn(stream, peer)
    }

    fn transport(&self, stream: TcpStream, tls: bool) -> Option<Transport> {
        if !tls {
            return Some(Transport::Plain(stream));
        }
        let stream = Ssl::new(&self.tls.ctx).and_then(|mut ssl| {
            hello::attach(&mut ssl, Some(stream.as_raw_fd()));
            ssl.set_accept_state();
            SslStream::new(ssl, Wire::new(stream))
        });
        match stream {
            Ok(s) => Some(Transport::Tls(s)),
            Err(e) => {
                plog!(log::ERROR, "TLS setup failed: {}", e);
                None
            }
        }
    }

    /// Gives an accepted connection its slot, registers it and drives it once.
    fn admit(&mut self, transport: Transport, peer: SocketAddr, admin: bool, now: Instant) {
        self.serial += 1;
        let entry = self.conns.vacant_entry();
        let id = ConnId {
            slot: entry.key(),
            serial: self.serial,
        };
        let mut conn = Conn::new(transport, id, admin, peer, now);
        if let Err(e) = conn.register(self.poll.registry()) {
            plog!(log::ERROR, "register: {}", e);
            return;
        }
        entry.insert(conn);
        self.stats.conn_opened();
        self.peak = self.peak.max(self.conns.len());
        // Not read now: if bytes are already there (TCP Fast Open, a fast client), adding the
        // socket to epoll reports it at once; if not, the read would only say EAGAIN.
        self.after(id.slot, Step::Wait, now);
    }

    /// The connection idle (or silent) longest, to close for a new one. A candidate is read
    /// first: one accepted in the same batch may have sent its request already without our
    /// having looked (connections are read when epoll reports them).
    fn idle_victim(&mut self, now: Instant) -> Option<ConnId> {
        for _ in 0..EVICT_TRIES {
            let id = self.reusable.oldest()?;
            self.drive(id.slot, now);
            if self.reusable.oldest() == Some(id) {
                return Some(id);
            }
        }
        None
    }

    /// Runs `f` on a connection with the environment it borrows from the loop.
    fn with_conn<R>(
        &mut self,
        slot: usize,
        now: Instant,
        f: impl FnOnce(&mut Conn, &mut Env) -> R,
    ) -> Option<R> {
        let conn = self.conns.get_mut(slot)?;
        let mut env = Env {
            now,
            stats: &mut self.stats,
            pool: &mut self.pool,
            site: &self.site,
            tls: &self.tls,
        };
        Some(f(conn, &mut env))
    }

    /// Drives a connection for a reason of the loop's own (a certificate arrived, it
    /// yielded with work left): no new bytes are implied.
    fn drive(&mut self, slot: usize, now: Instant) {
        if let Some(step) = self.with_conn(slot, now, |conn, env| conn.drive(env, false)) {
            self.after(slot, step, now);
        }
    }

    fn drive_event(&mut self, slot: usize, now: Instant, read_closed: bool) {
        if let Some(step) =
            self.with_conn(slot, now, |conn, env| conn.drive_event(env, read_closed))
        {
            self.after(slot, step, now);
        }
    }

    /// Applies a connection's step: re-register, re-arm its deadline, park or close it.
    fn after(&mut self, slot: usize, step: Step, now: Instant) {
        match step {
            Step::Close => self.remove(slot),
            Step::NeedCert => self.need_cert(slot, now),
            Step::Again | Step::Wait => {
                let Some(conn) = self.conns.get_mut(slot) else {
                    return;
                };
                if matches!(step, Step::Again) {
                    self.again.push(conn.id());
                }
                if let Err(e) = conn.update_interest(self.poll.registry()) {
                    plog!(log::ERROR, "reregister: {}", e);
                    self.remove(slot);
                    return;
                }
                conn.schedule(&mut self.timers, &self.options.timeouts);
                let was_empty = self.reusable.is_empty();
                conn.list_reusable(&mut self.reusable);
                if was_empty && !self.reusable.is_empty() && self.paused.is_some() {
                    // At the limit with nothing to close: this one can make room now.
                    self.paused = Some(now);
                }
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if !self.conns.contains(slot) {
            return;
        }
        // Dropping the connection closes its socket, which takes it out of epoll: no
        // EPOLL_CTL_DEL needed (nothing else holds the descriptor).
        let mut conn = self.conns.remove(slot);
        conn.unlist(&mut self.reusable, &mut self.timers);
        if let Some(file) = conn.parked_on() {
            self.cert_wait_ended(file, conn.id());
        }
        let conns = &self.conns;
        self.timers.compact_if_stale(|at, id| {
            conns
                .get(id.slot)
                .is_some_and(|c| c.id() == id && c.owns_timer(at))
        });
        self.stats.conn_closed(conn.requests());
        // After a burst, hand the memory back (a few ms, at most once per burst).
        if self.peak >= TRIM_AFTER && self.conns.len() <= self.peak / 8 {
            self.conns.shrink_to_fit();
            self.timers.shrink_to_fit();
            self.pool.release();
            crate::sys::process::trim_heap();
            self.peak = self.conns.len();
        }
        if self.paused.is_some() {
            // A slot or a descriptor is free again.
            self.paused = Some(Instant::now());
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, id)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(id.slot) else {
                continue;
            };
            if conn.id() != id || !conn.timer_due(at, now, &mut self.timers, &self.options.timeouts)
            {
                continue;
            }
            self.with_conn(id.slot, now, |conn, env| conn.expire(env));
            self.remove(id.slot);
        }
    }

    /// A command from the monitor: what SIGUSR1 and SIGHUP ask of this process.
    fn command(&mut self) {
        let mut buf = [0u8; 1 + TICKET_KEYS_LEN];
        while let Ok(Some(n)) = self.tls.control.recv(&mut buf) {
            match (buf[0], &buf[1..n]) {
                (COMMAND_STATS, []) => {
                    self.log_stats();
                    let entries = self.prefetch_entries();
                    self.tls.handoff.save_prefetch(entries);
                }
                (COMMAND_TICKET_KEYS, keys) if keys.len() == TICKET_KEYS_LEN => {
                    let keys: &[u8; TICKET_KEYS_LEN] = keys.try_into().unwrap_or(&[0; 80]);
                    match context::set_ticket_keys(&self.tls.ctx, keys) {
                        Ok(()) => plog!(NOTICE, "session ticket keys reloaded"),
                        Err(e) => plog!(log::ERROR, "session ticket keys: {}", e),
                    }
                }
                _ => plog!(log::ERROR, "unknown command from the monitor process"),
            }
        }
    }

    /// Returns true when the loop must end now.
    /// SIGUSR1 and SIGHUP reach this process as the monitor's commands (`command`): sent
    /// here directly, by `killall` say, they are not acted on twice.
    fn signal(&mut self, now: Instant) -> io::Result<bool> {
        while let Some(sig) = self.signals.next()? {
            if let Signal::Terminate(signo) = sig {
                if self.draining.is_none() && self.shut_down(now, signo) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// SIGTERM/SIGINT: stop listening, close idle connections, save; true when nothing is
    /// left to drain.
    fn shut_down(&mut self, now: Instant, signo: i32) -> bool {
        self.draining = Some(now);
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(&mut l.socket);
        }
        self.listeners.clear();
        self.close_idle(now);
        self.log_stats();
        let entries = self.prefetch_entries();
        self.tls.handoff.save_prefetch(entries);
        let name = if signo == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        plog!(NOTICE, "exit on {}", name);
        self.conns.is_empty()
    }

    /// Shutdown: connections with nothing in flight close now; the rest may finish.
    fn close_idle(&mut self, now: Instant) {
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_idle())
            .map(|(k, _)| k)
            .collect();
        for slot in idle {
            self.with_conn(slot, now, |conn, env| conn.close(env, CloseReason::Done));
            self.remove(slot);
        }
    }

    /// The prefetch entries, copied for the signer, which writes the file.
    fn prefetch_entries(&self) -> Vec<(String, u64)> {
        sys::lock(&self.tls.certs)
            .by_reuse()
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect()
    }

    pub fn log_stats(&self) {
        let snapshot = Snapshot {
            stats: &self.stats,
            gauges: self.tls.gauges(),
        };
        plog!(
            log::CRITICAL,
            "{}",
            crate::stats::pages::stats_line(&snapshot)
        );
    }
}
