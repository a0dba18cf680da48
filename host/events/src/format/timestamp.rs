//! `gadget_timestamp` (ns since boot, from `bpf_ktime_get_boot_ns`) → wall clock, as IG does.
//!
//! IG (formatters.go "timestamp", pkg/gadgets/helpers.go `WallTimeFromBootTime`): the raw field is
//! rewritten in place to wall-clock ns (boot time + the boot→wall offset measured once at start),
//! a raw 0 becomes "now", and the derived string uses Go's layout
//! `2006-01-02T15:04:05.000000000Z07:00` in the local zone (`Z` for UTC). The caller measures the
//! offset (CLOCK_REALTIME − CLOCK_BOOTTIME) and knows the zone's UTC offset: this module has no
//! clock. A custom `formatters.timestamp.format` (a Go layout) is not supported yet: such fields
//! keep this default layout.

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

/// Formats wall-clock ns with Go's `2006-01-02T15:04:05.000000000Z07:00`.
pub fn format_wall_ns(wall_ns: i64, utc_offset_secs: i32) -> String {
    let local = i128::from(wall_ns) + i128::from(utc_offset_secs) * 1_000_000_000;
    let secs = local.div_euclid(1_000_000_000) as i64;
    let nanos = local.rem_euclid(1_000_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let zone = if utc_offset_secs == 0 {
        "Z".to_string()
    } else {
        let sign = if utc_offset_secs < 0 { '-' } else { '+' };
        let a = utc_offset_secs.unsigned_abs();
        format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{nanos:09}{zone}")
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
