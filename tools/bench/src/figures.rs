//! The measurements. Each returns one `Sample`: named values plus a free-text note.

use crate::conn::{self, Conn};
use crate::sys;
use crate::target::Target;
use openssl::ssl::{SslConnector, SslVersion};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub struct Metric {
    pub name: String,
    pub value: Option<f64>,
    /// Decimal places when printed.
    pub prec: usize,
}

pub struct Sample {
    pub metrics: Vec<Metric>,
    pub note: String,
}

fn m(name: &str, value: Option<f64>, prec: usize) -> Metric {
    Metric {
        name: name.into(),
        value,
        prec,
    }
}

/// SNI names the keep-alive figure spreads its connections over (each its own certificate).
pub fn keepalive_names() -> Vec<String> {
    (0..8).map(|i| format!("www.ka{i}-bench.com")).collect()
}

pub const HANDSHAKE_NAME: &str = "www.hs-bench.com";

/// Never-seen names, each under its own registrable domain so each needs its own certificate.
pub fn fresh_names(count: usize) -> Vec<String> {
    static BATCH: AtomicU64 = AtomicU64::new(0);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let batch = BATCH.fetch_add(1, Relaxed);
    (0..count)
        .map(|i| format!("www.n{stamp:x}-{batch}-{i}.com"))
        .collect()
}

struct Snap {
    at: Instant,
    ops: u64,
    server_us: Option<u64>,
    client_us: u64,
}

fn snap(t: &Target, ops: &AtomicU64) -> Snap {
    Snap {
        at: Instant::now(),
        ops: ops.load(Relaxed),
        server_us: t.cpu_us(),
        client_us: sys::self_cpu_us(),
    }
}

/// Rate, server CPU per operation and the client's own CPU share over a window.
fn window(a: &Snap, b: &Snap, unit: &str, errors: u64) -> Sample {
    let secs = (b.at - a.at).as_secs_f64();
    let ops = (b.ops - a.ops) as f64;
    let cpu = match (a.server_us, b.server_us) {
        (Some(x), Some(y)) if ops > 0.0 => Some((y - x) as f64 / ops),
        _ => None,
    };
    let client = (b.client_us - a.client_us) as f64 / secs / 1e4;
    Sample {
        metrics: vec![
            m(&format!("{unit}/s"), Some(ops / secs), 0),
            m(&format!("server CPU µs/{unit}"), cpu, 1),
        ],
        note: format!("client CPU {client:.0}% of a core; errors {errors}"),
    }
}

/// Releases the clients waiting at `barrier` and snaps the window of `secs` they run in,
/// then tells them to stop.
fn timed_window(
    t: &Target,
    barrier: &Barrier,
    ops: &AtomicU64,
    stop: &AtomicBool,
    secs: f64,
) -> (Snap, Snap) {
    barrier.wait();
    let a = snap(t, ops);
    thread::sleep(Duration::from_secs_f64(secs));
    let b = snap(t, ops);
    stop.store(true, Relaxed);
    (a, b)
}

/// Splits `n` items over `parts` nearly equal chunks.
fn chunk_sizes(n: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|i| n / parts + usize::from(i < n % parts))
        .collect()
}

/// C keep-alive connections, one outstanding request each, for `secs`.
/// Each client thread drives several connections: it writes one request on each, then reads
/// each response, so the client's single core is not spent on thread switches.
pub fn keepalive(
    t: &Target,
    tls: Option<&SslConnector>,
    conns: usize,
    threads: usize,
    secs: f64,
) -> Sample {
    let names = keepalive_names();
    let (stop, ops, errors) = (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0));
    let threads = threads.clamp(1, conns.max(1));
    let barrier = Barrier::new(threads + 1);
    let (a, b) = thread::scope(|s| {
        let mut first = 0;
        for k in chunk_sizes(conns, threads) {
            let (names, stop, ops, errors, barrier) = (&names, &stop, &ops, &errors, &barrier);
            let range = first..first + k;
            first += k;
            s.spawn(move || {
                let mut open: Vec<(Conn, Vec<u8>)> = Vec::new();
                for i in range {
                    let name = &names[i % names.len()];
                    let c = match tls {
                        Some(c) => conn::tls(c, t.https, name, None),
                        None => conn::plain(t.http),
                    };
                    match c {
                        Ok(c) => open.push((c, conn::request(name))),
                        Err(_) => {
                            errors.fetch_add(1, Relaxed);
                        }
                    }
                }
                barrier.wait();
                while !stop.load(Relaxed) && !open.is_empty() {
                    let mut bad = vec![false; open.len()];
                    for (i, (c, req)) in open.iter_mut().enumerate() {
                        bad[i] = std::io::Write::write_all(c, req).is_err();
                    }
                    for (i, (c, _)) in open.iter_mut().enumerate() {
                        bad[i] = bad[i] || !matches!(conn::read_response(c), Ok(200..=299));
                    }
                    let failed = bad.iter().filter(|b| **b).count();
                    ops.fetch_add((open.len() - failed) as u64, Relaxed);
                    if failed > 0 {
                        errors.fetch_add(failed as u64, Relaxed);
                        let mut it = bad.iter();
                        open.retain(|_| !it.next().copied().unwrap_or(true));
                    }
                }
            });
        }
        timed_window(t, &barrier, &ops, &stop, secs)
    });
    window(&a, &b, "req", errors.load(Relaxed))
}

#[derive(Clone, Copy, PartialEq)]
pub enum Handshake {
    Full,
    Resume12,
    Resume13,
}

/// What the handshake clients share.
#[derive(Default)]
struct Tally {
    stop: AtomicBool,
    ops: AtomicU64,
    errors: AtomicU64,
    reused: AtomicU64,
    /// The protocol version of the first connection that completed.
    version: Mutex<String>,
}

/// Fresh connections, each a handshake plus one GET, from `threads` clients for `secs`.
pub fn handshakes(t: &Target, mode: Handshake, threads: usize, secs: f64) -> Sample {
    let max = match mode {
        Handshake::Resume12 => Some(SslVersion::TLS1_2),
        _ => None,
    };
    let connector = match conn::load_connector(max) {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    let tally = Tally::default();
    let barrier = Barrier::new(threads + 1);
    let (a, b) = thread::scope(|s| {
        for _ in 0..threads {
            let (connector, tally, barrier) = (&connector, &tally, &barrier);
            s.spawn(move || handshake_client(t, mode, connector, tally, barrier));
        }
        timed_window(t, &barrier, &tally.ops, &tally.stop, secs)
    });
    let mut out = window(&a, &b, "handshake", tally.errors.load(Relaxed));
    let total = tally.ops.load(Relaxed).max(1);
    let v = tally.version.lock().map(|v| v.clone()).unwrap_or_default();
    out.note = format!(
        "{v}; resumed {:.1}%; {}",
        tally.reused.load(Relaxed) as f64 * 100.0 / total as f64,
        out.note
    );
    out
}

/// One client of `handshakes`: after the barrier, handshake + GET until told to stop (or
/// after too many errors). Resumption modes offer the session of a first connection; TLS 1.3
/// takes each new ticket, TLS 1.2 keeps the first session.
fn handshake_client(
    t: &Target,
    mode: Handshake,
    connector: &SslConnector,
    tally: &Tally,
    barrier: &Barrier,
) {
    let req = conn::request(HANDSHAKE_NAME);
    let mut session = match mode {
        Handshake::Full => None,
        _ => first_session(t, connector, &req),
    };
    barrier.wait();
    while !tally.stop.load(Relaxed) {
        let one =
            conn::tls(connector, t.https, HANDSHAKE_NAME, session.as_deref()).and_then(|mut c| {
                match conn::exchange(&mut c, &req) {
                    Ok(200..=299) => Ok(c),
                    other => Err(format!("{other:?}")),
                }
            });
        let Ok(c) = one else {
            if tally.errors.fetch_add(1, Relaxed) > 10_000 {
                break;
            }
            continue;
        };
        tally.ops.fetch_add(1, Relaxed);
        let (next, was) = conn::session(&c);
        tally.reused.fetch_add(u64::from(was), Relaxed);
        if mode == Handshake::Resume13 {
            session = next.or(session);
        }
        if let (Ok(mut v), Conn::Tls(s)) = (tally.version.lock(), &c) {
            if v.is_empty() {
                *v = s.ssl().version_str().to_string();
            }
        }
    }
}

/// The session of a first connection whose response (and so the TLS 1.3 NewSessionTicket
/// before it) has been read.
fn first_session(t: &Target, connector: &SslConnector, req: &[u8]) -> Option<Vec<u8>> {
    let mut c = conn::tls(connector, t.https, HANDSHAKE_NAME, None).ok()?;
    conn::exchange(&mut c, req).ok()?;
    conn::session(&c).0
}

fn failed(why: &str) -> Sample {
    Sample {
        metrics: Vec::new(),
        note: format!("failed: {why}"),
    }
}

/// Opens `n` keep-alive connections (16 openers), each after one answered request.
pub fn open_idle(t: &Target, tls: Option<&SslConnector>, n: usize) -> (Vec<Vec<Conn>>, u64) {
    let names = keepalive_names();
    let errors = AtomicU64::new(0);
    let groups = thread::scope(|s| {
        let handles: Vec<_> = chunk_sizes(n, 16)
            .into_iter()
            .enumerate()
            .map(|(g, k)| {
                let (names, errors) = (&names, &errors);
                s.spawn(move || {
                    let mut open = Vec::with_capacity(k);
                    for i in 0..k {
                        let name = &names[(g + i) % names.len()];
                        let c = match tls {
                            Some(c) => conn::tls(c, t.https, name, None),
                            None => conn::plain(t.http),
                        };
                        match c.and_then(|mut c| {
                            conn::exchange(&mut c, &conn::request(name))
                                .map(|_| c)
                                .map_err(|e| e.to_string())
                        }) {
                            Ok(c) => open.push(c),
                            Err(_) => {
                                errors.fetch_add(1, Relaxed);
                            }
                        }
                    }
                    open
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    (groups, errors.load(Relaxed))
}

/// Server RSS with `n` idle keep-alive connections, and whether each still answers.
pub fn idle(t: &Target, tls: Option<&SslConnector>, n: usize) -> Sample {
    thread::sleep(Duration::from_millis(500));
    let before = t.rss_kb();
    let (mut groups, open_errors) = open_idle(t, tls, n);
    let open: usize = groups.iter().map(Vec::len).sum();
    thread::sleep(Duration::from_millis(500));
    let with = t.rss_kb();
    let answered: usize = thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter_mut()
            .map(|g| {
                s.spawn(move || {
                    let sent: Vec<bool> = g
                        .iter_mut()
                        .map(|c| {
                            let req = conn::request("idle.bench");
                            std::io::Write::write_all(c, &req).is_ok()
                        })
                        .collect();
                    let mut ok = 0;
                    for (c, sent) in g.iter_mut().zip(sent) {
                        ok += usize::from(sent && matches!(conn::read_response(c), Ok(200..=299)));
                    }
                    ok
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    drop(groups);
    thread::sleep(Duration::from_secs(2));
    let after = t.rss_kb();
    let per = match (before, with) {
        (Some(b), Some(w)) if open > 0 => Some((w as f64 - b as f64) / open as f64),
        _ => None,
    };
    let kb = |v: Option<u64>| v.map(|v| v as f64);
    Sample {
        metrics: vec![
            m("RSS before, kB", kb(before), 0),
            m(&format!("RSS with {n} open, kB"), kb(with), 0),
            m("kB per connection", per, 2),
            m("RSS 2 s after close, kB", kb(after), 0),
            m("second request answered", Some(answered as f64), 0),
        ],
        note: format!("{open} of {n} opened; {open_errors} open errors"),
    }
}

fn pct(v: &mut [Duration], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v.get(i).map(|d| d.as_secs_f64() * 1e3)
}

/// All `names` visited at once, one thread each: total time, first-visit latencies, failures.
fn burst(c: &SslConnector, addr: SocketAddr, names: &[String]) -> (f64, Vec<Duration>, usize) {
    let barrier = Barrier::new(names.len() + 1);
    thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    conn::visit(c, addr, name).map(|d| (d, Instant::now()))
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panic".into())))
            .collect();
        let end = results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|(_, e)| *e))
            .max()
            .unwrap_or(t0);
        let lat: Vec<Duration> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|x| x.0))
            .collect();
        let failures = names.len() - lat.len();
        ((end - t0).as_secs_f64(), lat, failures)
    })
}

fn sequential(c: &SslConnector, addr: SocketAddr, names: &[String]) -> (Vec<Duration>, usize) {
    let lat: Vec<Duration> = names
        .iter()
        .filter_map(|n| conn::visit(c, addr, n).ok())
        .collect();
    let failures = names.len() - lat.len();
    (lat, failures)
}

/// New-name certificate throughput and first-visit latency against cached-name latency.
pub fn names(t: &Target, c: &SslConnector, count: usize) -> Sample {
    let cpu0 = t.cpu_us();
    let (total, mut lat, burst_fail) = burst(c, t.https, &fresh_names(count));
    let cpu = match (cpu0, t.cpu_us()) {
        (Some(a), Some(b)) => Some((b - a) as f64 / count as f64),
        _ => None,
    };
    let cached: Vec<String> = vec![HANDSHAKE_NAME.to_string(); 200];
    let (mut cached_lat, cached_fail) = sequential(c, t.https, &cached);
    let (mut seq, seq_fail) = sequential(c, t.https, &fresh_names(100));
    let worst = seq.iter().max().map(|d| d.as_secs_f64() * 1e3);
    Sample {
        metrics: vec![
            m(
                &format!("{count} new names at once: total ms"),
                Some(total * 1e3),
                1,
            ),
            m("new names/s", Some((count - burst_fail) as f64 / total), 0),
            m("server CPU µs per new name (burst)", cpu, 0),
            m("first visit p50 ms", pct(&mut lat, 50.0), 2),
            m("first visit p99 ms", pct(&mut lat, 99.0), 2),
            m(
                "cached-name visit p50 ms (200 seq.)",
                pct(&mut cached_lat, 50.0),
                2,
            ),
            m("100 sequential new: median ms", pct(&mut seq, 50.0), 2),
            m("100 sequential new: worst ms", worst, 2),
        ],
        note: format!(
            "failures: burst {burst_fail}, cached {cached_fail}, sequential {seq_fail}; \
             verified chain + name"
        ),
    }
}

/// Cached-name latency while `count` new names are being made with `idle_n` idle TLS
/// connections open.
pub fn under_load(
    t: &Target,
    c: &SslConnector,
    load: &SslConnector,
    idle_n: usize,
    count: usize,
) -> Sample {
    let (groups, open_errors) = open_idle(t, Some(load), idle_n);
    let open: usize = groups.iter().map(Vec::len).sum();
    let done = AtomicBool::new(false);
    let ((total, _, fail), mut probe, probe_fail) = thread::scope(|s| {
        let probe = s.spawn(|| {
            let (mut lat, mut fail) = (Vec::new(), 0usize);
            while !done.load(Relaxed) {
                match conn::visit(c, t.https, HANDSHAKE_NAME) {
                    Ok(d) => lat.push(d),
                    Err(_) => fail += 1,
                }
            }
            (lat, fail)
        });
        let r = burst(c, t.https, &fresh_names(count));
        done.store(true, Relaxed);
        let (lat, fail) = probe.join().unwrap_or_default();
        (r, lat, fail)
    });
    drop(groups);
    Sample {
        metrics: vec![
            m("cached-name visit p50 ms", pct(&mut probe, 50.0), 2),
            m("cached-name visit p99 ms", pct(&mut probe, 99.0), 2),
            m("new names/s", Some((count - fail) as f64 / total), 0),
        ],
        note: format!(
            "{open} idle TLS open ({open_errors} errors); {} probe visits, {probe_fail} failed; \
             {fail} new-name failures",
            probe.len()
        ),
    }
}
