//! The three processes (SECURITY.md, "Processes") against the real binary, started as root
//! with `-u nobody` as routers run it: the CA key is in the signer's memory and not in the
//! network process's, the signer has no network socket and cannot be read by its own
//! user, the network process runs under its system-call filter, and a killed child is
//! replaced without anyone's help.
mod common;
use common::tls::*;
use common::*;

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use openssl::pkey::PKey;

fn as_root_with_nobody() -> Option<Server> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: skipped");
        return None;
    }
    Some(Server::start(&["-u", "nobody"]))
}

/// Byte strings that only the CA's private key contains: its PEM lines, its DER (PKCS#8
/// and the inner key), and the private scalar both ways round (big-endian in DER, in
/// little-endian words inside OpenSSL's numbers).
fn key_needles(srv: &Server) -> Vec<(String, Vec<u8>)> {
    let pem = std::fs::read(srv.dir.path().join("ca.key")).unwrap();
    let key = PKey::private_key_from_pem(&pem).unwrap();
    let mut out = Vec::new();
    // The whole file, and its first two base64 lines, which hold the private scalar (the
    // rest of a PKCS#8 EC key is the public key, which ca.crt carries too).
    out.push(("PEM".into(), pem.clone()));
    let text = String::from_utf8(pem.clone()).unwrap();
    for (i, line) in text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .take(2)
        .enumerate()
    {
        out.push((format!("PEM line {i}"), line.as_bytes().to_vec()));
    }
    out.push(("PKCS#8 DER".into(), key.private_key_to_pkcs8().unwrap()));
    out.push(("DER".into(), key.private_key_to_der().unwrap()));
    let scalar = key.ec_key().unwrap().private_key().to_vec();
    assert!(scalar.len() >= 24, "a P-256 or P-384 scalar");
    let mut reversed = scalar.clone();
    reversed.reverse();
    out.push(("scalar".into(), scalar));
    out.push(("scalar, little-endian".into(), reversed));
    out
}

/// The needles found anywhere in the readable memory of `pid`.
fn found_in(pid: i32, needles: &[(String, Vec<u8>)]) -> BTreeSet<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut found = BTreeSet::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut bytes = vec![0u8; (b - a) as usize];
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut bytes).is_err() {
            continue;
        }
        for (name, needle) in needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                found.insert(name.clone());
            }
        }
    }
    found
}

#[test]
fn the_ca_key_is_in_the_signer_and_nowhere_near_the_network() {
    let Some(srv) = as_root_with_nobody() else {
        return;
    };
    // A certificate signed since the start: the signer has used its key.
    assert_gif(&https_get(&srv, "first.visit.example", "/x.gif").unwrap());
    let needles = key_needles(&srv);
    let in_signer = found_in(srv.signer_pid(), &needles);
    assert!(
        !in_signer.is_empty(),
        "the scan finds nothing even in the signer"
    );
    let in_network = found_in(srv.network_pid(), &needles);
    assert!(
        in_network.is_empty(),
        "network process holds {in_network:?}"
    );
    let in_monitor = found_in(srv.pid(), &needles);
    assert!(in_monitor.is_empty(), "monitor holds {in_monitor:?}");
}

/// Socket inodes of every TCP and UDP socket on the machine.
fn ip_socket_inodes() -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            if let Some(inode) = line.split_whitespace().nth(9).and_then(|v| v.parse().ok()) {
                out.insert(inode);
            }
        }
    }
    out
}

fn socket_inodes_of(pid: i32) -> BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

fn status_field(pid: i32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn the_signer_is_locked_down_and_the_network_process_filtered() {
    let Some(srv) = as_root_with_nobody() else {
        return;
    };
    let (signer, network) = (srv.signer_pid(), srv.network_pid());
    let ip = ip_socket_inodes();
    let theirs = socket_inodes_of(signer);
    assert!(theirs.is_disjoint(&ip), "signer holds IP sockets");
    // The check sees them where they are: the network process holds the listeners.
    assert!(!socket_inodes_of(network).is_disjoint(&ip));
    let uid = status_field(signer, "Uid:");
    assert!(!uid.starts_with("0"), "signer runs as {uid}");
    let mem = std::fs::metadata(format!("/proc/{signer}/mem")).unwrap();
    assert_eq!(
        mem.uid(),
        0,
        "the signer's memory is root's while it runs as {uid}"
    );
    assert_eq!(status_field(network, "Seccomp:"), "2");
    assert_eq!(status_field(signer, "Seccomp:"), "0");
}

/// How long until a never-seen name verifies again and the stats page answers.
fn recovery_after_killing(srv: &Server, pid: i32, tag: &str) -> Duration {
    // SAFETY: kill has no memory-safety preconditions; the pid is the server's child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let t0 = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let name = format!("after-{tag}-{n}.recovery.example");
        let ok = https_get(srv, &name, "/x.gif").is_ok_and(|r| r.body.len() == 42)
            && get_status(srv, "/servstats.txt") == Some(200);
        if ok {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < T, "no recovery after killing the {tag}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get_status(srv: &Server, path: &str) -> Option<u16> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", srv.http)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    use std::io::Write;
    c.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 12];
    c.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[test]
fn a_killed_signer_or_network_process_is_replaced() {
    let Some(srv) = as_root_with_nobody() else {
        return;
    };
    assert_gif(&https_get(&srv, "before.recovery.example", "/x.gif").unwrap());
    let signer = srv.signer_pid();
    let took = recovery_after_killing(&srv, signer, "signer");
    eprintln!("after kill -9 of the signer: serving again in {took:?}");
    assert_ne!(srv.signer_pid(), signer);
    let network = srv.network_pid();
    let took = recovery_after_killing(&srv, network, "network");
    eprintln!("after kill -9 of the network process: serving again in {took:?}");
    assert_ne!(srv.network_pid(), network);
    assert!(srv.wait_log("restarting the signer and network processes", T));
}
