//! Request-body framing (RFC 9112 §6, §7.1): consumes exactly one Content-Length or chunked
//! body from input split at any byte boundary, handing its data bytes to the caller (for the
//! access log). Bare LF is accepted for CRLF as in the head; a bare CR is not.

use super::limits::{MAX_BODY, MAX_CHUNK_LINE, MAX_TRAILERS};
use super::parser::BodyFraming;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Chunked data over `MAX_BODY`, or an oversized trailer section.
    TooLarge,
    Malformed,
}

impl BodyError {
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge => 413,
            BodyError::Malformed => 400,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feed {
    pub consumed: usize,
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Content-Length bytes still to come.
    Length(u64),
    /// Chunk-size line: before any digit, in the digits, in BWS, in extensions, after CR.
    SizeStart,
    SizeDigits,
    SizeWs,
    Ext,
    SizeLf,
    /// Chunk data bytes still to come, then its line ending.
    Data(u64),
    DataCr,
    DataLf,
    /// Trailer section, ended by an empty line.
    Trailer,
    TrailerLf,
    Done,
}

#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
    /// Size of the chunk whose size line is being read.
    size: u64,
    /// Chunk data bytes announced so far.
    total: u64,
    /// Bytes of the current size line, or of the current trailer line.
    line: usize,
    trailers: usize,
}

impl BodyDecoder {
    pub fn new(framing: BodyFraming) -> Self {
        let state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::SizeStart,
        };
        BodyDecoder {
            state,
            size: 0,
            total: 0,
            line: 0,
            trailers: 0,
        }
    }

    /// Consumes body bytes from the front of `input`; bytes after the body's end are left
    /// alone (`consumed` stops there). After an error the decoder must not be fed again.
    pub fn feed(
        &mut self,
        input: &[u8],
        on_data: &mut dyn FnMut(&[u8]),
    ) -> Result<Feed, BodyError> {
        let mut pos = 0;
        while self.state != State::Done {
            let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) else {
                break;
            };
            match self.state {
                State::Length(left) | State::Data(left) => {
                    let n = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
                    let (data, _) = rest.split_at(n);
                    on_data(data);
                    pos += n;
                    let left = left - n as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::DataCr,
                        _ => State::Data(left),
                    };
                }
                _ => {
                    let byte = rest.first().copied().unwrap_or_default();
                    self.state = self.step(byte)?;
                    pos += 1;
                }
            }
        }
        Ok(Feed {
            consumed: pos,
            done: self.state == State::Done,
        })
    }

    fn step(&mut self, b: u8) -> Result<State, BodyError> {
        use State::*;
        Ok(match (self.state, b) {
            (SizeStart | SizeDigits | SizeWs | Ext | SizeLf, _) => self.size_line(b)?,
            (DataCr, b'\r') => DataLf,
            (DataCr | DataLf, b'\n') => SizeStart,
            (Trailer, b'\r') => TrailerLf,
            (Trailer | TrailerLf, b'\n') => {
                let end = self.line == 0;
                self.line = 0;
                self.trailer_byte()?;
                if end {
                    Done
                } else {
                    Trailer
                }
            }
            (Trailer, _) => {
                self.line += 1;
                self.trailer_byte()?;
                Trailer
            }
            (DataCr | DataLf | TrailerLf, _) => return Err(BodyError::Malformed),
            (Length(_) | Data(_) | Done, _) => self.state,
        })
    }

    /// `chunk-size [ BWS ";" chunk-ext ] CRLF`; extensions are skipped.
    fn size_line(&mut self, b: u8) -> Result<State, BodyError> {
        use State::*;
        self.line += 1;
        if self.line > MAX_CHUNK_LINE {
            return Err(BodyError::Malformed);
        }
        Ok(match (self.state, b) {
            (SizeStart | SizeDigits, _) if b.is_ascii_hexdigit() => {
                let digit = (b as char).to_digit(16).map_or(0, u64::from);
                // size <= MAX_BODY before this step, so no overflow.
                self.size = self.size * 16 + digit;
                if self.size > MAX_BODY - self.total {
                    return Err(BodyError::TooLarge);
                }
                SizeDigits
            }
            (SizeDigits | SizeWs, b' ' | b'\t') => SizeWs,
            (SizeDigits | SizeWs, b';') => Ext,
            (SizeDigits | SizeWs | Ext, b'\r') => SizeLf,
            (SizeDigits | SizeWs | Ext | SizeLf, b'\n') => {
                self.line = 0;
                let size = std::mem::take(&mut self.size);
                self.total += size;
                if size == 0 {
                    Trailer
                } else {
                    Data(size)
                }
            }
            (Ext, _) if b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80 => Ext,
            _ => return Err(BodyError::Malformed),
        })
    }

    fn trailer_byte(&mut self) -> Result<(), BodyError> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(BodyError::TooLarge);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `parts` in order; returns (data, total consumed, done) or the error.
    fn run(framing: BodyFraming, parts: &[&[u8]]) -> Result<(Vec<u8>, usize, bool), BodyError> {
        let mut d = BodyDecoder::new(framing);
        let mut data = Vec::new();
        let mut consumed = 0;
        let mut done = false;
        for part in parts {
            let f = d.feed(part, &mut |b| data.extend_from_slice(b))?;
            assert!(f.consumed <= part.len());
            if f.done {
                done = true;
            } else {
                assert_eq!(f.consumed, part.len(), "stopped early without being done");
            }
            consumed += f.consumed;
        }
        Ok((data, consumed, done))
    }

    const CHUNKED: &[u8] =
        b"5;ext=\"v\"\r\nhello\r\n6 ; a=b\r\n, worl\r\n001\nd\n0\r\nX-T: 1\r\n\r\nNEXT";

    #[test]
    fn chunked_split_at_every_byte() {
        let body_len = CHUNKED.len() - 4;
        let want = (b"hello, world".to_vec(), body_len, true);
        assert_eq!(run(BodyFraming::Chunked, &[CHUNKED]), Ok(want.clone()));
        for i in 0..=CHUNKED.len() {
            let (a, b) = CHUNKED.split_at(i);
            assert_eq!(
                run(BodyFraming::Chunked, &[a, b]),
                Ok(want.clone()),
                "split at {i}"
            );
        }
        let bytes: Vec<&[u8]> = CHUNKED.chunks(1).collect();
        assert_eq!(run(BodyFraming::Chunked, &bytes), Ok(want));
    }

    #[test]
    fn chunked_incomplete_is_not_done() {
        for i in 0..CHUNKED.len() - 4 {
            let (data, consumed, done) = run(BodyFraming::Chunked, &[&CHUNKED[..i]]).unwrap();
            assert!(!done, "done after {i} bytes");
            assert_eq!(consumed, i);
            assert!(b"hello, world".starts_with(&data));
        }
    }

    #[test]
    fn chunked_minimal_and_uppercase_hex() {
        assert_eq!(
            run(BodyFraming::Chunked, &[b"0\r\n\r\n"]),
            Ok((vec![], 5, true))
        );
        let (data, _, done) = run(BodyFraming::Chunked, &[b"A\r\n0123456789\r\n0\n\n"]).unwrap();
        assert_eq!((data, done), (b"0123456789".to_vec(), true));
        let (data, _, _) = run(BodyFraming::Chunked, &[b"a\r\n0123456789\r\n0\r\n\r\n"]).unwrap();
        assert_eq!(data.len(), 10);
    }

    #[test]
    fn content_length_split_at_every_byte() {
        let input = b"hello world!GET / HTTP/1.1\r\n\r\n";
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            let got = run(BodyFraming::Length(12), &[a, b]).unwrap();
            assert_eq!(got, (b"hello world!".to_vec(), 12, true), "split at {i}");
        }
        assert_eq!(
            run(BodyFraming::Length(5), &[b"he"]),
            Ok((b"he".to_vec(), 2, false))
        );
    }

    #[test]
    fn no_body_is_done_at_once() {
        for framing in [BodyFraming::None, BodyFraming::Length(0)] {
            let mut d = BodyDecoder::new(framing);
            let f = d.feed(b"GET", &mut |_| panic!("no data expected")).unwrap();
            assert_eq!(
                f,
                Feed {
                    consumed: 0,
                    done: true
                }
            );
        }
        let mut d = BodyDecoder::new(BodyFraming::Length(1));
        assert_eq!(
            d.feed(b"xy", &mut |_| {}),
            Ok(Feed {
                consumed: 1,
                done: true
            })
        );
        assert_eq!(
            d.feed(b"y", &mut |_| {}),
            Ok(Feed {
                consumed: 0,
                done: true
            })
        );
    }

    #[test]
    fn malformed_chunks() {
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"-1\r\n",
            b";a\r\n",
            b" 5\r\n",
            b"5 x\r\nhello\r\n",
            b"5\rX",
            b"5\r\nhelloX",
            b"5\r\nhello\rX",
            b"5;a\x00\r\n",
            b"5;a\rb\r\n",
            b"0\r\nX: 1\rY",
            b"0x5\r\nhello\r\n",
        ] {
            let e = run(BodyFraming::Chunked, &[bad]).unwrap_err();
            assert_eq!(
                (e, e.status()),
                (BodyError::Malformed, 400),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut long = b"1;".to_vec();
        long.resize(MAX_CHUNK_LINE + 10, b'a');
        assert_eq!(
            run(BodyFraming::Chunked, &[&long]),
            Err(BodyError::Malformed)
        );
        let zeros = vec![b'0'; MAX_CHUNK_LINE + 10];
        assert_eq!(
            run(BodyFraming::Chunked, &[&zeros]),
            Err(BodyError::Malformed)
        );
    }

    #[test]
    fn chunked_size_limits() {
        let e = run(BodyFraming::Chunked, &[b"100001\r\n"]).unwrap_err();
        assert_eq!((e, e.status()), (BodyError::TooLarge, 413));
        assert_eq!(
            run(BodyFraming::Chunked, &[b"ffffffffffffffffffffff\r\n"]),
            Err(BodyError::TooLarge)
        );
        // Exactly MAX_BODY over two chunks is fine; one more byte is not.
        let half = vec![b'x'; (MAX_BODY / 2) as usize];
        let mut ok = b"80000\r\n".to_vec();
        ok.extend_from_slice(&half);
        ok.extend_from_slice(b"\r\n80000\r\n");
        ok.extend_from_slice(&half);
        ok.extend_from_slice(b"\r\n");
        let mut over = ok.clone();
        ok.extend_from_slice(b"0\r\n\r\n");
        let (data, _, done) = run(BodyFraming::Chunked, &[&ok]).unwrap();
        assert_eq!((data.len() as u64, done), (MAX_BODY, true));
        over.extend_from_slice(b"1\r\n");
        assert_eq!(
            run(BodyFraming::Chunked, &[&over]),
            Err(BodyError::TooLarge)
        );
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(&b"X: y\r\n"[..], 2000).flatten());
        assert_eq!(
            run(BodyFraming::Chunked, &[&trailers]),
            Err(BodyError::TooLarge)
        );
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_u32;
        let alphabet = b"0123456789abcdefX;= \t\r\n";
        for _ in 0..20_000 {
            let len = (seed % 40) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    alphabet[seed as usize % alphabet.len()]
                })
                .collect();
            let mut d = BodyDecoder::new(BodyFraming::Chunked);
            if let Ok(f) = d.feed(&buf, &mut |_| {}) {
                assert!(f.consumed <= buf.len());
            }
        }
    }
}
