//! The event loop: one `mio::Poll` over the listeners, the connections (a `slab` of
//! `Conn` state machines), the certificate workers' waker and the signalfd.

pub mod buffers;
pub mod conn;
pub mod listener;
pub mod timer;
pub mod transport;

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::tls::certs::Leaf;
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use openssl::ssl::{Ssl, SslContext, SslStream};
use slab::Slab;

use self::buffers::Pool;
use self::conn::{Conn, Env, Site, Step};
use self::timer::{TimerKey, Timers};
use self::transport::Transport;
use crate::config::ListenPort;
use crate::log::{self, NOTICE};
use crate::plog;
use crate::stats::{Counter, Stats};
use crate::sys::signals::{Signal, SignalFd};
use crate::tls::certs::Certs;
use crate::tls::hello::{self, Lookup};
use crate::tls::names::{self, CertName};
use crate::tls::workers::{Done, Workers};

/// The certificate workers wake the loop with this token.
pub const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const LISTENER_BASE: usize = usize::MAX - 2;
/// Connections accepted per listener wake-up before other work gets a turn.
const ACCEPT_BATCH: usize = 64;
/// How long in-flight responses may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(3);
/// Retry accepting after EMFILE/ENFILE even if no connection closed meanwhile.
const ACCEPT_RETRY: Duration = Duration::from_millis(250);
/// Trim the heap when the connection count falls to an eighth of a peak at least this high.
const TRIM_AFTER: usize = 512;

pub struct Listener {
    pub socket: TcpListener,
    pub port: ListenPort,
}

/// What the loop does when a signal, SIGUSR1 or shutdown, needs work outside it.
/// Both run their file I/O off the loop; results come back through `Tls::ticket_keys`.
pub trait Hooks {
    /// SIGUSR1, and SIGTERM before exit (`last`: finish before returning): save the
    /// prefetch list, `(certificate file name, reuse count)` most reused first.
    fn save(&mut self, entries: Vec<(String, u64)>, last: bool);
    /// SIGHUP: re-read the session-ticket keys, if a file is configured.
    fn reload(&mut self);
}

pub struct Tls {
    pub ctx: SslContext,
    pub certs: Arc<std::sync::Mutex<Certs>>,
    pub workers: Workers,
    /// Ticket keys re-read on SIGHUP, delivered with a wake-up of `WAKER`.
    pub ticket_keys: std::sync::mpsc::Receiver<[u8; crate::tls::context::TICKET_KEYS_LEN]>,
}

pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    conns: Slab<Conn>,
    timers: Timers,
    stats: Stats,
    pool: Pool,
    site: Site,
    tls: Tls,
    signals: SignalFd,
    max_conns: usize,
    serial: u64,
    /// Accepting is paused until this instant (at the connection limit, out of
    /// descriptors, or a listener used up its batch); a closing connection brings it
    /// forward to now.
    paused: Option<Instant>,
    /// Connections waiting for a certificate, by certificate file name.
    waiting: HashMap<String, Vec<TimerKey>>,
    /// Connections that yielded with work left.
    again: Vec<TimerKey>,
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
        site: Site,
        tls: Tls,
        signals: SignalFd,
        max_conns: usize,
    ) -> io::Result<Server> {
        let mut server = Server {
            poll,
            listeners,
            conns: Slab::new(),
            timers: Timers::default(),
            stats: Stats::new(),
            pool: Pool::default(),
            site,
            tls,
            signals,
            max_conns,
            serial: 0,
            paused: None,
            waiting: HashMap::new(),
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
        let fd = server.signals.as_raw_fd();
        server
            .poll
            .registry()
            .register(&mut SourceFd(&fd), SIGNALS, Interest::READABLE)?;
        Ok(server)
    }

    /// Runs until SIGTERM/SIGINT and the drain that follows.
    pub fn run(&mut self, hooks: &mut dyn Hooks) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = if !self.again.is_empty() {
                Some(Duration::ZERO)
            } else {
                let mut next = self.timers.next();
                for extra in [self.paused, self.draining.map(|d| d + DRAIN)]
                    .into_iter()
                    .flatten()
                {
                    next = Some(next.map_or(extra, |n| n.min(extra)));
                }
                next.map(|n| n.saturating_duration_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    WAKER => {
                        self.certificates_ready(now);
                        self.install_ticket_keys();
                    }
                    SIGNALS => {
                        if self.signal(now, hooks)? {
                            return Ok(());
                        }
                    }
                    Token(t) if t > LISTENER_BASE - self.listeners.len() && t <= LISTENER_BASE => {
                        self.accept(LISTENER_BASE - t, now)
                    }
                    Token(slot) => self.drive_event(slot, now, event.is_read_closed()),
                }
            }
            for key in std::mem::take(&mut self.again) {
                if self.conns.get(key.slot).is_some_and(|c| c.key == key) {
                    self.drive(key.slot, now);
                }
            }
            self.expire(now);
            if self.paused.is_some_and(|at| at <= now)
                && self.conns.len() < self.max_conns
                && self.draining.is_none()
            {
                self.paused = None;
                for i in 0..self.listeners.len() {
                    self.accept(i, now);
                }
            }
            if let Some(since) = self.draining {
                if self.conns.is_empty() || now >= since + DRAIN {
                    return Ok(());
                }
            }
        }
    }

    fn accept(&mut self, index: usize, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            if self.draining.is_some() {
                return;
            }
            if self.conns.len() >= self.max_conns {
                // The kernel backlog holds the rest until a slot frees (HAProxy maxconn).
                self.paused = Some(now + Duration::from_secs(3600));
                return;
            }
            let listener = &self.listeners[index];
            let (stream, peer) = match listener.socket.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    match e.raw_os_error() {
                        Some(libc::ECONNABORTED) | Some(libc::EPROTO) => continue,
                        // Out of descriptors or memory: stop accepting instead of spinning on
                        // a listener that stays readable; retry when a connection closes.
                        _ => {
                            // Once per episode: a long overload must not flood syslog.
                            if !self.accept_failing {
                                plog!(log::ERROR, "accept: {} (retrying until it succeeds)", e);
                                self.accept_failing = true;
                            }
                            self.paused = Some(now + ACCEPT_RETRY);
                            return;
                        }
                    }
                }
            };
            if self.accept_failing {
                self.accept_failing = false;
                plog!(NOTICE, "accept: accepting connections again");
            }
            let port = listener.port.clone();
            let transport = if port.tls {
                match Ssl::new(&self.tls.ctx).and_then(|mut ssl| {
                    hello::attach(&mut ssl)?;
                    ssl.set_accept_state();
                    SslStream::new(ssl, stream)
                }) {
                    Ok(s) => Transport::Tls(s),
                    Err(e) => {
                        plog!(log::ERROR, "TLS setup failed: {}", e);
                        continue;
                    }
                }
            } else {
                Transport::Plain(stream)
            };
            self.serial += 1;
            let entry = self.conns.vacant_entry();
            let key = TimerKey {
                slot: entry.key(),
                serial: self.serial,
            };
            let admin = !self.site.admin_restricted || port.admin;
            let mut conn = Conn::new(transport, key, admin, peer, now);
            let interest = conn.interest();
            if let Err(e) =
                self.poll
                    .registry()
                    .register(conn.transport.tcp(), Token(key.slot), interest)
            {
                plog!(log::ERROR, "register: {}", e);
                continue;
            }
            conn.registered = interest;
            entry.insert(conn);
            self.stats.conn_opened();
            self.peak = self.peak.max(self.conns.len());
            // Data may already be waiting (TCP Fast Open, or a fast client).
            self.drive(key.slot, now);
        }
        // Budget used: come back after others had their turn.
        self.paused.get_or_insert(now);
    }

    /// Runs `f` on a connection with the environment it borrows from the loop.
    fn with_conn<R>(
        &mut self,
        slot: usize,
        now: Instant,
        f: impl FnOnce(&mut Conn, &mut Env) -> R,
    ) -> Option<R> {
        let Server {
            conns,
            stats,
            pool,
            site,
            tls,
            ..
        } = self;
        let kcc = conns.len() as u64;
        let gauges = |s: &mut Stats| fill_gauges(s, kcc, tls);
        let conn = conns.get_mut(slot)?;
        let mut env = Env {
            now,
            stats,
            pool,
            site,
            gauges: &gauges,
        };
        Some(f(conn, &mut env))
    }

    fn drive(&mut self, slot: usize, now: Instant) {
        self.drive_event(slot, now, false);
    }

    fn drive_event(&mut self, slot: usize, now: Instant, read_closed: bool) {
        if let Some(step) = self.with_conn(slot, now, |conn, env| conn.drive(env, read_closed)) {
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
                    self.again.push(conn.key);
                }
                let want = conn.interest();
                if want != conn.registered {
                    if let Err(e) =
                        self.poll
                            .registry()
                            .reregister(conn.transport.tcp(), Token(slot), want)
                    {
                        plog!(log::ERROR, "reregister: {}", e);
                        self.remove(slot);
                        return;
                    }
                    conn.registered = want;
                }
                let deadline = conn.deadline(&self.site.timeouts);
                self.timers.arm(conn.key, &mut conn.armed, deadline);
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if !self.conns.contains(slot) {
            return;
        }
        let mut conn = self.conns.remove(slot);
        let _ = self.poll.registry().deregister(conn.transport.tcp());
        self.stats.conn_closed(conn.requests());
        // After a burst, hand the memory back (a few ms, at most once per burst).
        if self.peak >= TRIM_AFTER && self.conns.len() <= self.peak / 8 {
            self.conns.shrink_to_fit();
            self.timers.shrink_to_fit();
            crate::sys::process::trim_heap();
            self.peak = self.conns.len();
        }
        if self.paused.is_some() {
            // A slot or a descriptor is free again.
            self.paused = Some(Instant::now());
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, key)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(key.slot) else {
                continue;
            };
            if conn.key != key || !conn.armed.fired(at) {
                continue;
            }
            let deadline = conn.deadline(&self.site.timeouts);
            if deadline > now {
                self.timers.arm(key, &mut conn.armed, deadline);
                continue;
            }
            if let Some(name) = self.waiting_name(key) {
                if let Some(list) = self.waiting.get_mut(&name) {
                    list.retain(|k| *k != key);
                }
            }
            self.with_conn(key.slot, now, |conn, env| conn.expire(env));
            self.remove(key.slot);
        }
    }

    fn waiting_name(&self, key: TimerKey) -> Option<String> {
        let conn = self.conns.get(key.slot)?;
        hello::waiting_for(&conn.transport)
    }

    /// The ClientHello callback found no cached certificate: look again from the loop
    /// (for no-SNI clients the name is our local address), else park and ask a worker.
    fn need_cert(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let key = conn.key;
        let name: CertName = match hello::lookup(&conn.transport) {
            Some(Lookup::Name(name)) => name,
            Some(Lookup::NoSni) => match conn.transport.tcp_ref().local_addr() {
                Ok(addr) => names::cert_name_for_ip(canonical_ip(addr.ip())),
                Err(_) => return self.refuse(slot, Counter::Slu, now),
            },
            None => return self.refuse(slot, Counter::Slu, now),
        };
        let cached = self
            .tls
            .certs
            .lock()
            .map(|mut c| c.get(name.file_name()))
            .unwrap_or(None);
        if let Some(ctx) = cached {
            hello::install(&conn.transport, ctx);
            conn.cert_ready();
            return self.drive(slot, now);
        }
        hello::set_waiting(&conn.transport, name.file_name());
        conn.wait_cert();
        let file = name.file_name().to_string();
        let first = !self.waiting.contains_key(&file);
        self.waiting.entry(file.clone()).or_default().push(key);
        if first {
            if let Err(name) = self.tls.workers.submit(name) {
                plog!(
                    log::ERROR,
                    "certificate queue full: refusing {}",
                    name.file_name()
                );
                self.stats.bump(Counter::Cqf);
                self.finish_waiters(&file, None, Counter::Slm, now);
                return;
            }
        }
        self.after(slot, Step::Wait, now);
    }

    fn refuse(&mut self, slot: usize, counter: Counter, now: Instant) {
        if let Some(conn) = self.conns.get_mut(slot) {
            hello::refuse(&conn.transport, counter);
            conn.cert_ready();
            self.drive(slot, now);
        }
    }

    fn certificates_ready(&mut self, now: Instant) {
        while let Some(done) = self.tls.workers.try_recv() {
            let Done {
                name,
                result,
                generated,
                replaced,
            } = done;
            if replaced {
                self.stats.bump(Counter::Sle);
            }
            match result {
                Ok(leaf) => {
                    if generated {
                        self.stats.bump(Counter::Cgn);
                    }
                    if let Ok(mut certs) = self.tls.certs.lock() {
                        certs.insert(name.clone(), leaf.clone());
                    }
                    self.finish_waiters(&name, Some(leaf), Counter::Slm, now);
                }
                Err(why) => {
                    plog!(log::ERROR, "certificate for {} failed: {}", name, why);
                    self.stats.bump(Counter::Cgf);
                    self.finish_waiters(&name, None, Counter::Slm, now);
                }
            }
        }
    }

    /// Resumes every connection parked on `name`, with its certificate or a refusal.
    fn finish_waiters(&mut self, name: &str, leaf: Option<Leaf>, refusal: Counter, now: Instant) {
        for key in self.waiting.remove(name).unwrap_or_default() {
            let Some(conn) = self.conns.get_mut(key.slot) else {
                continue;
            };
            if conn.key != key {
                continue;
            }
            match &leaf {
                Some(leaf) => hello::install(&conn.transport, leaf.clone()),
                None => hello::refuse(&conn.transport, refusal),
            }
            conn.cert_ready();
            self.drive(key.slot, now);
        }
    }

    fn install_ticket_keys(&mut self) {
        while let Ok(keys) = self.tls.ticket_keys.try_recv() {
            match crate::tls::context::set_ticket_keys(&self.tls.ctx, &keys) {
                Ok(()) => plog!(NOTICE, "session ticket keys reloaded"),
                Err(e) => plog!(log::ERROR, "session ticket keys: {}", e),
            }
        }
    }

    /// Returns true when the loop must end now.
    fn signal(&mut self, now: Instant, hooks: &mut dyn Hooks) -> io::Result<bool> {
        while let Some(sig) = self.signals.next()? {
            match sig {
                Signal::Usr1 => {
                    self.log_stats();
                    if let Ok(certs) = self.tls.certs.lock() {
                        hooks.save(owned(&certs), false);
                    }
                }
                Signal::Hup => {
                    plog!(NOTICE, "SIGHUP: reloading");
                    hooks.reload();
                }
                Signal::Terminate(signo) => {
                    if self.draining.is_some() {
                        continue;
                    }
                    self.draining = Some(now);
                    for l in &mut self.listeners {
                        let _ = self.poll.registry().deregister(&mut l.socket);
                    }
                    self.listeners.clear();
                    self.close_idle(now);
                    self.log_stats();
                    if let Ok(certs) = self.tls.certs.lock() {
                        hooks.save(owned(&certs), true);
                    }
                    plog!(
                        NOTICE,
                        "exit on {}",
                        if signo == libc::SIGINT {
                            "SIGINT"
                        } else {
                            "SIGTERM"
                        }
                    );
                    if self.conns.is_empty() {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
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
            self.with_conn(slot, now, |conn, env| conn.close(env, None));
            self.remove(slot);
        }
    }

    pub fn log_stats(&mut self) {
        fill_gauges(&mut self.stats, self.conns.len() as u64, &self.tls);
        plog!(
            log::CRITICAL,
            "{}",
            crate::stats_render::stats_line(&self.stats)
        );
    }
}

/// The prefetch entries, copied so that the file can be written off the loop.
fn owned(certs: &Certs) -> Vec<(String, u64)> {
    certs
        .by_reuse()
        .into_iter()
        .map(|(n, c)| (n.to_string(), c))
        .collect()
}

/// IPv4 clients on the dual-stack socket arrive as `::ffff:a.b.c.d`; certificates and
/// logs use the IPv4 form.
pub fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

fn fill_gauges(s: &mut Stats, kcc: u64, tls: &Tls) {
    s.set(Counter::Kcc, kcc);
    s.set(Counter::Log, u64::from(log::level()));
    if let Ok(c) = tls.certs.lock() {
        c.fill_gauges(s);
    }
    // ssh as the original: sessions stored plus sessions reused.
    let sess = crate::tls::context::session_stats(&tls.ctx);
    s.set(Counter::Ssh, sess.stored + sess.hits);
    s.set(Counter::Ssm, sess.misses);
    s.set(Counter::Ssp, sess.full);
}
