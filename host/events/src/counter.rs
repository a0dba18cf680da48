//! Events counted per label set: the data behind IG's otel-metrics counters for datasources with
//! `metrics.collect=true` whose key fields carry `metrics.type=key` (the export lives elsewhere).
//!
//! Invariants: at most `max_label_sets` distinct label sets are kept; an event with a new label
//! set beyond that is not counted under its labels but in [`EventCounter::overflowed`], and
//! [`EventCounter::observe`] reports it, so the caller can tell the user once. Label values are
//! the fields' text (numbers in decimal), as Prometheus labels are.

use std::collections::BTreeMap;

use crate::annotations as ann;
use crate::decode::Value;
use crate::layout::FieldId;
use crate::schema::{Event, Schema};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CounterError {
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
        Some(Value::Bytes(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        None => String::new(),
    }
}

impl EventCounter {
    /// A counter labelled by the schema's `metrics.type=key` fields (in field order).
    pub fn from_schema(schema: &Schema, max_label_sets: usize) -> Self {
        let keys: Vec<FieldId> = (0..schema.fields().len())
            .filter(|&i| schema.fields()[i].annotation(ann::METRICS_TYPE) == Some("key"))
            .collect();
        Self::new(schema, keys, max_label_sets)
    }

    pub fn new(schema: &Schema, keys: Vec<FieldId>, max_label_sets: usize) -> Self {
        let names = keys
            .iter()
            .map(|&k| {
                schema
                    .field(k)
                    .map(|f| f.full_name.clone())
                    .unwrap_or_default()
            })
            .collect();
        EventCounter {
            keys,
            names,
            max_label_sets,
            counts: BTreeMap::new(),
            overflowed: 0,
        }
    }

    /// Label names (full field names), in the order of each label set's values.
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
