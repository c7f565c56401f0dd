//! The HTTP service: a parsed request and its dispatch decision in, the response bytes out,
//! plus the side effects a request may have (`/log=N`, the access log). Knows nothing of
//! sockets or TLS beyond the version label it logs.

use std::net::IpAddr;

use super::dispatch::{Decision, Reply, Settings, StatsPage};
use super::limits::POST_LOG_MAX;
use super::parser::Head;
use super::response::{self, Mode};
use crate::log::{self, INFO};
use crate::plog;
use crate::stats::{Counter, Snapshot, TlsVersion};
use crate::stats_render;

/// What the service needs that does not change while the server runs.
pub struct Site {
    pub settings: Settings,
    /// `/ca.crt` body: the CA chain re-encoded from the certificates parsed at startup.
    pub ca_pem: Vec<u8>,
    /// The version line at the top of the stats pages.
    pub version: String,
}

/// One request as the service sees it.
pub struct Request<'a> {
    pub head: &'a Head<'a>,
    /// Admin URIs are allowed on this connection.
    pub admin: bool,
    pub tls: Option<TlsVersion>,
    pub peer: IpAddr,
}

impl Request<'_> {
    pub fn decide(&self, site: &Site) -> Decision {
        super::dispatch::dispatch(self.head, self.admin, &site.settings)
    }

    fn mode(&self) -> Mode {
        Mode {
            keep_alive: self.head.keep_alive,
            head_only: self.head.method == b"HEAD",
        }
    }
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
            log::escape(req.head.host.unwrap_or(b"")),
            log::escape(req.head.request_line),
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
        Reply::Stats(page) => match snapshot {
            Some(s) => write_stats(*page, &site.version, s, mode, out),
            // A caller that forgot the snapshot gets an error, not a page of zeros.
            None => response::write_error(500, out),
        },
    }
}

fn write_stats(page: StatsPage, version: &str, s: &Snapshot, mode: Mode, out: &mut Vec<u8>) {
    let (body, content_type) = match page {
        StatsPage::Html => (stats_render::html_page(version, s), "text/html"),
        StatsPage::Text => (stats_render::text_page(version, s), "text/plain"),
        StatsPage::Json => (stats_render::json(version, s), "application/json"),
        StatsPage::Metrics => (crate::metrics::page(s), "text/plain; version=0.0.4"),
        StatsPage::TopNames => (stats_render::top_names_page(version, s), "text/html"),
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
