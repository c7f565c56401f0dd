//! What the server sends for one full TLS 1.3 handshake, counted record by record on the
//! client with OpenSSL's message callback, which reports every record header read and, for
//! TLS 1.3, each record's inner content type once decrypted.

use crate::conn::{self, Conn};
use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::net::SocketAddr;

const SSL3_RT_CHANGE_CIPHER_SPEC: u8 = 20;
const SSL3_RT_HANDSHAKE: u8 = 22;
const SSL3_RT_APPLICATION_DATA: u8 = 23;
/// Pseudo content types of the message callback.
const SSL3_RT_HEADER: c_int = 0x100;
const SSL3_RT_INNER_CONTENT_TYPE: c_int = 0x101;
const SSL3_MT_CERTIFICATE: u8 = 11;
const SSL3_MT_NEWSESSION_TICKET: u8 = 4;

type MsgCallback = unsafe extern "C" fn(
    write_p: c_int,
    version: c_int,
    content_type: c_int,
    buf: *const c_void,
    len: usize,
    ssl: *mut c_void,
    arg: *mut c_void,
);

extern "C" {
    // libssl (linked through openssl-sys); not bound by the openssl crates.
    fn SSL_set_msg_callback(ssl: *mut c_void, cb: Option<MsgCallback>);
}

/// Bytes the server sent, TLS record headers included.
#[derive(Default, Clone, Debug)]
pub struct Wire {
    /// Records carrying handshake messages (ServerHello to Finished, NewSessionTickets)
    /// and the compatibility ChangeCipherSpec.
    pub handshake: usize,
    pub handshake_records: usize,
    /// Records carrying the HTTP response.
    pub app: usize,
    pub tickets: usize,
    /// The Certificate message (its chain), handshake header included.
    pub certificate: usize,
}

#[derive(Default)]
struct Acc {
    /// The last record whose kind is not known yet: (outer type, bytes).
    pending: Option<(u8, usize)>,
    wire: Wire,
}

impl Acc {
    fn settle(&mut self, kind: u8, bytes: usize) {
        match kind {
            SSL3_RT_HANDSHAKE | SSL3_RT_CHANGE_CIPHER_SPEC => {
                self.wire.handshake += bytes;
                self.wire.handshake_records += 1;
            }
            SSL3_RT_APPLICATION_DATA => self.wire.app += bytes,
            _ => {}
        }
    }

    fn flush(&mut self) {
        if let Some((outer, bytes)) = self.pending.take() {
            self.settle(outer, bytes);
        }
    }
}

thread_local! {
    static ACC: RefCell<Acc> = RefCell::new(Acc::default());
}

unsafe extern "C" fn on_message(
    write_p: c_int,
    _version: c_int,
    content_type: c_int,
    buf: *const c_void,
    len: usize,
    _ssl: *mut c_void,
    _arg: *mut c_void,
) {
    if write_p != 0 || buf.is_null() || len == 0 {
        return;
    }
    // SAFETY: OpenSSL passes `len` readable bytes at `buf` for the callback's duration.
    let b = unsafe { std::slice::from_raw_parts(buf as *const u8, len) };
    ACC.with(|a| {
        let mut a = a.borrow_mut();
        match content_type {
            SSL3_RT_HEADER if len >= 5 => {
                // A record whose inner type never came was not a TLS 1.3 encrypted one.
                a.flush();
                a.pending = Some((b[0], 5 + usize::from(u16::from_be_bytes([b[3], b[4]]))));
            }
            SSL3_RT_INNER_CONTENT_TYPE => {
                if let Some((_, bytes)) = a.pending.take() {
                    a.settle(b[0], bytes);
                }
            }
            c if c == c_int::from(SSL3_RT_HANDSHAKE) => match b[0] {
                SSL3_MT_CERTIFICATE => a.wire.certificate += len,
                SSL3_MT_NEWSESSION_TICKET => a.wire.tickets += 1,
                _ => {}
            },
            _ => {}
        }
    });
}

/// One full TLS 1.3 handshake (no session offered) and one GET for `name`: what the server
/// sent, by kind.
pub fn full_handshake(addr: SocketAddr, name: &str) -> Result<Wire, String> {
    let connector = conn::load_connector(None)?;
    let mut ssl = connector
        .configure()
        .and_then(|cf| cf.into_ssl(name))
        .map_err(|e| e.to_string())?;
    // SAFETY: `&mut SslRef` is the `SSL*`; the callback only reads what OpenSSL passes it.
    unsafe {
        SSL_set_msg_callback(
            &mut *ssl as *mut openssl::ssl::SslRef as *mut c_void,
            Some(on_message),
        )
    };
    ACC.with(|a| *a.borrow_mut() = Acc::default());
    let sock = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let stream = ssl.connect(sock).map_err(|e| format!("handshake: {e}"))?;
    let mut c = Conn::Tls(Box::new(stream));
    // The tickets come before the response: the server sends them on reading the client's
    // Finished, which precedes the request.
    match conn::exchange(&mut c, &conn::request(name)) {
        Ok(200..=299) => {}
        other => return Err(format!("response: {other:?}")),
    }
    drop(c);
    Ok(ACC.with(|a| {
        let mut a = a.borrow_mut();
        a.flush();
        a.wire.clone()
    }))
}
