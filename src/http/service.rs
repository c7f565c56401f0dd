//! The HTTP service: a parsed request and its dispatch decision in, the response bytes out,
//! plus the side effects a request may have (`/log=N`, the access log). Knows nothing of
//! sockets or TLS beyond the version label it logs.

use std::net::IpAddr;

use super::dispatch::{Decision, Reply, Settings, StatsPage};
use super::limits::POST_LOG_MAX;
use super::parser::Head;
use super::response::{self, Mode};
use super::setup::SetupPage;
use crate::log::{self, INFO};
use crate::plog;
use crate::stats::pages;
use crate::stats::{Counter, Snapshot, TlsVersion};

/// What the service needs that does not change while the server runs.
#[derive(Clone)]
pub struct Site {
    pub settings: Settings,
    /// `/ca.crt` body: the CA chain re-encoded from the certificates parsed at startup.
    pub ca_pem: Vec<u8>,
    /// The version line at the top of the stats pages.
    pub version: String,
    pub setup: SetupPage,
}

/// One request as the service sees it.
pub struct Request<'a> {
    pub head: &'a Head<'a>,
    /// Admin URIs are allowed on this connection.
    pub admin: bool,
    pub tls: Option<TlsVersion>,
    pub peer: IpAddr,
    /// It arrived in TLS 1.3 early data, which an attacker can replay.
    pub early_data: bool,
    /// The address the client connected to (asked only for the setup page).
    pub local: &'a dyn Fn() -> Option<IpAddr>,
}

impl Request<'_> {
    /// What to answer. `/log=N` changes server state, so it is honoured only when typed in
    /// or sent by a tool: a web page could trigger it with an `<img>` (CSRF), and a replay
    /// of early data could repeat it. Refused, it is answered as for anyone else.
    pub fn decide(&self, site: &Site) -> Decision {
        let d = super::dispatch::dispatch(self.head, self.admin, &site.settings);
        if matches!(d.reply, Reply::SetLogLevel(_))
            && (self.early_data || from_another_site(self.head))
        {
            return super::dispatch::dispatch(self.head, false, &site.settings);
        }
        if d.reply == Reply::Text && self.wants_setup(site) {
            return Decision {
                reply: Reply::Setup,
                ..d
            };
        }
        d
    }

    /// A GET or HEAD of `/` at the server's own address, which would get the empty answer.
    /// Browsers send `/` as it is; an absolute-form target (a proxy's, naming its host
    /// itself) never gets the page.
    fn wants_setup(&self, site: &Site) -> bool {
        matches!(self.head.method, b"GET" | b"HEAD")
            && self.head.target == b"/"
            && self
                .head
                .host
                .is_some_and(|host| site.setup.serves(host, self.local))
    }

    fn mode(&self) -> Mode {
        Mode {
            keep_alive: self.head.keep_alive,
            head_only: self.head.method == b"HEAD",
        }
    }
}

/// Whether a browser says, or the request's Origin or Referer shows, that a page of another
/// site sent it. Without any of those headers it was typed in or sent by a tool.
fn from_another_site(head: &Head) -> bool {
    if let Some(site) = head.fetch_site {
        if site.eq_ignore_ascii_case(b"cross-site") || site.eq_ignore_ascii_case(b"same-site") {
            return true;
        }
    }
    let Some(source) = head.origin.or(head.referer) else {
        return false;
    };
    match (authority(source), head.host) {
        (Some(from), Some(host)) => !from.eq_ignore_ascii_case(host.trim_ascii()),
        // `Origin: null`, a URL without a host, or no Host to compare with.
        _ => true,
    }
}

/// `host[:port]` of an absolute `http(s)://` URL.
fn authority(url: &[u8]) -> Option<&[u8]> {
    let url = url.trim_ascii();
    let rest = [&b"http://"[..], b"https://"].iter().find_map(|scheme| {
        url.get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &url[scheme.len()..])
    })?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let auth = &rest[..end];
    // Userinfo would let `http://router@evil.example` look like `router`.
    (!auth.is_empty() && !auth.contains(&b'@')).then_some(auth)
}

/// Renders the response for `decision` into `out`, applies its side effects and writes the
/// access log line; returns the counter to count. `snapshot` must be given for stats pages
/// (`Reply::needs_snapshot`).
pub fn respond(
    req: &Request,
    decision: &Decision,
    site: &Site,
    snapshot: Option<&Snapshot>,
    out: &mut Vec<u8>,
) -> Option<Counter> {
    if let Reply::SetLogLevel(level) = decision.reply {
        log::set_level(level);
    }
    render(req, &decision.reply, site, snapshot, out);
    if log::enabled(INFO) {
        plog!(
            INFO,
            "{} {} {} tls_{}",
            req.peer,
            log::escape_capped(req.head.host.unwrap_or(b"")),
            log::escape_capped(req.head.request_line),
            req.tls.map_or("none", TlsVersion::label)
        );
    }
    decision.counter
}

/// The response bytes of `reply`, without side effects.
pub fn render(
    req: &Request,
    reply: &Reply,
    site: &Site,
    snapshot: Option<&Snapshot>,
    out: &mut Vec<u8>,
) {
    let mode = req.mode();
    let origin = req.head.origin;
    match reply {
        Reply::Asset(asset) => response::write_asset(*asset, mode, out),
        Reply::NoContent => response::write_no_content(mode, out),
        Reply::Options => response::write_options(mode, out),
        Reply::NotImplemented => response::write_not_implemented(mode, out),
        Reply::Text | Reply::SetLogLevel(_) => response::write_text(origin, mode, out),
        Reply::Redirect(location) => response::write_redirect(location, origin, mode, out),
        Reply::CaCert => response::write_ca_cert(&site.ca_pem, mode, out),
        Reply::Setup => site.setup.write(req.head.user_agent, mode, out),
        Reply::Stats(page) => match snapshot {
            Some(s) => write_stats(*page, &site.version, s, mode, out),
            // A caller that forgot the snapshot gets an error, not a page of zeros.
            None => response::write_error(500, out),
        },
    }
}

fn write_stats(page: StatsPage, version: &str, s: &Snapshot, mode: Mode, out: &mut Vec<u8>) {
    let (body, content_type) = match page {
        StatsPage::Html => (pages::html_page(version, s), "text/html"),
        StatsPage::Text => (pages::text_page(version, s), "text/plain"),
        StatsPage::Json => (pages::json(version, s), "application/json"),
        StatsPage::Metrics => (crate::stats::metrics::page(s), "text/plain; version=0.0.4"),
        StatsPage::TopNames => (pages::top_names_page(version, s), "text/html"),
    };
    response::write_body("200 OK", content_type, body.as_bytes(), mode, out);
}

/// The start of a POST body, kept for the access log at level 4.
pub struct Capture {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Capture {
    /// A capture when the access log would show this request's body.
    pub fn for_request(head: &Head) -> Option<Capture> {
        (head.method == b"POST" && log::enabled(INFO)).then(|| Capture {
            bytes: Vec::new(),
            truncated: false,
        })
    }

    pub fn add(&mut self, data: &[u8]) {
        let room = POST_LOG_MAX - self.bytes.len();
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
        self.truncated |= data.len() > room;
    }

    /// The body is complete: its access log line.
    pub fn log(self) {
        plog!(INFO, "{}", log::post_body_line(&self.bytes, self.truncated));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parser::parse;

    fn cross(extra: &str) -> bool {
        let raw = format!("GET /log=5 HTTP/1.1\r\nHost: router.lan:8080\r\n{extra}\r\n");
        let head = parse(raw.as_bytes()).unwrap().unwrap();
        from_another_site(&head)
    }

    #[test]
    fn another_site_is_recognised() {
        assert!(!cross(""));
        assert!(!cross("Sec-Fetch-Site: none\r\n"));
        assert!(!cross("Sec-Fetch-Site: same-origin\r\n"));
        assert!(cross("Sec-Fetch-Site: cross-site\r\n"));
        assert!(cross("Sec-Fetch-Site: Same-Site\r\n"));
        assert!(!cross("Origin: http://router.lan:8080\r\n"));
        assert!(!cross("Origin: HTTP://ROUTER.LAN:8080\r\n"));
        assert!(cross("Origin: http://router.lan\r\n"));
        assert!(cross("Origin: https://evil.example\r\n"));
        assert!(cross("Origin: null\r\n"));
        assert!(!cross("Referer: http://router.lan:8080/servstats\r\n"));
        assert!(cross(
            "Referer: http://evil.example/page?router.lan:8080\r\n"
        ));
        assert!(cross("Referer: http://router.lan:8080@evil.example/\r\n"));
        assert!(cross("Referer: ftp://router.lan:8080/\r\n"));
    }

    /// A site with a fresh CA; the directory lives as long as the site is used.
    fn site() -> (crate::tls::store::tests::TempDir, Site) {
        let dir = crate::tls::store::tests::TempDir::new("service");
        let (ca, _) =
            crate::tls::ca::load_or_create_at(&dir.0, crate::x509::KeyType::Ecdsa).unwrap();
        let site = Site {
            settings: Settings {
                disable_204: false,
                redirect: false,
                stats_html_url: "/servstats".into(),
                stats_text_url: "/servstats.txt".into(),
            },
            ca_pem: Vec::new(),
            version: String::new(),
            setup: SetupPage::new(&ca.cert, 443, &["setup.lan".to_string()]),
        };
        (dir, site)
    }

    fn local() -> Option<IpAddr> {
        Some(std::net::Ipv4Addr::new(192, 168, 1, 2).into())
    }

    #[test]
    fn setup_page_only_for_root_at_our_address() {
        let (_dir, site) = site();
        let decide = |raw: &str, admin: bool| {
            let raw = format!("{raw}\r\n\r\n");
            let head = parse(raw.as_bytes()).unwrap().unwrap();
            let req = Request {
                head: &head,
                admin,
                tls: None,
                peer: std::net::Ipv4Addr::LOCALHOST.into(),
                early_data: false,
                local: &local,
            };
            let d = req.decide(&site);
            (d.reply, d.counter)
        };
        let setup = (Reply::Setup, Some(Counter::NoExtension));
        for admin in [false, true] {
            assert_eq!(decide("GET / HTTP/1.1\r\nHost: 192.168.1.2", admin), setup);
        }
        assert_eq!(
            decide("GET / HTTP/1.1\r\nHost: 192.168.1.2:8080", true),
            setup
        );
        assert_eq!(decide("GET / HTTP/1.0\r\nHost: setup.lan", true), setup);
        assert_eq!(
            decide("HEAD / HTTP/1.1\r\nHost: 192.168.1.2", true),
            (Reply::Setup, Some(Counter::Head))
        );
        let text = (Reply::Text, Some(Counter::NoExtension));
        for raw in [
            "GET / HTTP/1.1\r\nHost: ads.example.com",
            "GET / HTTP/1.1\r\nHost: 192.168.1.3",
            "GET / HTTP/1.1",
            "GET /?x HTTP/1.1\r\nHost: 192.168.1.2",
            "GET /a HTTP/1.1\r\nHost: 192.168.1.2",
            "GET http://ads.example.com/ HTTP/1.1\r\nHost: 192.168.1.2",
            "GET http://192.168.1.2/ HTTP/1.1\r\nHost: 192.168.1.2",
        ] {
            assert_eq!(decide(raw, true), text, "{raw}");
        }
        assert_eq!(
            decide("POST / HTTP/1.1\r\nHost: 192.168.1.2", true),
            (Reply::Text, Some(Counter::Post))
        );
    }

    #[test]
    fn log_level_only_from_the_same_site_and_never_from_early_data() {
        let (_dir, site) = site();
        let decide = |raw: &str, early_data: bool| {
            let head = parse(raw.as_bytes()).unwrap().unwrap();
            let req = Request {
                head: &head,
                admin: true,
                tls: None,
                peer: std::net::Ipv4Addr::LOCALHOST.into(),
                early_data,
                local: &local,
            };
            req.decide(&site).reply
        };
        let typed = "GET /log=5 HTTP/1.1\r\nHost: r\r\n\r\n";
        assert_eq!(decide(typed, false), Reply::SetLogLevel(5));
        assert_eq!(decide(typed, true), Reply::Text);
        let img = "GET /log=5 HTTP/1.1\r\nHost: r\r\nSec-Fetch-Site: cross-site\r\n\r\n";
        assert_eq!(decide(img, false), Reply::Text);
    }
}
