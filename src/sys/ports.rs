//! Who holds a TCP port, as far as `/proc` tells: the hint for a bind that failed with
//! "Address already in use". Best effort: processes of other users (when we are not root)
//! and of other PID or network namespaces stay hidden.

use std::fs;

/// A process with a listening socket on the port.
#[derive(Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
}

/// One line for the bind error: who listens on `port`, or `None` when `/proc` shows no
/// listening socket there.
pub fn describe_holder(port: u16) -> Option<String> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|text| listening_inodes(&text, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let holders = holders(&inodes);
    if holders.is_empty() {
        return Some(format!(
            "a socket listens on port {port}, but /proc does not show whose (another user's process?)"
        ));
    }
    let list: Vec<String> = holders
        .iter()
        .map(|h| format!("pid {} ({})", h.pid, h.command))
        .collect();
    Some(format!("port {port} is held by {}", list.join(", ")))
}

/// Inodes of the sockets listening on `port` in a `/proc/net/tcp{,6}` table: lines of
/// `sl local_address rem_address st ... uid timeout inode`, addresses as `HEXIP:HEXPORT`,
/// state `0A` = LISTEN.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let listening = *f.get(3)? == "0A";
            let matches = u16::from_str_radix(local_port, 16).ok()? == port;
            (listening && matches).then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

/// Processes holding any of the socket `inodes` among their open descriptors.
fn holders(inodes: &[u64]) -> Vec<Holder> {
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        });
        if holds {
            let command = fs::read_to_string(entry.path().join("comm"))
                .map(|c| c.trim_end().to_string())
                .unwrap_or_else(|_| "?".to_string());
            out.push(Holder { pid, command });
        }
    }
    out.sort_by_key(|h| h.pid);
    out
}

/// Port of a TCP service name from the services database (`-p http`).
pub fn service_port(name: &str) -> Option<u16> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: both arguments are valid NUL-terminated strings that outlive the call; the
    // returned entry lives in libc's static storage and is read at once, during
    // single-threaded startup, before any other netdb call can overwrite it.
    let port = unsafe {
        let entry = libc::getservbyname(name.as_ptr(), c"tcp".as_ptr());
        if entry.is_null() {
            return None;
        }
        (*entry).s_port
    };
    // s_port holds the 16-bit port in network byte order.
    match u16::from_be(port as u16) {
        0 => None,
        p => Some(p),
    }
}

/// The local address of a connected socket, IPv4-mapped IPv6 shown as IPv4.
pub fn local_ip(fd: std::os::fd::RawFd) -> std::io::Result<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    // SAFETY: sockaddr_storage is plain data, for which all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss` and `len` are valid out-pointers of the sizes given.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let ip = match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel filled a sockaddr_in for AF_INET.
            let sin: &libc::sockaddr_in =
                unsafe { &*(&ss as *const libc::sockaddr_storage).cast() };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel filled a sockaddr_in6 for AF_INET6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(&ss as *const libc::sockaddr_storage).cast() };
            IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
        }
        _ => return Err(std::io::Error::other("not an IP socket")),
    };
    Ok(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 30 10 -1
   2: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0
   3: garbage
";

    #[test]
    fn finds_listening_sockets_by_port_only() {
        assert_eq!(listening_inodes(TABLE, 8080), vec![4242]);
        assert_eq!(listening_inodes(TABLE, 443), vec![99]);
        assert!(listening_inodes(TABLE, 80).is_empty());
        assert!(listening_inodes("", 80).is_empty());
        let v6 = "sl local rem st\n 0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 31337 1\n";
        assert_eq!(listening_inodes(v6, 80), vec![31337]);
    }

    #[test]
    fn names_this_process_as_the_holder() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hint = describe_holder(port).expect("a hint");
        assert!(
            hint.contains(&format!("pid {}", std::process::id())),
            "{hint}"
        );
        drop(l);
        assert_eq!(describe_holder(port), None);
    }
}
