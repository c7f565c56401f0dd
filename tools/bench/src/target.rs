//! The server under test: ours or a peer (nginx, HAProxy) that we start on free loopback
//! ports with its own temporary directory, or a running one.

use crate::sys;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Target {
    /// "ours", "nginx", "haproxy": the column the figures go to.
    pub label: String,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub cacert: PathBuf,
    /// Known only when we started it or `--pid` was given; without it CPU/RSS are not measured.
    pub pid: Option<u32>,
    child: Option<Child>,
    tmp: Option<PathBuf>,
    /// How long a started server may take to exit on SIGTERM before it is killed.
    grace: Duration,
}

/// What a start attempt runs: the command (not yet spawned) and the CA file to wait for.
pub struct Spawn {
    pub cmd: Command,
    pub cacert: PathBuf,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn user_name() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "nobody".into())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn temp_prefix() -> String {
    format!("pixelserv-bench-{}-", std::process::id())
}

/// Removes every temporary directory this run made (on a signal: a normal run removes each
/// with its server).
pub fn remove_temp_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let prefix = temp_prefix();
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A fresh temporary directory for one started server.
pub fn temp_dir(label: &str) -> Result<PathBuf, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "{}{label}-{}",
        temp_prefix(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// `cmd` with `wrapper` (e.g. valgrind and its options) in front of it.
pub fn wrapped(wrapper: &[String], bin: &Path) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            // Valgrind's tools write their dumps from inside the process, which the network
            // process's system-call filter refuses (include-docs/SECURITY.md, "Processes").
            if first.ends_with("valgrind") {
                c.env("PIXELSERV_SECCOMP", "off");
            }
            c
        }
        None => Command::new(bin),
    }
}

/// Copies the regular files of `from` into `to`.
fn copy_files(from: &Path, to: &Path) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", from.display());
    for e in std::fs::read_dir(from).map_err(err)? {
        let e = e.map_err(err)?;
        if e.file_type().map_err(err)?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).map_err(err)?;
        }
    }
    Ok(())
}

impl Target {
    pub fn running(http: u16, https: u16, cacert: PathBuf, pid: Option<u32>) -> Target {
        Target {
            label: "ours".into(),
            http: loopback(http),
            https: loopback(https),
            cacert,
            pid,
            child: None,
            tmp: None,
            grace: Duration::from_secs(3),
        }
    }

    /// Starts our server `bin` (behind `wrapper` when not empty) and waits until both ports
    /// accept connections and the CA exists. `seed`: files copied into its CERT_PATH first
    /// (a CA and certificates it then loads from disk instead of making them).
    pub fn start(
        bin: &Path,
        max_conns: usize,
        extra: &[String],
        wrapper: &[String],
        seed: Option<&Path>,
    ) -> Result<Target, String> {
        let tmp = temp_dir("ours")?;
        Target::launch("ours", tmp, !wrapper.is_empty(), |dir, http, https| {
            let certs = dir.join("certs");
            let _ = std::fs::remove_dir_all(&certs);
            std::fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
            if let Some(from) = seed {
                copy_files(from, &certs)?;
            }
            let mut cmd = wrapped(wrapper, bin);
            cmd.args(["-f", "-u", &user_name(), "-l", "1"])
                .args(["-T", &max_conns.to_string()])
                .args(["-p", &http.to_string(), "-k", &https.to_string()])
                .arg("-z")
                .arg(&certs)
                .args(extra)
                .arg("127.0.0.1");
            Ok(Spawn {
                cmd,
                cacert: certs.join("ca.crt"),
            })
        })
    }

    /// Picks two free ports, asks `make` for the command to run in `tmp` (which it may
    /// prepare), starts it with its stderr in `tmp/server.log` and waits until it serves.
    /// Three tries: a port picked free may be taken before the server binds it.
    pub fn launch(
        label: &str,
        tmp: PathBuf,
        slow: bool,
        mut make: impl FnMut(&Path, u16, u16) -> Result<Spawn, String>,
    ) -> Result<Target, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match Target::try_launch(label, &tmp, slow, &mut make) {
                Ok(Ok(mut t)) => {
                    t.tmp = Some(tmp);
                    return Ok(t);
                }
                // Did not come up: maybe a port picked free was taken meanwhile.
                Ok(Err(why)) => last = why,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
        Err(format!("{label} did not start: {last}"))
    }

    /// One start: Err when it cannot even be tried, Ok(Err) when it did not come up.
    fn try_launch(
        label: &str,
        dir: &Path,
        slow: bool,
        make: &mut impl FnMut(&Path, u16, u16) -> Result<Spawn, String>,
    ) -> Result<Result<Target, String>, String> {
        let (http, https) = (
            free_port().map_err(|e| e.to_string())?,
            free_port().map_err(|e| e.to_string())?,
        );
        let mut spawn = make(dir, http, https)?;
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        spawn
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        sys::die_with_parent(&mut spawn.cmd);
        let child = spawn
            .cmd
            .spawn()
            .map_err(|e| format!("{:?}: {e}", spawn.cmd.get_program()))?;
        let mut t = Target {
            label: label.into(),
            http: loopback(http),
            https: loopback(https),
            cacert: spawn.cacert,
            pid: Some(child.id()),
            child: Some(child),
            tmp: None,
            // Under valgrind, startup and the final profile dump take seconds.
            grace: Duration::from_secs(if slow { 20 } else { 3 }),
        };
        let ready = Duration::from_secs(if slow { 120 } else { 15 });
        Ok(t.wait_ready(ready).map(|()| t).map_err(|e| {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            format!("{e}; log:\n{log}")
        }))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!("exited: {st}"));
                }
            }
            let up = |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_millis(200));
            if up(&self.http).is_ok() && up(&self.https).is_ok() && self.cacert.exists() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not listening after {} s", timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ok while a server we started still runs (a running one we did not start: always Ok).
    pub fn alive(&mut self) -> Result<(), String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => Err(format!("exited: {st}")),
            Some(Err(e)) => Err(e.to_string()),
            _ => Ok(()),
        }
    }

    /// What a server we started wrote to its stderr so far.
    pub fn log(&self) -> String {
        self.tmp
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("server.log")).ok())
            .unwrap_or_default()
    }

    /// The temporary directory of a server we started.
    pub fn dir(&self) -> Option<&Path> {
        self.tmp.as_deref()
    }

    pub fn cpu_us(&self) -> Option<u64> {
        self.pid.and_then(|p| sys::proc_cpu_us(p).ok())
    }

    pub fn rss_kb(&self) -> Option<u64> {
        self.pid.and_then(|p| sys::proc_rss_kb(p).ok())
    }

    /// Stops a server we started (SIGTERM, then SIGKILL) and removes its temp directory.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sys::signal(c.id(), libc::SIGTERM);
            let deadline = Instant::now() + self.grace;
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(t) = self.tmp.take() {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}
