//! Faults around the real binary: a CERT_PATH that stops taking writes, certificate files
//! damaged while it runs, `kill -9` in a burst of new names, signals under load, and a
//! CA key that cannot be used.
mod common;
use common::tls::*;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openssl::pkey::PKey;
use openssl::symm::Cipher;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted on a directory for the test; unmounted (and the directory removed) on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path) -> Result<Mount, String> {
        if !is_root() {
            return Err("not root".into());
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "none"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Mount(dir.to_path_buf()))
    }

    fn read_only(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn temp_files(dir: &Path) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// A certificate file that parses, with a key that belongs to its certificate.
fn assert_cert_file_ok(path: &Path) {
    let pem = std::fs::read(path).unwrap();
    let cert = openssl::x509::X509::from_pem(&pem)
        .unwrap_or_else(|e| panic!("{}: certificate: {e}", path.display()));
    let key =
        PKey::private_key_from_pem(&pem).unwrap_or_else(|e| panic!("{}: key: {e}", path.display()));
    assert!(
        cert.public_key().unwrap().public_eq(&key),
        "{}: key does not match",
        path.display()
    );
}

// ---------------------------------------------------------------------------------------
// CERT_PATH stops taking writes

#[test]
fn read_only_cert_path_serves_new_names_from_memory() {
    let dir = TempDir::new("rofs");
    let path = dir.path().to_path_buf();
    let mount = match Mount::tmpfs(&path) {
        Ok(m) => m,
        Err(why) => {
            eprintln!("cannot mount a tmpfs ({why}): skipped");
            return;
        }
    };
    std::mem::forget(dir); // the mount guard removes it
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(TempDir(path.clone())),
    });
    assert_gif(&https_get(&srv, "before.ro.example", "/x.gif").unwrap());
    let before = names_in(&path);
    mount.read_only();
    for i in 0..5 {
        assert_gif(&https_get(&srv, &format!("a.ro{i}.example"), "/x.gif").unwrap());
    }
    // A second visit is a cache hit, not another attempt to write.
    assert_gif(&https_get(&srv, "b.ro0.example", "/x.gif").unwrap());
    assert_eq!(srv.stat("cgn"), 6);
    assert_eq!(
        srv.count_log("cannot write certificates"),
        1,
        "{}",
        srv.log_text()
    );
    assert!(srv.log_text().contains("Read-only file system"));
    assert_eq!(names_in(&path), before);
    drop(srv);
    drop(mount);
}

#[test]
fn certificate_name_taken_by_a_directory_is_served_from_memory() {
    let dir = TempDir::new("dirname");
    for d in ["_.dir1.example", "_.dir2.example"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
        std::fs::write(dir.path().join(d).join("keep"), b"x").unwrap();
    }
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    for name in ["a.dir1.example", "a.dir2.example", "b.dir1.example"] {
        assert_gif(&https_get(&srv, name, "/x.gif").unwrap());
    }
    assert_eq!(srv.stat("cgn"), 2);
    assert_eq!(
        srv.count_log("cannot write certificates"),
        1,
        "{}",
        srv.log_text()
    );
    let d = srv.dir.path();
    assert!(d.join("_.dir1.example").join("keep").exists());
    assert!(d.join("_.dir2.example").is_dir());
    assert_eq!(temp_files(d), Vec::<String>::new());
    // Other names are still written.
    assert_gif(&https_get(&srv, "ok.fine.example", "/x.gif").unwrap());
    assert_cert_file_ok(&d.join("_.fine.example"));
}

// ---------------------------------------------------------------------------------------
// Damaged files

#[test]
fn certificate_corrupted_while_running_is_replaced_after_restart() {
    let mut srv = Server::start(&[]);
    assert_gif(&https_get(&srv, "ads.damage.example", "/x.gif").unwrap());
    let file = srv.dir.path().join("_.damage.example");
    std::fs::write(&file, b"-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    // Cached: served as before, the file is not looked at.
    assert_gif(&https_get(&srv, "more.damage.example", "/x.gif").unwrap());
    assert_eq!(srv.stat("sle"), 0);
    assert_eq!(srv.stat("cgn"), 1);
    srv.signal(libc::SIGTERM);
    assert_eq!(srv.wait_exit(T), Some(0));
    let dir = srv.take_dir();
    // The prefetch list names it; loading it fails quietly and the first visit replaces it.
    assert!(std::fs::read_to_string(dir.path().join("prefetch"))
        .unwrap()
        .contains("_.damage.example\t"));
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    assert_gif(&https_get(&srv, "ads.damage.example", "/x.gif").unwrap());
    assert_eq!(srv.stat("sle"), 1);
    assert_eq!(srv.stat("cgn"), 1);
    assert_cert_file_ok(&srv.dir.path().join("_.damage.example"));
}

#[test]
fn kill_9_during_a_burst_leaves_only_whole_files() {
    let mut srv = Server::start(&[]);
    let ca = ca_file(&srv);
    let port = srv.https;
    let threads: Vec<JoinHandle<()>> = (0..10)
        .map(|t| {
            let ca = ca.clone();
            std::thread::spawn(move || {
                let conn = connector(&ca);
                for i in 0..5 {
                    // The server dies meanwhile: failures are expected.
                    let name = format!("w.burst{t}x{i}.example");
                    if let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)) {
                        let _ = tcp.set_read_timeout(Some(T));
                        let _ = conn.connect(&name, tcp);
                    }
                }
            })
        })
        .collect();
    let end = Instant::now() + T;
    while Instant::now() < end
        && names_in(srv.dir.path())
            .iter()
            .filter(|n| n.starts_with("_.burst") && !n.ends_with(".tmp"))
            .count()
            < 10
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our child.
    unsafe { libc::kill(srv.pid(), libc::SIGKILL) };
    assert_eq!(srv.wait_exit(T), None, "killed, no exit code");
    for t in threads {
        t.join().unwrap();
    }
    let dir = srv.take_dir();
    // What a process killed between create and rename leaves behind.
    std::fs::write(
        dir.path().join("_.planted.example.4242.7.tmp"),
        b"-----BEGIN CERT",
    )
    .unwrap();
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    let d = srv.dir.path();
    assert_eq!(temp_files(d), Vec::<String>::new());
    let files = cert_files(d);
    assert!(files.len() >= 10, "{files:?}");
    for f in &files {
        assert_cert_file_ok(&d.join(f));
    }
    // Every name works at once on the restarted server.
    for t in 0..10 {
        for i in 0..5 {
            assert_gif(&https_get(&srv, &format!("v.burst{t}x{i}.example"), "/x.gif").unwrap());
        }
    }
    assert_eq!(srv.stat("sle"), 0);
    assert_eq!(cert_files(d).len(), 50);
}

// ---------------------------------------------------------------------------------------
// Signals under load

/// One response, or None when the connection ended before any byte of it (the server may
/// close between responses); a response cut short is an error (a torn response).
fn read_whole(s: &mut impl Read) -> Result<Option<Response>, String> {
    let mut first = [0u8; 1];
    match s.read(&mut first) {
        Ok(1) => {}
        _ => return Ok(None),
    }
    let mut rest = std::io::Cursor::new(first).chain(s);
    read_response(&mut rest)
        .map(Some)
        .map_err(|e| format!("torn response: {e}"))
}

/// Clients sending keep-alive requests back to back (HTTP, large and small responses, and
/// one TLS client) until `stop`; each returns how many whole responses it got.
fn hammer(
    srv: &Server,
    stop: &Arc<AtomicBool>,
    got: &Arc<Counts>,
) -> Vec<JoinHandle<Result<u64, String>>> {
    // Its certificate is cached before the load starts.
    assert_gif(&https_get(srv, "warm.hammer.example", "/x.gif").unwrap());
    let mut v = Vec::new();
    for t in 0..3usize {
        let (stop, got, port) = (stop.clone(), got.clone(), srv.http);
        v.push(std::thread::spawn(move || {
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
                    return Ok(n);
                };
                c.set_read_timeout(Some(T)).unwrap();
                loop {
                    let path = if (n + t as u64) % 3 == 0 {
                        "/servstats"
                    } else {
                        "/x.gif"
                    };
                    if c.write_all(get_req(path).as_bytes()).is_err() {
                        break;
                    }
                    match read_whole(&mut c)? {
                        Some(r) => {
                            assert_eq!(r.status, 200);
                            n += 1;
                            got[t].fetch_add(1, Ordering::Relaxed);
                        }
                        None => break,
                    }
                    if stop.load(Ordering::Relaxed) {
                        return Ok(n);
                    }
                }
            }
            Ok(n)
        }));
    }
    let (stop, got, port, ca) = (stop.clone(), got.clone(), srv.https, ca_file(srv));
    v.push(std::thread::spawn(move || {
        let conn = connector(&ca);
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)) else {
                return Ok(n);
            };
            tcp.set_read_timeout(Some(T)).unwrap();
            let Ok(mut s) = conn.connect("load.hammer.example", tcp) else {
                return Ok(n);
            };
            loop {
                if s.write_all(get_req("/x.js").as_bytes()).is_err() {
                    break;
                }
                match read_whole(&mut s)? {
                    Some(_) => {
                        n += 1;
                        got[3].fetch_add(1, Ordering::Relaxed);
                    }
                    None => break,
                }
                if stop.load(Ordering::Relaxed) {
                    return Ok(n);
                }
            }
        }
        Ok(n)
    }));
    v
}

/// Whole responses per hammering client.
type Counts = [AtomicU64; 4];

fn total(got: &Counts) -> u64 {
    got.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

/// Waits until every client got `each` more responses than `since`.
fn wait_count(got: &Counts, since: &[u64; 4], each: u64) {
    let end = Instant::now() + T;
    let behind = || {
        got.iter()
            .zip(since)
            .any(|(c, s)| c.load(Ordering::Relaxed) < s + each)
    };
    while behind() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!behind(), "{got:?}");
}

fn snapshot(got: &Counts) -> [u64; 4] {
    std::array::from_fn(|i| got[i].load(Ordering::Relaxed))
}

#[test]
fn sigterm_under_load_exits_promptly_without_torn_responses() {
    let mut srv = Server::start(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let got: Arc<Counts> = Arc::default();
    let threads = hammer(&srv, &stop, &got);
    wait_count(&got, &[0; 4], 50);
    let t = Instant::now();
    srv.signal(libc::SIGTERM);
    let code = srv.wait_exit(Duration::from_secs(8));
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(4), "exit after {took:?}");
    for t in threads {
        let n = t.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert!(n > 0);
    }
    let prefetch = std::fs::read_to_string(srv.dir.path().join("prefetch")).unwrap();
    assert!(prefetch.starts_with("_.hammer.example\t"), "{prefetch:?}");
    eprintln!("{} responses, exit {took:?} after SIGTERM", total(&got));
}

#[test]
fn sigusr1_fifty_times_under_load() {
    let srv = Server::start(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let got: Arc<Counts> = Arc::default();
    let threads = hammer(&srv, &stop, &got);
    let names: Vec<String> = (0..5).map(|i| format!("n.usr{i}.example")).collect();
    wait_count(&got, &[0; 4], 20);
    let req0 = srv.stat("req");
    for k in 0..50 {
        srv.signal(libc::SIGUSR1);
        if k % 10 == 0 {
            assert_gif(&https_get(&srv, &names[k / 10], "/x.gif").unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_count(&got, &snapshot(&got), 20);
    let req1 = srv.stat("req");
    assert!(req1 > req0, "{req0} -> {req1}");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(srv.count_log(" uts, ") >= 1);
    // One more save after every name was visited, then check the file.
    let lines_before = srv.count_log(" uts, ");
    srv.signal(libc::SIGUSR1);
    let end = Instant::now() + T;
    while srv.count_log(" uts, ") == lines_before && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let prefetch = std::fs::read_to_string(srv.dir.path().join("prefetch")).unwrap();
    assert!(prefetch.ends_with('\n'), "{prefetch:?}");
    let mut files: Vec<&str> = Vec::new();
    for line in prefetch.lines() {
        let (name, count) = line.split_once('\t').unwrap_or_else(|| panic!("{line:?}"));
        count.parse::<u64>().unwrap_or_else(|_| panic!("{line:?}"));
        assert!(!files.contains(&name), "duplicate {name} in {prefetch:?}");
        files.push(name);
    }
    files.sort();
    let mut want: Vec<String> = (0..5).map(|i| format!("_.usr{i}.example")).collect();
    want.push("_.hammer.example".into());
    want.sort();
    assert_eq!(files, want);
    assert_eq!(srv.get("/x.gif").status, 200);
}

// ---------------------------------------------------------------------------------------
// A CA key that cannot be used

/// CERT_PATH with a CA and one certificate made by a first server.
fn ca_and_one_certificate() -> (TempDir, Vec<u8>) {
    let first = Server::start(&[]);
    assert_gif(&https_get(&first, "ads.have.example", "/x.gif").unwrap());
    let dir = TempDir::new("badkey");
    for f in ["ca.crt", "_.have.example"] {
        std::fs::copy(first.dir.path().join(f), dir.path().join(f)).unwrap();
    }
    let key = std::fs::read(first.dir.path().join("ca.key")).unwrap();
    (dir, key)
}

fn assert_cert_only(dir: TempDir, why: &str) {
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    let log = srv.log_text();
    assert!(log.contains("the CA cannot sign certificates: "), "{log}");
    assert!(log.contains(why), "{why}: {log}");
    assert_gif(&https_get(&srv, "www.have.example", "/x.gif").unwrap());
    for i in 0..3 {
        assert!(https_get(&srv, &format!("new.refused{i}.example"), "/x.gif").is_err());
    }
    assert_eq!(srv.wait_stat("slm", T, |v| v >= 3), 3);
    assert_eq!(srv.stat("cgn"), 0);
    assert_eq!(
        cert_files(srv.dir.path()),
        vec!["_.have.example".to_string()]
    );
    assert_gif(&https_get(&srv, "again.have.example", "/x.gif").unwrap());
    assert_eq!(srv.get("/x.gif").status, 200);
}

#[test]
fn ca_key_that_is_a_directory_is_refused() {
    let (dir, _) = ca_and_one_certificate();
    std::fs::create_dir(dir.path().join("ca.key")).unwrap();
    let me = whoami();
    let z = dir.path().to_str().unwrap();
    let (p, k) = (free_port().to_string(), free_port().to_string());
    let args = ["-f", "-u", &me, "-p", &p, "-k", &k, "-z", z, "127.0.0.1"];
    let (code, out) = run_to_exit(&args, Duration::from_secs(5));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("ca.key: not a regular file (directory)"),
        "{out}"
    );
}

#[test]
fn ca_key_with_the_wrong_passphrase() {
    let (dir, key) = ca_and_one_certificate();
    let key = PKey::private_key_from_pem(&key).unwrap();
    let enc = key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"right one")
        .unwrap();
    std::fs::write(dir.path().join("ca.key"), enc).unwrap();
    std::fs::write(dir.path().join("ca.key.passphrase"), b"wrong one\n").unwrap();
    assert_cert_only(dir, "cannot decrypt ca.key");
}
