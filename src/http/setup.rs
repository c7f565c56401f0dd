//! The setup page: `/` at the server's own address (an IP literal the client connected to,
//! or a host given with `--setup-host`) shows how to trust the CA on the device in hand and
//! checks live whether it does. Every other Host keeps the empty answer (a blocked name
//! never sees the page).
//!
//! Built once at startup: the page up to the steps with the CA's name, fingerprint and the
//! HTTPS port filled in; the steps and the end are the template's own bytes. A request only
//! picks the order of the steps from its User-Agent (the device's steps first and open, the
//! others folded) and copies the pieces.

use std::net::IpAddr;

use memchr::memmem;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::X509Ref;

use super::response::{self, Mode};

/// The page, with `{{name}}`, `{{fingerprint}}`, `{{port}}` and `{{steps}}`.
const FRAME: &str = include_str!("setup.html");
/// One `<details id=…>` element per platform, in `Platform::ALL` order, each ending a line.
const STEPS: &str = include_str!("setup-steps.html");
const DETAILS: &str = "<details";
const THIS_DEVICE: &str = "<h2>Steps for this device</h2>\n";
const OTHERS: &str = "<h2>Other devices</h2>\n";
const EVERY_DEVICE: &str = "<h2>Steps for each device</h2>\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Ios,
    Android,
    Windows,
    MacOs,
    Firefox,
    Linux,
}

impl Platform {
    /// The order of the steps when the User-Agent names none of them.
    pub const ALL: [Platform; 6] = [
        Platform::Ios,
        Platform::Android,
        Platform::Windows,
        Platform::MacOs,
        Platform::Firefox,
        Platform::Linux,
    ];

    /// The steps this User-Agent needs first. Order matters: Android's says Linux, iOS's
    /// says Mac OS X, and Firefox follows its system's store everywhere but on Linux. An
    /// iPad that asks for desktop pages says Macintosh; the page's script opens its steps.
    pub fn from_user_agent(ua: &[u8]) -> Option<Platform> {
        let has = |needle: &[u8]| memmem::find(ua, needle).is_some();
        if has(b"iPhone") || has(b"iPad") || has(b"iPod") {
            Some(Platform::Ios)
        } else if has(b"Android") {
            Some(Platform::Android)
        } else if has(b"Windows") {
            Some(Platform::Windows)
        } else if has(b"Macintosh") {
            Some(Platform::MacOs)
        } else if has(b"Firefox/") {
            Some(Platform::Firefox)
        } else if has(b"Linux") || has(b"X11") || has(b"CrOS") {
            Some(Platform::Linux)
        } else {
            None
        }
    }

    fn index(self) -> usize {
        Platform::ALL.iter().position(|&p| p == self).unwrap_or(0)
    }
}

/// Where `/` shows the page, and the page's pre-rendered pieces.
#[derive(Clone)]
pub struct SetupPage {
    /// `--setup-host` values (`config` made them lower case, without a final dot),
    /// compared as text: names, or addresses as typed in a browser.
    names: Vec<String>,
    /// The page up to its steps, CA and port filled in.
    top: String,
    steps: [&'static str; 6],
    /// After the steps: the script and the end.
    bottom: &'static str,
}

impl SetupPage {
    /// `ca`: the certificate `/ca.crt` serves first; `https_port`: where the live check
    /// connects; `hosts`: `--setup-host` values (checked by `config`).
    pub fn new(ca: &X509Ref, https_port: u16, hosts: &[String]) -> SetupPage {
        Self::with_ca_details(&ca_name(ca), &fingerprint(ca), https_port, hosts)
    }

    /// The page for a CA named `name` with this fingerprint (text, escaped here).
    pub fn with_ca_details(
        name: &str,
        fingerprint: &str,
        https_port: u16,
        hosts: &[String],
    ) -> SetupPage {
        // The frame alternates text and `@mark@`; the text after `@steps@` is the bottom.
        let mut top = String::with_capacity(FRAME.len());
        let mut rest = FRAME;
        let bottom = loop {
            let Some((text, after)) = rest.split_once('@') else {
                top.push_str(rest);
                break "";
            };
            top.push_str(text);
            let Some((mark, after)) = after.split_once('@') else {
                break "";
            };
            rest = after;
            match mark {
                "name" => escape_into(&mut top, name),
                "fingerprint" => escape_into(&mut top, fingerprint),
                "port" => top.push_str(&https_port.to_string()),
                _ => break after,
            }
        };
        // Each platform's steps start on a line of their own with `<details`.
        let mut steps = [""; 6];
        let (mut n, mut start, mut at) = (0, 0, 0);
        for line in STEPS.split_inclusive('\n') {
            if line.starts_with(DETAILS) && at > 0 {
                if let Some(slot) = steps.get_mut(n) {
                    *slot = STEPS.get(start..at).unwrap_or_default();
                }
                (n, start) = (n + 1, at);
            }
            at += line.len();
        }
        if let Some(slot) = steps.get_mut(n) {
            *slot = STEPS.get(start..).unwrap_or_default();
        }
        SetupPage {
            names: hosts.to_vec(),
            top,
            steps,
            bottom,
        }
    }

    /// Whether a request with this `Host` is for the page. `local` gives the address the
    /// client connected to; it is asked only for an IP-literal Host (one system call).
    pub fn serves(&self, host: &[u8], local: &dyn Fn() -> Option<IpAddr>) -> bool {
        let Ok(host) = std::str::from_utf8(host.trim_ascii()) else {
            return false;
        };
        let name = without_port(host);
        let bare = name.strip_suffix('.').unwrap_or(name);
        if self.names.iter().any(|n| n.eq_ignore_ascii_case(bare)) {
            return true;
        }
        // IPv4-mapped IPv6 as IPv4, as `local` gives it.
        name.parse::<IpAddr>()
            .is_ok_and(|ip| local() == Some(ip.to_canonical()))
    }

    /// The whole response: this User-Agent's steps first.
    pub fn write(&self, user_agent: Option<&[u8]>, mode: Mode, out: &mut Vec<u8>) {
        let first = user_agent.and_then(Platform::from_user_agent);
        let featured = first.map_or(usize::MAX, Platform::index);
        // top, 2 headings, the featured steps in two pieces, 5 more, bottom: at most 11.
        let mut pieces: [&[u8]; 11] = [b""; 11];
        pieces[0] = self.top.as_bytes();
        pieces[1] = if first.is_some() {
            THIS_DEVICE
        } else {
            EVERY_DEVICE
        }
        .as_bytes();
        let mut n = 2;
        if let Some(steps) = self.steps.get(featured) {
            pieces[2] = b"<details open";
            pieces[3] = steps.get(DETAILS.len()..).unwrap_or_default().as_bytes();
            pieces[4] = OTHERS.as_bytes();
            n = 5;
        }
        for (i, steps) in self.steps.iter().enumerate() {
            if i != featured {
                pieces[n] = steps.as_bytes();
                n += 1;
            }
        }
        pieces[n] = self.bottom.as_bytes();
        response::write_page(&pieces[..=n], mode, out);
    }
}

/// `host` without `:port`; an IPv6 literal without its brackets.
fn without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(inner, _)| inner);
    }
    match host.split_once(':') {
        Some((name, port)) if !port.contains(':') => name,
        _ => host,
    }
}

/// The common name (a CA of one's own may have none).
fn ca_name(ca: &X509Ref) -> String {
    ca.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .map_or_else(
            || "(no common name)".to_string(),
            |e| String::from_utf8_lossy(e.data().as_slice()).into_owned(),
        )
}

/// SHA-256 of the DER certificate as `openssl x509 -fingerprint -sha256` prints it.
fn fingerprint(ca: &X509Ref) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digest = ca.digest(MessageDigest::sha256());
    let mut out = String::with_capacity(95);
    for (i, b) in digest.iter().flat_map(|d| d.iter()).enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

fn escape_into(out: &mut String, text: &str) {
    let mut plain = 0;
    for (i, b) in text.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => continue,
        };
        // ASCII bytes are char boundaries.
        out.push_str(text.get(plain..i).unwrap_or_default());
        out.push_str(entity);
        plain = i + 1;
    }
    out.push_str(text.get(plain..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ca() -> (crate::tls::store::tests::TempDir, crate::tls::ca::Ca) {
        let dir = crate::tls::store::tests::TempDir::new("setup");
        let (ca, _) =
            crate::tls::ca::load_or_create_at(&dir.0, crate::x509::KeyType::Ecdsa).unwrap();
        (dir, ca)
    }

    fn page(hosts: &[&str]) -> SetupPage {
        let (_dir, ca) = ca();
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        SetupPage::new(&ca.cert, 8443, &hosts)
    }

    const KA: Mode = Mode {
        keep_alive: true,
        head_only: false,
    };

    fn body(p: &SetupPage, ua: Option<&str>) -> String {
        let mut out = Vec::new();
        p.write(ua.map(str::as_bytes), KA, &mut out);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), body.len());
        body.to_string()
    }

    #[test]
    fn template_has_every_piece() {
        for mark in ["@name@", "@fingerprint@", "@port@", "@steps@"] {
            assert_eq!(FRAME.matches(mark).count(), 1, "{mark}");
        }
        assert_eq!(FRAME.matches('@').count(), 8);
        assert!(!STEPS.contains('@'));
        let pieces: Vec<&str> = STEPS.split_inclusive("</details>\n").collect();
        let ids = ["ios", "android", "windows", "macos", "firefox", "linux"];
        assert_eq!(pieces.len(), ids.len());
        for (piece, id) in pieces.iter().zip(ids) {
            assert!(piece.starts_with(&format!("<details id={id}>")), "{piece}");
            assert_eq!(piece.matches("<details").count(), 1);
        }
        // No resource from elsewhere: the only URLs are our own.
        let all = format!("{FRAME}{STEPS}");
        assert!(!all.contains("http://") && !all.contains("//cdn"));
        assert_eq!(all.matches("https://").count(), 1);
    }

    #[test]
    fn ca_details_are_filled_in() {
        let (_dir, ca) = ca();
        let p = SetupPage::new(&ca.cert, 443, &[]);
        let b = body(&p, None);
        assert!(!b.contains('@'));
        let fp = fingerprint(&ca.cert);
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(b.contains(&format!("<code id=fp>{fp}</code>")));
        assert!(b.contains(&format!("<b>{}</b>", ca_name(&ca.cert))));
        assert!(ca_name(&ca.cert).starts_with("Pixelserv CA "));
        assert!(b.contains("data-port=\"443\""));
    }

    #[test]
    fn steps_for_this_device_come_first() {
        let p = page(&[]);
        let ios = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15";
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0";
        let windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko Firefox/128.0";
        let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15";
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let linux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0";
        for (ua, id) in [
            (ios, "ios"),
            (android, "android"),
            (windows, "windows"),
            (mac, "macos"),
            (firefox, "firefox"),
            (linux, "linux"),
        ] {
            let b = body(&p, Some(ua));
            let open = format!("<h2>Steps for this device</h2>\n<details open id={id}>");
            assert!(b.contains(&open), "{ua}");
            assert_eq!(b.matches("<details").count(), 6);
            assert_eq!(b.matches("<details open").count(), 1);
            assert!(b.find(&open).unwrap() < b.find("<h2>Other devices</h2>").unwrap());
        }
        for ua in [None, Some("curl/8.5.0"), Some("")] {
            let b = body(&p, ua);
            assert!(b.contains("<h2>Steps for each device</h2>\n<details id=ios>"));
            assert!(!b.contains("<details open"));
            assert_eq!(b.matches("<details").count(), 6);
        }
    }

    #[test]
    fn head_only_has_the_length_of_get() {
        let p = page(&[]);
        let mut get = Vec::new();
        p.write(Some(b"Android"), KA, &mut get);
        let mut head = Vec::new();
        let mode = Mode {
            keep_alive: false,
            head_only: true,
        };
        p.write(Some(b"Android"), mode, &mut head);
        let head = String::from_utf8(head).unwrap();
        assert!(head.ends_with("\r\n\r\n"));
        let get = String::from_utf8(get).unwrap();
        let len = |t: &str| {
            t.lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .to_string()
        };
        assert_eq!(len(&head), len(&get));
    }

    #[test]
    fn hosts_of_ours() {
        let p = page(&["setup.lan", "192.168.1.2", "fd00::2"]);
        let local4 = || Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let local6 = || Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        let asked = std::cell::Cell::new(0);
        let counted = || {
            asked.set(asked.get() + 1);
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        };
        for host in [
            "10.0.0.1",
            "10.0.0.1:8080",
            " 10.0.0.1 ",
            "[::ffff:10.0.0.1]:80",
        ] {
            assert!(p.serves(host.as_bytes(), &local4), "{host}");
        }
        for host in [
            "setup.lan",
            "SETUP.lan.",
            "setup.lan:80",
            "192.168.1.2:8080",
        ] {
            assert!(p.serves(host.as_bytes(), &local4), "{host}");
        }
        for host in ["[::1]", "[::1]:8443", "[fd00::2]:80"] {
            assert!(p.serves(host.as_bytes(), &local6), "{host}");
        }
        for host in [
            "ads.example.com",
            "10.0.0.2",
            "10.0.0.1.nip.io",
            "setup.lan.example",
            "",
            "[::1",
            "::1",
            "\u{ff}",
        ] {
            assert!(!p.serves(host.as_bytes(), &local4), "{host}");
        }
        assert!(!p.serves(b"127.0.0.1", &|| None));
        // A name never costs the system call.
        assert!(!p.serves(b"ads.example.com", &counted));
        assert!(p.serves(b"setup.lan", &counted));
        assert_eq!(asked.get(), 0);
        assert!(p.serves(b"10.0.0.1", &counted));
        assert_eq!(asked.get(), 1);
    }

    #[test]
    fn names_are_escaped() {
        let p = SetupPage::with_ca_details("<a href=\"x\">&é", "AB", 1, &[]);
        assert!(p.top.contains("<b>&lt;a href=&quot;x&quot;&gt;&amp;é</b>"));
        assert!(p.top.contains("<code id=fp>AB</code>"));
        assert!(p.top.contains("data-port=\"1\""));
        assert!(p.bottom.starts_with("\n<script>"));
        assert!(p.steps.iter().all(|s| s.starts_with("<details id=")));
    }
}
