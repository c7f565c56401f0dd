//! Logging to syslog (ident `pixelserv-tls`, facility daemon), to stderr, or both
//! (`--log-to`; by default syslog, plus stderr with `-f`).
//!
//! Levels are the original's: 0 critical .. 5 debug; syslog severity = level + 2.
//! The level is a process-wide atomic because `/log=N` changes it at run time and the
//! certificate workers log too.

use std::ffi::CString;
use std::fmt;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
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
/// when its queue is full. Only where /dev/log is a stream socket does the C library's
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
    let _ = SYSLOG.set(sink_for(Path::new(DEV_LOG)));
}

/// The socket is made now, whether or not `path` exists yet: on many routers syslogd starts
/// after us, and the network and signer processes cannot make a socket once their filters
/// are on (`sys::seccomp`), only connect the one they have (`send_datagram`).
fn sink_for(path: &Path) -> Sink {
    let Ok(sock) = UnixDatagram::unbound() else {
        return libc_sink();
    };
    if sock.set_nonblocking(true).is_err() {
        return libc_sink();
    }
    match sock.connect(path) {
        Ok(()) => Sink::Datagram(sock),
        // Not there yet, or no daemon behind it: connected again at a later line.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED)) => {
            Sink::Datagram(sock)
        }
        // A stream socket (EPROTOTYPE) or something stranger: the C library knows more kinds.
        Err(_) => libc_sink(),
    }
}

fn libc_sink() -> Sink {
    // openlog keeps the pointer, so the ident must live for the whole process.
    static IDENT: &[u8] = b"pixelserv-tls\0";
    // SAFETY: IDENT is a static NUL-terminated string.
    unsafe { libc::openlog(IDENT.as_ptr().cast(), libc::LOG_PID, libc::LOG_DAEMON) };
    Sink::Libc
}

/// One line; when the socket is not connected (no syslogd at startup) or its daemon went
/// away (syslogd restarted: its socket is new), connect once and retry once, never wait.
fn send_datagram(sock: &UnixDatagram, path: &Path, line: &[u8]) {
    if let Err(e) = sock.send(line) {
        if matches!(
            e.raw_os_error(),
            Some(libc::ECONNREFUSED | libc::ENOTCONN | libc::EDESTADDRREQ)
        ) && sock.connect(path).is_ok()
        {
            let _ = sock.send(line);
        }
    }
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
            send_datagram(sock, Path::new(DEV_LOG), line.as_bytes());
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
    let mut text = fmt::format(args);
    // The last line of defence: whatever a caller forgot to escape, no byte from the wire
    // may end this line and start a forged one, or send a terminal escape.
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        text = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
    }
    let error_echo = level == ERROR && ERRORS_TO_STDERR.load(Ordering::Relaxed);
    if STDERR.load(Ordering::Relaxed) || error_echo {
        // One write per line: the monitor, the signer and the network process share this
        // stderr, and a line written in pieces could be cut by another's.
        let line = format!("pixelserv-tls[{}]: {}\n", std::process::id(), text);
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
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

/// The access log's second line for a POST body (COMPATIBILITY.md §9.2): the body in brackets, or
/// a note when it holds bytes that do not belong in a log line: control bytes other than
/// 0x0A-0x0D (so a tab counts), or anything non-ASCII, as the original judged it. Unlike the
/// original, CR and LF are shown escaped: raw, they would let a body forge log lines.
pub fn post_body_line(body: &[u8], truncated: bool) -> String {
    let binary = body
        .iter()
        .any(|&b| (b < 0x20 && !(0x0a..=0x0d).contains(&b)) || b >= 0x7f);
    if binary {
        return "[-binary POST content not dumped-]".to_string();
    }
    format!("[{}{}]", escape(body), if truncated { "..." } else { "" })
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

/// Longest wire-derived text (request line, Host) put in a log line; the rest is cut with
/// `...` so one request cannot make a log line of kilobytes.
pub const MAX_LOGGED: usize = 512;

/// `escape` of at most `MAX_LOGGED` bytes.
pub fn escape_capped(bytes: &[u8]) -> String {
    match bytes.get(..MAX_LOGGED) {
        Some(head) if bytes.len() > MAX_LOGGED => format!("{}...", escape(head)),
        _ => escape(bytes),
    }
}

/// Lines that may repeat for every name a client asks for. Each kind lets `BURST` lines
/// through per `WINDOW_SECS`; the others are counted, and the count goes with the next line
/// that gets through, so a flood of new names cannot flood syslog.
/// 32-bit counters: 32-bit MIPS (the mipsel router build) has no 64-bit atomics, and the
/// window (minutes since 1970) fits until the year 10136.
pub struct Limiter {
    window: AtomicU32,
    sent: AtomicU32,
    suppressed: AtomicU32,
}

const BURST: u64 = 10;
const WINDOW_SECS: u64 = 60;

impl Limiter {
    pub const fn new() -> Limiter {
        Limiter {
            window: AtomicU32::new(0),
            sent: AtomicU32::new(0),
            suppressed: AtomicU32::new(0),
        }
    }

    /// Some(lines suppressed since the last one sent) when this line may go out.
    fn admit(&self, now_secs: u64) -> Option<u64> {
        let window = (now_secs / WINDOW_SECS) as u32;
        if self.window.swap(window, Ordering::Relaxed) != window {
            self.sent.store(0, Ordering::Relaxed);
        }
        if u64::from(self.sent.fetch_add(1, Ordering::Relaxed)) < BURST {
            Some(u64::from(self.suppressed.swap(0, Ordering::Relaxed)))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

/// Certificate files that cannot be read or are replaced.
pub static CERT_FILE: Limiter = Limiter::new();
/// Certificates that could not be made.
pub static CERT_FAILED: Limiter = Limiter::new();
/// Names refused because the certificate queue was full.
pub static QUEUE_FULL: Limiter = Limiter::new();
/// Failed TLS handshakes (one per connection).
pub static HANDSHAKE: Limiter = Limiter::new();

/// Logs a line of a kind that `limiter` keeps from flooding the log.
pub fn limited(level: u8, limiter: &Limiter, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match limiter.admit(now) {
        Some(0) => emit(level, args),
        Some(n) => emit(
            level,
            format_args!("{args} ({n} similar lines suppressed before this one)"),
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syslog_socket_that_appears_after_startup_gets_the_lines() {
        let dir = std::env::temp_dir().join(format!("pxs-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let sink = super::sink_for(&path);
        let super::Sink::Datagram(sock) = &sink else {
            panic!("no /dev/log at startup must still give a datagram sink");
        };
        // Nobody listens yet: dropped, without blocking or failing.
        super::send_datagram(sock, &path, b"lost");
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        super::send_datagram(sock, &path, b"first");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"first");
        // syslogd restarts: a new socket at the same path.
        drop(rx);
        std::fs::remove_file(&path).unwrap();
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        super::send_datagram(sock, &path, b"again");
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"again");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stream_syslog_socket_goes_to_the_c_library() {
        let dir = std::env::temp_dir().join(format!("pxs-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(matches!(super::sink_for(&path), super::Sink::Libc));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn limiter_lets_a_burst_through_then_counts() {
        let l = Limiter::new();
        for _ in 0..BURST {
            assert_eq!(l.admit(1000), Some(0));
        }
        assert_eq!(l.admit(1001), None);
        assert_eq!(l.admit(1002), None);
        assert_eq!(l.admit(1000 + WINDOW_SECS), Some(2));
        assert_eq!(l.admit(1000 + WINDOW_SECS), Some(0));
    }

    #[test]
    fn capped_escape() {
        assert_eq!(escape_capped(b"a\n"), "a\\x0a");
        let long = vec![b'x'; MAX_LOGGED + 1];
        let s = escape_capped(&long);
        assert_eq!(s.len(), MAX_LOGGED + 3);
        assert!(s.ends_with("x..."));
    }

    #[test]
    fn post_bodies_are_dumped_unless_binary() {
        assert_eq!(post_body_line(b"hello", false), "[hello]");
        assert_eq!(post_body_line(b"a=1\r\nb=2", true), "[a=1\\x0d\\x0ab=2...]");
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
