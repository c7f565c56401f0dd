//! Startup that fails loudly, with the real binary: daemon mode (no `-f`) reports how startup
//! went through the parent's exit status and stderr, and exit 0 means every port already
//! listens; `--check`; the diagnostics shown at the default log level; `--log-to`.
mod common;
use common::tls::*;
use common::*;

use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use openssl::x509::extension::BasicConstraints;
use openssl::x509::{X509NameBuilder, X509};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of `nobody`, when it exists.
fn nobody() -> Option<(u32, u32)> {
    let pw = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    // SAFETY: a non-null entry from getpwnam is valid until the next call.
    (!pw.is_null()).then(|| unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Runs the binary to its exit (in daemon mode: the parent's exit) with stdio captured;
/// `as_user` runs it as that uid/gid instead of ours.
fn run_as(args: &[String], as_user: Option<(u32, u32)>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((uid, gid)) = as_user {
        // As root, std also clears the supplementary groups.
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd.spawn().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    // A daemon that kept our pipes open would hang this read: it must have let go of them.
    child.wait_with_output().unwrap()
}

fn run(args: &[String]) -> Output {
    run_as(args, None)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `-u <me> -p HTTP -k HTTPS -z DIR <extra> 127.0.0.1`, daemon mode unless `extra` has `-f`.
fn args(dir: &Path, http: u16, https: u16, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "-u".into(),
        whoami(),
        "-p".into(),
        http.to_string(),
        "-k".into(),
        https.to_string(),
        "-z".into(),
        dir.display().to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v.push("127.0.0.1".into());
    v
}

/// A daemon started by a test, found by its CERT_PATH (unique per test) in
/// `/proc/*/cmdline`; stopped and reaped on drop. The test process is made a child
/// subreaper, so the daemon, orphaned when its parent exits, becomes our child.
struct Daemon {
    pid: i32,
}

fn become_subreaper() {
    // SAFETY: a plain prctl on this process.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
}

/// Processes (other than zombies) whose command line mentions `dir`.
fn processes_using(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        });
        if !zombie && String::from_utf8_lossy(&cmdline).contains(&needle) {
            pids.push(pid);
        }
    }
    pids
}

impl Daemon {
    /// The daemon's monitor: of its three processes, the one whose parent is not another.
    fn find(dir: &Path) -> Daemon {
        let pids = processes_using(dir);
        assert_eq!(pids.len(), 3, "processes for {}: {pids:?}", dir.display());
        let monitors: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| children_of(*p).len() == 2)
            .collect();
        assert_eq!(monitors.len(), 1, "monitors among {pids:?}");
        Daemon { pid: monitors[0] }
    }

    fn proc(&self, what: &str) -> std::path::PathBuf {
        Path::new("/proc").join(self.pid.to_string()).join(what)
    }

    /// SIGTERM, then its exit status.
    fn stop(&mut self) -> Option<i32> {
        if self.pid == 0 {
            return None;
        }
        let mut status = 0;
        // SAFETY: signalling and reaping our (adopted) child.
        let rc = unsafe {
            libc::kill(self.pid, libc::SIGTERM);
            libc::waitpid(self.pid, &mut status, 0)
        };
        self.pid = 0;
        (rc > 0 && libc::WIFEXITED(status)).then(|| libc::WEXITSTATUS(status))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a daemon on fresh ports (new ones if a port raced with another test).
fn start_daemon(dir: &Path, extra: &[&str]) -> (Output, u16, u16) {
    for _ in 0..5 {
        let (http, https) = (free_port(), free_port());
        let out = run(&args(dir, http, https, extra));
        if !stderr(&out).contains("Address already in use") {
            return (out, http, https);
        }
    }
    panic!("no free ports");
}

// ---------------------------------------------------------------------------------------
// Daemon mode

#[test]
fn daemon_exits_0_only_when_every_port_listens() {
    become_subreaper();
    let dir = TempDir::new("daemon-ok");
    let (out, http, https) = start_daemon(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // No retry, no wait: the parent's exit is the readiness signal.
    let mut h = TcpStream::connect(("127.0.0.1", http)).expect("HTTP port listens");
    let t = TcpStream::connect(("127.0.0.1", https)).expect("HTTPS port listens");
    drop(t);
    let mut daemon = Daemon::find(dir.path());
    assert_eq!(stderr(&out), "", "a good start is silent");
    assert_eq!(stdout(&out), "");
    h.set_read_timeout(Some(T)).unwrap();
    assert_eq!(exchange(&mut h, &get_req("/x.gif")).body.len(), 42);

    // Detached: its own session, `/` as working directory, stdio on /dev/null, and no pipe
    // (the startup report's) left open.
    let stat = std::fs::read_to_string(daemon.proc("stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(fields[3], daemon.pid.to_string(), "session id: {stat}");
    assert_eq!(
        std::fs::read_link(daemon.proc("cwd")).unwrap(),
        Path::new("/")
    );
    for fd in 0..3 {
        let target = std::fs::read_link(daemon.proc(&format!("fd/{fd}"))).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
    }
    // Pipes this test inherited from whoever runs it are the daemon's too; others are not.
    let ours: Vec<_> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .collect();
    for fd in std::fs::read_dir(daemon.proc("fd")).unwrap().flatten() {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        assert!(
            !target.display().to_string().starts_with("pipe:") || ours.contains(&target),
            "fd {:?} is a pipe: {}",
            fd.file_name(),
            target.display()
        );
    }
    assert_eq!(daemon.stop(), Some(0));
    assert!(processes_using(dir.path()).is_empty());
}

#[test]
fn daemon_with_a_port_in_use_exits_1_naming_the_holder() {
    become_subreaper();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("daemon-inuse");
    let out = run(&args(dir.path(), free_port(), port, &[]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
    assert!(err.contains(&format!(":127.0.0.1:{port}")), "{err}");
    assert!(
        err.contains(&format!(
            "port {port} is held by pid {}",
            std::process::id()
        )),
        "{err}"
    );
    // The parent reaped the child before exiting: nothing stays behind.
    assert!(processes_using(dir.path()).is_empty());
    drop(taken);
}

#[test]
fn daemon_with_an_unusable_ca_exits_1() {
    become_subreaper();
    let dir = TempDir::new("daemon-badca");
    std::fs::write(dir.path().join("ca.crt"), "garbage\n").unwrap();
    let out = run(&args(dir.path(), free_port(), free_port(), &[]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("ca.crt"), "{}", stderr(&out));

    let dir = TempDir::new("daemon-keyonly");
    std::fs::write(dir.path().join("ca.key"), "a key\n").unwrap();
    let out = run(&args(dir.path(), free_port(), free_port(), &[]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ca.crt is missing"),
        "{}",
        stderr(&out)
    );
    assert!(processes_using(dir.path()).is_empty());
}

#[test]
fn daemon_with_an_unusable_cert_path_exits_1() {
    become_subreaper();
    // Fails for root too: CERT_PATH is a file.
    let dir = TempDir::new("daemon-file");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let out = run(&args(&file, free_port(), free_port(), &[]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not-a-dir"), "{}", stderr(&out));

    // A directory the server's user cannot write: as root, one that is not pixelserv's
    // (so it is not fixed) with -u nobody; otherwise, our own without write permission.
    let dir = TempDir::new("daemon-ro");
    let (extra, needle) = if is_root() {
        if nobody().is_none() {
            eprintln!("no user nobody: part skipped");
            return;
        }
        std::fs::create_dir(dir.path().join("somebody-elses")).unwrap();
        (vec!["-u", "nobody"], "not writable by user nobody")
    } else {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
        (vec![], "not writable by uid")
    };
    let out = run(&args(dir.path(), free_port(), free_port(), &extra));
    let err = stderr(&out);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(processes_using(dir.path()).is_empty());
    // Checked before a CA would be made in it.
    assert!(!dir.path().join("ca.key").exists());
}

#[test]
fn daemon_gives_a_root_owned_cert_path_to_the_user() {
    let Some((uid, _)) = nobody().filter(|_| is_root()) else {
        eprintln!("needs root and a user nobody: skipped");
        return;
    };
    become_subreaper();
    let dir = TempDir::new("daemon-fix");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (out, http, _) = start_daemon(dir.path(), &["-u", "nobody"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let _daemon = Daemon::find(dir.path());
    // Said on the terminal that started it, once.
    assert_eq!(err.matches("gave it to user nobody").count(), 1, "{err}");
    assert_eq!(std::fs::metadata(dir.path()).unwrap().uid(), uid);
    TcpStream::connect(("127.0.0.1", http)).expect("listens");
}

#[test]
fn daemon_shows_startup_errors_on_stderr_and_still_starts() {
    become_subreaper();
    let dir = TempDir::new("daemon-enc");
    let key = make_ca(dir.path(), true);
    std::fs::write(
        dir.path().join("ca.key"),
        key.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"pw")
            .unwrap(),
    )
    .unwrap();
    let (out, http, _) = start_daemon(dir.path(), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let _daemon = Daemon::find(dir.path());
    assert!(
        err.contains(
            "the CA cannot sign certificates: ca.key is encrypted and ca.key.passphrase is missing"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    TcpStream::connect(("127.0.0.1", http)).expect("listens");
}

#[test]
fn privileged_port_without_the_right_says_how_to_get_it() {
    // An unprivileged user (nobody, when we are root) and a port below the limit.
    let limit: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    let as_user = if is_root() { nobody() } else { None };
    if limit < 2 || (is_root() && as_user.is_none()) {
        eprintln!("every port is unprivileged here, or no user nobody: skipped");
        return;
    }
    // The permission is checked before whether the port is free: any port below will do.
    let port = limit - 1;
    let dir = TempDir::new("daemon-eacces");
    if let Some((uid, gid)) = as_user {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    }
    let out = run_as(&args(dir.path(), port, free_port(), &[]), as_user);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("port {port} needs root or CAP_NET_BIND_SERVICE")),
        "{err}"
    );
    assert!(err.contains("setcap cap_net_bind_service=+ep"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Diagnostics at the default level (-l 1)

/// ca.crt (with or without CA:TRUE) and its unencrypted ca.key in `dir`; returns the key.
fn make_ca(dir: &Path, is_ca: bool) -> PKey<Private> {
    let key = PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "test CA").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let mut bc = BasicConstraints::new();
    bc.critical();
    if is_ca {
        bc.ca();
    }
    b.append_extension(bc.build().unwrap()).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    std::fs::write(dir.join("ca.crt"), b.build().to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("ca.key"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    key
}

/// A CA that cannot sign is one ERROR line at startup, not one per refused name.
fn cannot_sign_once(dir: TempDir, why: &str) {
    let srv = Server::start_with(Options {
        args: vec!["-l".into(), "1".into()],
        dir: Some(dir),
    });
    for i in 0..3 {
        assert!(https_get(&srv, &format!("new{i}.refused.example"), "/x.gif").is_err());
    }
    srv.wait_stat("slm", T, |v| v >= 3);
    // The stats line is logged after everything before it: the log is complete up to here.
    srv.stats_by_signal();
    let log = srv.log_text();
    assert_eq!(
        log.matches(&format!("the CA cannot sign certificates: {why}"))
            .count(),
        1,
        "{log}"
    );
    assert!(!log.contains("certificate for"), "{log}");
}

#[test]
fn encrypted_ca_key_without_passphrase_is_one_error() {
    let dir = TempDir::new("diag-enc");
    let key = make_ca(dir.path(), true);
    let enc = key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"pw")
        .unwrap();
    std::fs::write(dir.path().join("ca.key"), enc).unwrap();
    cannot_sign_once(dir, "ca.key is encrypted and ca.key.passphrase is missing");
}

#[test]
fn ca_key_of_another_certificate_is_one_error() {
    let dir = TempDir::new("diag-mismatch");
    make_ca(dir.path(), true);
    let other = TempDir::new("diag-other");
    make_ca(other.path(), true);
    std::fs::copy(other.path().join("ca.key"), dir.path().join("ca.key")).unwrap();
    cannot_sign_once(dir, "ca.key does not match");
}

#[test]
fn ca_certificate_without_ca_true_is_one_error() {
    let dir = TempDir::new("diag-notca");
    make_ca(dir.path(), false);
    cannot_sign_once(
        dir,
        "ca.crt is not a CA certificate (no basicConstraints CA:TRUE)",
    );
}

// ---------------------------------------------------------------------------------------
// --check

fn check(dir: &Path, extra: &[&str]) -> Output {
    let mut a = args(dir, free_port(), free_port(), extra);
    a.insert(0, "--check".into());
    run(&a)
}

#[test]
fn check_on_a_fresh_machine_passes_and_creates_nothing() {
    let parent = TempDir::new("check-fresh");
    let dir = parent.path().join("certs");
    // A port in use does not matter: --check binds nothing (a running server holds them).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut a = args(&dir, port, free_port(), &[]);
    a.insert(0, "--check".into());
    let out = run(&a);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("no CA yet: one will be created in"), "{text}");
    assert!(
        text.contains("does not exist yet; it will be created"),
        "{text}"
    );
    assert!(text.contains("the built-in copy"), "{text}");
    assert!(text.ends_with("configuration ok\n"), "{text}");
    assert_eq!(stderr(&out), "");
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);

    std::fs::create_dir(&dir).unwrap();
    let out = check(&dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("no CA yet"), "{}", stdout(&out));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn check_accepts_a_working_setup() {
    let dir = TempDir::new("check-good");
    make_ca(dir.path(), true);
    let keys = dir.path().join("keys");
    std::fs::write(&keys, [7u8; 80]).unwrap();
    let psl = dir.path().join("psl.dat");
    std::fs::write(&psl, "com\nco.uk\n").unwrap();
    let out = check(
        dir.path(),
        &[
            "--ticket-keys",
            &keys.display().to_string(),
            "--psl",
            &psl.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("CA \"test CA\", valid until"), "{text}");
    assert!(text.contains("is writable by"), "{text}");
    assert!(
        text.contains(&format!("ticket keys {}", keys.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("public suffix list {}", psl.display())),
        "{text}"
    );

    // ca.crt without any ca.key is a documented way to run (existing certificates only).
    std::fs::remove_file(dir.path().join("ca.key")).unwrap();
    let out = check(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("no ca.key: only certificates already in CERT_PATH"));
}

#[test]
fn check_names_what_is_wrong() {
    type Setup = fn(&Path) -> Vec<String>;
    let cases: Vec<(&str, Setup, &str)> = vec![
        (
            "garbage",
            |d| {
                std::fs::write(d.join("ca.crt"), "garbage").unwrap();
                vec![]
            },
            "ca.crt contains no certificate",
        ),
        (
            "keyonly",
            |d| {
                std::fs::write(d.join("ca.key"), "k").unwrap();
                vec![]
            },
            "ca.crt is missing",
        ),
        (
            "enc",
            |d| {
                let key = make_ca(d, true);
                let enc = key
                    .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"pw")
                    .unwrap();
                std::fs::write(d.join("ca.key"), enc).unwrap();
                vec![]
            },
            "CA cannot sign certificates: ca.key is encrypted and ca.key.passphrase is missing",
        ),
        (
            "wrongpass",
            |d| {
                let key = make_ca(d, true);
                let enc = key
                    .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"pw")
                    .unwrap();
                std::fs::write(d.join("ca.key"), enc).unwrap();
                std::fs::write(d.join("ca.key.passphrase"), "not it\n").unwrap();
                vec![]
            },
            "cannot decrypt ca.key with ca.key.passphrase",
        ),
        (
            "mismatch",
            |d| {
                make_ca(d, true);
                let other = TempDir::new("check-other");
                make_ca(other.path(), true);
                std::fs::copy(other.path().join("ca.key"), d.join("ca.key")).unwrap();
                vec![]
            },
            "ca.key does not match",
        ),
        (
            "notca",
            |d| {
                make_ca(d, false);
                vec![]
            },
            "no basicConstraints CA:TRUE",
        ),
        (
            "tickets",
            |d| {
                std::fs::write(d.join("keys"), "short").unwrap();
                vec!["--ticket-keys".into(), d.join("keys").display().to_string()]
            },
            "must hold exactly 80 bytes, has 5",
        ),
        (
            "psl",
            |d| vec!["--psl".into(), d.join("missing.dat").display().to_string()],
            "missing.dat: no such file",
        ),
        (
            "badpsl",
            |d| {
                std::fs::write(d.join("public_suffix_list.dat"), "// nothing\n").unwrap();
                vec![]
            },
            "no public suffix rules found",
        ),
        (
            "notdir",
            |d| {
                std::fs::write(d.join("file"), "").unwrap();
                vec!["-z".into(), d.join("file").display().to_string()]
            },
            "is not a directory",
        ),
    ];
    for (tag, setup, needle) in cases {
        let dir = TempDir::new(&format!("check-{tag}"));
        let extra = setup(dir.path());
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let out = check(dir.path(), &extra);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{tag}: {err}");
        assert!(err.contains(needle), "{tag}: {err}");
        assert!(
            err.ends_with("configuration check failed: 1 problem\n"),
            "{tag}: {err}"
        );
    }
    // A bad command line is reported as for a start, without the usage text.
    let out = run(&["--check".into(), "-p".into(), "0".into()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "pixelserv-tls: option -p: 0 is out of range (1..=65535)\n"
    );
}

#[test]
fn check_judges_cert_path_as_the_user() {
    if !is_root() || nobody().is_none() {
        eprintln!("needs root and a user nobody: skipped");
        return;
    }
    let dir = TempDir::new("check-user");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = check(dir.path(), &["-u", "nobody"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("not writable by user nobody"), "{text}");
    assert!(text.contains("it will be given to it on start"), "{text}");
    // Nothing was changed.
    assert_eq!(std::fs::metadata(dir.path()).unwrap().uid(), 0);

    std::fs::create_dir(dir.path().join("other")).unwrap();
    let out = check(dir.path(), &["-u", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("which pixelserv did not make"),
        "{}",
        stderr(&out)
    );

    // Root can make a CERT_PATH where nobody could never reach it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = check(&dir.path().join("new"), &["-u", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("would not be reachable by user nobody"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("new").exists());
    // Nor is an existing one given to a user who could not reach it.
    std::fs::create_dir(dir.path().join("inner")).unwrap();
    let out = check(&dir.path().join("inner"), &["-u", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("it cannot reach"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// --log-to

/// Starts a foreground server, waits until it answers, stops it; returns its stderr.
fn foreground_stderr(extra: &[&str]) -> String {
    for _ in 0..5 {
        let dir = TempDir::new("logto");
        let (http, https) = (free_port(), free_port());
        let mut child = Command::new(BIN)
            .args(args(dir.path(), http, https, extra))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let end = Instant::now() + T;
        let mut up = false;
        while !up && Instant::now() < end && child.try_wait().unwrap().is_none() {
            up = TcpStream::connect(("127.0.0.1", https)).is_ok();
            if !up {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        if up {
            return stderr(&out);
        }
    }
    panic!("server did not start");
}

#[test]
fn log_to_chooses_where_lines_go() {
    let both = foreground_stderr(&["-f"]);
    assert!(both.contains("Listening on"), "{both}");
    let stderr_only = foreground_stderr(&["-f", "--log-to", "stderr"]);
    assert!(stderr_only.contains("Listening on"), "{stderr_only}");
    assert!(stderr_only.contains(" uts, "), "{stderr_only}");
    let syslog_only = foreground_stderr(&["-f", "--log-to", "syslog"]);
    assert_eq!(syslog_only, "");
}
