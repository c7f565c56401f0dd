//! Issue 19: `--leaf-dir DIR`, the CA on flash and the certificates in RAM. CERT_PATH (`-z`)
//! keeps ca.crt/ca.key; generated certificates, the prefetch list and the disk budget go to
//! DIR. The OpenWrt package's layout (`-z /etc/pixelserv-tls --leaf-dir /tmp/pixelserv-tls`)
//! is rebuilt under a scratch directory, and nothing may be written under its `etc` for 100
//! new names. The file-trust rules of CERT_PATH hold for DIR too. (CERT_PATH alone, both in
//! one directory, is what every other test runs.)

mod common;

use common::tls::*;
use common::*;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Every file under `root`, with its size and modification time (recursively).
fn tree(root: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path.clone());
            }
            out.push((path, meta.len(), meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}

/// The OpenWrt layout under a scratch root: (root, etc/pixelserv-tls, tmp/pixelserv-tls).
/// Neither directory exists yet: the server makes both, as after a first boot.
fn openwrt_layout() -> (TempDir, PathBuf, PathBuf) {
    let root = TempDir::new("owrt");
    let etc = root.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::create_dir(root.path().join("tmp")).unwrap();
    std::fs::set_permissions(root.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let ca = etc.join("pixelserv-tls");
    let leaves = root.path().join("tmp/pixelserv-tls");
    (root, ca, leaves)
}

fn start_split(ca: &Path, leaves: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--leaf-dir".to_string(), leaves.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start_with(Options {
        args,
        dir: Some(TempDir(ca.to_path_buf())),
    })
}

/// 100 new names with the OpenWrt defaults: every first visit verifies against the CA in
/// etc, the 100 certificate files and the prefetch list are in tmp, and nothing under etc
/// changed after the CA was made (not even at shutdown). A restart loads the prefetch list
/// from tmp.
#[test]
fn openwrt_layout_writes_no_certificate_under_etc_for_100_new_names() {
    const NAMES: usize = 100;
    let (root, ca, leaves) = openwrt_layout();
    let mut srv = start_split(&ca, &leaves, &[]);
    let etc = root.path().join("etc");
    let after_ca = tree(&etc);
    let names: Vec<PathBuf> = after_ca.iter().map(|(p, _, _)| p.clone()).collect();
    assert_eq!(names, [ca.clone(), ca.join("ca.crt"), ca.join("ca.key")]);
    for i in 0..NAMES {
        let r = https_get(&srv, &format!("ads.site{i}.example"), "/x.gif").unwrap();
        assert_gif(&r);
    }
    assert_eq!(srv.stat("cgn"), NAMES as u64);
    assert_eq!(cert_files(&leaves).len(), NAMES);
    let meta = std::fs::metadata(leaves.join("_.site7.example")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    srv.signal(libc::SIGTERM);
    assert_eq!(srv.wait_exit(T), Some(0));
    assert_eq!(tree(&etc), after_ca, "something was written under etc");
    let prefetch = std::fs::read_to_string(leaves.join("prefetch")).unwrap();
    assert_eq!(prefetch.lines().count(), NAMES);
    // Kept for the restart (the harness removes its CERT_PATH with it).
    std::mem::forget(srv.take_dir());

    let mut srv = start_split(&ca, &leaves, &[]);
    assert!(
        srv.wait_log("sslctx_tbl_load: _.site42.example", T),
        "{}",
        srv.log_text()
    );
    assert_gif(&https_get(&srv, "x.site42.example", "/x.gif").unwrap());
    assert_eq!(srv.stat("cgn"), 0);
    std::mem::forget(srv.take_dir());
    drop(srv);
    assert_eq!(tree(&etc), after_ca);
}

/// After a reboot tmp is empty: the CA in etc is kept and certificates are made again.
#[test]
fn an_empty_leaf_dir_after_a_reboot_keeps_the_ca() {
    let (_root, ca, leaves) = openwrt_layout();
    let mut srv = start_split(&ca, &leaves, &[]);
    assert_gif(&https_get(&srv, "a.reboot.example", "/x.gif").unwrap());
    let ca_crt = std::fs::read(ca.join("ca.crt")).unwrap();
    std::mem::forget(srv.take_dir());
    drop(srv);
    std::fs::remove_dir_all(&leaves).unwrap();

    let srv = start_split(&ca, &leaves, &[]);
    assert!(
        srv.log_text().contains("CA loaded from"),
        "{}",
        srv.log_text()
    );
    assert_eq!(std::fs::read(ca.join("ca.crt")).unwrap(), ca_crt);
    assert_gif(&https_get(&srv, "a.reboot.example", "/x.gif").unwrap());
    assert_eq!(srv.stat("cgn"), 1);
    assert!(leaves.join("_.reboot.example").is_file());
}

/// `--cert-files` counts the leaf directory's files and removes from there.
#[test]
fn the_disk_budget_follows_the_leaf_dir() {
    let (_root, ca, leaves) = openwrt_layout();
    let srv = start_split(&ca, &leaves, &["--cert-files", "5"]);
    for i in 0..12 {
        assert_gif(&https_get(&srv, &format!("b.budget{i}.example"), "/x.gif").unwrap());
    }
    assert_eq!(srv.stat("cgn"), 12);
    assert_eq!(srv.stat("dsx"), 5);
    assert!(cert_files(&leaves).len() <= 5, "{:?}", cert_files(&leaves));
    let mut in_ca: Vec<_> = std::fs::read_dir(&ca)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    in_ca.sort();
    assert_eq!(in_ca, ["ca.crt", "ca.key"]);
}

/// The file-trust rules hold in the leaf directory: a certificate file that is a link is
/// replaced, not followed; a prefetch list that is a link is not read; a group-writable
/// leaf directory is reported.
#[test]
fn leaf_dir_files_get_the_same_trust_rules() {
    let (root, ca, leaves) = openwrt_layout();
    std::fs::create_dir(&leaves).unwrap();
    std::fs::set_permissions(&leaves, PermissionsExt::from_mode(0o775)).unwrap();
    let keep = root.path().join("keep");
    std::fs::write(&keep, b"not yours").unwrap();
    symlink(&keep, leaves.join("_.linked.example")).unwrap();
    symlink("/dev/zero", leaves.join("prefetch")).unwrap();
    let srv = start_split(&ca, &leaves, &[]);
    assert!(
        srv.wait_log("prefetch: not a regular file (symbolic link)", T),
        "{}",
        srv.log_text()
    );
    let log = srv.log_text();
    assert!(
        log.contains(&format!(
            "{} is writable by group or others",
            leaves.display()
        )),
        "{log}"
    );
    assert_gif(&https_get(&srv, "ads.linked.example", "/x.gif").unwrap());
    assert_eq!(std::fs::read(&keep).unwrap(), b"not yours");
    let meta = std::fs::symlink_metadata(leaves.join("_.linked.example")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(srv.stat("sle"), 1);
}

/// `--check` names both directories; a leaf directory the user cannot write stops the start
/// (as root, with `-u nobody`, a directory of another user), and the CA directory need not
/// be the user's (one the server makes stays root's).
#[test]
fn check_and_start_judge_the_leaf_dir() {
    let (_root, ca, leaves) = openwrt_layout();
    let (p, k) = (free_port().to_string(), free_port().to_string());
    let me = whoami();
    let (z, l) = (ca.to_str().unwrap(), leaves.to_str().unwrap());
    let base = ["-f", "-p", &p, "-k", &k, "-z", z, "--leaf-dir", l];
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["-u", &me, "--check", "127.0.0.1"]);
    let (code, out) = run_to_exit(&args, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("no CA yet: one will be created in {z}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("CERT_PATH {z} does not exist yet")),
        "{out}"
    );
    assert!(
        out.contains(&format!("--leaf-dir {l} does not exist yet")),
        "{out}"
    );

    // SAFETY: geteuid never fails.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: -u cannot be tried");
        return;
    }
    std::fs::create_dir(&leaves).unwrap();
    std::os::unix::fs::chown(&leaves, Some(4242), Some(4242)).unwrap();
    std::fs::set_permissions(&leaves, PermissionsExt::from_mode(0o755)).unwrap();
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["-u", "nobody", "127.0.0.1"]);
    let (code, out) = run_to_exit(&args, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("--leaf-dir {l} is not writable by user nobody")),
        "{out}"
    );
    assert!(out.contains("choose another --leaf-dir"), "{out}");
    args.insert(args.len() - 1, "--check");
    let (code, out) = run_to_exit(&args, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("--leaf-dir {l} is not writable")),
        "{out}"
    );

    // A leaf directory the user owns: the start succeeds, and the CA directory (root's,
    // 0755) holds only the CA, ca.key root's and 0600.
    std::os::unix::fs::chown(&leaves, Some(65534), Some(65534)).unwrap();
    let (code, out) = run_to_exit(&args, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{out}");
    args.retain(|a| *a != "--check");
    let mut srv = Command::spawn_server(&args);
    let ready = srv.wait_listening();
    assert!(ready, "{}", srv.output());
    let key = std::fs::metadata(ca.join("ca.key")).unwrap();
    assert_eq!((key.uid(), key.mode() & 0o777), (0, 0o600));
    // The CA directory it made stays root's: only the leaf directory is the user's.
    let ca_meta = std::fs::metadata(&ca).unwrap();
    assert_eq!((ca_meta.uid(), ca_meta.mode() & 0o022), (0, 0));
    assert_eq!(std::fs::metadata(&leaves).unwrap().uid(), 65534);
    srv.stop();
}

/// A server started from plain arguments (not the harness: its `-u` is the test's user).
struct Command {
    child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Command {
    fn spawn_server(args: &[&str]) -> Command {
        use std::io::BufRead;
        let mut child = std::process::Command::new(BIN)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Command { child, log }
    }

    fn output(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_listening(&self) -> bool {
        let end = std::time::Instant::now() + T;
        while std::time::Instant::now() < end {
            if self.output().matches("Listening on").count() >= 2 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
