//! Calendar formatting of Unix milliseconds, without a date crate: UTC, and local time with the
//! UTC offset the C library gives for that instant (the `TZ` of the backend's environment,
//! which it inherits from Neovim, else the system's zone; daylight saving time included).

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: u64) -> String {
    let (date, time) = date_time(ms, 0);
    format!("{date} {time} UTC")
}

/// `YYYY-MM-DD HH:MM:SS +HH:MM`: local time, with the offset in force at that instant.
pub fn local(ms: u64) -> String {
    at_offset(ms, local_offset_secs(ms))
}

/// `HH:MM:SS` local time, and whether `ms` falls on the same local date and offset as `since`
/// (then the date and offset `local(since)` printed also hold for it).
pub fn local_time_since(ms: u64, since: u64) -> (String, bool) {
    let off = local_offset_secs(ms);
    let (date, time) = date_time(ms, off);
    let same = off == local_offset_secs(since) && date == date_time(since, off).0;
    (time, same)
}

/// `local` at a given offset east of UTC, in seconds.
pub fn at_offset(ms: u64, offset_secs: i64) -> String {
    let (date, time) = date_time(ms, offset_secs);
    let sign = if offset_secs < 0 { '-' } else { '+' };
    let abs = offset_secs.unsigned_abs();
    format!(
        "{date} {time} {sign}{:02}:{:02}",
        abs / 3600,
        (abs / 60) % 60
    )
}

/// The date and the time of day of `ms` at `offset_secs` east of UTC.
fn date_time(ms: u64, offset_secs: i64) -> (String, String) {
    let secs = (ms / 1000) as i64 + offset_secs;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, (rem / 60) % 60, rem % 60),
    )
}

/// The local zone's offset east of UTC at `ms`, in seconds (0 when the C library cannot say).
pub fn local_offset_secs(ms: u64) -> i64 {
    use nix::libc;
    let t = (ms / 1000) as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills; both pointers are valid for the call.
    // tzset first: localtime_r need not read TZ again, and a test changes it.
    unsafe {
        tzset();
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        #[allow(clippy::useless_conversion)] // c_long is i32 on 32-bit targets.
        i64::from(tm.tm_gmtoff)
    }
}

extern "C" {
    /// POSIX; not in every libc crate target's bindings.
    fn tzset();
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `42.1s`, `3m 05s`, `1h 02m`.
pub fn duration(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_000_000_123), "2026-11-18 11:06:40 UTC");
    }

    #[test]
    fn formats_offsets_across_midnight_and_half_hours() {
        assert_eq!(at_offset(0, 0), "1970-01-01 00:00:00 +00:00");
        assert_eq!(
            at_offset(1_795_000_000_123, 5 * 3600 + 1800),
            "2026-11-18 16:36:40 +05:30"
        );
        // West of UTC, the day before.
        assert_eq!(
            at_offset(951_782_400_000, -5 * 3600),
            "2000-02-28 19:00:00 -05:00"
        );
        assert_eq!(
            at_offset(951_782_400_000, -(9 * 3600 + 1800)),
            "2000-02-28 14:30:00 -09:30"
        );
    }

    #[test]
    fn formats_durations() {
        assert_eq!(duration(42_100), "42.1s");
        assert_eq!(duration(185_000), "3m 05s");
        assert_eq!(duration(3_720_000), "1h 02m");
    }

    /// The offset comes from the C library for each instant: a zone's summer and winter offsets
    /// differ. TZ is the process's, so this runs in a child process of its own (the test binary
    /// again, this test alone) with POSIX TZ rules that need no zone files.
    #[test]
    fn local_offsets_follow_tz_and_daylight_saving() {
        const CHILD: &str = "CLAUDE_TASKS_TIMEFMT_CHILD";
        if std::env::var_os(CHILD).is_some() {
            // 2026-01-15 and 2026-07-15, 12:00 UTC.
            let (winter, summer) = (1_768_478_400_000, 1_784_116_800_000);
            let tz = std::env::var("TZ").unwrap_or_default();
            match tz.as_str() {
                "EST5EDT,M3.2.0,M11.1.0" => {
                    assert_eq!(local(winter), "2026-01-15 07:00:00 -05:00");
                    assert_eq!(local(summer), "2026-07-15 08:00:00 -04:00");
                    // Same local date, another offset: the date must be printed again.
                    assert!(!local_time_since(summer, winter).1);
                    assert_eq!(
                        local_time_since(winter + 60_000, winter),
                        ("07:01:00".to_string(), true)
                    );
                }
                "IST-5:30" => {
                    assert_eq!(local(winter), "2026-01-15 17:30:00 +05:30");
                    assert_eq!(local(summer), "2026-07-15 17:30:00 +05:30");
                }
                "UTC0" => assert_eq!(local(winter), "2026-01-15 12:00:00 +00:00"),
                other => panic!("unexpected TZ {other:?}"),
            }
            return;
        }
        let exe = std::env::current_exe().expect("the test binary");
        for tz in ["EST5EDT,M3.2.0,M11.1.0", "IST-5:30", "UTC0"] {
            let out = std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "timefmt::tests::local_offsets_follow_tz_and_daylight_saving",
                    "--test-threads=1",
                ])
                .env(CHILD, "1")
                .env("TZ", tz)
                .output()
                .expect("run the test binary");
            assert!(
                out.status.success(),
                "TZ={tz}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "TZ={tz}: the child ran no test"
            );
        }
    }
}
