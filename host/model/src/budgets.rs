//! Every bound this host puts on what comes from outside, in one place: each budget has a key,
//! a default and a one-line meaning, and any of them can be set with `--budget KEY=VALUE`
//! (repeatable, on every verb). docs/budgets.md lists the same table; a unit test keeps the two
//! in step.
//!
//! Over a budget, the one input or instance that crossed it gets an error naming the budget's key
//! (so the fix is one flag away); nothing else is affected.

use std::sync::OnceLock;

/// What one Wasm guest may hand the host. Counted per `publish` call and per snapshot (one
/// `on-snapshot` call, all datasources together); a snapshot replaces the previous one, so the
/// per-snapshot bounds are also what one instance holds at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestBudget {
    pub histograms_per_publish: usize,
    pub samples_per_publish: usize,
    pub buckets_per_histogram: usize,
    pub labels_per_series: usize,
    /// Bytes of one label key or value, or of a field name.
    pub label_bytes: usize,
    /// Distinct label keys across one datasource's series (the printer's table is rows × keys).
    pub label_keys_per_datasource: usize,
    /// Histograms and samples in one snapshot, all datasources together.
    pub series_per_snapshot: usize,
    /// Bytes of every string published in one snapshot (names, label keys and values).
    pub string_bytes_per_snapshot: usize,
    /// Bytes the guest may log in one call; the rest is dropped with one notice.
    pub log_bytes_per_call: usize,
    /// Events handed to a guest in one `on-events` call; bigger batches are split.
    pub events_per_batch: usize,
    /// Fields a guest may add to one event datasource.
    pub added_fields_per_datasource: usize,
    /// Bytes of all string values of added fields in one `on-events` call.
    pub added_string_bytes_per_batch: usize,
}

impl Default for GuestBudget {
    fn default() -> Self {
        GuestBudget {
            histograms_per_publish: 4_096,
            samples_per_publish: 16_384,
            buckets_per_histogram: 256,
            labels_per_series: 16,
            label_bytes: 1_024,
            label_keys_per_datasource: 32,
            series_per_snapshot: 16_384,
            string_bytes_per_snapshot: 4 << 20,
            log_bytes_per_call: 64 << 10,
            events_per_batch: 4_096,
            added_fields_per_datasource: 32,
            added_string_bytes_per_batch: 4 << 20,
        }
    }
}

/// What one daemon accepts from its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonBudget {
    /// Instances at once: a bound on what one careless client can start, not a fit to a memory
    /// limit. One profile_blockio instance costs ≈ 12 MiB of the daemon's RSS (BENCHMARKS.md)
    /// but ≈ 36 MiB of its cgroup's memory once its maps and page cache are counted
    /// (deploy/kubernetes/daemonset.yaml): set this to what the node's limit holds.
    pub max_instances: usize,
    /// The most guest memory a client may ask for per instance (`--guest-memory-mib`).
    pub max_guest_memory_mib: u64,
    /// The most fuel a client may ask for per guest call (`--guest-fuel`).
    pub max_guest_fuel: u64,
}

impl Default for DaemonBudget {
    fn default() -> Self {
        DaemonBudget {
            max_instances: 40,
            max_guest_memory_mib: 256,
            max_guest_fuel: 10_000_000_000,
        }
    }
}

/// What the cluster client (`kubectl gadget`) accepts from the Kubernetes API server and,
/// through its pod proxy, from each node's daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterBudget {
    /// Bytes of one reply (a pod list, a Secret, a daemon's snapshot frame): read into memory
    /// whole, so bounded. A frame at the guest budgets' limits is a few MiB of JSON.
    pub reply_bytes: u64,
}

impl Default for ClusterBudget {
    fn default() -> Self {
        ClusterBudget {
            reply_bytes: 64 << 20,
        }
    }
}

/// All budgets of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budgets {
    pub guest: GuestBudget,
    pub daemon: DaemonBudget,
    pub cluster: ClusterBudget,
    pub yaml: crate::yaml::YamlLimits,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BudgetError {
    #[error("--budget {0:?}: expected KEY=VALUE (keys: {keys})", keys = keys())]
    Malformed(String),
    #[error("--budget {key}: unknown budget (keys: {keys})", keys = keys())]
    Unknown { key: String },
    #[error("--budget {key}={value}: expected a positive whole number")]
    Value { key: String, value: String },
}

/// One budget: its key, what it bounds, and where its value lives.
pub struct BudgetKey {
    pub key: &'static str,
    pub meaning: &'static str,
    get: fn(&Budgets) -> u64,
    set: fn(&mut Budgets, u64),
}

macro_rules! budget {
    ($key:literal, $meaning:literal, $($path:ident).+) => {
        BudgetKey {
            key: $key,
            meaning: $meaning,
            get: |b| b.$($path).+ as u64,
            set: |b, v| b.$($path).+ = v as _,
        }
    };
}

/// Every budget, in the order docs/budgets.md lists them.
pub const KEYS: &[BudgetKey] = &[
    budget!(
        "guest.histograms-per-publish",
        "histograms in one publish call",
        guest.histograms_per_publish
    ),
    budget!(
        "guest.samples-per-publish",
        "counters and gauges in one publish call",
        guest.samples_per_publish
    ),
    budget!(
        "guest.buckets-per-histogram",
        "buckets of one histogram",
        guest.buckets_per_histogram
    ),
    budget!(
        "guest.labels-per-series",
        "labels of one histogram or sample",
        guest.labels_per_series
    ),
    budget!(
        "guest.label-bytes",
        "bytes of one label key, label value or field name",
        guest.label_bytes
    ),
    budget!(
        "guest.label-keys-per-datasource",
        "distinct label keys in one datasource's snapshot",
        guest.label_keys_per_datasource
    ),
    budget!(
        "guest.series-per-snapshot",
        "histograms and samples in one snapshot, all datasources",
        guest.series_per_snapshot
    ),
    budget!(
        "guest.string-bytes-per-snapshot",
        "bytes of all strings published in one snapshot",
        guest.string_bytes_per_snapshot
    ),
    budget!(
        "guest.log-bytes-per-call",
        "bytes a guest may log in one call",
        guest.log_bytes_per_call
    ),
    budget!(
        "guest.events-per-batch",
        "events handed to a guest in one on-events call (bigger batches are split)",
        guest.events_per_batch
    ),
    budget!(
        "guest.added-fields-per-datasource",
        "fields a guest may add to one event datasource",
        guest.added_fields_per_datasource
    ),
    budget!(
        "guest.added-string-bytes-per-batch",
        "bytes of all string values of added fields in one on-events call",
        guest.added_string_bytes_per_batch
    ),
    budget!(
        "daemon.max-instances",
        "instances one daemon runs at once",
        daemon.max_instances
    ),
    budget!(
        "daemon.max-guest-memory-mib",
        "largest --guest-memory-mib a daemon accepts",
        daemon.max_guest_memory_mib
    ),
    budget!(
        "daemon.max-guest-fuel",
        "largest --guest-fuel a daemon accepts",
        daemon.max_guest_fuel
    ),
    budget!(
        "cluster.reply-bytes",
        "bytes of one reply from the Kubernetes API server or a daemon through it",
        cluster.reply_bytes
    ),
    budget!(
        "yaml.max-depth",
        "nesting of a YAML input (manifest, gadget.yaml, config)",
        yaml.max_depth
    ),
    budget!(
        "yaml.max-nodes",
        "scalars and collections in a YAML input, aliases expanded",
        yaml.max_nodes
    ),
    budget!(
        "yaml.max-documents",
        "documents in a YAML input",
        yaml.max_documents
    ),
    budget!(
        "yaml.max-aliases",
        "aliases in a YAML input",
        yaml.max_aliases
    ),
    budget!(
        "yaml.max-scalar-bytes",
        "bytes of all scalars of a YAML input",
        yaml.max_scalar_bytes
    ),
];

fn keys() -> String {
    KEYS.iter().map(|k| k.key).collect::<Vec<_>>().join(", ")
}

impl Budgets {
    /// Applies `KEY=VALUE` overrides in order.
    pub fn with_overrides(mut self, overrides: &[String]) -> Result<Budgets, BudgetError> {
        for o in overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| BudgetError::Malformed(o.clone()))?;
            let (key, value) = (key.trim(), value.trim());
            let k = KEYS
                .iter()
                .find(|k| k.key == key)
                .ok_or_else(|| BudgetError::Unknown {
                    key: key.to_string(),
                })?;
            let n: u64 = value
                .parse()
                .ok()
                .filter(|n| *n > 0 && usize::try_from(*n).is_ok())
                .ok_or_else(|| BudgetError::Value {
                    key: key.to_string(),
                    value: value.to_string(),
                })?;
            (k.set)(&mut self, n);
        }
        Ok(self)
    }

    /// The value of one budget, by key.
    pub fn get(&self, key: &str) -> Option<u64> {
        KEYS.iter().find(|k| k.key == key).map(|k| (k.get)(self))
    }

    /// This process's budgets: the defaults until [`Budgets::install`] runs (once, from the
    /// command line, before any input is read).
    pub fn current() -> Budgets {
        INSTALLED.get().copied().unwrap_or_default()
    }

    /// Makes these the process's budgets; later calls are ignored (the first one wins).
    pub fn install(self) {
        let _ = INSTALLED.set(self);
    }
}

static INSTALLED: OnceLock<Budgets> = OnceLock::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_the_named_budget_only() {
        let b = Budgets::default()
            .with_overrides(&[
                "guest.samples-per-publish=5".into(),
                "yaml.max-depth = 9".into(),
            ])
            .unwrap();
        assert_eq!(b.guest.samples_per_publish, 5);
        assert_eq!(b.yaml.max_depth, 9);
        assert_eq!(
            b.guest.histograms_per_publish,
            GuestBudget::default().histograms_per_publish
        );
        assert_eq!(b.get("guest.samples-per-publish"), Some(5));
    }

    #[test]
    fn bad_overrides_name_the_key_and_list_the_keys() {
        let err = Budgets::default()
            .with_overrides(&["nope=1".into()])
            .unwrap_err();
        assert!(
            err.to_string().contains("guest.samples-per-publish"),
            "{err}"
        );
        let err = Budgets::default()
            .with_overrides(&["guest.label-bytes=0".into()])
            .unwrap_err();
        assert!(err.to_string().contains("guest.label-bytes=0"), "{err}");
        assert!(Budgets::default().with_overrides(&["x".into()]).is_err());
        assert!(
            Budgets::default()
                .with_overrides(&["guest.label-bytes=-1".into()])
                .is_err()
        );
    }

    #[test]
    fn every_budget_is_documented_with_its_default() {
        let doc = include_str!("../../../docs/budgets.md");
        let defaults = Budgets::default();
        for k in KEYS {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` ", k.key)))
                .unwrap_or_else(|| panic!("docs/budgets.md has no row for {}", k.key));
            let value = (k.get)(&defaults).to_string();
            assert!(
                row.contains(&format!("| {value} |")),
                "{}: default {value} not in {row}",
                k.key
            );
        }
    }
}
