//! `-R`: the redirect target carried in a request path (COMPATIBILITY.md §5.7), without the
//! original's header injection (DEFECTS.md #7): only a clean, well-formed http(s) URL is used.

use memchr::{memchr, memmem, memrchr};

/// Returns the twice-percent-decoded path (rule 13 classifies it when there is no
/// redirect) and the `Location` to redirect to, if any.
pub fn decode_target(path: &[u8], referer: Option<&[u8]>) -> (Vec<u8>, Option<Vec<u8>>) {
    let decoded = percent_decode(&percent_decode(path));
    let location = target(&decoded)
        .filter(|t| is_clean_url(t))
        // A page that links to its own target would loop (the original's suppression rule).
        .filter(|t| referer.is_none_or(|r| memmem::find(r, t).is_none()))
        .map(<[u8]>::to_vec);
    (decoded, location)
}

/// Only valid `%XY` pairs decode; `+` stays `+`.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        let hi = s.get(i + 1).and_then(|&h| hex(h));
        let lo = s.get(i + 2).and_then(|&l| hex(l));
        match (b, hi, lo) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// From the last `http://`, else the last `https://`, to the end (case-sensitive, as the
/// original).
fn target(d: &[u8]) -> Option<&[u8]> {
    let at = memmem::rfind(d, b"http://").or_else(|| memmem::rfind(d, b"https://"))?;
    d.get(at..)
}

/// Visible ASCII only (no CR/LF/space/NUL can reach the header), and an authority that is
/// `host[:port]` with a DNS-style or bracketed-IP host. Userinfo is refused: RFC 9110 §4.2.4
/// forbids it and `http://bank.com@evil.com` exists only to mislead.
fn is_clean_url(t: &[u8]) -> bool {
    if !t.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return false;
    }
    let Some(rest) = t
        .strip_prefix(b"http://")
        .or_else(|| t.strip_prefix(b"https://"))
    else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (authority, _) = rest.split_at(end);
    let (host_ok, port) = match authority.strip_prefix(b"[") {
        Some(v6) => {
            let Some(close) = memchr(b']', v6) else {
                return false;
            };
            let (ip, after) = v6.split_at(close);
            let port = match after.get(1..) {
                Some([]) => None,
                Some([b':', port @ ..]) => Some(port),
                _ => return false,
            };
            let ok = ip
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            (ok && !ip.is_empty(), port)
        }
        None => {
            let (host, port) = match memrchr(b':', authority) {
                Some(colon) => {
                    let (host, port) = authority.split_at(colon);
                    (host, port.get(1..))
                }
                None => (authority, None),
            };
            let ok = host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b));
            (ok && !host.is_empty(), port)
        }
    };
    host_ok
        && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(path: &str, referer: Option<&str>) -> Option<String> {
        decode_target(path.as_bytes(), referer.map(str::as_bytes))
            .1
            .map(|l| String::from_utf8(l).unwrap())
    }

    #[test]
    fn reference_examples() {
        let want = Some("http://www.example.org/page?a=1".to_string());
        assert_eq!(
            loc(
                "/click?url=http%3A%2F%2Fwww.example.org%2Fpage%3Fa%3D1",
                None
            ),
            want
        );
        assert_eq!(
            loc(
                "/click?url=http%253A%252F%252Fwww.example.org%252Fpage%253Fa%253D1",
                None
            ),
            want
        );
        assert_eq!(
            loc("/c?u=http://a.com/?r=http://b.com/z", None).as_deref(),
            Some("http://b.com/z")
        );
        assert_eq!(
            loc("/c?u=https://secure.example.org/x?y=http", None).as_deref(),
            Some("https://secure.example.org/x?y=http")
        );
        assert_eq!(loc("/c?u=HTTP://A.COM/z.gif", None), None);
        let (decoded, l) = decode_target(b"/c?u=HTTP%3A//A.COM/z.gif", None);
        assert_eq!((decoded, l), (b"/c?u=HTTP://A.COM/z.gif".to_vec(), None));
    }

    #[test]
    fn referer_containing_the_target_suppresses() {
        let p = "/click?url=http%3A%2F%2Fa.com%2Fz";
        assert_eq!(loc(p, Some("http://a.com/z")), None);
        assert_eq!(loc(p, Some("see http://a.com/zz")), None);
        assert_eq!(
            loc(p, Some("http://a.com/")).as_deref(),
            Some("http://a.com/z")
        );
    }

    #[test]
    fn header_injection_is_refused() {
        for p in [
            "/c?u=http://a.com/%0d%0aSet-Cookie:%20x=1",
            "/c?u=http://a.com/%250d%250aSet-Cookie:x=1",
            "/c?u=http://a.com/%0aX",
            "/c?u=http://a.com/%00",
            "/c?u=http://a.com/a%20b",
            "/c?u=http://a.com/%7f",
            "/c?u=http://a.com/%c3%a9",
            "/c?u=http://a.com/%09",
        ] {
            assert_eq!(loc(p, None), None, "{p}");
        }
        let (decoded, _) = decode_target(b"/c?u=http://a.com/%250d%250a", None);
        assert_eq!(decoded, b"/c?u=http://a.com/\r\n");
    }

    #[test]
    fn malformed_urls_are_refused() {
        for p in [
            "/c?u=http://",
            "/c?u=http:///x",
            "/c?u=http://?x",
            "/c?u=http://:80/",
            "/c?u=http://a.com:/",
            "/c?u=http://a.com:123456/",
            "/c?u=http://a.com:8x/",
            "/c?u=http://good.com@evil.com/",
            "/c?u=http://evil.com\\@good.com/",
            "/c?u=http://[]/",
            "/c?u=http://[::1/",
            "/c?u=http://[::1]x/",
            "/c?u=http://a<b.com/",
        ] {
            assert_eq!(loc(p, None), None, "{p}");
        }
        for (p, want) in [
            ("/c?u=http://a.com", "http://a.com"),
            ("/c?u=https://a.com:8443/x#f", "https://a.com:8443/x#f"),
            ("/c?u=http://[::1]/x", "http://[::1]/x"),
            ("/c?u=http://[2001:db8::1]:80", "http://[2001:db8::1]:80"),
            ("/c?u=http://10.0.0.1/?a=b", "http://10.0.0.1/?a=b"),
            ("/c?u=http://a.com/+%2B", "http://a.com/++"),
        ] {
            assert_eq!(loc(p, None).as_deref(), Some(want), "{p}");
        }
    }

    #[test]
    fn percent_decoding_rules() {
        assert_eq!(percent_decode(b"%41%4a%4A%zz%4%"), b"AJJ%zz%4%");
        assert_eq!(percent_decode(b"%%41+"), b"%A+");
        assert_eq!(percent_decode(b"%2541"), b"%41");
        assert_eq!(percent_decode(b""), b"");
    }
}
