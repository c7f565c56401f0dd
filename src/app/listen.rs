//! The listening phase: every port bound and listening before startup reports success, and
//! a bind error that names the port and says what to do about it.

use std::io;

use crate::config::Config;
use crate::log::CRITICAL;
use crate::plog;
use crate::server::{listener, Listener};
use crate::sys::ports;

/// Binds every port; returns the listeners and their "Listening on" lines, which the caller
/// logs once startup is complete, so that they tell that the server is ready.
pub fn bind_all(cfg: &Config) -> Result<(Vec<Listener>, Vec<String>), String> {
    let ip =
        listener::resolve(cfg.listen_addr.as_deref()).map_err(|e| format!("getaddrinfo: {e}"))?;
    let mut out = Vec::new();
    let mut lines = Vec::new();
    for port in &cfg.ports {
        let where_ = listener::describe(ip, cfg.iface.as_deref(), port.port);
        let bound = listener::bind(ip, port, cfg.iface.as_deref()).map_err(|e| {
            // "Abort: <error> - <where>" is the original's line, which users grep for.
            match hint(&e, port.port, cfg.iface.is_some()) {
                Some(hint) => format!("Abort: {e} - {where_} ({hint})"),
                None => format!("Abort: {e} - {where_}"),
            }
        })?;
        lines.push(format!(
            "Listening on {}{}",
            where_,
            if port.tls { " (TLS)" } else { "" }
        ));
        out.push(Listener {
            socket: mio::net::TcpListener::from_std(bound.socket),
            port: bound.port,
        });
    }
    Ok((out, lines))
}

pub fn announce(lines: &[String]) {
    for line in lines {
        plog!(CRITICAL, "{}", line);
    }
}

/// What to do about a bind error, where there is something to say.
fn hint(e: &io::Error, port: u16, iface: bool) -> Option<String> {
    let binary = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "pixelserv-tls".to_string());
    match e.raw_os_error()? {
        libc::EACCES => Some(format!(
            "port {port} needs root or CAP_NET_BIND_SERVICE: start as root (-u drops root after \
             binding) or grant it: setcap cap_net_bind_service=+ep {binary}"
        )),
        libc::EPERM if iface => Some(format!(
            "-n needs root or CAP_NET_RAW: start as root or grant it: \
             setcap cap_net_bind_service,cap_net_raw=+ep {binary}"
        )),
        libc::EADDRINUSE => Some(ports::describe_holder(port).unwrap_or_else(|| {
            format!("another socket is bound to port {port}; /proc does not say whose")
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_remedy() {
        let e = io::Error::from_raw_os_error(libc::EACCES);
        let h = hint(&e, 443, false).unwrap();
        assert!(
            h.contains("port 443") && h.contains("CAP_NET_BIND_SERVICE"),
            "{h}"
        );
        let e = io::Error::from_raw_os_error(libc::EPERM);
        assert!(hint(&e, 443, true).unwrap().contains("CAP_NET_RAW"));
        assert_eq!(hint(&e, 443, false), None);
        let e = io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
        assert_eq!(hint(&e, 443, false), None);
    }
}
