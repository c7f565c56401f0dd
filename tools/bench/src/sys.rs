//! Process-level facts: /proc counters of the server, CPU pinning, fd limit, own CPU time.

use std::io;

/// `pid` and every process below it. A server is a process tree: ours is a monitor with a
/// signer and a network process (include-docs/SECURITY.md, "Processes"), nginx a master with
/// workers; its CPU time, memory, system calls and instructions are those of the tree.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok());
            if let Some(ppid) = ppid {
                parents.push((p, ppid));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// CPU time of the server's process tree (`tree`), in microseconds.
pub fn proc_cpu_us(pid: u32) -> io::Result<u64> {
    tree(pid).into_iter().map(one_cpu_us).sum()
}

/// Resident set size of the server's process tree in kB. Pages the processes share after a
/// fork count once per process.
pub fn proc_rss_kb(pid: u32) -> io::Result<u64> {
    tree(pid).into_iter().map(one_rss_kb).sum()
}

/// CPU time (user + system, all threads) of one process in microseconds, from its stat.
fn one_cpu_us(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("bad /proc stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after "pid (comm)".
    let ticks = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other("bad /proc stat field"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(total * 1_000_000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Resident set size in kB (VmRSS of /proc/<pid>/status).
fn one_rss_kb(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

/// This process's CPU time (user + system, all threads) in microseconds.
pub fn self_cpu_us() -> u64 {
    // SAFETY: rusage is plain data; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a live rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// CPUs this process may run on.
pub fn allowed_cpus() -> usize {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 1;
        }
        libc::CPU_COUNT(&set) as usize
    }
}

/// Pins task `tid` (0 = the calling thread) to one CPU.
pub fn pin(tid: i32, cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against its size.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Pins every thread of the process tree of `pid` (threads made later inherit the mask).
pub fn pin_process(pid: u32, cpu: usize) -> io::Result<usize> {
    let mut n = 0;
    for p in tree(pid) {
        for entry in std::fs::read_dir(format!("/proc/{p}/task"))? {
            let tid = entry?.file_name().to_string_lossy().parse::<i32>();
            if let Ok(tid) = tid {
                pin(tid, cpu)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Raises the soft fd limit to the hard one; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: rlimit is plain data; getrlimit/setrlimit only read/write it.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur as u64
    }
}

/// Sends a signal to a process we started.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; pid is our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The 1-minute load average: other work on the machine skews every rate.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Makes a child we spawn die with this process (SIGKILL when the bench exits for any
/// reason, including a panic or a kill), so no server is ever left running. It also starts
/// with no signal blocked: std passes this process's mask on, and `clean_exit_on_signals`
/// blocks SIGINT/SIGTERM/SIGHUP here, which would leave strace deaf to the SIGINT that ends
/// its window (it then waits for ever) and servers deaf to the SIGTERM that stops them.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (sigemptyset, sigprocmask, prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Full path of `name` on PATH or in the sbin directories (nginx and haproxy live there,
/// which a non-root PATH may not list).
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .filter(|d| !d.is_empty())
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Whether every thread of `pid` is asleep in the kernel (state S): for an event-loop
/// server, waiting for its next event with nothing left to do.
pub fn all_threads_sleeping(pid: u32) -> io::Result<bool> {
    for p in tree(pid) {
        if !threads_sleeping(p)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn threads_sleeping(pid: u32) -> io::Result<bool> {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(entry?.path().join("stat"))?;
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .unwrap_or("?");
        if state != "S" {
            return Ok(false);
        }
    }
    Ok(true)
}

/// On SIGINT, SIGTERM or SIGHUP, removes this run's temporary directories and exits; the
/// servers die with this process (`die_with_parent`). Call before any other thread exists:
/// the signals are blocked in every thread and taken by one that waits for them (children
/// inherit the mask: `die_with_parent` clears it).
pub fn clean_exit_on_signals(cleanup: fn()) {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use; the masks only
    // affect this process.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        std::thread::spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is a valid, initialised signal set.
            if libc::sigwait(&set, &mut sig) == 0 {
                cleanup();
                // No atexit handlers: other threads may be inside OpenSSL.
                libc::_exit(128 + sig);
            }
        });
    }
}
