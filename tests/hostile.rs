//! Hostile clients against the real binary: floods of silent connections, garbage and
//! truncated TLS records, the wrong protocol on a port, oversized SNI, resets in every
//! connection state, and running out of file descriptors.
mod common;
use common::tls::*;
use common::*;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Raises this process's open-file limit towards `want`; returns the soft limit now in force.
fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if lim.rlim_cur >= want {
        return lim.rlim_cur;
    }
    let up = libc::rlimit {
        rlim_cur: want,
        rlim_max: want.max(lim.rlim_max),
    };
    // SAFETY: valid pointer; raising the hard limit needs root, hence the fallback.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &up) } == 0 {
        return want;
    }
    let capped = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: valid pointer.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) };
    lim.rlim_max
}

/// Sets another process's soft open-file limit (the hard one stays, so it can go back up).
fn set_nofile_of(pid: i32, n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers; a null new-limit pointer only reads.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut lim) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    lim.rlim_cur = n.min(lim.rlim_max);
    // SAFETY: valid pointer; a null old-limit pointer is allowed.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn fds(pid: i32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// User + system CPU time of a process, in seconds.
fn cpu_secs(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f[11] + f[12]) as f64 / hz
}

fn raw(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s
}

/// Closes with RST.
fn reset(s: TcpStream) {
    set_linger_zero(&s);
    drop(s);
}

/// Reads until the peer closes (or resets); returns the bytes and when it ended, or None
/// if it was still open after `timeout`.
fn read_until_closed(s: &mut TcpStream, timeout: Duration) -> Option<(Vec<u8>, Duration)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = timeout.checked_sub(start.elapsed())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some((got, start.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some((got, start.elapsed()))
            }
            Err(_) => return None,
        }
    }
}

/// Deterministic noise (xorshift), so that a failure can be replayed.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn assert_serves(srv: &Server, name: &str) {
    assert_eq!(srv.get("/x.gif").body.len(), 42);
    assert_gif(&https_get(srv, name, "/x.gif").unwrap());
}

// ---------------------------------------------------------------------------------------
// Floods

#[test]
fn thousands_of_silent_connections_do_not_delay_others() {
    const EACH: u64 = 1000;
    let limit = raise_nofile(4 * EACH + 1024);
    let each = EACH.min(limit.saturating_sub(1024) / 4).max(100) as usize;
    if each < EACH as usize {
        eprintln!("open-file limit {limit}: {each} silent connections per port");
    }
    // A connection that never sends a byte gets the header deadline, not -O.
    let srv = Server::start(&[
        "-T",
        "5000",
        "--header-timeout",
        "1",
        "--handshake-timeout",
        "1",
    ]);
    assert_serves(&srv, "warm.silent.example");

    let start = Instant::now();
    let mut silent = Vec::with_capacity(2 * each);
    for _ in 0..each {
        silent.push(raw(srv.http));
        silent.push(raw(srv.https));
    }
    let opened = start.elapsed();
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        assert_serves(&srv, "warm.silent.example");
        worst = worst.max(t.elapsed());
    }
    eprintln!(
        "{} silent connections opened in {opened:?}; slowest HTTP+HTTPS probe meanwhile {worst:?}",
        2 * each
    );
    assert!(worst < Duration::from_millis(1000), "{worst:?}");

    // Every silent one is closed by its deadline (1 s), none later than a few seconds.
    let end = Instant::now() + Duration::from_secs(8);
    for (i, mut s) in silent.into_iter().enumerate() {
        let left = end.saturating_duration_since(Instant::now()) + Duration::from_millis(100);
        assert!(
            closed_within(&mut s, left),
            "connection {i} still open after {:?}",
            start.elapsed()
        );
    }
    let each = each as u64;
    assert!(srv.wait_stat("cls", T, |v| v >= each) >= each);
    assert!(srv.wait_stat("slu", T, |v| v >= each) >= each);
    assert!(srv.stat("tmo") >= each);
    assert_eq!(srv.wait_stat("kcc", T, |v| v == 1), 1);
}

// ---------------------------------------------------------------------------------------
// Garbage on the TLS port

#[test]
fn garbage_and_truncated_tls_records_are_dropped() {
    let srv = Server::start(&["--handshake-timeout", "2"]);
    let hello = client_hello(Some(&sni_body(&[b"cut.garbage.example"])));

    // Silent after a partial record: closed by the handshake deadline, not earlier.
    let mut silent = Vec::new();
    let mut promise = vec![0x16, 0x03, 0x01, 0x40, 0x00];
    promise.extend(noise(1, 100));
    for partial in [&hello[..hello.len() / 2], &promise[..], &hello[..3]] {
        let mut s = raw(srv.https);
        s.write_all(partial).unwrap();
        silent.push((s, Instant::now()));
    }

    // Garbage, or a record cut short by EOF: refused at once.
    let mut garbage_record = vec![0x16, 0x03, 0x01, 0x00, 0xc8];
    garbage_record.extend(noise(2, 200));
    let mut app_data_first = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    app_data_first.extend(noise(3, 32));
    let mut overflow = vec![0x16, 0x03, 0x01, 0xff, 0xff];
    overflow.extend(noise(4, 1000));
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("noise", noise(5, 300), false),
        ("random body after a valid header", garbage_record, false),
        ("application data first", app_data_first, false),
        ("record longer than 16 KiB", overflow, false),
        (
            "16 KiB promised, then EOF",
            vec![0x16, 0x03, 0x01, 0x40, 0x00],
            true,
        ),
        (
            "ClientHello cut, then EOF",
            hello[..hello.len() / 2].to_vec(),
            true,
        ),
        (
            "ClientHello then garbage",
            [hello.clone(), noise(6, 64)].concat(),
            false,
        ),
    ];
    let n_cases = cases.len() as u64;
    for (what, bytes, eof) in cases {
        let mut s = raw(srv.https);
        let _ = s.write_all(&bytes);
        if eof {
            s.shutdown(Shutdown::Write).unwrap();
        }
        let (answer, took) =
            read_until_closed(&mut s, Duration::from_secs(5)).unwrap_or_else(|| {
                panic!("{what}: still open after 5 s");
            });
        assert!(
            took < Duration::from_millis(1500),
            "{what}: closed after {took:?}"
        );
        // At most an alert record, or (ClientHello first) a ServerHello flight then an alert.
        assert!(
            answer.is_empty() || answer[0] == 0x15 || answer[0] == 0x16,
            "{what}: answered {:02x?}",
            &answer[..answer.len().min(8)]
        );
        assert_serves(&srv, "ok.garbage.example");
    }
    for (i, (mut s, sent)) in silent.into_iter().enumerate() {
        assert!(closed_within(&mut s, Duration::from_secs(6)), "silent {i}");
        let after = sent.elapsed();
        assert!(
            after >= Duration::from_millis(1500),
            "silent {i} cut after {after:?}"
        );
    }
    let n = n_cases + 3;
    assert!(srv.wait_stat("slu", T, |v| v >= n) >= n);
    assert!(!srv.dir.path().join("_.garbage.example").exists() || srv.stat("cgn") == 1);
    assert_serves(&srv, "ok.garbage.example");
}

#[test]
fn the_wrong_protocol_on_each_port() {
    let srv = Server::start(&[]);
    // A whole ClientHello (binary, NULs) on the HTTP port: 400, closed, counted bad.
    let mut c = raw(srv.http);
    c.write_all(&client_hello(Some(&sni_body(&[b"a.example.com"]))))
        .unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 400, "{}", r.status_line);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(closed_within(&mut c, Duration::from_secs(3)));
    assert_eq!(srv.stat("bad"), 1);

    // Plain HTTP on the TLS port: a failed handshake (slu), never an HTTP answer.
    for raw_req in [
        &b"GET /x.gif HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
        b"\r\n\r\n",
    ] {
        let mut s = raw(srv.https);
        s.write_all(raw_req).unwrap();
        // `\r\n\r\n` is shorter than a TLS record header: that one waits for the 5 s
        // handshake deadline, so the client must wait longer than that.
        let (answer, _) = read_until_closed(&mut s, Duration::from_secs(10)).expect("closed");
        assert!(
            !answer.starts_with(b"HTTP/"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(srv.wait_stat("slu", T, |v| v >= 3), 3);
    assert_serves(&srv, "still.wrong.example");
}

#[test]
fn huge_sni_in_a_fragmented_client_hello_is_refused() {
    let srv = Server::start(&[]);
    // The record splitter works: a ClientHello padded over several records still succeeds.
    // (12 KB: AWS-LC takes ClientHellos up to 16 KiB, OpenSSL larger ones too.)
    let padded = hello_message(
        Some(&sni_body(&[b"padded.huge.example"])),
        &ext(21, &vec![0; 12_000]),
    );
    let mut s = raw(srv.https);
    s.write_all(&records(&padded, 4096)).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert_eq!(b[0], 0x16, "no ServerHello for a fragmented ClientHello");
    drop(s);

    // One 16 KiB host name (labels of 63), and a list of 400 names.
    let label = "a".repeat(63);
    let mut long = String::new();
    while long.len() < 16_000 {
        long.push_str(&label);
        long.push('.');
    }
    long.push_str("com");
    let many: Vec<String> = (0..400).map(|i| format!("n{i}.many.example")).collect();
    let many: Vec<&[u8]> = many.iter().map(|n| n.as_bytes()).collect();
    for (what, sni) in [
        ("16 KiB name", sni_body(&[long.as_bytes()])),
        ("400 names", sni_body(&many)),
    ] {
        assert!(sni.len() >= 6000, "{what}: {}", sni.len());
        let mut s = raw(srv.https);
        s.write_all(&records(&hello_message(Some(&sni), &[]), 16384))
            .unwrap();
        let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).expect("closed");
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "{what}: answered {:02x?}",
            &answer[..answer.len().min(8)]
        );
    }
    assert!(srv.wait_stat("slu", T, |v| v >= 2) >= 2);
    assert!(srv.stat("snx") >= 2);
    assert_eq!(srv.stat("cgn"), 1);
    assert_eq!(
        cert_files(srv.dir.path()),
        vec!["_.huge.example".to_string()]
    );
    // An internationalised name in its ASCII (punycode) form is an ordinary name.
    assert_serves(&srv, "xn--bcher-kva.example.com");
    assert!(srv.dir.path().join("_.example.com").exists());
}

// ---------------------------------------------------------------------------------------
// Resets

#[test]
fn reset_in_every_connection_state() {
    // RSA leaf keys: the first one takes a while, so resets land while it is being made.
    let srv = Server::start(&["--leaf-key", "rsa"]);
    let ca = ca_file(&srv);
    let conn = connector(&ca);

    // During the handshake: part of a ClientHello.
    let hello = client_hello(Some(&sni_body(&[b"part.rst.example"])));
    for _ in 0..5 {
        let mut s = raw(srv.https);
        s.write_all(&hello[..40]).unwrap();
        reset(s);
    }
    // After a whole ClientHello for a new name, while its certificate is being made;
    // ten names, and ten times one name.
    for i in 0..10 {
        let name = format!("x.rst{i}.example");
        let mut s = raw(srv.https);
        s.write_all(&client_hello(Some(&sni_body(&[name.as_bytes()]))))
            .unwrap();
        reset(s);
        let mut s = raw(srv.https);
        s.write_all(&client_hello(Some(&sni_body(&[b"same.rstsame.example"]))))
            .unwrap();
        reset(s);
    }
    assert_serves(&srv, "first.rst.example");
    // Those names work on their first real visit.
    for i in 0..10 {
        assert_gif(&https_get(&srv, &format!("y.rst{i}.example"), "/x.gif").unwrap());
    }
    assert_gif(&https_get(&srv, "other.rstsame.example", "/x.gif").unwrap());

    // After the handshake, before a request; and mid-request.
    for partial in [&b""[..], b"GET /x.gif HTTP/1.1\r\nHo"] {
        for _ in 0..5 {
            let mut s = conn.connect("z.rst1.example", tcp(srv.https)).unwrap();
            if !partial.is_empty() {
                s.write_all(partial).unwrap();
                s.flush().unwrap();
            }
            set_linger_zero(s.get_ref());
            drop(s);
        }
    }
    assert_serves(&srv, "z.rst2.example");

    // Mid-response of large responses (the stats page), plain and TLS.
    let stats = get_req("/servstats").repeat(200);
    for _ in 0..5 {
        let mut c = srv.connect();
        c.write_all(stats.as_bytes()).unwrap();
        let mut some = [0u8; 3000];
        c.read_exact(&mut some).unwrap();
        reset(c);

        let mut s = conn.connect("big.rst3.example", tcp(srv.https)).unwrap();
        s.write_all(get_req("/servstats").repeat(50).as_bytes())
            .unwrap();
        s.read_exact(&mut some).unwrap();
        set_linger_zero(s.get_ref());
        drop(s);
    }
    assert_serves(&srv, "after.rst4.example");
    // Nothing leaked: only the stats connection itself is open.
    assert_eq!(srv.wait_stat("kcc", T, |v| v == 1), 1);
    assert_eq!(srv.stat("cgf"), 0);
}

// ---------------------------------------------------------------------------------------
// Out of file descriptors

#[test]
fn descriptor_exhaustion_neither_spins_nor_stops_serving() {
    let srv = Server::start(&["-T", "5000"]);
    let pid = srv.network_pid();
    let mut held: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut c = srv.connect();
            assert_eq!(exchange(&mut c, &get_req("/x.gif")).body.len(), 42);
            c
        })
        .collect();
    // The server raises its own limit at startup (as root even the hard one), so the limit
    // is lowered from outside afterwards, to room for a few more connections. The limit
    // bounds descriptor numbers (a new one is the lowest free number; inherited ones such
    // as cargo's jobserver pipe may sit far above).
    let open = fds(pid);
    let lowest_free = (0..).find(|n| !open.contains(n)).unwrap();
    let limit = lowest_free + 4;
    set_nofile_of(pid, limit);
    let room = (limit - open.iter().filter(|&&n| n < limit).count() as u64) as usize;

    let mut extra: Vec<TcpStream> = (0..40)
        .map(|_| {
            let c = srv.connect();
            (&c).write_all(get_req("/y.gif").as_bytes()).unwrap();
            c
        })
        .collect();
    for (i, c) in extra.iter_mut().take(room).enumerate() {
        let r = read_response(c).unwrap_or_else(|e| panic!("extra {i}: {e}"));
        assert_eq!(r.body.len(), 42);
    }
    assert!(srv.wait_log("Too many open files", T), "{}", srv.log_text());

    // Two seconds of EMFILE pressure: the listener stays readable; the loop must not spin.
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    for c in held.iter_mut() {
        assert_eq!(exchange(c, &get_req("/x.gif")).body.len(), 42);
    }
    std::thread::sleep(Duration::from_secs(1));
    let cpu = cpu_secs(pid) - cpu0;
    eprintln!(
        "server CPU over {:?} of EMFILE pressure: {cpu:.3} s; {} 'accept' log lines",
        t0.elapsed(),
        srv.count_log("Too many open files")
    );
    assert!(cpu < 0.5, "accept loop spins: {cpu:.3} s CPU in 2 s");
    // The queued ones were not accepted meanwhile.
    assert!(silent_for(&mut extra[room], Duration::from_millis(100)));

    // Closing some frees room: that many queued connections are accepted and served.
    for c in held.drain(..room) {
        drop(c);
    }
    for (i, c) in extra.iter_mut().enumerate().skip(room).take(room) {
        let r = read_response(c).unwrap_or_else(|e| panic!("extra {i} after closes: {e}"));
        assert_eq!(r.body.len(), 42);
    }
    // With the limit back up, every queued connection is served.
    set_nofile_of(pid, 4096);
    drop(held);
    for (i, c) in extra.iter_mut().enumerate().skip(2 * room) {
        let r = read_response(c).unwrap_or_else(|e| panic!("extra {i} after raise: {e}"));
        assert_eq!(r.body.len(), 42);
    }
    assert_eq!(srv.stat("clt"), 0);
}
