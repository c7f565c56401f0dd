//! `--check`, like `nginx -t`: everything startup would read or refuse, checked without
//! creating anything, binding anything or staying around. One line per item on stdout
//! (problems on stderr), then the verdict; exit 0 or 1.

use std::io;
use std::path::Path;

use super::cert_dir::{self, Verdict};
use crate::config::Config;
use crate::server::listener;
use crate::sys::files::Dir;
use crate::sys::process::{self, User};
use crate::tls::ca::{self, Access, CaStatus};
use crate::tls::context;
use crate::tls::psl::Psl;

#[derive(Default)]
struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, line: &str) {
        println!("ok    {line}");
    }

    fn fail(&mut self, line: &str) {
        self.problems += 1;
        eprintln!("FAIL  {line}");
    }

    fn result<T>(&mut self, r: Result<T, String>) -> Option<T> {
        r.map_err(|why| self.fail(&why)).ok()
    }
}

/// Runs the checks; returns the exit status.
pub fn run(cfg: &Config, user: Option<&User>) -> i32 {
    let mut report = Report::default();
    if let Some(line) = report.result(command_line(cfg, user)) {
        report.ok(&line);
    }
    let can_sign = match report.result(ca(&cfg.cert_path, user)) {
        Some((line, can_sign)) => {
            report.ok(&line);
            can_sign
        }
        None => true,
    };
    if cfg.separate_leaf_dir() {
        if let Some(line) = report.result(ca_dir(&cfg.cert_path)) {
            report.ok(&line);
        }
    }
    let (what, _) = super::leaf_dir_names(cfg);
    if let Some(line) = report.result(cert_path(what, cfg.leaf_path(), user, can_sign)) {
        report.ok(&line);
    }
    if let Some(line) = report.result(psl(cfg, user)) {
        report.ok(&line);
    }
    if let Some(path) = &cfg.ticket_keys {
        let keys = context::read_ticket_keys(path, &super::root_owners(user))
            .map(|_| format!("ticket keys {}", path.display()))
            .map_err(|e| format!("ticket keys {e}"));
        if let Some(line) = report.result(keys) {
            report.ok(&line);
        }
    }
    match report.problems {
        0 => {
            println!("configuration ok");
            0
        }
        n => {
            eprintln!(
                "configuration check failed: {n} problem{}",
                if n == 1 { "" } else { "s" }
            );
            1
        }
    }
}

fn command_line(cfg: &Config, user: Option<&User>) -> Result<String, String> {
    let ip = listener::resolve(cfg.listen_addr.as_deref())
        .map_err(|e| format!("listen address: getaddrinfo: {e}"))?;
    let ports: Vec<String> = cfg
        .ports
        .iter()
        .map(|p| {
            let tls = if p.tls { " (TLS)" } else { "" };
            format!(
                "{}{tls}",
                listener::describe(ip, cfg.iface.as_deref(), p.port)
            )
        })
        .collect();
    let runs_as = match user.filter(|u| u.uid != 0) {
        Some(u) => format!("; runs as user {} after binding", u.name),
        None => String::new(),
    };
    Ok(format!(
        "command line: listens on {}{runs_as}",
        ports.join(", ")
    ))
}

/// The CA line, and whether the server will be able to make certificates.
fn ca(path: &Path, user: Option<&User>) -> Result<(String, bool), String> {
    if !path.is_dir() {
        return Ok((no_ca_yet(path), true));
    }
    let dir = Dir::open(path).map_err(|e| format!("CERT_PATH {}: {e}", path.display()))?;
    let access = Access {
        owners: super::root_owners(user),
        crt_owner: None,
    };
    let (ca, status) = match ca::load_existing(&dir, &access).map_err(|e| format!("CA: {e}"))? {
        Some(found) => found,
        None => return Ok((no_ca_yet(path), true)),
    };
    let subject = ca
        .cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .map_or_else(
            || "(no common name)".to_string(),
            |e| String::from_utf8_lossy(e.data().as_slice()).into_owned(),
        );
    let mut line = format!("CA \"{subject}\", valid until {}", ca.cert.not_after());
    for w in &ca.warnings {
        line.push_str(&format!("; warning: {w}"));
    }
    match status {
        CaStatus::Loaded | CaStatus::Created => Ok((line, true)),
        // A CA without its key is a documented way to run: serving certificates made before.
        CaStatus::CertOnly(_) if !exists(&path.join("ca.key")) => Ok((
            format!("{line}; no ca.key: only certificates already in CERT_PATH are served"),
            false,
        )),
        CaStatus::CertOnly(why) => Err(format!("CA cannot sign certificates: {why}")),
    }
}

fn no_ca_yet(dir: &Path) -> String {
    format!(
        "no CA yet: one will be created in {} on first start",
        dir.display()
    )
}

fn exists(path: &Path) -> bool {
    !matches!(path.symlink_metadata(), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

/// A CERT_PATH of its own (with --leaf-dir): only root reads and writes it, before the drop.
fn ca_dir(dir: &Path) -> Result<String, String> {
    match dir.metadata() {
        Ok(meta) if meta.is_dir() => Ok(format!(
            "CERT_PATH {} holds the CA; certificates go to --leaf-dir",
            dir.display()
        )),
        Ok(_) => Err(format!("CERT_PATH {} is not a directory", dir.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => creatable("CERT_PATH", dir, None),
        Err(e) => Err(format!("CERT_PATH {}: {e}", dir.display())),
    }
}

/// The directory certificates are written to (`what`: CERT_PATH or --leaf-dir).
fn cert_path(
    what: &str,
    dir: &Path,
    user: Option<&User>,
    can_sign: bool,
) -> Result<String, String> {
    match dir.metadata() {
        Ok(meta) if !meta.is_dir() => {
            return Err(format!("{what} {} is not a directory", dir.display()))
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return creatable(what, dir, user),
        Err(e) => return Err(format!("{what} {}: {e}", dir.display())),
    }
    match cert_dir::verdict(what, dir, user) {
        Verdict::Writable => Ok(format!(
            "{what} {} is writable by {}",
            dir.display(),
            cert_dir::who(user)
        )),
        Verdict::Fixable(why) => Ok(format!("{why}; it will be given to it on start")),
        Verdict::Unwritable(why) if !can_sign => Ok(format!(
            "{why}; no certificates are made, but the prefetch list will not be saved"
        )),
        Verdict::Unwritable(why) => Err(why),
    }
}

/// A missing CERT_PATH (or --leaf-dir: `what`) is made at startup (before the drop, then
/// given to the user).
fn creatable(what: &str, dir: &Path, user: Option<&User>) -> Result<String, String> {
    let parent = dir
        .ancestors()
        .skip(1)
        .find(|a| exists(a))
        .unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        return Err(format!(
            "{what} {} cannot be created: {} is not a directory",
            dir.display(),
            parent.display()
        ));
    }
    process::access_as(None, parent, libc::W_OK | libc::X_OK).map_err(|e| {
        format!(
            "{what} {} cannot be created in {}: {e}",
            dir.display(),
            parent.display()
        )
    })?;
    // Made by root, then given to the user, who must be able to reach it.
    if let Some(u) = user.filter(|u| u.uid != 0) {
        process::access_as(Some(u), parent, libc::X_OK).map_err(|e| {
            format!(
                "{what} {} would not be reachable by user {}: {}: {e}",
                dir.display(),
                u.name,
                parent.display()
            )
        })?;
    }
    Ok(format!(
        "{what} {} does not exist yet; it will be created for {}",
        dir.display(),
        cert_dir::who(user)
    ))
}

fn psl(cfg: &Config, user: Option<&User>) -> Result<String, String> {
    let (path, explicit) = match &cfg.psl_file {
        Some(p) => (p.clone(), true),
        None => (cfg.cert_path.join(super::PSL_FILE), false),
    };
    // As at startup: a default file that cannot even be looked at is taken as absent.
    if !explicit && !path.exists() {
        return Ok("public suffix list: the built-in copy".to_string());
    }
    // Read as the server reads it, after the drop.
    match Psl::load(&path, &super::runtime_owners(user)) {
        Ok(Some(_)) => Ok(format!("public suffix list {}", path.display())),
        Ok(None) => Err(format!(
            "public suffix list {}: no such file",
            path.display()
        )),
        Err(e) => Err(format!("public suffix list {}: {e}", path.display())),
    }
}
