//! The metrics operator (IG's otel-metrics): datasources annotated `metrics.collect=true` and
//! named with `--otel-metrics-name <ds>:<name>` are exported; the name is the instrumentation
//! scope, which Prometheus shows as the label `otel_scope_name`.
//!
//! Histograms from the eBPF log2 maps are exposed exactly as the kernel counted them (cumulative
//! buckets, `le` = each bucket's upper bound), O(buckets) per scrape, instead of IG's replay of
//! one `Record` per I/O. The text exposition is written as IG's Go exporter writes it
//! ([`exposition`]); a series that cannot be encoded is left out and counted, never allowed to
//! fail the scrape of every instance on the endpoint.

pub mod exposition;
pub mod host;
pub mod naming;
pub mod otlp;
pub mod server;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::env::ENV_VAR_ANNOTATION;
use super::{Operator, OperatorError};
use gadget_model::datasource::{DatasourceSpec, Histogram, Publication};

pub const SCOPE_LABEL: &str = "otel_scope_name";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error(
        "datasource {datasource} has metrics.collect=true but no metrics name: add --otel-metrics-name {datasource}:<name>"
    )]
    MissingName { datasource: String },
    #[error(
        "--otel-metrics-name {item:?}: unknown datasource {datasource:?} (this gadget has: {known})"
    )]
    UnknownDatasource {
        item: String,
        datasource: String,
        known: String,
    },
    #[error("--otel-metrics-name {0:?}: expected <datasource>:<name>")]
    Malformed(String),
    #[error(
        "metrics name {0:?} is already exported by another gadget instance on this endpoint; choose another --otel-metrics-name"
    )]
    DuplicateScope(String),
}

/// A `--otel-metrics-name` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsName {
    pub datasource: String,
    pub name: String,
}

impl std::str::FromStr for MetricsName {
    type Err = MetricsError;
    fn from_str(s: &str) -> Result<Self, MetricsError> {
        let (ds, name) = s
            .split_once(':')
            .ok_or_else(|| MetricsError::Malformed(s.to_string()))?;
        if ds.is_empty() || name.is_empty() {
            return Err(MetricsError::Malformed(s.to_string()));
        }
        Ok(MetricsName {
            datasource: ds.to_string(),
            name: name.to_string(),
        })
    }
}

/// One scope's data at one moment.
#[derive(Debug, Clone)]
pub struct ScopeSnapshot {
    pub scope: String,
    pub datasource: DatasourceSpec,
    pub publication: Publication,
}

struct ScopeState {
    datasource: DatasourceSpec,
    latest: Option<Publication>,
}

/// Everything one endpoint serves, shared by the gadget instances of a process.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    scopes: Arc<Mutex<BTreeMap<String, ScopeState>>>,
    /// Series left out of scrapes so far, by reason (see [`exposition::SKIPPED_FAMILY`]).
    skipped: Arc<Mutex<BTreeMap<exposition::Skip, u64>>>,
    /// The host's own metrics (build, per-instance kernel and guest counters, scrapes).
    host: host::HostMetrics,
}

/// An exported scope; dropping it removes its metrics from the endpoint.
pub struct ScopeGuard {
    registry: MetricsRegistry,
    name: String,
}

impl MetricsRegistry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ScopeState>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.scopes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `name` for one datasource; names are unique per endpoint.
    pub fn claim(
        &self,
        name: &str,
        datasource: DatasourceSpec,
    ) -> Result<ScopeGuard, MetricsError> {
        let mut scopes = self.lock();
        if scopes.contains_key(name) {
            return Err(MetricsError::DuplicateScope(name.to_string()));
        }
        scopes.insert(
            name.to_string(),
            ScopeState {
                datasource,
                latest: None,
            },
        );
        Ok(ScopeGuard {
            registry: self.clone(),
            name: name.to_string(),
        })
    }

    /// Each exported scope's datasource and latest state, copied out of the lock.
    pub fn snapshot(&self) -> Vec<ScopeSnapshot> {
        self.lock()
            .iter()
            .filter_map(|(name, s)| {
                Some(ScopeSnapshot {
                    scope: name.clone(),
                    datasource: s.datasource.clone(),
                    publication: s.latest.clone()?,
                })
            })
            .collect()
    }

    /// Registers an instance's own metrics; they leave the endpoint when the result is dropped.
    pub fn register_instance(&self, labels: host::InstanceLabels) -> host::InstanceStats {
        self.host.register(labels)
    }

    /// The Prometheus text exposition of every scope and the host's own metrics.
    pub fn render(&self) -> String {
        let started = std::time::Instant::now();
        let mut skipped = self.skipped.lock().unwrap_or_else(|p| p.into_inner());
        let text = exposition::render(&self.snapshot(), self.host.families(), &mut skipped);
        self.host.record_scrape(started.elapsed());
        text
    }
}

impl ScopeGuard {
    pub fn update(&self, publication: Publication) {
        if let Some(s) = self.registry.lock().get_mut(&self.name) {
            s.latest = Some(publication);
        }
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.name);
    }
}

/// Without an exact sum from the guest, Σ count × upper bound: what IG's replay of `Record(2^k)`
/// per I/O yields, so the two agree.
pub fn histogram_sum(h: &Histogram) -> f64 {
    h.sum.unwrap_or_else(|| {
        h.counts
            .iter()
            .zip(&h.upper_bounds)
            .map(|(c, ub)| *c as f64 * *ub as f64)
            .sum()
    })
}

/// Exports the datasources that ask for it to a [`MetricsRegistry`].
pub struct MetricsOperator {
    registry: MetricsRegistry,
    names: Vec<MetricsName>,
    scopes: Vec<(usize, ScopeGuard)>,
}

impl MetricsOperator {
    pub fn new(registry: MetricsRegistry, names: Vec<MetricsName>) -> Self {
        MetricsOperator {
            registry,
            names,
            scopes: Vec::new(),
        }
    }
}

fn failed(e: MetricsError) -> OperatorError {
    OperatorError::Failed {
        operator: "metrics",
        message: e.to_string(),
    }
}

impl Operator for MetricsOperator {
    fn start(&mut self, datasources: &[DatasourceSpec]) -> Result<(), OperatorError> {
        for n in &self.names {
            if !datasources.iter().any(|d| d.name == n.datasource) {
                return Err(failed(MetricsError::UnknownDatasource {
                    item: format!("{}:{}", n.datasource, n.name),
                    datasource: n.datasource.clone(),
                    known: datasources
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }));
            }
        }
        for (i, ds) in datasources.iter().enumerate() {
            let name = self.names.iter().find(|n| n.datasource == ds.name);
            match (ds.flag(gadget_keys::METRICS_COLLECT), name) {
                (true, Some(n)) => {
                    let guard = self.registry.claim(&n.name, ds.clone()).map_err(failed)?;
                    self.scopes.push((i, guard));
                }
                (true, None) => {
                    return Err(failed(MetricsError::MissingName {
                        datasource: ds.name.clone(),
                    }));
                }
                (false, Some(n)) => tracing::warn!(
                    "--otel-metrics-name {}:{} has no effect: datasource {} is not annotated metrics.collect=true (add --annotate {}:metrics.collect=true)",
                    n.datasource,
                    n.name,
                    ds.name,
                    ds.name
                ),
                (false, None) => {}
            }
        }
        Ok(())
    }

    fn publish(&mut self, publications: &[Publication]) -> Result<(), OperatorError> {
        for p in publications {
            if let Some((_, guard)) = self.scopes.iter().find(|(i, _)| *i == p.datasource) {
                guard.update(p.clone());
            }
        }
        Ok(())
    }
}

/// Env fields are labels for metrics but not part of the terminal view's title.
pub fn is_env_field(ds: &DatasourceSpec, label: &str) -> bool {
    ds.field(label)
        .is_some_and(|f| f.annotations.iter().any(|(k, _)| k == ENV_VAR_ANNOTATION))
}

/// The tests' fixture: scope `blockio-metrics`, datasource `blockio` with one histogram field
/// `latency` (µs) published once with these labels, bounds and counts.
#[cfg(test)]
pub(crate) fn latency_scope(
    labels: Vec<(String, String)>,
    upper_bounds: Vec<u64>,
    counts: Vec<u64>,
) -> ScopeSnapshot {
    use gadget_model::datasource::{FieldKind, FieldSpec};
    ScopeSnapshot {
        scope: "blockio-metrics".into(),
        datasource: DatasourceSpec {
            name: "blockio".into(),
            fields: vec![FieldSpec {
                name: "latency".into(),
                kind: FieldKind::Histogram,
                unit: "µs".into(),
                description: String::new(),
                annotations: vec![],
            }],
            annotations: vec![],
        },
        publication: Publication {
            datasource: 0,
            histograms: vec![Histogram {
                field: "latency".into(),
                labels,
                upper_bounds,
                counts,
                sum: None,
            }],
            samples: vec![],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gadget_model::datasource::{FieldKind, FieldSpec, Sample};

    fn blockio(collect: bool) -> DatasourceSpec {
        DatasourceSpec {
            name: "blockio".into(),
            fields: vec![FieldSpec {
                name: "latency".into(),
                kind: FieldKind::Histogram,
                unit: "µs".into(),
                description: "block I/O latency".into(),
                annotations: vec![],
            }],
            annotations: vec![("metrics.collect".into(), collect.to_string())],
        }
    }

    fn publication(counts: &[u64], labels: &[(&str, &str)]) -> Publication {
        Publication {
            datasource: 0,
            histograms: vec![Histogram {
                field: "latency".into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                upper_bounds: (0..counts.len()).map(|k| 1u64 << k).collect(),
                counts: counts.to_vec(),
                sum: None,
            }],
            samples: vec![],
        }
    }

    fn operator(reg: &MetricsRegistry, name: &str) -> MetricsOperator {
        MetricsOperator::new(
            reg.clone(),
            vec![format!("blockio:{name}").parse().unwrap()],
        )
    }

    #[test]
    fn exposes_igs_names_and_cumulative_buckets() {
        let reg = MetricsRegistry::default();
        let mut op = operator(&reg, "blockio-metrics");
        let specs = vec![blockio(true)];
        op.start(&specs).unwrap();
        op.publish(&[publication(&[0, 2, 3], &[("node", "a")])])
            .unwrap();
        let text = reg.render();
        assert!(text.contains("# TYPE latency__s histogram"), "{text}");
        assert!(
            text.contains(
                r#"latency__s_bucket{node="a",otel_scope_name="blockio-metrics",otel_scope_schema_url="",otel_scope_version="",le="1"} 0"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"latency__s_bucket{node="a",otel_scope_name="blockio-metrics",otel_scope_schema_url="",otel_scope_version="",le="2"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"latency__s_bucket{node="a",otel_scope_name="blockio-metrics",otel_scope_schema_url="",otel_scope_version="",le="4"} 5"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"le="+Inf"} 5"#), "{text}");
        assert!(
            text.contains(r#"latency__s_count{node="a",otel_scope_name="blockio-metrics",otel_scope_schema_url="",otel_scope_version=""} 5"#),
            "{text}"
        );
        // IG's sum: 2 × 2 + 3 × 4.
        assert!(
            text.contains(r#"latency__s_sum{node="a",otel_scope_name="blockio-metrics",otel_scope_schema_url="",otel_scope_version=""} 16"#),
            "{text}"
        );
    }

    #[test]
    fn two_scopes_share_one_family_and_duplicates_are_refused() {
        let reg = MetricsRegistry::default();
        let specs = vec![blockio(true)];
        let mut a = operator(&reg, "one");
        let mut b = operator(&reg, "two");
        a.start(&specs).unwrap();
        b.start(&specs).unwrap();
        a.publish(&[publication(&[1], &[])]).unwrap();
        b.publish(&[publication(&[2], &[])]).unwrap();
        let text = reg.render();
        assert_eq!(
            text.matches("# TYPE latency__s histogram").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains(r#"otel_scope_name="one""#) && text.contains(r#"otel_scope_name="two""#)
        );
        let err = operator(&reg, "one").start(&specs).unwrap_err().to_string();
        assert!(err.contains("already exported"), "{err}");
        drop(a);
        let text = reg.render();
        assert!(
            !text.contains(r#"otel_scope_name="one""#),
            "a stopped instance's metrics are gone: {text}"
        );
    }

    #[test]
    fn collect_without_a_name_is_igs_error() {
        let reg = MetricsRegistry::default();
        let mut op = MetricsOperator::new(reg, vec![]);
        let err = op.start(&[blockio(true)]).unwrap_err().to_string();
        assert!(err.contains("--otel-metrics-name blockio:<name>"), "{err}");
        let mut op = MetricsOperator::new(
            MetricsRegistry::default(),
            vec!["blocko:x".parse().unwrap()],
        );
        let err = op.start(&[blockio(true)]).unwrap_err().to_string();
        assert!(
            err.contains("unknown datasource") && err.contains("blockio"),
            "{err}"
        );
        assert!("nocolon".parse::<MetricsName>().is_err());
    }

    #[test]
    fn one_bad_instance_cannot_break_the_scrape_of_the_others() {
        let reg = MetricsRegistry::default();
        let specs = vec![blockio(true)];
        let mut good = operator(&reg, "good");
        good.start(&specs).unwrap();
        good.publish(&[publication(&[1, 2], &[("node", "a")])])
            .unwrap();
        // What a hostile guest or a careless annotation could hand over if the checks at
        // publish time were bypassed: each would fail the scrape or mark the target down.
        let mut bad_specs = vec![blockio(true)];
        bad_specs[0].fields.push(FieldSpec {
            name: "".into(),
            kind: FieldKind::Gauge,
            unit: String::new(),
            description: String::new(),
            annotations: vec![],
        });
        let mut bad = operator(&reg, "bad");
        bad.start(&bad_specs).unwrap();
        let mut p = publication(&[5], &[("le", "x")]);
        p.histograms
            .push(publication(&[6], &[("otel-scope-name", "good")]).histograms[0].clone());
        p.histograms
            .push(publication(&[7], &[("a.b", "1"), ("a_b", "2")]).histograms[0].clone());
        p.samples.push(Sample {
            field: "".into(),
            labels: vec![],
            value: 1.0,
        });
        bad.publish(&[p]).unwrap();
        let text = reg.render();
        assert!(
            text.contains(
                r#"latency__s_bucket{node="a",otel_scope_name="good",otel_scope_schema_url="",otel_scope_version="",le="2"} 3"#
            ),
            "{text}"
        );
        assert!(!text.contains(r#"otel_scope_name="bad""#), "{text}");
        assert_eq!(
            text.matches(r#"otel_scope_name="good""#).count(),
            5,
            "{text}"
        );
        assert!(
            text.contains(r#"gadget_metrics_series_skipped_total{reason="bad_label"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"gadget_metrics_series_skipped_total{reason="bad_name"} 1"#),
            "{text}"
        );
    }
}
