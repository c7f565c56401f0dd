//! Public Suffix List matcher: decides whether a wildcard certificate may cover a parent name.
//!
//! The list is Mozilla's Public Suffix List, https://publicsuffix.org/list/public_suffix_list.dat
//! (MPL-2.0). A full copy ships as include-docs/public_suffix_list.dat; users can put an updated
//! copy in CERT_PATH or pass --psl. The compiled-in fallback (psl_builtin.txt) holds only the
//! ICANN rules that the implicit `*` rule does not already cover; regenerate it with
//! tools/psl-compact.py.
//!
//! Rules are stored as ASCII: IDN labels are converted to punycode A-labels because SNI names
//! are always sent in that form.

use std::collections::HashSet;
use std::path::Path;

use crate::sys::files::{read_path, Owners};

/// The full list is about 230 kB; a file far larger is not a list.
pub const MAX_FILE: u64 = 4 << 20;

const BUILTIN: &str = include_str!("psl_builtin.txt");

#[derive(Debug, Default, Clone)]
pub struct Psl {
    /// Normal rules with two or more labels (single labels are the implicit `*` rule).
    rules: HashSet<Box<str>>,
    /// Parents of wildcard rules: `*.ck` is stored as `ck`.
    wild: HashSet<Box<str>>,
    /// Exception rules without the `!`.
    except: HashSet<Box<str>>,
}

impl Psl {
    /// The compact compiled-in ICANN list.
    pub fn builtin() -> Psl {
        let mut psl = Psl::default();
        for line in BUILTIN.lines().filter(|l| !l.starts_with("//")) {
            let mut words = line.split_whitespace();
            let Some(parent) = words.next() else { continue };
            for head in words {
                psl.add_rule(&format!("{head}.{parent}"));
            }
        }
        psl
    }

    /// Parses the standard PSL format; invalid lines are skipped.
    pub fn parse(text: &str) -> Psl {
        let mut psl = Psl::default();
        for line in text.lines() {
            // Only the first word counts; the rest of the line may be anything.
            let Some(word) = line.split_whitespace().next() else {
                continue;
            };
            let rule = word.split("//").next().unwrap_or("");
            if !rule.is_empty() {
                psl.add_rule(rule);
            }
        }
        psl
    }

    /// Reads a list file (no link followed, regular files only, at most `MAX_FILE` bytes, an
    /// owner in `owners`); `Ok(None)` when there is none. A file without any usable rule is
    /// refused so that the caller can fall back to [`Psl::builtin`] instead of silently
    /// making every parent wildcard-able.
    pub fn load(path: &Path, owners: &Owners) -> Result<Option<Psl>, String> {
        let contents = match read_path(path, MAX_FILE, owners) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let text = String::from_utf8(contents.bytes).map_err(|_| "not UTF-8 text".to_string())?;
        let psl = Psl::parse(&text);
        if psl.rules.is_empty() && psl.wild.is_empty() && psl.except.is_empty() {
            return Err("no public suffix rules found".to_string());
        }
        Ok(Some(psl))
    }

    /// Whether `domain` (lower-case, no trailing dot) is itself a public suffix, i.e. the
    /// prevailing rule of the PSL algorithm matches all of its labels.
    pub fn is_public_suffix(&self, domain: &str) -> bool {
        if domain.is_empty() {
            return false;
        }
        // An exception rule prevails and always yields a suffix shorter than the rule itself.
        if !self.except.is_empty() && suffixes(domain).any(|s| self.except.contains(s)) {
            return false;
        }
        match domain.split_once('.') {
            None => true,
            Some((_, parent)) => self.rules.contains(domain) || self.wild.contains(parent),
        }
    }

    fn add_rule(&mut self, rule: &str) {
        let (exception, body) = match rule.strip_prefix('!') {
            Some(b) => (true, b),
            None => (false, rule),
        };
        let Some(ascii) = to_ascii_rule(body) else {
            return;
        };
        match ascii.split_once('.') {
            // Single labels are covered by the implicit `*` rule; `!*.x` means nothing.
            None | Some(("*", _)) if exception => {}
            None => {}
            Some(_) if exception => {
                self.except.insert(ascii.into());
            }
            Some(("*", parent)) => {
                self.wild.insert(parent.into());
            }
            Some(_) => {
                self.rules.insert(ascii.into());
            }
        }
    }
}

/// `a.b.c`, `b.c`, `c`: each suffix as a subslice, so lookups need no allocation.
fn suffixes(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::once(domain).chain(
        domain
            .match_indices('.')
            .filter_map(move |(i, _)| domain.get(i + 1..)),
    )
}

/// Lower-cases and punycode-encodes a rule; `None` if it is not a usable rule (empty labels,
/// odd characters, a `*` anywhere but as the whole first label).
fn to_ascii_rule(rule: &str) -> Option<String> {
    let mut out = String::with_capacity(rule.len());
    for (i, label) in rule.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        if label == "*" && i == 0 {
            out.push('*');
            continue;
        }
        let ascii = if label.is_ascii() {
            label.to_ascii_lowercase()
        } else {
            format!("xn--{}", punycode(&label.to_lowercase())?)
        };
        let ok = !ascii.is_empty()
            && ascii
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return None;
        }
        out.push_str(&ascii);
    }
    if out.len() > 253 {
        return None;
    }
    Some(out)
}

/// RFC 3492 punycode encoding of one label (without the `xn--` prefix); `None` on overflow.
fn punycode(label: &str) -> Option<String> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    const INITIAL_BIAS: u32 = 72;
    const INITIAL_N: u32 = 128;

    fn digit(d: u32) -> char {
        // d < BASE by construction; both arms stay within ASCII.
        let b = if d < 26 {
            b'a' + d as u8
        } else {
            b'0' + (d - 26) as u8
        };
        b as char
    }
    fn adapt(delta: u32, points: u32, first: bool) -> u32 {
        let mut delta = if first { delta / 700 } else { delta / 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            k += BASE;
        }
        k + (BASE - TMIN + 1) * delta / (delta + 38)
    }

    let input: Vec<u32> = label.chars().map(u32::from).collect();
    let mut out: String = label.chars().filter(char::is_ascii).collect();
    let basic = u32::try_from(out.len()).ok()?;
    let total = u32::try_from(input.len()).ok()?;
    if basic > 0 {
        out.push('-');
    }
    let (mut n, mut delta, mut bias, mut h) = (INITIAL_N, 0u32, INITIAL_BIAS, basic);
    while h < total {
        let m = input.iter().copied().filter(|&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(h + 1)?)?;
        n = m;
        for &c in &input {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, h + 1, h == basic);
                delta = 0;
                h += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
// comment line
// ===BEGIN ICANN DOMAINS===
com
uk
co.uk   // trailing comment
*.ck
!www.ck
*.kawasaki.jp
!city.kawasaki.jp
公司.cn
  jp\t\t
bad..rule
a.*.b
*
!*.x
// ===END ICANN DOMAINS===
// ===BEGIN PRIVATE DOMAINS===
github.io
blogspot.co.uk
// ===END PRIVATE DOMAINS===
";

    #[test]
    fn punycode_known_vectors() {
        // Reference values from Python's `str.encode("punycode")` and RFC 3492 §7.1.
        let cases = [
            ("公司", "55qx5d"),
            ("网络", "io0a7i"),
            ("aéroport", "aroport-bya"),
            ("bücher", "bcher-kva"),
            ("münchen", "mnchen-3ya"),
            ("ليهمابتكلموشعربي؟", "egbpdaj6bu4bxfgehfvwxn"),
            ("他们为什么不说中文", "ihqwcrb4cv8a8dqg056pqjye"),
            ("ü", "tda"),
        ];
        for (u, a) in cases {
            assert_eq!(punycode(u).as_deref(), Some(a), "{u}");
        }
    }

    #[test]
    fn parse_sample() {
        let p = Psl::parse(SAMPLE);
        for ps in [
            "com",
            "uk",
            "co.uk",
            "foo.ck",
            "x.kawasaki.jp",
            "xn--55qx5d.cn",
            "github.io",
            "blogspot.co.uk",
            "anything",
            "jp",
        ] {
            assert!(p.is_public_suffix(ps), "{ps}");
        }
        for not in [
            "",
            "example.com",
            "shop.co.uk",
            "www.ck",
            "a.www.ck",
            "ck.ck.www.ck",
            "city.kawasaki.jp",
            "kawasaki.jp",
            "a.b.kawasaki.jp",
            "foo.github.io",
            "bad..rule",
            "a.x.b",
            "x.x",
            "a.foo.ck",
            "example.cn",
        ] {
            assert!(!p.is_public_suffix(not), "{not}");
        }
    }

    #[test]
    fn invalid_rules_skipped() {
        let p = Psl::parse("a..b\n.x.y\nx.y.\n*.*.z\na/b.c\na/ü.com\nü\u{0}.de\n!q\n*\n \n\n");
        assert!(p.rules.is_empty() && p.wild.is_empty() && p.except.is_empty());
        assert!(!p.is_public_suffix("a..b"));
        assert!(!p.is_public_suffix("x.y"));
    }

    #[test]
    fn case_and_idn_normalised() {
        let p = Psl::parse("CO.UK\nÉCOLE.fr\n");
        assert!(p.is_public_suffix("co.uk"));
        assert!(p.is_public_suffix("xn--cole-9oa.fr"));
    }

    #[test]
    fn full_list() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("include-docs/public_suffix_list.dat");
        let p = Psl::load(&path, &crate::sys::files::Owners::Any)
            .unwrap()
            .expect("shipped list loads");
        assert!(p.is_public_suffix("github.io"));
        assert!(p.is_public_suffix("co.uk"));
        assert!(p.is_public_suffix("xn--55qx5d.cn"));
        assert!(p.is_public_suffix("foo.kawasaki.jp"));
        assert!(!p.is_public_suffix("city.kawasaki.jp"));
        assert!(!p.is_public_suffix("example.com"));
        assert!(!p.is_public_suffix("google.de"));
    }

    #[test]
    fn builtin_list() {
        let p = Psl::builtin();
        assert!(p.rules.len() > 5000, "{}", p.rules.len());
        assert!(p.is_public_suffix("co.uk"));
        assert!(p.is_public_suffix("com.au"));
        assert!(p.is_public_suffix("xn--55qx5d.cn"));
        assert!(p.is_public_suffix("foo.ck"));
        assert!(!p.is_public_suffix("www.ck"));
        assert!(p.is_public_suffix("bar.kawasaki.jp"));
        assert!(!p.is_public_suffix("city.kawasaki.jp"));
        assert!(!p.is_public_suffix("example.com"));
        // PRIVATE section is not in the fallback.
        assert!(!p.is_public_suffix("github.io"));
    }

    #[test]
    fn builtin_matches_full_icann_section() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("include-docs/public_suffix_list.dat");
        let text = std::fs::read_to_string(path).expect("shipped list");
        let icann = text.split("===END ICANN DOMAINS===").next().unwrap_or("");
        let (full, b) = (Psl::parse(icann), Psl::builtin());
        assert_eq!(full.rules, b.rules);
        assert_eq!(full.wild, b.wild);
        assert_eq!(full.except, b.except);
    }

    #[test]
    fn load_errors() {
        let dir = std::env::temp_dir().join(format!("psl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let any = Owners::Any;
        assert!(Psl::load(&dir.join("missing"), &any).unwrap().is_none());
        let junk = dir.join("junk");
        std::fs::write(&junk, "// only comments\n\n").expect("write");
        assert!(Psl::load(&junk, &any)
            .unwrap_err()
            .contains("no public suffix rules"));
        std::fs::write(&junk, [0xffu8, 0xfe, b'\n']).expect("write");
        assert!(Psl::load(&junk, &any).is_err());
        let fifo = std::ffi::CString::new(dir.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(Psl::load(&dir.join("fifo"), &any)
            .unwrap_err()
            .contains("FIFO"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn suffix_iteration() {
        let v: Vec<&str> = suffixes("a.b.c").collect();
        assert_eq!(v, ["a.b.c", "b.c", "c"]);
        let v: Vec<&str> = suffixes("x").collect();
        assert_eq!(v, ["x"]);
    }
}
