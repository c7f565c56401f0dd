//! pixelserv-bench: load and resource figures for pixelserv-tls, printed as one markdown table.
//! No thresholds: it prints, people judge.

mod compare;
mod conn;
mod figures;
mod nonoise;
mod peers;
mod soak;
mod stress;
mod sys;
mod target;
mod wire;

use figures::{Handshake, Sample};
use openssl::ssl::SslConnector;
use std::path::PathBuf;
use std::process::ExitCode;
use target::Target;

const USAGE: &str = "\
usage: pixelserv-bench (--server PATH | --http PORT --https PORT --cacert FILE [--pid PID])
  --server PATH        start this pixelserv-tls binary on free loopback ports (own CERT_PATH)
  --server-arg ARG     extra argument for the started server (repeatable)
  --server-certs DIR   copy DIR's files (ca.crt, ca.key, certificates) into the started
                       server's CERT_PATH: it then loads them instead of making them
  --http/--https PORT  target a running server instead; --cacert its ca.crt;
  --pid PID            its pid (for server CPU and RSS; without it those are n/a)
  --quick              2 s per figure, repeat 1, idle 2000, names 100 (about a minute)
  --only LIST          comma list of: http,https,full,resume12,resume13,idle,idle-http,
                       names,underload (default: all; --quick leaves out underload)
  --repeat N           repetitions per figure (default 3); min/median/max are printed
  --duration SECS      seconds per throughput figure (default 5)
  --conns C            keep-alive connections (default 50)
  --client-threads N   threads driving the keep-alive connections (default 8)
  --threads N          handshake clients (default 16)
  --idle N             idle connections for idle/idle-http/underload (default 10000)
  --rss-idle N         same as --idle
  --names M            never-seen names visited at once (default 200)
  --server-cpu N       CPU for the server (default 0 when >= 2 CPUs)
  --client-cpu N       CPU for this tool (default 1 when >= 2 CPUs)
  --no-pin             do not pin
  --soak MINUTES       soak mode instead of figures: mixed traffic for MINUTES, one line of
                       server RSS/fds/threads/stats a minute, then a summary (started server
                       gets -O 5 unless a --server-arg -O is given)
  --soak-rate R        soak requests per second in total (default 300)
  --first-visits N     stress mode instead of figures (needs --server): N never-seen names,
                       each visited once and verified against the CA by one of --clients
                       concurrent clients; fails unless all verify and the server survives
  --clients C          concurrent clients for --first-visits (default 24)
  --server-wrapper CMD run the started server behind CMD (words split on spaces), e.g.
                       'qemu-arm -cpu cortex-a9'

side by side (needs --server; makes its own servers):
  --peer NAME          nginx or haproxy (repeatable, or a comma list; installs Debian's
                       nginx-core / haproxy with apt-get when missing); prints one table:
                       ours, each peer, ours ÷ best peer. `--peer none`: ours alone
  --also LABEL=PATH    another build of ours (e.g. 'ours, OpenSSL=target/release/pixelserv-tls')
                       measured the same way in a column of its own, after ours; not a
                       peer, so not in the best-peer ratio
  --only LIST          here a comma list of: http,https,full,resume12,resume13,idle,bytes,
                       syscalls,instructions (default: all)
  --keep-profiles DIR  keep the strace summaries and callgrind dumps (per server and op)
                       there, for callgrind_annotate
  defaults here: --duration 2, --repeat 3, --idle 10000 (fewer when the fd limit makes
  HAProxy refuse it); --quick: --duration 1, --repeat 1, --idle 2000, half-length passes
";

struct Opts {
    server: Option<PathBuf>,
    also: Option<(String, PathBuf)>,
    server_args: Vec<String>,
    server_certs: Option<PathBuf>,
    http: Option<u16>,
    https: Option<u16>,
    cacert: Option<PathBuf>,
    pid: Option<u32>,
    quick: bool,
    only: Option<Vec<String>>,
    repeat: Option<usize>,
    duration: Option<f64>,
    conns: usize,
    client_threads: usize,
    threads: usize,
    idle: Option<usize>,
    names: Option<usize>,
    server_cpu: usize,
    client_cpu: usize,
    pin: bool,
    soak: Option<f64>,
    soak_rate: f64,
    first_visits: Option<usize>,
    clients: usize,
    wrapper: Vec<String>,
    /// Side-by-side mode: the peers (possibly none: ours alone in that table).
    peers: Option<Vec<peers::Peer>>,
    keep: Option<PathBuf>,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            server: None,
            also: None,
            server_args: Vec::new(),
            server_certs: None,
            http: None,
            https: None,
            cacert: None,
            pid: None,
            quick: false,
            only: None,
            repeat: None,
            duration: None,
            conns: 50,
            client_threads: 8,
            threads: 16,
            idle: None,
            names: None,
            server_cpu: 0,
            client_cpu: 1,
            pin: true,
            soak: None,
            soak_rate: 300.0,
            first_visits: None,
            clients: 24,
            wrapper: Vec::new(),
            peers: None,
            keep: None,
        }
    }
}

/// What an option does to `Opts`: a flag alone; or with the next argument, taken as it is
/// or parsed (the parser gets the option's name for its error message).
enum Handler {
    Flag(fn(&mut Opts)),
    Text(fn(&mut Opts, String)),
    Parsed(fn(&mut Opts, &str, String) -> Result<(), String>),
}

use Handler::{Flag, Parsed, Text};

fn num<T: std::str::FromStr>(a: &str, v: String) -> Result<T, String> {
    v.parse().map_err(|_| format!("{a}: '{v}' is not a number"))
}

/// A count of at least one.
fn count(a: &str, v: String) -> Result<usize, String> {
    Ok(num::<usize>(a, v)?.max(1))
}

/// Every option `parse` knows (`-h`/`--help` aside), as in USAGE. One line each: a table.
#[rustfmt::skip]
const OPTIONS: &[(&[&str], Handler)] = &[
    (&["--server"],             Text(|o, v| o.server = Some(v.into()))),
    (&["--also"],               Parsed(set_also)),
    (&["--server-arg"],         Text(|o, v| o.server_args.push(v))),
    (&["--server-certs"],       Text(|o, v| o.server_certs = Some(v.into()))),
    (&["--http"],               Parsed(|o, a, v| num(a, v).map(|n| o.http = Some(n)))),
    (&["--https"],              Parsed(|o, a, v| num(a, v).map(|n| o.https = Some(n)))),
    (&["--cacert"],             Text(|o, v| o.cacert = Some(v.into()))),
    (&["--pid"],                Parsed(|o, a, v| num(a, v).map(|n| o.pid = Some(n)))),
    (&["--quick"],              Flag(|o| o.quick = true)),
    (&["--only"],               Text(|o, v| o.only = Some(comma_list(&v)))),
    (&["--peer"],               Parsed(add_peers)),
    (&["--keep-profiles"],      Text(|o, v| o.keep = Some(v.into()))),
    (&["--repeat"],             Parsed(|o, a, v| count(a, v).map(|n| o.repeat = Some(n)))),
    (&["--duration"],           Parsed(|o, a, v| num(a, v).map(|n| o.duration = Some(n)))),
    (&["--conns"],              Parsed(|o, a, v| count(a, v).map(|n| o.conns = n))),
    (&["--client-threads"],     Parsed(|o, a, v| count(a, v).map(|n| o.client_threads = n))),
    (&["--threads"],            Parsed(|o, a, v| count(a, v).map(|n| o.threads = n))),
    (&["--idle", "--rss-idle"], Parsed(|o, a, v| num(a, v).map(|n| o.idle = Some(n)))),
    (&["--names"],              Parsed(|o, a, v| count(a, v).map(|n| o.names = Some(n)))),
    (&["--server-cpu"],         Parsed(|o, a, v| num(a, v).map(|n| o.server_cpu = n))),
    (&["--client-cpu"],         Parsed(|o, a, v| num(a, v).map(|n| o.client_cpu = n))),
    (&["--no-pin"],             Flag(|o| o.pin = false)),
    (&["--soak"],               Parsed(|o, a, v| num(a, v).map(|n| o.soak = Some(n)))),
    (&["--soak-rate"],          Parsed(|o, a, v| num(a, v).map(|n| o.soak_rate = n))),
    (&["--first-visits"],       Parsed(|o, a, v| count(a, v).map(|n| o.first_visits = Some(n)))),
    (&["--clients"],            Parsed(|o, a, v| count(a, v).map(|n| o.clients = n))),
    (&["--server-wrapper"],     Text(|o, v| o.wrapper = words(&v))),
];

fn comma_list(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim().to_string()).collect()
}

fn words(v: &str) -> Vec<String> {
    v.split_whitespace().map(str::to_string).collect()
}

/// `--also LABEL=PATH`: another build of ours, in a column of its own.
fn set_also(o: &mut Opts, a: &str, v: String) -> Result<(), String> {
    let (label, path) = v
        .split_once('=')
        .ok_or_else(|| format!("{a}: '{v}' is not LABEL=PATH"))?;
    o.also = Some((label.to_string(), path.into()));
    Ok(())
}

/// `--peer none` still selects side-by-side mode, with ours alone.
fn add_peers(o: &mut Opts, _: &str, v: String) -> Result<(), String> {
    let list = o.peers.get_or_insert_with(Vec::new);
    for name in v.split(',').map(str::trim) {
        if name != "none" {
            let p = peers::Peer::parse(name)?;
            if !list.contains(&p) {
                list.push(p);
            }
        }
    }
    Ok(())
}

fn value<'a>(a: &str, it: &mut impl Iterator<Item = &'a String>) -> Result<String, String> {
    it.next().cloned().ok_or(format!("{a} needs a value"))
}

/// `Err("")` asks for the usage alone (`--help`).
fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            return Err(String::new());
        }
        let Some((_, handler)) = OPTIONS
            .iter()
            .find(|(names, _)| names.contains(&a.as_str()))
        else {
            return Err(format!("unknown argument {a}"));
        };
        match handler {
            Flag(set) => set(&mut o),
            Text(set) => set(&mut o, value(a, &mut it)?),
            Parsed(set) => set(&mut o, a, value(a, &mut it)?)?,
        }
    }
    check(&o)?;
    Ok(o)
}

/// The combinations `parse` accepts option by option but no mode can run.
fn check(o: &Opts) -> Result<(), String> {
    if o.server.is_none() && (o.http.is_none() || o.https.is_none() || o.cacert.is_none()) {
        return Err("give --server PATH, or --http, --https and --cacert".into());
    }
    let known = |f: &str| match o.peers {
        Some(_) => compare::KEYS.contains(&f),
        None => FIGURES.iter().any(|x| x.key == f),
    };
    if let Some(bad) = o.only.iter().flatten().find(|f| !known(f)) {
        return Err(format!("--only: unknown figure '{bad}'"));
    }
    if o.first_visits.is_some() && o.server.is_none() {
        return Err("--first-visits needs --server".into());
    }
    if o.peers.is_some() && o.server.is_none() {
        return Err("--peer needs --server (the peers serve our server's certificates)".into());
    }
    Ok(())
}

/// One table row per metric: min/median/max over the repeats.
struct Row {
    figure: String,
    metric: String,
    values: Vec<f64>,
    missing: bool,
    prec: usize,
    note: String,
}

fn add(rows: &mut Vec<Row>, figure: &str, samples: Vec<Sample>) {
    let start = rows.len();
    for s in samples {
        for (i, mt) in s.metrics.into_iter().enumerate() {
            if rows.len() <= start + i {
                rows.push(Row {
                    figure: figure.into(),
                    metric: mt.name.clone(),
                    values: Vec::new(),
                    missing: false,
                    prec: mt.prec,
                    note: String::new(),
                });
            }
            let r = &mut rows[start + i];
            match mt.value {
                Some(v) if v.is_finite() => r.values.push(v),
                _ => r.missing = true,
            }
        }
        // The note of the last repeat, on the figure's first row.
        if let Some(r) = rows.get_mut(start) {
            r.note = s.note;
        } else {
            rows.push(Row {
                figure: figure.into(),
                metric: "-".into(),
                values: Vec::new(),
                missing: true,
                prec: 0,
                note: s.note,
            });
        }
    }
}

fn print_table(rows: &[Row]) {
    println!("| Figure | Metric | min | median | max | Notes |");
    println!("|---|---|---:|---:|---:|---|");
    let mut last = "";
    for r in rows {
        let mut v = r.values.clone();
        v.sort_by(f64::total_cmp);
        let f = |x: Option<&f64>| match x {
            Some(x) if !r.missing => format!("{x:.*}", r.prec),
            _ => "n/a".into(),
        };
        let fig = if r.figure == last { "" } else { &r.figure };
        last = &r.figure;
        println!(
            "| {fig} | {} | {} | {} | {} | {} |",
            r.metric,
            f(v.first()),
            f(v.get(v.len() / 2)),
            f(v.last()),
            r.note
        );
    }
}

/// A server someone else started (`--http`, `--https`, `--cacert`, `--pid`).
fn running_target(o: &Opts) -> Target {
    Target::running(
        o.http.unwrap_or(80),
        o.https.unwrap_or(443),
        o.cacert.clone().unwrap_or_default(),
        o.pid,
    )
}

/// Soak mode: no pinning (it shares the machine at a bounded rate), short keep-alive timeout.
fn run_soak(o: &Opts, minutes: f64) -> Result<(), String> {
    sys::raise_nofile();
    let t = match &o.server {
        Some(bin) => {
            let mut args = o.server_args.clone();
            if !args.iter().any(|a| a.starts_with("-O")) {
                args.extend(["-O".into(), "5".into()]);
            }
            eprintln!("soak: server args {}", args.join(" "));
            Target::start(bin, 1000, &args, &[], o.server_certs.as_deref())?
        }
        None => running_target(o),
    };
    soak::run(&t, minutes, o.soak_rate)
}

fn run_compare(o: Opts, peers: Vec<peers::Peer>) -> Result<(), String> {
    let quick = o.quick;
    compare::run(compare::Opts {
        server: o.server.unwrap_or_default(),
        also: o.also,
        server_args: o.server_args,
        server_certs: o.server_certs,
        peers,
        quick,
        repeat: o.repeat.unwrap_or(if quick { 1 } else { 3 }),
        secs: o.duration.unwrap_or(if quick { 1.0 } else { 2.0 }),
        idle: o.idle.unwrap_or(if quick { 2000 } else { 10_000 }),
        conns: o.conns,
        client_threads: o.client_threads,
        threads: o.threads,
        server_cpu: o.server_cpu,
        client_cpu: o.client_cpu,
        pin: o.pin,
        only: o.only,
        keep: o.keep,
    })
}

fn run(mut o: Opts) -> Result<(), String> {
    if let Some(minutes) = o.soak {
        return run_soak(&o, minutes);
    }
    if let (Some(visits), Some(server)) = (o.first_visits, &o.server) {
        return stress::run(&stress::Opts {
            server,
            server_args: &o.server_args,
            wrapper: &o.wrapper,
            visits,
            clients: o.clients,
        });
    }
    if let Some(peers) = o.peers.take() {
        return run_compare(o, peers);
    }
    run_figures(&o)
}

/// Figure mode's sizes: `--quick` shortens every default.
struct Sizes {
    repeat: usize,
    secs: f64,
    idle: usize,
    names: usize,
}

impl Sizes {
    fn of(o: &Opts) -> Sizes {
        let quick = o.quick;
        Sizes {
            repeat: o.repeat.unwrap_or(if quick { 1 } else { 3 }),
            secs: o.duration.unwrap_or(if quick { 2.0 } else { 5.0 }),
            idle: o.idle.unwrap_or(if quick { 2000 } else { 10_000 }),
            names: o.names.unwrap_or(if quick { 100 } else { 200 }),
        }
    }
}

/// What every figure is measured with.
struct Bench<'a> {
    o: &'a Opts,
    n: &'a Sizes,
    t: &'a Target,
    /// Checks the chain and the name: for figures about certificates being right.
    verify: &'a SslConnector,
    /// Checks nothing: for load, where the client's own work should be small.
    load: &'a SslConnector,
}

/// One figure of figure mode: its `--only` key, the progress line, the table label, how it
/// is measured, and whether it is measured once instead of once per repeat.
struct Figure {
    key: &'static str,
    progress: &'static str,
    label: fn(&Bench) -> String,
    measure: fn(&Bench) -> Sample,
    once: bool,
}

/// Figure mode's figures, in the order they run and are printed.
///
/// Idle figures run once: the server's heap keeps freed memory and hands it out again, so a
/// repeat on the same server shows ~0 kB per connection. Plain HTTP first for the same reason.
const FIGURES: &[Figure] = &[
    Figure {
        key: "http",
        progress: "http keep-alive...",
        label: |b| format!("1. HTTP keep-alive, {} conns", b.o.conns),
        measure: |b| figures::keepalive(b.t, None, b.o.conns, b.o.client_threads, b.n.secs),
        once: false,
    },
    Figure {
        key: "https",
        progress: "https keep-alive...",
        label: |b| format!("2. HTTPS keep-alive, {} conns", b.o.conns),
        measure: |b| figures::keepalive(b.t, Some(b.load), b.o.conns, b.o.client_threads, b.n.secs),
        once: false,
    },
    Figure {
        key: "full",
        progress: "full...",
        label: |b| format!("3. Full TLS handshake + GET, {} clients", b.o.threads),
        measure: |b| figures::handshakes(b.t, Handshake::Full, b.o.threads, b.n.secs),
        once: false,
    },
    Figure {
        key: "resume12",
        progress: "resume12...",
        label: |b| format!("4. TLS 1.2 resumption + GET, {} clients", b.o.threads),
        measure: |b| figures::handshakes(b.t, Handshake::Resume12, b.o.threads, b.n.secs),
        once: false,
    },
    Figure {
        key: "resume13",
        progress: "resume13...",
        label: |b| format!("5. TLS 1.3 resumption + GET, {} clients", b.o.threads),
        measure: |b| figures::handshakes(b.t, Handshake::Resume13, b.o.threads, b.n.secs),
        once: false,
    },
    Figure {
        key: "idle-http",
        progress: "idle HTTP...",
        label: |b| format!("6a. Idle HTTP keep-alive, {}", b.n.idle),
        measure: |b| figures::idle(b.t, None, b.n.idle),
        once: true,
    },
    Figure {
        key: "idle",
        progress: "idle TLS...",
        label: |b| format!("6b. Idle TLS keep-alive, {}", b.n.idle),
        measure: |b| figures::idle(b.t, Some(b.load), b.n.idle),
        once: true,
    },
    Figure {
        key: "names",
        progress: "new names...",
        label: |_| "7. New-name certificates".into(),
        measure: |b| figures::names(b.t, b.verify, b.n.names),
        once: false,
    },
    Figure {
        key: "underload",
        progress: "under load...",
        label: |b| {
            format!(
                "8. Under load: {} new names + {} idle TLS",
                b.n.names, b.n.idle
            )
        },
        measure: |b| figures::under_load(b.t, b.verify, b.load, b.n.idle, b.n.names),
        once: false,
    },
];

/// Whether `key` runs: `--only`, or by default all but the slow under-load figure when quick.
fn wanted(o: &Opts, key: &str) -> bool {
    match &o.only {
        Some(list) => list.iter().any(|x| x == key),
        None => key != "underload" || !o.quick,
    }
}

/// Figure mode: one server (started or given), the figures one after another.
fn run_figures(o: &Opts) -> Result<(), String> {
    let n = Sizes::of(o);
    let load_start = sys::loadavg();
    let nofile = sys::raise_nofile();
    let cpus = sys::allowed_cpus();
    let pin = o.pin && cpus >= 2;
    if pin {
        // Before the load threads and the servers exist, so all of them inherit the mask.
        sys::pin(0, o.client_cpu).map_err(|e| format!("pin client: {e}"))?;
    }
    let mut t = match &o.server {
        Some(bin) => Target::start(
            bin,
            n.idle + n.names + 200,
            &o.server_args,
            &[],
            o.server_certs.as_deref(),
        )?,
        None => running_target(o),
    };
    let pinned = pin_server(o, &t, pin, cpus);
    let verify = conn::verifying_connector(&t.cacert)?;
    let load = conn::load_connector(None)?;
    let leaf = warm_up(&t, &verify)?;
    eprintln!(
        "target http {} https {} ({leaf}); {pinned}; RLIMIT_NOFILE {nofile}; repeat {}",
        t.http, t.https, n.repeat
    );
    let bench = Bench {
        o,
        n: &n,
        t: &t,
        verify: &verify,
        load: &load,
    };
    let rows = measure_all(&bench);
    t.stop();
    println!(
        "{leaf}; {pinned}; duration {} s; repeat {}; \
         load average at start {load_start}, at end {}\n",
        n.secs,
        n.repeat,
        sys::loadavg()
    );
    print_table(&rows);
    Ok(())
}

/// Pins the server (when `pin`) and says where server and client run.
fn pin_server(o: &Opts, t: &Target, pin: bool, cpus: usize) -> String {
    let pinned = match (pin, t.pid) {
        (true, Some(pid)) => match sys::pin_process(pid, o.server_cpu) {
            Ok(n) => format!("server ({n} threads) on CPU {}, ", o.server_cpu),
            Err(e) => format!("server not pinned ({e}), "),
        },
        _ => "server not pinned, ".into(),
    };
    if pin {
        format!("{pinned}client on CPU {}", o.client_cpu)
    } else {
        format!("{pinned}client not pinned ({cpus} CPUs)")
    }
}

/// Every name the figures reuse gets its certificate made and checked now, so no figure pays
/// for it. Returns the served leaf's description.
fn warm_up(t: &Target, verify: &SslConnector) -> Result<String, String> {
    let leaf = conn::describe(verify, t.https, figures::HANDSHAKE_NAME)?;
    for n in figures::keepalive_names() {
        conn::visit(verify, t.https, &n).map_err(|e| format!("warm-up {n}: {e}"))?;
    }
    let mut c = conn::plain(t.http)?;
    conn::exchange(&mut c, &conn::request("warmup.bench"))
        .map_err(|e| format!("HTTP warm-up: {e}"))?;
    Ok(leaf)
}

/// The wanted figures, in order, each `--repeat` times unless it runs once.
fn measure_all(b: &Bench) -> Vec<Row> {
    let mut rows = Vec::new();
    for f in FIGURES.iter().filter(|f| wanted(b.o, f.key)) {
        eprintln!("{}", f.progress);
        let times = if f.once { 1 } else { b.n.repeat };
        let samples = (0..times).map(|_| (f.measure)(b)).collect();
        add(&mut rows, &(f.label)(b), samples);
    }
    rows
}

fn main() -> ExitCode {
    sys::clean_exit_on_signals(target::remove_temp_dirs);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("pixelserv-bench: {e}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pixelserv-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
