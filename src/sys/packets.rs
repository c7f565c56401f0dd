//! A connected pair of `SOCK_SEQPACKET` Unix sockets: the channel between the network
//! process and the certificate signer (SECURITY.md, "Processes"). Each `send` is one
//! message and each `recv` returns exactly one, so neither side parses a byte stream; an
//! empty read means the other process is gone (nothing here ever sends an empty message).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct Packets {
    fd: OwnedFd,
}

fn check(rc: isize) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Two connected ends, close-on-exec and blocking.
pub fn pair() -> io::Result<(Packets, Packets)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    check(rc as isize)?;
    // SAFETY: both descriptors are fresh and owned by nothing else.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((Packets { fd: a }, Packets { fd: b }))
}

impl Packets {
    /// The event loop's end: sends and reads never wait.
    pub fn set_nonblocking(&self) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        check(flags as isize)?;
        // SAFETY: as above.
        check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } as isize)
            .map(|_| ())
    }

    /// Sends one message whole. A non-blocking end whose peer has not read enough yet
    /// fails with `WouldBlock`; a peer that is gone, with `BrokenPipe` (never SIGPIPE).
    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        debug_assert!(!msg.is_empty());
        loop {
            // SAFETY: `msg` is valid for its length.
            let rc = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            match check(rc) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map(|_| ()),
            }
        }
    }

    /// Receives one message into `buf`: `Ok(None)` when the peer has gone. A message longer
    /// than `buf` is an error (it was cut), never a partial message.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let rc = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            match check(rc) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(0) => return Ok(None),
                Ok(n) if n > buf.len() => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a {n}-byte message (at most {} expected)", buf.len()),
                    ))
                }
                Ok(n) => return Ok(Some(n)),
            }
        }
    }
}

impl AsRawFd for Packets {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_their_bounds_and_the_end_is_seen() {
        let (a, b) = pair().unwrap();
        a.send(b"one").unwrap();
        a.send(b"two!").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(b.recv(&mut buf).unwrap(), Some(3));
        assert_eq!(&buf[..3], b"one");
        assert_eq!(b.recv(&mut buf).unwrap(), Some(4));
        a.send(&[7u8; 32]).unwrap();
        assert!(b.recv(&mut buf).is_err(), "a cut message is an error");
        b.set_nonblocking().unwrap();
        let e = b.recv(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(b.recv(&mut buf).unwrap(), None);
        assert_eq!(b.send(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
