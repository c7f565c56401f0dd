//! Bytes from a client → request head → dispatch → rendered response (and the body, if
//! the head announces one). Every response must be well-framed and unable to carry
//! request bytes into a new header line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelserv::http::body::BodyDecoder;
use pixelserv::http::dispatch::{dispatch, Reply, Settings};
use pixelserv::http::limits;
use pixelserv::http::parser::{self, BodyFraming, Head};
use pixelserv::http::service::{self, Request, Site};
use pixelserv::http::setup::SetupPage;
use pixelserv::stats::{Gauges, Snapshot, Stats};

const CA_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn site(variant: bool) -> Site {
    Site {
        settings: Settings {
            disable_204: variant,
            redirect: true,
            stats_html_url: "/servstats".into(),
            stats_text_url: "/servstats.txt".into(),
        },
        ca_pem: CA_PEM.to_vec(),
        version: "pixelserv-tls fuzz".into(),
        setup: SetupPage::with_ca_details("Pixelserv CA <fuzz>", "AB:CD", 443, &hosts()),
    }
}

fn hosts() -> Vec<String> {
    vec!["setup.lan".into(), "192.168.1.2".into()]
}

/// The address every fuzzed request arrived at: Host 127.0.0.1 at `/` is the setup page.
fn local() -> Option<std::net::IpAddr> {
    Some(std::net::Ipv4Addr::LOCALHOST.into())
}

fn request<'a>(head: &'a Head<'a>, admin: bool) -> Request<'a> {
    Request {
        head,
        admin,
        tls: None,
        peer: std::net::Ipv4Addr::LOCALHOST.into(),
        early_data: false,
        local: &local,
    }
}

/// The server's own renderer, without its side effects (log level, access log).
fn render(head: &Head, admin: bool, reply: &Reply, site: &Site, out: &mut Vec<u8>) {
    let stats = Stats::new();
    let snapshot = Snapshot {
        stats: &stats,
        gauges: Gauges::default(),
    };
    service::render(&request(head, admin), reply, site, Some(&snapshot), out);
}

/// (head without its empty line, body); panics unless the response is well-formed: CRLF
/// line endings only, no CR, LF or NUL inside a line, exactly one correct Content-Length.
fn check(resp: &[u8]) -> (&[u8], &[u8]) {
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head");
    let (head, body) = (&resp[..end], &resp[end + 4..]);
    let text = || String::from_utf8_lossy(head);
    let segments: Vec<&[u8]> = head.split(|&b| b == b'\n').collect();
    let last = segments.len() - 1;
    let mut lengths = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let line = match seg.strip_suffix(b"\r") {
            Some(line) if i < last => line,
            _ => {
                assert_eq!(i, last, "bare LF in {:?}", text());
                seg
            }
        };
        assert!(
            !line.iter().any(|&b| b == b'\r' || b == 0),
            "bad line {:?}",
            String::from_utf8_lossy(line)
        );
        if i == 0 {
            assert!(line.starts_with(b"HTTP/1.1 "), "{:?}", text());
            continue;
        }
        let colon = line.iter().position(|&b| b == b':');
        let colon = colon.unwrap_or_else(|| panic!("no colon in {:?}", text()));
        let (name, value) = line.split_at(colon);
        assert!(!name.is_empty(), "{:?}", text());
        if name.eq_ignore_ascii_case(b"content-length") {
            let v = std::str::from_utf8(&value[1..]).expect("ascii length");
            lengths.push(v.trim().parse::<usize>().expect("numeric length"));
        }
    }
    assert_eq!(lengths, [body.len()], "{:?}", text());
    (head, body)
}

fuzz_target!(|data: &[u8]| {
    let head = match parser::parse(data) {
        Ok(Some(head)) => head,
        Ok(None) | Err(_) => return,
    };
    assert!(head.len > 0 && head.len <= data.len() && head.len <= limits::MAX_HEAD);
    assert!(!head.method.is_empty() && !head.target.is_empty());

    for admin in [false, true] {
        for variant in [false, true] {
            let site = site(variant);
            let decision = dispatch(&head, admin, &site.settings);
            // What the service answers: the same, or the setup page instead of an empty `/`.
            let served = request(&head, admin).decide(&site);
            if served.reply == Reply::Setup {
                assert_eq!(decision.reply, Reply::Text);
            } else {
                assert!(served.reply == decision.reply || decision.reply != Reply::Text);
            }
            if let Reply::SetLogLevel(n) = decision.reply {
                assert!(admin && n <= 5 && decision.counter.is_none());
            } else {
                assert!(decision.counter.is_some());
            }
            // The decision rendered for GET and for HEAD: HEAD gets exactly GET's head,
            // Content-Length included, and no body; both connection modes frame well.
            for keep_alive in [false, true] {
                let as_get = Head {
                    method: b"GET",
                    keep_alive,
                    ..head.clone()
                };
                let as_head = Head {
                    method: b"HEAD",
                    ..as_get.clone()
                };
                for reply in [&decision.reply, &served.reply] {
                    let mut get = Vec::new();
                    render(&as_get, admin, reply, &site, &mut get);
                    let (get_head, _) = check(&get);
                    let mut only = Vec::new();
                    render(&as_head, admin, reply, &site, &mut only);
                    assert_eq!(&only[..], &get[..get_head.len() + 4]);
                }
            }
        }
    }

    if head.body != BodyFraming::None {
        let rest = &data[head.len..];
        // Two reads, split where the first byte after the head says, as a socket might.
        let cut = rest
            .first()
            .map_or(0, |&b| usize::from(b) % (rest.len() + 1));
        let mut decoder = BodyDecoder::new(head.body);
        let mut data_len = 0usize;
        let mut total = 0usize;
        for part in [&rest[..cut], &rest[cut..]] {
            match decoder.feed(part, &mut |d| data_len += d.len()) {
                Ok(feed) => {
                    assert!(feed.consumed <= part.len());
                    assert!(feed.done || feed.consumed == part.len());
                    total += feed.consumed;
                    if feed.done {
                        break;
                    }
                }
                Err(_) => {
                    // How far it got is not reported; it cannot be past this part.
                    assert!(data_len <= total + part.len());
                    break;
                }
            }
        }
        assert!(data_len <= total + rest.len() && total <= rest.len());
        if let BodyFraming::Length(n) = head.body {
            assert_eq!(data_len, total);
            assert!(total as u64 <= n);
        }
    }
});
