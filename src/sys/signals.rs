//! Signals delivered into the event loop through a signalfd: no work happens in a handler.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Terminate(i32),
    Usr1,
    Hup,
    /// A child process ended (the monitor's).
    Child,
}

pub struct SignalFd {
    fd: OwnedFd,
}

const HANDLED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGHUP,
    libc::SIGCHLD,
];

impl SignalFd {
    /// Blocks the handled signals in this thread (threads started later inherit the mask)
    /// and opens a non-blocking signalfd for them.
    pub fn new() -> io::Result<SignalFd> {
        // SAFETY: the sigset is initialised by sigemptyset before use; pointers are valid.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in HANDLED {
                libc::sigaddset(&mut set, s);
            }
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(SignalFd {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Waits until a signal is pending, at most `timeout` (`None`: for as long as it takes).
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Next pending signal, or `None` when there is none left.
    pub fn next(&self) -> io::Result<Option<Signal>> {
        loop {
            // SAFETY: signalfd_siginfo is plain integers, for which all-zero is valid.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading at most `size` bytes into a properly sized struct.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if n as usize != size {
                return Ok(None);
            }
            let signo = info.ssi_signo as libc::c_int;
            return Ok(Some(match signo {
                libc::SIGUSR1 => Signal::Usr1,
                libc::SIGHUP => Signal::Hup,
                // SIGUSR2 killed the original without saving; we treat it like SIGUSR1.
                libc::SIGUSR2 => Signal::Usr1,
                libc::SIGCHLD => Signal::Child,
                other => Signal::Terminate(other),
            }));
        }
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
