//! Command line → `Config` (reference §2), with the original's option letters, defaults and
//! port-list rules, and clear one-line errors instead of the original's silent usage dump.

use std::path::PathBuf;

/// One listening socket to open, in command-line order (§2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenPort {
    pub port: u16,
    /// Connections accepted here speak TLS (`-k` and `-A` ports).
    pub tls: bool,
    /// This is the `-A` admin port.
    pub admin: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKey {
    EcdsaP256,
    Rsa2048,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Positional `ip_addr`/`hostname`; `None` = all addresses (dual-stack `::`).
    pub listen_addr: Option<String>,
    /// Listening sockets in order, after the default-port rules of §2.3.
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
    /// `-z`: CERT_PATH.
    pub cert_path: PathBuf,
    /// `--leaf-key ecdsa|rsa` (default ecdsa).
    pub leaf_key: LeafKey,
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
    /// The arguments as given, each preceded by a space, or " <none>" (version string).
    pub args_display: String,
    /// Warnings to log once logging is up (deprecated `-o`, `-r`).
    pub warnings: Vec<String>,
}
