//! The processes the monitor starts and watches (SECURITY.md, "Processes"): fork, signal,
//! reap, and the one-way switches a child throws on itself.

use std::io;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

pub enum Fork {
    Parent(libc::pid_t),
    Child,
}

/// Forks. The caller must be single-threaded (only the forking thread survives), which the
/// monitor is: worker threads start in the signer, after its fork.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: the caller's contract above; no lock can be held by another thread.
    match check(unsafe { libc::fork() })? {
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

pub fn signal(pid: libc::pid_t, sig: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill has no memory effects; a gone pid gives ESRCH, which is fine.
        unsafe { libc::kill(pid, sig) };
    }
}

/// How a reaped child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Killed(i32),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited(code) => write!(f, "exit status {code}"),
            Ended::Killed(sig) => write!(f, "signal {sig}"),
        }
    }
}

/// A child that has ended, if any (never waits).
pub fn reap() -> Option<(libc::pid_t, Ended)> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    let ended = if libc::WIFSIGNALED(status) {
        Ended::Killed(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    };
    Some((pid, ended))
}

/// Waits for `pid` to end.
pub fn wait(pid: libc::pid_t) -> io::Result<Ended> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(if libc::WIFSIGNALED(status) {
        Ended::Killed(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    })
}

/// No core dumps, no ptrace by the same user, `/proc/PID/mem` and friends owned by root:
/// what the signer sets before it reads the CA key.
pub fn set_not_dumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(|_| ())
}

/// This process gets `sig` when its parent dies, so that a child of a killed monitor does
/// not live on alone; false when the parent had already gone.
pub fn die_with_parent(sig: libc::c_int, parent: libc::pid_t) -> bool {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    // SAFETY: getppid has no failure modes.
    unsafe { libc::getppid() == parent }
}

pub fn pid() -> libc::pid_t {
    // SAFETY: getpid has no failure modes.
    unsafe { libc::getpid() }
}

/// Closes `fd` in this process only: a forked child drops what its parent keeps for the
/// other child (listening sockets, the CA key's descriptors).
pub fn close_inherited(fd: libc::c_int) {
    // SAFETY: the caller names a descriptor it inherited and never uses again; the objects
    // that own it in the parent's memory are never dropped in the child (it exits instead).
    unsafe { libc::close(fd) };
}

/// Ends a forked child without running the parent's destructors.
pub fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process at once; nothing is left half-done that matters.
    unsafe { libc::_exit(code) }
}
