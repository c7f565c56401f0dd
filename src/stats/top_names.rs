//! What is being blocked: the names clients ask for most since the start, from the HTTP
//! `Host` of each plain-HTTP request and the TLS SNI of each TLS connection.
//!
//! An HTTPS request is counted once, by the SNI of its connection, at the ClientHello, and
//! not again by its `Host`: the SNI is known even when the handshake fails (a device that
//! does not trust the CA never sends a request), and inside TLS the `Host` names the same
//! site. So a name's count is its plain-HTTP requests plus its TLS connections.
//!
//! Names come from clients, so they are normalised before they are counted: ASCII lower
//! case, the port and a final dot removed, only letters, digits, `-`, `_` and dots (or an
//! IPv6 literal in brackets), DNS lengths. Anything else counts as invalid, apart from the
//! table. A name longer than `NAME_MAX` is kept as `*.` and its longest tail of whole
//! labels that fits. What reaches a page is therefore safe in JSON and HTML as it is.
//!
//! Memory is fixed: a `topk::TopK` of `CAPACITY` slots of `NAME_MAX` bytes (about 15 kB).
//! Counting a name copies it into a stack buffer; nothing is allocated.

use crate::stats::topk::TopK;

/// Slots of the table: twice what is shown, so the counts of the shown names are exact
/// or close to it for any but the flattest traffic.
pub const CAPACITY: usize = 128;
/// Names shown on the pages.
pub const SHOWN: usize = 50;
/// Longest name kept as it is.
pub const NAME_MAX: usize = 64;
const DNS_NAME_MAX: usize = 253;
const LABEL_MAX: usize = 63;
/// `[` + the longest IPv6 text form (with an embedded IPv4) + `]`.
const IPV6_LITERAL_MAX: usize = 47;

/// Where a name was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The `Host` of a plain-HTTP request.
    Http,
    /// The SNI of a TLS connection.
    Tls,
}

/// A normalised name, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    bytes: [u8; NAME_MAX],
    len: u8,
}

impl Name {
    fn new(parts: &[&[u8]]) -> Name {
        let mut name = Name {
            bytes: [0; NAME_MAX],
            len: 0,
        };
        for part in parts {
            let at = usize::from(name.len);
            let dst = &mut name.bytes[at..at + part.len()];
            dst.copy_from_slice(part);
            dst.make_ascii_lowercase();
            name.len += part.len() as u8;
        }
        name
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Name({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A name as a client sent it, judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    Name(Name),
    Invalid,
}

/// An HTTP `Host` value: `name`, `name:port`, `[v6]` or `[v6]:port`.
pub fn from_host(value: &[u8]) -> Observed {
    match strip_port(value) {
        Some(host) if host.starts_with(b"[") => ipv6_literal(host),
        Some(host) => dns_name(host),
        None => Observed::Invalid,
    }
}

/// A TLS server_name: a DNS name (RFC 6066 allows no port and no IP literal).
pub fn from_sni(name: &[u8]) -> Observed {
    dns_name(name)
}

fn strip_port(value: &[u8]) -> Option<&[u8]> {
    let split = if value.starts_with(b"[") {
        value.iter().position(|&b| b == b']')? + 1
    } else {
        value.iter().position(|&b| b == b':').unwrap_or(value.len())
    };
    let (host, port) = value.split_at(split);
    let digits = port.strip_prefix(b":").unwrap_or(port);
    let port_ok = port.is_empty()
        || (port.len() == digits.len() + 1
            && digits.len() <= 5
            && digits.iter().all(u8::is_ascii_digit));
    port_ok.then_some(host)
}

fn ipv6_literal(host: &[u8]) -> Observed {
    let inner = &host[1..host.len() - 1];
    let ok = host.len() <= IPV6_LITERAL_MAX
        && inner.contains(&b':')
        && inner
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    if ok {
        Observed::Name(Name::new(&[host]))
    } else {
        Observed::Invalid
    }
}

fn dns_name(name: &[u8]) -> Observed {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.len() <= NAME_MAX {
        return short_name(name).map_or(Observed::Invalid, Observed::Name);
    }
    if name.len() > DNS_NAME_MAX || !labels_ok(name) {
        return Observed::Invalid;
    }
    // The rightmost labels say whose name it is: keep as many whole ones as fit.
    let room = NAME_MAX - 2;
    let tail = name
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'.' && name.len() - (i + 1) <= room)
        .map(|(i, _)| &name[i + 1..])
        .next();
    match tail {
        Some(tail) => Observed::Name(Name::new(&[b"*.", tail])),
        None => Observed::Invalid,
    }
}

/// What each byte of a DNS name becomes: a label byte (letter, digit, `-`, `_`) itself in
/// lower case, a dot `DOT`, anything else `OTHER`.
const OTHER: u8 = 0;
const DOT: u8 = b'.';
const MAP: [u8; 256] = {
    let mut map = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        map[b] = if c == b'.' {
            DOT
        } else if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            c.to_ascii_lowercase()
        } else {
            OTHER
        };
        b += 1;
    }
    map
};

/// One byte of a name through `MAP`, with the length of the label it ends or extends:
/// false when the name cannot be valid.
#[inline(always)]
fn step(mapped: u8, label: &mut usize) -> bool {
    match mapped {
        OTHER => false,
        DOT if *label == 0 => false,
        DOT => {
            *label = 0;
            true
        }
        _ if *label == LABEL_MAX => false,
        _ => {
            *label += 1;
            true
        }
    }
}

/// Non-empty labels of at most `LABEL_MAX` letters, digits, `-` and `_`, in one pass.
fn labels_ok(name: &[u8]) -> bool {
    let mut label = 0;
    name.iter().all(|&b| step(MAP[usize::from(b)], &mut label)) && label > 0
}

/// A name of at most `NAME_MAX` bytes checked as `labels_ok` and copied in lower case in
/// the same pass (the common case: one pass over the bytes instead of three).
fn short_name(name: &[u8]) -> Option<Name> {
    let mut out = Name {
        bytes: [0; NAME_MAX],
        len: name.len() as u8,
    };
    let mut label = 0;
    for (dst, &b) in out.bytes.iter_mut().zip(name) {
        let mapped = MAP[usize::from(b)];
        if !step(mapped, &mut label) {
            return None;
        }
        *dst = mapped;
    }
    (label > 0).then_some(out)
}

/// One shown name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Top<'a> {
    pub name: &'a str,
    /// Upper bound of the name's count; at least `count - error` are certain.
    pub count: u64,
    pub error: u64,
    /// Plain-HTTP requests and TLS connections counted while the name was in the table
    /// (together `count - error`).
    pub http: u64,
    pub tls: u64,
}

pub struct TopNames {
    table: TopK<CAPACITY, NAME_MAX, 2>,
    invalid: [u64; 2],
}

impl Default for TopNames {
    fn default() -> Self {
        Self::new()
    }
}

impl TopNames {
    pub fn new() -> TopNames {
        TopNames {
            table: TopK::new(),
            invalid: [0; 2],
        }
    }

    pub fn observe(&mut self, source: Source, seen: Observed) {
        match seen {
            Observed::Name(name) => self.table.add(name.as_bytes(), source as usize),
            Observed::Invalid => {
                let n = &mut self.invalid[source as usize];
                *n = n.saturating_add(1);
            }
        }
    }

    /// The `SHOWN` most counted names, most counted first.
    pub fn top(&self) -> Vec<Top<'_>> {
        self.table
            .top(SHOWN)
            .into_iter()
            .map(|e| Top {
                // Only ASCII is ever stored.
                name: std::str::from_utf8(e.key).unwrap_or_default(),
                count: e.count,
                error: e.error,
                http: e.tags[Source::Http as usize],
                tls: e.tags[Source::Tls as usize],
            })
            .collect()
    }

    /// Valid names counted (the stream the table summarises).
    pub fn counted(&self) -> u64 {
        self.table.total()
    }

    pub fn invalid(&self, source: Source) -> u64 {
        self.invalid[source as usize]
    }

    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(v: &str) -> Option<String> {
        match from_host(v.as_bytes()) {
            Observed::Name(n) => Some(String::from_utf8(n.as_bytes().to_vec()).unwrap()),
            Observed::Invalid => None,
        }
    }

    fn sni(v: &[u8]) -> Option<String> {
        match from_sni(v) {
            Observed::Name(n) => Some(String::from_utf8(n.as_bytes().to_vec()).unwrap()),
            Observed::Invalid => None,
        }
    }

    #[test]
    fn hosts_are_normalised() {
        for (raw, want) in [
            ("Ads.Example.COM", "ads.example.com"),
            ("ads.example.com:8080", "ads.example.com"),
            ("ads.example.com.", "ads.example.com"),
            ("ads.example.com.:80", "ads.example.com"),
            ("ads.example.com:", "ads.example.com"),
            ("192.168.1.1:80", "192.168.1.1"),
            ("[::1]:8080", "[::1]"),
            ("[2001:DB8::1]", "[2001:db8::1]"),
            ("[::ffff:10.0.0.1]", "[::ffff:10.0.0.1]"),
            ("_dmarc.x-y.example", "_dmarc.x-y.example"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(host(raw).as_deref(), Some(want), "{raw}");
        }
    }

    #[test]
    fn junk_is_invalid() {
        for raw in [
            "",
            ":80",
            ".",
            "..",
            "a..b",
            ".a",
            "a b",
            "a\"b",
            "<script>",
            "a.com:80:80",
            "a.com:123456",
            "a.com:8o",
            "a.com/x",
            "a\\b",
            "a,b",
            "[::1",
            "[::1]x",
            "[]",
            "[zz::1]",
            "[1.2.3.4]",
            "[::1]:99999999",
            "*.example.com",
            "a%2eb",
            "ex\u{e4}mple.com",
        ] {
            assert_eq!(host(raw), None, "{raw:?}");
        }
        assert_eq!(host(&format!("{}.com", "a".repeat(64))), None);
        assert_eq!(host(&format!("{}.com", "a.".repeat(126))), None); // 256 bytes
        assert_eq!(host(&format!("[{}]", "1:".repeat(30))), None);
        for raw in [&b"a\0b"[..], b"a\r\nb", b"a\xffb", b"x:1"] {
            assert_eq!(sni(raw), None, "{raw:?}");
        }
        assert_eq!(sni(b"[::1]"), None);
    }

    #[test]
    fn long_names_keep_their_tail() {
        let long = format!("{}.tracker.example.com", "x".repeat(60));
        assert_eq!(host(&long).as_deref(), Some("*.tracker.example.com"));
        let many = format!("{}tracker.example.com", "abcdefghi.".repeat(8));
        let got = host(&many).unwrap();
        assert!(
            got.len() <= NAME_MAX && got.starts_with("*.") && got.ends_with(".tracker.example.com")
        );
        assert!(many.ends_with(&got[2..]));
        assert_eq!(
            host(&format!("{}.com", "a".repeat(63))).as_deref(),
            Some("*.com")
        );
        // The last label alone does not fit: nothing sensible to keep.
        assert_eq!(sni(format!("a.{}", "b".repeat(63)).as_bytes()), None);
        let exact = format!("{}.com", "a".repeat(NAME_MAX - 4));
        assert_eq!(host(&exact).as_deref(), Some(exact.as_str()));
    }

    /// xorshift64: deterministic garbage.
    fn garbage(seed: u64, n: usize) -> Vec<Vec<u8>> {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"aZ09-_.:[]/\\\"'<>& \t\r\n\0\x7f\xc3\xa4%*";
        (0..n)
            .map(|_| {
                let len = (next() % 80) as usize;
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn whatever_comes_in_only_safe_bytes_come_out() {
        let safe = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.*[]:".contains(&b);
        let mut valid = 0;
        for raw in garbage(7, 20_000) {
            for seen in [from_host(&raw), from_sni(&raw)] {
                if let Observed::Name(n) = seen {
                    valid += 1;
                    assert!(!n.as_bytes().is_empty() && n.as_bytes().len() <= NAME_MAX);
                    assert!(n.as_bytes().iter().all(|&b| safe(b)), "{n:?} from {raw:?}");
                }
            }
        }
        assert!(valid > 100, "the generator should make some valid names");
    }

    #[test]
    fn one_pass_matches_check_then_copy() {
        // `short_name` must judge and lower-case exactly as `labels_ok` + `Name::new`.
        let mut long = 0;
        for raw in garbage(11, 20_000)
            .into_iter()
            .chain([b"Ab-C_9.EXAMPLE".to_vec(), vec![b'a'; LABEL_MAX + 1]])
        {
            let raw = &raw[..raw.len().min(NAME_MAX)];
            let want = labels_ok(raw).then(|| Name::new(&[raw]));
            assert_eq!(short_name(raw), want, "{raw:?}");
            long += usize::from(raw.len() == NAME_MAX);
        }
        assert!(long > 0);
        assert_eq!(
            short_name(b"Ab-C_9.EXAMPLE").map(|n| n.as_bytes().to_vec()),
            Some(b"ab-c_9.example".to_vec())
        );
    }

    #[test]
    fn table_counts_both_sources_and_invalid_apart() {
        let mut t = TopNames::new();
        for _ in 0..3 {
            t.observe(Source::Http, from_host(b"Ads.example.com:80"));
        }
        t.observe(Source::Tls, from_sni(b"ads.example.com"));
        t.observe(Source::Tls, from_sni(b"other.example"));
        t.observe(Source::Http, from_host(b"<junk>"));
        t.observe(Source::Tls, from_sni(b"bad name"));
        t.observe(Source::Tls, from_sni(b"bad name"));
        let top = t.top();
        assert_eq!(
            top,
            [
                Top {
                    name: "ads.example.com",
                    count: 4,
                    error: 0,
                    http: 3,
                    tls: 1
                },
                Top {
                    name: "other.example",
                    count: 1,
                    error: 0,
                    http: 0,
                    tls: 1
                }
            ]
        );
        assert_eq!(t.counted(), 5);
        assert_eq!((t.invalid(Source::Http), t.invalid(Source::Tls)), (1, 2));
        assert_eq!(t.capacity(), CAPACITY);
        // What the docs promise: about 15 kB, whatever comes.
        assert!(
            t.table.heap_bytes() <= 15 * 1024,
            "{}",
            t.table.heap_bytes()
        );
    }

    #[test]
    fn a_flood_of_names_shows_at_most_shown_and_keeps_the_heavy_one() {
        let mut t = TopNames::new();
        for i in 0..10_000u32 {
            t.observe(Source::Http, from_host(format!("n{i}.example").as_bytes()));
            if i % 10 == 0 {
                t.observe(Source::Tls, from_sni(b"heavy.example"));
            }
        }
        let top = t.top();
        assert_eq!(top.len(), SHOWN);
        assert_eq!(top[0].name, "heavy.example");
        assert_eq!(top[0].tls, 1000);
        assert!(top[0].count - top[0].error <= 1000 && 1000 <= top[0].count);
    }
}
