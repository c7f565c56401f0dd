//! Daemon mode that fails loudly. The process forks before any setup; the parent blocks on a
//! pipe until the child reports: `OK` once every port listens (the parent exits 0), or the
//! reason it cannot start (the parent prints it and exits 1). So an init script sees the
//! failure, and a probe run right after the start finds the ports open.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

const OK: &[u8] = b"OK\n";
const ERR: &[u8] = b"ERR ";

pub enum Forked {
    /// In the parent, once the child has spoken or died: `Err` holds what to print.
    Parent(Result<(), String>),
    /// In the child, which runs the server and reports how its startup went.
    Child(Reporter),
}

/// The child's end of the pipe. Close-on-exec, and closed as soon as the report is written,
/// so neither worker threads nor anything executed later keep the parent waiting.
pub struct Reporter {
    pipe: File,
}

impl Reporter {
    /// The pipe's descriptor, which the processes the child forks must close: the parent
    /// waits for its last write end to close.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.pipe.as_raw_fd()
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Forks; the parent returns only after the child's report (or death). Must run while the
/// process is single-threaded: only the forking thread survives in the child.
pub fn fork() -> io::Result<Forked> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors are fresh and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: single-threaded (the caller's contract), so the child is a full copy.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        drop(read);
        return Ok(Forked::Child(Reporter {
            pipe: File::from(write),
        }));
    }
    // The parent's copy of the write end must go, or the read below never sees EOF.
    drop(write);
    Ok(Forked::Parent(await_report(File::from(read), pid)))
}

fn await_report(mut pipe: File, pid: libc::pid_t) -> Result<(), String> {
    let mut word = Vec::new();
    let read = pipe.read_to_end(&mut word);
    if read.is_ok() && word == OK {
        return Ok(());
    }
    let status = wait(pid);
    match word.strip_prefix(ERR) {
        Some(msg) => Err(String::from_utf8_lossy(msg).trim_end().to_string()),
        None => Err(format!("the server process {status} during startup")),
    }
}

/// Reaps the child (which exits right after reporting a failure); describes how it ended.
fn wait(pid: libc::pid_t) -> String {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-parameter; `pid` is our child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    }
}

impl Reporter {
    /// Startup succeeded: detach (new session, `/` as working directory, stdio on
    /// `/dev/null`), then tell the parent, which exits 0.
    /// Leaves the starting terminal's session and stdio behind, before the processes that
    /// will serve are forked (they inherit both).
    pub fn detach(&self) -> io::Result<()> {
        detach()
    }

    pub fn ready(mut self) -> io::Result<()> {
        match self.pipe.write_all(OK) {
            // The parent was killed while it waited: nobody to tell, but the server is up.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    /// Startup failed: the parent prints `msg` and exits 1; the caller exits too.
    pub fn failed(mut self, msg: &str) {
        let mut line = ERR.to_vec();
        line.extend(msg.replace('\n', " ").as_bytes());
        line.push(b'\n');
        // The parent may be gone (killed): nobody is left to tell.
        let _ = self.pipe.write_all(&line);
    }
}

fn detach() -> io::Result<()> {
    // SAFETY: plain syscalls; the path is a NUL-terminated literal.
    unsafe {
        check(libc::setsid())?;
        check(libc::chdir(c"/".as_ptr()))?;
        let null = check(libc::open(
            c"/dev/null".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC,
        ))?;
        for fd in 0..3 {
            check(libc::dup2(null, fd))?;
        }
        // Started with stdio closed, open() may have returned one of 0..2 itself.
        if null > 2 {
            libc::close(null);
        }
    }
    Ok(())
}
