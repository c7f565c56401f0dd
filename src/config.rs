//! Command line → `Config` (COMPATIBILITY.md §2), with the original's option letters,
//! defaults and port-list rules, and clear one-line errors instead of the original's silent
//! usage dump.

use std::path::{Path, PathBuf};

use crate::x509::KeyType;

/// One listening socket to open, in command-line order (COMPATIBILITY.md §2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenPort {
    pub port: u16,
    /// Connections accepted here speak TLS (`-k` and `-A` ports).
    pub tls: bool,
    /// This is the `-A` admin port.
    pub admin: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Positional `ip_addr`/`hostname`; `None` = all addresses (dual-stack `::`).
    pub listen_addr: Option<String>,
    /// Listening sockets in order, after the default-port rules of COMPATIBILITY.md §2.3.
    pub ports: Vec<ListenPort>,
    /// `-A`: admin URIs only on this port.
    pub admin_port: Option<u16>,
    /// `-2`: no 204 for /generate_204 and /gen_204.
    pub disable_204: bool,
    /// `-B [CERT_FILE]`: benchmark mode; inner `None` = default name.
    pub benchmark: Option<Option<String>>,
    /// `-c`: certificate cache entries (default 500).
    pub cert_cache_size: usize,
    /// `-f`: stay in the foreground (and copy log lines to stderr).
    pub foreground: bool,
    /// `--check`: validate the configuration, print a summary and exit.
    pub check: bool,
    /// `--log-to`: where log lines go; `None` = syslog, plus stderr with `-f`.
    pub log_to: Option<LogTo>,
    /// `-l`: log level 0..=5 (default 1, bare `-l` = 4).
    pub log_level: u8,
    /// `-n`: bind every listener to this interface.
    pub iface: Option<String>,
    /// `-O`: keep-alive idle seconds (default 120).
    pub keepalive_secs: u64,
    /// `-R`: redirect to URLs encoded in the path.
    pub redirect: bool,
    /// `-s` / `-t`: stats URLs.
    pub stats_html_url: String,
    pub stats_text_url: String,
    /// `-T`: maximum open connections (default 1200).
    pub max_conns: usize,
    /// `-u`: user to switch to (default "nobody").
    pub user: String,
    /// `-z`: CERT_PATH, the CA's directory (and the leaves' without `--leaf-dir`).
    pub cert_path: PathBuf,
    /// `--leaf-dir DIR`: generated certificates and the prefetch list, when not in CERT_PATH
    /// (the CA on flash, leaves in RAM).
    pub leaf_dir: Option<PathBuf>,
    /// `--leaf-key ecdsa|rsa` (default ecdsa).
    pub leaf_key: KeyType,
    /// `--ticket-keys FILE`: TLS session-ticket keys shared between instances.
    pub ticket_keys: Option<PathBuf>,
    /// `--psl FILE`: Public Suffix List (default CERT_PATH/public_suffix_list.dat if present).
    pub psl_file: Option<PathBuf>,
    /// `--handshake-timeout SECS` (default 5).
    pub handshake_timeout_secs: u64,
    /// `--header-timeout SECS`: a request head (or a body making no progress) (default 10).
    pub header_timeout_secs: u64,
    /// `--write-timeout SECS`: a response making no progress (default 10).
    pub write_timeout_secs: u64,
    /// `--cert-workers N` (default 2).
    pub cert_workers: usize,
    /// `--cert-files N`: certificate files kept in CERT_PATH (default 2000, 0 = none).
    pub cert_files: usize,
    /// `--setup-host HOST` (repeatable): names or addresses at which `/` shows the setup
    /// page, besides the address a client connected to. Lower case, no final dot.
    pub setup_hosts: Vec<String>,
    /// The arguments as given, each preceded by a space, or " <none>" (version string).
    pub args_display: String,
    /// Warnings to log once logging is up (deprecated `-o`, `-r`).
    pub warnings: Vec<String>,
}

impl Config {
    /// Where generated certificates, the prefetch list and the disk budget live:
    /// `--leaf-dir`, else CERT_PATH.
    pub fn leaf_path(&self) -> &Path {
        self.leaf_dir.as_deref().unwrap_or(&self.cert_path)
    }

    /// Whether the leaves have a directory of their own (not CERT_PATH itself).
    pub fn separate_leaf_dir(&self) -> bool {
        self.leaf_path() != self.cert_path
    }
}

/// `--log-to syslog|stderr|both`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTo {
    Syslog,
    Stderr,
    Both,
}

impl LogTo {
    pub fn syslog(self) -> bool {
        self != LogTo::Stderr
    }

    pub fn stderr(self) -> bool {
        self != LogTo::Syslog
    }

    pub fn name(self) -> &'static str {
        match self {
            LogTo::Syslog => "syslog",
            LogTo::Stderr => "stderr",
            LogTo::Both => "both",
        }
    }
}

/// CERT_PATH when `-z` is not given (build-time `PIXELSERV_DEFAULT_CERT_PATH`).
pub const DEFAULT_CERT_PATH: &str = env!("PIXELSERV_DEFAULT_CERT_PATH");
pub const DEFAULT_CERT_CACHE: usize = 500;
pub const DEFAULT_KEEPALIVE_SECS: u64 = 120;
pub const DEFAULT_MAX_CONNS: usize = 1200;
pub const DEFAULT_HANDSHAKE_TIMEOUT: u64 = 5;
pub const DEFAULT_HEADER_TIMEOUT: u64 = 10;
pub const DEFAULT_WRITE_TIMEOUT: u64 = 10;
pub const DEFAULT_CERT_WORKERS: usize = 2;
pub const DEFAULT_CERT_FILES: usize = 2000;
/// One listening socket per slot of the original's port array (fixes its overflow, DEFECTS.md #26).
pub const MAX_PORTS: usize = 10;
pub const MAX_TLS_PORTS: usize = 9;
pub const MAX_SETUP_HOSTS: usize = 8;
const MAX_TIMEOUT_SECS: u64 = 3600;
/// Linux IFNAMSIZ minus the terminating NUL.
const MAX_IFACE_LEN: usize = 15;

const DEPRECATED_O: &str = "'-o SELECT_TIMEOUT' is deprecated. will be removed in a future version";
const DEPRECATED_R: &str = "'-r' is deprecated. will be removed in a future version";

/// What the command line asks for.
// Built once at startup and moved out at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    Run(Config),
    Help,
    Version,
}

fn options() -> getopts::Options {
    use getopts::{HasArg, Occur};
    let mut o = getopts::Options::new();
    // Repeating an option is allowed as in the original: the last value wins.
    for flag in ["2", "f", "r", "R", "h", "v"] {
        o.optflagmulti(flag, "", "");
    }
    o.opt("", "help", "", "", HasArg::No, Occur::Multi);
    o.opt("", "version", "", "", HasArg::No, Occur::Multi);
    o.opt("", "check", "", "", HasArg::No, Occur::Multi);
    for opt in ["A", "c", "k", "n", "o", "O", "p", "s", "t", "T", "u", "z"] {
        o.optmulti(opt, "", "", "");
    }
    for opt in ["l", "B"] {
        o.opt(opt, "", "", "", HasArg::Maybe, Occur::Multi);
    }
    for long in [
        "leaf-key",
        "ticket-keys",
        "leaf-dir",
        "psl",
        "handshake-timeout",
        "header-timeout",
        "write-timeout",
        "cert-workers",
        "cert-files",
        "log-to",
        "setup-host",
    ] {
        o.optmulti("", long, "", "");
    }
    o
}

fn dashed(name: &str) -> String {
    if name.chars().count() == 1 {
        format!("-{name}")
    } else {
        format!("--{name}")
    }
}

fn fail_message(f: getopts::Fail) -> String {
    use getopts::Fail;
    match f {
        Fail::ArgumentMissing(n) => format!("option {} needs a value", dashed(&n)),
        Fail::UnrecognizedOption(n) => format!("unknown option {}", dashed(&n)),
        Fail::OptionMissing(n) => format!("option {} is required", dashed(&n)),
        Fail::OptionDuplicated(n) => format!("option {} given more than once", dashed(&n)),
        Fail::UnexpectedArgument(n) => format!("option {} takes no value", dashed(&n)),
    }
}

/// A fully numeric (digits only) value within `min..=max`.
fn number(opt: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("option {}: '{value}' is not a number", dashed(opt)));
    }
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "option {}: {value} is out of range ({min}..={max})",
            dashed(opt)
        )),
    }
}

fn last_number(m: &getopts::Matches, opt: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
    m.opt_strs(opt)
        .last()
        .map(|v| number(opt, v, min, max))
        .transpose()
}

fn last_text(m: &getopts::Matches, opt: &str) -> Result<Option<String>, String> {
    match m.opt_strs(opt).pop() {
        Some(v) if v.is_empty() => Err(format!("option {}: empty value", dashed(opt))),
        other => Ok(other),
    }
}

/// The last occurrence of an optional-value option: `None` = absent, `Some(None)` = bare.
fn last_optional(m: &getopts::Matches, opt: &str) -> Option<Option<String>> {
    let last = m.opt_positions(opt).into_iter().max()?;
    Some(
        m.opt_strs_pos(opt)
            .into_iter()
            .find(|(pos, _)| *pos == last)
            .map(|(_, v)| v),
    )
}

fn port(opt: &str, value: &str) -> Result<u16, String> {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return number(opt, value, 1, 65_535).map(|p| p as u16);
    }
    crate::sys::ports::service_port(value).ok_or_else(|| {
        format!(
            "option {}: '{value}' is not a port or a TCP service name",
            dashed(opt)
        )
    })
}

/// COMPATIBILITY.md §2.3: `-p`/`-k`/`-A` in command-line order, then the default ports; each
/// entry keeps where it came from for error messages.
fn listen_ports(m: &getopts::Matches) -> Result<(Vec<ListenPort>, Option<u16>), String> {
    let mut given: Vec<(usize, &str, String)> = Vec::new();
    for opt in ["p", "k", "A"] {
        given.extend(
            m.opt_strs_pos(opt)
                .into_iter()
                .map(|(pos, v)| (pos, opt, v)),
        );
    }
    given.sort_by_key(|(pos, _, _)| *pos);

    let mut ports: Vec<(ListenPort, String)> = Vec::new();
    let mut admin_port = None;
    for (_, opt, value) in &given {
        let p = port(opt, value)?;
        let tls = *opt != "p";
        if *opt == "A" {
            admin_port = Some(p);
        }
        let entry = ListenPort {
            port: p,
            tls,
            admin: false,
        };
        ports.push((entry, format!("-{opt} {value}")));
    }
    for (entry, _) in &mut ports {
        entry.admin = entry.tls && Some(entry.port) == admin_port;
    }

    add_default_ports(&mut ports, admin_port.is_some());
    check_port_list(&ports)?;
    Ok((ports.into_iter().map(|(p, _)| p).collect(), admin_port))
}

/// COMPATIBILITY.md §2.3: the default ports the original adds, depending on what was given.
fn add_default_ports(ports: &mut Vec<(ListenPort, String)>, admin: bool) {
    let https = || {
        (
            ListenPort {
                port: 443,
                tls: true,
                admin: false,
            },
            "the default HTTPS port 443".to_string(),
        )
    };
    let http = || {
        (
            ListenPort {
                port: 80,
                tls: false,
                admin: false,
            },
            "the default HTTP port 80".to_string(),
        )
    };
    let tls_count = ports.iter().filter(|(p, _)| p.tls).count();
    if (!admin && ports.is_empty()) || (admin && ports.len() == 1) {
        ports.push(https());
        ports.push(http());
    } else if (!admin && tls_count == 0) || (admin && tls_count == 1) {
        ports.push(https());
    } else if ports.len() == tls_count {
        ports.push(http());
    }
}

/// The original's port array limits, and no port twice.
fn check_port_list(ports: &[(ListenPort, String)]) -> Result<(), String> {
    let tls_count = ports.iter().filter(|(p, _)| p.tls).count();
    if tls_count > MAX_TLS_PORTS {
        return Err(format!(
            "too many HTTPS ports (-k, -A): {tls_count} with the defaults (at most {MAX_TLS_PORTS})"
        ));
    }
    if ports.len() > MAX_PORTS {
        return Err(format!(
            "too many listening ports: {} with the defaults (at most {MAX_PORTS})",
            ports.len()
        ));
    }
    for (i, (a, a_src)) in ports.iter().enumerate() {
        if let Some((_, b_src)) = ports[i + 1..].iter().find(|(b, _)| b.port == a.port) {
            return Err(format!(
                "port {} is used twice: {a_src} and {b_src}",
                a.port
            ));
        }
    }
    Ok(())
}

/// Parses the arguments (without the program name). `Err` is one line naming the option
/// and the problem; the caller prints it with `usage()` and exits 1.
pub fn parse_args(args: &[String]) -> Result<Parsed, String> {
    let m = options().parse(args).map_err(fail_message)?;
    if m.opt_present("h") || m.opt_present("help") {
        return Ok(Parsed::Help);
    }
    if m.opt_present("v") || m.opt_present("version") {
        return Ok(Parsed::Version);
    }

    let (ports, admin_port) = listen_ports(&m)?;
    let timeout = |opt: &str, default: u64| -> Result<u64, String> {
        Ok(last_number(&m, opt, 1, MAX_TIMEOUT_SECS)?.unwrap_or(default))
    };
    let config = Config {
        listen_addr: listen_addr(&m)?,
        ports,
        admin_port,
        disable_204: m.opt_present("2"),
        benchmark: last_optional(&m, "B"),
        cert_cache_size: last_number(&m, "c", 1, 1_000_000)?
            .map_or(DEFAULT_CERT_CACHE, |n| n as usize),
        foreground: m.opt_present("f"),
        check: m.opt_present("check"),
        log_to: log_to(&m)?,
        log_level: log_level(&m)?,
        iface: iface(&m)?,
        // A week at most: the original overflowed 1000 × -O in 32 bits (DEFECTS.md #32).
        keepalive_secs: last_number(&m, "O", 1, 86_400 * 7)?.unwrap_or(DEFAULT_KEEPALIVE_SECS),
        redirect: m.opt_present("R"),
        stats_html_url: last_text(&m, "s")?.unwrap_or_else(|| "/servstats".to_string()),
        stats_text_url: last_text(&m, "t")?.unwrap_or_else(|| "/servstats.txt".to_string()),
        max_conns: last_number(&m, "T", 1, 1_000_000)?.map_or(DEFAULT_MAX_CONNS, |n| n as usize),
        user: last_text(&m, "u")?.unwrap_or_else(|| "nobody".to_string()),
        cert_path: PathBuf::from(
            last_text(&m, "z")?.unwrap_or_else(|| DEFAULT_CERT_PATH.to_string()),
        ),
        leaf_dir: last_text(&m, "leaf-dir")?.map(PathBuf::from),
        leaf_key: leaf_key(&m)?,
        ticket_keys: last_text(&m, "ticket-keys")?.map(PathBuf::from),
        psl_file: last_text(&m, "psl")?.map(PathBuf::from),
        handshake_timeout_secs: timeout("handshake-timeout", DEFAULT_HANDSHAKE_TIMEOUT)?,
        header_timeout_secs: timeout("header-timeout", DEFAULT_HEADER_TIMEOUT)?,
        write_timeout_secs: timeout("write-timeout", DEFAULT_WRITE_TIMEOUT)?,
        cert_files: last_number(&m, "cert-files", 0, 1_000_000)?
            .map_or(DEFAULT_CERT_FILES, |n| n as usize),
        cert_workers: last_number(&m, "cert-workers", 1, 64)?
            .map_or(DEFAULT_CERT_WORKERS, |n| n as usize),
        setup_hosts: setup_hosts(&m)?,
        args_display: args_display(args),
        warnings: deprecation_warnings(&m),
    };
    check_combinations(&config)?;
    Ok(Parsed::Run(config))
}

/// Options that are each valid but make no sense together.
fn check_combinations(c: &Config) -> Result<(), String> {
    if c.check && c.benchmark.is_some() {
        return Err("--check and -B cannot be combined".to_string());
    }
    match c.log_to {
        // A daemon's stderr is /dev/null: its log lines would vanish.
        Some(to) if to.stderr() && !c.foreground && c.benchmark.is_none() => Err(format!(
            "option --log-to {}: needs -f (a daemon has no stderr)",
            to.name()
        )),
        _ => Ok(()),
    }
}

/// The positional `ip_addr`/`hostname`, at most one.
fn listen_addr(m: &getopts::Matches) -> Result<Option<String>, String> {
    match m.free.as_slice() {
        [] => Ok(None),
        [addr] if addr.is_empty() => Err("the listen address is empty".to_string()),
        [addr] => Ok(Some(addr.clone())),
        [a, b, ..] => Err(format!(
            "more than one listen address given: '{a}' and '{b}'"
        )),
    }
}

/// `-l` (1), bare `-l` (4), `-l N`.
fn log_level(m: &getopts::Matches) -> Result<u8, String> {
    Ok(match last_optional(m, "l") {
        None => 1,
        Some(None) => 4,
        Some(Some(v)) => number("l", &v, 0, 5)? as u8,
    })
}

fn iface(m: &getopts::Matches) -> Result<Option<String>, String> {
    let iface = last_text(m, "n")?;
    if let Some(name) = &iface {
        if name.len() > MAX_IFACE_LEN || name.contains('/') {
            return Err(format!("option -n: '{name}' is not a valid interface name"));
        }
    }
    Ok(iface)
}

fn log_to(m: &getopts::Matches) -> Result<Option<LogTo>, String> {
    match m.opt_strs("log-to").pop().as_deref() {
        None => Ok(None),
        Some("syslog") => Ok(Some(LogTo::Syslog)),
        Some("stderr") => Ok(Some(LogTo::Stderr)),
        Some("both") => Ok(Some(LogTo::Both)),
        Some(other) => Err(format!(
            "option --log-to: '{other}' is not syslog, stderr or both"
        )),
    }
}

fn leaf_key(m: &getopts::Matches) -> Result<KeyType, String> {
    match m.opt_strs("leaf-key").pop().as_deref() {
        None | Some("ecdsa") => Ok(KeyType::Ecdsa),
        Some("rsa") => Ok(KeyType::Rsa),
        Some(other) => Err(format!("option --leaf-key: '{other}' is not ecdsa or rsa")),
    }
}

/// Every `--setup-host`, lower case without a final dot: a host name or IP address, as far
/// as its characters go (anything else could never match a Host).
fn setup_hosts(m: &getopts::Matches) -> Result<Vec<String>, String> {
    let hosts = m.opt_strs("setup-host");
    if hosts.len() > MAX_SETUP_HOSTS {
        return Err(format!(
            "option --setup-host: given {} times (at most {MAX_SETUP_HOSTS})",
            hosts.len()
        ));
    }
    let mut out = Vec::with_capacity(hosts.len());
    for h in hosts {
        let name = h.strip_suffix('.').unwrap_or(&h).to_ascii_lowercase();
        let ok = name.len() <= 253
            && !name.is_empty()
            && !name.starts_with(['.', '-'])
            && !name.as_bytes().windows(2).any(|w| w == b"..")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'));
        if !ok {
            return Err(format!(
                "option --setup-host: '{h}' is not a host name or IP address"
            ));
        }
        out.push(name);
    }
    Ok(out)
}

fn deprecation_warnings(m: &getopts::Matches) -> Vec<String> {
    let mut warnings = Vec::new();
    if m.opt_present("o") {
        warnings.push(DEPRECATED_O.to_string());
    }
    if m.opt_present("r") {
        warnings.push(DEPRECATED_R.to_string());
    }
    warnings
}

/// Every argument preceded by one space, or " <none>" (COMPATIBILITY.md §11.1).
pub fn args_display(args: &[String]) -> String {
    if args.is_empty() {
        return " <none>".to_string();
    }
    args.iter().map(|a| format!(" {a}")).collect()
}

/// The usage text (COMPATIBILITY.md §2.4 layout, with our options).
pub fn usage() -> String {
    let lines = [
        "\tip_addr/hostname\t(default: all addresses)".to_string(),
        "\t-2\t\t\t(disable HTTP 204 reply to generate_204 URLs)".to_string(),
        "\t-A  ADMIN_PORT\t\t(HTTPS only. Default is none)".to_string(),
        "\t-B  [CERT_FILE]\t\t(Benchmark crypto and disk then quit)".to_string(),
        format!("\t-c  CERT_CACHE_SIZE\t(default: {DEFAULT_CERT_CACHE})"),
        "\t-f\t\t\t(stay in foreground/don't daemonize)".to_string(),
        "\t-h, --help\t\t(print this help and exit)".to_string(),
        "\t-k  HTTPS_PORT\t\t(default: 443)".to_string(),
        "\t-l  LEVEL\t\t(0:critical 1:error<default> 2:warning 3:notice 4:info 5:debug)".to_string(),
        "\t-n  IFACE\t\t(default: all interfaces)".to_string(),
        "\t-o  SELECT_TIMEOUT\t(deprecated; will be removed in a future version)".to_string(),
        format!("\t-O  KEEPALIVE_TIME\t(for HTTP/1.1 connections; default: {DEFAULT_KEEPALIVE_SECS}s)"),
        "\t-p  HTTP_PORT\t\t(default: 80)".to_string(),
        "\t-r\t\t\t(deprecated; ignored)".to_string(),
        "\t-R\t\t\t(enable redirect to encoded path in URLs)".to_string(),
        "\t-s  STATS_HTML_URL\t(default: /servstats)".to_string(),
        "\t-t  STATS_TXT_URL\t(default: /servstats.txt)".to_string(),
        format!("\t-T  MAX_CONNECTIONS\t(default: {DEFAULT_MAX_CONNS})"),
        "\t-u  USER\t\t(default: \"nobody\")".to_string(),
        "\t-v, --version\t\t(print the version and exit)".to_string(),
        format!("\t-z  CERT_PATH\t\t(default: {DEFAULT_CERT_PATH})"),
        "\t--leaf-dir DIR\t\t(generated certificates and prefetch; default: CERT_PATH, where ca.crt/ca.key stay)".to_string(),
        "\t--leaf-key ecdsa|rsa\t(key type of generated certificates; default: ecdsa)".to_string(),
        "\t--ticket-keys FILE\t(TLS session-ticket keys shared between instances)".to_string(),
        "\t--psl FILE\t\t(Public Suffix List; default: CERT_PATH/public_suffix_list.dat)".to_string(),
        format!("\t--handshake-timeout SECS\t(default: {DEFAULT_HANDSHAKE_TIMEOUT})"),
        format!("\t--header-timeout SECS\t(default: {DEFAULT_HEADER_TIMEOUT})"),
        format!("\t--write-timeout SECS\t(default: {DEFAULT_WRITE_TIMEOUT})"),
        format!("\t--cert-workers N\t(certificate generator threads 1..64; default: {DEFAULT_CERT_WORKERS})"),
        format!("\t--cert-files N\t\t(certificate files kept in the leaf directory, least recently used removed; 0: none; default: {DEFAULT_CERT_FILES})"),
        "\t--log-to syslog|stderr|both\t(default: syslog, and stderr too with -f)".to_string(),
        format!("\t--setup-host HOST\t(name or address that also shows the setup page at /; up to {MAX_SETUP_HOSTS})"),
        "\t--check\t\t\t(check the configuration, print a summary and exit 0 or 1)".to_string(),
    ];
    let mut out = format!(
        "{}\nUsage: pixelserv-tls [OPTION]\noptions:\n",
        crate::version::version_line()
    );
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run(s: &str) -> Config {
        match parse_args(&args(s)) {
            Ok(Parsed::Run(c)) => c,
            other => panic!("{s:?} → {other:?}"),
        }
    }

    fn err(s: &str) -> String {
        match parse_args(&args(s)) {
            Err(e) => {
                assert!(!e.contains('\n'), "{e:?}");
                e
            }
            other => panic!("{s:?} should fail, got {other:?}"),
        }
    }

    /// "8080 443t 9443ta": listening order with tls / admin marks.
    fn ports(s: &str) -> String {
        let c = run(s);
        let v: Vec<String> = c
            .ports
            .iter()
            .map(|p| {
                format!(
                    "{}{}{}",
                    p.port,
                    if p.tls { "t" } else { "" },
                    if p.admin { "a" } else { "" }
                )
            })
            .collect();
        v.join(" ")
    }

    #[test]
    fn defaults() {
        let c = run("");
        assert_eq!(c.listen_addr, None);
        assert_eq!(c.admin_port, None);
        assert!(!c.disable_204 && !c.foreground && !c.redirect);
        assert_eq!(c.benchmark, None);
        assert_eq!(c.cert_cache_size, 500);
        assert_eq!(c.log_level, 1);
        assert_eq!(c.iface, None);
        assert_eq!(c.keepalive_secs, 120);
        assert_eq!(c.stats_html_url, "/servstats");
        assert_eq!(c.stats_text_url, "/servstats.txt");
        assert_eq!(c.max_conns, 1200);
        assert_eq!(c.user, "nobody");
        assert_eq!(c.cert_path, PathBuf::from(DEFAULT_CERT_PATH));
        assert_eq!(c.leaf_dir, None);
        assert_eq!(c.leaf_path(), Path::new(DEFAULT_CERT_PATH));
        assert_eq!(c.leaf_key, KeyType::Ecdsa);
        assert_eq!((c.ticket_keys, c.psl_file), (None, None));
        assert_eq!(
            (
                c.handshake_timeout_secs,
                c.header_timeout_secs,
                c.write_timeout_secs
            ),
            (5, 10, 10)
        );
        assert_eq!(c.cert_workers, 2);
        assert_eq!(c.cert_files, 2000);
        assert_eq!(c.args_display, " <none>");
        assert!(c.warnings.is_empty());
        assert!(!c.check);
        assert_eq!(c.log_to, None);
    }

    #[test]
    fn log_to_and_check() {
        assert_eq!(run("-f --log-to stderr").log_to, Some(LogTo::Stderr));
        assert_eq!(run("-f --log-to both").log_to, Some(LogTo::Both));
        assert_eq!(run("--log-to syslog").log_to, Some(LogTo::Syslog));
        assert_eq!(run("-f --log-to syslog").log_to, Some(LogTo::Syslog));
        assert_eq!(
            err("--log-to stderr"),
            "option --log-to stderr: needs -f (a daemon has no stderr)"
        );
        assert!(err("--log-to both").contains("needs -f"));
        assert!(err("-f --log-to file").contains("'file' is not syslog, stderr or both"));
        assert!(err("--log-to").contains("--log-to"));
        assert!(run("--check").check);
        // --check judges the command line a start would be given.
        assert!(err("--check --log-to stderr").contains("needs -f"));
        assert!(run("--check -f --log-to stderr").check);
        assert_eq!(err("--check -B"), "--check and -B cannot be combined");
        assert!(err("--check -p 0").contains("-p"));
    }

    #[test]
    fn default_cert_path_follows_build_env() {
        let expected = option_env!("PIXELSERV_DEFAULT_CERT_PATH").unwrap_or("");
        assert_eq!(DEFAULT_CERT_PATH, expected);
        assert!(DEFAULT_CERT_PATH.starts_with('/'));
    }

    #[test]
    fn every_option() {
        let c = run(
            "-2 -B -c 7 -f -l -n eth0 -O 30 -R -s /a -t /b -T 9 -u me -z /certs 10.0.0.1 \
             --leaf-dir /tmp/leaves --leaf-key rsa --ticket-keys /k --psl /p --handshake-timeout 3 \
             --header-timeout 4 --write-timeout 6 --cert-workers 64",
        );
        assert!(c.disable_204 && c.foreground && c.redirect);
        assert_eq!(c.benchmark, Some(None));
        assert_eq!(c.cert_cache_size, 7);
        assert_eq!(c.log_level, 4);
        assert_eq!(c.iface.as_deref(), Some("eth0"));
        assert_eq!(c.keepalive_secs, 30);
        assert_eq!(
            (c.stats_html_url.as_str(), c.stats_text_url.as_str()),
            ("/a", "/b")
        );
        assert_eq!(c.max_conns, 9);
        assert_eq!(c.user, "me");
        assert_eq!(c.cert_path, PathBuf::from("/certs"));
        assert_eq!(c.leaf_dir, Some(PathBuf::from("/tmp/leaves")));
        assert_eq!(c.leaf_path(), Path::new("/tmp/leaves"));
        assert_eq!(c.listen_addr.as_deref(), Some("10.0.0.1"));
        assert_eq!(c.leaf_key, KeyType::Rsa);
        assert_eq!(c.ticket_keys, Some(PathBuf::from("/k")));
        assert_eq!(c.psl_file, Some(PathBuf::from("/p")));
        assert_eq!(
            (
                c.handshake_timeout_secs,
                c.header_timeout_secs,
                c.write_timeout_secs
            ),
            (3, 4, 6)
        );
        assert_eq!(c.cert_workers, 64);
    }

    #[test]
    fn optional_values_of_l_and_b() {
        assert_eq!(run("-l 5").log_level, 5);
        assert_eq!(run("-l 0").log_level, 0);
        assert_eq!(run("-l -f").log_level, 4);
        assert!(run("-l -f").foreground);
        assert_eq!(run("-l 5 -l").log_level, 4);
        assert_eq!(run("-l -l 2").log_level, 2);
        assert_eq!(run("-B x.pem").benchmark, Some(Some("x.pem".to_string())));
        assert_eq!(run("-B -f").benchmark, Some(None));
        assert_eq!(run("-B a -B").benchmark, Some(None));
        assert!(err("-l 6").contains("-l"));
        assert!(err("-l 192.168.1.1").contains("not a number"));
        assert!(err("-l x").contains("not a number"));
    }

    #[test]
    fn repeated_options_last_wins() {
        assert_eq!(run("-c 5 -c 6").cert_cache_size, 6);
        assert_eq!(run("-u a -u b").user, "b");
        assert!(run("-f -f").foreground);
    }

    #[test]
    fn deprecated_options_warn() {
        let c = run("-o 10 -r");
        assert_eq!(
            c.warnings,
            vec![
                "'-o SELECT_TIMEOUT' is deprecated. will be removed in a future version",
                "'-r' is deprecated. will be removed in a future version",
            ]
        );
        assert_eq!(ports("-o 8080"), "443t 80");
        assert!(err("-o").contains("-o"));
    }

    #[test]
    fn numbers_are_strict_and_bounded() {
        assert!(err("-c 10x").contains("'10x' is not a number"));
        assert!(err("-c 0").contains("out of range"));
        assert!(err("-c -5").contains("-c"));
        assert!(err("-c +5").contains("not a number"));
        assert!(err("-c 1000001").contains("out of range"));
        assert!(err("-c 99999999999999999999999").contains("out of range"));
        assert_eq!(run("-c 1000000").cert_cache_size, 1_000_000);
        assert_eq!(run("-O 604800").keepalive_secs, 604_800);
        assert!(err("-O 604801").contains("-O"));
        assert!(err("-O 0").contains("-O"));
        assert!(err("-T 0").contains("-T"));
        assert!(err("-T 1000001").contains("-T"));
        assert!(err("--cert-workers 0").contains("--cert-workers"));
        assert!(err("--cert-workers 65").contains("--cert-workers"));
        assert!(err("--handshake-timeout 0").contains("--handshake-timeout"));
        assert!(err("--write-timeout x").contains("--write-timeout"));
        assert!(err("--header-timeout").contains("--header-timeout"));
        assert!(err("--leaf-key dsa").contains("--leaf-key"));
        assert!(err("-p 0").contains("-p"));
        assert!(err("-k 65536").contains("-k"));
        assert!(err("-p 80x").contains("-p"));
        assert!(err("-A -1").contains("-A"));
    }

    #[test]
    fn bad_usage_errors() {
        assert_eq!(err("-x"), "unknown option -x");
        assert_eq!(err("--nope"), "unknown option --nope");
        assert_eq!(err("-p"), "option -p needs a value");
        assert_eq!(err("-f -c"), "option -c needs a value");
        assert_eq!(err("--help=1"), "option --help takes no value");
        // Like the original, a value is taken whatever it looks like.
        assert_eq!(
            err("-p -k"),
            "option -p: '-k' is not a port or a TCP service name"
        );
        assert!(err("1.2.3.4 5.6.7.8").contains("'1.2.3.4' and '5.6.7.8'"));
        assert!(err("-n").contains("-n"));
        assert!(err("-n averyveryverylongname").contains("-n"));
        assert!(err("--psl=").contains("--psl: empty value"));
        assert_eq!(run("-u=").user, "=");
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_args(&args("-h")), Ok(Parsed::Help));
        assert_eq!(parse_args(&args("--help")), Ok(Parsed::Help));
        assert_eq!(parse_args(&args("-f -c 0 -h")), Ok(Parsed::Help));
        assert_eq!(parse_args(&args("-v")), Ok(Parsed::Version));
        assert_eq!(parse_args(&args("--version")), Ok(Parsed::Version));
        assert_eq!(parse_args(&args("-h -v")), Ok(Parsed::Help));
    }

    #[test]
    fn port_table_examples() {
        assert_eq!(ports(""), "443t 80");
        assert_eq!(ports("-p 8080"), "8080 443t");
        assert_eq!(ports("-k 8443"), "8443t 80");
        assert_eq!(ports("-A 9443"), "9443ta 443t 80");
        assert_eq!(ports("-p 8080 -k 8443 -A 9443"), "8080 8443t 9443ta");
        assert_eq!(ports("-A 9443 -p 8080"), "9443ta 8080 443t");
        assert_eq!(
            err("-p 443 -k 443"),
            "port 443 is used twice: -p 443 and -k 443"
        );
    }

    #[test]
    fn port_rules_more_cases() {
        assert_eq!(run("-A 9443").admin_port, Some(9443));
        assert_eq!(run("").admin_port, None);
        // Repeated -A: the last is the admin port, all are TLS.
        assert_eq!(ports("-A 9443 -A 9444"), "9443t 9444ta 80");
        assert_eq!(ports("-k 8443 -A 9443"), "8443t 9443ta 80");
        assert_eq!(ports("-p 81 -p 82"), "81 82 443t");
        assert_eq!(ports("-p 81 -k 444"), "81 444t");
        // Attached values are accepted (getopts), unlike the original.
        assert_eq!(ports("-p8080"), "8080 443t");
        assert!(err("-p 443").contains("port 443 is used twice: -p 443 and the default HTTPS port"));
        assert!(err("-k 80").contains("-k 80 and the default HTTP port 80"));
        assert!(err("-A 443").contains("-A 443 and the default HTTPS port"));
    }

    #[test]
    fn port_limits_after_defaults() {
        let nine = "-p 1 -p 2 -p 3 -p 4 -p 5 -p 6 -p 7 -p 8 -p 9";
        assert_eq!(run(nine).ports.len(), 10);
        assert!(err(&format!("{nine} -p 10")).contains("too many listening ports: 11"));
        let tls9 = "-k 1 -k 2 -k 3 -k 4 -k 5 -k 6 -k 7 -k 8 -A 9";
        assert_eq!(ports(tls9), "1t 2t 3t 4t 5t 6t 7t 8t 9ta 80");
        assert!(err(&format!("{tls9} -k 10")).contains("too many HTTPS ports"));
        assert!(err(&format!("{tls9} -p 10 -p 11")).contains("too many listening ports"));
    }

    #[test]
    fn service_names() {
        if std::path::Path::new("/etc/services").exists() {
            assert_eq!(ports("-p http -k https"), "80 443t");
        }
        assert!(err("-p no-such-service-xyz").contains("not a port or a TCP service name"));
        assert!(err("-p a\0b").contains("-p"));
    }

    #[test]
    fn args_display_layout() {
        assert_eq!(run("-f -z /tmp/x -l 5").args_display, " -f -z /tmp/x -l 5");
        assert_eq!(args_display(&[]), " <none>");
        assert_eq!(args_display(&[String::new()]), " ");
    }

    #[test]
    fn setup_hosts() {
        assert!(run("").setup_hosts.is_empty());
        assert_eq!(
            run("--setup-host Pixelserv.LAN. --setup-host 192.168.1.2 --setup-host fd00::2")
                .setup_hosts,
            ["pixelserv.lan", "192.168.1.2", "fd00::2"]
        );
        for bad in ["a..b", "-a.b", "a_b.lan", "a/b", "[::1]", "http://a", "."] {
            let e = err(&format!("--setup-host {bad}"));
            assert!(e.contains("is not a host name or IP address"), "{bad}: {e}");
        }
        let nine = "--setup-host a ".repeat(MAX_SETUP_HOSTS + 1);
        assert!(err(&nine).contains("at most 8"));
    }

    #[test]
    fn usage_text() {
        let u = usage();
        let lines: Vec<&str> = u.lines().collect();
        assert_eq!(lines[0], crate::version::version_line());
        assert_eq!(lines[1], "Usage: pixelserv-tls [OPTION]");
        assert_eq!(lines[2], "options:");
        assert!(lines[3..].iter().all(|l| l.starts_with('\t')));
        assert!(u.contains("\t-c  CERT_CACHE_SIZE\t(default: 500)\n"));
        assert!(u.contains(&format!(
            "\t-z  CERT_PATH\t\t(default: {DEFAULT_CERT_PATH})\n"
        )));
        for opt in [
            "-2",
            "-A",
            "-B",
            "-c",
            "-f",
            "-h",
            "-k",
            "-l",
            "-n",
            "-o",
            "-O",
            "-p",
            "-r",
            "-R",
            "-s",
            "-t",
            "-T",
            "-u",
            "-v",
            "-z",
            "--leaf-key",
            "--ticket-keys",
            "--psl",
            "--handshake-timeout",
            "--header-timeout",
            "--write-timeout",
            "--cert-workers",
            "--log-to",
            "--setup-host",
            "--check",
        ] {
            assert!(
                u.contains(&format!("\t{opt} "))
                    || u.contains(&format!("\t{opt}\t"))
                    || u.contains(&format!("\t{opt},")),
                "{opt}"
            );
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        let tokens = [
            "-",
            "--",
            "-p",
            "-k",
            "-A",
            "-l",
            "-B",
            "-c",
            "-O",
            "80",
            "443",
            "0",
            "x",
            "",
            "-é",
            "é",
            "--leaf-key",
            "--psl=",
            "--=",
            "-2fR",
            "-lB",
            "-pk",
            "1.2.3.4",
            "\0",
            "--cert-workers",
            "99999999999999999999",
            "-h=",
            "---",
            "-\u{1F600}",
            "http",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 7) as usize;
            let v: Vec<String> = (0..n)
                .map(|i| tokens[((seed >> (8 * i)) as usize) % tokens.len()].to_string())
                .collect();
            if let Ok(Parsed::Run(c)) = parse_args(&v) {
                assert!(!c.ports.is_empty() && c.ports.len() <= MAX_PORTS);
            }
        }
    }
}
