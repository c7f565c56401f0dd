//! The monitor: the process the init script started, which holds the listening sockets and
//! the CA key's open files but neither talks to clients nor reads the key. It starts the
//! signer and the network process, passes SIGUSR1 and SIGHUP on to the network process as
//! commands, and when either child dies starts both again (SECURITY.md, "Processes": why
//! this shape). It stays single-threaded, so that each fork copies all of it.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::Poll;
use openssl::ssl::SslContext;

use super::signer::{self, Setup};
use crate::http::service::Site;
use crate::log::{self, ERROR, NOTICE};
use crate::plog;
use crate::server::handoff::Handoff;
use crate::server::{Listener, Options, Server, Tls, COMMAND_STATS, COMMAND_TICKET_KEYS};
use crate::sys::children::{self, Ended, Fork};
use crate::sys::files::Owners;
use crate::sys::packets::{self, Packets};
use crate::sys::seccomp;
use crate::sys::signals::{Signal, SignalFd};
use crate::tls::certs::Certs;
use crate::tls::context;

/// After SIGTERM, how long the children get before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(8);
/// A child that outlives its partner by this much is killed.
const PARTNER_GRACE: Duration = Duration::from_secs(2);
/// Restarts come no closer together than this: a child that dies at once must not spin.
const RESTART_GAP: Duration = Duration::from_secs(1);
/// Children that die this soon after their start, more than `YOUNG_DEATHS` times in a row,
/// double the gap before the next start each time, up to `MAX_RESTART_GAP` (a broken setup
/// must not fill the log); one that ran longer brings it back to `RESTART_GAP`.
const STABLE_AFTER: Duration = Duration::from_secs(30);
const YOUNG_DEATHS: u32 = 3;
const MAX_RESTART_GAP: Duration = Duration::from_secs(60);

/// What every network process is made from (each is a fresh fork of this).
pub struct NetworkParts {
    pub listeners: Vec<Listener>,
    pub ctx: SslContext,
    pub certs: Arc<Mutex<Certs>>,
    pub site: Site,
    pub options: Options,
}

struct Child {
    pid: libc::pid_t,
    /// The network process's command socket (the monitor's end).
    control: Option<Packets>,
}

pub struct Monitor {
    signals: SignalFd,
    network: NetworkParts,
    signer: Setup,
    ticket_keys: Option<PathBuf>,
    /// Who may own the ticket-key file re-read on SIGHUP.
    owners: Owners,
    children: Vec<(Role, Child)>,
    stopping: Option<Instant>,
    /// A child ended: the other is stopping, then both start again.
    restart: Option<Instant>,
    last_start: Instant,
    /// The least time between two starts, grown while children keep dying young.
    gap: Duration,
    young_deaths: u32,
    /// Descriptors of the monitor's own that no child may keep (the daemon's report pipe).
    not_for_children: Vec<RawFd>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Signer,
    Network,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Signer => "signer",
            Role::Network => "network",
        }
    }
}

impl Monitor {
    pub fn new(
        signals: SignalFd,
        network: NetworkParts,
        signer: Setup,
        ticket_keys: Option<PathBuf>,
        owners: Owners,
    ) -> Monitor {
        Monitor {
            signals,
            network,
            signer,
            ticket_keys,
            owners,
            children: Vec::new(),
            stopping: None,
            restart: None,
            last_start: Instant::now(),
            gap: RESTART_GAP,
            young_deaths: 0,
            not_for_children: Vec::new(),
        }
    }

    pub fn close_in_children(&mut self, fd: Option<RawFd>) {
        self.not_for_children.extend(fd);
    }

    fn close_monitor_fds(&self) {
        for &fd in &self.not_for_children {
            children::close_inherited(fd);
        }
    }

    /// Starts the signer and the network process, joined by a fresh socket pair.
    pub fn start_children(&mut self) -> Result<(), String> {
        self.last_start = Instant::now();
        let (for_network, for_signer) = packets::pair().map_err(|e| format!("socketpair: {e}"))?;
        let (control, for_control) = packets::pair().map_err(|e| format!("socketpair: {e}"))?;
        let me = children::pid();
        match children::fork().map_err(|e| format!("fork: {e}"))? {
            Fork::Child => {
                // First: a monitor killed before this line must not leave an orphan.
                if !children::die_with_parent(libc::SIGKILL, me) {
                    children::exit(1);
                }
                drop((for_network, control, for_control));
                self.close_monitor_fds();
                self.close_for_signer();
                signer::run(self.signer.clone(), for_signer)
            }
            Fork::Parent(pid) => self
                .children
                .push((Role::Signer, Child { pid, control: None })),
        }
        drop(for_signer);
        match children::fork().map_err(|e| format!("fork: {e}"))? {
            Fork::Child => {
                if !children::die_with_parent(libc::SIGTERM, me) {
                    children::exit(1);
                }
                drop(control);
                self.close_monitor_fds();
                self.run_network(for_network, for_control)
            }
            Fork::Parent(pid) => self.children.push((
                Role::Network,
                Child {
                    pid,
                    control: Some(control),
                },
            )),
        }
        Ok(())
    }

    /// In the signer: no listening socket, no signalfd of the monitor's.
    fn close_for_signer(&self) {
        use std::os::fd::AsRawFd;
        for l in &self.network.listeners {
            children::close_inherited(l.socket.as_raw_fd());
        }
        children::close_inherited(self.signals.as_raw_fd());
    }

    /// In the network process: everything but the CA key's files, then the loop. Never
    /// returns.
    fn run_network(&mut self, signer: Packets, control: Packets) -> ! {
        use std::os::fd::AsRawFd;
        self.signer.key_files.close_here();
        children::close_inherited(self.signals.as_raw_fd());
        children::close_inherited(self.signer.dir.as_raw_fd());
        if !Arc::ptr_eq(&self.signer.dir, &self.signer.ca_dir) {
            children::close_inherited(self.signer.ca_dir.as_raw_fd());
        }
        let code = match self.build_server(signer, control) {
            Ok(mut server) => {
                seccomp::confine_network_process();
                match server.run() {
                    Ok(()) => 0,
                    Err(e) => {
                        plog!(log::CRITICAL, "event loop: {}", e);
                        1
                    }
                }
            }
            Err(msg) => {
                plog!(log::CRITICAL, "network process: {}", msg);
                1
            }
        };
        children::exit(code)
    }

    fn build_server(&mut self, signer: Packets, control: Packets) -> Result<Server, String> {
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let signals = SignalFd::new().map_err(|e| format!("signalfd: {e}"))?;
        let handoff = Handoff::new(signer).map_err(|e| format!("signer socket: {e}"))?;
        let tls = Tls {
            ctx: self.network.ctx.clone(),
            certs: self.network.certs.clone(),
            handoff,
            control,
        };
        let n = &mut self.network;
        Server::new(
            poll,
            std::mem::take(&mut n.listeners),
            signals,
            tls,
            n.site.clone(),
            n.options.clone(),
        )
        .map_err(|e| format!("event loop: {e}"))
    }

    /// Runs until SIGTERM or SIGINT, and until both children have gone after it.
    pub fn run(&mut self) -> i32 {
        loop {
            let wait = self
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.signals.wait(wait) {
                plog!(ERROR, "monitor: {}", e);
                return 1;
            }
            loop {
                match self.signals.next() {
                    Ok(Some(sig)) => self.signal(sig),
                    Ok(None) => break,
                    Err(e) => {
                        plog!(ERROR, "monitor: {}", e);
                        return 1;
                    }
                }
            }
            self.reap();
            if self.stopping.is_some() && self.children.is_empty() {
                return 0;
            }
            self.enforce_deadlines();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.stopping.map(|t| t + STOP_GRACE),
            self.restart
                .map(|t| (t + PARTNER_GRACE).max(self.last_start + self.gap)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn signal(&mut self, sig: Signal) {
        match sig {
            Signal::Child => {}
            Signal::Usr1 => self.command(&[COMMAND_STATS]),
            Signal::Hup => {
                plog!(NOTICE, "SIGHUP: reloading");
                self.reload_ticket_keys();
            }
            Signal::Terminate(signo) => {
                if self.stopping.is_none() {
                    self.stopping = Some(Instant::now());
                    // Passed on as it came (the exit line names it). The signer ends when the
                    // network process has closed its socket, after the prefetch list it
                    // sends on the way out.
                    self.kill(Role::Network, signo);
                }
            }
        }
    }

    fn command(&self, msg: &[u8]) {
        let control = self
            .children
            .iter()
            .find(|(r, _)| *r == Role::Network)
            .and_then(|(_, c)| c.control.as_ref());
        if let Some(c) = control {
            if let Err(e) = c.send(msg) {
                plog!(ERROR, "monitor: cannot reach the network process: {}", e);
            }
        }
    }

    fn reload_ticket_keys(&mut self) {
        let Some(path) = &self.ticket_keys else {
            return;
        };
        match context::read_ticket_keys(path, &self.owners) {
            Ok(keys) => {
                // Kept here as well, for the next network process.
                if let Err(e) = context::set_ticket_keys(&self.network.ctx, &keys) {
                    plog!(ERROR, "session ticket keys: {}", e);
                    return;
                }
                let mut msg = vec![COMMAND_TICKET_KEYS];
                msg.extend_from_slice(&keys);
                self.command(&msg);
            }
            Err(e) => plog!(ERROR, "SIGHUP: {}", e),
        }
    }

    fn kill(&self, role: Role, sig: libc::c_int) {
        for (_, c) in self.children.iter().filter(|(r, _)| *r == role) {
            children::signal(c.pid, sig);
        }
    }

    /// Reaps ended children; one that ends unasked stops its partner and asks for both to
    /// start again.
    fn reap(&mut self) {
        while let Some((pid, ended)) = children::reap() {
            let Some(at) = self.children.iter().position(|(_, c)| c.pid == pid) else {
                continue;
            };
            let (role, _) = self.children.remove(at);
            if self.stopping.is_some() || self.restart.is_some() {
                continue;
            }
            let level = if ended == Ended::Exited(0) {
                NOTICE
            } else {
                ERROR
            };
            plog!(
                level,
                "the {} process ({}) ended ({}): restarting the signer and network processes",
                role.name(),
                pid,
                ended
            );
            self.restart = Some(Instant::now());
            self.young_deaths = match self.last_start.elapsed() < STABLE_AFTER {
                true => self.young_deaths + 1,
                false => 0,
            };
            self.gap = match self.young_deaths.checked_sub(YOUNG_DEATHS) {
                Some(n) if n > 0 => (RESTART_GAP * 2u32.pow(n.min(6))).min(MAX_RESTART_GAP),
                _ => RESTART_GAP,
            };
            // The network process drains its connections; the signer ends when it does.
            self.kill(Role::Network, libc::SIGTERM);
        }
    }

    fn enforce_deadlines(&mut self) {
        let now = Instant::now();
        if let Some(t) = self.stopping {
            if now >= t + STOP_GRACE {
                self.kill(Role::Network, libc::SIGKILL);
                self.kill(Role::Signer, libc::SIGKILL);
            }
            return;
        }
        let Some(t) = self.restart else {
            return;
        };
        if !self.children.is_empty() {
            if now >= t + PARTNER_GRACE {
                self.kill(Role::Network, libc::SIGKILL);
                self.kill(Role::Signer, libc::SIGKILL);
            }
            return;
        }
        if now < self.last_start + self.gap {
            return;
        }
        self.restart = None;
        if let Err(msg) = self.start_children() {
            plog!(ERROR, "monitor: {}; retrying", msg);
            // A half-made pair goes too: the next start makes both.
            self.kill(Role::Network, libc::SIGKILL);
            self.kill(Role::Signer, libc::SIGKILL);
            self.restart = Some(now);
        }
    }
}
