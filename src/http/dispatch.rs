//! Request classification: the original's dispatch rules (COMPATIBILITY.md §5.3, in order)
//! with exact method names, HEAD served like GET, absolute-form targets, and no crash on paths
//! made only of `?#;=` (DEFECTS.md #5).

use std::borrow::Cow;

use memchr::memrchr;

use super::assets::Asset;
use super::parser::Head;
use super::redirect;
use crate::stats::Counter;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `-2`
    pub disable_204: bool,
    /// `-R`
    pub redirect: bool,
    pub stats_html_url: String,
    pub stats_text_url: String,
}

/// What to answer; `http::service` turns it into bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A 1x1 image (or the favicon).
    Asset(Asset),
    /// 204.
    NoContent,
    /// The empty 200 `text/html` (`response::write_text`, with CORS).
    Text,
    Options,
    /// 307 with this `Location` (`response::write_redirect`, with CORS).
    Redirect(Vec<u8>),
    /// 501.
    NotImplemented,
    CaCert,
    Stats(StatsPage),
    /// Admin `/log=N`: set the log level, then answer like `Text`.
    SetLogLevel(u8),
    /// The setup page (`http::setup`): `service` turns a `Text` for `/` at the server's own
    /// address into this; `dispatch` never answers it.
    Setup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsPage {
    Html,
    Text,
    Json,
    Metrics,
    /// The most requested names as HTML.
    TopNames,
}

/// Fixed like `/servstats.json` and `/metrics`; `-s` moves only the original's page.
pub const TOP_NAMES_URL: &[u8] = b"/servstats/top";

impl Reply {
    /// Stats pages show the gauges too: the caller takes a snapshot for these only.
    pub fn needs_snapshot(&self) -> bool {
        matches!(self, Reply::Stats(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub reply: Reply,
    /// `None` only for a valid `/log=N`, which the original does not count in `req`.
    pub counter: Option<Counter>,
}

fn decide(reply: Reply, counter: Counter) -> Decision {
    Decision {
        reply,
        counter: Some(counter),
    }
}

/// Paths of ad-network image endpoints that get a GIF whatever their extension (rule 11).
const AD_IMAGE_PREFIXES: [&[u8]; 4] = [
    b"/pagead/imgad?",
    b"/pagead/conversion/",
    b"/pcs/view?xai=AKAOj",
    b"/daca_images/simgad/",
];

pub fn dispatch(head: &Head, admin_allowed: bool, settings: &Settings) -> Decision {
    match head.method {
        b"OPTIONS" => decide(Reply::Options, Counter::Options),
        b"POST" => decide(Reply::Text, Counter::Post),
        b"GET" => get(head, admin_allowed, settings),
        b"HEAD" => {
            let d = get(head, admin_allowed, settings);
            Decision {
                counter: d.counter.map(|_| Counter::Head),
                ..d
            }
        }
        _ => decide(Reply::NotImplemented, Counter::BadRequest),
    }
}

fn get(head: &Head, admin: bool, settings: &Settings) -> Decision {
    // asterisk-form means "the server itself" and is only defined for OPTIONS; a GET of it
    // names no resource, which is what the original counted as "empty URL".
    if head.target == b"*" {
        return decide(Reply::Text, Counter::EmptyUrl);
    }
    let path = origin_form(head.target);
    let path: &[u8] = &path;

    if path.starts_with(b"/favicon.ico") {
        return decide(Reply::Asset(Asset::Favicon), Counter::Ico);
    }
    if admin {
        if let Some(level) = path.strip_prefix(b"/log=") {
            return match atoi(level) {
                n @ 0..=5 => Decision {
                    reply: Reply::SetLogLevel(n as u8),
                    counter: None,
                },
                _ => decide(Reply::Text, Counter::BadRequest),
            };
        }
    }
    if path.starts_with(b"/ca.crt") {
        return decide(Reply::CaCert, Counter::Script);
    }
    if admin {
        let stats = [
            (
                settings.stats_html_url.as_bytes(),
                Reply::Stats(StatsPage::Html),
                Counter::StatsHtml,
            ),
            (
                settings.stats_text_url.as_bytes(),
                Reply::Stats(StatsPage::Text),
                Counter::StatsText,
            ),
            (
                b"/servstats.json",
                Reply::Stats(StatsPage::Json),
                Counter::StatsText,
            ),
            (
                b"/metrics",
                Reply::Stats(StatsPage::Metrics),
                Counter::StatsText,
            ),
            (
                TOP_NAMES_URL,
                Reply::Stats(StatsPage::TopNames),
                Counter::StatsHtml,
            ),
        ];
        if let Some((_, reply, counter)) = stats.into_iter().find(|(url, _, _)| *url == path) {
            return decide(reply, counter);
        }
    }
    if !settings.disable_204
        && (path.eq_ignore_ascii_case(b"/generate_204") || path.eq_ignore_ascii_case(b"/gen_204"))
    {
        return decide(Reply::NoContent, Counter::NoContent);
    }
    if AD_IMAGE_PREFIXES
        .iter()
        .any(|p| starts_with_ignore_case(path, p))
    {
        return decide(Reply::Asset(Asset::Gif), Counter::Gif);
    }
    if settings.redirect && contains_ignore_case(path, b"=http") {
        let (decoded, location) = redirect::decode_target(path, head.referer);
        return match location {
            Some(location) => decide(Reply::Redirect(location), Counter::Redirect),
            None => by_extension(&decoded),
        };
    }
    by_extension(path)
}

/// The path and query of an absolute-form target (`http://host/p?q` → `/p?q`,
/// RFC 9112 §3.2.2, an empty path being `/`); other targets unchanged.
fn origin_form(target: &[u8]) -> Cow<'_, [u8]> {
    let scheme = [&b"http://"[..], b"https://"]
        .into_iter()
        .find(|s| starts_with_ignore_case(target, s));
    let Some(rest) = scheme.and_then(|s| target.get(s.len()..)) else {
        return Cow::Borrowed(target);
    };
    let start = rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#'));
    match start.map(|i| rest.split_at(i).1) {
        Some(path) if path.starts_with(b"/") => Cow::Borrowed(path),
        Some(query) => Cow::Owned([&b"/"[..], query].concat()),
        None => Cow::Borrowed(b"/"),
    }
}

/// Rule 13: the extension of the last segment of the path, the path being cut like C's
/// `strtok(path, "?#;=")` (leading delimiters skipped).
fn by_extension(path: &[u8]) -> Decision {
    let delim = |b: &u8| matches!(b, b'?' | b'#' | b';' | b'=');
    let Some(start) = path.iter().position(|b| !delim(b)) else {
        // Only delimiters: the original dereferenced NULL here.
        return decide(Reply::Text, Counter::MalformedPath);
    };
    let token = path.get(start..).unwrap_or_default();
    let token = token.split(delim).next().unwrap_or_default();
    let Some(file) = memrchr(b'/', token).and_then(|i| token.get(i..)) else {
        return decide(Reply::Text, Counter::MalformedPath);
    };
    let Some(ext) = memrchr(b'.', file).and_then(|i| file.get(i..)) else {
        return decide(Reply::Text, Counter::NoExtension);
    };
    let is = |e: &[u8]| ext.eq_ignore_ascii_case(e);
    if is(b".gif") {
        decide(Reply::Asset(Asset::Gif), Counter::Gif)
    } else if is(b".png") {
        decide(Reply::Asset(Asset::Png), Counter::Png)
    } else if starts_with_ignore_case(ext, b".jp") {
        decide(Reply::Asset(Asset::Jpeg), Counter::Jpg)
    } else if is(b".swf") {
        decide(Reply::Asset(Asset::Swf), Counter::Swf)
    } else if is(b".ico") {
        decide(Reply::Asset(Asset::Ico), Counter::Ico)
    } else if starts_with_ignore_case(ext, b".js") {
        decide(Reply::Text, Counter::Script)
    } else {
        decide(Reply::Text, Counter::OtherExtension)
    }
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

fn contains_ignore_case(s: &[u8], needle: &[u8]) -> bool {
    s.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// C `atoi` as the original used it: optional sign, leading digits, 0 if none.
fn atoi(s: &[u8]) -> i64 {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    let n = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i64, |n, &d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if negative {
        -n
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parser::parse;

    fn settings() -> Settings {
        Settings {
            disable_204: false,
            redirect: false,
            stats_html_url: "/servstats".into(),
            stats_text_url: "/servstats.txt".into(),
        }
    }

    fn run_with(req: &str, admin: bool, s: &Settings) -> (Reply, Option<Counter>) {
        let raw = format!("{req}\r\n\r\n");
        let head = parse(raw.as_bytes()).unwrap().unwrap();
        let d = dispatch(&head, admin, s);
        (d.reply, d.counter)
    }

    fn run(req: &str) -> (Reply, Option<Counter>) {
        run_with(req, true, &settings())
    }

    fn get(path: &str) -> (Reply, Option<Counter>) {
        run(&format!("GET {path} HTTP/1.1"))
    }

    fn is(reply: Reply, counter: Counter) -> (Reply, Option<Counter>) {
        (reply, Some(counter))
    }

    #[test]
    fn appendix_a_images() {
        assert_eq!(
            run("GET /ad.gif HTTP/1.1\r\nHost: a"),
            is(Reply::Asset(Asset::Gif), Counter::Gif)
        );
        for p in ["/x.JPG", "/x.jpeg", "/x.jpe", "/x.jpXYZ"] {
            assert_eq!(get(p), is(Reply::Asset(Asset::Jpeg), Counter::Jpg), "{p}");
        }
        assert_eq!(get("/x.ico"), is(Reply::Asset(Asset::Ico), Counter::Ico));
        assert_eq!(
            get("/FAVICON.ICO"),
            is(Reply::Asset(Asset::Ico), Counter::Ico)
        );
        assert_eq!(
            get("/favicon.ico"),
            is(Reply::Asset(Asset::Favicon), Counter::Ico)
        );
        assert_eq!(
            get("/favicon.ico?x"),
            is(Reply::Asset(Asset::Favicon), Counter::Ico)
        );
        assert_eq!(get("/a/b.PNG"), is(Reply::Asset(Asset::Png), Counter::Png));
        assert_eq!(get("/b.Swf"), is(Reply::Asset(Asset::Swf), Counter::Swf));
        assert_eq!(
            get("/x.gif?y=1"),
            is(Reply::Asset(Asset::Gif), Counter::Gif)
        );
        assert_eq!(
            get("/x.gif#frag"),
            is(Reply::Asset(Asset::Gif), Counter::Gif)
        );
        assert_eq!(
            get("/PAGEAD/conversion/1"),
            is(Reply::Asset(Asset::Gif), Counter::Gif)
        );
        for p in [
            "/pagead/imgad?id=1",
            "/pcs/view?xai=AKAOjx",
            "/Daca_Images/SimGad/9.js",
        ] {
            assert_eq!(get(p), is(Reply::Asset(Asset::Gif), Counter::Gif), "{p}");
        }
        assert_eq!(
            get("/pcs/view?xai=akaoj"),
            is(Reply::Asset(Asset::Gif), Counter::Gif)
        );
        assert_eq!(get("/pagead/imgad"), is(Reply::Text, Counter::NoExtension));
    }

    #[test]
    fn appendix_a_text() {
        for p in [
            "/",
            "/a.b/c",
            "/foo?bar.gif",
            "/a;x.gif",
            "/x=y.gif",
            "/dir/",
        ] {
            assert_eq!(get(p), is(Reply::Text, Counter::NoExtension), "{p}");
        }
        for p in [
            "/x.css", "/x.html", "/x.txt", "/x.php", "/x.gifx", "/x.", "/x.pn",
        ] {
            assert_eq!(get(p), is(Reply::Text, Counter::OtherExtension), "{p}");
        }
        for p in ["/x.js", "/x.json", "/x.JSP", "/x.jsx?v=2"] {
            assert_eq!(get(p), is(Reply::Text, Counter::Script), "{p}");
        }
    }

    #[test]
    fn malformed_paths_are_pth_never_a_crash() {
        for p in [
            "?",
            "#",
            ";",
            "=",
            "?#;=",
            "==??",
            "x.gif",
            "?x.gif",
            "a;b/c.gif",
        ] {
            assert_eq!(get(p), is(Reply::Text, Counter::MalformedPath), "{p}");
        }
        // Leading delimiters are skipped like strtok does.
        assert_eq!(get("?/x.gif"), is(Reply::Asset(Asset::Gif), Counter::Gif));
        assert_eq!(
            get(";;/a.png;b"),
            is(Reply::Asset(Asset::Png), Counter::Png)
        );
    }

    #[test]
    fn generate_204() {
        assert_eq!(
            get("/generate_204"),
            is(Reply::NoContent, Counter::NoContent)
        );
        assert_eq!(get("/GEN_204"), is(Reply::NoContent, Counter::NoContent));
        assert_eq!(
            get("/generate_204?x"),
            is(Reply::Text, Counter::NoExtension)
        );
        assert_eq!(get("/generate_2044"), is(Reply::Text, Counter::NoExtension));
        let s = Settings {
            disable_204: true,
            ..settings()
        };
        assert_eq!(
            run_with("GET /generate_204 HTTP/1.1", true, &s),
            is(Reply::Text, Counter::NoExtension)
        );
    }

    #[test]
    fn methods() {
        assert_eq!(
            run("HEAD /x.gif HTTP/1.1"),
            is(Reply::Asset(Asset::Gif), Counter::Head)
        );
        assert_eq!(
            run("HEAD /servstats HTTP/1.1"),
            is(Reply::Stats(StatsPage::Html), Counter::Head)
        );
        assert_eq!(run("HEAD /log=3 HTTP/1.1"), (Reply::SetLogLevel(3), None));
        for m in [
            "PUT", "DELETE", "get", "Get", "head", "post", "options", "CONNECT", "TRACE", "PATCH",
        ] {
            assert_eq!(
                run(&format!("{m} /x HTTP/1.1")),
                is(Reply::NotImplemented, Counter::BadRequest),
                "{m}"
            );
        }
        assert_eq!(
            run("OPTIONS /x HTTP/1.1\r\nOrigin: http://foo.com"),
            is(Reply::Options, Counter::Options)
        );
        assert_eq!(
            run("OPTIONS * HTTP/1.1"),
            is(Reply::Options, Counter::Options)
        );
        assert_eq!(
            run("POST /track HTTP/1.1\r\nContent-Length: 5\r\nOrigin: null"),
            is(Reply::Text, Counter::Post)
        );
        assert_eq!(run("POST /x.gif HTTP/1.0"), is(Reply::Text, Counter::Post));
        assert_eq!(get("*"), is(Reply::Text, Counter::EmptyUrl));
    }

    #[test]
    fn log_level() {
        for n in 0..=5u8 {
            assert_eq!(get(&format!("/log={n}")), (Reply::SetLogLevel(n), None));
        }
        assert_eq!(get("/log=4x"), (Reply::SetLogLevel(4), None));
        assert_eq!(get("/log="), (Reply::SetLogLevel(0), None));
        assert_eq!(get("/log=abc"), (Reply::SetLogLevel(0), None));
        for p in [
            "/log=9",
            "/log=6",
            "/log=-1",
            "/log=99999999999999999999999",
        ] {
            assert_eq!(get(p), is(Reply::Text, Counter::BadRequest), "{p}");
        }
        assert_eq!(
            run_with("GET /log=4 HTTP/1.1", false, &settings()),
            is(Reply::Text, Counter::NoExtension)
        );
    }

    #[test]
    fn ca_cert() {
        assert_eq!(get("/ca.crt"), is(Reply::CaCert, Counter::Script));
        assert_eq!(get("/ca.crt.anything"), is(Reply::CaCert, Counter::Script));
        assert_eq!(
            run_with("GET /ca.crt HTTP/1.1", false, &settings()),
            is(Reply::CaCert, Counter::Script)
        );
    }

    #[test]
    fn admin_pages() {
        assert_eq!(
            get("/servstats"),
            is(Reply::Stats(StatsPage::Html), Counter::StatsHtml)
        );
        assert_eq!(
            get("/servstats.txt"),
            is(Reply::Stats(StatsPage::Text), Counter::StatsText)
        );
        assert_eq!(
            get("/servstats.json"),
            is(Reply::Stats(StatsPage::Json), Counter::StatsText)
        );
        assert_eq!(
            get("/metrics"),
            is(Reply::Stats(StatsPage::Metrics), Counter::StatsText)
        );
        assert_eq!(
            get("/servstats/top"),
            is(Reply::Stats(StatsPage::TopNames), Counter::StatsHtml)
        );
        assert_eq!(
            get("/servstats/top/"),
            is(Reply::Text, Counter::NoExtension)
        );
        assert_eq!(get("/servstats?x"), is(Reply::Text, Counter::NoExtension));
        assert_eq!(get("/SERVSTATS"), is(Reply::Text, Counter::NoExtension));
        assert_eq!(get("/metrics/"), is(Reply::Text, Counter::NoExtension));
        let user = |p: &str| run_with(&format!("GET {p} HTTP/1.1"), false, &settings());
        assert_eq!(user("/servstats"), is(Reply::Text, Counter::NoExtension));
        assert_eq!(
            user("/servstats.txt"),
            is(Reply::Text, Counter::OtherExtension)
        );
        assert_eq!(user("/servstats.json"), is(Reply::Text, Counter::Script));
        assert_eq!(user("/metrics"), is(Reply::Text, Counter::NoExtension));
        assert_eq!(
            user("/servstats/top"),
            is(Reply::Text, Counter::NoExtension)
        );
        let s = Settings {
            stats_html_url: "/s".into(),
            stats_text_url: "/t.txt".into(),
            ..settings()
        };
        assert_eq!(
            run_with("GET /s HTTP/1.1", true, &s),
            is(Reply::Stats(StatsPage::Html), Counter::StatsHtml)
        );
        assert_eq!(
            run_with("GET /t.txt HTTP/1.1", true, &s),
            is(Reply::Stats(StatsPage::Text), Counter::StatsText)
        );
        assert_eq!(
            run_with("GET /servstats HTTP/1.1", true, &s),
            is(Reply::Text, Counter::NoExtension)
        );
    }

    #[test]
    fn absolute_form() {
        assert_eq!(
            get("http://host/dir/pic.png?x=1"),
            is(Reply::Asset(Asset::Png), Counter::Png)
        );
        assert_eq!(
            get("HTTPS://host:443/a.gif"),
            is(Reply::Asset(Asset::Gif), Counter::Gif)
        );
        assert_eq!(
            get("http://host/favicon.ico"),
            is(Reply::Asset(Asset::Favicon), Counter::Ico)
        );
        assert_eq!(
            get("http://host/servstats"),
            is(Reply::Stats(StatsPage::Html), Counter::StatsHtml)
        );
        assert_eq!(get("http://host"), is(Reply::Text, Counter::NoExtension));
        assert_eq!(
            get("http://host.gif"),
            is(Reply::Text, Counter::NoExtension)
        );
        assert_eq!(
            get("http://host?a.gif"),
            is(Reply::Text, Counter::NoExtension)
        );
        assert_eq!(get("http://"), is(Reply::Text, Counter::NoExtension));
        // Authority-form is no path at all.
        assert_eq!(get("host.com:443"), is(Reply::Text, Counter::MalformedPath));
    }

    #[test]
    fn redirect_rule() {
        let s = Settings {
            redirect: true,
            ..settings()
        };
        let r = |req: &str| run_with(req, true, &s);
        assert_eq!(
            r("GET /click?url=http%3A%2F%2Fwww.example.org%2Fpage%3Fa%3D1 HTTP/1.1"),
            is(
                Reply::Redirect(b"http://www.example.org/page?a=1".to_vec()),
                Counter::Redirect
            )
        );
        assert_eq!(
            r("GET /c?u=http://a.com/z HTTP/1.1\r\nReferer: http://a.com/z"),
            is(Reply::Text, Counter::NoExtension)
        );
        assert_eq!(
            r("GET /c?u=HTTP://A.COM/z.gif HTTP/1.1"),
            is(Reply::Text, Counter::NoExtension)
        );
        // Falls to rule 13 on the decoded path.
        assert_eq!(
            r("GET /a%2Eb.gif?u=HTTP://x HTTP/1.1"),
            is(Reply::Asset(Asset::Gif), Counter::Gif)
        );
        assert_eq!(
            r("GET /a%2Egif HTTP/1.1"),
            is(Reply::Text, Counter::NoExtension)
        );
        assert_eq!(
            r("GET /c?u=http://a.com/%0d%0aSet-Cookie:x=1 HTTP/1.1"),
            is(Reply::Text, Counter::NoExtension)
        );
        assert_eq!(
            r("GET /c?u=http://a.com/%250d%250aX:1 HTTP/1.1"),
            is(Reply::Text, Counter::NoExtension)
        );
        assert_eq!(
            r("GET http://h/r?to=https://b.com/ HTTP/1.1"),
            is(
                Reply::Redirect(b"https://b.com/".to_vec()),
                Counter::Redirect
            )
        );
        // Without -R the target is ignored.
        assert_eq!(
            get("/click?url=http://a.com/x.gif"),
            is(Reply::Text, Counter::NoExtension)
        );
        // Earlier rules win over the redirect.
        assert_eq!(
            r("GET /favicon.ico?u=http://a.com/ HTTP/1.1"),
            is(Reply::Asset(Asset::Favicon), Counter::Ico)
        );
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi(b"12ab"), 12);
        assert_eq!(atoi(b"-3"), -3);
        assert_eq!(atoi(b"+3"), 3);
        assert_eq!(atoi(b""), 0);
        assert_eq!(atoi(b"--3"), 0);
    }
}
