//! The Prometheus text exposition, written as IG's endpoint writes it so one Prometheus scraping
//! IG's hosts and ours stores one set of series, not two.
//!
//! IG v0.46.0 serves OpenTelemetry-Go's Prometheus exporter (v0.60.0) through client_golang's
//! `promhttp.Handler()` (text format 0.0.4, prometheus/common v0.66 `expfmt`). What that writes,
//! and what this module matches:
//! - every sample carries `otel_scope_name` (the `--otel-metrics-name`), `otel_scope_schema_url`
//!   and `otel_scope_version` (both empty: IG's meters have neither); labels sorted by name,
//!   `le` last on buckets;
//! - numbers (bucket bounds, counts, sums) as Go's `strconv.FormatFloat(f, 'g', -1, 64)`:
//!   `524288`, then `1.048576e+06` from 2^20 on; `+Inf`;
//! - `# HELP <name> <description>` (a trailing space when the description is empty), then
//!   `# TYPE`; families sorted by name, series in a family sorted by label values;
//! - histogram `_sum` as IG's replay of one `Record(2^k)` per counted value yields it;
//! - `target_info` (HELP `Target metadata`, a gauge of 1) with the process's resource
//!   attributes, dots escaped to `_`. Its values name this host (service `gadget`, SDK
//!   language `rust`) where IG's name `unknown_service:ig` and Go: it describes the process, and
//!   Prometheus joins it on `job`/`instance`.
//!
//! One instance cannot break the scrape of the others: a series whose metric name is invalid or
//! whose labels are reserved (`le`, `quantile`, `__*`, `otel_scope_*`), empty or repeated after
//! sanitizing, or whose family another instance exports with another type, is left out and
//! counted in [`SKIPPED_FAMILY`]. Names are also checked when instances start and guests
//! publish; this is the last line of defence.
//!
//! Not matched: IG's endpoint also carries the Go client's own families (`go_*`, `process_*`,
//! `promhttp_*`), which describe a Go runtime this host does not have.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::host::HostFamily;
use super::naming;
use super::{SCOPE_LABEL, ScopeSnapshot, histogram_sum};
use gadget_model::datasource::{FieldKind, Histogram, reserved_label};

pub const SCOPE_VERSION_LABEL: &str = "otel_scope_version";
pub const SCOPE_SCHEMA_LABEL: &str = "otel_scope_schema_url";
const TARGET_INFO: &str = "target_info";
const TARGET_INFO_HELP: &str = "Target metadata";
/// The host's own count of series it left out of scrapes, by reason.
pub const SKIPPED_FAMILY: &str = "gadget_metrics_series_skipped_total";

/// Why a series was left out of a scrape (the label `reason` of [`SKIPPED_FAMILY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// The metric name is empty or invalid after sanitizing.
    BadName,
    /// A label name is reserved, empty, or appears twice after sanitizing.
    BadLabel,
    /// Another instance exports the same name with another type.
    TypeConflict,
}

impl Skip {
    fn as_str(self) -> &'static str {
        match self {
            Skip::BadName => "bad_name",
            Skip::BadLabel => "bad_label",
            Skip::TypeConflict => "type_conflict",
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, and not one of the host's own families.
fn valid_metric_name(name: &str) -> bool {
    if super::host::is_host_family(name) {
        return false;
    }
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && name != SKIPPED_FAMILY
        && name != TARGET_INFO
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` as expfmt's `writeFloat` uses it: the shortest
/// digits that round-trip, in `%e` form when the decimal exponent is below -4 or at least 6
/// (Go uses precision 6 for that choice in shortest mode), with a two-digit signed exponent.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        // expfmt's writeFloat prints any zero as `0`.
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `d[.ddd]e<exp>`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    // Plain decimal: the point sits after `exp + 1` digits.
    let point = exp + 1;
    let s = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{s}")
}

/// A label value escaped as expfmt does (`\`, `"`, newline).
fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text escaped as expfmt does (`\` and newline).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

struct Series {
    labels: Vec<(String, String)>,
    lines: Vec<String>,
}

struct Family {
    name: String,
    help: String,
    ty: &'static str,
    series: Vec<Series>,
}

fn label_text(labels: &[(String, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// A series' labels: the sample's own, then the scope labels (always the host's), sorted by
/// name (client_golang's `MakeLabelPairs`). Checked after sanitizing: a reserved, empty or
/// repeated name cannot be encoded without breaking the scrape.
fn series_labels(own: &[(String, String)], scope: &str) -> Result<Vec<(String, String)>, Skip> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(own.len() + 3);
    for (k, v) in own {
        if reserved_label(k).is_some() {
            return Err(Skip::BadLabel);
        }
        out.push((naming::label_name(k), v.clone()));
    }
    out.push((SCOPE_LABEL.into(), scope.into()));
    out.push((SCOPE_SCHEMA_LABEL.into(), String::new()));
    out.push((SCOPE_VERSION_LABEL.into(), String::new()));
    out.sort();
    if out.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(Skip::BadLabel);
    }
    Ok(out)
}

fn histogram_lines(name: &str, labels: &[(String, String)], h: &Histogram) -> Vec<String> {
    let mut lines = Vec::with_capacity(h.counts.len() + 3);
    let mut cumulative = 0u64;
    for (c, ub) in h.counts.iter().zip(&h.upper_bounds) {
        cumulative = cumulative.saturating_add(*c);
        lines.push(format!(
            "{name}_bucket{} {}",
            label_text(labels, Some(("le", go_float(*ub as f64)))),
            go_float(cumulative as f64)
        ));
    }
    let plain = label_text(labels, None);
    lines.push(format!(
        "{name}_bucket{} {}",
        label_text(labels, Some(("le", "+Inf".into()))),
        go_float(cumulative as f64)
    ));
    lines.push(format!("{name}_sum{plain} {}", go_float(histogram_sum(h))));
    lines.push(format!(
        "{name}_count{plain} {}",
        go_float(cumulative as f64)
    ));
    lines
}

/// The resource attributes of this process, as `target_info` labels.
fn target_info_labels() -> Vec<(String, String)> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("gadget")
        .build();
    let mut labels: Vec<(String, String)> = resource
        .iter()
        .map(|(k, v)| (naming::label_name(k.as_str()), v.to_string()))
        .collect();
    labels.sort();
    labels
}

/// The whole exposition of `scopes`, the host's own families and `target_info`; series left out
/// are added to `skipped` (the totals since the endpoint started), which is exposed as
/// [`SKIPPED_FAMILY`].
pub fn render(
    scopes: &[ScopeSnapshot],
    host: Vec<HostFamily>,
    skipped: &mut BTreeMap<Skip, u64>,
) -> String {
    let mut families: Vec<Family> = host
        .into_iter()
        .map(|(name, ty, help, series)| Family {
            name: name.to_string(),
            help: help.to_string(),
            ty,
            series: series
                .into_iter()
                .map(|(labels, value)| Series {
                    lines: vec![format!(
                        "{name}{} {}",
                        label_text(&labels, None),
                        go_float(value)
                    )],
                    labels,
                })
                .collect(),
        })
        .collect();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut skip = |why: Skip| *skipped.entry(why).or_default() += 1;
    let mut add = |name: String,
                   help: String,
                   ty: &'static str,
                   series: Result<Series, Skip>|
     -> Result<(), Skip> {
        let series = series?;
        if !valid_metric_name(&name) {
            return Err(Skip::BadName);
        }
        match index.get(&name) {
            // The first type seen wins; the other instance's series are counted, not logged
            // on every scrape.
            Some(&i) if families[i].ty != ty => return Err(Skip::TypeConflict),
            Some(&i) => families[i].series.push(series),
            None => {
                index.insert(name.clone(), families.len());
                families.push(Family {
                    name,
                    help,
                    ty,
                    series: vec![series],
                });
            }
        }
        Ok(())
    };
    for s in scopes {
        let ds = &s.datasource;
        for h in &s.publication.histograms {
            let spec = ds.field(&h.field);
            let unit = spec.map(|f| f.unit.as_str()).unwrap_or("");
            let help = spec.map(|f| f.description.clone()).unwrap_or_default();
            let name = naming::metric_name(&h.field, unit, FieldKind::Histogram);
            let series = series_labels(&h.labels, &s.scope).map(|labels| Series {
                lines: histogram_lines(&name, &labels, h),
                labels,
            });
            if let Err(why) = add(name, help, "histogram", series) {
                skip(why);
            }
        }
        for sample in &s.publication.samples {
            let spec = ds.field(&sample.field);
            let kind = match spec.map(|f| f.kind).unwrap_or(FieldKind::Gauge) {
                FieldKind::Key => continue,
                FieldKind::Counter => FieldKind::Counter,
                _ => FieldKind::Gauge,
            };
            let unit = spec.map(|f| f.unit.as_str()).unwrap_or("");
            let help = spec.map(|f| f.description.clone()).unwrap_or_default();
            let name = naming::metric_name(&sample.field, unit, kind);
            let series = series_labels(&sample.labels, &s.scope).map(|labels| Series {
                lines: vec![format!(
                    "{name}{} {}",
                    label_text(&labels, None),
                    go_float(sample.value)
                )],
                labels,
            });
            let ty = if kind == FieldKind::Counter {
                "counter"
            } else {
                "gauge"
            };
            if let Err(why) = add(name, help, ty, series) {
                skip(why);
            }
        }
    }
    if !skipped.is_empty() {
        families.push(Family {
            name: SKIPPED_FAMILY.into(),
            help: "Series left out of scrapes because they cannot be encoded, by reason".into(),
            ty: "counter",
            series: skipped
                .iter()
                .map(|(why, n)| {
                    let labels = vec![("reason".to_string(), why.as_str().to_string())];
                    Series {
                        lines: vec![format!(
                            "{SKIPPED_FAMILY}{} {}",
                            label_text(&labels, None),
                            go_float(*n as f64)
                        )],
                        labels,
                    }
                })
                .collect(),
        });
    }
    let info = target_info_labels();
    families.push(Family {
        name: TARGET_INFO.into(),
        help: TARGET_INFO_HELP.into(),
        ty: "gauge",
        series: vec![Series {
            lines: vec![format!("{TARGET_INFO}{} 1", label_text(&info, None))],
            labels: info,
        }],
    });
    families.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for mut f in families {
        f.series.sort_by(|a, b| {
            let va = a.labels.iter().map(|(_, v)| v);
            let vb = b.labels.iter().map(|(_, v)| v);
            va.cmp(vb)
        });
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.ty);
        for s in &f.series {
            for l in &s.lines {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_go_formats_them() {
        // strconv.FormatFloat(f, 'g', -1, 64) for the values a log2 histogram produces.
        for (f, go) in [
            (1.0, "1"),
            (2.0, "2"),
            (524288.0, "524288"),
            (1048576.0, "1.048576e+06"),
            (67108864.0, "6.7108864e+07"),
            (1e6, "1e+06"),
            (999999.0, "999999"),
            (1234567.0, "1.234567e+06"),
            (0.5, "0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123.25, "123.25"),
            (-3.0, "-3"),
            (1e21, "1e+21"),
            (0.0, "0"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(go_float(f), go, "{f}");
        }
    }

    #[test]
    fn labels_are_sorted_with_the_scope_labels() {
        let l = series_labels(&[("node".into(), "a".into())], "blockio-metrics").unwrap();
        let names: Vec<&str> = l.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "node",
                "otel_scope_name",
                "otel_scope_schema_url",
                "otel_scope_version"
            ]
        );
    }

    /// IG's exposition for known counts (slot 1: 2, slot 2: 3, slot 20: 1), line by line, as
    /// OpenTelemetry-Go's exporter v0.60.0 and expfmt write it: Go float formatting, empty
    /// HELP with its trailing space, the three scope labels, `le` last.
    #[test]
    fn igs_exposition_for_known_counts_line_by_line() {
        let mut counts = vec![0u64; 27];
        counts[1] = 2;
        counts[2] = 3;
        counts[20] = 1;
        let scope =
            super::super::latency_scope(vec![], (0..27).map(|k| 1u64 << k).collect(), counts);
        let text = render(&[scope], Vec::new(), &mut BTreeMap::new());
        let expected = [
            "# HELP latency__s ",
            "# TYPE latency__s histogram",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"1\"} 0",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"2\"} 2",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"4\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"8\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"16\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"32\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"64\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"128\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"256\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"512\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"1024\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"2048\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"4096\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"8192\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"16384\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"32768\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"65536\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"131072\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"262144\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"524288\"} 5",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"1.048576e+06\"} 6",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"2.097152e+06\"} 6",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"4.194304e+06\"} 6",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"8.388608e+06\"} 6",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"1.6777216e+07\"} 6",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"3.3554432e+07\"} 6",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"6.7108864e+07\"} 6",
            "latency__s_bucket{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"+Inf\"} 6",
            "latency__s_sum{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\"} 1.048592e+06",
            "latency__s_count{otel_scope_name=\"blockio-metrics\",otel_scope_schema_url=\"\",otel_scope_version=\"\"} 6",
            "# HELP target_info Target metadata",
            "# TYPE target_info gauge",
        ];
        let got: Vec<&str> = text.lines().collect();
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(got.get(i).copied(), Some(*want), "line {i} of:\n{text}");
        }
        let info = got[expected.len()];
        assert!(
            info.starts_with(
                "target_info{service_name=\"gadget\",telemetry_sdk_language=\"rust\","
            ),
            "{info}"
        );
        assert!(info.ends_with("} 1"), "{info}");
        assert_eq!(got.len(), expected.len() + 1, "{text}");
    }
}
