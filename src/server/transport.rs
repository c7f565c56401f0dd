//! The byte stream under a connection: plain TCP or TLS over TCP (through `Wire`, which
//! gathers OpenSSL's writes). One place maps OpenSSL's WANT_READ / WANT_WRITE /
//! WANT_X509_LOOKUP results onto readiness the loop waits for.

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use mio::Interest;
use openssl::ssl::{ErrorCode, ShutdownState, SslRef, SslStream, SslVersion};

use super::wire::Wire;
use crate::stats::TlsVersion;
use crate::tls::backend;

/// Which readiness an operation is blocked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
}

impl Want {
    pub fn interest(self) -> Interest {
        match self {
            Want::Read => Interest::READABLE,
            Want::Write => Interest::WRITABLE,
        }
    }
}

/// Result of one read or write.
#[derive(Debug)]
pub enum Io {
    Done(usize),
    /// Orderly end of stream (TCP FIN, TLS close_notify or an EOF we tolerate).
    Eof,
    Blocked(Want),
    /// The peer reset the connection, or it broke while we wrote.
    Reset,
    /// Anything else; TLS errors arrive wrapped in an `io::Error` of kind `Other`.
    Failed(io::Error),
}

/// Result of driving a TLS handshake (or the early-data read that starts it).
pub enum Handshake {
    Done,
    /// Early data arrived: `n` bytes were put into the buffer.
    Early(usize),
    Blocked(Want),
    /// The certificate callback asked to be called again once a certificate is ready.
    NeedCert,
    Failed(openssl::ssl::Error),
}

pub enum Transport {
    Plain(TcpStream),
    Tls(SslStream<Wire>),
}

fn io_error(e: io::Error) -> Io {
    match e.kind() {
        io::ErrorKind::WouldBlock => Io::Blocked(Want::Read),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => Io::Reset,
        _ => Io::Failed(e),
    }
}

fn ssl_error(e: openssl::ssl::Error) -> Io {
    match e.code() {
        ErrorCode::ZERO_RETURN => Io::Eof,
        ErrorCode::WANT_READ => Io::Blocked(Want::Read),
        ErrorCode::WANT_WRITE => Io::Blocked(Want::Write),
        ErrorCode::SYSCALL => match e.into_io_error() {
            Ok(io) => io_error(io),
            // SYSCALL without an errno is an EOF in the middle of a record.
            Err(_) => Io::Eof,
        },
        _ => Io::Failed(io::Error::other(e)),
    }
}

impl Transport {
    pub fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => s.get_mut().tcp(),
        }
    }

    pub fn tcp_ref(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => s.get_ref().tcp_ref(),
        }
    }

    /// TLS bytes written but not yet handed to the socket (`send_gathered`).
    pub fn gathered(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(s) => s.get_ref().pending(),
        }
    }

    /// Sends what TLS has gathered: `Done(0)` when it all left, `Blocked(Write)` when the
    /// socket is full.
    pub fn send_gathered(&mut self) -> Io {
        match self {
            Transport::Plain(_) => Io::Done(0),
            Transport::Tls(s) => match s.get_mut().send() {
                Ok(true) => Io::Done(0),
                Ok(false) => Io::Blocked(Want::Write),
                Err(e) => io_error(e),
            },
        }
    }

    /// The loop saw a readiness event for this connection; `closed`: the peer closed its
    /// side.
    pub fn readable(&mut self, closed: bool) {
        if let Transport::Tls(s) = self {
            s.get_mut().readable(closed);
        }
    }

    /// After a read that filled `short` of the buffer: whether the socket is now empty, so
    /// that only a new readiness event can bring more. Over TLS the raw read decides, and
    /// OpenSSL must hold no record it has read but not handed over.
    pub fn drained(&self, short: bool) -> bool {
        match self {
            Transport::Plain(_) => short,
            Transport::Tls(s) => s.get_ref().drained() && !backend::has_pending(s.ssl()),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    pub fn read(&mut self, buf: &mut [u8]) -> Io {
        match self {
            Transport::Plain(s) => loop {
                match s.read(buf) {
                    Ok(0) => return Io::Eof,
                    Ok(n) => return Io::Done(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return io_error(e),
                }
            },
            Transport::Tls(s) => match s.ssl_read(buf) {
                Ok(0) => Io::Eof,
                Ok(n) => Io::Done(n),
                Err(e) => ssl_error(e),
            },
        }
    }

    pub fn write(&mut self, buf: &[u8]) -> Io {
        match self {
            Transport::Plain(s) => loop {
                match s.write(buf) {
                    Ok(0) => return Io::Reset,
                    Ok(n) => return Io::Done(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Io::Blocked(Want::Write)
                    }
                    Err(e) => return io_error(e),
                }
            },
            Transport::Tls(s) => match s.ssl_write(buf) {
                Ok(n) => Io::Done(n),
                Err(e) => match ssl_error(e) {
                    Io::Eof => Io::Reset,
                    other => other,
                },
            },
        }
    }

    /// Starts or continues the server handshake. The first phase reads TLS 1.3 early data
    /// into `early` (0-RTT requests are served like any other); `early_done` says that
    /// phase is over and only the handshake itself remains.
    pub fn handshake(&mut self, early: &mut [u8], early_done: bool) -> Handshake {
        let Transport::Tls(s) = self else {
            return Handshake::Done;
        };
        let result = if early_done {
            s.do_handshake().map(|()| 0)
        } else {
            match backend::read_early_data(s, early) {
                Ok(0) => return Handshake::Early(0),
                Ok(n) => return Handshake::Early(n),
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(_) => Handshake::Done,
            Err(e) => match e.code() {
                ErrorCode::WANT_READ => Handshake::Blocked(Want::Read),
                ErrorCode::WANT_WRITE => Handshake::Blocked(Want::Write),
                code if code.as_raw() == openssl_sys::SSL_ERROR_WANT_X509_LOOKUP => {
                    Handshake::NeedCert
                }
                _ => Handshake::Failed(e),
            },
        }
    }

    /// Sends close_notify once, without waiting for the peer's: a clean close keeps the
    /// session resumable (the original never sent it, DEFECTS.md #21).
    pub fn close_notify(&mut self) {
        if let Transport::Tls(s) = self {
            if !s.get_shutdown().contains(ShutdownState::SENT) {
                let _ = s.shutdown();
            }
        }
    }

    /// An unencrypted alert the peer ended its last bytes with.
    pub fn raw_alert(&self) -> Option<u8> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(s) => s.get_ref().raw_alert(),
        }
    }

    /// The TLS connection, for the ClientHello state kept on it.
    pub fn ssl(&self) -> Option<&SslRef> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(s) => Some(s.ssl()),
        }
    }

    pub fn tls_version(&self) -> Option<TlsVersion> {
        let v = self.ssl()?.version2()?;
        Some(if v == SslVersion::TLS1_3 {
            TlsVersion::V13
        } else if v == SslVersion::TLS1_2 {
            TlsVersion::V12
        } else if v == SslVersion::TLS1_1 {
            TlsVersion::V11
        } else {
            TlsVersion::V10
        })
    }
}
