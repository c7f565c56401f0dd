//! The certificate hand-off of the network process, in one place: a handshake that needs a
//! certificate the cache does not hold is parked (`tls::pending`), the signer process is
//! asked over its socket (`tls::signer_msg`), and its answer is cached and delivered to
//! every connection parked on that name (`deliver`: install or refuse, mark ready, drive).
//! The socket is polled by the loop like any other; a full socket is a full queue (`cqf`).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use openssl::pkey::PKey;
use openssl::x509::X509;

use super::conn::ConnId;
use super::Server;
use crate::log;
use crate::plog;
use crate::stats::{Counter, Gauges, HandshakeFailure};
use crate::sys;
use crate::sys::packets::Packets;
use crate::tls::certs::Leaf;
use crate::tls::hello;
use crate::tls::names::CertName;
use crate::tls::pending::Pending;
use crate::tls::signer_msg::{self, Disk, Flags, Reply, Request};

pub struct Handoff {
    signer: Packets,
    pending: Pending<ConnId>,
    /// The signer's disk-budget figures, from its latest report.
    disk: Disk,
    /// The signer closed its end: no certificate can be had until the monitor restarts
    /// both processes.
    gone: bool,
    buf: Vec<u8>,
}

impl Handoff {
    pub fn new(signer: Packets) -> io::Result<Handoff> {
        signer.set_nonblocking()?;
        Ok(Handoff {
            signer,
            pending: Pending::default(),
            // Until the signer's first report: assume it can sign (its failures say if not).
            disk: Disk {
                can_sign: true,
                ..Disk::default()
            },
            gone: false,
            buf: Vec::new(),
        })
    }

    pub fn register(&self, registry: &Registry, token: Token) -> io::Result<()> {
        let fd = self.signer.as_raw_fd();
        registry.register(&mut SourceFd(&fd), token, Interest::READABLE)
    }

    pub fn fill_gauges(&self, g: &mut Gauges) {
        g.cert_files = self.disk.files;
        g.cert_files_max = self.disk.max_files;
        g.cert_files_removed = self.disk.removed;
    }

    /// False when the message could not go (the socket is full, or the signer has gone).
    fn send(&mut self, req: &Request) -> bool {
        !self.gone && self.signer.send(&req.encode()).is_ok()
    }

    /// SIGUSR1 and shutdown: the prefetch list goes to the signer, which writes the file.
    pub fn save_prefetch(&mut self, entries: Vec<(String, u64)>) {
        let mut chunks = entries.chunks(signer_msg::PREFETCH_CHUNK).peekable();
        if chunks.peek().is_none() {
            self.send(&Request::Prefetch {
                entries: Vec::new(),
                last: true,
            });
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let req = Request::Prefetch {
                entries: chunk.to_vec(),
                last,
            };
            if !self.send(&req) {
                plog!(
                    log::ERROR,
                    "sslctx_tbl_save: the signer process cannot take the list"
                );
                return;
            }
        }
    }

    /// The next reply, if one is waiting; `Err(())` once the signer has gone.
    fn next_reply(&mut self) -> Result<Option<Reply>, ()> {
        if self.buf.len() < signer_msg::MAX {
            self.buf.resize(signer_msg::MAX, 0);
        }
        loop {
            return match self.signer.recv(&mut self.buf) {
                Ok(Some(n)) => match Reply::decode(&self.buf[..n]) {
                    Ok(reply) => Ok(Some(reply)),
                    Err(e) => {
                        plog!(log::ERROR, "signer process: bad reply ({}), ignored", e);
                        continue;
                    }
                },
                Ok(None) => Err(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => {
                    plog!(log::ERROR, "signer process: {}", e);
                    Err(())
                }
            };
        }
    }
}

/// A certificate and key as the signer sent them, parsed.
fn leaf_from(cert_der: &[u8], key_der: &[u8]) -> Result<Leaf, String> {
    let cert = X509::from_der(cert_der).map_err(|e| format!("certificate: {e}"))?;
    let key = PKey::private_key_from_der(key_der).map_err(|e| format!("key: {e}"))?;
    Ok(Leaf::new(cert, key))
}

impl Server {
    /// The ClientHello callback found no cached certificate: park the connection and ask
    /// the signer, unless a request for that name is out already.
    pub(super) fn need_cert(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(name) = conn.ssl().and_then(hello::take_lookup) else {
            return self.deliver(slot, Err(HandshakeFailure::Other), now);
        };
        if self.tls.handoff.gone {
            return self.deliver(slot, Err(HandshakeFailure::NoCertificate), now);
        }
        let file = name.file_name().to_string();
        conn.park(file.clone());
        let id = conn.id();
        self.after(slot, super::conn::Step::Wait, now);
        if self.tls.handoff.pending.park(&file, id) {
            self.ask(name, now);
        }
    }

    /// Sends one request; a signer that cannot take it refuses everyone waiting for it.
    fn ask(&mut self, name: CertName, now: Instant) {
        if self.tls.handoff.send(&Request::Cert(name.clone())) {
            return;
        }
        let file = name.file_name();
        log::limited(
            log::ERROR,
            &log::QUEUE_FULL,
            format_args!("certificate queue full: refusing {file}"),
        );
        self.stats.bump(Counter::CertQueueFull);
        self.answer(file, Err(HandshakeFailure::NoCertificate), now);
    }

    /// A parked connection stopped waiting; the signer may skip a job nobody waits for.
    pub(super) fn cert_wait_ended(&mut self, file: &str, id: ConnId) {
        if self.tls.handoff.pending.forget(file, id) {
            if let Ok(name) = CertName::from_file_name(file) {
                self.tls.handoff.send(&Request::Cancel(name));
            }
        }
    }

    /// Everything the signer has said since the last wake-up.
    pub(super) fn signer_readable(&mut self, now: Instant) {
        loop {
            match self.tls.handoff.next_reply() {
                Ok(Some(reply)) => self.on_reply(reply, now),
                Ok(None) => return,
                Err(()) => return self.signer_gone(now),
            }
        }
    }

    fn on_reply(&mut self, reply: Reply, now: Instant) {
        match reply {
            Reply::Ready {
                name,
                flags,
                cert_der,
                key_der,
            } => match leaf_from(&cert_der, &key_der) {
                Ok(leaf) => self.ready(name, flags, leaf, now),
                Err(why) => self.failed(&name, flags, &why, now),
            },
            Reply::Failed { name, flags, why } => self.failed(&name, flags, &why, now),
            Reply::Abandoned { name } => {
                self.stats.cert_abandoned();
                self.ask_again(&name, now);
            }
            Reply::Disk(d) => self.tls.handoff.disk = d,
        }
    }

    fn ready(&mut self, name: String, flags: Flags, leaf: Leaf, now: Instant) {
        if flags.replaced {
            self.stats.bump(Counter::HttpsCertificateUnusable);
        }
        if flags.generated {
            self.stats.bump(Counter::CertsGenerated);
        } else if !flags.preload {
            self.stats.cert_loaded();
        }
        {
            let mut certs = sys::lock(&self.tls.certs);
            certs.insert(name.clone(), leaf.clone());
            if flags.preload {
                certs.forget_loads();
            }
        }
        self.answer(&name, Ok(leaf), now);
    }

    fn failed(&mut self, name: &str, flags: Flags, why: &str, now: Instant) {
        if flags.replaced {
            self.stats.bump(Counter::HttpsCertificateUnusable);
        }
        if flags.queue_full {
            self.stats.bump(Counter::CertQueueFull);
        } else {
            // A CA that cannot sign was reported once at startup: not once per name.
            let level = if self.tls.handoff.disk.can_sign {
                log::ERROR
            } else {
                log::WARNING
            };
            log::limited(
                level,
                &log::CERT_FAILED,
                format_args!("certificate for {name} failed: {why}"),
            );
            self.stats.bump(Counter::CertJobsFailed);
        }
        self.answer(name, Err(HandshakeFailure::NoCertificate), now);
    }

    /// The signer skipped a job nobody waited for; anyone who came since needs a new one.
    fn ask_again(&mut self, file: &str, now: Instant) {
        let waiters = self.tls.handoff.pending.take(file);
        let Ok(name) = CertName::from_file_name(file) else {
            return;
        };
        let mut again = false;
        for id in waiters {
            if self.conns.get(id.slot).is_some_and(|c| c.id() == id) {
                again |= self.tls.handoff.pending.park(file, id);
            }
        }
        if again {
            self.ask(name, now);
        }
    }

    /// The signer closed its socket (it died): every parked handshake fails, and new ones
    /// fail at once, until the monitor has restarted both processes.
    fn signer_gone(&mut self, now: Instant) {
        if self.tls.handoff.gone {
            return;
        }
        plog!(
            log::ERROR,
            "the signer process has gone: no new certificates until it is restarted"
        );
        self.tls.handoff.gone = true;
        for (_, ids) in self.tls.handoff.pending.take_all() {
            for id in ids {
                if self.conns.get(id.slot).is_some_and(|c| c.id() == id) {
                    self.deliver(id.slot, Err(HandshakeFailure::NoCertificate), now);
                }
            }
        }
    }

    /// Resumes every connection parked on `file`, with its certificate or a refusal.
    fn answer(&mut self, file: &str, leaf: Result<Leaf, HandshakeFailure>, now: Instant) {
        for id in self.tls.handoff.pending.take(file) {
            if self.conns.get(id.slot).is_some_and(|c| c.id() == id) {
                self.deliver(id.slot, leaf.clone(), now);
            }
        }
    }

    /// The one way a parked or looking-up handshake goes on: the certificate installed (or
    /// the refusal recorded), the connection marked ready, and driven.
    fn deliver(&mut self, slot: usize, leaf: Result<Leaf, HandshakeFailure>, now: Instant) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if let Some(ssl) = conn.ssl() {
            match leaf {
                Ok(leaf) => hello::install(ssl, leaf),
                Err(why) => hello::refuse(ssl, why),
            }
        }
        conn.cert_ready();
        self.drive(slot, now);
    }
}
