//! Events counted per label set: the data behind IG's otel-metrics *implicit counter* (the export
//! lives elsewhere).
//!
//! IG v0.46.0 (pkg/operators/otel-metrics): a datasource with `metrics.collect=true` is exported
//! only if it has value fields or the datasource annotation `metrics.implicit-counter.name=<name>`
//! (optional `metrics.implicit-counter.description`), which adds 1 per event to an Int64 counter
//! `<name>`; fields annotated `metrics.type=key` are its attributes, named by the field's own name
//! (`comm` for `proc.comm`), typed int64 for integers, float64 for floats, string for strings; other
//! kinds are refused. So `metrics.type=key` alone counts nothing in IG.
//!
//! Invariants: at most `max_label_sets` distinct label sets are kept; an event with a new label
//! set beyond that is not counted under its labels but in [`EventCounter::overflowed`], and
//! [`EventCounter::observe`] reports it, so the caller can tell the user once. Label values are
//! kept as text (numbers in decimal), as Prometheus shows them.

use std::collections::BTreeMap;

use crate::annotations as ann;
use crate::decode::Value;
use crate::layout::FieldId;
use crate::schema::{Event, Schema};

/// IG's datasource annotation naming the implicit event counter.
pub const IMPLICIT_COUNTER_NAME: &str = "metrics.implicit-counter.name";
pub const IMPLICIT_COUNTER_DESCRIPTION: &str = "metrics.implicit-counter.description";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CounterError {
    #[error("field {field:?} ({kind}) cannot be a metrics key: keys must be strings or numbers")]
    UnsupportedKey { field: String, kind: &'static str },
    #[error(
        "fields {first:?} and {second:?} would both be the metrics label {label:?}; keep one as metrics.type=key"
    )]
    DuplicateLabel {
        first: String,
        second: String,
        label: String,
    },
    #[error(
        "counter label set limit ({limit}) reached: events with new label values are counted as overflow; use fewer or coarser metrics.type=key fields"
    )]
    Overflow { limit: usize },
}

#[derive(Debug, Clone)]
pub struct EventCounter {
    keys: Vec<FieldId>,
    names: Vec<String>,
    max_label_sets: usize,
    counts: BTreeMap<Vec<String>, u64>,
    overflowed: u64,
}

fn label(v: Option<&Value>) -> String {
    match v {
        Some(Value::U64(x)) => x.to_string(),
        Some(Value::I64(x)) => x.to_string(),
        Some(Value::F32(x)) => x.to_string(),
        Some(Value::F64(x)) => x.to_string(),
        Some(Value::Bool(x)) => x.to_string(),
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Bytes(b)) => hex::encode(b),
        None => String::new(),
    }
}

impl EventCounter {
    /// A counter labelled by the schema's `metrics.type=key` fields (in field order).
    pub fn from_schema(schema: &Schema, max_label_sets: usize) -> Result<Self, CounterError> {
        let keys: Vec<FieldId> = (0..schema.fields().len())
            .filter(|&i| schema.fields()[i].annotation(ann::METRICS_TYPE) == Some("key"))
            .collect();
        Self::new(schema, keys, max_label_sets)
    }

    /// A counter labelled by `keys`; label names are the fields' own names, as in IG.
    pub fn new(
        schema: &Schema,
        keys: Vec<FieldId>,
        max_label_sets: usize,
    ) -> Result<Self, CounterError> {
        // Ids not in the schema are dropped (they cannot come from from_schema).
        let keys: Vec<FieldId> = keys
            .into_iter()
            .filter(|&k| schema.field(k).is_some())
            .collect();
        let mut names: Vec<String> = Vec::with_capacity(keys.len());
        for &k in &keys {
            let f = &schema.fields()[k];
            let k_ok = f.kind.is_string()
                || f.kind.is_unsigned()
                || f.kind.is_signed()
                || f.kind.is_float();
            if !k_ok {
                return Err(CounterError::UnsupportedKey {
                    field: f.full_name.clone(),
                    kind: f.kind.name(),
                });
            }
            if let Some(prev) = names.iter().position(|x| *x == f.name) {
                return Err(CounterError::DuplicateLabel {
                    first: schema.fields()[keys[prev]].full_name.clone(),
                    second: f.full_name.clone(),
                    label: f.name.clone(),
                });
            }
            names.push(f.name.clone());
        }
        Ok(EventCounter {
            keys,
            names,
            max_label_sets,
            counts: BTreeMap::new(),
            overflowed: 0,
        })
    }

    /// Label names (the key fields' own names), in the order of each label set's values.
    pub fn label_names(&self) -> &[String] {
        &self.names
    }

    /// Counts one event.
    pub fn observe(&mut self, event: &Event) -> Result<(), CounterError> {
        let labels: Vec<String> = self.keys.iter().map(|&k| label(event.get(k))).collect();
        if let Some(c) = self.counts.get_mut(&labels) {
            *c += 1;
            return Ok(());
        }
        if self.counts.len() >= self.max_label_sets {
            self.overflowed += 1;
            return Err(CounterError::Overflow {
                limit: self.max_label_sets,
            });
        }
        self.counts.insert(labels, 1);
        Ok(())
    }

    /// (label values, count), sorted by label values.
    pub fn counts(&self) -> impl Iterator<Item = (&[String], u64)> {
        self.counts.iter().map(|(k, v)| (k.as_slice(), *v))
    }

    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}
