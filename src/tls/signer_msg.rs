//! The messages between the network process and the certificate signer, one per
//! `SOCK_SEQPACKET` packet (SECURITY.md, "Processes"). Each side decodes what the other
//! sends as untrusted input: every length is checked, every name is validated again, and a
//! message that does not decode is an error, never a panic.
//!
//! Requests (network → signer): a certificate for a file name, "nobody waits for it any
//! more", and the prefetch list in chunks. Replies (signer → network): a certificate and
//! its key (leaf keys are not the CA's), a failure with its reason, a skipped job, and the
//! disk-budget figures for the stats pages.

use super::names::CertName;

/// The largest message either side sends or accepts.
pub const MAX: usize = 64 * 1024;
/// Names per prefetch chunk: a chunk of the longest names stays under `MAX`.
pub const PREFETCH_CHUNK: usize = 200;

const CERT: u8 = b'C';
const CANCEL: u8 = b'X';
const PREFETCH: u8 = b'P';
const READY: u8 = b'R';
const FAILED: u8 = b'F';
const ABANDONED: u8 = b'A';
const DISK: u8 = b'D';

#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Load or make the certificate of this file name.
    Cert(CertName),
    /// Every connection that waited for it has gone: skip the job if it has not run.
    Cancel(CertName),
    /// Prefetch entries (file name, reuse count); `last`: the list is complete, save it.
    Prefetch {
        entries: Vec<(String, u64)>,
        last: bool,
    },
}

/// What went with a reply, for the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// A new certificate was made (`cgn`).
    pub generated: bool,
    /// The file on disk was unusable and was replaced (`sle`).
    pub replaced: bool,
    /// Sent at the signer's start from the prefetch list, not asked for.
    pub preload: bool,
    /// Refused: the signer's queue was full (`cqf`).
    pub queue_full: bool,
}

impl Flags {
    fn byte(self) -> u8 {
        u8::from(self.generated)
            | u8::from(self.replaced) << 1
            | u8::from(self.preload) << 2
            | u8::from(self.queue_full) << 3
    }

    fn from_byte(b: u8) -> Flags {
        Flags {
            generated: b & 1 != 0,
            replaced: b & 2 != 0,
            preload: b & 4 != 0,
            queue_full: b & 8 != 0,
        }
    }
}

/// The disk budget as the stats pages show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disk {
    pub can_sign: bool,
    pub files: u64,
    pub max_files: u64,
    pub removed: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Ready {
        name: String,
        flags: Flags,
        cert_der: Vec<u8>,
        key_der: Vec<u8>,
    },
    Failed {
        name: String,
        flags: Flags,
        why: String,
    },
    Abandoned {
        name: String,
    },
    Disk(Disk),
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadMessage(pub &'static str);

impl std::fmt::Display for BadMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Reads fields off a message front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadMessage> {
        if self.0.len() < n {
            return Err(BadMessage("message too short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, BadMessage> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, BadMessage> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }

    /// A field with a 16-bit length in front.
    fn short(&mut self) -> Result<&'a [u8], BadMessage> {
        let n = self.take(2)?;
        let n = u16::from_le_bytes([n[0], n[1]]) as usize;
        self.take(n)
    }

    fn name(&mut self) -> Result<String, BadMessage> {
        let raw = self.short()?;
        let s = std::str::from_utf8(raw).map_err(|_| BadMessage("name not UTF-8"))?;
        CertName::from_file_name(s).map_err(|_| BadMessage("invalid certificate name"))?;
        Ok(s.to_string())
    }

    fn cert_name(&mut self) -> Result<CertName, BadMessage> {
        let s = self.name()?;
        CertName::from_file_name(&s).map_err(|_| BadMessage("invalid certificate name"))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }

    fn end(&self) -> Result<(), BadMessage> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(BadMessage("trailing bytes"))
        }
    }
}

fn put_short(out: &mut Vec<u8>, field: &[u8]) {
    let n = field.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&field[..n]);
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Request::Cert(name) | Request::Cancel(name) => {
                out.push(if matches!(self, Request::Cert(_)) {
                    CERT
                } else {
                    CANCEL
                });
                put_short(&mut out, name.file_name().as_bytes());
            }
            Request::Prefetch { entries, last } => {
                out.push(PREFETCH);
                out.push(u8::from(*last));
                for (name, count) in entries {
                    out.extend_from_slice(&count.to_le_bytes());
                    put_short(&mut out, name.as_bytes());
                }
            }
        }
        out
    }

    pub fn decode(msg: &[u8]) -> Result<Request, BadMessage> {
        let mut r = Reader(msg);
        let req = match r.u8()? {
            CERT => Request::Cert(r.cert_name()?),
            CANCEL => Request::Cancel(r.cert_name()?),
            PREFETCH => {
                let last = r.u8()? != 0;
                let mut entries = Vec::new();
                while !r.0.is_empty() {
                    let count = r.u64()?;
                    entries.push((r.name()?, count));
                }
                Request::Prefetch { entries, last }
            }
            _ => return Err(BadMessage("unknown request")),
        };
        r.end()?;
        Ok(req)
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Reply::Ready {
                name,
                flags,
                cert_der,
                key_der,
            } => {
                out.extend_from_slice(&[READY, flags.byte()]);
                put_short(&mut out, name.as_bytes());
                put_short(&mut out, cert_der);
                out.extend_from_slice(key_der);
            }
            Reply::Failed { name, flags, why } => {
                out.extend_from_slice(&[FAILED, flags.byte()]);
                put_short(&mut out, name.as_bytes());
                out.extend_from_slice(why.as_bytes());
            }
            Reply::Abandoned { name } => {
                out.push(ABANDONED);
                put_short(&mut out, name.as_bytes());
            }
            Reply::Disk(d) => {
                out.extend_from_slice(&[DISK, u8::from(d.can_sign)]);
                for v in [d.files, d.max_files, d.removed] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        out
    }

    pub fn decode(msg: &[u8]) -> Result<Reply, BadMessage> {
        let mut r = Reader(msg);
        let reply = match r.u8()? {
            READY => {
                let flags = Flags::from_byte(r.u8()?);
                let name = r.name()?;
                let cert_der = r.short()?.to_vec();
                let key_der = r.rest().to_vec();
                Reply::Ready {
                    name,
                    flags,
                    cert_der,
                    key_der,
                }
            }
            FAILED => {
                let flags = Flags::from_byte(r.u8()?);
                let name = r.name()?;
                let why = String::from_utf8_lossy(r.rest()).into_owned();
                Reply::Failed { name, flags, why }
            }
            ABANDONED => Reply::Abandoned { name: r.name()? },
            DISK => Reply::Disk(Disk {
                can_sign: r.u8()? != 0,
                files: r.u64()?,
                max_files: r.u64()?,
                removed: r.u64()?,
            }),
            _ => return Err(BadMessage("unknown reply")),
        };
        r.end()?;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> CertName {
        CertName::from_file_name(s).unwrap()
    }

    #[test]
    fn requests_and_replies_round_trip() {
        let reqs = [
            Request::Cert(name("_.example.com")),
            Request::Cancel(name("www.example.org")),
            Request::Prefetch {
                entries: vec![("_.a.com".into(), 7), ("b.net".into(), 0)],
                last: true,
            },
        ];
        for r in reqs {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
        let flags = Flags {
            generated: true,
            replaced: true,
            preload: false,
            queue_full: false,
        };
        let replies = [
            Reply::Ready {
                name: "_.a.com".into(),
                flags,
                cert_der: vec![1, 2, 3],
                key_der: vec![4, 5],
            },
            Reply::Failed {
                name: "_.a.com".into(),
                flags: Flags {
                    queue_full: true,
                    ..Flags::default()
                },
                why: "queue full".into(),
            },
            Reply::Abandoned {
                name: "_.a.com".into(),
            },
            Reply::Disk(Disk {
                can_sign: true,
                files: 3,
                max_files: 2000,
                removed: 1,
            }),
        ];
        for r in replies {
            assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn hostile_messages_are_errors_not_panics() {
        let bad: &[&[u8]] = &[
            b"",
            b"C",
            b"C\x05\x00ab",
            b"C\x03\x00../",
            b"C\x07\x00ca.crt\x00",
            b"Z",
            b"P\x01\x01\x00\x00\x00\x00\x00\x00\x00",
            b"R\x00\x03\x00a.b\xff\xff",
            b"D\x01\x01",
            b"X\x05\x00a.comtrailing",
        ];
        for m in bad {
            assert!(Request::decode(m).is_err(), "{m:?}");
            assert!(Reply::decode(m).is_err(), "{m:?}");
        }
        // Every prefix and every single-byte change of a good message decodes or errs.
        let good = Reply::Ready {
            name: "_.a.com".into(),
            flags: Flags::default(),
            cert_der: vec![9; 40],
            key_der: vec![8; 30],
        }
        .encode();
        for n in 0..good.len() {
            let _ = Reply::decode(&good[..n]);
            for b in [0u8, 0x7f, 0xff] {
                let mut m = good.clone();
                m[n] = b;
                let _ = Reply::decode(&m);
                let _ = Request::decode(&m);
            }
        }
    }
}
