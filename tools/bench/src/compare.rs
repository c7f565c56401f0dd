//! Side by side (`--peer`): ours, nginx and HAProxy measured in one run, the same way, and
//! printed as one table with the ratio of ours to the best peer for every figure.
//!
//! The timed figures run all servers at once (each pinned to the server core, one loaded at
//! a time) and interleave them, repeat by repeat, so load from other work on the machine
//! spreads over all columns instead of landing on one. The noise-free figures follow:
//! system calls per operation on the same servers, then each server restarted under
//! callgrind for instructions per operation.

use crate::conn;
use crate::figures::{self, Handshake, Sample};
use crate::nonoise::{self, Counts, OPS};
use crate::peers::{self, Material, Peer};
use crate::sys;
use crate::target::{self, Target};
use crate::wire::{self, Wire};
use openssl::ssl::SslConnector;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

pub struct Opts {
    pub server: PathBuf,
    /// Another build of ours (label, binary): a column after ours, not a peer.
    pub also: Option<(String, PathBuf)>,
    pub server_args: Vec<String>,
    pub server_certs: Option<PathBuf>,
    pub peers: Vec<Peer>,
    pub quick: bool,
    pub repeat: usize,
    pub secs: f64,
    pub idle: usize,
    pub conns: usize,
    pub client_threads: usize,
    pub threads: usize,
    pub server_cpu: usize,
    pub client_cpu: usize,
    pub pin: bool,
    pub only: Option<Vec<String>>,
    pub keep: Option<PathBuf>,
}

/// Figure keys of this mode (for `--only`).
pub const KEYS: &[&str] = &[
    "http",
    "https",
    "full",
    "resume12",
    "resume13",
    "idle",
    "bytes",
    "syscalls",
    "instructions",
];

/// How a timed figure loads the server.
#[derive(Clone, Copy)]
enum How {
    KeepAlive { tls: bool },
    Handshakes(Handshake),
}

/// A timed figure: its `--only` key, its row in the tables, how it is measured.
struct Timed {
    key: &'static str,
    label: &'static str,
    how: How,
}

/// The timed figures, in the order they run and are printed.
const TIMED: [Timed; 5] = [
    Timed {
        key: "http",
        label: "HTTP keep-alive request",
        how: How::KeepAlive { tls: false },
    },
    Timed {
        key: "https",
        label: "HTTPS keep-alive request",
        how: How::KeepAlive { tls: true },
    },
    Timed {
        key: "full",
        label: "full TLS 1.3 handshake + GET",
        how: How::Handshakes(Handshake::Full),
    },
    Timed {
        key: "resume12",
        label: "resumed TLS 1.2 handshake + GET",
        how: How::Handshakes(Handshake::Resume12),
    },
    Timed {
        key: "resume13",
        label: "TLS 1.3 resumption + GET",
        how: How::Handshakes(Handshake::Resume13),
    },
];

impl Opts {
    /// Whether `--only` (or its absence) asks for figure `key`.
    fn wants(&self, key: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|l| l.iter().any(|x| x == key))
    }

    /// How many columns are builds of ours (ours, then `--also`); the peers follow.
    fn builds(&self) -> usize {
        1 + usize::from(self.also.is_some())
    }

    /// The binary of build column `i` (0: ours, 1: `--also`).
    fn build_path(&self, i: usize) -> &PathBuf {
        match (i, &self.also) {
            (1, Some((_, p))) => p,
            _ => &self.server,
        }
    }
}

#[derive(Default)]
struct Results {
    /// (figure key, server) → one sample per repeat.
    timed: BTreeMap<(String, String), Vec<Sample>>,
    idle: BTreeMap<String, Sample>,
    bytes: BTreeMap<String, Wire>,
    syscalls: BTreeMap<(String, String), Counts>,
    instructions: BTreeMap<(String, String), f64>,
    /// DER sizes: the leaf, then each certificate sent after it.
    certs: (usize, Vec<usize>),
    problems: Vec<String>,
}

/// A directory removed on drop unless the user asked to keep its files elsewhere.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pin(t: &Target, on: bool, cpu: usize) -> String {
    match (on, t.pid) {
        (true, Some(pid)) => match sys::pin_process(pid, cpu) {
            Ok(1) => format!("{} (1 thread) on CPU {cpu}", t.label),
            Ok(n) => format!("{} ({n} threads) on CPU {cpu}", t.label),
            Err(e) => format!("{} not pinned ({e})", t.label),
        },
        _ => format!("{} not pinned", t.label),
    }
}

/// Every name the figures use gets its certificate made (ours) and a first visit.
fn warm_up(t: &Target) -> Result<(), String> {
    let load = conn::load_connector(None)?;
    let mut names = figures::keepalive_names();
    names.push(figures::HANDSHAKE_NAME.into());
    for n in &names {
        conn::visit(&load, t.https, n).map_err(|e| format!("{} warm-up {n}: {e}", t.label))?;
    }
    let mut c = conn::plain(t.http)?;
    conn::exchange(&mut c, &conn::request("warmup.bench"))
        .map_err(|e| format!("{} HTTP warm-up: {e}", t.label))?;
    Ok(())
}

fn version_of(bin: &str, arg: &str) -> String {
    let Some(path) = sys::which(bin) else {
        return format!("{bin} ?");
    };
    std::process::Command::new(path)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            // "nginx version: nginx/1.22.1", "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - …"
            let first = String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let words: Vec<&str> = first.split_whitespace().take(3).collect();
            words.join(" ")
        })
        .unwrap_or_else(|| format!("{bin} ?"))
}

/// Versions of the TLS library and of each peer, for the header.
fn versions(peers: &[Peer]) -> Vec<String> {
    let mut versions = vec![openssl::version::version().to_string()];
    versions.extend(peers.iter().map(|p| match p {
        Peer::Nginx => version_of("nginx", "-v"),
        Peer::Haproxy => version_of("haproxy", "-v"),
    }));
    versions
}

/// The machine as the run found and set it up.
struct Setup {
    started: Instant,
    load_start: String,
    cpus: usize,
    pin_on: bool,
    /// Idle connections every server holds at once.
    held: usize,
}

/// Installs what the wanted figures need, raises the fd limit, pins this process and makes
/// the `--keep-profiles` directory.
fn set_up(o: &Opts) -> Result<Setup, String> {
    let started = Instant::now();
    let mut tools: Vec<(&str, &str)> = o.peers.iter().map(|p| p.tool()).collect();
    if o.wants("syscalls") {
        tools.push(("strace", "strace"));
    }
    if o.wants("instructions") {
        tools.push(("valgrind", "valgrind"));
        tools.push(("callgrind_control", "valgrind"));
    }
    peers::ensure_installed(&tools)?;
    let load_start = sys::loadavg();
    let nofile = sys::raise_nofile();
    // The same number held by every server: as many as the tightest one can take.
    let cap = o
        .peers
        .iter()
        .map(|p| p.max_conns(nofile))
        .chain([nofile.saturating_sub(100) as usize])
        .min()
        .unwrap_or(usize::MAX);
    let held = o.idle.min(cap.saturating_sub(300)).max(1);
    let cpus = sys::allowed_cpus();
    let pin_on = o.pin && cpus >= 2;
    if pin_on {
        // Before the load threads and the servers exist, so all of them inherit the mask.
        sys::pin(0, o.client_cpu).map_err(|e| format!("pin client: {e}"))?;
    }
    if let Some(k) = &o.keep {
        std::fs::create_dir_all(k).map_err(|e| format!("{}: {e}", k.display()))?;
    }
    Ok(Setup {
        started,
        load_start,
        cpus,
        pin_on,
        held,
    })
}

pub fn run(o: Opts) -> Result<(), String> {
    let mut phases = Phases::default();
    let setup = set_up(&o)?;

    // Phase 1: every server at once, timed figures interleaved, then idle memory, bytes
    // and system calls.
    let mut r = Results::default();
    let (servers, material) = start_all(&o, setup.held + 300)?;
    r.certs = (material.leaf_der, material.extra_der.clone());
    let pinned: Vec<String> = servers
        .iter()
        .map(|t| pin(t, setup.pin_on, o.server_cpu))
        .collect();
    let load = conn::load_connector(None)?;
    phases.mark("start and warm-up");
    measure_timed(&o, &servers, &load, &mut r);
    phases.mark("timed figures");
    if o.wants("bytes") {
        measure_bytes(&servers, &mut r);
    }
    phases.mark("bytes");
    if o.wants("idle") {
        measure_idle(&servers, &load, setup.held, &mut r);
    }
    phases.mark("idle memory");
    if o.wants("syscalls") {
        measure_syscalls(&o, &servers, &mut r);
    }
    let labels: Vec<String> = servers.iter().map(|t| t.label.clone()).collect();
    drop(servers);
    phases.mark("system calls");

    // Phase 2: each server alone under callgrind.
    if o.wants("instructions") {
        measure_instructions(&o, &labels, &material, setup.pin_on, &mut r)?;
    }
    drop(material);
    phases.mark("instructions");

    let header = header(&o, &setup, &pinned, &phases);
    print(&o, &labels, &r, setup.held, &header);
    Ok(())
}

/// Ours (and the `--also` build), then each peer with the certificates ours made, all
/// warmed up; ours first.
fn start_all(o: &Opts, max_conns: usize) -> Result<(Vec<Target>, Material), String> {
    let ours = Target::start(
        &o.server,
        max_conns,
        &o.server_args,
        &[],
        o.server_certs.as_deref(),
    )?;
    warm_up(&ours)?;
    let material = Material::from_ours(&ours, figures::HANDSHAKE_NAME)?;
    let mut servers = vec![ours];
    if let Some((label, path)) = &o.also {
        let mut t = Target::start(
            path,
            max_conns,
            &o.server_args,
            &[],
            o.server_certs.as_deref(),
        )?;
        t.label = label.clone();
        warm_up(&t)?;
        servers.push(t);
    }
    for &p in &o.peers {
        let t = peers::start(p, &material, max_conns, &[])?;
        warm_up(&t)?;
        servers.push(t);
    }
    Ok((servers, material))
}

/// Each wanted timed figure, repeat by repeat, every server in turn within a repeat.
fn measure_timed(o: &Opts, servers: &[Target], load: &SslConnector, r: &mut Results) {
    for f in TIMED.iter().filter(|f| o.wants(f.key)) {
        for rep in 0..o.repeat {
            for t in servers {
                eprintln!("{}: {} (repeat {}/{})", f.label, t.label, rep + 1, o.repeat);
                let s = match f.how {
                    How::KeepAlive { tls } => {
                        let tls = tls.then_some(load);
                        figures::keepalive(t, tls, o.conns, o.client_threads, o.secs)
                    }
                    How::Handshakes(mode) => figures::handshakes(t, mode, o.threads, o.secs),
                };
                r.timed
                    .entry((f.key.to_string(), t.label.clone()))
                    .or_default()
                    .push(s);
            }
        }
    }
}

fn measure_bytes(servers: &[Target], r: &mut Results) {
    for t in servers {
        match wire::full_handshake(t.https, figures::HANDSHAKE_NAME) {
            Ok(w) => {
                r.bytes.insert(t.label.clone(), w);
            }
            Err(e) => r.problems.push(format!("{} bytes: {e}", t.label)),
        }
    }
}

fn measure_idle(servers: &[Target], load: &SslConnector, held: usize, r: &mut Results) {
    for t in servers {
        eprintln!("idle TLS, {held} connections: {}", t.label);
        r.idle
            .insert(t.label.clone(), figures::idle(t, Some(load), held));
    }
}

fn measure_syscalls(o: &Opts, servers: &[Target], r: &mut Results) {
    for t in servers {
        for op in OPS {
            eprintln!("system calls, {}: {}", op.label(), t.label);
            match nonoise::syscalls(t, op, o.quick, o.keep.as_deref()) {
                Ok(c) => {
                    r.syscalls
                        .insert((op.key().to_string(), t.label.clone()), c);
                }
                Err(e) => r
                    .problems
                    .push(format!("{} syscalls {}: {e}", t.label, op.key())),
            }
        }
    }
}

/// Each server restarted alone under callgrind (ours is `labels[0]`, then the `--also`
/// build, then the peers in order); a server that fails there is a problem, not the end of the run.
fn measure_instructions(
    o: &Opts,
    labels: &[String],
    material: &Material,
    pin_on: bool,
    r: &mut Results,
) -> Result<(), String> {
    let scratch = Scratch(target::temp_dir("callgrind")?);
    for (i, label) in labels.iter().enumerate() {
        eprintln!("instructions: starting {label} under callgrind...");
        let wrapper = nonoise::callgrind_wrapper(&scratch.0, label);
        let t = if i < o.builds() {
            Target::start(
                o.build_path(i),
                300,
                &o.server_args,
                &wrapper,
                o.server_certs.as_deref(),
            )
            .map(|mut t| {
                t.label = label.clone();
                t
            })
        } else {
            peers::start(o.peers[i - o.builds()], material, 300, &wrapper)
        };
        let t = match t.and_then(|t| warm_up(&t).map(|()| t)) {
            Ok(t) => t,
            Err(e) => {
                r.problems.push(format!("{label} under callgrind: {e}"));
                continue;
            }
        };
        pin(&t, pin_on, o.server_cpu);
        for op in OPS {
            eprintln!("instructions, {}: {label}", op.label());
            match nonoise::instructions(&t, op, o.quick, &scratch.0, o.keep.as_deref()) {
                Ok(v) => {
                    r.instructions
                        .insert((op.key().to_string(), label.clone()), v);
                }
                Err(e) => r
                    .problems
                    .push(format!("{label} instructions {}: {e}", op.key())),
            }
        }
    }
    Ok(())
}

/// The line above the table: what ran where, under what load, and how long each part took.
fn header(o: &Opts, setup: &Setup, pinned: &[String], phases: &Phases) -> String {
    format!(
        "{}; {}; client on CPU {}; timed figures interleaved; \
         {} CPUs; load average at start {}, at end {}; wall time {:.0} s ({})",
        versions(&o.peers).join("; "),
        pinned.join(", "),
        if setup.pin_on {
            o.client_cpu.to_string()
        } else {
            "any".into()
        },
        setup.cpus,
        setup.load_start,
        sys::loadavg(),
        setup.started.elapsed().as_secs_f64(),
        phases.0.join(", "),
    )
}

/// How long each part of the run took, for the header.
struct Phases(Vec<String>, Instant);

impl Default for Phases {
    fn default() -> Phases {
        Phases(Vec::new(), Instant::now())
    }
}

impl Phases {
    /// Ends the part called `name` (left out when it took no time: not run).
    fn mark(&mut self, name: &str) {
        let secs = self.1.elapsed().as_secs_f64();
        if secs >= 0.5 {
            self.0.push(format!("{name} {secs:.0} s"));
        }
        self.1 = Instant::now();
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

fn metric(s: &[Sample], i: usize) -> Vec<f64> {
    s.iter()
        .filter_map(|s| s.metrics.get(i).and_then(|m| m.value))
        .collect()
}

struct Line {
    label: String,
    values: Vec<Option<f64>>,
    prec: usize,
}

fn fmt(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(v) if prec == 0 && v.abs() >= 10_000.0 => {
            let s = format!("{v:.0}");
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 && c != '-' {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
        Some(v) => format!("{v:.prec$}"),
        None => "n/a".into(),
    }
}

/// `builds`: how many columns are builds of ours (the ratio is the first to the best peer).
fn print_lines(labels: &[String], builds: usize, lines: &[Line]) {
    let ratio = labels.len() > builds;
    let mut head = format!("| Figure | {} |", labels.join(" | "));
    let mut rule = format!("|---|{}", "---:|".repeat(labels.len()));
    if ratio {
        head.push_str(" ours ÷ best peer |");
        rule.push_str("---:|");
    }
    println!("{head}\n{rule}");
    for l in lines {
        let cells: Vec<String> = l.values.iter().map(|v| fmt(*v, l.prec)).collect();
        let section = l.values.iter().all(Option::is_none);
        if section {
            let empty = vec![""; labels.len() + usize::from(ratio)].join(" | ");
            println!("| **{}** | {empty} |", l.label);
            continue;
        }
        let mut row = format!("| {} | {} |", l.label, cells.join(" | "));
        if ratio {
            let best = l.values[builds..]
                .iter()
                .flatten()
                .copied()
                .min_by(f64::total_cmp);
            let q = match (l.values[0], best) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "n/a".into(),
            };
            row.push_str(&format!(" {q} |"));
        }
        println!("{row}");
    }
}

/// The rows of the main table, each a figure with one value per server: a section heading
/// where a group starts, then the rows that have a value for some server.
fn summary(o: &Opts, labels: &[String], r: &Results, held: usize) -> Vec<Line> {
    let per = |f: &dyn Fn(&str) -> Option<f64>| labels.iter().map(|l| f(l)).collect::<Vec<_>>();
    let mut lines = Vec::new();
    if !r.timed.is_empty() {
        lines.push(section(
            &format!(
                "Server CPU per operation, µs (median of {} × {} s)",
                o.repeat, o.secs
            ),
            labels,
        ));
    }
    for f in &TIMED {
        let values = per(&|s| {
            r.timed
                .get(&(f.key.to_string(), s.to_string()))
                .and_then(|v| median(metric(v, 1)))
        });
        lines.extend(row_with_values(f.label, values));
    }
    if !r.idle.is_empty() {
        lines.push(Line {
            label: format!(
                "kB per idle TLS connection ({} held)",
                fmt(Some(held as f64), 0)
            ),
            values: per(&|s| r.idle.get(s).and_then(|x| x.metrics.get(2)?.value)),
            prec: 2,
        });
    }
    if !r.bytes.is_empty() {
        lines.push(Line {
            label: "bytes the server sends per full TLS 1.3 handshake".into(),
            values: per(&|s| r.bytes.get(s).map(|w| w.handshake as f64)),
            prec: 0,
        });
    }
    if !r.syscalls.is_empty() {
        let title = "System calls per operation (strace -c -f; one paced client)";
        lines.extend(per_op(title, labels, |op, s| {
            let c = r.syscalls.get(&(op.to_string(), s.to_string()))?;
            Some(c.values().map(|(calls, _)| calls).sum())
        }));
    }
    if !r.instructions.is_empty() {
        let title = "Instructions per operation, thousands (callgrind; one paced client)";
        lines.extend(per_op(title, labels, |op, s| {
            let v = r.instructions.get(&(op.to_string(), s.to_string()))?;
            Some(v / 1000.0)
        }));
    }
    lines
}

/// A heading row: no values.
fn section(label: &str, labels: &[String]) -> Line {
    Line {
        label: label.into(),
        values: vec![None; labels.len()],
        prec: 0,
    }
}

/// A row with one decimal, left out when no server has a value.
fn row_with_values(label: &str, values: Vec<Option<f64>>) -> Option<Line> {
    values.iter().any(Option::is_some).then(|| Line {
        label: label.into(),
        values,
        prec: 1,
    })
}

/// A section of one row per operation, `value(op key, server)` in each cell.
fn per_op(title: &str, labels: &[String], value: impl Fn(&str, &str) -> Option<f64>) -> Vec<Line> {
    let mut lines = vec![section(title, labels)];
    for op in OPS {
        let values = labels.iter().map(|s| value(op.key(), s)).collect();
        lines.extend(row_with_values(op.label(), values));
    }
    lines
}

fn print(o: &Opts, labels: &[String], r: &Results, held: usize, header: &str) {
    let lines = summary(o, labels, r, held);
    println!("{header}\n");
    print_lines(labels, o.builds(), &lines);

    // Details: what the table's cells rest on.
    print_timed_details(labels, r);
    print_idle_details(labels, r);
    print_bytes_details(labels, r);
    print_syscall_details(labels, r);
    if !r.problems.is_empty() {
        println!("\nProblems:");
        for p in &r.problems {
            println!("- {p}");
        }
    }
    if let Some(k) = &o.keep {
        println!(
            "\nstrace summaries and callgrind dumps kept in {}",
            k.display()
        );
    }
}

fn print_timed_details(labels: &[String], r: &Results) {
    if r.timed.is_empty() {
        return;
    }
    println!("\nDetails of the timed figures (rate: median; CPU: min–max over the repeats):\n");
    println!("| Figure | Server | ops/s | server CPU µs/op min–max | Notes |");
    println!("|---|---|---:|---:|---|");
    for f in &TIMED {
        for s in labels {
            let Some(v) = r.timed.get(&(f.key.to_string(), s.clone())) else {
                continue;
            };
            let mut cpu = metric(v, 1);
            cpu.sort_by(f64::total_cmp);
            let range = match (cpu.first(), cpu.last()) {
                (Some(a), Some(b)) => format!("{a:.1}–{b:.1}"),
                _ => "n/a".into(),
            };
            let note = v.last().map(|x| x.note.as_str()).unwrap_or_default();
            println!(
                "| {} | {s} | {} | {range} | {note} |",
                f.label,
                fmt(median(metric(v, 0)), 0)
            );
        }
    }
}

fn print_idle_details(labels: &[String], r: &Results) {
    if r.idle.is_empty() {
        return;
    }
    println!("\n| Idle TLS | RSS before kB | with all open kB | 2 s after close kB | second request answered | Notes |");
    println!("|---|---:|---:|---:|---:|---|");
    for s in labels {
        if let Some(x) = r.idle.get(s) {
            let v = |i: usize| fmt(x.metrics.get(i).and_then(|m| m.value), 0);
            println!(
                "| {s} | {} | {} | {} | {} | {} |",
                v(0),
                v(1),
                v(3),
                v(4),
                x.note
            );
        }
    }
}

fn print_bytes_details(labels: &[String], r: &Results) {
    if r.bytes.is_empty() {
        return;
    }
    println!("\n| Full TLS 1.3 handshake, server → client | handshake bytes | records | Certificate message bytes | NewSessionTickets | response records bytes |");
    println!("|---|---:|---:|---:|---:|---:|");
    for s in labels {
        if let Some(w) = r.bytes.get(s) {
            println!(
                "| {s} | {} | {} | {} | {} | {} |",
                w.handshake, w.handshake_records, w.certificate, w.tickets, w.app
            );
        }
    }
    let extra: String = r.certs.1.iter().map(|n| format!(" + {n}")).collect();
    println!(
        "\nEvery server sends the chain ours sends (a self-signed CA is left out): leaf {} bytes{extra} (DER).",
        r.certs.0
    );
}

fn print_syscall_details(labels: &[String], r: &Results) {
    if r.syscalls.is_empty() {
        return;
    }
    println!("\nSystem calls per operation by name (calls; errors, e.g. EAGAIN, in brackets):");
    for op in OPS {
        let cols: Vec<Option<&Counts>> = labels
            .iter()
            .map(|s| r.syscalls.get(&(op.key().to_string(), s.clone())))
            .collect();
        if cols.iter().any(Option::is_some) {
            print_syscall_table(op.label(), labels, &cols);
        }
    }
}

/// One operation's calls by name, a column per server (empty where it made none).
fn print_syscall_table(op: &str, labels: &[String], cols: &[Option<&Counts>]) {
    let mut names: Vec<&String> = cols.iter().flatten().flat_map(|c| c.keys()).collect();
    names.sort();
    names.dedup();
    println!("\n| {op} | {} |", labels.join(" | "));
    println!("|---|{}", "---:|".repeat(labels.len()));
    for n in names {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match c.and_then(|c| c.get(n)) {
                Some((calls, errors)) if *errors >= 0.05 => format!("{calls:.1} ({errors:.1})"),
                Some((calls, _)) => format!("{calls:.1}"),
                None => "".into(),
            })
            .collect();
        println!("| {n} | {} |", cells.join(" | "));
    }
}
