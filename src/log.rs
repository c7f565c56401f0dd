//! Logging to syslog (ident `pixelserv-tls`, facility daemon) and, with `-f`, to stderr.
//!
//! Levels are the original's: 0 critical .. 5 debug; syslog severity = level + 2.
//! The level is a process-wide atomic because `/log=N` changes it at run time and the
//! certificate workers log too.

use std::ffi::CString;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

pub const CRITICAL: u8 = 0;
pub const ERROR: u8 = 1;
pub const WARNING: u8 = 2;
pub const NOTICE: u8 = 3;
pub const INFO: u8 = 4;
pub const DEBUG: u8 = 5;

static LEVEL: AtomicU8 = AtomicU8::new(ERROR);
static STDERR: AtomicBool = AtomicBool::new(false);
static SYSLOG: AtomicBool = AtomicBool::new(false);

pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

pub fn set_level(level: u8) {
    LEVEL.store(level.min(DEBUG), Ordering::Relaxed);
}

pub fn enabled(level: u8) -> bool {
    level <= self::level()
}

/// Opens syslog; `echo_stderr` copies every emitted line to stderr (for `-f`).
pub fn init(echo_stderr: bool, use_syslog: bool) {
    STDERR.store(echo_stderr, Ordering::Relaxed);
    if use_syslog {
        // openlog keeps the pointer, so the ident must live for the whole process.
        static IDENT: &[u8] = b"pixelserv-tls\0";
        unsafe { libc::openlog(IDENT.as_ptr().cast(), libc::LOG_PID, libc::LOG_DAEMON) };
        SYSLOG.store(true, Ordering::Relaxed);
    }
}

/// Copies log lines to stderr only (used before `init`, e.g. for startup errors).
pub fn echo_to_stderr(on: bool) {
    STDERR.store(on, Ordering::Relaxed);
}

pub fn emit(level: u8, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let text = fmt::format(args);
    if STDERR.load(Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "pixelserv-tls[{}]: {}", std::process::id(), text);
    }
    if SYSLOG.load(Ordering::Relaxed) {
        // Interior NULs would truncate the C string; make them visible instead.
        let c = CString::new(text.replace('\0', "\\0")).unwrap_or_default();
        let prio = libc::LOG_DAEMON | libc::c_int::from(level + 2);
        unsafe { libc::syslog(prio, c"%s".as_ptr(), c.as_ptr()) };
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
    fn escape_keeps_printables_and_hexes_the_rest() {
        assert_eq!(escape(b"GET /a HTTP/1.1"), "GET /a HTTP/1.1");
        assert_eq!(escape(b"a\r\nb\x00\\"), "a\\x0d\\x0ab\\x00\\x5c");
        assert_eq!(escape("é".as_bytes()), "\\xc3\\xa9");
    }
}
