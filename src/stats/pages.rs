//! The statistics pages: text (COMPATIBILITY.md §8.4, also the syslog line of §8.6), HTML
//! (COMPATIBILITY.md §8.5, byte-exact for the original 51 rows), JSON, and the most requested
//! names (`/servstats/top`, and in the JSON). `/metrics` is `metrics.rs`.

use std::fmt::Write;

use crate::stats::top_names::{Source, TopNames};
use crate::stats::{Counter, CounterInfo, Format, Snapshot, ORIGINAL_COUNT, TABLE};

/// Value as on the text page: `uts` in seconds, `kvg` two decimals, the rest integers
/// (averages rounded to nearest, as C's `%.0f`).
fn text_value(s: &Snapshot, info: &CounterInfo, uts: u64) -> String {
    match info.format {
        Format::Uptime => uts.to_string(),
        Format::Fixed2 => format!("{:.2}", s.value(info.counter)),
        _ => format!("{:.0}", s.value(info.counter)),
    }
}

fn html_value(s: &Snapshot, info: &CounterInfo, uts: u64) -> String {
    match info.format {
        Format::Uptime => format!(
            "{}d {:02}:{:02}",
            uts / 86_400,
            uts % 86_400 / 3600,
            uts % 3600 / 60
        ),
        Format::Bytes => format!("{} bytes", text_value(s, info, uts)),
        Format::Millis => format!("{} ms", text_value(s, info, uts)),
        _ => text_value(s, info, uts),
    }
}

/// All counters, `<value> <name>` joined by `, ` (no version, no line end).
pub fn stats_line(s: &Snapshot) -> String {
    stats_line_at(s, s.uptime_secs())
}

fn stats_line_at(s: &Snapshot, uts: u64) -> String {
    let items: Vec<String> = TABLE
        .iter()
        .map(|info| format!("{} {}", text_value(s, info, uts), info.name))
        .collect();
    items.join(", ")
}

/// `/servstats.txt` body.
pub fn text_page(version: &str, s: &Snapshot) -> String {
    text_page_at(version, s, s.uptime_secs())
}

fn text_page_at(version: &str, s: &Snapshot, uts: u64) -> String {
    format!("{version}\n{}\r\n", stats_line_at(s, uts))
}

const HTML_HEAD: &str = "<!DOCTYPE html><html><head><link rel='icon' href='/favicon.ico' type='image/x-icon'/><meta name='viewport' content='width=device-width'><title>pixelserv statistics</title><style>body {font-family:monospace;} table {min-width: 75%; border-collapse: collapse;} th { height:18px; } td {border: 1px solid #e0e0e0; background-color: #f9f9f9;} td:first-child {width: 7%;} td:nth-child(2) {width: 15%; background-color: #ebebeb; border: 1px solid #f9f9f9;}</style></head><body>";
const SEPARATOR: &str = "<tr><th colspan=\"3\"></th></tr>";

/// The original's markup between rows (including its stray tags), keyed by the counter
/// whose row it follows.
fn html_after(c: Counter) -> &'static str {
    match c {
        Counter::RequestsPerConnMax
        | Counter::RequestTimeMax
        | Counter::SessionCachePurges
        | Counter::OtherExtension
        | Counter::BadRequest => SEPARATOR,
        Counter::HttpsHandshakeFailed => "<th colspan=\"3\"></th></tr>",
        Counter::EarlyData => "    <tr><th colspan=\"3\"></th></tr>    ",
        Counter::HungUpAfterHello => "<tr><tr><th colspan=\"3\"></th></tr>",
        Counter::CertCacheHits | Counter::CertCacheMisses => "<tr>",
        _ => "",
    }
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // The body must stay one line.
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `/servstats` body: one line, then CRLF.
pub fn html_page(version: &str, s: &Snapshot) -> String {
    html_page_at(version, s, s.uptime_secs())
}

fn html_page_at(version: &str, s: &Snapshot, uts: u64) -> String {
    let mut out = String::with_capacity(8192);
    out.push_str(HTML_HEAD);
    out.push_str(&html_escape(version));
    out.push_str("<br><br><table>");
    for (i, info) in TABLE.iter().enumerate() {
        if i == ORIGINAL_COUNT {
            out.push_str(SEPARATOR);
        }
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            info.name,
            html_value(s, info, uts),
            html_escape(info.label)
        ));
        out.push_str(html_after(info.counter));
    }
    out.push_str("</table></body></html>\r\n");
    out
}

fn json_string(text: &str, out: &mut String) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"version":"...","uts":38,...,"top_names":{...}}`: every counter by name, values as on
/// the text page, then the most requested names.
pub fn json(version: &str, s: &Snapshot) -> String {
    json_at(version, s, s.uptime_secs())
}

fn json_at(version: &str, s: &Snapshot, uts: u64) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str("{\"version\":");
    json_string(version, &mut out);
    for info in TABLE {
        out.push_str(&format!(",\"{}\":{}", info.name, text_value(s, info, uts)));
    }
    top_names_json(s.stats.names(), &mut out);
    out.push('}');
    out
}

/// `,"top_names":{"capacity":128,"counted":N,"invalid":{"http":a,"tls":b},"names":[{"name":
/// ...,"count":c,"error":e,"http":h,"tls":t},...]}`.
fn top_names_json(names: &TopNames, out: &mut String) {
    let _ = write!(
        out,
        ",\"top_names\":{{\"capacity\":{},\"counted\":{},\"invalid\":{{\"http\":{},\"tls\":{}}},\"names\":[",
        names.capacity(),
        names.counted(),
        names.invalid(Source::Http),
        names.invalid(Source::Tls)
    );
    for (i, top) in names.top().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(top.name, out);
        let _ = write!(
            out,
            ",\"count\":{},\"error\":{},\"http\":{},\"tls\":{}}}",
            top.count, top.error, top.http, top.tls
        );
    }
    out.push_str("]}");
}

const TOP_HEAD: &str = "<!DOCTYPE html><html><head><link rel='icon' href='/favicon.ico' type='image/x-icon'/><meta name='viewport' content='width=device-width'><title>pixelserv most requested names</title><style>body {font-family:monospace;} table {min-width: 50%; border-collapse: collapse;} th {text-align: left;} td, th {border: 1px solid #e0e0e0; padding: 0 4px;} td:nth-child(n+3) {text-align: right;}</style></head><body>";

/// `/servstats/top`: the most requested names as a table, one line, then CRLF.
pub fn top_names_page(version: &str, s: &Snapshot) -> String {
    let names = s.stats.names();
    let mut out = String::with_capacity(8192);
    out.push_str(TOP_HEAD);
    out.push_str(&html_escape(version));
    let _ = write!(
        out,
        "<br><br>Most requested names since the start: the Host of each plain-HTTP request and \
         the SNI of each TLS connection. {} counted, {} invalid ({} Host, {} SNI). A count may \
         overstate by its error. {} names are tracked, and any name counted more than 1/{} of all \
         is among them.<br><br>\
         <table><tr><th>#</th><th>name</th><th>count</th><th>error</th><th>HTTP</th><th>TLS</th></tr>",
        names.counted(),
        names.invalid(Source::Http) + names.invalid(Source::Tls),
        names.invalid(Source::Http),
        names.invalid(Source::Tls),
        names.capacity(),
        names.capacity()
    );
    for (i, top) in names.top().iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            html_escape(top.name),
            top.count,
            top.error,
            top.http,
            top.tls
        );
    }
    out.push_str("</table></body></html>\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::top_names;
    use crate::stats::{Gauges, Stats};

    /// 1d 02:03:04.
    const UTS: u64 = 93_784;
    const VERSION: &str =
        "pixelserv-tls 2.4.0 (compiled: Jul  6 2021 03:51:43 flags: tfo tls1_3) options: -f";

    /// The gauges as `sample` set them in the counters.
    fn view(s: &Stats) -> Snapshot<'_> {
        let g = |c| s.get(c);
        Snapshot {
            stats: s,
            gauges: Gauges {
                log_level: g(Counter::LogLevel) as u8,
                certs_cached: g(Counter::CertCacheEntries),
                cert_hits: g(Counter::CertCacheHits),
                cert_misses: g(Counter::CertCacheMisses),
                cert_purges: g(Counter::CertCachePurges),
                sessions: g(Counter::SessionCacheHits),
                session_misses: g(Counter::SessionCacheMisses),
                session_purges: g(Counter::SessionCachePurges),
                cert_files: g(Counter::CertFiles),
                cert_files_max: g(Counter::CertFilesMax),
                cert_files_removed: g(Counter::CertFilesRemoved),
                ..Gauges::default()
            },
        }
    }

    /// Int counters = 10 × table index, then a connection and two requests on top.
    fn sample() -> Stats {
        let mut s = Stats::new();
        for (i, info) in TABLE.iter().enumerate() {
            if info.format == Format::Int {
                s.set(info.counter, i as u64 * 10);
            }
        }
        s.conn_opened();
        s.conn_closed(3);
        s.request(Counter::Gif, 100, 2500);
        s.request(Counter::Gif, 301, 500);
        s
    }

    const LINE: &str = "93784 uts, 10 log, 20 kcc, 30 kmx, 3.00 kvg, 50 krq, 62 req, 200 avg, \
        301 rmx, 1 tav, 2 tmx, 110 slh, 120 slm, 130 sle, 140 slc, 150 slu, 160 v13, 170 v12, \
        180 v10, 190 zrt, 200 uca, 210 ucb, 220 uce, 230 ush, 240 sct, 250 sch, 260 scm, \
        270 scp, 280 ssh, 290 ssm, 300 ssp, 310 nfe, 322 gif, 330 ico, 340 txt, 350 jpg, \
        360 png, 370 swf, 380 ufe, 390 opt, 400 pst, 410 hed, 420 rdr, 430 nou, 440 pth, \
        450 204, 460 bad, 470 cls, 480 cly, 490 clt, 500 err, 510 v11, 520 sta, 530 stt, \
        540 tmo, 550 snx, 560 cgn, 570 cgf, 580 cqf, 590 dsk, 600 dsx, 610 dse";

    #[test]
    fn text_line_and_page() {
        let s = sample();
        assert_eq!(stats_line_at(&view(&s), UTS), LINE);
        assert_eq!(
            text_page_at(VERSION, &view(&s), UTS),
            format!("{VERSION}\n{LINE}\r\n")
        );
        // The original's 51 come first, in its order: scripts parse them positionally.
        let first: Vec<&str> = LINE.split(", ").take(ORIGINAL_COUNT).collect();
        assert_eq!(first.last(), Some(&"500 err"));
    }

    #[test]
    fn text_page_of_fresh_stats() {
        let s = Stats::new();
        let page = text_page("v", &view(&s));
        assert!(page.starts_with("v\n0 uts, 0 log, 0 kcc, "));
        assert!(page.contains(", 0.00 kvg, "));
        assert!(page.ends_with(", 0 dse\r\n"));
        assert_eq!(stats_line(&view(&s)).matches(", ").count(), TABLE.len() - 1);
    }

    #[test]
    fn averages_round_like_printf() {
        let mut s = Stats::new();
        s.request(Counter::Gif, 1, 0);
        s.request(Counter::Gif, 2, 0);
        s.request(Counter::Gif, 3, 0);
        s.request(Counter::Gif, 4, 0); // avg 2.5
        assert!(stats_line_at(&view(&s), 0).contains(", 2 avg, "));
        s.request(Counter::Gif, 5, 0); // avg 3
        s.request(Counter::Gif, 7, 0); // avg 3.666…
        assert!(stats_line_at(&view(&s), 0).contains(", 4 avg, "));
    }

    const TEMPLATE: &str = r#"<!DOCTYPE html><html><head><link rel='icon' href='/favicon.ico' type='image/x-icon'/><meta name='viewport' content='width=device-width'><title>pixelserv statistics</title><style>body {font-family:monospace;} table {min-width: 75%; border-collapse: collapse;} th { height:18px; } td {border: 1px solid #e0e0e0; background-color: #f9f9f9;} td:first-child {width: 7%;} td:nth-child(2) {width: 15%; background-color: #ebebeb; border: 1px solid #f9f9f9;}</style></head><body>
{VERSION}<br><br><table>
<tr><td>uts</td><td>{uts}</td><td>process uptime</td></tr>
<tr><td>log</td><td>{log}</td><td>critical (0) error (1) warning (2) notice (3) info (4) debug (5)</td></tr>
<tr><td>kcc</td><td>{kcc}</td><td>number of active service threads</td></tr>
<tr><td>kmx</td><td>{kmx}</td><td>maximum number of service threads</td></tr>
<tr><td>kvg</td><td>{kvg}</td><td>average number of requests per service thread</td></tr>
<tr><td>krq</td><td>{krq}</td><td>max number of requests by one service thread</td></tr>
<tr><th colspan="3"></th></tr>
<tr><td>req</td><td>{req}</td><td>total # of requests (HTTP, HTTPS, success, failure etc)</td></tr>
<tr><td>avg</td><td>{avg}</td><td>average size of requests</td></tr>
<tr><td>rmx</td><td>{rmx}</td><td>largest size of request(s)</td></tr>
<tr><td>tav</td><td>{tav}</td><td>average processing time (per request)</td></tr>
<tr><td>tmx</td><td>{tmx}</td><td>longest processing time (per request)</td></tr>
<tr><th colspan="3"></th></tr>
<tr><td>slh</td><td>{slh}</td><td># of accepted HTTPS requests</td></tr>
<tr><td>slm</td><td>{slm}</td><td># of rejected HTTPS requests (missing certificate)</td></tr>
<tr><td>sle</td><td>{sle}</td><td># of rejected HTTPS requests (certificate available but not usable)</td></tr>
<tr><td>slc</td><td>{slc}</td><td># of dropped HTTPS requests (client disconnect without sending any request)</td></tr>
<tr><td>slu</td><td>{slu}</td><td># of dropped HTTPS requests (other TLS handshake errors)</td></tr><th colspan="3"></th></tr>
<tr><td>v13</td><td>{v13}</td><td>slh/slc break-down: TLS 1.3</td></tr>
<tr><td>v12</td><td>{v12}</td><td>slh/slc break-down: TLS 1.2</td></tr>
<tr><td>v10</td><td>{v10}</td><td>slh/slc break-down: TLS 1.0</td></tr>
<tr><td>zrt</td><td>{zrt}</td><td>slh break-down: TLS 1.3 Early Data aka 0-RTT</td></tr>{4SP}
<tr><th colspan="3"></th></tr>{4SP}
<tr><td>uca</td><td>{uca}</td><td>slu break-down: # of unknown CA reported by clients</td></tr>
<tr><td>ucb</td><td>{ucb}</td><td>slu break-down: # of bad certificate reported by clients</td></tr>
<tr><td>uce</td><td>{uce}</td><td>slu break-down: # of unknown cert reported by clients</td></tr>
<tr><td>ush</td><td>{ush}</td><td>slu break-down: # of shutdown by clients after ServerHello</td></tr>
<tr>
<tr><th colspan="3"></th></tr>
<tr><td>sct</td><td>{sct}</td><td>cert cache: # of certs in cache</td></tr>
<tr><td>sch</td><td>{sch}</td><td>cert cache: # of reuses of cached certs</td></tr>
<tr>
<tr><td>scm</td><td>{scm}</td><td>cert cache: # of misses to find a cert in cache</td></tr>
<tr>
<tr><td>scp</td><td>{scp}</td><td>cert cache: # of purges to give room for a new cert</td></tr>
<tr><td>ssh</td><td>{ssh}</td><td>sess cache: # of reuses of cached TLS sessions</td></tr>
<tr><td>ssm</td><td>{ssm}</td><td>sess cache: # of misses to find a TLS session in cache</td></tr>
<tr><td>ssp</td><td>{ssp}</td><td>sess cache: # of purges to give room for a new TLS session</td></tr>
<tr><th colspan="3"></th></tr>
<tr><td>nfe</td><td>{nfe}</td><td># of GET requests for server-side scripting</td></tr>
<tr><td>gif</td><td>{gif}</td><td># of GET requests for GIF</td></tr>
<tr><td>ico</td><td>{ico}</td><td># of GET requests for ICO</td></tr>
<tr><td>txt</td><td>{txt}</td><td># of GET requests for Javascripts</td></tr>
<tr><td>jpg</td><td>{jpg}</td><td># of GET requests for JPG</td></tr>
<tr><td>png</td><td>{png}</td><td># of GET requests for PNG</td></tr>
<tr><td>swf</td><td>{swf}</td><td># of GET requests for SWF</td></tr>
<tr><td>ufe</td><td>{ufe}</td><td># of GET requests /w unknown file extension</td></tr>
<tr><th colspan="3"></th></tr>
<tr><td>opt</td><td>{opt}</td><td># of OPTIONS requests</td></tr>
<tr><td>pst</td><td>{pst}</td><td># of POST requests</td></tr>
<tr><td>hed</td><td>{hed}</td><td># of HEAD requests (HTTP 501 response)</td></tr>
<tr><td>rdr</td><td>{rdr}</td><td># of GET requests resulted in REDIRECT response</td></tr>
<tr><td>nou</td><td>{nou}</td><td># of GET requests /w empty URL</td></tr>
<tr><td>pth</td><td>{pth}</td><td># of GET requests /w malformed URL</td></tr>
<tr><td>204</td><td>{204}</td><td># of GET requests (HTTP 204 response)</td></tr>
<tr><td>bad</td><td>{bad}</td><td># of unknown HTTP requests (HTTP 501 response)</td></tr>
<tr><th colspan="3"></th></tr>
<tr><td>cls</td><td>{cls}</td><td># of dropped requests (client disconnect without sending any  request)</td></tr>
<tr><td>cly</td><td>{cly}</td><td># of dropped requests (client disconnect before response sent)</td></tr>
<tr><td>clt</td><td>{clt}</td><td># of dropped requests (reached maximum service threads)</td></tr>
<tr><td>err</td><td>{err}</td><td># of dropped requests (unknown reason)</td></tr></table></body></html>"#;

    fn expected_html(s: &Snapshot) -> String {
        let mut page = TEMPLATE.replace('\n', "").replace("{4SP}", "    ");
        page = page.replace("{VERSION}", &html_escape(VERSION));
        for info in TABLE.iter().take(ORIGINAL_COUNT) {
            let value = html_value(s, info, UTS);
            page = page.replace(
                &format!("<td>{{{}}}</td>", info.name),
                &format!("<td>{value}</td>"),
            );
        }
        let ours = concat!(
            "<tr><th colspan=\"3\"></th></tr>",
            "<tr><td>v11</td><td>510</td><td>slh/slc break-down: TLS 1.1</td></tr>",
            "<tr><td>sta</td><td>520</td><td># of HTML statistics pages served</td></tr>",
            "<tr><td>stt</td><td>530</td><td># of text/JSON/metrics statistics pages served</td></tr>",
            "<tr><td>tmo</td><td>540</td><td># of connections closed by a read, write or handshake deadline</td></tr>",
            "<tr><td>snx</td><td>550</td><td># of TLS names refused a certificate (invalid SNI)</td></tr>",
            "<tr><td>cgn</td><td>560</td><td>cert workers: # of certificates generated</td></tr>",
            "<tr><td>cgf</td><td>570</td><td>cert workers: # of certificate jobs that failed</td></tr>",
            "<tr><td>cqf</td><td>580</td><td>cert workers: # of jobs refused because the queue was full</td></tr>",
            "<tr><td>dsk</td><td>590</td><td>cert files: # of certificate files in CERT_PATH</td></tr>",
            "<tr><td>dsx</td><td>600</td><td>cert files: most certificate files kept (--cert-files)</td></tr>",
            "<tr><td>dse</td><td>610</td><td>cert files: # of files removed to stay within --cert-files</td></tr>",
            "</table>",
        );
        page.replace("</table>", ours) + "\r\n"
    }

    #[test]
    fn html_matches_original_template() {
        let s = sample();
        let page = html_page_at(VERSION, &view(&s), UTS);
        assert_eq!(page, expected_html(&view(&s)));
        assert!(
            !page.contains("{4SP}") && !page.contains("}</td>"),
            "placeholder left"
        );
        assert!(page.starts_with("<!DOCTYPE html><html><head><link rel='icon'"));
        assert!(page.contains("</style></head><body>pixelserv-tls 2.4.0 (compiled: Jul  6 2021"));
        assert!(page.contains("<tr><td>uts</td><td>1d 02:03</td><td>process uptime</td></tr>"));
        assert!(page.contains("<td>avg</td><td>200 bytes</td>"));
        assert!(page.contains("<td>rmx</td><td>301 bytes</td>"));
        assert!(page.contains("<td>tav</td><td>1 ms</td>"));
        assert!(page.contains("<td>tmx</td><td>2 ms</td>"));
        assert!(page.contains("<td>kvg</td><td>3.00</td>"));
        assert!(page.contains(
            "TLS 1.3 Early Data aka 0-RTT</td></tr>    <tr><th colspan=\"3\"></th></tr>    <tr><td>uca</td>"
        ));
        assert!(page.contains(
            "other TLS handshake errors)</td></tr><th colspan=\"3\"></th></tr><tr><td>v13"
        ));
        assert!(page.contains(
            "after ServerHello</td></tr><tr><tr><th colspan=\"3\"></th></tr><tr><td>sct"
        ));
        assert!(page.contains("cached certs</td></tr><tr><tr><td>scm"));
        assert!(page.contains("without sending any  request)"));
        assert_eq!(page.matches("<tr><td>").count(), TABLE.len());
        // 8 in the original's layout, then ours before the extra rows.
        assert_eq!(page.matches("<th colspan=\"3\"></th>").count(), 9);
        assert!(page.ends_with("within --cert-files</td></tr></table></body></html>\r\n"));
        assert!(!page.trim_end_matches("\r\n").contains(['\n', '\r']));
    }

    #[test]
    fn html_uptime_and_escaping() {
        let s = Stats::new();
        let page = html_page_at("a <b>&\"x'\ny", &view(&s), 59);
        assert!(page.contains("<body>a &lt;b&gt;&amp;&quot;x&#39; y<br><br><table>"));
        assert!(page.contains("<td>uts</td><td>0d 00:00</td>"));
        let page = html_page_at("v", &view(&s), 86_400 * 12 + 3600 * 23 + 60 * 59 + 59);
        assert!(page.contains("<td>uts</td><td>12d 23:59</td>"));
        assert!(html_page("v", &view(&s)).contains("<td>uts</td><td>0d 00:0"));
    }

    #[test]
    fn json_has_every_counter() {
        let s = sample();
        let text = json_at("v \"q\" \\ \n\t\u{1}é", &view(&s), UTS);
        let v: serde_json::Value = serde_json::from_str(&text).expect(&text);
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), TABLE.len() + 2);
        assert_eq!(obj["version"], "v \"q\" \\ \n\t\u{1}é");
        assert!(text.starts_with("{\"version\":\"v \\\"q\\\" \\\\ \\n\\t\\u0001é\","));
        let mut at = 0;
        for info in TABLE {
            assert!(obj[info.name].is_number(), "{}", info.name);
            // In table order, as before.
            let key = format!(",\"{}\":", info.name);
            let found = text[at..].find(&key).expect(&key);
            at += found + key.len();
        }
        assert!(text.contains(",\"uts\":93784,"));
        assert!(text.contains(",\"kvg\":3.00,"));
        assert!(text.contains(",\"avg\":200,"));
        assert!(text.contains(",\"204\":450,"));
        assert!(text.contains(",\"cqf\":580,\"dsk\":590,\"dsx\":600,\"dse\":610,\"top_names\":{"));
        assert!(json("v", &view(&Stats::new())).starts_with("{\"version\":\"v\",\"uts\":"));
    }

    fn names_sample() -> Stats {
        let mut s = Stats::new();
        for _ in 0..3 {
            s.name_seen(Source::Http, top_names::from_host(b"ads.example.com"));
        }
        s.name_seen(Source::Tls, top_names::from_sni(b"ads.example.com"));
        s.name_seen(Source::Tls, top_names::from_sni(b"t.example"));
        s.name_seen(Source::Http, top_names::from_host(b"<script>\"x"));
        s
    }

    #[test]
    fn json_has_the_top_names() {
        let s = names_sample();
        let v: serde_json::Value = serde_json::from_str(&json("v", &view(&s))).unwrap();
        let top = &v["top_names"];
        assert_eq!(top["capacity"], 128);
        assert_eq!(top["counted"], 5);
        assert_eq!(top["invalid"]["http"], 1);
        assert_eq!(top["invalid"]["tls"], 0);
        let names = top["names"].as_array().unwrap();
        assert_eq!(names.len(), 2);
        assert_eq!(
            names[0],
            serde_json::json!({"name":"ads.example.com","count":4,"error":0,"http":3,"tls":1})
        );
        assert_eq!(names[1]["name"], "t.example");
        let empty: serde_json::Value =
            serde_json::from_str(&json("v", &view(&Stats::new()))).unwrap();
        assert_eq!(empty["top_names"]["names"], serde_json::json!([]));
    }

    #[test]
    fn top_names_page_is_one_escaped_line() {
        let s = names_sample();
        let page = top_names_page("v<1>", &view(&s));
        assert!(page.starts_with("<!DOCTYPE html><html><head>"));
        assert!(page.contains("<body>v&lt;1&gt;<br><br>"));
        assert!(page.contains("5 counted, 1 invalid (1 Host, 0 SNI)"));
        assert!(page.contains(
            "<tr><td>1</td><td>ads.example.com</td><td>4</td><td>0</td><td>3</td><td>1</td></tr>\
             <tr><td>2</td><td>t.example</td><td>1</td><td>0</td><td>0</td><td>1</td></tr></table>"
        ));
        assert!(!page.contains("script"));
        assert!(page.ends_with("</table></body></html>\r\n"));
        assert!(!page.trim_end_matches("\r\n").contains(['\n', '\r']));
    }
}
