//! The metrics operator (IG's otel-metrics): datasources annotated `metrics.collect=true` and
//! named with `--otel-metrics-name <ds>:<name>` are exported; the name is the instrumentation
//! scope, which Prometheus shows as the label `otel_scope_name`.
//!
//! Histograms from the eBPF log2 maps are exposed exactly as the kernel counted them (cumulative
//! buckets, `le` = each bucket's upper bound), O(buckets) per scrape, instead of IG's replay of
//! one `Record` per I/O. The exposition format is the `prometheus` crate's.

pub mod exposition;
pub mod naming;
pub mod otlp;
pub mod server;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram as PromHistogram, LabelPair, Metric, MetricFamily, MetricType,
};

use super::env::ENV_VAR_ANNOTATION;
use super::{Operator, OperatorError};
use crate::datasource::{DatasourceSpec, FieldKind, Histogram, Publication, Sample};

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

    /// The metric families to expose, one per metric name across all scopes.
    pub fn gather(&self) -> Vec<MetricFamily> {
        let mut families: BTreeMap<String, MetricFamily> = BTreeMap::new();
        for ScopeSnapshot {
            scope,
            datasource,
            publication: p,
        } in &self.snapshot()
        {
            for h in &p.histograms {
                let Some((name, help)) = family_name(datasource, &h.field, FieldKind::Histogram)
                else {
                    continue;
                };
                let mut m = Metric::default();
                m.set_label(labels(&h.labels, scope));
                m.set_histogram(histogram(h));
                push(&mut families, name, help, MetricType::HISTOGRAM, m);
            }
            for s in &p.samples {
                let kind = datasource
                    .field(&s.field)
                    .map(|f| f.kind)
                    .unwrap_or(FieldKind::Gauge);
                let Some((name, help)) = family_name(datasource, &s.field, kind) else {
                    continue;
                };
                let mut m = Metric::default();
                m.set_label(labels(&s.labels, scope));
                let ty = sample(&mut m, s, kind);
                push(&mut families, name, help, ty, m);
            }
        }
        families.into_values().collect()
    }

    /// The Prometheus text exposition of [`Self::gather`].
    pub fn render(&self) -> Result<String, prometheus::Error> {
        Ok(exposition::render(&self.snapshot()))
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

fn family_name(ds: &DatasourceSpec, field: &str, kind: FieldKind) -> Option<(String, String)> {
    let spec = ds.field(field);
    let unit = spec.map(|f| f.unit.as_str()).unwrap_or("");
    let help = spec.map(|f| f.description.clone()).unwrap_or_default();
    let kind = match kind {
        FieldKind::Key => return None,
        FieldKind::Value => FieldKind::Gauge,
        k => k,
    };
    Some((naming::metric_name(field, unit, kind), help))
}

fn push(
    families: &mut BTreeMap<String, MetricFamily>,
    name: String,
    help: String,
    ty: MetricType,
    m: Metric,
) {
    let family = families.entry(name.clone()).or_insert_with(|| {
        let mut f = MetricFamily::default();
        f.set_name(name.clone());
        f.set_help(if help.is_empty() { name.clone() } else { help });
        f.set_field_type(ty);
        f
    });
    if family.get_field_type() != ty {
        tracing::warn!(
            "metric {name} is exported with two types by different gadgets; keeping the first"
        );
        return;
    }
    family.mut_metric().push(m);
}

fn labels(pairs: &[(String, String)], scope: &str) -> Vec<LabelPair> {
    let mut out: Vec<LabelPair> = pairs
        .iter()
        .filter(|(k, _)| k != SCOPE_LABEL)
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name(naming::label_name(k));
            l.set_value(v.clone());
            l
        })
        .collect();
    let mut l = LabelPair::default();
    l.set_name(SCOPE_LABEL.to_string());
    l.set_value(scope.to_string());
    out.push(l);
    out.sort_by(|a, b| a.name().cmp(b.name()));
    out.dedup_by(|a, b| a.name() == b.name());
    out
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

/// Cumulative buckets with `le` = each bucket's upper bound; `+Inf` (the total) is added by the
/// encoder.
fn histogram(h: &Histogram) -> PromHistogram {
    let mut cumulative = 0u64;
    let buckets = h
        .counts
        .iter()
        .zip(&h.upper_bounds)
        .map(|(c, ub)| {
            cumulative = cumulative.saturating_add(*c);
            let mut b = Bucket::default();
            b.set_cumulative_count(cumulative);
            b.set_upper_bound(*ub as f64);
            b
        })
        .collect();
    let mut p = PromHistogram::default();
    p.set_bucket(buckets);
    p.set_sample_count(cumulative);
    p.set_sample_sum(h.sum.unwrap_or_else(|| {
        h.counts
            .iter()
            .zip(&h.upper_bounds)
            .map(|(c, ub)| *c as f64 * *ub as f64)
            .sum()
    }));
    p
}

fn sample(m: &mut Metric, s: &Sample, kind: FieldKind) -> MetricType {
    if kind == FieldKind::Counter {
        let mut c = Counter::default();
        c.set_value(s.value);
        m.set_counter(c);
        MetricType::COUNTER
    } else {
        let mut g = Gauge::default();
        g.set_value(s.value);
        m.set_gauge(g);
        MetricType::GAUGE
    }
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
            match (ds.flag("metrics.collect"), name) {
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

    fn publish(
        &mut self,
        _: &[DatasourceSpec],
        publications: &[Publication],
    ) -> Result<(), OperatorError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasource::FieldSpec;

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
        op.publish(&specs, &[publication(&[0, 2, 3], &[("node", "a")])])
            .unwrap();
        let text = reg.render().unwrap();
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
        a.publish(&specs, &[publication(&[1], &[])]).unwrap();
        b.publish(&specs, &[publication(&[2], &[])]).unwrap();
        let text = reg.render().unwrap();
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
        let text = reg.render().unwrap();
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
}
