//! The network process's system-call filter (seccomp-BPF; SECURITY.md, "Processes"). Once
//! it serves, the process needs sockets it already has, memory, time and little else: the
//! allowlist below is what the event loop, OpenSSL and the allocator were seen to call
//! (strace of the test suite and the bench, then checked against each libc's wrappers).
//! Everything else fails with EPERM: opening a file, executing, making a socket
//! (`accept4` only), tracing, signalling another process. A kernel without seccomp (before
//! 3.5) is told apart by EINVAL and logged once at info; the server then runs unfiltered.

use std::io;

use crate::log::{ERROR, INFO};
use crate::plog;

/// `struct seccomp_data`: the system-call number, then the audit architecture.
const NR_AT: u32 = 0;
const ARCH_AT: u32 = 4;
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const RET_KILL: u32 = 0;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_MODE_FILTER: libc::c_ulong = 2;

#[cfg(target_arch = "x86_64")]
const ARCH: Option<u32> = Some(0xC000_003E);
#[cfg(target_arch = "aarch64")]
const ARCH: Option<u32> = Some(0xC000_00B7);
#[cfg(all(target_arch = "arm", target_endian = "little"))]
const ARCH: Option<u32> = Some(0x4000_0028);
#[cfg(all(target_arch = "mips", target_endian = "little"))]
const ARCH: Option<u32> = Some(0x4000_0008);
#[cfg(all(target_arch = "mips", target_endian = "big"))]
const ARCH: Option<u32> = Some(0x0000_0008);
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    all(target_arch = "arm", target_endian = "little"),
    target_arch = "mips"
)))]
const ARCH: Option<u32> = None;

/// 64-bit time calls of 32-bit kernels (5.1+), which musl 1.2 tries first; the libc crate
/// does not name them. Same numbers on every 32-bit architecture, MIPS o32 adds 4000.
#[cfg(target_pointer_width = "32")]
const TIME64: [libc::c_long; 5] = {
    #[cfg(target_arch = "mips")]
    const BASE: libc::c_long = 4000;
    #[cfg(not(target_arch = "mips"))]
    const BASE: libc::c_long = 0;
    [
        BASE + 403, // clock_gettime64
        BASE + 406, // clock_getres_time64
        BASE + 407, // clock_nanosleep_time64
        BASE + 414, // ppoll_time64
        BASE + 422, // futex_time64
    ]
};
#[cfg(target_pointer_width = "64")]
const TIME64: [libc::c_long; 0] = [];

/// The libc crate does not name pread64 for MIPS o32 (4000 + 200 there).
#[cfg(target_arch = "mips")]
const PREAD64: libc::c_long = 4200;
#[cfg(not(target_arch = "mips"))]
const PREAD64: libc::c_long = libc::SYS_pread64;

/// Calls that differ between architectures (old names kept on some, dropped on others).
fn arch_calls() -> Vec<libc::c_long> {
    let mut v = TIME64.to_vec();
    #[cfg(not(target_arch = "aarch64"))]
    v.extend([libc::SYS_epoll_wait, libc::SYS_poll]);
    #[cfg(target_pointer_width = "64")]
    v.extend([
        libc::SYS_mmap,
        libc::SYS_fstat,
        libc::SYS_lseek,
        libc::SYS_getrlimit,
    ]);
    #[cfg(target_pointer_width = "32")]
    v.extend([
        libc::SYS_mmap2,
        libc::SYS_fstat64,
        libc::SYS__llseek,
        libc::SYS_fcntl64,
        libc::SYS_sigreturn,
    ]);
    #[cfg(any(target_arch = "arm", target_arch = "mips"))]
    v.extend([libc::SYS_recv, libc::SYS_send]);
    #[cfg(target_arch = "arm")]
    v.extend([libc::SYS_ugetrlimit]);
    #[cfg(target_arch = "mips")]
    v.extend([libc::SYS_getrlimit]);
    v
}

/// The allowlist, one group per line of reasoning.
fn allowed() -> Vec<libc::c_long> {
    let mut v = vec![
        // The event loop: readiness, connections it accepts, bytes in and out, timers.
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_ctl,
        libc::SYS_accept4,
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_shutdown,
        libc::SYS_close,
        libc::SYS_setsockopt,
        libc::SYS_getsockopt,
        libc::SYS_getsockname,
        libc::SYS_getpeername,
        libc::SYS_fcntl,
        libc::SYS_ioctl,
        libc::SYS_ppoll,
        // Time (when the vDSO cannot answer), and sleeping in the allocator's locks.
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_gettimeofday,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_futex,
        libc::SYS_sched_yield,
        // OpenSSL reseeding its generators after the fork.
        libc::SYS_getrandom,
        // Memory.
        libc::SYS_brk,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        // `/metrics`: the kept /proc/self files read again, the descriptor limit.
        PREAD64,
        libc::SYS_getdents64,
        libc::SYS_prlimit64,
        // The syslog socket, connected again when syslogd restarted (`log::send_syslog`);
        // the process cannot make a socket to connect elsewhere.
        libc::SYS_connect,
        // Signals (the signalfd is read with `read`), log lines' pid, and the way out,
        // an abort included.
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_tgkill,
        libc::SYS_restart_syscall,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ];
    v.extend(arch_calls());
    v
}

/// The BPF program: check the architecture, allow the listed calls, refuse the rest.
fn program(arch: u32, calls: &[libc::c_long]) -> Vec<libc::sock_filter> {
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let mut p = vec![
        stmt(LD_W_ABS, ARCH_AT),
        libc::sock_filter {
            code: JEQ_K,
            jt: 1,
            jf: 0,
            k: arch,
        },
        stmt(RET_K, RET_KILL),
        stmt(LD_W_ABS, NR_AT),
    ];
    for &nr in calls {
        p.push(libc::sock_filter {
            code: JEQ_K,
            jt: 0,
            jf: 1,
            k: nr as u32,
        });
        p.push(stmt(RET_K, RET_ALLOW));
    }
    p.push(stmt(RET_K, RET_ERRNO | libc::EPERM as u32));
    p
}

/// Installs the filter on this process (all its threads: the network process has one).
pub fn install() -> io::Result<()> {
    let Some(arch) = ARCH else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let prog = program(arch, &allowed());
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with integer arguments; needed before a filter by a non-root process.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fprog` points at `prog`, which outlives the call (the kernel copies it).
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set to `off` in the environment, no filter is installed: for running the server under
/// valgrind, whose tools write their output files from inside the process.
pub const SWITCH: &str = "PIXELSERV_SECCOMP";

/// The network process, before it serves: the filter, or one line saying why not.
pub fn confine_network_process() {
    if let Err(e) = super::procfs::keep_open() {
        plog!(ERROR, "cannot keep /proc/self open for /metrics: {}", e);
    }
    if std::env::var_os(SWITCH).is_some_and(|v| v == "off") {
        plog!(
            crate::log::NOTICE,
            "no seccomp filter for the network process: {}=off",
            SWITCH
        );
        return;
    }
    match install() {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => plog!(
            INFO,
            "no seccomp filter for the network process (the kernel or CPU has none): {}",
            e
        ),
        Err(e) => plog!(ERROR, "seccomp filter for the network process: {}", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set for the copy of this test binary that installs the filter on itself.
    const CHILD: &str = "PIXELSERV_SECCOMP_TEST_CHILD";

    /// In a child process (the filter cannot be taken off again): what the network process
    /// must not do fails, and what it does still works. The child is this test binary run
    /// again for `filtered_child` alone, not a fork: other tests' threads and sockets stay
    /// out of it.
    #[test]
    fn the_filter_refuses_files_programs_and_new_sockets() {
        if ARCH.is_none() {
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sys::seccomp::tests::filtered_child",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if text.contains("no seccomp here") {
            eprintln!("this kernel has no seccomp filter: nothing to check");
            return;
        }
        assert!(out.status.success(), "{text}");
        assert!(text.contains("filtered child: all checks passed"), "{text}");
    }

    #[test]
    fn filtered_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        match install() {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => println!("no seccomp here"),
            Err(e) => panic!("install: {e}"),
            Ok(()) => match child_checks() {
                0 => println!("filtered child: all checks passed"),
                n => panic!("check {n} failed"),
            },
        }
    }

    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// 0 when everything behaved; else the number of the check that did not.
    fn child_checks() -> i32 {
        // SAFETY: plain system calls with valid, NUL-terminated arguments.
        unsafe {
            let fd = libc::open(c"/etc/passwd".as_ptr(), libc::O_RDONLY);
            if fd >= 0 || errno() != libc::EPERM {
                return 10;
            }
            let fd = libc::openat(libc::AT_FDCWD, c"/".as_ptr(), libc::O_RDONLY);
            if fd >= 0 || errno() != libc::EPERM {
                return 11;
            }
            let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            if libc::execve(c"/bin/true".as_ptr(), argv.as_ptr(), envp.as_ptr()) >= 0
                || errno() != libc::EPERM
            {
                return 12;
            }
            if libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) >= 0 || errno() != libc::EPERM {
                return 13;
            }
            if libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) >= 0 || errno() != libc::EPERM {
                return 14;
            }
            let mut fds = [0; 2];
            if libc::pipe2(fds.as_mut_ptr(), 0) >= 0 || errno() != libc::EPERM {
                return 15;
            }
            // What the loop does still works.
            if libc::getpid() <= 0 || libc::write(2, b"".as_ptr().cast(), 0) < 0 {
                return 16;
            }
        }
        0
    }
}
