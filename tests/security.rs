//! Issue 10, attacking the real binary: a client that fills the disk or holds every slot, a
//! CERT_PATH full of links, FIFOs and oversized files, a web page that forges log lines or
//! changes the log level, leaves left over from a replaced CA.

mod common;

use common::tls::*;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Starts the server on `dir` expecting it to refuse to start: exit 1 within 5 s, and the
/// output names the problem.
fn assert_refuses(dir: &Path, needle: &str) {
    let me = whoami();
    let (p, k) = (free_port().to_string(), free_port().to_string());
    let z = dir.to_str().unwrap();
    let args = ["-f", "-u", &me, "-p", &p, "-k", &k, "-z", z, "127.0.0.1"];
    let t = Instant::now();
    let (code, out) = run_to_exit(&args, Duration::from_secs(5));
    assert_eq!(code, Some(1), "after {:?}: {out}", t.elapsed());
    assert!(out.contains(needle), "{needle}: {out}");
}

/// A CERT_PATH holding a CA made by a first server.
fn ca_dir(tag: &str) -> TempDir {
    let first = Server::start(&[]);
    let dir = TempDir::new(tag);
    for f in ["ca.crt", "ca.key"] {
        std::fs::copy(first.dir.path().join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn start_in(dir: TempDir, args: &[&str]) -> Server {
    Server::start_with(Options {
        args: args.iter().map(|s| s.to_string()).collect(),
        dir: Some(dir),
    })
}

// ---------------------------------------------------------------------------------------
// 1. The disk budget

/// 2,500 never-seen names against the default budget of 2,000 files: every first visit
/// succeeds and CERT_PATH holds at most 2,000 certificate files.
#[test]
fn new_names_never_exceed_the_disk_budget() {
    const NAMES: usize = 2500;
    const BUDGET: usize = 2000;
    let srv = Server::start(&["-l", "3", "-T", "200"]);
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (next, ca, port) = (next.clone(), ca_file(&srv), srv.https);
            std::thread::spawn(move || {
                let connector = connector(&ca);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= NAMES {
                        return;
                    }
                    let name = format!("ad.n{i}.budget.example");
                    let mut s = connector
                        .connect(&name, tcp(port))
                        .unwrap_or_else(|e| panic!("{name}: first visit failed: {e}"));
                    assert_gif(&request(&mut s, "/x.gif", true));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let files = cert_files(srv.dir.path());
    assert!(files.len() <= BUDGET, "{} files", files.len());
    assert!(files.len() >= BUDGET - 10, "{} files", files.len());
    assert_eq!(srv.stat("cgn"), NAMES as u64);
    assert_eq!(srv.stat("dsx"), BUDGET as u64);
    assert!(srv.stat("dse") >= (NAMES - BUDGET) as u64);
    assert!(srv.wait_log("holds its budget of 2000 certificate files", T));
    assert_eq!(srv.count_log("holds its budget"), 1);
}

/// A smaller budget given at start trims what is there, oldest first, and `0` keeps none.
#[test]
fn a_smaller_budget_trims_at_start_and_zero_writes_nothing() {
    let srv = Server::start(&[]);
    for i in 0..6 {
        assert_gif(&https_get(&srv, &format!("a.t{i}.example"), "/x.gif").unwrap());
    }
    let mut srv = srv;
    srv.signal(libc::SIGTERM);
    assert_eq!(srv.wait_exit(T), Some(0));
    let dir = srv.take_dir();
    assert_eq!(cert_files(dir.path()).len(), 6);
    let srv = start_in(dir, &["--cert-files", "2"]);
    // The trim happens after the ports listen; the stats page shows its result.
    assert_eq!(srv.wait_stat("dsk", T, |v| v == 2), 2);
    assert_eq!(cert_files(srv.dir.path()).len(), 2);
    let mut srv = srv;
    srv.signal(libc::SIGTERM);
    assert_eq!(srv.wait_exit(T), Some(0));
    let srv = start_in(srv.take_dir(), &["--cert-files", "0"]);
    assert_gif(&https_get(&srv, "a.fresh.example", "/x.gif").unwrap());
    assert!(!srv.dir.path().join("_.fresh.example").exists());
    assert!(srv.dir.path().join("ca.crt").exists() && srv.dir.path().join("ca.key").exists());
}

// ---------------------------------------------------------------------------------------
// 2. Nothing in CERT_PATH is followed, waited on or read without bound

#[test]
fn ca_crt_linked_to_a_secret_is_refused() {
    let dir = ca_dir("link-secret");
    let secret = TempDir::new("secret");
    let mut bundle = std::fs::read(dir.path().join("ca.crt")).unwrap();
    bundle.extend(
        b"-----BEGIN PRIVATE KEY-----\nVPN-SECRET-KEY-MATERIAL\n-----END PRIVATE KEY-----\n",
    );
    std::fs::write(secret.path().join("vpn.pem"), &bundle).unwrap();
    std::fs::set_permissions(
        secret.path().join("vpn.pem"),
        PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("ca.crt")).unwrap();
    symlink(secret.path().join("vpn.pem"), dir.path().join("ca.crt")).unwrap();
    assert_refuses(dir.path(), "ca.crt: not a regular file (symbolic link)");
}

#[test]
fn fifo_or_oversized_ca_files_are_refused_at_once() {
    let dir = ca_dir("fifo-ca");
    std::fs::remove_file(dir.path().join("ca.crt")).unwrap();
    mkfifo(&dir.path().join("ca.crt"));
    assert_refuses(dir.path(), "ca.crt: not a regular file (FIFO)");

    let dir = ca_dir("fifo-pass");
    mkfifo(&dir.path().join("ca.key.passphrase"));
    assert_refuses(dir.path(), "ca.key.passphrase: not a regular file (FIFO)");

    let dir = ca_dir("big-ca");
    let mut big = std::fs::read(dir.path().join("ca.crt")).unwrap();
    big.resize(2 << 20, b'\n');
    std::fs::write(dir.path().join("ca.crt"), big).unwrap();
    assert_refuses(dir.path(), "ca.crt: larger than");

    let dir = ca_dir("link-key");
    std::fs::rename(dir.path().join("ca.key"), dir.path().join("real.key")).unwrap();
    symlink(dir.path().join("real.key"), dir.path().join("ca.key")).unwrap();
    assert_refuses(dir.path(), "ca.key: not a regular file (symbolic link)");
}

/// `prefetch` pointing at /dev/zero, a FIFO as the PSL, an oversized prefetch: the server
/// serves within 5 s, says why it ignored each, and reads none of them.
#[test]
fn odd_prefetch_and_psl_files_never_hang_startup() {
    for case in ["zero", "fifo-psl", "big-prefetch"] {
        let dir = ca_dir(case);
        match case {
            "zero" => symlink("/dev/zero", dir.path().join("prefetch")).unwrap(),
            "fifo-psl" => mkfifo(&dir.path().join("public_suffix_list.dat")),
            _ => {
                let line = "a.example\t1\n".repeat(1 << 20);
                std::fs::write(dir.path().join("prefetch"), line).unwrap();
            }
        }
        let t = Instant::now();
        let srv = start_in(dir, &[]);
        assert_gif(&https_get(&srv, "ok.odd.example", "/x.gif").unwrap());
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{case}: {:?}",
            t.elapsed()
        );
        let needle = match case {
            "zero" => "prefetch: not a regular file (symbolic link)",
            "fifo-psl" => "public_suffix_list.dat: not a regular file (FIFO)",
            _ => "prefetch: larger than",
        };
        assert!(srv.wait_log(needle, T), "{case}: {}", srv.log_text());
    }
}

/// Certificate files that are links are replaced by certificates of ours, never read
/// through (the link's target is untouched).
#[test]
fn a_certificate_file_that_is_a_link_is_replaced_not_followed() {
    let dir = ca_dir("cert-link");
    let target = TempDir::new("cert-link-target");
    std::fs::write(target.path().join("keep"), b"not yours").unwrap();
    symlink(
        target.path().join("keep"),
        dir.path().join("_.linked.example"),
    )
    .unwrap();
    let srv = start_in(dir, &[]);
    assert_gif(&https_get(&srv, "ads.linked.example", "/x.gif").unwrap());
    assert_eq!(
        std::fs::read(target.path().join("keep")).unwrap(),
        b"not yours"
    );
    let meta = std::fs::symlink_metadata(srv.dir.path().join("_.linked.example")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(srv.stat("sle"), 1);
}

/// As root with `-u nobody`: a new ca.crt is given to the user on the open file before it
/// is renamed into place, ca.key stays root's, and a CERT_PATH we create is the user's.
#[test]
fn root_gives_files_away_only_through_open_descriptors() {
    // SAFETY: geteuid never fails.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: ownership changes cannot happen, nothing to check");
        return;
    }
    let parent = TempDir::new("root-own");
    std::fs::set_permissions(parent.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let dir = parent.path().join("certs");
    let (p, k) = (free_port(), free_port());
    let mut child = std::process::Command::new(BIN)
        .args([
            "-f",
            "-u",
            "nobody",
            "-p",
            &p.to_string(),
            "-k",
            &k.to_string(),
        ])
        .args(["-z", dir.to_str().unwrap(), "127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + T;
    while TcpStream::connect(("127.0.0.1", p)).is_err() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let nobody = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("nobody:x:")?
                .split(':')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .unwrap();
    let meta = |n: &str| std::fs::metadata(dir.join(n)).unwrap();
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), nobody);
    assert_eq!(
        (meta("ca.crt").uid(), meta("ca.crt").mode() & 0o777),
        (nobody, 0o644)
    );
    assert_eq!(
        (meta("ca.key").uid(), meta("ca.key").mode() & 0o777),
        (0, 0o600)
    );
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------
// 4. Leaves match the CA

/// After the CA is replaced, a leaf signed by the old one is regenerated on its next use,
/// and a leaf left 0644 by the C version is made 0600 when loaded.
#[test]
fn leaves_of_a_replaced_ca_are_regenerated_and_made_private() {
    let mut srv = Server::start(&[]);
    assert_gif(&https_get(&srv, "a.old.example", "/x.gif").unwrap());
    assert_gif(&https_get(&srv, "a.loose.example", "/x.gif").unwrap());
    srv.signal(libc::SIGTERM);
    assert_eq!(srv.wait_exit(T), Some(0));
    let dir = srv.take_dir();
    // The old CA goes: the next start makes a new one.
    std::fs::remove_file(dir.path().join("ca.crt")).unwrap();
    std::fs::remove_file(dir.path().join("ca.key")).unwrap();
    let mut srv = start_in(dir, &[]);
    assert!(srv.log_text().contains("created a new CA"));
    assert_gif(&https_get(&srv, "b.old.example", "/x.gif").unwrap());
    assert_eq!(srv.stat("sle"), 1);
    assert_eq!(srv.stat("cgn"), 1);
    // Signed by the current CA, and private, from now on.
    assert_gif(&https_get(&srv, "c.loose.example", "/x.gif").unwrap());
    srv.signal(libc::SIGTERM);
    assert_eq!(srv.wait_exit(T), Some(0));
    let dir = srv.take_dir();
    let loose = dir.path().join("_.loose.example");
    std::fs::set_permissions(&loose, PermissionsExt::from_mode(0o644)).unwrap();
    let srv = start_in(dir, &[]);
    assert_gif(&https_get(&srv, "d.loose.example", "/x.gif").unwrap());
    assert_eq!(std::fs::metadata(&loose).unwrap().mode() & 0o777, 0o600);
    assert_eq!(srv.stat("cgn"), 0);
}

// ---------------------------------------------------------------------------------------
// 5. Slots

/// 40 silent sockets at `-T 40` (half on each port): a real client is served at once (the
/// oldest silent one makes room), and each silent one is closed at the header deadline.
#[test]
fn silent_sockets_cannot_hold_every_slot() {
    let srv = Server::start(&[
        "-T",
        "40",
        "--header-timeout",
        "2",
        "--handshake-timeout",
        "2",
    ]);
    let mut silent: Vec<TcpStream> = (0..40)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", if i % 2 == 0 { srv.http } else { srv.https }))
                .unwrap()
        })
        .collect();
    assert_eq!(srv.wait_stat_until("kcc", |v| v >= 40, T), 40);
    let t = Instant::now();
    let r = srv.get("/x.gif");
    assert_eq!(r.body.len(), 42);
    assert_gif(&https_get(&srv, "real.slots.example", "/x.gif").unwrap());
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "real client waited {took:?}");
    // At least the stats request that saw 40 open had to close a silent one.
    assert!(srv.stat("clt") >= 1);
    let t = Instant::now();
    for s in &mut silent {
        assert!(closed_within(s, Duration::from_secs(4)));
    }
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

/// A body that trickles in a byte at a time keeps resetting the no-progress deadline, but
/// not the total one (6 × the header timeout).
#[test]
fn a_trickling_body_is_cut_at_its_total_deadline() {
    let srv = Server::start(&["--header-timeout", "1"]);
    let mut c = srv.connect();
    c.write_all(b"POST /t HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c).unwrap().status, 200);
    let start = Instant::now();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // One byte about every 300 ms: progress well within the 1 s no-progress deadline.
    let closed_after = loop {
        assert!(start.elapsed() < Duration::from_secs(12), "still open");
        if c.write_all(b"x").is_err() {
            break start.elapsed();
        }
        let mut b = [0u8; 256];
        match c.read(&mut b) {
            Ok(0) => break start.elapsed(),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break start.elapsed(),
            Ok(_) => {}
        }
    };
    assert!(closed_after >= Duration::from_secs(5), "{closed_after:?}");
    assert!(srv.wait_stat("tmo", T, |v| v >= 1) >= 1);
}
// ---------------------------------------------------------------------------------------
// 6. Logs

/// A POST body's CR/LF never reach the log raw: no wire byte can start a log line.
#[test]
fn a_post_body_cannot_forge_a_log_line() {
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    for forged in [
        "x\r\ndropbear[77]: Password auth succeeded for 'root'\r\n",
        "y\ndropbear[78]: Password auth succeeded for 'root'\x1b[2J",
    ] {
        let raw = format!(
            "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{forged}",
            forged.len()
        );
        exchange(&mut c, &raw);
    }
    assert!(srv.wait_log("POST /a HTTP/1.1", T));
    let _ = srv.get("/sync.gif");
    assert!(srv.wait_log("GET /sync.gif", T));
    for line in srv.log_text().lines() {
        assert!(!line.starts_with("dropbear"), "forged line: {line}");
        assert!(!line.contains('\u{1b}'), "escape reached the log: {line:?}");
    }
    assert!(srv.log_text().contains("\\x0d\\x0adropbear"));
}

/// Per-name error lines are rate-limited: 30 names that cannot get a certificate (no CA
/// key) log 10 failure lines a minute; the count of the others goes with the next one.
#[test]
fn per_name_errors_are_rate_limited() {
    let dir = ca_dir("ratelimit");
    std::fs::remove_file(dir.path().join("ca.key")).unwrap();
    let srv = start_in(dir, &[]);
    for i in 0..30 {
        assert!(https_get(&srv, &format!("a.r{i}.example"), "/x.gif").is_err());
    }
    assert_eq!(srv.wait_stat("cgf", T, |v| v >= 30), 30);
    // 10 a minute: 10, or up to 20 if the test straddles a minute boundary.
    let lines = srv.count_log("certificate for ");
    assert!((10..=20).contains(&lines), "{lines}: {}", srv.log_text());
}

// ---------------------------------------------------------------------------------------
// 7. /log=N is not a CSRF target

#[test]
fn log_level_changes_only_when_asked_from_the_same_site() {
    let srv = Server::start(&[]);
    let level = || srv.stat("log");
    assert_eq!(level(), 4);
    let ask = |extra: &str| {
        let mut c = srv.connect();
        let r = exchange(
            &mut c,
            &format!("GET /log=2 HTTP/1.1\r\nHost: router.lan\r\n{extra}\r\n"),
        );
        assert_eq!(r.status, 200);
    };
    ask("Sec-Fetch-Site: cross-site\r\n");
    ask("Sec-Fetch-Site: same-site\r\n");
    ask("Origin: http://ads.example\r\n");
    ask("Referer: http://ads.example/page.html\r\n");
    ask("Origin: null\r\n");
    assert_eq!(level(), 4, "a cross-site /log=2 changed the level");
    // Typed into the address bar (Sec-Fetch-Site: none), or from our own stats page.
    ask("Sec-Fetch-Site: none\r\n");
    assert_eq!(level(), 2);
    ask("Referer: http://router.lan/servstats\r\n");
    assert_eq!(level(), 2);
    let mut c = srv.connect();
    exchange(&mut c, "GET /log=3 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(level(), 3);
}
