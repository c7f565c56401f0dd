//! Process lifecycle: command line, daemon, CA and certificate cache, listeners, privilege
//! drop, workers, then the event loop; and the work signals ask for (prefetch, reload).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Poll, Waker};

use crate::config::{self, Config, Parsed};
use crate::http::dispatch::Settings;
use crate::log::{self, CRITICAL, ERROR, NOTICE, WARNING};
use crate::plog;
use crate::server::conn::{Site, Timeouts};
use crate::server::{listener, Hooks, Listener, Server, Tls, WAKER};
use crate::sys::process;
use crate::sys::signals::SignalFd;
use crate::tls::ca::{self, CaStatus, KeyType};
use crate::tls::certs::Certs;
use crate::tls::context;
use crate::tls::names::CertName;
use crate::tls::prefetch;
use crate::tls::psl::Psl;
use crate::tls::workers::{Maker, Workers};
use crate::version;

/// Jobs waiting for a certificate worker before new names are refused (`cqf`).
const CERT_QUEUE: usize = 4096;
const PSL_FILE: &str = "public_suffix_list.dat";

/// Runs the program; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    process::tune_malloc();
    let cfg = match config::parse_args(args) {
        Ok(Parsed::Run(cfg)) => cfg,
        Ok(Parsed::Help) => {
            print!("{}", config::usage());
            return 0;
        }
        Ok(Parsed::Version) => {
            println!("{}", version::version_line());
            return 0;
        }
        Err(msg) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "pixelserv-tls: {msg}");
            let _ = write!(err, "{}", config::usage());
            return 1;
        }
    };
    if let Some(file) = &cfg.benchmark {
        return benchmark(&cfg, file.as_deref());
    }
    match run(cfg) {
        Ok(()) => 0,
        Err(msg) => {
            plog!(CRITICAL, "{}", msg);
            1
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        // Collecting the components drops the `.` of `./certs` from log lines.
        std::env::current_dir()
            .map(|d| d.join(path).components().collect())
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

fn run(mut cfg: Config) -> Result<(), String> {
    // Resolved before daemonizing (which changes to /): the original resolved against /.
    cfg.cert_path = absolute(&cfg.cert_path);
    if let Some(p) = cfg.psl_file.take() {
        cfg.psl_file = Some(absolute(&p));
    }
    if let Some(p) = cfg.ticket_keys.take() {
        cfg.ticket_keys = Some(absolute(&p));
    }
    log::set_level(cfg.log_level);
    log::echo_to_stderr(true);
    let user = if process::is_root() {
        match process::lookup_user(&cfg.user) {
            Ok(Some(u)) => Some(u),
            Ok(None) => return Err(format!("unknown user \"{}\" (option -u)", cfg.user)),
            Err(e) => return Err(format!("cannot look up user \"{}\": {}", cfg.user, e)),
        }
    } else {
        None
    };
    if !cfg.foreground {
        process::daemonize().map_err(|e| format!("failed to daemonize, exit: {e}"))?;
    }
    log::init(cfg.foreground, true);
    let version = version::version_string(&cfg.args_display);
    plog!(CRITICAL, "{}", version);
    for w in &cfg.warnings {
        plog!(ERROR, "{}", w);
    }
    let want_files = cfg.max_conns as u64 + cfg.ports.len() as u64 + 64;
    match process::raise_nofile(want_files) {
        Ok(got) if got < want_files => {
            plog!(
                WARNING,
                "open-file limit is {} (wanted {}): fewer connections than -T {} fit",
                got,
                want_files,
                cfg.max_conns
            )
        }
        Ok(_) => {}
        Err(e) => plog!(ERROR, "setrlimit NOFILE failed: {}", e),
    }

    // As root, before the drop: ca.key is usually readable by root only.
    prepare_cert_path(&cfg.cert_path, user.as_ref());
    let swept = crate::tls::store::sweep_temp_files(&cfg.cert_path);
    if swept > 0 {
        plog!(
            NOTICE,
            "removed {} unfinished temporary file(s) from {}",
            swept,
            cfg.cert_path.display()
        );
    }
    let key_type = KeyType::from(cfg.leaf_key);
    let (ca, status) =
        ca::load_or_create(&cfg.cert_path, key_type).map_err(|e| format!("CA: {e}"))?;
    for w in &ca.warnings {
        plog!(WARNING, "{}", w);
    }
    match &status {
        CaStatus::Loaded => plog!(NOTICE, "CA loaded from {}", cfg.cert_path.join("ca.crt").display()),
        CaStatus::Created => plog!(
            CRITICAL,
            "created a new CA in {}: install ca.crt on your devices (it is also served at http://<this host>/ca.crt)",
            cfg.cert_path.display()
        ),
        CaStatus::CertOnly(why) => plog!(
            WARNING,
            "no usable ca.key ({}): serving certificates already in {} only, none will be generated",
            why,
            cfg.cert_path.display()
        ),
    }
    if created_by_root(&status, user.as_ref()) {
        chown_ca_files(&cfg.cert_path, user.as_ref());
    }
    let ca_pem = ca.servable_pem().map(<[u8]>::to_vec);
    if ca_pem.is_none() {
        plog!(
            ERROR,
            "ca.crt contains a private key: /ca.crt will not serve it"
        );
    }
    let psl = Arc::new(load_psl(&cfg));
    let certs = Arc::new(Mutex::new(Certs::new(cfg.cert_cache_size)));
    let ctx = context::server_context(certs.clone(), psl, &ca.chain)
        .map_err(|e| format!("TLS context: {e}"))?;
    if let Some(path) = &cfg.ticket_keys {
        let keys = context::read_ticket_keys(path)?;
        context::set_ticket_keys(&ctx, &keys).map_err(|e| format!("session ticket keys: {e}"))?;
    }
    let maker = Arc::new(Maker::new(cfg.cert_path.clone(), ca, key_type));
    load_prefetch(&cfg.cert_path, &maker, &certs);

    // Before listening: a signal sent once "Listening on" is logged must not kill us.
    let signals = SignalFd::new().map_err(|e| format!("signalfd: {e}"))?;
    let listeners = bind_all(&cfg)?;
    if let Some(u) = &user {
        if u.uid != 0 {
            process::drop_privileges(u)
                .map_err(|e| format!("cannot switch to user \"{}\": {}", u.name, e))?;
        }
    }
    process::ignore_sigpipe();

    let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| format!("waker: {e}"))?);
    let workers = Workers::start(cfg.cert_workers, CERT_QUEUE, maker, waker.clone())
        .map_err(|e| format!("workers: {e}"))?;
    let site = Site {
        settings: Settings {
            disable_204: cfg.disable_204,
            redirect: cfg.redirect,
            stats_html_url: cfg.stats_html_url.clone(),
            stats_text_url: cfg.stats_text_url.clone(),
            ca_cert_available: ca_pem.is_some(),
        },
        timeouts: Timeouts {
            handshake: Duration::from_secs(cfg.handshake_timeout_secs),
            keepalive: Duration::from_secs(cfg.keepalive_secs),
            header: Duration::from_secs(cfg.header_timeout_secs),
            write: Duration::from_secs(cfg.write_timeout_secs),
        },
        ca_pem,
        version,
        admin_restricted: cfg.admin_port.is_some(),
    };
    let (keys_tx, ticket_keys) = mpsc::channel();
    let tls = Tls {
        ctx,
        certs,
        workers,
        ticket_keys,
    };
    let mut server = Server::new(poll, listeners, site, tls, signals, cfg.max_conns)
        .map_err(|e| format!("event loop: {e}"))?;
    let mut hooks = Saver {
        cert_path: cfg.cert_path.clone(),
        ticket_keys: cfg.ticket_keys.clone(),
        keys_tx,
        waker,
    };
    server
        .run(&mut hooks)
        .map_err(|e| format!("event loop: {e}"))?;
    Ok(())
}

fn created_by_root(status: &CaStatus, user: Option<&process::User>) -> bool {
    matches!(status, CaStatus::Created) && user.is_some_and(|u| u.uid != 0)
}

/// A CERT_PATH we create as root must be writable by the `-u` user we switch to.
fn prepare_cert_path(dir: &Path, user: Option<&process::User>) {
    if dir.exists() {
        return;
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        plog!(ERROR, "cannot create {}: {}", dir.display(), e);
        return;
    }
    if let Some(u) = user.filter(|u| u.uid != 0) {
        let _ = std::os::unix::fs::chown(dir, Some(u.uid), Some(u.gid));
    }
}

/// The new ca.crt may be read by the user; ca.key stays root's (it is loaded before the drop).
fn chown_ca_files(dir: &Path, user: Option<&process::User>) {
    if let Some(u) = user {
        let _ = std::os::unix::fs::chown(dir.join("ca.crt"), Some(u.uid), Some(u.gid));
    }
}

fn load_psl(cfg: &Config) -> Psl {
    let explicit = cfg.psl_file.is_some();
    let path = cfg
        .psl_file
        .clone()
        .unwrap_or_else(|| cfg.cert_path.join(PSL_FILE));
    match Psl::load(&path) {
        Ok(psl) => {
            plog!(NOTICE, "public suffix list loaded from {}", path.display());
            psl
        }
        Err(e) => {
            if explicit || path.exists() {
                plog!(
                    ERROR,
                    "cannot use {}: {}; using the built-in list",
                    path.display(),
                    e
                );
            }
            Psl::builtin()
        }
    }
}

/// Startup, before the loop: certificates listed in `prefetch` go into the cache.
fn load_prefetch(dir: &Path, maker: &Maker, certs: &Mutex<Certs>) {
    let path = dir.join("prefetch");
    let names = match prefetch::read(&path) {
        Ok(n) => n,
        Err(e) => {
            plog!(
                WARNING,
                "sslctx_tbl_load: {} doesn't exist. ({})",
                path.display(),
                e
            );
            return;
        }
    };
    let mut certs = certs.lock().unwrap_or_else(|e| e.into_inner());
    let capacity = certs.capacity();
    for name in names {
        if certs.len() >= capacity {
            break;
        }
        let Ok(name) = CertName::from_file_name(&name) else {
            plog!(
                WARNING,
                "prefetch: ignoring invalid name {}",
                log::escape(name.as_bytes())
            );
            continue;
        };
        // Missing, expiring or corrupt certificates are made on first use instead.
        if let Ok(Some(leaf)) = maker.load(name.file_name()) {
            certs.insert(name.file_name().to_string(), leaf);
            plog!(NOTICE, "sslctx_tbl_load: {}", name.file_name());
        }
    }
    certs.forget_loads();
}

fn bind_all(cfg: &Config) -> Result<Vec<Listener>, String> {
    let ip =
        listener::resolve(cfg.listen_addr.as_deref()).map_err(|e| format!("getaddrinfo: {e}"))?;
    let mut out = Vec::new();
    for port in &cfg.ports {
        let where_ = listener::describe(ip, cfg.iface.as_deref(), port.port);
        let bound = listener::bind(ip, port, cfg.iface.as_deref())
            .map_err(|e| format!("Abort: {e} - {where_}"))?;
        plog!(
            CRITICAL,
            "Listening on {}{}",
            where_,
            if port.tls { " (TLS)" } else { "" }
        );
        out.push(Listener {
            socket: mio::net::TcpListener::from_std(bound.socket),
            port: bound.port,
        });
    }
    Ok(out)
}

/// What signals ask of the process outside the loop: file work, done on short-lived threads
/// so that the loop never waits for the disk.
struct Saver {
    cert_path: PathBuf,
    ticket_keys: Option<PathBuf>,
    keys_tx: mpsc::Sender<[u8; context::TICKET_KEYS_LEN]>,
    waker: Arc<Waker>,
}

fn save_prefetch(path: &Path, entries: &[(String, u64)]) {
    let borrowed: Vec<(&str, u64)> = entries.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    if let Err(e) = prefetch::write(path, &borrowed) {
        plog!(
            ERROR,
            "sslctx_tbl_save: failed to open {}: {}",
            path.display(),
            e
        );
    }
}

impl Hooks for Saver {
    fn save(&mut self, entries: Vec<(String, u64)>, last: bool) {
        let path = self.cert_path.join("prefetch");
        if last {
            // Shutting down: the file must be written before the process exits.
            save_prefetch(&path, &entries);
        } else if let Err(e) = std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || save_prefetch(&path, &entries))
        {
            plog!(ERROR, "sslctx_tbl_save: {}", e);
        }
    }

    fn reload(&mut self) {
        let Some(path) = self.ticket_keys.clone() else {
            return;
        };
        let (tx, waker) = (self.keys_tx.clone(), self.waker.clone());
        let spawned = std::thread::Builder::new()
            .name("ticket-keys".into())
            .spawn(move || match context::read_ticket_keys(&path) {
                Ok(keys) => {
                    if tx.send(keys).is_ok() {
                        let _ = waker.wake();
                    }
                }
                Err(e) => plog!(ERROR, "SIGHUP: {}", e),
            });
        if let Err(e) = spawned {
            plog!(ERROR, "SIGHUP: {}", e);
        }
    }
}

/// `-B [CERT_FILE]`: time certificate generation and loading (reference §7.9).
fn benchmark(cfg: &Config, file: Option<&str>) -> i32 {
    let dir = absolute(&cfg.cert_path);
    let name = file.unwrap_or("_.bing.com");
    println!("CERT_PATH: {}", dir.display());
    let (ca, _) = match ca::load_or_create(&dir, KeyType::from(cfg.leaf_key)) {
        Ok(v) => v,
        Err(e) => {
            println!("CA: {e}");
            return 0;
        }
    };
    let cert_name = match CertName::from_file_name(name) {
        Ok(n) => n,
        Err(e) => {
            println!("CERT_FILE: {name} invalid: {e}");
            return 0;
        }
    };
    if file.is_some() && !dir.join(name).exists() {
        println!("CERT_FILE: {name} not found");
        return 0;
    }
    println!("CERT_FILE: {name}");
    let maker = Maker::new(dir.clone(), ca, KeyType::from(cfg.leaf_key));
    let (mut gen_total, mut load_total) = (0.0, 0.0);
    for round in 1..=10 {
        let start = Instant::now();
        for _ in 0..5 {
            if let Err(e) = maker.generate(&cert_name) {
                println!("generate failed: {e}");
                return 0;
            }
        }
        let gen_ms = start.elapsed().as_secs_f64() * 1000.0 / 5.0;
        let start = Instant::now();
        for _ in 0..5 {
            let _ = maker.load(name);
        }
        let load_ms = start.elapsed().as_secs_f64() * 1000.0 / 5.0;
        gen_total += gen_ms;
        load_total += load_ms;
        println!(
            "{round:2}. generate cert to disk: {gen_ms:.3} ms\tload from disk: {load_ms:.3} ms"
        );
    }
    println!("generate to disk average: {:.3} ms", gen_total / 10.0);
    println!("  load from disk average: {:.3} ms", load_total / 10.0);
    0
}
