//! Process lifecycle: the startup phases in the order they run (command line, daemon,
//! logging, CERT_PATH and the CA, the TLS context, listeners, privilege drop, workers), then
//! the event loop until a signal ends it. In daemon mode the parent waits until all of that
//! has succeeded or failed (`sys::daemon`).

mod benchmark;
mod cert_dir;
mod check;
mod chores;
mod listen;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use mio::{Poll, Waker};
use openssl::ssl::SslContext;

use self::cert_dir::Verdict;
use self::chores::FileChores;
use crate::config::{self, Config, LogTo, Parsed};
use crate::http::dispatch::Settings;
use crate::http::service::Site;
use crate::log::{self, CRITICAL, ERROR, NOTICE, WARNING};
use crate::plog;
use crate::server::conn::Timeouts;
use crate::server::{Listener, Options, Server, Tls, WAKER};
use crate::sys::daemon::{self, Forked, Reporter};
use crate::sys::process::{self, User};
use crate::sys::signals::SignalFd;
use crate::tls::ca::{self, Ca, CaStatus};
use crate::tls::certs::Certs;
use crate::tls::context;
use crate::tls::names::CertName;
use crate::tls::pending::Pending;
use crate::tls::prefetch;
use crate::tls::psl::Psl;
use crate::tls::store;
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
        return benchmark::run(&cfg, &absolute(&cfg.cert_path), file.as_deref());
    }
    run(cfg)
}

/// The startup phases, then the loop; returns the exit status.
fn run(mut cfg: Config) -> i32 {
    resolve_paths(&mut cfg);
    log::set_level(cfg.log_level);
    log::echo_to_stderr(true);
    let user = match target_user(&cfg) {
        Ok(user) => user,
        Err(msg) => return fail(None, &msg),
    };
    if cfg.check {
        return check::run(&cfg, user.as_ref());
    }
    // Fork before anything else: every thread must start in the child.
    let reporter = if cfg.foreground {
        None
    } else {
        match daemon::fork() {
            Ok(Forked::Parent(Ok(()))) => return 0,
            Ok(Forked::Parent(Err(msg))) => {
                eprintln!("pixelserv-tls: {msg}");
                return 1;
            }
            Ok(Forked::Child(reporter)) => Some(reporter),
            Err(e) => return fail(None, &format!("failed to daemonize, exit: {e}")),
        }
    };
    start_logging(&cfg, reporter.is_some());
    let (mut server, mut chores) = match start(&cfg, user.as_ref()) {
        Ok(started) => started,
        Err(msg) => return fail(reporter, &msg),
    };
    if let Some(reporter) = reporter {
        log::errors_to_stderr(false);
        if let Err(e) = reporter.ready() {
            return fail(None, &format!("failed to daemonize, exit: {e}"));
        }
    }
    match server.run(&mut chores) {
        Ok(()) => 0,
        Err(e) => fail(None, &format!("event loop: {e}")),
    }
}

/// A fatal error: logged, and shown where whoever started us looks.
fn fail(reporter: Option<Reporter>, msg: &str) -> i32 {
    plog!(CRITICAL, "{}", msg);
    match reporter {
        Some(reporter) => reporter.failed(msg),
        None if !log::to_stderr() => eprintln!("pixelserv-tls: {msg}"),
        None => {}
    }
    1
}

/// `--log-to`, by default syslog plus stderr with `-f`. A starting daemon also shows its
/// ERROR lines on the stderr it still has: that is where a problem gets noticed.
fn start_logging(cfg: &Config, daemon: bool) {
    let to = cfg.log_to.unwrap_or(if cfg.foreground {
        LogTo::Both
    } else {
        LogTo::Syslog
    });
    log::init(to.syslog(), to.stderr());
    log::errors_to_stderr(daemon && !to.stderr());
}

/// Everything that can fail, in order, up to a server ready to run: after this the ports
/// listen, the privileges are dropped and the certificate workers run.
fn start(cfg: &Config, user: Option<&User>) -> Result<(Server, FileChores), String> {
    let version = announce(cfg);
    raise_fd_limit(cfg);
    let ca = open_ca(cfg, user)?;
    let ca_pem = ca.servable_pem().map(<[u8]>::to_vec);
    if ca_pem.is_none() {
        plog!(
            ERROR,
            "ca.crt contains a private key: /ca.crt will not serve it"
        );
    }
    let certs = Arc::new(Mutex::new(Certs::new(cfg.cert_cache_size)));
    let ctx = tls_context(cfg, &ca, certs.clone())?;
    let maker = Arc::new(Maker::new(cfg.cert_path.clone(), ca, cfg.leaf_key));
    load_prefetch(&cfg.cert_path, &maker, &certs);
    // Before listening: a signal sent once "Listening on" is logged must not kill us.
    let signals = SignalFd::new().map_err(|e| format!("signalfd: {e}"))?;
    let listeners = listen::bind_all(cfg)?;
    drop_privileges(user)?;
    let site = Site {
        settings: settings(cfg, ca_pem.is_some()),
        ca_pem,
        version,
    };
    build_server(cfg, site, ctx, certs, maker, signals, listeners)
}

/// Paths are resolved before daemonizing, which changes to `/` (the original resolved a
/// relative `-z` against `/`).
fn resolve_paths(cfg: &mut Config) {
    cfg.cert_path = absolute(&cfg.cert_path);
    cfg.psl_file = cfg.psl_file.as_deref().map(absolute);
    cfg.ticket_keys = cfg.ticket_keys.as_deref().map(absolute);
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

/// The `-u` user, when we are root and will switch to it after binding.
fn target_user(cfg: &Config) -> Result<Option<User>, String> {
    if !process::is_root() {
        return Ok(None);
    }
    match process::lookup_user(&cfg.user) {
        Ok(Some(u)) => Ok(Some(u)),
        Ok(None) => Err(format!("unknown user \"{}\" (option -u)", cfg.user)),
        Err(e) => Err(format!("cannot look up user \"{}\": {}", cfg.user, e)),
    }
}

/// Logs the version line and the command-line warnings; returns the version line.
fn announce(cfg: &Config) -> String {
    let version = version::version_string(&cfg.args_display);
    plog!(CRITICAL, "{}", version);
    for w in &cfg.warnings {
        plog!(ERROR, "{}", w);
    }
    version
}

fn raise_fd_limit(cfg: &Config) {
    let want = cfg.max_conns as u64 + cfg.ports.len() as u64 + 64;
    match process::raise_nofile(want) {
        Ok(got) if got < want => plog!(
            WARNING,
            "open-file limit is {} (wanted {}): fewer connections than -T {} fit",
            got,
            want,
            cfg.max_conns
        ),
        Ok(_) => {}
        Err(e) => plog!(ERROR, "setrlimit NOFILE failed: {}", e),
    }
}

/// CERT_PATH and the CA in it, as root before the drop: ca.key is usually root's only.
fn open_ca(cfg: &Config, user: Option<&User>) -> Result<Ca, String> {
    let dir = &cfg.cert_path;
    prepare_cert_path(dir, user);
    let swept = store::sweep_temp_files(dir);
    if swept > 0 {
        plog!(
            NOTICE,
            "removed {} unfinished temporary file(s) from {}",
            swept,
            dir.display()
        );
    }
    let found = ca::load_existing(dir).map_err(|e| format!("CA: {e}"))?;
    // Before a new CA is written into it: a CERT_PATH the user cannot write fails here.
    let can_sign = found.as_ref().is_none_or(|(ca, _)| ca.key.is_some());
    writable_cert_path(dir, user, can_sign)?;
    let (ca, status) = match found {
        Some(found) => found,
        None => ca::create(dir, cfg.leaf_key).map_err(|e| format!("CA: {e}"))?,
    };
    for w in &ca.warnings {
        plog!(WARNING, "{}", w);
    }
    match &status {
        CaStatus::Loaded => plog!(NOTICE, "CA loaded from {}", dir.join("ca.crt").display()),
        CaStatus::Created => plog!(
            CRITICAL,
            "created a new CA in {}: install ca.crt on your devices (it is also served at http://<this host>/ca.crt)",
            dir.display()
        ),
        // Said once here, at the default level, rather than once per name that then fails.
        CaStatus::CertOnly(why) => plog!(
            ERROR,
            "the CA cannot sign certificates: {}; serving only certificates already in {}",
            why,
            dir.display()
        ),
    }
    if status == CaStatus::Created {
        chown_ca_cert(dir, user);
    }
    Ok(ca)
}

/// CERT_PATH must be writable by the user the server runs as, at least while the CA can
/// sign (new certificates are saved there). A root-owned directory of pixelserv's own files
/// is fixed; anything else stops the start with the reason.
fn writable_cert_path(dir: &Path, user: Option<&User>, can_sign: bool) -> Result<(), String> {
    let why = match cert_dir::verdict(dir, user) {
        Verdict::Writable => return Ok(()),
        Verdict::Fixable(why) => match user.map(|u| cert_dir::give_to(dir, u)) {
            Some(Ok(done)) if matches!(cert_dir::verdict(dir, user), Verdict::Writable) => {
                plog!(ERROR, "{}: {}", why, done);
                return Ok(());
            }
            Some(Ok(done)) => format!("{why}, even after it was fixed ({done})"),
            Some(Err(e)) => format!("{why}; {e}"),
            None => why,
        },
        Verdict::Unwritable(why) => why,
    };
    if can_sign {
        return Err(format!(
            "{why}: new certificates could not be saved; fix the directory or choose another -z"
        ));
    }
    plog!(ERROR, "{}: the prefetch list will not be saved", why);
    Ok(())
}

/// A CERT_PATH we create as root must be writable by the `-u` user we switch to.
fn prepare_cert_path(dir: &Path, user: Option<&User>) {
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

/// A new ca.crt may be read by the user; ca.key stays root's (it is loaded before the drop).
fn chown_ca_cert(dir: &Path, user: Option<&User>) {
    if let Some(u) = user.filter(|u| u.uid != 0) {
        let _ = std::os::unix::fs::chown(dir.join("ca.crt"), Some(u.uid), Some(u.gid));
    }
}

/// The server's TLS context: the CA chain, the PSL the ClientHello callback names
/// certificates with, and shared ticket keys if configured.
fn tls_context(cfg: &Config, ca: &Ca, certs: Arc<Mutex<Certs>>) -> Result<SslContext, String> {
    let psl = Arc::new(load_psl(cfg));
    let ctx =
        context::server_context(certs, psl, &ca.chain).map_err(|e| format!("TLS context: {e}"))?;
    if let Some(path) = &cfg.ticket_keys {
        let keys = context::read_ticket_keys(path)?;
        context::set_ticket_keys(&ctx, &keys).map_err(|e| format!("session ticket keys: {e}"))?;
    }
    Ok(ctx)
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

fn drop_privileges(user: Option<&User>) -> Result<(), String> {
    match user {
        Some(u) if u.uid != 0 => process::drop_privileges(u)
            .map_err(|e| format!("cannot switch to user \"{}\": {}", u.name, e)),
        _ => Ok(()),
    }
}

fn settings(cfg: &Config, ca_cert_available: bool) -> Settings {
    Settings {
        disable_204: cfg.disable_204,
        redirect: cfg.redirect,
        stats_html_url: cfg.stats_html_url.clone(),
        stats_text_url: cfg.stats_text_url.clone(),
        ca_cert_available,
    }
}

fn options(cfg: &Config) -> Options {
    let secs = Duration::from_secs;
    Options {
        timeouts: Timeouts {
            handshake: secs(cfg.handshake_timeout_secs),
            keepalive: secs(cfg.keepalive_secs),
            header: secs(cfg.header_timeout_secs),
            write: secs(cfg.write_timeout_secs),
        },
        admin_restricted: cfg.admin_port.is_some(),
        max_conns: cfg.max_conns,
    }
}

/// The last phase: certificate workers and the loop around the listeners, with the file
/// work signals ask for.
fn build_server(
    cfg: &Config,
    site: Site,
    ctx: SslContext,
    certs: Arc<Mutex<Certs>>,
    maker: Arc<Maker>,
    signals: SignalFd,
    listeners: Vec<Listener>,
) -> Result<(Server, FileChores), String> {
    let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| format!("waker: {e}"))?);
    let workers = Workers::start(cfg.cert_workers, CERT_QUEUE, maker, waker.clone())
        .map_err(|e| format!("workers: {e}"))?;
    let (keys_tx, ticket_keys) = mpsc::channel();
    let tls = Tls {
        ctx,
        certs,
        workers,
        ticket_keys,
        pending: Pending::default(),
    };
    let server = Server::new(poll, listeners, signals, tls, site, options(cfg))
        .map_err(|e| format!("event loop: {e}"))?;
    let chores = FileChores {
        cert_path: cfg.cert_path.clone(),
        ticket_keys: cfg.ticket_keys.clone(),
        keys_tx,
        waker,
    };
    Ok((server, chores))
}
