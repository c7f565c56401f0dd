//! The process's own resource figures, as Prometheus' standard `process_*` metrics define
//! them, read from `/proc/self` when `/metrics` is asked for.
//!
//! It runs on the event loop, so it stays small: `/proc/self/stat` into a stack buffer, the
//! `/proc/self/fd` directory counted with `getdents64` into another, `getrlimit`. procfs
//! files are made by the kernel on read (no disk). `/proc/stat`, larger, is read once for
//! the boot time. Nothing is allocated per call.
//!
//! The network process cannot open files once its system-call filter is in place, so it
//! opens `/proc/self/stat` and `/proc/self/fd` first (`keep_open`) and reads them again from
//! their start each time.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

struct Kept {
    stat: File,
    fds: OwnedFd,
}

static KEPT: OnceLock<Kept> = OnceLock::new();

/// Opens what `read` needs, for good: call in the process the figures are about, before
/// it may open nothing more.
pub fn keep_open() -> io::Result<()> {
    let stat = File::open("/proc/self/stat")?;
    let fds = open_fd_dir()?;
    boot_time().ok_or_else(|| bad("/proc/stat btime"))?;
    let _ = KEPT.set(Kept { stat, fds });
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time of all threads.
    pub cpu_seconds: f64,
    pub virtual_bytes: u64,
    pub resident_bytes: u64,
    /// Seconds since the epoch.
    pub start_time_seconds: f64,
    pub open_fds: u64,
    /// The soft `RLIMIT_NOFILE`.
    pub max_fds: u64,
}

pub fn read() -> io::Result<ProcessStats> {
    let mut buf = [0u8; 1024];
    let stat = match KEPT.get() {
        Some(k) => read_kept(&k.stat, &mut buf)?,
        None => read_small("/proc/self/stat", &mut buf)?,
    };
    let fields = StatFields::parse(stat).ok_or_else(|| bad("/proc/self/stat"))?;
    let ticks = sysconf(libc::_SC_CLK_TCK)? as f64;
    let page = sysconf(libc::_SC_PAGESIZE)?;
    let boot = boot_time().ok_or_else(|| bad("/proc/stat btime"))?;
    Ok(ProcessStats {
        cpu_seconds: (fields.utime + fields.stime) as f64 / ticks,
        virtual_bytes: fields.vsize,
        resident_bytes: fields.rss.saturating_mul(page),
        start_time_seconds: boot as f64 + fields.starttime as f64 / ticks,
        open_fds: open_fds()?,
        max_fds: max_fds()?,
    })
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unexpected {what}"))
}

fn sysconf(name: libc::c_int) -> io::Result<u64> {
    // SAFETY: sysconf only reads its argument.
    let v = unsafe { libc::sysconf(name) };
    if v <= 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v as u64)
}

/// The whole of a small procfs file, or an error if it does not fit.
fn read_small<'a>(path: &str, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
    let mut file = File::open(path)?;
    let mut len = 0;
    loop {
        match file.read(&mut buf[len..])? {
            0 => return Ok(&buf[..len]),
            n => len += n,
        }
        if len == buf.len() {
            return Err(bad(path));
        }
    }
}

/// The fields of `/proc/self/stat` we use (proc(5) numbering in the comments).
#[derive(Debug, PartialEq, Eq)]
struct StatFields {
    utime: u64,     // 14
    stime: u64,     // 15
    starttime: u64, // 22, clock ticks after boot
    vsize: u64,     // 23, bytes
    rss: u64,       // 24, pages
}

impl StatFields {
    fn parse(stat: &[u8]) -> Option<StatFields> {
        // The command name (field 2) is in parentheses and may hold spaces or parentheses:
        // the fields that follow start after the last `)`.
        let after = stat.iter().rposition(|&b| b == b')')?;
        let rest = std::str::from_utf8(stat.get(after + 1..)?).ok()?;
        // `rest` starts at field 3.
        let mut fields = rest.split_ascii_whitespace();
        let mut nth = |n: usize, from: &mut usize| -> Option<u64> {
            let v = fields.nth(n - *from)?.parse().ok();
            *from = n + 1;
            v
        };
        let mut at = 3;
        Some(StatFields {
            utime: nth(14, &mut at)?,
            stime: nth(15, &mut at)?,
            starttime: nth(22, &mut at)?,
            vsize: nth(23, &mut at)?,
            rss: nth(24, &mut at)?,
        })
    }
}

/// `btime` of `/proc/stat`: it does not change while the system runs.
fn boot_time() -> Option<u64> {
    static BOOT: OnceLock<Option<u64>> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        parse_btime(&text)
    })
}

fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A kept procfs file, read again from its start.
fn read_kept<'a>(file: &File, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
    let mut len = 0;
    loop {
        match file.read_at(&mut buf[len..], len as u64)? {
            0 => return Ok(&buf[..len]),
            n => len += n,
        }
        if len == buf.len() {
            return Err(bad("/proc/self/stat"));
        }
    }
}

fn open_fd_dir() -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path; the descriptor is owned right after.
    let fd = unsafe {
        libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Entries of `/proc/self/fd`; a descriptor opened only to list them is not counted.
fn open_fds() -> io::Result<u64> {
    if let Some(k) = KEPT.get() {
        let fd = k.fds.as_raw_fd();
        // SAFETY: lseek on a directory descriptor we keep: back to its first entry.
        if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
            return Err(io::Error::last_os_error());
        }
        return count_entries(fd);
    }
    let fd = open_fd_dir()?;
    Ok(count_entries(fd.as_raw_fd())?.saturating_sub(1))
}

fn count_entries(fd: libc::c_int) -> io::Result<u64> {
    let mut buf = [0u8; 4096];
    let mut count = 0;
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        match n {
            n if n < 0 => return Err(io::Error::last_os_error()),
            0 => return Ok(count),
            n => count += count_dirents(&buf[..n as usize]),
        }
    }
}

/// `linux_dirent64` records: inode (8), offset (8), record length (2), type (1), name.
fn count_dirents(mut records: &[u8]) -> u64 {
    const NAME_AT: usize = 19;
    let mut count = 0;
    while records.len() > NAME_AT {
        let reclen = usize::from(u16::from_ne_bytes([records[16], records[17]]));
        if reclen <= NAME_AT || reclen > records.len() {
            break;
        }
        let name = &records[NAME_AT..reclen];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        if name != b"." && name != b".." {
            count += 1;
        }
        records = &records[reclen..];
    }
    count
}

fn max_fds() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // `rlim_t` is 32 bits wide on some targets.
    #[allow(clippy::unnecessary_cast)]
    Ok(limit.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_hostile_command_name() {
        let line = b"1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
            250 75 0 0 20 0 3 0 98765 12345678 432 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 \
            17 1 0 0 0 0 0\n";
        assert_eq!(
            StatFields::parse(line),
            Some(StatFields {
                utime: 250,
                stime: 75,
                starttime: 98765,
                vsize: 12345678,
                rss: 432,
            })
        );
        assert_eq!(StatFields::parse(b"1 (x) S 1 2 3"), None);
        assert_eq!(StatFields::parse(b"no parenthesis"), None);
    }

    #[test]
    fn btime() {
        assert_eq!(
            parse_btime("cpu  1 2 3\nintr 5 6\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_btime("cpu 1\n"), None);
    }

    #[test]
    fn dirent_records() {
        let mut buf = Vec::new();
        for name in [&b"."[..], b"..", b"0", b"17"] {
            let reclen = (19 + name.len() + 1).next_multiple_of(8);
            let mut rec = vec![0u8; reclen];
            rec[16..18].copy_from_slice(&(reclen as u16).to_ne_bytes());
            rec[19..19 + name.len()].copy_from_slice(name);
            buf.extend(rec);
        }
        assert_eq!(count_dirents(&buf), 2);
        assert_eq!(count_dirents(&buf[..10]), 0);
    }

    #[test]
    fn this_process_figures_move_with_what_it_does() {
        let before = read().expect("procfs");
        let files: Vec<File> = (0..5)
            .map(|_| File::open("/proc/self/stat").unwrap())
            .collect();
        let during = read().unwrap();
        drop(files);
        // Other tests run in parallel threads and open files too: at least ours are seen.
        assert!(during.open_fds >= 5, "{during:?}");
        assert!(before.open_fds >= 3 && before.open_fds <= before.max_fds);
        assert!(before.resident_bytes > 0 && before.virtual_bytes > before.resident_bytes);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(before.start_time_seconds <= now + 1.0, "{before:?}");
        assert!(before.start_time_seconds > now - 86_400.0, "{before:?}");
        // Burn CPU until a clock tick is accounted (the counter must move, never back).
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        let mut after = read().unwrap();
        while after.cpu_seconds <= before.cpu_seconds && spin.elapsed().as_secs() < 10 {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = read().unwrap();
        }
        assert!(
            after.cpu_seconds > before.cpu_seconds,
            "{before:?} {after:?}"
        );
    }
}
