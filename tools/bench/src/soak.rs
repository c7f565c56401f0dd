//! Soak mode: mixed traffic at a bounded rate for a given time, one line of server resource
//! figures a minute, then a summary. It asserts nothing: it prints, people judge.

use crate::conn::{self, Conn};
use crate::figures;
use crate::sys;
use crate::target::Target;
use openssl::ssl::{SslConnector, SslVersion};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Never-seen names visited per second (each makes a new certificate).
const NAMES_PER_SEC: f64 = 2.0;
/// Requests per pipelined batch.
const BATCH: usize = 10;
/// Error messages echoed to stderr, in full, before only the counts go on.
const ECHO_ERRORS: u64 = 30;
/// An idle connection still open this long after its last request is reported.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
const STATS_COUNTERS: [&str; 7] = ["req", "kcc", "sct", "cgn", "slu", "cls", "tmo"];

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    reqs: AtomicU64,
    errs: AtomicU64,
    conns: AtomicU64,
    resume_tried: AtomicU64,
    resumed: AtomicU64,
    err_kinds: Mutex<BTreeMap<String, u64>>,
    /// Seconds from last activity to the server's close, per kind of idle connection.
    idle_close: Mutex<BTreeMap<&'static str, Vec<f64>>>,
    name_ms: Mutex<Vec<f64>>,
}

impl Shared {
    fn ok(&self, n: u64) {
        self.reqs.fetch_add(n, Relaxed);
    }

    fn fail(&self, kind: &str, msg: &str) {
        let n = self.errs.fetch_add(1, Relaxed);
        if n < ECHO_ERRORS {
            eprintln!("soak error [{kind}]: {msg}");
        }
        if let Ok(mut m) = self.err_kinds.lock() {
            *m.entry(kind.to_string()).or_default() += 1;
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }
}

/// Calls `f` `rate` times a second until stopped; a late call is not made up in a burst.
fn paced(sh: &Shared, rate: f64, mut f: impl FnMut()) {
    if rate <= 0.0 {
        return;
    }
    let step = Duration::from_secs_f64(1.0 / rate);
    let mut next = Instant::now();
    while !sh.stopped() {
        f();
        next += step;
        let now = Instant::now();
        if next > now {
            // Short sleeps so a stop is seen within 200 ms.
            thread::sleep((next - now).min(Duration::from_millis(200)));
            while Instant::now() < next && !sh.stopped() {
                thread::sleep((next - Instant::now()).min(Duration::from_millis(200)));
            }
        } else if now - next > Duration::from_secs(1) {
            next = now;
        }
    }
}

/// Closes with RST instead of FIN (SO_LINGER 0), as a crashed or impatient client does.
fn reset(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd owned by `s`; the option value is a live linger of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn sock(c: &Conn) -> &TcpStream {
    match c {
        Conn::Plain(s) => s,
        Conn::Tls(s) => s.get_ref(),
    }
}

/// Parses one whole response at the start of `buf`: (status, its length, body range).
fn parse_one(buf: &[u8]) -> Option<io::Result<(u16, usize, usize)>> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let Some(status) = head.split(' ').nth(1).and_then(|c| c.parse().ok()) else {
        return Some(Err(io::Error::other("bad status line")));
    };
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    (buf.len() >= head_end + len).then_some(Ok((status, head_end, head_end + len)))
}

/// Reads one response, keeping bytes of later (pipelined) responses in `buf`.
fn read_one<S: Read>(s: &mut S, buf: &mut Vec<u8>) -> io::Result<(u16, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(r) = parse_one(buf) {
            let (status, body_start, end) = r?;
            let body = buf.get(body_start..end).unwrap_or_default().to_vec();
            buf.drain(..end);
            return Ok((status, body));
        }
        if buf.len() > 256 * 1024 {
            return Err(io::Error::other("response too long"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn get(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pixelserv-soak\r\n\r\n")
        .into_bytes()
}

/// The body of `path` on a fresh plain connection.
fn fetch(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut c = conn::plain(addr)?;
    c.write_all(&get(path, "soak.stats"))
        .map_err(|e| e.to_string())?;
    match read_one(&mut c, &mut Vec::new()) {
        Ok((200, body)) => Ok(String::from_utf8_lossy(&body).into_owned()),
        Ok((s, _)) => Err(format!("status {s}")),
        Err(e) => Err(e.to_string()),
    }
}

/// "12 req, 3 kcc, ..." → the named counters (n/a when missing).
fn stats_fields(text: &str) -> Vec<String> {
    let mut found = BTreeMap::new();
    for item in text.split([',', '\n']) {
        let mut w = item.split_whitespace();
        if let (Some(v), Some(k), None) = (w.next(), w.next(), w.next()) {
            found.insert(k.to_string(), v.to_string());
        }
    }
    STATS_COUNTERS
        .iter()
        .map(|k| found.get(*k).cloned().unwrap_or_else(|| "n/a".into()))
        .collect()
}

/// Keep-alive connections, round robin, each replaced after `per_conn` requests (churn).
fn keepalive(sh: &Shared, t: &Target, tls: Option<&SslConnector>, n: usize, rate: f64) {
    let names = figures::keepalive_names();
    let kind = if tls.is_some() { "https-ka" } else { "http-ka" };
    let open = |i: usize| match tls {
        Some(c) => conn::tls(c, t.https, &names[i % names.len()], None),
        None => conn::plain(t.http),
    };
    let mut conns: Vec<Option<(Conn, u32)>> = (0..n).map(|_| None).collect();
    let mut i = 0;
    paced(sh, rate, || {
        i = (i + 1) % n;
        let slot = &mut conns[i];
        if slot.is_none() {
            match open(i) {
                Ok(c) => {
                    sh.conns.fetch_add(1, Relaxed);
                    *slot = Some((c, 0));
                }
                Err(e) => return sh.fail(kind, &format!("open: {e}")),
            }
        }
        let Some((c, used)) = slot.as_mut() else {
            return;
        };
        match conn::exchange(c, &conn::request(&names[i % names.len()])) {
            Ok(200..=299) => {
                sh.ok(1);
                *used += 1;
                if *used >= 500 {
                    *slot = None;
                }
            }
            Ok(s) => {
                sh.fail(kind, &format!("status {s}"));
                *slot = None;
            }
            Err(e) => {
                sh.fail(kind, &e.to_string());
                *slot = None;
            }
        }
    });
}

/// One connection, one request, client closes.
fn short(sh: &Shared, t: &Target, rate: f64) {
    let mut i = 0u64;
    paced(sh, rate, || {
        i += 1;
        let host = format!("www.short{}-soak.com", i % 50);
        let r = conn::plain(t.http).and_then(|mut c| {
            sh.conns.fetch_add(1, Relaxed);
            conn::exchange(&mut c, &conn::request(&host)).map_err(|e| e.to_string())
        });
        match r {
            Ok(200..=299) => sh.ok(1),
            Ok(s) => sh.fail("http-short", &format!("status {s}")),
            Err(e) => sh.fail("http-short", &e),
        }
    });
}

/// Short-lived TLS connections, alternating TLS 1.2 and 1.3; full handshakes, or resumptions
/// of the session (1.3: newest ticket) of the previous connection.
fn tls_short(sh: &Shared, t: &Target, resume: bool, rate: f64) -> Result<(), String> {
    let c12 = conn::load_connector(Some(SslVersion::TLS1_2))?;
    let c13 = conn::load_connector(None)?;
    let mut sess: [Option<Vec<u8>>; 2] = [None, None];
    let kind = if resume { "tls-resume" } else { "tls-full" };
    let mut i = 0usize;
    paced(sh, rate, || {
        i += 1;
        let v = i % 2;
        let c = if v == 0 { &c12 } else { &c13 };
        let name = format!("www.hs{}-soak.com", i % 4);
        let offer = if resume { sess[v].as_deref() } else { None };
        let mut k = match conn::tls(c, t.https, &name, offer) {
            Ok(k) => k,
            Err(e) => return sh.fail(kind, &e),
        };
        sh.conns.fetch_add(1, Relaxed);
        match conn::exchange(&mut k, &conn::request(&name)) {
            Ok(200..=299) => sh.ok(1),
            Ok(s) => return sh.fail(kind, &format!("status {s}")),
            Err(e) => return sh.fail(kind, &e.to_string()),
        }
        if resume {
            let (next, reused) = conn::session(&k);
            if offer.is_some() {
                sh.resume_tried.fetch_add(1, Relaxed);
                sh.resumed.fetch_add(u64::from(reused), Relaxed);
            }
            sess[v] = next;
        }
    });
    Ok(())
}

/// Never-seen names, each a first visit verified against the CA.
fn new_names(sh: &Shared, t: &Target) -> Result<(), String> {
    let verify = conn::verifying_connector(&t.cacert)?;
    paced(sh, NAMES_PER_SEC, || {
        let name = figures::fresh_names(1).pop().unwrap_or_default();
        match conn::visit(&verify, t.https, &name) {
            Ok(d) => {
                sh.ok(1);
                sh.conns.fetch_add(1, Relaxed);
                if let Ok(mut v) = sh.name_ms.lock() {
                    v.push(d.as_secs_f64() * 1e3);
                }
            }
            Err(e) => sh.fail("new-name", &format!("{name}: {e}")),
        }
    });
    Ok(())
}

/// Abrupt and odd endings: RST right after connect, RST mid-request, RST after a TLS
/// handshake, a graceful close without a request, a close before reading the response.
fn churn(sh: &Shared, t: &Target, rate: f64) -> Result<(), String> {
    let load = conn::load_connector(None)?;
    let mut i = 0usize;
    paced(sh, rate, || {
        i += 1;
        let step = i % 5;
        let c = if step == 2 || step == 4 {
            conn::tls(&load, t.https, "www.churn-soak.com", None)
        } else {
            conn::plain(t.http)
        };
        let mut c = match c {
            Ok(c) => c,
            Err(e) => return sh.fail("churn", &e),
        };
        sh.conns.fetch_add(1, Relaxed);
        match step {
            0 => reset(sock(&c)),
            1 => {
                let _ = c.write_all(b"GET /half.gif HTTP/1.1\r\nHost: www.ch");
                reset(sock(&c));
            }
            2 => reset(sock(&c)),
            3 => {}
            _ => {
                let _ = c.write_all(&conn::request("www.churn-soak.com"));
            }
        }
    });
    Ok(())
}

/// Pipelined batches on plain and TLS connections, alternately.
fn pipeline(sh: &Shared, t: &Target, rate: f64) -> Result<(), String> {
    let load = conn::load_connector(None)?;
    let mut i = 0usize;
    paced(sh, rate, || {
        i += 1;
        let c = if i % 2 == 0 {
            conn::tls(&load, t.https, "www.pipe-soak.com", None)
        } else {
            conn::plain(t.http)
        };
        let mut c = match c {
            Ok(c) => c,
            Err(e) => return sh.fail("pipeline", &e),
        };
        sh.conns.fetch_add(1, Relaxed);
        let batch: Vec<u8> = (0..BATCH)
            .flat_map(|k| get(&format!("/p{k}.gif"), "www.pipe-soak.com"))
            .collect();
        if let Err(e) = c.write_all(&batch) {
            return sh.fail("pipeline", &format!("write: {e}"));
        }
        let mut buf = Vec::new();
        for k in 0..BATCH {
            match read_one(&mut c, &mut buf) {
                Ok((200..=299, _)) => sh.ok(1),
                Ok((s, _)) => return sh.fail("pipeline", &format!("#{k}: status {s}")),
                Err(e) => return sh.fail("pipeline", &format!("#{k}: {e}")),
            }
        }
    });
    Ok(())
}

/// Connections left idle until the server closes them (keep-alive timeout `-O`):
/// after a request (plain, TLS), with no request at all (plain), after a bare TLS handshake.
fn idle(sh: &Shared, t: &Target, rate: f64) -> Result<(), String> {
    const KINDS: [&str; 4] = [
        "plain after request",
        "TLS after request",
        "plain, no request",
        "TLS, no request",
    ];
    let load = conn::load_connector(None)?;
    let mut open: Vec<(Conn, Instant, &'static str)> = Vec::new();
    let mut i = 0usize;
    let tick = 5.0;
    let mut t_open = 0.0;
    paced(sh, tick, || {
        // Poll every 200 ms; open a new idle connection `rate` times a second.
        t_open += rate / tick;
        if t_open >= 1.0 {
            t_open -= 1.0;
            i += 1;
            let kind = KINDS[i % KINDS.len()];
            let tls = kind.starts_with("TLS");
            let c = if tls {
                conn::tls(&load, t.https, "www.idle-soak.com", None)
            } else {
                conn::plain(t.http)
            };
            match c {
                Ok(mut c) => {
                    sh.conns.fetch_add(1, Relaxed);
                    let ok = if kind.contains("after") {
                        match conn::exchange(&mut c, &conn::request("www.idle-soak.com")) {
                            Ok(200..=299) => {
                                sh.ok(1);
                                true
                            }
                            Ok(s) => {
                                sh.fail("idle", &format!("status {s}"));
                                false
                            }
                            Err(e) => {
                                sh.fail("idle", &e.to_string());
                                false
                            }
                        }
                    } else {
                        true
                    };
                    if ok && sock(&c).set_nonblocking(true).is_ok() {
                        open.push((c, Instant::now(), kind));
                    }
                }
                Err(e) => sh.fail("idle", &e),
            }
        }
        let mut byte = [0u8; 64];
        open.retain_mut(|(c, since, kind)| {
            // A non-blocking read (through TLS, so session tickets are consumed, not taken
            // for a close): EOF, close_notify, data or an error all mean the idle wait ended.
            let closed = match c.read(&mut byte) {
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
                Ok(_) => true,
            };
            let waited = since.elapsed();
            if closed {
                if let Ok(mut m) = sh.idle_close.lock() {
                    m.entry(kind).or_default().push(waited.as_secs_f64());
                }
                return false;
            }
            if waited > IDLE_LIMIT {
                sh.fail(
                    "idle",
                    &format!("{kind}: still open after {} s", IDLE_LIMIT.as_secs()),
                );
                return false;
            }
            true
        });
    });
    Ok(())
}

/// Occasional stats pages (HTML and text).
fn stats_pages(sh: &Shared, t: &Target, rate: f64) {
    let mut i = 0usize;
    paced(sh, rate, || {
        i += 1;
        let path = if i % 2 == 0 {
            "/servstats"
        } else {
            "/servstats.txt"
        };
        match fetch(t.http, path) {
            Ok(_) => sh.ok(1),
            Err(e) => sh.fail("stats", &format!("{path}: {e}")),
        }
    });
}

struct Minute {
    rss: Option<u64>,
    fds: Option<u64>,
}

fn fd_count(pid: Option<u32>) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{}/fd", pid?)).ok()?;
    Some(dir.count() as u64)
}

fn threads(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

fn range(v: &[Option<u64>], scale: f64, prec: usize) -> String {
    let v: Vec<u64> = v.iter().flatten().copied().collect();
    match (v.iter().min(), v.iter().max(), v.last()) {
        (Some(a), Some(b), Some(l)) => format!(
            "min {:.p$}, max {:.p$}, last {:.p$}",
            *a as f64 / scale,
            *b as f64 / scale,
            *l as f64 / scale,
            p = prec
        ),
        _ => "n/a".into(),
    }
}

/// One table row of server figures.
fn report(sh: &Shared, t: &Target, start: Instant, last_reqs: &mut (u64, Instant)) -> Minute {
    let reqs = sh.reqs.load(Relaxed);
    let now = Instant::now();
    let rate = (reqs - last_reqs.0) as f64 / (now - last_reqs.1).as_secs_f64().max(1e-3);
    *last_reqs = (reqs, now);
    let m = Minute {
        rss: t.rss_kb(),
        fds: fd_count(t.pid),
    };
    let counters = match fetch(t.http, "/servstats.txt") {
        Ok(text) => stats_fields(&text),
        Err(e) => {
            eprintln!("soak: stats fetch: {e}");
            vec!["n/a".into(); STATS_COUNTERS.len()]
        }
    };
    println!(
        "| {:.1} | {reqs} | {rate:.0} | {} | {} | {} | {} | {} | {} |",
        start.elapsed().as_secs_f64() / 60.0,
        sh.errs.load(Relaxed),
        sh.conns.load(Relaxed),
        opt(m.rss),
        opt(m.fds),
        opt(threads(t.pid)),
        counters.join(" | ")
    );
    m
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

/// Runs the soak for `minutes` at about `rate` requests a second in total.
pub fn run(t: &Target, minutes: f64, rate: f64) -> Result<(), String> {
    let sh = Arc::new(Shared::default());
    let r = rate.max(10.0);
    eprintln!(
        "soak: {minutes} min at about {r:.0} requests/s (+ {NAMES_PER_SEC} new names/s), \
         http {} https {}, server pid {}; load average {}",
        t.http,
        t.https,
        opt(t.pid.map(u64::from)),
        sys::loadavg()
    );
    println!(
        "| min | requests | req/s | errors | conns | RSS kB | fds | threads | {} |",
        STATS_COUNTERS.join(" | ")
    );
    println!("|{}", "---:|".repeat(8 + STATS_COUNTERS.len()));
    let start = Instant::now();
    let mut last = (0, start);
    let mut mins = vec![report(&sh, t, start, &mut last)];
    let load = conn::load_connector(None)?;
    let end = start + Duration::from_secs_f64(minutes * 60.0);
    thread::scope(|s| -> Result<(), String> {
        let sh = &*sh;
        let load = &load;
        // Shares of the total rate; connection-level churn and idle come on top (no requests).
        for _ in 0..2 {
            s.spawn(move || keepalive(sh, t, None, 4, r * 0.15));
            s.spawn(move || keepalive(sh, t, Some(load), 4, r * 0.13));
        }
        s.spawn(move || short(sh, t, r * 0.15));
        let tls = [
            s.spawn(move || tls_short(sh, t, false, r * 0.08)),
            s.spawn(move || tls_short(sh, t, true, r * 0.08)),
            s.spawn(move || new_names(sh, t)),
            s.spawn(move || churn(sh, t, r * 0.04)),
            s.spawn(move || pipeline(sh, t, r * 0.05 / BATCH as f64)),
            s.spawn(move || idle(sh, t, 1.0)),
        ];
        s.spawn(move || stats_pages(sh, t, 0.1));
        // The last row is taken at the end, while the traffic still runs.
        let mut next = start + Duration::from_secs(60);
        loop {
            let now = Instant::now();
            let wake = next.min(end);
            if wake > now {
                thread::sleep((wake - now).min(Duration::from_millis(500)));
                continue;
            }
            mins.push(report(sh, t, start, &mut last));
            if wake >= end {
                break;
            }
            next += Duration::from_secs(60);
        }
        sh.stop.store(true, Relaxed);
        for h in tls {
            h.join().map_err(|_| "soak thread panicked".to_string())??;
        }
        Ok(())
    })?;
    summary(&sh, &mins, start);
    Ok(())
}

fn summary(sh: &Shared, mins: &[Minute], start: Instant) {
    let rss: Vec<Option<u64>> = mins.iter().map(|m| m.rss).collect();
    let fds: Vec<Option<u64>> = mins.iter().map(|m| m.fds).collect();
    let reqs = sh.reqs.load(Relaxed);
    let errs = sh.errs.load(Relaxed);
    let secs = start.elapsed().as_secs_f64();
    println!();
    println!(
        "Summary: {:.1} min, {reqs} requests ({:.0}/s), {} connections, {errs} errors; load average {}",
        secs / 60.0,
        reqs as f64 / secs,
        sh.conns.load(Relaxed),
        sys::loadavg()
    );
    println!("- RSS MB: {}", range(&rss, 1024.0, 1));
    println!("- fds: {}", range(&fds, 1.0, 0));
    if let Ok(m) = sh.err_kinds.lock() {
        let list: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "- errors by kind: {}",
            if list.is_empty() {
                "none".into()
            } else {
                list.join(", ")
            }
        );
    }
    let tried = sh.resume_tried.load(Relaxed);
    println!(
        "- resumptions: {} of {tried} offered sessions resumed",
        sh.resumed.load(Relaxed)
    );
    if let Ok(mut v) = sh.name_ms.lock() {
        let n = v.len();
        println!(
            "- new names: {n} visited, first visit p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(&mut v, 0.5),
            pct(&mut v, 0.99),
            pct(&mut v, 1.0)
        );
    }
    if let Ok(mut m) = sh.idle_close.lock() {
        for (kind, v) in m.iter_mut() {
            println!(
                "- idle {kind}: {} closed by the server after {:.1}–{:.1} s (median {:.1})",
                v.len(),
                pct(v, 0.0),
                pct(v, 1.0),
                pct(v, 0.5)
            );
        }
    }
    let mb = |v: &[Option<u64>], f: fn(&u64, &u64) -> std::cmp::Ordering| {
        v.iter()
            .flatten()
            .copied()
            .max_by(f)
            .map(|x| x as f64 / 1024.0)
    };
    let low = mb(&rss, |a, b| b.cmp(a)).unwrap_or(f64::NAN);
    let high = mb(&rss, u64::cmp).unwrap_or(f64::NAN);
    let f: Vec<u64> = fds.iter().flatten().copied().collect();
    println!(
        "Verdict: RSS range {low:.1}–{high:.1} MB, fds range {}–{}, {errs} errors in {reqs} requests",
        opt(f.iter().min().copied()),
        opt(f.iter().max().copied())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields its parts one read at a time, as a socket might.
    struct Parts(Vec<Vec<u8>>);
    impl Read for Parts {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let p = self.0.remove(0);
            b[..p.len()].copy_from_slice(&p);
            Ok(p.len())
        }
    }

    #[test]
    fn pipelined_responses_split_anywhere() {
        let all = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 204 No\r\n\r\n";
        for cut in 1..all.len() {
            let mut r = Parts(vec![all[..cut].to_vec(), all[cut..].to_vec()]);
            let mut buf = Vec::new();
            assert_eq!(read_one(&mut r, &mut buf).unwrap(), (200, b"abc".to_vec()));
            assert_eq!(read_one(&mut r, &mut buf).unwrap(), (204, Vec::new()));
            assert!(read_one(&mut r, &mut buf).is_err());
        }
    }

    #[test]
    fn bad_status_and_short_body_are_errors() {
        let mut r = Parts(vec![b"HTTP/1.1 abc\r\n\r\n".to_vec()]);
        assert!(read_one(&mut r, &mut Vec::new()).is_err());
        let mut r = Parts(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab".to_vec()
        ]);
        assert!(read_one(&mut r, &mut Vec::new()).is_err());
    }

    #[test]
    fn stats_line_counters() {
        let f = stats_fields("v\n93 uts, 10 log, 20 kcc, 62 req, 5 sct, 1 cgn\n");
        assert_eq!(f, ["62", "20", "5", "1", "n/a", "n/a", "n/a"]);
    }
}
