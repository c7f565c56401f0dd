//! The TCP stream under a TLS connection, as OpenSSL sees it. Two things a plain socket
//! cannot do:
//!
//! * Writes are gathered. OpenSSL writes every record on its own (a handshake flight is four
//!   or five records, a response one, a NewSessionTicket another) and each would be a
//!   `send`; here they collect and leave in one `send` when the connection says so (`send`),
//!   at the end of a handshake step or of a batch of responses. The TLS 1.3 ticket thus goes
//!   out with the first response. OpenSSL's own flush requests are ignored for that reason.
//! * Reads are measured. A read that returned fewer bytes than asked for emptied the socket;
//!   until the loop reports new readiness (`readable`), further reads answer WouldBlock
//!   without a system call: with edge-triggered polling, data arriving later raises a new
//!   event. OpenSSL reads again after every message, so this saves a `recv` per flight.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

pub struct Wire {
    tcp: TcpStream,
    /// Written by OpenSSL, not yet sent: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
    /// The last read from the socket returned less than asked (or nothing was there).
    drained: bool,
    /// A readiness event said the peer closed its side: an EOF may follow data without a
    /// new event, so every read goes to the socket from then on.
    peer_closed: bool,
    /// The description of an unencrypted alert record that ended the last read, if one did
    /// (see `tls::backend::reason_with_raw_alert`).
    raw_alert: Option<u8>,
}

impl Wire {
    pub fn new(tcp: TcpStream) -> Wire {
        Wire {
            tcp,
            out: Vec::new(),
            sent: 0,
            drained: false,
            peer_closed: false,
            raw_alert: None,
        }
    }

    pub fn tcp(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    pub fn tcp_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// Bytes written by OpenSSL that the socket has not taken yet.
    pub fn pending(&self) -> bool {
        self.sent < self.out.len()
    }

    /// Sends what is gathered: Ok(true) when all of it left, Ok(false) when the socket is
    /// full (wait for writability and call again).
    pub fn send(&mut self) -> io::Result<bool> {
        while self.sent < self.out.len() {
            match self.tcp.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Everything left: an idle connection keeps no buffer.
        self.out = Vec::new();
        self.sent = 0;
        Ok(true)
    }

    /// Whether the last read found the socket empty (and no EOF can be waiting).
    pub fn drained(&self) -> bool {
        self.drained && !self.peer_closed
    }

    /// The description of the unencrypted alert that ended the last read, if one did.
    pub fn raw_alert(&self) -> Option<u8> {
        self.raw_alert
    }

    /// The loop saw a readiness event: the socket may hold new bytes; `closed`: the peer
    /// closed its side.
    pub fn readable(&mut self, closed: bool) {
        self.drained = false;
        self.peer_closed |= closed;
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.drained && !self.peer_closed {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match self.tcp.read(buf) {
            Ok(n) => {
                self.drained = n < buf.len();
                self.raw_alert = match buf[..n] {
                    [.., 0x15, 0x03, 1..=4, 0x00, 0x02, _, d] => Some(d),
                    _ => None,
                };
                Ok(n)
            }
            Err(e) => {
                self.drained = e.kind() == io::ErrorKind::WouldBlock;
                Err(e)
            }
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// OpenSSL asks for a flush at the end of every flight; the connection decides instead.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_writes_and_sends_them_at_once() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut w = Wire::new(TcpStream::from_std(server));
        w.write_all(b"one ").unwrap();
        w.write_all(b"two").unwrap();
        w.flush().unwrap();
        assert!(w.pending());
        assert!(w.send().unwrap());
        assert!(!w.pending());
        assert_eq!(w.out.capacity(), 0);
        let mut got = [0u8; 7];
        let mut c = client;
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one two");
        // A read with nothing there says the socket is drained.
        let mut buf = [0u8; 8];
        assert!(w.read(&mut buf).is_err());
        assert!(w.drained());
        c.write_all(b"abc").unwrap();
        // Until the loop says the socket is readable, no read is tried.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(w.read(&mut buf).is_err());
        w.readable(false);
        let t = std::time::Instant::now();
        loop {
            match w.read(&mut buf) {
                Ok(n) => {
                    assert_eq!(n, 3);
                    break;
                }
                Err(_) if t.elapsed().as_secs() < 5 => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert!(w.drained());
    }
}
