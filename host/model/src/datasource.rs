//! The data model between guests and operators: datasources (declared by the guest) and what is
//! published to them. Operators choose datasources by annotations, as in IG.

use serde::{Deserialize, Serialize};

/// How operators should treat a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldKind {
    Key,
    Counter,
    Gauge,
    Histogram,
    Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSpec {
    pub name: String,
    pub kind: FieldKind,
    pub unit: String,
    pub description: String,
    pub annotations: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasourceSpec {
    pub name: String,
    pub fields: Vec<FieldSpec>,
    pub annotations: Vec<(String, String)>,
}

impl DatasourceSpec {
    /// An annotation's value; later entries override earlier ones.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean annotation; anything but "true" is false, which the guest validated already.
    pub fn flag(&self, key: &str) -> bool {
        self.annotation(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A histogram's cumulative state; bucket i covers [upper_bounds[i-1], upper_bounds[i]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub field: String,
    pub labels: Vec<(String, String)>,
    pub upper_bounds: Vec<u64>,
    pub counts: Vec<u64>,
    pub sum: Option<f64>,
}

impl Histogram {
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub field: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// One datasource's state after a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub datasource: usize,
    pub histograms: Vec<Histogram>,
    pub samples: Vec<Sample>,
}

/// A label key as Prometheus will see it: every character outside `[a-zA-Z0-9_]` becomes `_`
/// (one per character, as IG's Go exporter does per rune), and a leading digit gets a `_` prefix.
pub fn label_name(key: &str) -> String {
    prometheus_name(key, false)
}

/// A name with every character outside `[a-zA-Z0-9_]` (and `:` if `colon`, for metric names)
/// replaced by `_`, and a `_` in front of a leading digit.
pub fn prometheus_name(name: &str, colon: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Why a label key cannot be used, if it cannot: one series with such a label would break the
/// scrape of every instance on the endpoint (`le` twice marks the whole target down; an empty
/// name fails the encoder), or impersonate the host's own labels.
pub fn reserved_label(key: &str) -> Option<&'static str> {
    let name = label_name(key);
    if name.is_empty() {
        Some("label names must not be empty")
    } else if name == "le" || name == "quantile" {
        Some("`le` and `quantile` are Prometheus's own labels of histograms and summaries")
    } else if name.starts_with("__") {
        Some("names starting with `__` are reserved for Prometheus's internal use")
    } else if name.starts_with("otel_scope_") {
        Some("`otel_scope_*` labels are the host's (the scope is the metrics name)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_labels_are_caught_after_sanitizing() {
        for bad in [
            "",
            "le",
            "quantile",
            "__name__",
            "__x",
            "otel-scope-name",
            "otel_scope_version",
            "_.x",
        ] {
            assert!(reserved_label(bad).is_some(), "{bad:?}");
        }
        for ok in ["node", "disk", "lE", "l.e", "1le", "k8s.podName"] {
            assert!(reserved_label(ok).is_none(), "{ok:?}");
        }
        assert_eq!(label_name("k8s.pod-name"), "k8s_pod_name");
        assert_eq!(label_name("9x"), "_9x");
    }
}
