//! Logging to syslog (ident `pixelserv-tls`, facility daemon), to stderr, or both
//! (`--log-to`; by default syslog, plus stderr with `-f`).
//!
//! Levels are the original's: 0 critical .. 5 debug; syslog severity = level + 2.
//! The level is a process-wide atomic because `/log=N` changes it at run time and the
//! certificate workers log too.

use std::ffi::CString;
use std::fmt;
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

pub const CRITICAL: u8 = 0;
pub const ERROR: u8 = 1;
pub const WARNING: u8 = 2;
pub const NOTICE: u8 = 3;
pub const INFO: u8 = 4;
pub const DEBUG: u8 = 5;

static LEVEL: AtomicU8 = AtomicU8::new(ERROR);
static STDERR: AtomicBool = AtomicBool::new(false);
/// ERROR lines also go to stderr: a daemon's startup, whose stderr is still the terminal or
/// init script that started it.
static ERRORS_TO_STDERR: AtomicBool = AtomicBool::new(false);
static SYSLOG: OnceLock<Sink> = OnceLock::new();
const DEV_LOG: &str = "/dev/log";

/// Where syslog lines go. The event loop logs (access lines at level 4), so a slow syslog
/// daemon must not block it: lines go over a non-blocking datagram socket and are dropped
/// when its queue is full. Only where /dev/log is not a datagram socket does the C library's
/// (blocking) syslog take over.
enum Sink {
    Datagram(UnixDatagram),
    Libc,
}

pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

pub fn set_level(level: u8) {
    LEVEL.store(level.min(DEBUG), Ordering::Relaxed);
}

pub fn enabled(level: u8) -> bool {
    level <= self::level()
}

/// Sends lines to syslog, stderr or both from now on.
pub fn init(syslog: bool, stderr: bool) {
    STDERR.store(stderr, Ordering::Relaxed);
    if !syslog {
        return;
    }
    let sink = match datagram() {
        Ok(sock) => Sink::Datagram(sock),
        Err(_) => {
            // openlog keeps the pointer, so the ident must live for the whole process.
            static IDENT: &[u8] = b"pixelserv-tls\0";
            // SAFETY: IDENT is a static NUL-terminated string.
            unsafe { libc::openlog(IDENT.as_ptr().cast(), libc::LOG_PID, libc::LOG_DAEMON) };
            Sink::Libc
        }
    };
    let _ = SYSLOG.set(sink);
}

fn datagram() -> io::Result<UnixDatagram> {
    let sock = UnixDatagram::unbound()?;
    sock.connect(DEV_LOG)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// `Mmm dd hh:mm:ss` in local time, as syslog(3) writes it.
fn timestamp() -> String {
    let mut buf = [0u8; 32];
    // SAFETY: time/localtime_r/strftime with valid pointers and the buffer's length.
    let n = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return String::new();
        }
        libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%b %e %H:%M:%S".as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn send_syslog(sink: &Sink, level: u8, text: &str) {
    let prio = libc::LOG_DAEMON | libc::c_int::from(level + 2);
    match sink {
        Sink::Datagram(sock) => {
            let line = format!(
                "<{}>{} pixelserv-tls[{}]: {}",
                prio,
                timestamp(),
                std::process::id(),
                text
            );
            if let Err(e) = sock.send(line.as_bytes()) {
                // syslogd restarted: its socket is new; reconnect once, never wait.
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED) | Some(libc::ENOTCONN)
                ) && sock.connect(DEV_LOG).is_ok()
                {
                    let _ = sock.send(line.as_bytes());
                }
            }
        }
        Sink::Libc => {
            // Interior NULs would truncate the C string; make them visible instead.
            let c = CString::new(text.replace('\0', "\\0")).unwrap_or_default();
            // SAFETY: a constant format string and a NUL-terminated argument.
            unsafe { libc::syslog(prio, c"%s".as_ptr(), c.as_ptr()) };
        }
    }
}

/// Copies log lines to stderr only (used before `init`, e.g. for startup errors).
pub fn echo_to_stderr(on: bool) {
    STDERR.store(on, Ordering::Relaxed);
}

/// Whether lines go to stderr (else a fatal error must be printed there separately).
pub fn to_stderr() -> bool {
    STDERR.load(Ordering::Relaxed)
}

/// Copies ERROR lines to stderr as well, whatever `init` chose (see `ERRORS_TO_STDERR`).
pub fn errors_to_stderr(on: bool) {
    ERRORS_TO_STDERR.store(on, Ordering::Relaxed);
}

pub fn emit(level: u8, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let text = fmt::format(args);
    let error_echo = level == ERROR && ERRORS_TO_STDERR.load(Ordering::Relaxed);
    if STDERR.load(Ordering::Relaxed) || error_echo {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "pixelserv-tls[{}]: {}", std::process::id(), text);
    }
    if let Some(sink) = SYSLOG.get() {
        send_syslog(sink, level, &text);
    }
}

/// `plog!(level, "format", args...)` logs when `level` is enabled.
#[macro_export]
macro_rules! plog {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::log::enabled($lvl) {
            $crate::log::emit($lvl, format_args!($($arg)*))
        }
    };
}

/// The access log's second line for a POST body (reference §9.2): the body in brackets, or
/// a note when it holds bytes that do not belong in a log line: control bytes other than
/// 0x0A-0x0D (so a tab counts), or anything non-ASCII, as the original judged it.
pub fn post_body_line(body: &[u8], truncated: bool) -> String {
    let binary = body
        .iter()
        .any(|&b| (b < 0x20 && !(0x0a..=0x0d).contains(&b)) || b >= 0x7f);
    if binary {
        return "[-binary POST content not dumped-]".to_string();
    }
    format!(
        "[{}{}]",
        String::from_utf8_lossy(body),
        if truncated { "..." } else { "" }
    )
}

/// Renders bytes from the network for a log line: printable ASCII as is, the rest as `\xNN`,
/// so a hostile request line cannot forge log lines or inject terminal escapes.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_bodies_are_dumped_unless_binary() {
        assert_eq!(post_body_line(b"hello", false), "[hello]");
        assert_eq!(post_body_line(b"a=1\r\nb=2", true), "[a=1\r\nb=2...]");
        assert_eq!(post_body_line(b"", false), "[]");
        for bad in [&b"a\tb"[..], b"\x00", b"caf\xc3\xa9", b"\x1b[31m", b"\x7f"] {
            assert_eq!(
                post_body_line(bad, false),
                "[-binary POST content not dumped-]"
            );
        }
    }

    #[test]
    fn escape_keeps_printables_and_hexes_the_rest() {
        assert_eq!(escape(b"GET /a HTTP/1.1"), "GET /a HTTP/1.1");
        assert_eq!(escape(b"a\r\nb\x00\\"), "a\\x0d\\x0ab\\x00\\x5c");
        assert_eq!(escape("é".as_bytes()), "\\xc3\\xa9");
    }
}
