//! Listening sockets: address resolution, socket options and binding (COMPATIBILITY.md §3.4),
//! dual-stack by default.

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::FromRawFd;

use crate::config::ListenPort;

/// TCP Fast Open queue length, as the original.
const TFO_QUEUE: libc::c_int = 25;
const BACKLOG: libc::c_int = 4096;

pub struct Bound {
    pub socket: std::net::TcpListener,
    pub port: ListenPort,
    pub addr: SocketAddr,
}

/// The address to bind: the positional address or hostname (resolved once, at startup,
/// before the loop runs), or `None` for every address.
pub fn resolve(host: Option<&str>) -> io::Result<Option<IpAddr>> {
    let Some(host) = host else { return Ok(None) };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let mut addrs = (host, 0u16).to_socket_addrs()?;
    addrs
        .next()
        .map(|a| Some(a.ip()))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address")))
}

fn setopt(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `val` lives across the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens one listener. With no address it binds `::` dual-stack, or `0.0.0.0` where the
/// host has no IPv6.
pub fn bind(ip: Option<IpAddr>, port: &ListenPort, iface: Option<&str>) -> io::Result<Bound> {
    match ip {
        Some(ip) => bind_addr(SocketAddr::new(ip, port.port), port, iface, false),
        None => match bind_addr(
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port.port),
            port,
            iface,
            true,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => bind_addr(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port.port),
                port,
                iface,
                false,
            ),
            other => other,
        },
    }
}

fn bind_addr(
    addr: SocketAddr,
    port: &ListenPort,
    iface: Option<&str>,
    dual: bool,
) -> io::Result<Bound> {
    let domain = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket(2); the fd is owned by `socket` right after.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own; the TcpListener closes it on every error path.
    let socket = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    // Inherited by accepted sockets: tiny responses must not wait for Nagle.
    setopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    if addr.is_ipv6() {
        setopt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, i32::from(!dual))?;
    }
    if let Some(iface) = iface {
        let name = CString::new(iface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
        let bytes = name.as_bytes_with_nul();
        // SAFETY: the name buffer is valid for its length.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                bytes.as_ptr().cast(),
                bytes.len() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // TFO is an optimisation only: kernels without it still serve.
    let _ = setopt(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, TFO_QUEUE);
    bind_to(fd, &addr)?;
    // SAFETY: plain listen(2) on our socket.
    if unsafe { libc::listen(fd, BACKLOG) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let addr = socket.local_addr()?;
    Ok(Bound {
        socket,
        port: port.clone(),
        addr,
    })
}

/// bind(2) with the C form of `addr`, built as the concrete `sockaddr_in`/`sockaddr_in6`
/// (no `sockaddr_storage` to write through).
fn bind_to(fd: libc::c_int, addr: &SocketAddr) -> io::Result<()> {
    let rc = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            let len = std::mem::size_of_val(&sin) as libc::socklen_t;
            // SAFETY: `sin` is a complete sockaddr_in of `len` bytes that outlives the call.
            unsafe { libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), len) }
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            let len = std::mem::size_of_val(&sin6) as libc::socklen_t;
            // SAFETY: `sin6` is a complete sockaddr_in6 of `len` bytes that outlives the call.
            unsafe { libc::bind(fd, (&sin6 as *const libc::sockaddr_in6).cast(), len) }
        }
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// How a listener is shown in logs: `<iface>:<ip>:<port>` like the original.
pub fn describe(ip: Option<IpAddr>, iface: Option<&str>, port: u16) -> String {
    let ip = ip.map_or_else(|| "*".to_string(), |ip| ip.to_string());
    format!("{}:{}:{}", iface.unwrap_or(""), ip, port)
}
