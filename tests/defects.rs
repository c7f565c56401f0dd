//! Small checks for defects of the original (COMPATIBILITY.md §12) that no other test observes;
//! include-docs/DEFECTS.md maps every defect to its test.
mod common;
use common::tls::*;
use common::*;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// DEFECTS.md #20: serials were `rand()` seeded with the time (31 bits, repeatable).
#[test]
fn serials_are_unique_and_at_least_64_bits() {
    let srv = Server::start(&[]);
    let mut serials = Vec::new();
    for i in 0..20 {
        let s = tls_connect(&srv, &format!("a.serial{i}.example")).unwrap();
        let bn = s
            .ssl()
            .peer_certificate()
            .unwrap()
            .serial_number()
            .to_bn()
            .unwrap();
        // Random 128-bit serials: fewer than 64 significant bits is a 2^-64 event.
        assert!(bn.num_bits() >= 64, "{} bits", bn.num_bits());
        serials.push(bn.to_hex_str().unwrap().to_string());
    }
    let mut unique = serials.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20, "{serials:?}");
}

/// DEFECTS.md #9: a stale shared start time made `tav` grow with every plain-HTTP request.
#[test]
fn timing_statistics_do_not_drift() {
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    for _ in 0..3 {
        let mut all = String::new();
        for _ in 0..1000 {
            all.push_str(&get_req("/x.gif"));
        }
        c.write_all(all.as_bytes()).unwrap();
        for _ in 0..1000 {
            read_response(&mut c).unwrap();
        }
    }
    let st = srv.stats();
    let tav: f64 = st
        .iter()
        .find(|(n, _)| n == "tav")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!(tav < 5.0, "tav {tav} ms after 3000 trivial requests");
    assert_eq!(stat_in(&st, "gif"), 3000);
}

/// DEFECTS.md #24: format strings with missing or swapped arguments.
#[test]
fn log_lines_have_no_format_residue() {
    let dir = TempDir::new("logfmt");
    std::fs::write(dir.path().join("_.broken.example"), b"not a pem").unwrap();
    let srv = Server::start_with(Options {
        args: vec!["-l".into(), "5".into()],
        dir: Some(dir),
    });
    assert_gif(&https_get(&srv, "a.broken.example", "/x.gif").unwrap());
    assert_gif(&https_get(&srv, "b.fresh.example", "/x.gif").unwrap());
    let _ = https_get(&srv, "bad/name.example", "/x.gif");
    let mut c = TcpStream::connect(("127.0.0.1", srv.https)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let _ = std::io::Read::read_to_end(&mut c, &mut Vec::new());
    srv.get("/x.gif");
    srv.signal(libc::SIGUSR1);
    assert!(srv.wait_log(" uts, ", T));
    assert!(srv.wait_log("replacing unusable certificate _.broken.example", T));
    let log = srv.log_text();
    for bad in ["%s", "%d", "%u", "(null)", "{}", "{:?}"] {
        assert!(!log.contains(bad), "{bad:?} in\n{log}");
    }
    assert!(
        log.lines().all(|l| l.starts_with("pixelserv-tls[")),
        "{log}"
    );
}

/// DEFECTS.md #32: `1000 × -O` overflowed a 32-bit int (negative above 2147483 s). The largest
/// accepted value (a week) works; larger ones are refused with a clear message.
#[test]
fn huge_keepalive_time_is_accepted_without_overflow() {
    let out = Command::new(BIN)
        .args(["-f", "-O", "4294968"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("option -O"));
    let srv = Server::start(&["-O", "604800"]);
    let mut c = srv.connect();
    assert_gif(&exchange(&mut c, &get_req("/x.gif")));
    // Neither closed at once (a negative wait) nor broken.
    assert!(silent_for(&mut c, Duration::from_millis(500)));
    assert_gif(&exchange(&mut c, &get_req("/x.gif")));
}

/// DEFECTS.md #12: a missing CERT_PATH crashed the original at startup.
#[test]
fn missing_cert_path_is_created() {
    let parent = TempDir::new("mkdir");
    let dir = parent.path().join("not").join("there");
    let srv = Server::start(&["-z", dir.to_str().unwrap()]);
    assert!(dir.join("ca.crt").exists());
    let s = TcpStream::connect(("127.0.0.1", srv.https)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut s = connector(&dir.join("ca.crt"))
        .connect("x.mkdir.example", s)
        .unwrap();
    assert_gif(&request(&mut s, "/x.gif", true));
    assert!(dir.join("_.mkdir.example").exists());
}

/// DEFECTS.md #35: SIGUSR2 killed the original without saving; it now saves like SIGUSR1.
#[test]
fn sigusr2_saves_and_keeps_serving() {
    let srv = Server::start(&[]);
    assert_gif(&https_get(&srv, "a.usr2.example", "/x.gif").unwrap());
    srv.signal(libc::SIGUSR2);
    assert!(srv.wait_log(" uts, ", T));
    let prefetch = srv.dir.path().join("prefetch");
    let end = Instant::now() + T;
    while !prefetch.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(std::fs::read_to_string(&prefetch)
        .unwrap()
        .starts_with("_.usr2.example\t"));
    assert_eq!(srv.get("/x.gif").body.len(), 42);
}

/// DEFECTS.md #13: `setuid` alone kept gid 0 and root's supplementary groups.
#[test]
fn privileges_are_dropped_completely() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: skipped");
        return;
    }
    let Some((uid, gid)) = nobody() else {
        eprintln!("no user nobody: skipped");
        return;
    };
    // CERT_PATH as root makes it (ca.key is read before the switch).
    let srv = Server::start(&["-u", "nobody"]);
    // Serving means the switch (after binding, before the loop) is done.
    assert_eq!(srv.get("/x.gif").body.len(), 42);
    // The monitor, the network process and the signer alike.
    for pid in [srv.pid(), srv.network_pid(), srv.signer_pid()] {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| -> Vec<String> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        assert_eq!(field("Uid:"), vec![uid.to_string(); 4], "{status}");
        assert_eq!(field("Gid:"), vec![gid.to_string(); 4], "{status}");
        assert!(!field("Groups:").contains(&"0".to_string()), "{status}");
    }
    assert_eq!(srv.get("/x.gif").body.len(), 42);
}

fn nobody() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("nobody:"))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// DEFECTS.md #33: a relative `-z` was resolved against `/` after daemonizing.
#[test]
fn relative_cert_path_survives_daemonizing() {
    let cwd = TempDir::new("relz");
    let (http, https) = (free_port(), free_port());
    let status = Command::new(BIN)
        .current_dir(cwd.path())
        .args(["-u", &whoami(), "-p", &http.to_string(), "-k"])
        .arg(https.to_string())
        .args(["-z", "certs", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the launching parent exits 0");
    let pid = daemon_pid(http).expect("the daemon runs");
    let crt = cwd.path().join("certs").join("ca.crt");
    let end = Instant::now() + T;
    let mut served = None;
    while Instant::now() < end {
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", http)) {
            c.set_read_timeout(Some(T)).unwrap();
            served = Some(exchange(&mut c, &get_req("/ca.crt")));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let r = served.expect("daemon answers");
    assert_eq!(r.body, std::fs::read(&crt).unwrap());
    assert!(!std::path::Path::new("/certs/ca.crt").exists() || crt.exists());
}

/// The daemon we started: the process whose command line holds our unique HTTP port.
fn daemon_pid(http: u16) -> Option<i32> {
    let want = http.to_string();
    let end = Instant::now() + T;
    while Instant::now() < end {
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
            let ours = args.first().is_some_and(|a| a.ends_with(b"pixelserv-tls"))
                && args
                    .windows(2)
                    .any(|w| w[0] == b"-p" && w[1] == want.as_bytes());
            if ours {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}
