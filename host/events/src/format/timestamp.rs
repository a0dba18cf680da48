//! `gadget_timestamp` (ns since boot, from `bpf_ktime_get_boot_ns`) → wall clock, as IG does.
//!
//! IG (formatters.go "timestamp", pkg/gadgets/helpers.go `WallTimeFromBootTime`): the raw field is
//! rewritten in place to wall-clock ns (boot time + the boot→wall offset measured once at start),
//! a raw 0 becomes "now", and the derived string uses Go's layout
//! `2006-01-02T15:04:05.000000000Z07:00` in the local zone (`Z` for UTC), or the Go layout in the
//! source field's `formatters.timestamp.format` annotation ([`super::go_layout`]). The caller
//! measures the offset (CLOCK_REALTIME − CLOCK_BOOTTIME) and knows the zone's UTC offset: this
//! module has no clock.

/// Clock facts the caller supplies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WallClock {
    /// CLOCK_REALTIME − CLOCK_BOOTTIME in ns, measured once (IG's `timeDiff`).
    pub boot_to_wall_ns: i64,
    /// Wall-clock ns used for a raw 0 (IG: `time.Now()`); the caller refreshes it per batch.
    pub now_wall_ns: i64,
    /// Offset of the local zone from UTC in seconds (0 = UTC, printed `Z`).
    pub utc_offset_secs: i32,
}

impl WallClock {
    /// IG's `WallTimeFromBootTime`.
    pub fn wall_ns(&self, boot_ns: u64) -> i64 {
        if boot_ns == 0 {
            return self.now_wall_ns;
        }
        (boot_ns as i64).wrapping_add(self.boot_to_wall_ns)
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
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

/// IG's default layout.
pub const DEFAULT_LAYOUT: &str = "2006-01-02T15:04:05.000000000Z07:00";

/// Formats wall-clock ns with Go's `2006-01-02T15:04:05.000000000Z07:00`.
pub fn format_wall_ns(wall_ns: i64, utc_offset_secs: i32) -> String {
    format_wall_ns_layout(wall_ns, utc_offset_secs, DEFAULT_LAYOUT)
}

/// Formats wall-clock ns with a Go layout.
pub fn format_wall_ns_layout(wall_ns: i64, utc_offset_secs: i32, layout: &str) -> String {
    let local = i128::from(wall_ns) + i128::from(utc_offset_secs) * 1_000_000_000;
    let secs = local.div_euclid(1_000_000_000) as i64;
    let nanos = local.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let yday = (days - days_from_civil(year, 1, 1) + 1) as u32;
    let sod = secs.rem_euclid(86_400);
    let civil = super::go_layout::Civil {
        year,
        month,
        day,
        yday,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
        hour: sod / 3600,
        minute: (sod % 3600) / 60,
        second: sod % 60,
        nanos,
        offset_secs: utc_offset_secs,
    };
    super::go_layout::format(layout, &civil)
}

/// (year, month, day) → days since 1970-01-01 (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layout() {
        assert_eq!(format_wall_ns(0, 0), "1970-01-01T00:00:00.000000000Z");
        // `date -u -d @1671447636.499110634` = 2022-12-19T11:00:36 UTC (IG's helpers.go example is
        // the same instant printed at +01:00).
        assert_eq!(
            format_wall_ns(1_671_447_636_499_110_634, 3600),
            "2022-12-19T12:00:36.499110634+01:00"
        );
        assert_eq!(
            format_wall_ns(1_671_447_636_499_110_634, 0),
            "2022-12-19T11:00:36.499110634Z"
        );
        assert_eq!(
            format_wall_ns(951_782_400_000_000_001, -5 * 3600 - 1800),
            "2000-02-28T18:30:00.000000001-05:30"
        );
        assert_eq!(format_wall_ns(-1, 0), "1969-12-31T23:59:59.999999999Z");
    }

    // The layouts of IG v0.46.0 pkg/operators/formatters/formatters_test.go ("timestamp" cases),
    // expected strings from GNU date for the same instants.
    #[test]
    fn custom_go_layouts() {
        // `date -u -d @1700000000`: Tue Nov 14 22:13:20 UTC 2023.
        let t = 1_700_000_000_123_456_789;
        assert_eq!(
            format_wall_ns_layout(t, 0, "02-01-2006 15:04:05"),
            "14-11-2023 22:13:20"
        );
        assert_eq!(format_wall_ns_layout(t, 0, "03:04:05 PM"), "10:13:20 PM");
        assert_eq!(
            format_wall_ns_layout(t, 0, "Monday, January 2, 2006 at 15:04:05 MST"),
            "Tuesday, November 14, 2023 at 22:13:20 UTC"
        );
        assert_eq!(
            format_wall_ns_layout(t, 0, "20060102_150405"),
            "20231114_221320"
        );
        assert_eq!(
            format_wall_ns_layout(t, 3600, "Jan _2 3:4:5.000 -0700 Mon 002 .999"),
            "Nov 14 11:13:20.123 +0100 Tue 318 .123"
        );
        assert_eq!(
            format_wall_ns_layout(1_700_000_000_000_000_000, 0, "05.999|Z07"),
            "20|Z"
        );
        assert_eq!(
            format_wall_ns_layout(t, 0, DEFAULT_LAYOUT),
            "2023-11-14T22:13:20.123456789Z"
        );
    }

    #[test]
    fn boot_to_wall() {
        let c = WallClock {
            boot_to_wall_ns: 1_000,
            now_wall_ns: 42,
            utc_offset_secs: 0,
        };
        assert_eq!(c.wall_ns(5), 1_005);
        assert_eq!(c.wall_ns(0), 42);
    }
}
