//! The servers ours is compared with: Debian's nginx (`nginx-core`) and HAProxy, started
//! from the configuration templates in tools/bench/peers/ with the same certificates and
//! the same GIF as ours.

use crate::conn;
use crate::sys;
use crate::target::{self, Spawn, Target};
use openssl::pkey::PKey;
use openssl::x509::X509;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Peer {
    Nginx,
    Haproxy,
}

impl Peer {
    pub fn parse(s: &str) -> Result<Peer, String> {
        match s {
            "nginx" => Ok(Peer::Nginx),
            "haproxy" => Ok(Peer::Haproxy),
            _ => Err(format!("--peer: '{s}' is not nginx or haproxy")),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Peer::Nginx => "nginx",
            Peer::Haproxy => "haproxy",
        }
    }

    /// The binary and the Debian package it comes from.
    pub fn tool(self) -> (&'static str, &'static str) {
        match self {
            Peer::Nginx => ("nginx", "nginx-core"),
            Peer::Haproxy => ("haproxy", "haproxy"),
        }
    }

    fn template(self) -> &'static str {
        match self {
            Peer::Nginx => include_str!("../peers/nginx.conf"),
            Peer::Haproxy => include_str!("../peers/haproxy.cfg"),
        }
    }

    /// Most connections the peer can hold with `nofile` descriptors. HAProxy refuses to
    /// start unless it has two per connection (it reserves one for a backend side even
    /// when, as here, there is none).
    pub fn max_conns(self, nofile: u64) -> usize {
        let n = nofile.saturating_sub(100) as usize;
        match self {
            Peer::Nginx => n,
            Peer::Haproxy => n / 2,
        }
    }
}

/// Makes sure each `(binary, package)` is there, installing the missing packages with
/// apt-get. A package's maintainer script must not start its system service (nginx would
/// take port 80 and stay running): without a policy-rc.d on the machine, one that forbids
/// starting services is in place for the duration of the install.
pub fn ensure_installed(tools: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(bin, _)| sys::which(bin).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "missing packages; install them with: sudo apt-get install {list}"
        ));
    }
    eprintln!("installing {list} with apt-get...");
    let policy = PolicyGuard::install();
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let mut install = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=600",
    ];
    install.extend(missing.iter().copied());
    // Package lists may be missing or stale on a fresh machine.
    let ok =
        apt(&install) || (apt(&["update", "-q", "-o", "DPkg::Lock::Timeout=600"]) && apt(&install));
    drop(policy);
    let still: Vec<&str> = tools
        .iter()
        .filter(|(bin, _)| sys::which(bin).is_none())
        .map(|(bin, _)| *bin)
        .collect();
    if !ok || !still.is_empty() {
        return Err(format!(
            "apt-get install {list} failed (missing: {})",
            still.join(" ")
        ));
    }
    Ok(())
}

/// A policy-rc.d that denies every service start, removed again when dropped; nothing is
/// done when the machine already has one (it then decides).
struct PolicyGuard(Option<PathBuf>);

impl PolicyGuard {
    fn install() -> PolicyGuard {
        let path = PathBuf::from("/usr/sbin/policy-rc.d");
        if path.exists() {
            return PolicyGuard(None);
        }
        use std::os::unix::fs::PermissionsExt;
        let wrote = std::fs::write(
            &path,
            "#!/bin/sh\n# pixelserv-bench: installing peers\nexit 101\n",
        )
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)));
        PolicyGuard(wrote.ok().map(|()| path))
    }
}

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What the peers serve, taken from our running server: the leaf it made for `name` with
/// its key, our CA, and the body of our GIF. Kept in a directory of its own, removed on drop.
pub struct Material {
    dir: PathBuf,
    /// Leaf certificate then CA certificate (nginx `ssl_certificate`).
    chain: PathBuf,
    /// The leaf's PKCS#8 key (nginx `ssl_certificate_key`).
    key: PathBuf,
    /// Leaf, CA, key in one file (HAProxy `crt`).
    pem: PathBuf,
    gif: PathBuf,
    cacert: PathBuf,
    pub leaf_der: usize,
    pub ca_der: usize,
}

impl Material {
    pub fn from_ours(ours: &Target, name: &str) -> Result<Material, String> {
        let certs = ours
            .cacert
            .parent()
            .ok_or("our CA has no directory")?
            .to_path_buf();
        let ca_pem = std::fs::read(&ours.cacert).map_err(|e| format!("our ca.crt: {e}"))?;
        let ca = X509::from_pem(&ca_pem).map_err(|e| format!("our ca.crt: {e}"))?;
        let served = conn::served_leaf(ours.https, name)?;
        let (leaf, key) = find_leaf(&certs, &served)?;
        let gif = conn::get_body(ours.http, "/pixel.gif")?;
        let dir = target::temp_dir("peers")?;
        let files = Material {
            chain: dir.join("chain.pem"),
            key: dir.join("key.pem"),
            pem: dir.join("haproxy.pem"),
            gif: dir.join("pixel.gif"),
            cacert: dir.join("ca.crt"),
            leaf_der: leaf.len(),
            ca_der: ca.to_der().map(|d| d.len()).unwrap_or(0),
            dir,
        };
        let leaf_pem = X509::from_der(&leaf)
            .and_then(|c| c.to_pem())
            .map_err(|e| e.to_string())?;
        let chain: Vec<u8> = [leaf_pem.as_slice(), ca_pem.as_slice()].concat();
        let write =
            |p: &Path, b: &[u8]| std::fs::write(p, b).map_err(|e| format!("{}: {e}", p.display()));
        write(&files.chain, &chain)?;
        write(&files.key, &key)?;
        write(&files.pem, &[chain.as_slice(), key.as_slice()].concat())?;
        write(&files.gif, &gif)?;
        write(&files.cacert, &ca_pem)?;
        Ok(files)
    }
}

impl Drop for Material {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The certificate file in our CERT_PATH whose certificate is `served` (DER): its
/// certificate (DER) and its key (PKCS#8 PEM).
fn find_leaf(certs: &Path, served: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let entries = std::fs::read_dir(certs).map_err(|e| format!("{}: {e}", certs.display()))?;
    for e in entries.flatten() {
        let Ok(bytes) = std::fs::read(e.path()) else {
            continue;
        };
        let same = X509::from_pem(&bytes)
            .and_then(|c| c.to_der())
            .is_ok_and(|d| d == served);
        if same {
            let key = PKey::private_key_from_pem(&bytes)
                .and_then(|k| k.private_key_to_pem_pkcs8())
                .map_err(|err| format!("{}: key: {err}", e.path().display()))?;
            return Ok((served.to_vec(), key));
        }
    }
    Err(format!(
        "no file in {} holds the served leaf",
        certs.display()
    ))
}

/// Fills the @NAME@ fields of a template; a field left unfilled is an error.
fn fill(template: &str, fields: &[(&str, String)]) -> Result<String, String> {
    let mut out = template.to_string();
    for (k, v) in fields {
        out = out.replace(&format!("@{k}@"), v);
    }
    // A field is '@', one or more of A-Z and '_', then '@' (the cipher strings'
    // "@SECLEVEL=0" is not one).
    for (i, _) in out.match_indices('@') {
        let name: String = out[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if !name.is_empty() && out[i + 1 + name.len()..].starts_with('@') {
            return Err(format!("template field @{name}@ not filled"));
        }
    }
    Ok(out)
}

/// Starts `peer` on free loopback ports (behind `wrapper` when not empty), holding up to
/// `max_conns` connections, serving `m`.
pub fn start(
    peer: Peer,
    m: &Material,
    max_conns: usize,
    wrapper: &[String],
) -> Result<Target, String> {
    let (bin, _) = peer.tool();
    let bin = sys::which(bin).ok_or(format!("{bin} not found"))?;
    let tmp = target::temp_dir(peer.label())?;
    let p = |p: &Path| p.display().to_string();
    // nginx closes idle keep-alive connections to make room once fewer than 1/16 of its
    // connection slots are free: give it that much headroom so it holds them all.
    let slots = match peer {
        Peer::Nginx => max_conns + max_conns / 15 + 64,
        Peer::Haproxy => max_conns,
    };
    Target::launch(
        peer.label(),
        tmp,
        !wrapper.is_empty(),
        |dir, http, https| {
            let fields = [
                ("DIR", p(dir)),
                ("HTTP_PORT", http.to_string()),
                ("HTTPS_PORT", https.to_string()),
                ("MAX_CONNS", slots.to_string()),
                ("CHAIN", p(&m.chain)),
                ("KEY", p(&m.key)),
                ("PEM", p(&m.pem)),
                ("GIF", p(&m.gif)),
            ];
            let conf = fill(peer.template(), &fields)?;
            let mut cmd = target::wrapped(wrapper, &bin);
            match peer {
                Peer::Nginx => {
                    let path = dir.join("nginx.conf");
                    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
                    let log = dir.join("error.log");
                    cmd.arg("-p")
                        .arg(dir)
                        .arg("-c")
                        .arg(&path)
                        .arg("-e")
                        .arg(&log);
                }
                Peer::Haproxy => {
                    let path = dir.join("haproxy.cfg");
                    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
                    cmd.arg("-db").arg("-f").arg(&path);
                }
            }
            Ok(Spawn {
                cmd,
                cacert: m.cacert.clone(),
            })
        },
    )
}
