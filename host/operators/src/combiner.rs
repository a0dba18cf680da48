//! IG's client-side combiner for runs on several nodes: each node's datasource becomes one
//! `combined-<name>` datasource (IG's `combiner` operator names it so). Histograms with the same
//! field, labels and buckets are summed bucket by bucket into one (the nodes' own environment
//! labels, such as `node`, are left out so that they do merge); counters and gauges are kept
//! per node, each sample labelled with its node under IG's `k8s.node` field.
//!
//! Pure: frames in, one frame out. Invariant: a combined histogram's total is the sum of the
//! totals of the nodes' histograms it was made of (saturating at u64::MAX).

use gadget_model::datasource::{DatasourceSpec, Histogram, Publication, Sample};

/// IG's `combiner.DataSourcePrefix`.
pub const COMBINED_PREFIX: &str = "combined";
/// The label a combined sample carries its node under (IG's field for the node).
pub const NODE_LABEL: &str = "k8s.node";

/// One node's latest datasources and publications.
pub struct NodeFrame<'a> {
    pub node: &'a str,
    pub datasources: &'a [DatasourceSpec],
    pub publications: &'a [Publication],
}

/// The combined view: datasources in the order the nodes first declared them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Combined {
    pub datasources: Vec<DatasourceSpec>,
    pub publications: Vec<Publication>,
}

/// `combined-<name>`.
pub fn combined_name(datasource: &str) -> String {
    format!("{COMBINED_PREFIX}-{datasource}")
}

pub fn combine(frames: &[NodeFrame<'_>]) -> Combined {
    let mut out = Combined::default();
    // The node's declaration of each combined datasource, to tell env labels apart.
    let mut own: Vec<DatasourceSpec> = Vec::new();
    for f in frames {
        for p in f.publications {
            let Some(ds) = f.datasources.get(p.datasource) else {
                continue;
            };
            let index = match own.iter().position(|d| d.name == ds.name) {
                Some(i) => i,
                None => {
                    own.push(ds.clone());
                    let mut combined = ds.clone();
                    combined.name = combined_name(&ds.name);
                    out.datasources.push(combined);
                    out.publications.push(Publication {
                        datasource: own.len() - 1,
                        histograms: Vec::new(),
                        samples: Vec::new(),
                    });
                    own.len() - 1
                }
            };
            let target = &mut out.publications[index];
            for h in &p.histograms {
                add_histogram(&mut target.histograms, ds, h);
            }
            for s in &p.samples {
                let mut labels = vec![(NODE_LABEL.to_string(), f.node.to_string())];
                labels.extend(s.labels.iter().filter(|(k, _)| k != NODE_LABEL).cloned());
                target.samples.push(Sample {
                    field: s.field.clone(),
                    labels,
                    value: s.value,
                });
            }
        }
    }
    out
}

fn add_histogram(into: &mut Vec<Histogram>, ds: &DatasourceSpec, h: &Histogram) {
    let mut h = h.clone();
    h.labels
        .retain(|(k, _)| !crate::metrics::is_env_field(ds, k));
    let same = into
        .iter_mut()
        .find(|c| c.field == h.field && c.labels == h.labels && c.upper_bounds == h.upper_bounds);
    match same {
        Some(c) => {
            for (a, b) in c.counts.iter_mut().zip(&h.counts) {
                *a = a.saturating_add(*b);
            }
            c.sum = match (c.sum, h.sum) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
        // Different buckets (daemons of different versions) cannot be summed: shown apart.
        None => into.push(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes "a" and "b", with the same datasources.
    fn combine_ab(specs: &[DatasourceSpec], a: &[Publication], b: &[Publication]) -> Combined {
        combine(&[
            NodeFrame {
                node: "a",
                datasources: specs,
                publications: a,
            },
            NodeFrame {
                node: "b",
                datasources: specs,
                publications: b,
            },
        ])
    }
    use gadget_model::datasource::{FieldKind, FieldSpec};

    fn ds(name: &str, env_node: bool) -> DatasourceSpec {
        let field = |n: &str, kind, ann: Vec<(String, String)>| FieldSpec {
            name: n.into(),
            kind,
            unit: "us".into(),
            description: String::new(),
            annotations: ann,
        };
        let mut fields = vec![field("latency", FieldKind::Histogram, vec![])];
        if env_node {
            fields.push(field(
                "node",
                FieldKind::Key,
                vec![(
                    crate::env::ENV_VAR_ANNOTATION.to_string(),
                    "NODE_NAME".into(),
                )],
            ));
        }
        fields.push(field("bytes", FieldKind::Counter, vec![]));
        DatasourceSpec {
            name: name.into(),
            fields,
            annotations: vec![],
        }
    }

    fn hist(counts: &[u64], labels: &[(&str, &str)]) -> Histogram {
        Histogram {
            field: "latency".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            upper_bounds: (0..counts.len() as u32).map(|i| 1u64 << i).collect(),
            counts: counts.to_vec(),
            sum: Some(counts.iter().sum::<u64>() as f64),
        }
    }

    #[test]
    fn histograms_sum_per_bucket_into_one_named_as_ig() {
        let specs = [ds("blockio", true)];
        let a = [Publication {
            datasource: 0,
            histograms: vec![hist(&[1, 2, 3, 0], &[("node", "a")])],
            samples: vec![],
        }];
        let b = [Publication {
            datasource: 0,
            histograms: vec![hist(&[0, 5, 0, 7], &[("node", "b")])],
            samples: vec![],
        }];
        let c = combine_ab(&specs, &a, &b);
        assert_eq!(c.datasources.len(), 1);
        assert_eq!(c.datasources[0].name, "combined-blockio");
        assert_eq!(c.datasources[0].fields, specs[0].fields);
        let hs = &c.publications[0].histograms;
        assert_eq!(hs.len(), 1, "{hs:?}");
        assert_eq!(hs[0].counts, vec![1, 7, 3, 7]);
        assert_eq!(
            hs[0].total(),
            a[0].histograms[0].total() + b[0].histograms[0].total()
        );
        assert!(hs[0].labels.is_empty(), "the env label is left out: {hs:?}");
        assert_eq!(hs[0].sum, Some(18.0));
    }

    #[test]
    fn other_buckets_and_labels_stay_apart_and_samples_get_the_node() {
        let specs = [ds("blockio", false)];
        let mut wide = hist(&[1, 1], &[]);
        wide.upper_bounds = vec![10, 20];
        let a = [Publication {
            datasource: 0,
            histograms: vec![hist(&[1, 1], &[("disk", "loop0")]), hist(&[1, 1], &[])],
            samples: vec![Sample {
                field: "bytes".into(),
                labels: vec![("comm".into(), "dd".into())],
                value: 4096.0,
            }],
        }];
        let b = [Publication {
            datasource: 0,
            histograms: vec![wide, hist(&[2, u64::MAX], &[])],
            samples: vec![Sample {
                field: "bytes".into(),
                labels: vec![("comm".into(), "dd".into())],
                value: 512.0,
            }],
        }];
        let c = combine_ab(&specs, &a, &b);
        let hs = &c.publications[0].histograms;
        assert_eq!(hs.len(), 3, "{hs:?}");
        assert_eq!(hs[1].counts, vec![3, u64::MAX], "saturates");
        assert_eq!(hs[2].upper_bounds, vec![10, 20]);
        let samples = &c.publications[0].samples;
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].labels[0], ("k8s.node".into(), "a".into()));
        assert_eq!(samples[1].labels[0], ("k8s.node".into(), "b".into()));
        assert_eq!(samples[1].value, 512.0);
        // Nothing published: nothing combined.
        assert_eq!(combine(&[]), Combined::default());
    }
}
