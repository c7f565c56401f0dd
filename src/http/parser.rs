//! Request-head framing (RFC 9112 §2, §3, §5, §6): stateless and zero-copy, so the caller
//! simply re-runs it on its buffer after every read. Only the first `MAX_HEAD` bytes are ever
//! examined, which bounds the cost of each call.

use memchr::{memchr, memchr_iter};

use super::limits::{MAX_BODY, MAX_HEAD};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (also `Content-Length: 0`).
    None,
    Length(u64),
    Chunked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    HeadTooLarge,
    Malformed,
    /// `Transfer-Encoding` whose final coding is not `chunked`.
    UnsupportedTransferEncoding,
    /// `Content-Length` over `limits::MAX_BODY`.
    BodyTooLarge,
}

impl ParseError {
    pub fn status(&self) -> u16 {
        match self {
            ParseError::HeadTooLarge => 431,
            ParseError::Malformed => 400,
            ParseError::UnsupportedTransferEncoding => 501,
            ParseError::BodyTooLarge => 413,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub version: Version,
    /// Without its line ending (for the access log).
    pub request_line: &'a [u8],
    pub host: Option<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
    /// `Sec-Fetch-Site`: where a browser says the request comes from.
    pub fetch_site: Option<&'a [u8]>,
    /// Picks the steps shown first on the setup page.
    pub user_agent: Option<&'a [u8]>,
    pub keep_alive: bool,
    pub body: BodyFraming,
    /// Bytes of the head: leading blank lines through the empty line that ends it.
    pub len: usize,
}

/// `Ok(None)`: the head is not complete yet.
pub fn parse(buf: &[u8]) -> Result<Option<Head<'_>>, ParseError> {
    let window = buf.get(..MAX_HEAD).unwrap_or(buf);
    let incomplete = if buf.len() >= MAX_HEAD {
        Err(ParseError::HeadTooLarge)
    } else {
        Ok(None)
    };
    let Some(start) = skip_blank_lines(window)? else {
        return incomplete;
    };
    let rest = window.get(start..).unwrap_or_default();
    let Some(nl) = memchr(b'\n', rest) else {
        // Reject garbage (e.g. a TLS ClientHello) now instead of waiting for MAX_HEAD bytes.
        request_line(rest, false)?;
        return incomplete;
    };
    let line = strip_cr(rest.get(..nl).unwrap_or_default());
    let Some((method, target, version)) = request_line(line, true)? else {
        return Err(ParseError::Malformed);
    };
    let first_lf = start + nl;
    let Some(end) = head_end(window, first_lf) else {
        return incomplete;
    };

    let fields = Fields::scan(window.get(first_lf + 1..end).unwrap_or_default())?;
    Ok(Some(Head {
        method,
        target,
        version,
        request_line: line,
        host: fields.host,
        origin: fields.origin,
        referer: fields.referer,
        fetch_site: fields.fetch_site,
        user_agent: fields.user_agent,
        keep_alive: !fields.close && (fields.keep_alive || version == Version::Http11),
        body: fields.framing(version)?,
        len: end,
    }))
}

/// What the header fields say: the ones the service uses, the connection and the body.
#[derive(Default)]
struct Fields<'a> {
    host: Option<&'a [u8]>,
    origin: Option<&'a [u8]>,
    referer: Option<&'a [u8]>,
    fetch_site: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    close: bool,
    keep_alive: bool,
    content_length: Option<u64>,
    te: TransferEncoding,
}

impl<'a> Fields<'a> {
    /// Reads the field lines (the head minus its request line); the first of a repeated
    /// Host, Origin or Referer counts.
    fn scan(lines: &'a [u8]) -> Result<Fields<'a>, ParseError> {
        let mut f = Fields::default();
        let mut line_start = 0;
        for lf in memchr_iter(b'\n', lines) {
            let line = strip_cr(lines.get(line_start..lf).unwrap_or_default());
            line_start = lf + 1;
            if line.is_empty() {
                break;
            }
            let (name, value) = field(line)?;
            if name.eq_ignore_ascii_case(b"host") {
                f.host = f.host.or(Some(value));
            } else if name.eq_ignore_ascii_case(b"origin") {
                f.origin = f.origin.or(Some(value));
            } else if name.eq_ignore_ascii_case(b"referer") {
                f.referer = f.referer.or(Some(value));
            } else if name.eq_ignore_ascii_case(b"sec-fetch-site") {
                f.fetch_site = f.fetch_site.or(Some(value));
            } else if name.eq_ignore_ascii_case(b"user-agent") {
                f.user_agent = f.user_agent.or(Some(value));
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in list(value) {
                    f.close |= token.eq_ignore_ascii_case(b"close");
                    f.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case(b"content-length") {
                let n = decimal(value).ok_or(ParseError::Malformed)?;
                if f.content_length.is_some_and(|prev| prev != n) {
                    return Err(ParseError::Malformed);
                }
                f.content_length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                f.te.add(value)?;
            }
        }
        Ok(f)
    }

    fn framing(&self, version: Version) -> Result<BodyFraming, ParseError> {
        if self.te.seen {
            // CL+TE is the classic smuggling vector; HTTP/1.0 has no chunked framing
            // (RFC 9112 §6.1).
            if self.content_length.is_some() || version == Version::Http10 || self.te.codings == 0 {
                return Err(ParseError::Malformed);
            }
            if !self.te.last_chunked {
                return Err(ParseError::UnsupportedTransferEncoding);
            }
            return Ok(BodyFraming::Chunked);
        }
        match self.content_length {
            None | Some(0) => Ok(BodyFraming::None),
            Some(n) if n > MAX_BODY => Err(ParseError::BodyTooLarge),
            Some(n) => Ok(BodyFraming::Length(n)),
        }
    }
}

/// Index of the first byte after the blank lines RFC 9112 §2.2 lets us ignore; `None` if the
/// buffer ends inside them.
fn skip_blank_lines(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut i = 0;
    loop {
        match (buf.get(i), buf.get(i + 1)) {
            (Some(b'\n'), _) => i += 1,
            (Some(b'\r'), Some(b'\n')) => i += 2,
            (None, _) | (Some(b'\r'), None) => return Ok(None),
            (Some(b'\r'), Some(_)) => return Err(ParseError::Malformed),
            (Some(_), _) => return Ok(Some(i)),
        }
    }
}

/// End (exclusive) of the empty line that terminates the head, searching from the request
/// line's LF.
fn head_end(buf: &[u8], first_lf: usize) -> Option<usize> {
    let from = buf.get(first_lf..)?;
    memchr_iter(b'\n', from).find_map(|i| {
        let i = first_lf + i;
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        }
    })
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

type RequestLine<'a> = (&'a [u8], &'a [u8], Version);

/// `method SP request-target SP HTTP/1.x`, exactly. With `complete == false` the line is
/// still arriving: `Ok(None)` means "a valid prefix so far".
fn request_line(line: &[u8], complete: bool) -> Result<Option<RequestLine<'_>>, ParseError> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next();
    let version = parts.next();
    let ok = method.iter().all(|&b| is_tchar(b))
        && ((target.is_none() && !complete) || !method.is_empty())
        && target.is_none_or(|t| {
            t.iter().all(|&b| is_target_byte(b))
                && ((version.is_none() && !complete) || !t.is_empty())
        })
        && version.is_none_or(|v| version_prefix(v, complete));
    if !ok {
        return Err(ParseError::Malformed);
    }
    if !complete {
        return Ok(None);
    }
    match (target, version) {
        (Some(target), Some(v)) => {
            let version = if v.ends_with(b"1.0") {
                Version::Http10
            } else {
                Version::Http11
            };
            Ok(Some((method, target, version)))
        }
        _ => Err(ParseError::Malformed),
    }
}

/// `HTTP/1.<digit>` (higher 1.x minors are served as 1.1, RFC 9110 §6.2); other majors
/// (0.9, the HTTP/2 preface) are refused. An incomplete line may also end in the CR.
fn version_prefix(v: &[u8], complete: bool) -> bool {
    if complete && v.len() != 8 {
        return false;
    }
    v.iter().enumerate().all(|(i, &b)| match i {
        0..=6 => b"HTTP/1.".get(i) == Some(&b),
        7 => b.is_ascii_digit(),
        8 => !complete && b == b'\r',
        _ => false,
    })
}

/// The byte classes below, looked up once per byte instead of tested: a request head is
/// checked byte by byte, and this saves about a tenth of the work per request.
const TCHAR: u8 = 1;
const TARGET: u8 = 2;
const VALUE: u8 = 4;
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            c |= TCHAR;
        }
        if (b >= 0x21 && b < 0x7f) || b >= 0x80 {
            c |= TARGET;
        }
        if b == b'\t' || (b >= 0x20 && b < 0x7f) || b >= 0x80 {
            c |= VALUE;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// token characters (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    CLASS[usize::from(b)] & TCHAR != 0
}

/// Visible ASCII, plus obs-text that some clients send unencoded (logged escaped).
fn is_target_byte(b: u8) -> bool {
    CLASS[usize::from(b)] & TARGET != 0
}

/// field-value bytes (RFC 9110 §5.5): no CTLs but HTAB, so no NUL, bare CR or LF.
fn is_value_byte(b: u8) -> bool {
    CLASS[usize::from(b)] & VALUE != 0
}

/// `name: value` with the value's OWS trimmed. A leading SP/HTAB (obs-fold) or whitespace
/// before the colon makes the name invalid (RFC 9112 §5.1, §5.2).
fn field(line: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let colon = memchr(b':', line).ok_or(ParseError::Malformed)?;
    let (name, value) = line.split_at(colon);
    let value = trim_ows(value.get(1..).unwrap_or_default());
    if name.is_empty()
        || !name.iter().all(|&b| is_tchar(b))
        || !value.iter().all(|&b| is_value_byte(b))
    {
        return Err(ParseError::Malformed);
    }
    Ok((name, value))
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Non-empty elements of a comma-separated list (RFC 9110 §5.6.1).
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

/// 1*DIGIT; values too big for u64 saturate (and are then refused as too large).
fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[derive(Default)]
struct TransferEncoding {
    seen: bool,
    codings: usize,
    last_chunked: bool,
}

impl TransferEncoding {
    /// Codings accumulate over repeated headers; `chunked` may only be the final one.
    fn add(&mut self, value: &[u8]) -> Result<(), ParseError> {
        self.seen = true;
        for coding in list(value) {
            if self.last_chunked {
                return Err(ParseError::Malformed);
            }
            self.codings += 1;
            self.last_chunked = coding.eq_ignore_ascii_case(b"chunked");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_classes_match_their_definitions() {
        for b in 0..=255u8 {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), tchar, "{b:#x}");
            assert_eq!(
                is_target_byte(b),
                (0x21..0x7f).contains(&b) || b >= 0x80,
                "{b:#x}"
            );
            let value = b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80;
            assert_eq!(is_value_byte(b), value, "{b:#x}");
        }
    }

    fn ok(buf: &[u8]) -> Head<'_> {
        match parse(buf) {
            Ok(Some(h)) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn err(buf: &[u8]) -> ParseError {
        match parse(buf) {
            Err(e) => e,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn simple_get() {
        let req = b"GET /ad.gif HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = ok(req);
        assert_eq!(h.method, b"GET");
        assert_eq!(h.target, b"/ad.gif");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.request_line, b"GET /ad.gif HTTP/1.1");
        assert_eq!(h.host, Some(&b"a"[..]));
        assert_eq!(h.origin, None);
        assert!(h.keep_alive);
        assert_eq!(h.body, BodyFraming::None);
        assert_eq!(h.len, req.len());
    }

    #[test]
    fn every_split_point_is_incomplete_until_the_end() {
        let req: &[u8] = b"\r\n\nPOST /t HTTP/1.1\r\nHost: x\r\nOrigin:  null \r\n\
            Content-Length: 5\r\nConnection: close\r\n\r\nhello";
        let head_len = req.len() - 5;
        for i in 0..head_len {
            assert_eq!(parse(&req[..i]), Ok(None), "split at {i}");
        }
        for i in head_len..=req.len() {
            let h = ok(&req[..i]);
            assert_eq!(h.len, head_len);
            assert_eq!(h.origin, Some(&b"null"[..]));
            assert_eq!(h.body, BodyFraming::Length(5));
            assert!(!h.keep_alive);
            assert_eq!(h.request_line, b"POST /t HTTP/1.1");
        }
    }

    #[test]
    fn pipelined_heads_follow_each_other() {
        let buf = b"GET /a.gif HTTP/1.1\r\n\r\nGET /b.png HTTP/1.1\nHost: b\n\nGET /c";
        let a = ok(buf);
        assert_eq!(a.target, b"/a.gif");
        let rest = &buf[a.len..];
        let b = ok(rest);
        assert_eq!(b.target, b"/b.png");
        assert_eq!(b.host, Some(&b"b"[..]));
        assert_eq!(parse(&rest[b.len..]), Ok(None));
    }

    #[test]
    fn lf_only_and_leading_blank_lines() {
        let h = ok(b"\n\r\n\nGET / HTTP/1.0\nHost:a.com\n\n");
        assert_eq!(h.len, 31);
        assert_eq!(h.version, Version::Http10);
        assert_eq!(h.host, Some(&b"a.com"[..]));
        assert!(!h.keep_alive);
        assert_eq!(parse(b"\r\n\r\n\r"), Ok(None));
        assert_eq!(parse(b""), Ok(None));
        // A blank "request" is never answered: it is skipped with the next head.
        assert_eq!(parse(b"\r\n"), Ok(None));
        assert_eq!(err(b"\r\rGET / HTTP/1.1\r\n\r\n"), ParseError::Malformed);
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |r: &[u8]| ok(r).keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: foo,keep-alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
        ));
        assert!(ka(
            b"GET / HTTP/1.1\r\nConnection: closed\r\nConnection: x\r\n\r\n"
        ));
        // HTTP/1.2 is served as 1.1.
        assert!(ka(b"GET / HTTP/1.2\r\n\r\n"));
    }

    #[test]
    fn header_names_case_insensitive_first_occurrence_trimmed() {
        let h = ok(b"GET / HTTP/1.1\r\nhOST: \t a.com \t\r\nHost: b.com\r\n\
            ORIGIN: https://www.site.com\r\nX-Origin: evil\r\nreferer: http://r/\r\n\r\n");
        assert_eq!(h.host, Some(&b"a.com"[..]));
        assert_eq!(h.origin, Some(&b"https://www.site.com"[..]));
        assert_eq!(h.referer, Some(&b"http://r/"[..]));
        let h = ok(b"GET / HTTP/1.1\r\nX-Origin: evil\r\nX-Forwarded-Host: h\r\n\r\n");
        assert_eq!((h.origin, h.host), (None, None));
        let h = ok(b"GET / HTTP/1.1\r\nOrigin:\r\n\r\n");
        assert_eq!(h.origin, Some(&b""[..]));
    }

    #[test]
    fn malformed_request_lines() {
        for bad in [
            &b"GET  / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1 \r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"GET\t/ HTTP/1.1\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"GET / HTTP/1.1x\r\n\r\n",
            b"GET / HTTP/11\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/0.9\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET /a\x00b HTTP/1.1\r\n\r\n",
            b"GET /a\rb HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\r\n\r\n",
        ] {
            assert_eq!(
                err(bad),
                ParseError::Malformed,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn garbage_is_refused_before_the_line_ends() {
        // Start of a TLS ClientHello: no LF for a long time, rejected at once.
        assert_eq!(
            err(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            ParseError::Malformed
        );
        assert_eq!(err(b"GET /x HTTP/2"), ParseError::Malformed);
        assert_eq!(err(b"GET /x\x01"), ParseError::Malformed);
        assert_eq!(err(b"GET /x HTTP/1.1\rX"), ParseError::Malformed);
        assert_eq!(err(b"GET  "), ParseError::Malformed);
        for prefix in [
            "G",
            "GET",
            "GET ",
            "GET /",
            "GET / ",
            "GET / HTTP/1.",
            "GET / HTTP/1.1\r",
        ] {
            assert_eq!(parse(prefix.as_bytes()), Ok(None), "{prefix:?}");
        }
    }

    #[test]
    fn malformed_fields() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\n: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \x7f\r\n\r\n",
            b"GET / HTTP/1.1\r\n\rX: a\r\n\r\n",
        ] {
            assert_eq!(
                err(bad),
                ParseError::Malformed,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // obs-text and HTAB are legal in values.
        let req = b"GET / HTTP/1.1\r\nX: a\tb\xff\r\n\r\n";
        assert_eq!(ok(req).len, req.len());
    }

    #[test]
    fn content_length_rules() {
        let body = |r: &[u8]| ok(r).body;
        assert_eq!(
            body(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            BodyFraming::None
        );
        assert_eq!(
            body(b"POST / HTTP/1.1\r\ncontent-length:12\r\n\r\n"),
            BodyFraming::Length(12)
        );
        assert_eq!(
            body(b"POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n"),
            BodyFraming::Length(7)
        );
        assert_eq!(
            body(b"POST / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n"),
            BodyFraming::Length(MAX_BODY)
        );
        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        ] {
            assert_eq!(
                err(bad),
                ParseError::Malformed,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let e = err(b"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n");
        assert_eq!((e, e.status()), (ParseError::BodyTooLarge, 413));
        let e = err(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(e, ParseError::BodyTooLarge);
    }

    #[test]
    fn transfer_encoding_rules() {
        let body = |r: &[u8]| ok(r).body;
        assert_eq!(
            body(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            BodyFraming::Chunked
        );
        assert_eq!(
            body(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: , CHUNKED\r\n\r\n"),
            BodyFraming::Chunked
        );
        let e = err(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(
            (e, e.status()),
            (ParseError::UnsupportedTransferEncoding, 501)
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            ParseError::Malformed
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ParseError::Malformed
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n"),
            ParseError::Malformed
        );
        // Smuggling: CL with TE, whatever the order.
        for req in [
            &b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let e = err(req);
            assert_eq!((e, e.status()), (ParseError::Malformed, 400));
        }
    }

    #[test]
    fn head_size_limit() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD - 1, b'a');
        assert_eq!(parse(&big), Ok(None));
        big.push(b'a');
        let e = err(&big);
        assert_eq!((e, e.status()), (ParseError::HeadTooLarge, 431));
        // Completing after the limit does not help.
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(err(&big), ParseError::HeadTooLarge);
        // A head of exactly MAX_HEAD bytes is fine, whatever follows it.
        let mut exact = b"GET / HTTP/1.1\r\nX: ".to_vec();
        exact.resize(MAX_HEAD - 4, b'a');
        exact.extend_from_slice(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!(ok(&exact).len, MAX_HEAD);
        // Endless blank lines count towards the limit.
        assert_eq!(err(&[b'\n'; MAX_HEAD]), ParseError::HeadTooLarge);
    }

    #[test]
    fn targets_are_kept_verbatim() {
        assert_eq!(
            ok(b"GET http://h/p.png?x=1 HTTP/1.1\r\n\r\n").target,
            b"http://h/p.png?x=1"
        );
        assert_eq!(ok(b"OPTIONS * HTTP/1.1\r\n\r\n").target, b"*");
        assert_eq!(ok(b"GET ? HTTP/1.1\r\n\r\n").target, b"?");
        assert_eq!(ok(b"get /x HTTP/1.1\r\n\r\n").method, b"get");
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut seed = 0x1234_5678_u32;
        let alphabet = b"GET / HTTP/1.1\r\n:,;Content-Length0123456789chunked \t\x00\xff";
        for _ in 0..20_000 {
            let len = (seed % 64) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    alphabet[seed as usize % alphabet.len()]
                })
                .collect();
            if let Ok(Some(h)) = parse(&buf) {
                assert!(h.len <= buf.len());
            }
        }
    }
}
