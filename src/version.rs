//! The version string (COMPATIBILITY.md §11.1): the layout tools parse, with our version and
//! build time.

/// Build time in C `__DATE__ __TIME__` layout, from build.rs (SOURCE_DATE_EPOCH or now, UTC).
const BUILD_STAMP: &str = env!("PIXELSERV_BUILD_STAMP");

/// `pixelserv-tls <version> (compiled: <Mmm dd yyyy> <hh:mm:ss> flags: tfo tls1_3)`
pub fn version_line() -> String {
    format!(
        "pixelserv-tls {} (compiled: {} flags: tfo tls1_3)",
        env!("CARGO_PKG_VERSION"),
        BUILD_STAMP
    )
}

/// The full version string: `args_display` is `Config::args_display` (" <none>" or each
/// argument preceded by a space).
pub fn version_string(args_display: &str) -> String {
    format!("{} options:{}", version_line(), args_display)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];

    /// Inverse of build.rs's civil_from_days, to check the stamp against the epoch.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    #[test]
    fn days_from_civil_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2021, 7, 6), 18_814);
    }

    #[test]
    fn stamp_has_c_date_layout_and_matches_build_epoch() {
        let s = BUILD_STAMP;
        assert_eq!(s.len(), 20, "{s:?}");
        let b = s.as_bytes();
        assert_eq!(
            (b[3], b[6], b[11], b[14], b[17]),
            (b' ', b' ', b' ', b':', b':')
        );
        let month = MONTHS.iter().position(|m| *m == &s[..3]).expect("month") as i64 + 1;
        let day: i64 = s[4..6].trim_start().parse().expect("day");
        assert!(
            s[4..6].starts_with(' ') == (day < 10),
            "day padding in {s:?}"
        );
        let year: i64 = s[7..11].parse().expect("year");
        let hh: i64 = s[12..14].parse().expect("hh");
        let mm: i64 = s[15..17].parse().expect("mm");
        let ss: i64 = s[18..20].parse().expect("ss");
        let epoch: i64 = env!("PIXELSERV_BUILD_EPOCH").parse().expect("epoch");
        let back = days_from_civil(year, month, day) * 86_400 + hh * 3600 + mm * 60 + ss;
        assert_eq!(back, epoch, "{s:?}");
    }

    #[test]
    fn version_layout() {
        let line = version_line();
        assert!(line.starts_with(concat!(
            "pixelserv-tls ",
            env!("CARGO_PKG_VERSION"),
            " (compiled: "
        )));
        assert!(line.ends_with(" flags: tfo tls1_3)"));
        assert_eq!(
            version_string(" -f -l 5"),
            format!("{line} options: -f -l 5")
        );
        assert_eq!(version_string(" <none>"), format!("{line} options: <none>"));
    }
}
