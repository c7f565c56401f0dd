//! Test harness: starts the real `pixelserv-tls` binary on free loopback ports with its own
//! CERT_PATH, waits until it listens (readiness, not sleeps) and stops it at the end.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod tls;

pub const BIN: &str = env!("CARGO_BIN_EXE_pixelserv-tls");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("pxs-test-{}-{}-{}", tag, std::process::id(), n));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port that was free a moment ago (the kernel picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub child: Child,
    pub http: u16,
    pub https: u16,
    pub dir: TempDir,
    /// Every line the server wrote to stderr so far (it runs with -f, which echoes logs).
    pub log: Arc<Mutex<Vec<String>>>,
}

#[derive(Default)]
pub struct Options {
    pub args: Vec<String>,
    /// Use this CERT_PATH instead of a fresh one.
    pub dir: Option<TempDir>,
}

impl Server {
    /// Starts the server with `-f -u <me> -l 4 -p HTTP -k HTTPS -z DIR 127.0.0.1` plus `extra`.
    pub fn start(extra: &[&str]) -> Server {
        Self::start_with(Options {
            args: extra.iter().map(|s| s.to_string()).collect(),
            dir: None,
        })
    }

    pub fn start_with(opts: Options) -> Server {
        for attempt in 0..5 {
            // A given dir is owned by the server from now on: `opts` must not remove it.
            let dir = match &opts.dir {
                Some(d) => TempDir(d.0.clone()),
                None => TempDir::new("srv"),
            };
            let http = free_port();
            let https = free_port();
            match Self::try_start(&opts.args, dir, http, https) {
                Ok(s) => {
                    if let Some(d) = opts.dir {
                        std::mem::forget(d);
                    }
                    return s;
                }
                Err((dir, why)) => {
                    // Port raced with another test: try others. Keep a given dir alive.
                    if opts.dir.is_some() {
                        std::mem::forget(dir);
                    }
                    if attempt == 4 {
                        panic!("server did not start: {why}");
                    }
                }
            }
        }
        unreachable!()
    }

    fn try_start(
        extra: &[String],
        dir: TempDir,
        http: u16,
        https: u16,
    ) -> Result<Server, (TempDir, String)> {
        let user = whoami();
        let mut args: Vec<String> = vec![
            "-f".into(),
            "-u".into(),
            user,
            "-l".into(),
            "4".into(),
            "-p".into(),
            http.to_string(),
            "-k".into(),
            https.to_string(),
            "-z".into(),
            dir.path().display().to_string(),
        ];
        args.extend(extra.iter().cloned());
        if !extra
            .iter()
            .any(|a| a.parse::<std::net::IpAddr>().is_ok() || a == "localhost")
        {
            args.push("127.0.0.1".into());
        }
        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pixelserv-tls");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut ready_sent = false;
                let mut listening = 0;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("Listening on") {
                        listening += 1;
                    }
                    log.lock().unwrap().push(line);
                    if !ready_sent && listening >= 2 {
                        ready_sent = true;
                        let _ = tx.send(());
                    }
                }
            });
        }
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(()) => Ok(Server {
                child,
                http,
                https,
                dir,
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let lines = log.lock().unwrap().join("\n");
                Err((dir, lines))
            }
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a log line containing `needle` appears.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.http)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// One request on a fresh connection; returns the whole response (server closes or
    /// the `Connection: close` we send makes it close).
    pub fn get(&self, path: &str) -> Response {
        let mut s = self.connect();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        read_response(&mut s).expect("response")
    }

    /// The text stats line parsed into (name, value) pairs.
    pub fn stats(&self) -> Vec<(String, String)> {
        let r = self.get("/servstats.txt");
        parse_stats(&String::from_utf8_lossy(&r.body))
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.stats()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.parse::<f64>().unwrap() as u64)
            .unwrap_or_else(|| panic!("no counter {name}"))
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn whoami() -> String {
    let uid = unsafe { libc::geteuid() };
    let pw = unsafe { libc::getpwuid(uid) };
    assert!(!pw.is_null());
    unsafe { std::ffi::CStr::from_ptr((*pw).pw_name) }
        .to_string_lossy()
        .into_owned()
}

pub fn parse_stats(body: &str) -> Vec<(String, String)> {
    let line = body.lines().nth(1).unwrap_or("");
    line.trim_end()
        .split(", ")
        .filter_map(|item| {
            let (v, n) = item.split_once(' ')?;
            Some((n.to_string(), v.to_string()))
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub status_line: String,
    /// Header lines exactly as received, in order.
    pub headers: Vec<(String, String)>,
    pub head_raw: Vec<u8>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response framed by its Content-Length (all of ours have one).
/// For HEAD pass `head_only = true` via `read_response_opts`.
pub fn read_response(s: &mut impl Read) -> std::io::Result<Response> {
    read_response_opts(s, false)
}

pub fn read_response_opts(s: &mut impl Read, head_only: bool) -> std::io::Result<Response> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("eof after {:?}", String::from_utf8_lossy(&head)),
            ));
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().unwrap())
        .expect("every response has Content-Length");
    let mut body = vec![0u8; if head_only { 0 } else { len }];
    s.read_exact(&mut body)?;
    Ok(Response {
        status,
        status_line,
        headers,
        head_raw: head,
        body,
    })
}

/// True when the peer closed the connection (EOF) within `timeout`.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0))
        || matches!(s.read(&mut buf), Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

impl Server {
    /// Takes CERT_PATH away from this server so that it outlives it (for a restart).
    pub fn take_dir(&mut self) -> TempDir {
        std::mem::replace(&mut self.dir, TempDir(PathBuf::new()))
    }

    /// Polls the stats until `name` satisfies `ok`; returns the last value.
    pub fn wait_stat(&self, name: &str, timeout: Duration, ok: impl Fn(u64) -> bool) -> u64 {
        let end = Instant::now() + timeout;
        loop {
            let v = self.stat(name);
            if ok(v) || Instant::now() >= end {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs a command with `input` on stdin; kills it after `timeout`. Returns stdout + stderr.
pub fn run_with_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> String {
    run_child(cmd.stdin(Stdio::piped()), Some(input), timeout).1
}

/// Runs the server binary with `args` until it exits or `timeout` passes (then it is
/// killed): its exit code (None if killed) and everything it printed.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    run_child(
        Command::new(BIN).args(args).stdin(Stdio::null()),
        None,
        timeout,
    )
}

/// Spawns `cmd`, feeds it `input` (then EOF), waits at most `timeout` (then kills it): its
/// exit code (None if killed) and its stdout then stderr.
fn run_child(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let writer = input.map(|input| {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        // Dropping stdin at the end sends EOF.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let r_out = drain(Box::new(child.stdout.take().unwrap()));
    let r_err = drain(Box::new(child.stderr.take().unwrap()));
    let end = Instant::now() + timeout;
    let mut code = None;
    while Instant::now() < end {
        if let Ok(Some(status)) = child.try_wait() {
            code = status.code();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if code.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    if let Some(w) = writer {
        let _ = w.join();
    }
    let mut text = String::from_utf8_lossy(&r_out.join().unwrap()).into_owned();
    text.push_str(&String::from_utf8_lossy(&r_err.join().unwrap()));
    (code, text)
}

/// A request head for `path` on a keep-alive HTTP/1.1 connection.
pub fn get_req(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Writes `raw` and reads one response from the same connection.
pub fn exchange(s: &mut TcpStream, raw: &str) -> Response {
    s.write_all(raw.as_bytes()).unwrap();
    read_response(s).unwrap_or_else(|e| panic!("no response to {raw:?}: {e}"))
}

/// True when nothing at all arrives within `timeout` and the connection stays open.
pub fn silent_for(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut b = [0u8; 1];
    let r = s.read(&mut b);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    matches!(r, Err(ref e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// Value of counter `name` in parsed stats.
pub fn stat_in(stats: &[(String, String)], name: &str) -> u64 {
    stats
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.parse::<f64>().unwrap() as u64)
        .unwrap_or_else(|| panic!("no counter {name}"))
}

/// Closes with RST instead of FIN.
pub fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid socket fd and a correctly sized, initialised linger struct.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

impl Server {
    /// One keep-alive request on a fresh connection (TEXT responses then carry
    /// `Connection: keep-alive`, as on a browser's connection).
    pub fn get_keepalive(&self, path: &str) -> Response {
        exchange(&mut self.connect(), &get_req(path))
    }

    /// The monitor: the process started, which the init scripts see.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The network process (the monitor's child with the event loop's epoll descriptor).
    pub fn network_pid(&self) -> i32 {
        self.child_pid(true)
    }

    /// The signer process (the monitor's other child).
    pub fn signer_pid(&self) -> i32 {
        self.child_pid(false)
    }

    fn child_pid(&self, network: bool) -> i32 {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let kids = children_of(self.pid());
            if kids.len() == 2 {
                if let Some(&p) = kids.iter().find(|&&p| has_epoll(p) == network) {
                    return p;
                }
            }
            assert!(
                Instant::now() < end,
                "no network and signer process under {}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident set size of the network process in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.network_pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The stats line the server logs on SIGUSR1 (works when no HTTP port serves stats).
    pub fn stats_by_signal(&self) -> Vec<(String, String)> {
        let before = self.count_log(" uts, ");
        self.signal(libc::SIGUSR1);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            let lines: Vec<String> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(" uts, "))
                .cloned()
                .collect();
            if lines.len() > before {
                let line = lines.last().unwrap();
                let at = line.find(": ").map_or(0, |i| i + 2);
                return parse_stats(&format!("\n{}", &line[at..]));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no stats line after SIGUSR1");
    }

    /// Polls the stats until counter `name` satisfies `ok`; returns its last value.
    pub fn wait_stat_until(&self, name: &str, ok: impl Fn(u64) -> bool, timeout: Duration) -> u64 {
        let end = Instant::now() + timeout;
        loop {
            let v = self.stat(name);
            if ok(v) || Instant::now() >= end {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Processes whose parent is `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: the command name may hold spaces and parentheses.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if after.split_whitespace().nth(1).and_then(|v| v.parse().ok()) == Some(pid) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Whether `pid` holds an epoll descriptor (the network process's event loop does).
pub fn has_epoll(pid: i32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten().any(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy().contains("eventpoll"))
            })
        })
        .unwrap_or(false)
}
