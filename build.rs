//! Build-time values: the compile stamp of the version string (COMPATIBILITY.md §11.1) and
//! the default CERT_PATH (Entware builds set PIXELSERV_DEFAULT_CERT_PATH=/opt/var/cache/pixelserv).

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic Gregorian
/// (H. Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, usize, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as usize, day)
}

/// C `__DATE__ __TIME__` layout in UTC: `Jul  6 2021 03:51:43`.
fn stamp(secs: i64) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    format!(
        "{} {:>2} {} {:02}:{:02}:{:02}",
        MONTHS[month - 1],
        day,
        year,
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

fn one_line(name: &str, value: String) -> String {
    if value.contains(['\n', '\r']) {
        panic!("{name} must be a single line");
    }
    value
}

/// The server makes certificates on worker threads while the loop runs handshakes, so the
/// OpenSSL it links must have been configured with threads. One that was not (OpenSSL's
/// Configure turns threads off when it sees `-static`: issue 22, see xc/openssl-perl) has no
/// locks and one error queue and DRBG for all threads, and corrupts its heap under load.
/// `DEP_OPENSSL_INCLUDE` comes from openssl-sys; a system OpenSSL keeps its configuration.h
/// in a multiarch directory that is not checked here (distributions build with threads).
fn require_threaded_openssl() {
    println!("cargo:rerun-if-env-changed=DEP_OPENSSL_INCLUDE");
    let Some(inc) = std::env::var_os("DEP_OPENSSL_INCLUDE") else {
        return;
    };
    let conf = std::path::Path::new(&inc).join("openssl/configuration.h");
    let Ok(text) = std::fs::read_to_string(&conf) else {
        return;
    };
    let threaded = text
        .lines()
        .any(|l| l.trim_start_matches(['#', ' ']).trim() == "define OPENSSL_THREADS");
    if !threaded {
        panic!(
            "{} has no OPENSSL_THREADS: this OpenSSL was configured without threads \
             (a -static in its Configure flags?); the server would corrupt its heap",
            conf.display()
        );
    }
}

fn main() {
    require_threaded_openssl();
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-env-changed=PIXELSERV_DEFAULT_CERT_PATH");
    println!("cargo:rerun-if-changed=build.rs");
    // A fresh stamp whenever the sources change, as __DATE__/__TIME__ would give.
    println!("cargo:rerun-if-changed=src");

    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<i64>()
            .unwrap_or_else(|_| panic!("SOURCE_DATE_EPOCH is not an integer: {v:?}")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    println!("cargo:rustc-env=PIXELSERV_BUILD_EPOCH={secs}");
    println!("cargo:rustc-env=PIXELSERV_BUILD_STAMP={}", stamp(secs));

    let cert_path = std::env::var("PIXELSERV_DEFAULT_CERT_PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/var/cache/pixelserv".to_string());
    println!(
        "cargo:rustc-env=PIXELSERV_DEFAULT_CERT_PATH={}",
        one_line("PIXELSERV_DEFAULT_CERT_PATH", cert_path)
    );
}
