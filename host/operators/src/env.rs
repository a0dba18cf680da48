//! IG's env operator: `<ds>:env.fields.<field>=<VAR>` adds a field whose value is the host
//! process's environment variable VAR (e.g. `node` from NODE_NAME, set by the DaemonSet's
//! downward API). With `<ds>.<field>:metrics.type=key` the field becomes a metric label.

use gadget_model::GuestConfig;
use gadget_model::datasource::{DatasourceSpec, FieldKind, FieldSpec, Publication, reserved_label};

const PREFIX: &str = gadget_keys::ENV_FIELDS_PREFIX;
/// Marks fields this operator added, so the printer can leave them out of its titles.
pub const ENV_VAR_ANNOTATION: &str = gadget_keys::ENV_VAR;

/// An env field that would break the metrics of every instance on the endpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("annotation {datasource}:env.fields.{field}: field name {field:?} cannot be used: {why}")]
pub struct EnvError {
    pub datasource: String,
    pub field: String,
    pub why: &'static str,
}

/// Label values to add to each datasource's publications.
#[derive(Debug, Default)]
pub struct EnvFields {
    labels: Vec<Vec<(String, String)>>,
}

impl EnvFields {
    /// Adds the env fields to `specs` and reads their values once (the environment of a running
    /// process does not change). `lookup` is `std::env::var` outside tests.
    pub fn new(
        specs: &mut [DatasourceSpec],
        config: &GuestConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, EnvError> {
        let mut labels = Vec::with_capacity(specs.len());
        for spec in specs.iter_mut() {
            let mut ds_labels = Vec::new();
            let Some(ds) = config.datasources.iter().find(|d| d.name == spec.name) else {
                labels.push(ds_labels);
                continue;
            };
            for (key, var) in &ds.annotations {
                let Some(field) = key.strip_prefix(PREFIX) else {
                    continue;
                };
                // Checked whether or not it becomes a label: the user may add metrics.type=key
                // in another --annotate, and a field is a label name in waiting.
                if let Some(why) = reserved_label(field) {
                    return Err(EnvError {
                        datasource: spec.name.clone(),
                        field: field.to_string(),
                        why,
                    });
                }
                let field_annotations: Vec<(String, String)> = ds
                    .fields
                    .iter()
                    .find(|(n, _)| n == field)
                    .map(|(_, a)| a.clone())
                    .unwrap_or_default();
                let is_key = field_annotations
                    .iter()
                    .rev()
                    .find(|(k, _)| k == gadget_keys::METRICS_TYPE)
                    .is_some_and(|(_, v)| v == "key");
                let value = lookup(var).unwrap_or_else(|| {
                    tracing::warn!(
                        "datasource {}: env.fields.{field} reads ${var}, which is not set: using an empty value",
                        spec.name
                    );
                    String::new()
                });
                let mut annotations = field_annotations;
                annotations.push((ENV_VAR_ANNOTATION.into(), var.clone()));
                spec.fields.retain(|f| f.name != field);
                spec.fields.push(FieldSpec {
                    name: field.to_string(),
                    kind: if is_key {
                        FieldKind::Key
                    } else {
                        FieldKind::Value
                    },
                    unit: String::new(),
                    description: format!("from the environment variable {var}"),
                    annotations,
                });
                if is_key {
                    ds_labels.push((field.to_string(), value));
                }
            }
            labels.push(ds_labels);
        }
        Ok(EnvFields { labels })
    }

    /// Adds the key fields' values as labels of every histogram and sample.
    pub fn apply(&self, publications: &mut [Publication]) {
        for p in publications {
            let Some(extra) = self.labels.get(p.datasource).filter(|l| !l.is_empty()) else {
                continue;
            };
            for h in &mut p.histograms {
                h.labels.extend(extra.iter().cloned());
            }
            for s in &mut p.samples {
                s.labels.extend(extra.iter().cloned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gadget_model::DatasourceConfig;
    use gadget_model::datasource::Histogram;

    #[test]
    fn node_label_from_the_environment() {
        let config = GuestConfig {
            gadget_name: "g".into(),
            datasources: vec![DatasourceConfig {
                name: "blockio".into(),
                annotations: vec![("env.fields.node".into(), "NODE_NAME".into())],
                fields: vec![("node".into(), vec![("metrics.type".into(), "key".into())])],
            }],
            params: vec![],
        };
        let mut specs = vec![DatasourceSpec {
            name: "blockio".into(),
            fields: vec![],
            annotations: vec![],
        }];
        let env = EnvFields::new(&mut specs, &config, |v| {
            (v == "NODE_NAME").then(|| "node-a".to_string())
        })
        .unwrap();
        assert_eq!(specs[0].field("node").map(|f| f.kind), Some(FieldKind::Key));
        let mut pubs = vec![Publication {
            datasource: 0,
            histograms: vec![Histogram {
                field: "latency".into(),
                labels: vec![],
                upper_bounds: vec![1],
                counts: vec![1],
                sum: None,
            }],
            samples: vec![],
        }];
        env.apply(&mut pubs);
        assert_eq!(
            pubs[0].histograms[0].labels,
            vec![("node".to_string(), "node-a".to_string())]
        );
    }

    #[test]
    fn env_fields_that_would_break_the_exposition_are_refused() {
        for bad in ["le", "__name__", "otel-scope-name", "quantile", ""] {
            let config = GuestConfig {
                gadget_name: "g".into(),
                datasources: vec![DatasourceConfig {
                    name: "blockio".into(),
                    annotations: vec![(format!("env.fields.{bad}"), "HOME".into())],
                    fields: vec![],
                }],
                params: vec![],
            };
            let mut specs = vec![DatasourceSpec {
                name: "blockio".into(),
                fields: vec![],
                annotations: vec![],
            }];
            let err = EnvFields::new(&mut specs, &config, |_| None).unwrap_err();
            assert!(
                err.to_string().contains(&format!("env.fields.{bad}:")),
                "{err}"
            );
        }
    }
}
