//! Process lifecycle: the startup phases in the order they run (command line, daemon,
//! logging, CERT_PATH and the CA, listeners, privilege drop, the TLS context), then the
//! monitor, which starts the signer and network processes and watches them until a signal
//! ends it. In daemon mode the parent waits until all of that has succeeded or failed
//! (`sys::daemon`).

mod benchmark;
mod cert_dir;
mod check;
mod listen;
mod monitor;
mod signer;

use std::io::Write;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::ssl::SslContext;

use self::cert_dir::Verdict;
use self::monitor::{Monitor, NetworkParts};
use crate::config::{self, Config, LogTo, Parsed};
use crate::http::dispatch::Settings;
use crate::http::service::Site;
use crate::http::setup::SetupPage;
use crate::log::{self, CRITICAL, ERROR, NOTICE, WARNING};
use crate::plog;
use crate::server::conn::Timeouts;
use crate::server::Options;
use crate::sys::children::{self, Fork};
use crate::sys::daemon::{self, Forked, Reporter};
use crate::sys::files::{Dir, Owners};
use crate::sys::packets;
use crate::sys::process::{self, User};
use crate::sys::signals::SignalFd;
use crate::tls::ca::{self, Access, Ca, CaStatus, KeyFiles};
use crate::tls::certs::Certs;
use crate::tls::context;
use crate::tls::context::TICKET_KEYS_LEN;
use crate::tls::psl::Psl;
use crate::tls::store;
use crate::version;

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
            // An init script's --check wants the problem, not forty lines of usage.
            if !args.iter().any(|a| a == "--check") {
                let _ = write!(err, "{}", config::usage());
            }
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
    let report_fd = reporter.as_ref().map(Reporter::raw_fd);
    let (mut monitor, listening) = match start(&cfg, user.as_ref(), report_fd) {
        Ok(started) => started,
        Err(msg) => return fail(reporter, &msg),
    };
    if let Some(r) = &reporter {
        if let Err(e) = r.detach() {
            return fail(reporter, &format!("failed to daemonize, exit: {e}"));
        }
        log::errors_to_stderr(false);
    }
    if let Err(msg) = monitor.start_children() {
        return fail(reporter, &msg);
    }
    // Only now: "Listening on" says that the server is ready (scripts and tests wait for it).
    listen::announce(&listening);
    if let Some(reporter) = reporter {
        if let Err(e) = reporter.ready() {
            return fail(None, &format!("failed to daemonize, exit: {e}"));
        }
    }
    monitor.run()
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

/// Everything that can fail, in order, up to a monitor whose children run: after this
/// the ports listen, the privileges are dropped, the signer holds the CA key and the
/// network process serves.
fn start(
    cfg: &Config,
    user: Option<&User>,
    report_fd: Option<RawFd>,
) -> Result<(Monitor, Vec<String>), String> {
    let version = announce(cfg);
    raise_fd_limit(cfg);
    // As root, before the drop: CERT_PATH, the CA (ca.key is root's) and the ticket keys.
    // `dir` is where certificates are made: CERT_PATH, or --leaf-dir (the CA stays put, in a
    // CERT_PATH that is then root's alone).
    let ca_owner = user.filter(|_| !cfg.separate_leaf_dir());
    let ca_dir = Arc::new(open_cert_dir("CERT_PATH", &cfg.cert_path, ca_owner)?);
    let dir = match cfg.separate_leaf_dir() {
        true => Arc::new(open_cert_dir("--leaf-dir", cfg.leaf_path(), user)?),
        false => ca_dir.clone(),
    };
    let access = ca_access(user);
    check_ca(cfg, &ca_dir, &dir, user)?;
    let ca = ca::load_public(&ca_dir, &access)?.ok_or("ca.crt is missing")?;
    let key_files = Arc::new(KeyFiles::open(&ca_dir)?);
    let ticket_keys = match &cfg.ticket_keys {
        Some(path) => Some(context::read_ticket_keys(path, &root_owners(user))?),
        None => None,
    };
    // Before listening: a signal sent once the ports accept must not kill us.
    let signals = SignalFd::new().map_err(|e| format!("signalfd: {e}"))?;
    let (listeners, listening) = listen::bind_all(cfg)?;
    drop_privileges(user)?;
    // As the -u user from here: files it reads may be its own.
    let owners = runtime_owners(user);
    let certs = Arc::new(Mutex::new(Certs::new(cfg.cert_cache_size)));
    let ctx = tls_context(cfg, &ca, certs.clone(), ticket_keys, &owners)?;
    let site = Site {
        settings: settings(cfg),
        ca_pem: ca.pem.clone(),
        version,
        setup: SetupPage::new(&ca.cert, check_port(cfg), &cfg.setup_hosts),
    };
    let signer = signer::Setup {
        ca_dir,
        dir,
        key_files,
        ca_access: access,
        owners,
        leaf_key: cfg.leaf_key,
        workers: cfg.cert_workers,
        cert_files: cfg.cert_files,
        cache_size: cfg.cert_cache_size,
    };
    let network = NetworkParts {
        listeners,
        ctx,
        certs,
        site,
        options: options(cfg),
    };
    let keys = cfg.ticket_keys.clone();
    let mut monitor = Monitor::new(signals, network, signer, keys, runtime_owners(None));
    monitor.close_in_children(report_fd);
    Ok((monitor, listening))
}

/// How the CA files are read and written: owned by root or the `-u` user, a new ca.crt
/// given to the user.
fn ca_access(user: Option<&User>) -> Access {
    Access {
        owners: root_owners(user),
        crt_owner: user.filter(|u| u.uid != 0).map(|u| (u.uid, u.gid)),
    }
}

/// Loads the CA, or creates it, in a child process that then exits: the key is checked
/// (and reported on) here, but never held by this process, which forks the network process
/// (SECURITY.md, "Processes").
fn check_ca(cfg: &Config, dir: &Dir, leaves: &Dir, user: Option<&User>) -> Result<(), String> {
    let (report, child_end) = packets::pair().map_err(|e| format!("socketpair: {e}"))?;
    match children::fork().map_err(|e| format!("fork: {e}"))? {
        Fork::Child => {
            drop(report);
            let code = match open_ca(cfg, dir, leaves, user) {
                Ok(_) => 0,
                Err(msg) => {
                    let _ = child_end.send(msg.as_bytes());
                    1
                }
            };
            children::exit(code)
        }
        Fork::Parent(pid) => {
            drop(child_end);
            let mut buf = vec![0u8; 4096];
            let said = report.recv(&mut buf);
            let ended = children::wait(pid);
            match (said, ended) {
                (Ok(Some(n)), _) => Err(String::from_utf8_lossy(&buf[..n]).into_owned()),
                (_, Ok(children::Ended::Exited(0))) => Ok(()),
                (_, Ok(how)) => Err(format!("checking the CA failed ({how})")),
                (_, Err(e)) => Err(format!("checking the CA: {e}")),
            }
        }
    }
}

/// Who may own the files root reads before the drop: root or the `-u` user.
fn root_owners(user: Option<&User>) -> Owners {
    Owners::for_process(process::euid(), user.map(|u| u.uid))
}

/// Who may own the files read after the drop (a process still running as root trusts
/// root's files only).
fn runtime_owners(user: Option<&User>) -> Owners {
    let uid = user.map_or_else(process::euid, |u| u.uid);
    Owners::for_process(uid, None)
}

/// Paths are resolved before daemonizing, which changes to `/` (the original resolved a
/// relative `-z` against `/`).
fn resolve_paths(cfg: &mut Config) {
    cfg.cert_path = absolute(&cfg.cert_path);
    cfg.leaf_dir = cfg.leaf_dir.as_deref().map(absolute);
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

/// CERT_PATH or --leaf-dir (`what`), created if missing (and then given to `user`, on the
/// open directory), opened once: every file in it is reached through this descriptor.
fn open_cert_dir(what: &str, path: &Path, user: Option<&User>) -> Result<Dir, String> {
    let created = !path.exists();
    if created {
        std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    }
    let dir = Dir::open(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if let Some(u) = user.filter(|u| created && u.uid != 0) {
        if let Err(e) = dir.chown(u.uid, u.gid) {
            plog!(ERROR, "cannot give {} to {}: {}", path.display(), u.name, e);
        }
    }
    if let Ok((_, mode)) = dir.owner_and_mode() {
        if mode & 0o022 != 0 {
            plog!(
                ERROR,
                "{} is writable by group or others (mode {:o}): they can replace the certificates it holds; run chmod go-w on it",
                path.display(),
                mode
            );
        }
    }
    let swept = store::sweep_temp_files(&dir);
    if swept > 0 {
        plog!(
            NOTICE,
            "removed {} unfinished temporary file(s) from {}",
            swept,
            path.display()
        );
    }
    Ok(dir)
}

/// The CA in CERT_PATH (`dir`), loaded or created; `leaves` is where certificates go.
fn open_ca(cfg: &Config, dir: &Dir, leaves: &Dir, user: Option<&User>) -> Result<Ca, String> {
    // A new ca.crt may be read by the user; ca.key stays root's.
    let access = ca_access(user);
    let found = ca::load_existing(dir, &access).map_err(|e| format!("CA: {e}"))?;
    // Before a new CA is written: a leaf directory the user cannot write fails here.
    let can_sign = found.as_ref().is_none_or(|(ca, _)| ca.key.is_some());
    writable_cert_path(cfg, leaves, user, can_sign)?;
    let (ca, status) = match found {
        Some(found) => found,
        None => ca::create(dir, cfg.leaf_key, &access).map_err(|e| format!("CA: {e}"))?,
    };
    for w in &ca.warnings {
        plog!(WARNING, "{}", w);
    }
    let path = dir.path();
    match &status {
        CaStatus::Loaded => plog!(NOTICE, "CA loaded from {}", path.join("ca.crt").display()),
        CaStatus::Created => plog!(
            CRITICAL,
            "created a new CA in {}: install ca.crt on your devices (it is also served at http://<this host>/ca.crt)",
            path.display()
        ),
        // Said once here, at the default level, rather than once per name that then fails.
        CaStatus::CertOnly(why) => plog!(
            ERROR,
            "the CA cannot sign certificates: {}; serving only certificates already in {}",
            why,
            leaves.path().display()
        ),
    }
    Ok(ca)
}

/// The leaf directory (CERT_PATH or --leaf-dir) must be writable by the user the server runs
/// as, at least while the CA can sign (new certificates are saved there). A root-owned
/// directory of pixelserv's own files is fixed; anything else stops the start with the reason.
fn writable_cert_path(
    cfg: &Config,
    dir: &Dir,
    user: Option<&User>,
    can_sign: bool,
) -> Result<(), String> {
    let (what, option) = leaf_dir_names(cfg);
    let writable = || matches!(cert_dir::verdict(what, dir.path(), user), Verdict::Writable);
    let why = match cert_dir::verdict(what, dir.path(), user) {
        Verdict::Writable => return Ok(()),
        Verdict::Fixable(why) => match user.map(|u| cert_dir::give_to(dir, u)) {
            Some(Ok(done)) if writable() => {
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
            "{why}: new certificates could not be saved; fix the directory or choose another {option}"
        ));
    }
    plog!(ERROR, "{}: the prefetch list will not be saved", why);
    Ok(())
}

/// The leaf directory's name in messages, and the option that chooses it.
pub(super) fn leaf_dir_names(cfg: &Config) -> (&'static str, &'static str) {
    match cfg.separate_leaf_dir() {
        true => ("--leaf-dir", "--leaf-dir"),
        false => ("CERT_PATH", "-z"),
    }
}

/// The server's TLS context: the CA chain, the PSL the ClientHello callback names
/// certificates with, and shared ticket keys if configured.
fn tls_context(
    cfg: &Config,
    ca: &Ca,
    certs: Arc<Mutex<Certs>>,
    ticket_keys: Option<[u8; TICKET_KEYS_LEN]>,
    owners: &Owners,
) -> Result<SslContext, String> {
    let psl = Arc::new(load_psl(cfg, owners));
    let ctx =
        context::server_context(certs, psl, &ca.chain).map_err(|e| format!("TLS context: {e}"))?;
    if let Some(keys) = ticket_keys {
        context::set_ticket_keys(&ctx, &keys).map_err(|e| format!("session ticket keys: {e}"))?;
    }
    Ok(ctx)
}

fn load_psl(cfg: &Config, owners: &Owners) -> Psl {
    let explicit = cfg.psl_file.is_some();
    let path = cfg
        .psl_file
        .clone()
        .unwrap_or_else(|| cfg.cert_path.join(PSL_FILE));
    match Psl::load(&path, owners) {
        Ok(Some(psl)) => {
            plog!(NOTICE, "public suffix list loaded from {}", path.display());
            psl
        }
        Ok(None) if !explicit => Psl::builtin(),
        Ok(None) => {
            plog!(
                ERROR,
                "cannot use {}: no such file; using the built-in list",
                path.display()
            );
            Psl::builtin()
        }
        Err(e) => {
            plog!(
                ERROR,
                "cannot use {}: {}; using the built-in list",
                path.display(),
                e
            );
            Psl::builtin()
        }
    }
}

fn drop_privileges(user: Option<&User>) -> Result<(), String> {
    match user {
        Some(u) if u.uid != 0 => process::drop_privileges(u)
            .map_err(|e| format!("cannot switch to user \"{}\": {}", u.name, e)),
        _ => Ok(()),
    }
}

/// The HTTPS port the setup page's live check connects to: the first that is not `-A`'s.
fn check_port(cfg: &Config) -> u16 {
    cfg.ports
        .iter()
        .find(|p| p.tls && !p.admin)
        .map_or(443, |p| p.port)
}

fn settings(cfg: &Config) -> Settings {
    Settings {
        disable_204: cfg.disable_204,
        redirect: cfg.redirect,
        stats_html_url: cfg.stats_html_url.clone(),
        stats_text_url: cfg.stats_text_url.clone(),
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
