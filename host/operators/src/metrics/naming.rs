//! Prometheus names as IG's exporter (the OpenTelemetry Go Prometheus exporter) builds them from
//! an instrument's name and unit, so dashboards written against IG work unchanged:
//! `latency` with unit `µs` becomes `latency__s` (unit appended, `µ` not a valid name character).

use gadget_model::datasource::FieldKind;

/// Units the exporter spells out as words (UCUM → Prometheus conventions).
const UNIT_WORDS: &[(&str, &str)] = &[
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("%", "percent"),
];

/// Replaces every character outside `[a-zA-Z0-9_:]` by `_` (one per character, as Go does per
/// rune), and prefixes `_` if the result would start with a digit.
pub fn sanitize(name: &str) -> String {
    gadget_model::datasource::prometheus_name(name, true)
}

/// Label names allow no `:`; the data model owns the rule so guests are checked against it.
pub use gadget_model::datasource::label_name;

/// The metric family name for a field: name, unit suffix, and `_total` for counters.
pub fn metric_name(field: &str, unit: &str, kind: FieldKind) -> String {
    let mut name = sanitize(field);
    // Annotation-style units in braces ("{requests}") carry no dimension: dropped.
    let unit = unit.trim();
    let suffix = if unit.is_empty() || (unit.starts_with('{') && unit.ends_with('}')) {
        None
    } else if unit == "1" {
        (kind == FieldKind::Gauge).then(|| "ratio".to_string())
    } else {
        Some(
            UNIT_WORDS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, w)| w.to_string())
                .unwrap_or_else(|| sanitize(unit)),
        )
    };
    if let Some(s) = suffix
        && !name.ends_with(&format!("_{s}"))
    {
        name.push('_');
        name.push_str(&s);
    }
    if kind == FieldKind::Counter && !name.ends_with("_total") {
        name.push_str("_total");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn igs_latency_name() {
        assert_eq!(
            metric_name("latency", "µs", FieldKind::Histogram),
            "latency__s"
        );
    }

    #[test]
    fn known_units_counters_and_sanitizing() {
        assert_eq!(
            metric_name("io", "By", FieldKind::Counter),
            "io_bytes_total"
        );
        assert_eq!(
            metric_name("duration_seconds", "s", FieldKind::Histogram),
            "duration_seconds"
        );
        assert_eq!(
            metric_name("reqs", "{requests}", FieldKind::Counter),
            "reqs_total"
        );
        assert_eq!(metric_name("util", "1", FieldKind::Gauge), "util_ratio");
        assert_eq!(metric_name("9lives.x", "", FieldKind::Gauge), "_9lives_x");
        assert_eq!(label_name("a:b-c"), "a_b_c");
    }
}
