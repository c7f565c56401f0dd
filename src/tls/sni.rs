//! Parser for the body of a TLS server_name extension (RFC 6066 §3).
//!
//! The original copied the SNI bytes as a C string and so appended following ClientHello bytes
//! to the name; here the name is exactly its declared length and every length is checked.

use std::fmt;

const HOST_NAME: u8 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SniError {
    /// A length field points past the end of the data.
    Truncated,
    /// Bytes after the declared list.
    Trailing,
    /// The list holds no entries.
    EmptyList,
    /// A host_name entry of length zero.
    EmptyName,
    /// More than one host_name (RFC 6066 forbids it; OpenSSL rejects the hello after our
    /// callback, so a certificate made for it would be wasted).
    Duplicate,
}

impl fmt::Display for SniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SniError::Truncated => "truncated server_name extension",
            SniError::Trailing => "trailing bytes in server_name extension",
            SniError::EmptyList => "empty server_name list",
            SniError::EmptyName => "empty host_name in server_name extension",
            SniError::Duplicate => "more than one host_name in server_name extension",
        })
    }
}

impl std::error::Error for SniError {}

/// The first host_name of a server_name extension body, `None` if it has only other types.
/// The whole list is validated, not just the entry returned.
pub fn server_name(ext: &[u8]) -> Result<Option<&[u8]>, SniError> {
    let mut rest = ext;
    let list_len = usize::from(u16::from_be_bytes([
        take_u8(&mut rest)?,
        take_u8(&mut rest)?,
    ]));
    let mut list = take(&mut rest, list_len)?;
    if !rest.is_empty() {
        return Err(SniError::Trailing);
    }
    if list.is_empty() {
        return Err(SniError::EmptyList);
    }
    let mut found = None;
    while !list.is_empty() {
        let name_type = take_u8(&mut list)?;
        let len = usize::from(u16::from_be_bytes([
            take_u8(&mut list)?,
            take_u8(&mut list)?,
        ]));
        let name = take(&mut list, len)?;
        if name_type == HOST_NAME {
            if name.is_empty() {
                return Err(SniError::EmptyName);
            }
            if found.is_some() {
                return Err(SniError::Duplicate);
            }
            found = Some(name);
        }
    }
    Ok(found)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], SniError> {
    if buf.len() < n {
        return Err(SniError::Truncated);
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn take_u8(buf: &mut &[u8]) -> Result<u8, SniError> {
    let (&b, tail) = buf.split_first().ok_or(SniError::Truncated)?;
    *buf = tail;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an extension body from (type, name) entries.
    fn ext(entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (t, n) in entries {
            list.push(*t);
            list.extend_from_slice(&(n.len() as u16).to_be_bytes());
            list.extend_from_slice(n);
        }
        let mut v = (list.len() as u16).to_be_bytes().to_vec();
        v.extend(list);
        v
    }

    #[test]
    fn single_host_name() {
        let e = ext(&[(0, b"example.com")]);
        assert_eq!(server_name(&e), Ok(Some(&b"example.com"[..])));
        assert_eq!(
            e,
            [0, 14, 0, 0, 11, b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'c', b'o', b'm']
        );
    }

    #[test]
    fn exact_length_not_nul_terminated() {
        // The original appended following bytes (GREASE etc.) until a NUL.
        let e = ext(&[(0, b"track2.example.net")]);
        let mut hello = e.clone();
        hello.extend_from_slice(b"JJ\xff\x01");
        assert_eq!(server_name(&e), Ok(Some(&b"track2.example.net"[..])));
        assert_eq!(server_name(&hello), Err(SniError::Trailing));
    }

    #[test]
    fn name_bytes_are_returned_raw() {
        let e = ext(&[(0, b"a\0b/../\xff")]);
        assert_eq!(server_name(&e), Ok(Some(&b"a\0b/../\xff"[..])));
    }

    #[test]
    fn truncation_at_every_byte() {
        let e = ext(&[(0, b"ads.example.com"), (7, b"xyz")]);
        assert_eq!(server_name(&e), Ok(Some(&b"ads.example.com"[..])));
        for cut in 0..e.len() {
            assert_eq!(
                server_name(&e[..cut]),
                Err(SniError::Truncated),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn truncated_inner_entry_with_consistent_list_length() {
        // List length agrees with the data, but the entry claims more than the list holds.
        assert_eq!(
            server_name(&[0, 4, 0, 0, 5, b'a']),
            Err(SniError::Truncated)
        );
        assert_eq!(server_name(&[0, 2, 0, 0]), Err(SniError::Truncated));
        assert_eq!(server_name(&[0, 1, 0]), Err(SniError::Truncated));
        // Second entry truncated after a valid first one.
        let mut e = ext(&[(0, b"a.b"), (0, b"c")]);
        e.pop();
        e[1] -= 1;
        assert_eq!(server_name(&e), Err(SniError::Truncated));
    }

    #[test]
    fn trailing_garbage() {
        let mut e = ext(&[(0, b"a.com")]);
        e.push(0);
        assert_eq!(server_name(&e), Err(SniError::Trailing));
        // List length shorter than the entries: the excess is trailing.
        let mut e = ext(&[(0, b"a.com")]);
        e[1] -= 1;
        assert_eq!(server_name(&e), Err(SniError::Trailing));
        let mut e = ext(&[(0, b"a.com"), (1, b"")]);
        e[1] -= 3;
        assert_eq!(server_name(&e), Err(SniError::Trailing));
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(server_name(&[]), Err(SniError::Truncated));
        assert_eq!(server_name(&[0]), Err(SniError::Truncated));
        assert_eq!(server_name(&[0, 0]), Err(SniError::EmptyList));
        assert_eq!(server_name(&[0, 0, 0]), Err(SniError::Trailing));
        assert_eq!(server_name(&ext(&[(0, b"")])), Err(SniError::EmptyName));
        assert_eq!(
            server_name(&ext(&[(0, b"a"), (0, b"")])),
            Err(SniError::EmptyName)
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let e = ext(&[(0, b"first.com"), (0, b"second.com")]);
        assert_eq!(server_name(&e), Err(SniError::Duplicate));
        let e = ext(&[(0, b"first.com"), (1, b"x"), (0, b"first.com")]);
        assert_eq!(server_name(&e), Err(SniError::Duplicate));
    }

    #[test]
    fn other_types() {
        assert_eq!(server_name(&ext(&[(1, b"x")])), Ok(None));
        assert_eq!(server_name(&ext(&[(255, b"")])), Ok(None));
        let e = ext(&[(2, b"zz"), (0, b"host.net"), (3, b"")]);
        assert_eq!(server_name(&e), Ok(Some(&b"host.net"[..])));
    }

    #[test]
    fn maximum_lengths() {
        let name = vec![b'a'; 65_530];
        let e = ext(&[(0, &name)]);
        assert_eq!(server_name(&e), Ok(Some(&name[..])));
        assert_eq!(server_name(&[0xff, 0xff]), Err(SniError::Truncated));
        assert_eq!(
            server_name(&[0, 3, 0, 0xff, 0xff]),
            Err(SniError::Truncated)
        );
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> ((i % 8) * 8)) as u8 % 12).collect();
            if let Ok(Some(n)) = server_name(&bytes) {
                assert!(!n.is_empty() && n.len() <= bytes.len());
            }
        }
    }

    #[test]
    fn display() {
        assert!(SniError::Truncated.to_string().contains("truncated"));
        assert!(SniError::EmptyName.to_string().contains("empty"));
    }
}
