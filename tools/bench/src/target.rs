//! The server under test: one we start (free loopback ports, own CERT_PATH) or a running one.

use crate::sys;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Target {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub cacert: PathBuf,
    /// Known only when we started it or `--pid` was given; without it CPU/RSS are not measured.
    pub pid: Option<u32>,
    child: Option<Child>,
    tmp: Option<PathBuf>,
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

impl Target {
    pub fn running(http: u16, https: u16, cacert: PathBuf, pid: Option<u32>) -> Target {
        Target {
            http: loopback(http),
            https: loopback(https),
            cacert,
            pid,
            child: None,
            tmp: None,
        }
    }

    /// Starts `bin` and waits until both ports accept connections and the CA exists.
    pub fn start(bin: &Path, max_conns: usize, extra: &[String]) -> Result<Target, String> {
        let tmp = std::env::temp_dir().join(format!("pixelserv-bench-{}", std::process::id()));
        let mut last = String::new();
        for _ in 0..3 {
            let _ = std::fs::remove_dir_all(&tmp);
            let certs = tmp.join("certs");
            std::fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
            let log = std::fs::File::create(tmp.join("server.log")).map_err(|e| e.to_string())?;
            let (http, https) = (
                free_port().map_err(|e| e.to_string())?,
                free_port().map_err(|e| e.to_string())?,
            );
            let mut args: Vec<String> = vec![
                "-f".into(),
                "-u".into(),
                user_name(),
                "-l".into(),
                "1".into(),
                "-T".into(),
                max_conns.to_string(),
                "-p".into(),
                http.to_string(),
                "-k".into(),
                https.to_string(),
                "-z".into(),
                certs.display().to_string(),
            ];
            args.extend(extra.iter().cloned());
            args.push("127.0.0.1".into());
            let child = Command::new(bin)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            let mut t = Target {
                http: loopback(http),
                https: loopback(https),
                cacert: certs.join("ca.crt"),
                pid: Some(child.id()),
                child: Some(child),
                tmp: Some(tmp.clone()),
            };
            match t.wait_ready() {
                Ok(()) => return Ok(t),
                Err(e) => {
                    let log = std::fs::read_to_string(tmp.join("server.log")).unwrap_or_default();
                    last = format!("{e}; server log:\n{log}");
                    t.stop();
                }
            }
        }
        Err(format!("server did not start: {last}"))
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!("server exited: {st}"));
                }
            }
            let up = |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_millis(200));
            if up(&self.http).is_ok() && up(&self.https).is_ok() && self.cacert.exists() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("not listening after 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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
            let deadline = Instant::now() + Duration::from_secs(3);
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
