//! `gadget_bytes` and `gadget_duration` as IG renders them (formatters.go "bytes" and "duration",
//! both for `u64` fields only): bytes with go-humanize's `Bytes` (SI units, base 1000:
//! `512 B`, `1.0 MB`, `256 MB`), durations with IG's `formatDuration` (`10ns`, `10.00µs`,
//! `150.00ms`, then Go's `time.Duration.String`: `3.25s`, `5m0s`, `2h30m0s`).

/// go-humanize `Bytes(s)`.
pub fn bytes_string(s: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if s < 10 {
        return format!("{s} B");
    }
    let f = s as f64;
    let e = (f.ln() / 1000f64.ln()).floor();
    let suffix = SIZES[(e as usize).min(SIZES.len() - 1)];
    let val = (f / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

/// IG's `formatDuration(time.Duration(v))`; IG converts the u64 to Go's signed Duration.
pub fn duration_string(v: u64) -> String {
    let d = v as i64;
    if d < 1_000 {
        format!("{d}ns")
    } else if d < 1_000_000 {
        format!("{:.2}µs", d as f64 / 1e3)
    } else if d < 1_000_000_000 {
        format!("{:.2}ms", d as f64 / 1e6)
    } else {
        go_duration(d.unsigned_abs())
    }
}

/// Go's `Duration.String` for durations of at least one second.
fn go_duration(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h{m}m"));
    } else if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&s.to_string());
    if frac > 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings from IG v0.46.0 pkg/operators/formatters/formatters_test.go ("bytes" and
    // "duration" cases).
    #[test]
    fn bytes_match_ig() {
        assert_eq!(bytes_string(1_000_000), "1.0 MB");
        assert_eq!(bytes_string(1_000_000_000), "1.0 GB");
        assert_eq!(bytes_string(512), "512 B");
        assert_eq!(bytes_string(5_000_000_000_000), "5.0 TB");
        assert_eq!(bytes_string(256_000_000), "256 MB");
        assert_eq!(bytes_string(7), "7 B");
        assert_eq!(bytes_string(u64::MAX), "18 EB");
    }

    #[test]
    fn durations_match_ig() {
        assert_eq!(duration_string(3_250_000_000), "3.25s");
        assert_eq!(duration_string(300_000_000_000), "5m0s");
        assert_eq!(duration_string(150_000_000), "150.00ms");
        assert_eq!(duration_string(9_000_000_000_000), "2h30m0s");
        assert_eq!(duration_string(10_000), "10.00µs");
        assert_eq!(duration_string(10), "10ns");
        assert_eq!(duration_string(3_600_000_000_001), "1h0m0.000000001s");
    }
}
