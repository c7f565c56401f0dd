//! Process lifecycle of the real binary: command line, signals, startup failures, IPv6.
mod common;
use common::*;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary with `args` (stdin closed) and returns its output; kills it after 10 s.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

#[test]
fn bad_command_lines_exit_1_naming_the_option() {
    let cases: [(&[&str], &str); 8] = [
        (&["-c", "abc"], "-c"),
        (&["-c", "0"], "-c"),
        (&["-l", "9"], "-l"),
        (&["-f", "-p"], "-p"),
        (&["1.2.3.4", "5.6.7.8"], "listen address"),
        (&["-x"], "-x"),
        (&["-p", "70000"], "-p"),
        (&["-O", "-3"], "-O"),
    ];
    for (args, needle) in cases {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or("");
        assert!(first.contains(needle), "{args:?}: first line {first:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn help_and_version() {
    let out = run(&["-h"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Usage: pixelserv-tls"), "{text}");
    assert!(text.contains("-z  CERT_PATH"), "{text}");

    let out = run(&["-v"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("pixelserv-tls "), "{text}");
}

#[test]
fn unknown_user_is_a_clear_error() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the user is only looked up as root; skipped");
        return;
    }
    let dir = TempDir::new("user");
    let port = free_port().to_string();
    let out = run(&[
        "-f",
        "-u",
        "no-such-user-pxs",
        "-p",
        &port,
        "-k",
        &free_port().to_string(),
        "-z",
        &dir.path().display().to_string(),
        "127.0.0.1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no-such-user-pxs"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn assert_serves(srv: &Server) {
    let r = srv.get("/x.gif");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 42);
}

#[test]
fn sigusr1_logs_stats_and_writes_prefetch() {
    let srv = Server::start(&[]);
    assert_serves(&srv);
    let prefetch = srv.dir.path().join("prefetch");
    assert!(!prefetch.exists());
    let st = srv.stats_by_signal();
    assert_eq!(stat_in(&st, "gif"), 1);
    let end = Instant::now() + Duration::from_secs(5);
    while !prefetch.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(prefetch.exists());
    assert_serves(&srv);
}

#[test]
fn sighup_keeps_serving() {
    let srv = Server::start(&[]);
    srv.signal(libc::SIGHUP);
    assert!(srv.wait_log("SIGHUP", Duration::from_secs(5)));
    assert_serves(&srv);
    assert_serves(&srv);
}

fn terminate_with(sig: i32, name: &str) {
    let mut srv = Server::start(&[]);
    assert_serves(&srv);
    srv.signal(sig);
    assert_eq!(srv.wait_exit(Duration::from_secs(5)), Some(0));
    // The stderr reader may lag the exit slightly.
    assert!(srv.wait_log(&format!("exit on {name}"), Duration::from_secs(5)));
    assert!(srv.wait_log(" uts, ", Duration::from_secs(1)));
    assert!(srv.dir.path().join("prefetch").exists());
}

#[test]
fn sigterm_exits_0_after_saving() {
    terminate_with(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_exits_0_after_saving() {
    terminate_with(libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_with_a_response_in_flight_exits_promptly() {
    let mut srv = Server::start(&[]);
    let c = srv.connect();
    let mut w = c.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = w.write_all(get_req("/servstats").repeat(2000).as_bytes());
    });
    let mut c = c;
    for _ in 0..100 {
        read_response(&mut c).unwrap();
    }
    let t = Instant::now();
    srv.signal(libc::SIGTERM);
    let code = srv.wait_exit(Duration::from_secs(6));
    assert_eq!(code, Some(0));
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    drop(c);
}

#[test]
fn port_in_use_aborts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = TempDir::new("inuse");
    let out = run(&[
        "-f",
        "-u",
        &whoami(),
        "-p",
        &port,
        "-k",
        &free_port().to_string(),
        "-z",
        &dir.path().display().to_string(),
        "127.0.0.1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Abort:"), "{err}");
    assert!(err.contains(&port), "{err}");
}

#[test]
fn listens_on_ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback: skipped");
        return;
    }
    let srv = Server::start(&["::1"]);
    let mut c = TcpStream::connect(("::1", srv.http)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = exchange(&mut c, &get_req("/x.gif"));
    assert_eq!(r.body.len(), 42);
    assert!(srv.wait_log(
        "::1 test GET /x.gif HTTP/1.1 tls_none",
        Duration::from_secs(5)
    ));
}
