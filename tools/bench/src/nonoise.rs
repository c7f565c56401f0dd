//! The two figures a shared, noisy machine does not move, for one operation type at a time:
//! system calls per operation (`strace -c -f` attached to the server) and instructions per
//! operation (the server run under callgrind). Both come from short sequential passes of one
//! client, each measured over a window of N and one of 2N operations: the difference
//! divided by N cancels what does not grow with the operations (attaching and detaching,
//! the dump command, the connection set up before the window, the last close).

use crate::conn;
use crate::figures::HANDSHAKE_NAME;
use crate::target::Target;
use openssl::ssl::{SslConnector, SslStream, SslVersion};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Http,
    Https,
    Full,
    Resume12,
    Resume13,
}

pub const OPS: [Op; 5] = [Op::Http, Op::Https, Op::Full, Op::Resume12, Op::Resume13];

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::Http => "HTTP keep-alive request",
            Op::Https => "HTTPS keep-alive request",
            Op::Full => "full TLS 1.3 handshake + GET",
            Op::Resume12 => "resumed TLS 1.2 handshake + GET",
            Op::Resume13 => "TLS 1.3 resumption + GET",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Op::Http => "http",
            Op::Https => "https",
            Op::Full => "full",
            Op::Resume12 => "resume12",
            Op::Resume13 => "resume13",
        }
    }

    /// N of the N / 2N windows. Short: with the paced client the counts repeat to within
    /// 0.1% from run to run, and each handshake under callgrind takes tens of milliseconds.
    pub fn n(self, quick: bool) -> usize {
        let n = match self {
            Op::Http | Op::Https => 100,
            _ => 10,
        };
        if quick {
            n / 2
        } else {
            n
        }
    }
}

/// Waits until the server is idle (every thread asleep: the loop waits for its next event).
fn wait_idle(pid: u32) -> std::io::Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    while !crate::sys::all_threads_sleeping(pid)? {
        if Instant::now() > end {
            return Err(std::io::Error::other("server never idle"));
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    Ok(())
}

/// A client socket that sends everything written since its last read in one write, and
/// only once the server is idle: a flight per write, as a browser sends them (its TLS 1.3
/// Finished and first request together). Without the wait the figures depend on timing, and
/// strace and callgrind change the timing: a server slowed by them finds the client's next
/// flight already there when it reads again after a write, and skips the read that would
/// return EAGAIN and the epoll_wait after it. Paced, every operation sees the server wait
/// for each flight, as it does for a client across a real network, whose round trip is
/// longer than the server's work.
#[derive(Debug)]
struct Paced {
    tcp: TcpStream,
    out: Vec<u8>,
    pid: u32,
}

impl Paced {
    fn connect(addr: SocketAddr, pid: u32) -> Result<Paced, String> {
        wait_idle(pid).map_err(|e| e.to_string())?;
        Ok(Paced {
            tcp: conn::tcp(addr).map_err(|e| format!("connect: {e}"))?,
            out: Vec::new(),
            pid,
        })
    }

    fn send(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            wait_idle(self.pid)?;
            self.tcp.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }
}

impl Read for Paced {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.send()?;
        self.tcp.read(b)
    }
}

impl Write for Paced {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(b);
        Ok(b.len())
    }
    /// OpenSSL flushes after each handshake flight; the flight goes with the next read,
    /// so that a TLS 1.3 Finished and the request after it leave together.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum PConn {
    Plain(Paced),
    Tls(Box<SslStream<Paced>>),
}

impl PConn {
    fn exchange(&mut self, req: &[u8]) -> std::io::Result<u16> {
        match self {
            PConn::Plain(s) => {
                s.write_all(req)?;
                conn::read_response(s)
            }
            PConn::Tls(s) => {
                s.write_all(req)?;
                conn::read_response(s)
            }
        }
    }
}

/// One client doing operations of one type one after another, with everything that is not
/// the operation (the keep-alive connection, the session to resume) set up beforehand.
pub struct Pass {
    op: Op,
    addr: SocketAddr,
    pid: u32,
    connector: SslConnector,
    conn: Option<PConn>,
    session: Option<Vec<u8>>,
    req: Vec<u8>,
}

impl Pass {
    pub fn new(t: &Target, op: Op) -> Result<Pass, String> {
        let max = (op == Op::Resume12).then_some(SslVersion::TLS1_2);
        let mut p = Pass {
            op,
            addr: if op == Op::Http { t.http } else { t.https },
            pid: t.pid.ok_or("no server pid")?,
            connector: conn::load_connector(max)?,
            conn: None,
            session: None,
            req: conn::request(HANDSHAKE_NAME),
        };
        match op {
            Op::Http => p.conn = Some(PConn::Plain(Paced::connect(p.addr, p.pid)?)),
            Op::Https => p.conn = Some(PConn::Tls(Box::new(p.handshake()?))),
            Op::Full => {}
            Op::Resume12 | Op::Resume13 => {
                // The session of a first connection whose response (and so, in TLS 1.3,
                // the tickets before it) has been read.
                let mut c = PConn::Tls(Box::new(p.handshake()?));
                p.check(c.exchange(&p.req))?;
                if let PConn::Tls(s) = &c {
                    p.session = conn::session_of(s.ssl()).0;
                }
            }
        }
        if let Some(c) = p.conn.as_mut() {
            let r = c.exchange(&p.req);
            p.check(r)?;
        }
        Ok(p)
    }

    fn handshake(&self) -> Result<SslStream<Paced>, String> {
        let sock = Paced::connect(self.addr, self.pid)?;
        conn::tls_over(
            &self.connector,
            sock,
            HANDSHAKE_NAME,
            self.session.as_deref(),
        )
    }

    fn check(&self, r: std::io::Result<u16>) -> Result<(), String> {
        match r {
            Ok(200..=299) => Ok(()),
            other => Err(format!("{}: {other:?}", self.op.key())),
        }
    }

    /// `n` operations, one after another.
    pub fn run(&mut self, n: usize) -> Result<(), String> {
        for _ in 0..n {
            if let Some(c) = self.conn.as_mut() {
                let r = c.exchange(&self.req);
                self.check(r)?;
                continue;
            }
            let mut c = PConn::Tls(Box::new(self.handshake()?));
            let r = c.exchange(&self.req);
            self.check(r)?;
            let PConn::Tls(s) = &c else { continue };
            let (next, reused) = conn::session_of(s.ssl());
            if self.op != Op::Full && !reused {
                return Err(format!("{}: session not resumed", self.op.key()));
            }
            if self.op == Op::Resume13 {
                self.session = next.or(self.session.take());
            }
            // The close is paced too: a browser does not hang up the moment the response
            // arrives, so the server has gone back to waiting when the FIN comes.
            wait_idle(self.pid).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Waits until the server has handled what the pass left (the last close): its CPU time
/// stops moving for 100 ms (at most `max`).
fn settle(t: &Target, max: Duration) {
    let end = Instant::now() + max;
    let mut last = t.cpu_us();
    std::thread::sleep(Duration::from_millis(100));
    while Instant::now() < end {
        let now = t.cpu_us();
        if now == last {
            return;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Calls and errors per system call name.
pub type Counts = BTreeMap<String, (f64, f64)>;

/// The `strace -c` summary table: per system call, calls and errors.
fn parse_strace(text: &str) -> Counts {
    let mut out = Counts::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] syscall
        if f.len() < 5 || f[0].starts_with('-') || f[0] == "%" {
            continue;
        }
        let Some(name) = f.last() else { continue };
        if *name == "total" {
            continue;
        }
        let calls: f64 = f[3].parse().unwrap_or(0.0);
        let errors: f64 = if f.len() >= 6 {
            f[4].parse().unwrap_or(0.0)
        } else {
            0.0
        };
        out.insert(name.to_string(), (calls, errors));
    }
    out
}

/// System calls of the server (all threads) while `pass` runs `n` operations.
fn strace_window(t: &Target, pass: &mut Pass, n: usize, out: &Path) -> Result<Counts, String> {
    let pid = t.pid.ok_or("no server pid")?;
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-c", "-o"]).arg(out);
    for p in crate::sys::tree(pid) {
        cmd.args(["-p", &p.to_string()]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    crate::sys::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| format!("strace: {e}"))?;
    // strace says "Process N attached" once every thread is traced.
    let stderr = child.stderr.take().ok_or("strace stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut told = false;
        let mut rest = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !told && line.contains("attached") {
                let _ = tx.send(());
                told = true;
            } else {
                rest.push_str(&line);
                rest.push('\n');
            }
        }
        rest
    });
    let attached = rx.recv_timeout(Duration::from_secs(10)).is_ok();
    let run = if attached {
        pass.run(n).map(|()| settle(t, Duration::from_secs(3)))
    } else {
        Err("strace did not attach".into())
    };
    crate::sys::signal(child.id(), libc::SIGINT);
    let _ = child.wait();
    let msgs = reader.join().unwrap_or_default();
    run.map_err(|e| format!("{e} {msgs}"))?;
    let text = std::fs::read_to_string(out).map_err(|e| format!("strace output: {e}; {msgs}"))?;
    Ok(parse_strace(&text))
}

/// Per operation, from windows of n and 2n.
fn per_op(a: &Counts, b: &Counts, n: usize) -> Counts {
    let mut out = Counts::new();
    for (name, (c2, e2)) in b {
        let (c1, e1) = a.get(name).copied().unwrap_or((0.0, 0.0));
        let calls = (c2 - c1) / n as f64;
        let errors = (e2 - e1) / n as f64;
        if calls.abs() >= 0.05 {
            out.insert(name.clone(), (calls, errors));
        }
    }
    out
}

/// System calls per operation of `op` on a running server, by name.
pub fn syscalls(t: &Target, op: Op, quick: bool, keep: Option<&Path>) -> Result<Counts, String> {
    let n = op.n(quick);
    let mut pass = Pass::new(t, op)?;
    let dir = scratch(keep, t)?;
    let f1 = dir.join(format!("{}-{}-strace-{n}.txt", t.label, op.key()));
    let f2 = dir.join(format!("{}-{}-strace-{}.txt", t.label, op.key(), 2 * n));
    settle(t, Duration::from_secs(3));
    let a = strace_window(t, &mut pass, n, &f1)?;
    let b = strace_window(t, &mut pass, 2 * n, &f2)?;
    if keep.is_none() {
        let _ = std::fs::remove_file(&f1);
        let _ = std::fs::remove_file(&f2);
    }
    Ok(per_op(&a, &b, n))
}

/// Where outputs go: the kept-profiles directory, or the server's own temp directory.
fn scratch(keep: Option<&Path>, t: &Target) -> Result<PathBuf, String> {
    keep.or(t.dir())
        .map(Path::to_path_buf)
        .ok_or_else(|| "no directory for outputs".into())
}

/// valgrind options to start a server under callgrind, dumps in `dir`.
pub fn callgrind_wrapper(dir: &Path, label: &str) -> Vec<String> {
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        format!(
            "--callgrind-out-file={}",
            dir.join(format!("{label}.callgrind.%p")).display()
        ),
        // Forked processes stay under valgrind anyway; this also gives each its own
        // control pipe, so that callgrind_control can reach ours' signer and network process.
        "--trace-children=yes".into(),
        // Each dump names its functions in full, so a kept dump reads on its own.
        "--compress-strings=no".into(),
    ]
}

fn callgrind_control(pid: u32, flag: &str) -> Result<(), String> {
    let out = Command::new("callgrind_control")
        .args([flag, &pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "callgrind_control {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Dumps every process of the tree; the server process's dump (the first) and the total
/// instruction count of all of them.
fn dump_all(dir: &Path, label: &str, pids: &[u32]) -> Result<(PathBuf, u64), String> {
    let mut first = None;
    let mut total = 0;
    for &p in pids {
        callgrind_control(p, "-d")?;
        let (path, n) = last_dump(dir, label, p)?;
        first.get_or_insert(path);
        total += n;
    }
    Ok((first.ok_or("no process")?, total))
}

/// The newest dump part of process `pid` in `dir` and its total instruction count.
fn last_dump(dir: &Path, label: &str, pid: u32) -> Result<(PathBuf, u64), String> {
    let base = format!("{label}.callgrind.{pid}.");
    let newest = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let part: u32 = name.strip_prefix(&base)?.parse().ok()?;
            Some((part, e.path()))
        })
        .max_by_key(|(part, _)| *part)
        .ok_or("no callgrind dump")?
        .1;
    let text = std::fs::read_to_string(&newest).map_err(|e| e.to_string())?;
    let total = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or("callgrind dump without totals")?;
    Ok((newest, total))
}

/// Instructions per operation of `op` on a server running under callgrind (started with
/// `callgrind_wrapper(dir, t.label)`). With `keep`, the N-operation dump is kept there as
/// `<label>-<op>.callgrind` for callgrind_annotate.
pub fn instructions(
    t: &Target,
    op: Op,
    quick: bool,
    dir: &Path,
    keep: Option<&Path>,
) -> Result<f64, String> {
    let pid = t.pid.ok_or("no server pid")?;
    let n = op.n(quick);
    let mut pass = Pass::new(t, op)?;
    settle(t, Duration::from_secs(5));
    // Every process of the tree runs under callgrind (a fork stays under valgrind).
    let pids = crate::sys::tree(pid);
    for &p in &pids {
        callgrind_control(p, "-z")?;
    }
    pass.run(n)?;
    settle(t, Duration::from_secs(5));
    let (first, a) = dump_all(dir, &t.label, &pids)?;
    pass.run(2 * n)?;
    settle(t, Duration::from_secs(5));
    let (_, b) = dump_all(dir, &t.label, &pids)?;
    if let Some(k) = keep {
        let to = k.join(format!("{}-{}-{n}ops.callgrind", t.label, op.key()));
        std::fs::copy(&first, &to).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    Ok((b as f64 - a as f64) / n as f64)
}
