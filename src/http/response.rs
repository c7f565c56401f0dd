//! Response bytes: the original's headers (COMPATIBILITY.md §5.4, same names and capitalisation)
//! with its protocol defects fixed (DEFECTS.md #29): every response has a correct Content-Length,
//! `Connection:` follows the request, the 404 has no stray NUL, HEAD gets GET's headers.
//! Fixed responses are compile-time strings in both Connection variants; writers only
//! append to `out`.

use std::io::Write;

use super::assets::Asset;
use super::limits::MAX_ORIGIN;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub keep_alive: bool,
    /// HEAD: the headers of the GET response (Content-Length included), no body.
    pub head_only: bool,
}

/// `(close, keep-alive)` variants of a head: status, `$before` lines, `Connection:`,
/// `$after` lines, empty line.
macro_rules! head {
    ($status:literal, [$($before:literal),*], [$($after:literal),*]) => {
        (
            head!(@ $status, [$($before),*], "close", [$($after),*]),
            head!(@ $status, [$($before),*], "keep-alive", [$($after),*]),
        )
    };
    (@ $status:literal, [$($before:literal),*], $conn:literal, [$($after:literal),*]) => {
        concat!(
            "HTTP/1.1 ", $status, "\r\n",
            $($before, "\r\n",)*
            "Connection: ", $conn, "\r\n",
            $($after, "\r\n",)*
            "\r\n"
        )
    };
}

type Pair = (&'static str, &'static str);

const GIF: Pair = head!(
    "200 OK",
    ["Content-type: image/gif", "Content-length: 42"],
    []
);
const PNG: Pair = head!(
    "200 OK",
    ["Content-type: image/png", "Content-length: 67"],
    []
);
const JPEG: Pair = head!(
    "200 OK",
    ["Content-type: image/jpeg", "Content-length: 159"],
    []
);
const SWF: Pair = head!(
    "200 OK",
    [
        "Content-type: application/x-shockwave-flash",
        "Content-length: 25"
    ],
    []
);
const ICO: Pair = head!(
    "200 OK",
    [
        "Content-type: image/x-icon",
        "Cache-Control: max-age=2592000",
        "Content-length: 70"
    ],
    []
);
const FAVICON: Pair = head!(
    "200 OK",
    ["Content-type: image/x-icon", "Content-length: 598"],
    []
);
const NO_CONTENT: Pair = head!(
    "204 No Content",
    [
        "Content-Length: 0",
        "Content-Type: text/html; charset=UTF-8"
    ],
    []
);
const OPTIONS: Pair = head!(
    "200 OK",
    [
        "Content-type: text/html",
        "Content-length: 11",
        "Allow: GET,OPTIONS"
    ],
    []
);
const OPTIONS_BODY: &[u8] = b"GET,OPTIONS";
const NOT_IMPLEMENTED: Pair = head!("501 Method Not Implemented", [], ["Content-Length: 0"]);
/// TEXT up to its optional CORS block; the empty line follows it.
const TEXT: Pair = (
    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: close\r\n\
     Content-Length: 0\r\n",
    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: keep-alive\r\n\
     Content-Length: 0\r\n",
);

fn pick(pair: Pair, mode: Mode) -> &'static [u8] {
    if mode.keep_alive { pair.1 } else { pair.0 }.as_bytes()
}

fn write_fixed(head: Pair, body: &[u8], mode: Mode, out: &mut Vec<u8>) {
    out.extend_from_slice(pick(head, mode));
    if !mode.head_only {
        out.extend_from_slice(body);
    }
}

pub fn write_asset(a: Asset, mode: Mode, out: &mut Vec<u8>) {
    let head = match a {
        Asset::Gif => GIF,
        Asset::Png => PNG,
        Asset::Jpeg => JPEG,
        Asset::Swf => SWF,
        Asset::Ico => ICO,
        Asset::Favicon => FAVICON,
    };
    write_fixed(head, a.bytes(), mode, out);
}

pub fn write_no_content(mode: Mode, out: &mut Vec<u8>) {
    write_fixed(NO_CONTENT, b"", mode, out);
}

pub fn write_options(mode: Mode, out: &mut Vec<u8>) {
    write_fixed(OPTIONS, OPTIONS_BODY, mode, out);
}

pub fn write_not_implemented(mode: Mode, out: &mut Vec<u8>) {
    write_fixed(NOT_IMPLEMENTED, b"", mode, out);
}

/// The empty 200, with the CORS block for this request's Origin (never a remembered one).
pub fn write_text(origin: Option<&[u8]>, mode: Mode, out: &mut Vec<u8>) {
    out.extend_from_slice(pick(TEXT, mode));
    write_cors(origin, out);
    out.extend_from_slice(b"\r\n");
}

/// 307 to `location`, which must come from `redirect::decode_target` (already clean).
pub fn write_redirect(location: &[u8], origin: Option<&[u8]>, mode: Mode, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: ");
    out.extend_from_slice(location);
    out.extend_from_slice(b"\r\nContent-type: text/plain\r\nContent-length: 0\r\n");
    out.extend_from_slice(connection(mode));
    write_cors(origin, out);
    out.extend_from_slice(b"\r\n");
}

/// Stats pages: `status` like `200 OK`, headers spelt like the original's stats responses.
pub fn write_body(status: &str, content_type: &str, body: &[u8], mode: Mode, out: &mut Vec<u8>) {
    write_sized(
        status,
        ("Content-type", "Content-length"),
        content_type,
        body,
        mode,
        out,
    );
}

/// `/ca.crt`: the CACERT headers of COMPATIBILITY.md §5.4 minus `Accept-Ranges` (ranges are
/// not served).
pub fn write_ca_cert(cert: &[u8], mode: Mode, out: &mut Vec<u8>) {
    let names = ("Content-Type", "Content-Length");
    write_sized(
        "200 OK",
        names,
        "application/x-x509-ca-cert",
        cert,
        mode,
        out,
    );
}

/// The head of the setup page (`http::setup`): never cached, since it differs by
/// User-Agent and shows the current CA; inline style and script only, images from HTTPS.
const PAGE: Pair = head!(
    "200 OK",
    [
        "Content-Type: text/html; charset=utf-8",
        "Cache-Control: no-store",
        "Content-Security-Policy: default-src 'none'; img-src 'self' https:; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        "X-Content-Type-Options: nosniff"
    ],
    []
);

/// The setup page: its head with `Content-Length: len`, then `body`'s pieces (unless HEAD).
pub fn write_page(body: &[&[u8]], mode: Mode, out: &mut Vec<u8>) {
    let len: usize = body.iter().map(|p| p.len()).sum();
    let head = pick(PAGE, mode);
    // The head without its empty line, then the length, then the empty line.
    out.extend_from_slice(&head[..head.len() - 2]);
    // Writing to a Vec cannot fail.
    let _ = write!(out, "Content-Length: {len}\r\n\r\n");
    if !mode.head_only {
        for piece in body {
            out.extend_from_slice(piece);
        }
    }
}

/// A request the server will not serve; the connection closes after it. 400, 408, 413,
/// 431, 500 and 501 are known; anything else is sent as 400.
pub fn write_error(status: u16, out: &mut Vec<u8>) {
    let line: &[u8] = match status {
        408 => b"408 Request Timeout",
        500 => b"500 Internal Server Error",
        413 => b"413 Content Too Large",
        431 => b"431 Request Header Fields Too Large",
        501 => b"501 Not Implemented",
        _ => b"400 Bad Request",
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
}

fn write_sized(
    status: &str,
    (type_name, length_name): (&str, &str),
    content_type: &str,
    body: &[u8],
    mode: Mode,
    out: &mut Vec<u8>,
) {
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\n{type_name}: {content_type}\r\n{length_name}: {}\r\n",
        body.len()
    );
    out.extend_from_slice(connection(mode));
    out.extend_from_slice(b"\r\n");
    if !mode.head_only {
        out.extend_from_slice(body);
    }
}

fn connection(mode: Mode) -> &'static [u8] {
    if mode.keep_alive {
        b"Connection: keep-alive\r\n"
    } else {
        b"Connection: close\r\n"
    }
}

/// The original's CORS block (COMPATIBILITY.md §5.6). `null` is reflected as is: `*` with
/// credentials is invalid. An Origin that could break the header, or is empty or oversized,
/// gets none.
fn write_cors(origin: Option<&[u8]>, out: &mut Vec<u8>) {
    let Some(origin) = origin.filter(|o| {
        !o.is_empty() && o.len() <= MAX_ORIGIN && o.iter().all(|&b| b >= 0x20 && b != 0x7f)
    }) else {
        return;
    };
    out.extend_from_slice(b"Access-Control-Allow-Origin: ");
    out.extend_from_slice(origin);
    out.extend_from_slice(
        b"\r\nAccess-Control-Allow-Credentials: true\r\n\
          Access-Control-Allow-Headers: Origin, X-Requested-With, Content-Type, Accept, \
          documentReferer\r\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const KA: Mode = Mode {
        keep_alive: true,
        head_only: false,
    };
    const CLOSE: Mode = Mode {
        keep_alive: false,
        head_only: false,
    };
    const HEAD_KA: Mode = Mode {
        keep_alive: true,
        head_only: true,
    };

    fn render(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    /// Splits a response into (head incl. the empty line, body) and checks Content-Length.
    fn split_checked(resp: &[u8]) -> (String, Vec<u8>) {
        let end = memchr::memmem::find(resp, b"\r\n\r\n").expect("no end of head") + 4;
        let head = text(&resp[..end]);
        let body = resp[end..].to_vec();
        let lengths: Vec<usize> = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.trim().parse().unwrap())
            .collect();
        assert_eq!(lengths, vec![body.len()], "{head}");
        assert!(!head.contains("\r\n\r\n\r\n"));
        assert_eq!(
            head.matches("\r\n").count(),
            head.matches('\n').count(),
            "bare LF"
        );
        (head, body)
    }

    #[test]
    fn assets_exact_in_both_connection_modes() {
        let cases = [
            (Asset::Gif, "Content-type: image/gif\r\nContent-length: 42\r\n"),
            (Asset::Png, "Content-type: image/png\r\nContent-length: 67\r\n"),
            (Asset::Jpeg, "Content-type: image/jpeg\r\nContent-length: 159\r\n"),
            (Asset::Swf, "Content-type: application/x-shockwave-flash\r\nContent-length: 25\r\n"),
            (
                Asset::Ico,
                "Content-type: image/x-icon\r\nCache-Control: max-age=2592000\r\nContent-length: 70\r\n",
            ),
            (Asset::Favicon, "Content-type: image/x-icon\r\nContent-length: 598\r\n"),
        ];
        for (asset, lines) in cases {
            for (mode, conn) in [(KA, "keep-alive"), (CLOSE, "close")] {
                let resp = render(|o| write_asset(asset, mode, o));
                let (head, body) = split_checked(&resp);
                assert_eq!(
                    head,
                    format!("HTTP/1.1 200 OK\r\n{lines}Connection: {conn}\r\n\r\n")
                );
                assert_eq!(body, asset.bytes());
            }
            let head_only = render(|o| write_asset(asset, HEAD_KA, o));
            let get = render(|o| write_asset(asset, KA, o));
            assert_eq!(head_only, get[..get.len() - asset.bytes().len()]);
        }
    }

    #[test]
    fn jpeg_keeps_alive_now() {
        let resp = render(|o| write_asset(Asset::Jpeg, KA, o));
        assert!(text(&resp).contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn no_content_options_not_implemented() {
        assert_eq!(
            text(&render(|o| write_no_content(KA, o))),
            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nContent-Type: text/html; charset=UTF-8\r\n\
             Connection: keep-alive\r\n\r\n"
        );
        let opt = render(|o| write_options(CLOSE, o));
        assert_eq!(
            text(&opt),
            "HTTP/1.1 200 OK\r\nContent-type: text/html\r\nContent-length: 11\r\n\
             Allow: GET,OPTIONS\r\nConnection: close\r\n\r\nGET,OPTIONS"
        );
        split_checked(&opt);
        let ni = render(|o| write_not_implemented(KA, o));
        assert_eq!(
            text(&ni),
            "HTTP/1.1 501 Method Not Implemented\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        );
        split_checked(&ni);
    }

    #[test]
    fn text_with_and_without_cors() {
        let plain = render(|o| write_text(None, KA, o));
        assert_eq!(
            text(&plain),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: keep-alive\r\n\
             Content-Length: 0\r\n\r\n"
        );
        assert_eq!(plain, render(|o| write_text(None, HEAD_KA, o)));
        let cors = render(|o| write_text(Some(b"https://www.site.com"), CLOSE, o));
        assert_eq!(
            text(&cors),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: close\r\n\
             Content-Length: 0\r\nAccess-Control-Allow-Origin: https://www.site.com\r\n\
             Access-Control-Allow-Credentials: true\r\nAccess-Control-Allow-Headers: Origin, \
             X-Requested-With, Content-Type, Accept, documentReferer\r\n\r\n"
        );
        split_checked(&cors);
        let null = render(|o| write_text(Some(b"null"), KA, o));
        assert!(text(&null).contains("\r\nAccess-Control-Allow-Origin: null\r\n"));
    }

    #[test]
    fn cors_only_for_the_request_that_sent_origin() {
        let buf =
            b"GET /a.js HTTP/1.1\r\nOrigin: https://www.site.com\r\n\r\nGET /b.js HTTP/1.1\r\n\r\n";
        let first = crate::http::parser::parse(buf).unwrap().unwrap();
        let second = crate::http::parser::parse(&buf[first.len..])
            .unwrap()
            .unwrap();
        let a = render(|o| write_text(first.origin, KA, o));
        let b = render(|o| write_text(second.origin, KA, o));
        assert!(text(&a).contains("Access-Control-Allow-Origin: https://www.site.com\r\n"));
        assert!(!text(&b).contains("Access-Control"));
    }

    #[test]
    fn hostile_origins_get_no_cors() {
        let long = vec![b'a'; MAX_ORIGIN + 1];
        for o in [
            &b"a\r\nSet-Cookie: x"[..],
            b"a\nb",
            b"a\x00",
            b"a\tb",
            b"a\x7f",
            b"",
            &long,
        ] {
            let resp = render(|out| write_text(Some(o), KA, out));
            assert!(!text(&resp).contains("Access-Control"), "{o:?}");
            split_checked(&resp);
        }
        let ok = vec![b'a'; MAX_ORIGIN];
        assert!(text(&render(|out| write_text(Some(&ok), KA, out))).contains("Access-Control"));
    }

    #[test]
    fn redirect_exact() {
        let resp = render(|o| write_redirect(b"http://b.com/z", None, KA, o));
        assert_eq!(
            text(&resp),
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://b.com/z\r\nContent-type: text/plain\r\n\
             Content-length: 0\r\nConnection: keep-alive\r\n\r\n"
        );
        let resp = render(|o| write_redirect(b"http://b.com/z", Some(b"http://o"), CLOSE, o));
        let (head, _) = split_checked(&resp);
        assert!(head.ends_with(
            "Connection: close\r\nAccess-Control-Allow-Origin: http://o\r\n\
             Access-Control-Allow-Credentials: true\r\nAccess-Control-Allow-Headers: Origin, \
             X-Requested-With, Content-Type, Accept, documentReferer\r\n\r\n"
        ));
    }

    #[test]
    fn sized_bodies() {
        let resp = render(|o| write_body("200 OK", "text/plain", b"uts 1\n", KA, o));
        assert_eq!(
            text(&resp),
            "HTTP/1.1 200 OK\r\nContent-type: text/plain\r\nContent-length: 6\r\n\
             Connection: keep-alive\r\n\r\nuts 1\n"
        );
        let head = render(|o| write_body("200 OK", "text/plain", b"uts 1\n", HEAD_KA, o));
        assert_eq!(head, resp[..resp.len() - 6]);
        let ca = render(|o| write_ca_cert(b"-----BEGIN", CLOSE, o));
        assert_eq!(
            text(&ca),
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-x509-ca-cert\r\nContent-Length: 10\r\n\
             Connection: close\r\n\r\n-----BEGIN"
        );
        split_checked(&ca);
    }

    #[test]
    fn errors_close() {
        for (status, line) in [
            (400, "400 Bad Request"),
            (408, "408 Request Timeout"),
            (413, "413 Content Too Large"),
            (431, "431 Request Header Fields Too Large"),
            (501, "501 Not Implemented"),
            (999, "400 Bad Request"),
        ] {
            let resp = render(|o| write_error(status, o));
            assert_eq!(
                text(&resp),
                format!("HTTP/1.1 {line}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            );
        }
    }

    #[test]
    fn appending_keeps_earlier_bytes() {
        let mut out = b"PREV".to_vec();
        write_asset(Asset::Gif, KA, &mut out);
        write_text(None, KA, &mut out);
        assert!(out.starts_with(b"PREVHTTP/1.1 200 OK\r\nContent-type: image/gif"));
        assert!(out.ends_with(b"Content-Length: 0\r\n\r\n"));
    }
}
