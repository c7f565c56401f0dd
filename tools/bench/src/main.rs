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
use std::path::PathBuf;
use std::process::ExitCode;
use target::Target;

const FIGURES: &[&str] = &[
    "http",
    "https",
    "full",
    "resume12",
    "resume13",
    "idle",
    "idle-http",
    "names",
    "underload",
];

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

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
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
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        fn num<T: std::str::FromStr>(a: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{a}: '{v}' is not a number"))
        }
        match a.as_str() {
            "--server" => o.server = Some(val()?.into()),
            "--also" => {
                let v = val()?;
                let (label, path) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--also: '{v}' is not LABEL=PATH"))?;
                o.also = Some((label.to_string(), path.into()));
            }
            "--server-arg" => o.server_args.push(val()?),
            "--server-certs" => o.server_certs = Some(val()?.into()),
            "--http" => o.http = Some(num(a, val()?)?),
            "--https" => o.https = Some(num(a, val()?)?),
            "--cacert" => o.cacert = Some(val()?.into()),
            "--pid" => o.pid = Some(num(a, val()?)?),
            "--quick" => o.quick = true,
            "--only" => {
                o.only = Some(val()?.split(',').map(|s| s.trim().to_string()).collect());
            }
            "--peer" => {
                let list = o.peers.get_or_insert_with(Vec::new);
                for name in val()?.split(',').map(str::trim) {
                    if name != "none" {
                        let p = peers::Peer::parse(name)?;
                        if !list.contains(&p) {
                            list.push(p);
                        }
                    }
                }
            }
            "--keep-profiles" => o.keep = Some(val()?.into()),
            "--repeat" => o.repeat = Some(num::<usize>(a, val()?)?.max(1)),
            "--duration" => o.duration = Some(num(a, val()?)?),
            "--conns" => o.conns = num::<usize>(a, val()?)?.max(1),
            "--client-threads" => o.client_threads = num::<usize>(a, val()?)?.max(1),
            "--threads" => o.threads = num::<usize>(a, val()?)?.max(1),
            "--idle" | "--rss-idle" => o.idle = Some(num(a, val()?)?),
            "--names" => o.names = Some(num::<usize>(a, val()?)?.max(1)),
            "--server-cpu" => o.server_cpu = num(a, val()?)?,
            "--client-cpu" => o.client_cpu = num(a, val()?)?,
            "--no-pin" => o.pin = false,
            "--soak" => o.soak = Some(num(a, val()?)?),
            "--soak-rate" => o.soak_rate = num(a, val()?)?,
            "--first-visits" => o.first_visits = Some(num::<usize>(a, val()?)?.max(1)),
            "--clients" => o.clients = num::<usize>(a, val()?)?.max(1),
            "--server-wrapper" => {
                o.wrapper = val()?.split_whitespace().map(str::to_string).collect();
            }
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.server.is_none() && (o.http.is_none() || o.https.is_none() || o.cacert.is_none()) {
        return Err("give --server PATH, or --http, --https and --cacert".into());
    }
    let known = if o.peers.is_some() {
        compare::KEYS
    } else {
        FIGURES
    };
    if let Some(bad) = o
        .only
        .iter()
        .flatten()
        .find(|f| !known.contains(&f.as_str()))
    {
        return Err(format!("--only: unknown figure '{bad}'"));
    }
    if o.first_visits.is_some() && o.server.is_none() {
        return Err("--first-visits needs --server".into());
    }
    if o.peers.is_some() && o.server.is_none() {
        return Err("--peer needs --server (the peers serve our server's certificates)".into());
    }
    Ok(o)
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
        None => Target::running(
            o.http.unwrap_or(80),
            o.https.unwrap_or(443),
            o.cacert.clone().unwrap_or_default(),
            o.pid,
        ),
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
    let quick = o.quick;
    let repeat = o.repeat.unwrap_or(if quick { 1 } else { 3 });
    let secs = o.duration.unwrap_or(if quick { 2.0 } else { 5.0 });
    let idle_n = o.idle.unwrap_or(if quick { 2000 } else { 10_000 });
    let names_n = o.names.unwrap_or(if quick { 100 } else { 200 });
    let wanted = |f: &str| match &o.only {
        Some(list) => list.iter().any(|x| x == f),
        None => f != "underload" || !quick,
    };

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
            idle_n + names_n + 200,
            &o.server_args,
            &[],
            o.server_certs.as_deref(),
        )?,
        None => Target::running(
            o.http.unwrap_or(80),
            o.https.unwrap_or(443),
            o.cacert.clone().unwrap_or_default(),
            o.pid,
        ),
    };
    let pinned = match (pin, t.pid) {
        (true, Some(pid)) => match sys::pin_process(pid, o.server_cpu) {
            Ok(n) => format!("server ({n} threads) on CPU {}, ", o.server_cpu),
            Err(e) => format!("server not pinned ({e}), "),
        },
        _ => "server not pinned, ".into(),
    };
    let pinned = if pin {
        format!("{pinned}client on CPU {}", o.client_cpu)
    } else {
        format!("{pinned}client not pinned ({cpus} CPUs)")
    };

    let verify = conn::verifying_connector(&t.cacert)?;
    let load = conn::load_connector(None)?;
    // Warm-up: every name the figures reuse gets its certificate made and checked now.
    let leaf = conn::describe(&verify, t.https, figures::HANDSHAKE_NAME)?;
    for n in figures::keepalive_names() {
        conn::visit(&verify, t.https, &n).map_err(|e| format!("warm-up {n}: {e}"))?;
    }
    let mut c = conn::plain(t.http)?;
    conn::exchange(&mut c, &conn::request("warmup.bench"))
        .map_err(|e| format!("HTTP warm-up: {e}"))?;
    drop(c);

    eprintln!(
        "target http {} https {} ({leaf}); {pinned}; RLIMIT_NOFILE {nofile}; repeat {repeat}",
        t.http, t.https
    );
    let mut rows = Vec::new();
    let reps = |f: &mut dyn FnMut() -> Sample| (0..repeat).map(|_| f()).collect::<Vec<_>>();
    let c = o.conns;
    if wanted("http") {
        eprintln!("http keep-alive...");
        let s = reps(&mut || figures::keepalive(&t, None, c, o.client_threads, secs));
        add(&mut rows, &format!("1. HTTP keep-alive, {c} conns"), s);
    }
    if wanted("https") {
        eprintln!("https keep-alive...");
        let s = reps(&mut || figures::keepalive(&t, Some(&load), c, o.client_threads, secs));
        add(&mut rows, &format!("2. HTTPS keep-alive, {c} conns"), s);
    }
    let hs = [
        ("full", Handshake::Full, "3. Full TLS handshake + GET"),
        (
            "resume12",
            Handshake::Resume12,
            "4. TLS 1.2 resumption + GET",
        ),
        (
            "resume13",
            Handshake::Resume13,
            "5. TLS 1.3 resumption + GET",
        ),
    ];
    for (key, mode, label) in hs {
        if wanted(key) {
            eprintln!("{key}...");
            let s = reps(&mut || figures::handshakes(&t, mode, o.threads, secs));
            add(&mut rows, &format!("{label}, {} clients", o.threads), s);
        }
    }
    // Idle figures run once: the server's heap keeps freed memory and hands it out again, so a
    // repeat on the same server shows ~0 kB per connection. Plain HTTP first for the same reason.
    if wanted("idle-http") {
        eprintln!("idle HTTP...");
        let s = vec![figures::idle(&t, None, idle_n)];
        add(&mut rows, &format!("6a. Idle HTTP keep-alive, {idle_n}"), s);
    }
    if wanted("idle") {
        eprintln!("idle TLS...");
        let s = vec![figures::idle(&t, Some(&load), idle_n)];
        add(&mut rows, &format!("6b. Idle TLS keep-alive, {idle_n}"), s);
    }
    if wanted("names") {
        eprintln!("new names...");
        let s = reps(&mut || figures::names(&t, &verify, names_n));
        add(&mut rows, "7. New-name certificates", s);
    }
    if wanted("underload") {
        eprintln!("under load...");
        let s = reps(&mut || figures::under_load(&t, &verify, &load, idle_n, names_n));
        add(
            &mut rows,
            &format!("8. Under load: {names_n} new names + {idle_n} idle TLS"),
            s,
        );
    }
    t.stop();
    println!(
        "{leaf}; {pinned}; duration {secs} s; repeat {repeat}; \
         load average at start {load_start}, at end {}\n",
        sys::loadavg()
    );
    print_table(&rows);
    Ok(())
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
