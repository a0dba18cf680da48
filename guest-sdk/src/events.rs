//! Event datasources (tracers): records decoded by their layout, dropped, rewritten and
//! enriched a batch at a time, and counters derived from them.
//!
//! A tracer's eBPF program emits one record per event (`GADGET_TRACER`); the host hands a
//! guest that [subscribed](EventSource::subscribe) the records in batches ([`Events`]), one
//! call per batch. The layout comes from the BTF of the event struct, so fields are found by
//! the names IG shows (`proc.comm`, `proc.pid`, `fname`):
//!
//! ```no_run
//! use gadget_sdk::{Added, EventSource, Events, Field, Gadget, GadgetConfig, MapSnapshot};
//!
//! struct Exec {
//!     source: EventSource,
//!     comm: Field,
//!     filename: Field,
//!     exe: Added<String>,
//! }
//!
//! impl Gadget for Exec {
//!     fn init(config: &GadgetConfig) -> Result<Self, String> {
//!         let mut source = EventSource::subscribe(config, "exec")?;
//!         let exe = source.add_field::<String>("exe", "file name without its directory")?;
//!         Ok(Exec {
//!             comm: source.field("proc.comm")?,
//!             filename: source.field("filename")?,
//!             exe,
//!             source,
//!         })
//!     }
//!
//!     fn on_snapshot(&mut self, _: &[MapSnapshot]) -> Result<(), String> {
//!         Ok(())
//!     }
//!
//!     fn on_events(&mut self, events: &mut Events) -> Result<(), String> {
//!         for i in 0..events.len() {
//!             if self.comm.str(events.record(i)) == "ignored" {
//!                 events.drop_event(i);
//!                 continue;
//!             }
//!             let path = self.filename.str(events.record(i)).into_owned();
//!             let base = path.rsplit('/').next().unwrap_or("").to_string();
//!             events.set(i, &self.exe, base);
//!         }
//!         Ok(())
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! Accessors never panic: the host checks that every record is at least the layout's size
//! before the guest runs, and an accessor used on a shorter slice reads zeros (an empty string).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::bindings::gadget::api::host;
use crate::bindings::gadget::api::types::{
    AddedField, AddedKind, AddedValues, BatchResult, EventBatch, RecordLayout, ValueKind,
};
use crate::{Datasource, DatasourceConfig, GadgetConfig, Sample};

impl DatasourceConfig {
    /// The layout of this event datasource's records; an error if it is a map datasource.
    pub fn record_layout(&self) -> Result<&RecordLayout, String> {
        self.events.as_ref().ok_or_else(|| {
            format!(
                "datasource {} is not an event datasource (no GADGET_TRACER emits it)",
                self.name
            )
        })
    }
}

impl RecordLayout {
    /// The field `name` (IG's dotted name, `proc.comm`); an error lists the fields there are.
    pub fn field(&self, name: &str) -> Result<Field, String> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| Field {
                offset: f.offset as usize,
                size: f.size as usize,
                kind: f.kind,
            })
            .ok_or_else(|| {
                let known: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
                format!(
                    "the event record has no field {name:?} (it has: {})",
                    known.join(", ")
                )
            })
    }
}

/// Where one field's bytes are in a record and how they decode ([`RecordLayout::field`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    offset: usize,
    size: usize,
    kind: ValueKind,
}

impl Field {
    /// A field at `offset` of `size` bytes: for records the layout does not describe.
    pub fn at(offset: usize, size: usize, kind: ValueKind) -> Self {
        Field { offset, size, kind }
    }

    pub fn kind(&self) -> ValueKind {
        self.kind
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The field's bytes in `record` (empty if the record is too short).
    pub fn bytes<'a>(&self, record: &'a [u8]) -> &'a [u8] {
        record
            .get(self.offset..self.offset.saturating_add(self.size))
            .unwrap_or(&[])
    }

    /// An unsigned integer (or bool) field, little endian, widened to u64.
    pub fn u64(&self, record: &[u8]) -> u64 {
        let b = self.bytes(record);
        let mut raw = [0u8; 8];
        let n = b.len().min(8);
        raw[..n].copy_from_slice(&b[..n]);
        u64::from_le_bytes(raw)
    }

    /// [`Field::u64`] truncated to 32 bits (pids, uids, errnos).
    pub fn u32(&self, record: &[u8]) -> u32 {
        self.u64(record) as u32
    }

    /// A signed integer field, sign-extended to i64.
    pub fn i64(&self, record: &[u8]) -> i64 {
        let n = self.bytes(record).len().min(8);
        if n == 0 {
            return 0;
        }
        let shift = 64 - 8 * n as u32;
        ((self.u64(record) << shift) as i64) >> shift
    }

    /// A `char` array as text: up to the first NUL, invalid UTF-8 replaced.
    pub fn str<'a>(&self, record: &'a [u8]) -> Cow<'a, str> {
        let b = self.bytes(record);
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end])
    }

    /// Writes an integer into the field (little endian, truncated to the field's size).
    pub fn set_u64(&self, record: &mut [u8], value: u64) {
        if let Some(b) = record.get_mut(self.offset..self.offset.saturating_add(self.size)) {
            let n = b.len().min(8);
            b[..n].copy_from_slice(&value.to_le_bytes()[..n]);
        }
    }

    /// Writes text into a `char` array field: truncated to leave a NUL, the rest zeroed.
    pub fn set_str(&self, record: &mut [u8], value: &str) {
        if let Some(b) = record.get_mut(self.offset..self.offset.saturating_add(self.size)) {
            let n = value.len().min(b.len().saturating_sub(1));
            b[..n].copy_from_slice(&value.as_bytes()[..n]);
            b[n..].fill(0);
        }
    }
}

/// A Rust type an added field holds: `u64`, `i64`, `f64`, `bool` or `String`.
pub trait AddedType: Clone + Default + sealed::Sealed + 'static {
    #[doc(hidden)]
    const KIND: AddedKind;
    #[doc(hidden)]
    fn column(c: &mut Column) -> Option<&mut Vec<Self>>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u64 {}
    impl Sealed for i64 {}
    impl Sealed for f64 {}
    impl Sealed for bool {}
    impl Sealed for String {}
}

/// The values of one added field in a batch, one per event (dropped ones included until the
/// batch is handed back).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum Column {
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
}

macro_rules! added_type {
    ($t:ty, $kind:ident, $variant:ident) => {
        impl AddedType for $t {
            const KIND: AddedKind = AddedKind::$kind;
            fn column(c: &mut Column) -> Option<&mut Vec<Self>> {
                match c {
                    Column::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
added_type!(u64, U64, U64);
added_type!(i64, S64, I64);
added_type!(f64, F64, F64);
added_type!(bool, Bool, Bool);
added_type!(String, String, String);

impl Column {
    fn new(kind: AddedKind, n: usize) -> Self {
        match kind {
            AddedKind::U64 => Column::U64(vec![0; n]),
            AddedKind::S64 => Column::I64(vec![0; n]),
            AddedKind::F64 => Column::F64(vec![0.0; n]),
            AddedKind::Bool => Column::Bool(vec![false; n]),
            AddedKind::String => Column::String(vec![String::new(); n]),
        }
    }

    fn keep(self, kept: &[bool]) -> AddedValues {
        fn filter<T>(v: Vec<T>, kept: &[bool]) -> Vec<T> {
            v.into_iter()
                .zip(kept)
                .filter_map(|(x, k)| k.then_some(x))
                .collect()
        }
        match self {
            Column::U64(v) => AddedValues::U64(filter(v, kept)),
            Column::I64(v) => AddedValues::S64(filter(v, kept)),
            Column::F64(v) => AddedValues::F64(filter(v, kept)),
            Column::Bool(v) => AddedValues::Bool(filter(v, kept)),
            Column::String(v) => AddedValues::String(filter(v, kept)),
        }
    }
}

/// A field the guest added to an event datasource ([`EventSource::add_field`]); its value is
/// set per event with [`Events::set`].
#[derive(Debug)]
pub struct Added<T: AddedType> {
    datasource: String,
    index: usize,
    _type: PhantomData<T>,
}

thread_local! {
    /// The kinds of the fields added to each event datasource, in declaration order: what
    /// [`Events`] makes columns for.
    static ADDED: RefCell<Vec<(String, Vec<AddedKind>)>> = const { RefCell::new(Vec::new()) };
}

/// An event datasource the guest subscribed to: its layout and the fields it added.
#[derive(Debug, Clone)]
pub struct EventSource {
    name: String,
    layout: RecordLayout,
}

impl EventSource {
    /// Subscribes to the event datasource `name` (only in [`crate::Gadget::init`]): from now
    /// on its events reach [`crate::Gadget::on_events`].
    pub fn subscribe(config: &GadgetConfig, name: &str) -> Result<Self, String> {
        let layout = config.datasource(name)?.record_layout()?.clone();
        host::subscribe_events(name)?;
        Ok(EventSource {
            name: name.to_string(),
            layout,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn layout(&self) -> &RecordLayout {
        &self.layout
    }

    /// The record field `name` ([`RecordLayout::field`]).
    pub fn field(&self, name: &str) -> Result<Field, String> {
        self.layout.field(name)
    }

    /// Adds a field of type `T` to every event (only in `init`); operators show it like the
    /// record's own fields. Its value is the type's default unless [`Events::set`] sets it.
    pub fn add_field<T: AddedType>(
        &mut self,
        name: &str,
        description: &str,
    ) -> Result<Added<T>, String> {
        self.add_field_annotated(name, description, Vec::new())
    }

    /// [`EventSource::add_field`] with annotations (`columns.width`, `metrics.type=key`, ...).
    pub fn add_field_annotated<T: AddedType>(
        &mut self,
        name: &str,
        description: &str,
        annotations: Vec<(String, String)>,
    ) -> Result<Added<T>, String> {
        host::add_field(
            &self.name,
            &AddedField {
                name: name.to_string(),
                kind: T::KIND,
                description: description.to_string(),
                annotations,
            },
        )?;
        let index = ADDED.with_borrow_mut(|all| {
            let at = match all.iter().position(|(n, _)| *n == self.name) {
                Some(at) => at,
                None => {
                    all.push((self.name.clone(), Vec::new()));
                    all.len() - 1
                }
            };
            all[at].1.push(T::KIND);
            all[at].1.len() - 1
        });
        Ok(Added {
            datasource: self.name.clone(),
            index,
            _type: PhantomData,
        })
    }
}

/// One batch of events of a datasource, as [`crate::Gadget::on_events`] sees it: read records,
/// drop events, rewrite records in place, set added fields.
pub struct Events {
    datasource: String,
    data: Vec<u8>,
    ends: Vec<u32>,
    kept: Vec<bool>,
    modified: Vec<bool>,
    added: Vec<Column>,
}

impl Events {
    #[doc(hidden)]
    pub fn from_batch(batch: EventBatch) -> Result<Self, String> {
        let mut start = 0u32;
        for &end in &batch.ends {
            if end < start || end as usize > batch.data.len() {
                return Err(format!(
                    "event batch of {}: record ends are not ascending within {} bytes",
                    batch.datasource,
                    batch.data.len()
                ));
            }
            start = end;
        }
        let n = batch.ends.len();
        let kinds = ADDED.with_borrow(|all| {
            all.iter()
                .find(|(name, _)| *name == batch.datasource)
                .map(|(_, k)| k.clone())
                .unwrap_or_default()
        });
        Ok(Events {
            added: kinds.into_iter().map(|k| Column::new(k, n)).collect(),
            datasource: batch.datasource,
            data: batch.data,
            ends: batch.ends,
            kept: vec![true; n],
            modified: vec![false; n],
        })
    }

    /// What the guest made of the batch, for the host.
    #[doc(hidden)]
    pub fn into_result(self) -> BatchResult {
        let dropped = (0..self.ends.len() as u32)
            .filter(|&i| !self.kept[i as usize])
            .collect();
        let modified = (0..self.ends.len())
            .filter(|&i| self.modified[i] && self.kept[i])
            .map(|i| (i as u32, self.record(i).to_vec()))
            .collect();
        let kept = self.kept;
        BatchResult {
            dropped,
            modified,
            added: self.added.into_iter().map(|c| c.keep(&kept)).collect(),
        }
    }

    /// The event datasource these events belong to.
    pub fn datasource(&self) -> &str {
        &self.datasource
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..self.ends[i] as usize
    }

    /// Event `i`'s record bytes. Panics if `i >= len()`, as slice indexing does.
    pub fn record(&self, i: usize) -> &[u8] {
        &self.data[self.range(i)]
    }

    /// Event `i`'s record, to rewrite in place (its size is fixed).
    pub fn record_mut(&mut self, i: usize) -> &mut [u8] {
        self.modified[i] = true;
        let r = self.range(i);
        &mut self.data[r]
    }

    /// Leaves event `i` out of the output.
    pub fn drop_event(&mut self, i: usize) {
        self.kept[i] = false;
    }

    pub fn is_dropped(&self, i: usize) -> bool {
        !self.kept[i]
    }

    /// Sets event `i`'s value of an added field (a field added to another datasource, or an
    /// `i` past the batch, is ignored).
    pub fn set<T: AddedType>(&mut self, i: usize, field: &Added<T>, value: T) {
        if field.datasource != self.datasource {
            return;
        }
        if let Some(v) = self
            .added
            .get_mut(field.index)
            .and_then(T::column)
            .and_then(|c| c.get_mut(i))
        {
            *v = value;
        }
    }
}

/// Events counted per label set, published as a cumulative counter: IG's `metrics.collect`
/// counters computed in the guest. At most `max_label_sets` label sets are kept; events of
/// further ones are counted under the label set whose every value is `other`.
pub struct EventCounter {
    out: Datasource,
    field: String,
    keys: Vec<String>,
    counts: BTreeMap<Vec<String>, u64>,
    max_label_sets: usize,
}

impl EventCounter {
    /// Declares a datasource `name` (only in `init`) with `keys` as labels and one counter
    /// field, exported (`metrics.collect=true`) and not printed.
    pub fn add(
        name: &str,
        field: &str,
        keys: &[&str],
        description: &str,
        max_label_sets: usize,
    ) -> Result<Self, String> {
        let mut spec = DatasourceConfig {
            name: name.to_string(),
            annotations: vec![
                (gadget_keys::METRICS_COLLECT.into(), "true".into()),
                (gadget_keys::METRICS_PRINT.into(), "false".into()),
            ],
            fields: Vec::new(),
            events: None,
        }
        .spec()?;
        for k in keys {
            spec = spec.with_key(k, "");
        }
        spec = spec.with_counter(field, "", description);
        Ok(EventCounter {
            out: Datasource::add(spec)?,
            field: field.to_string(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            counts: BTreeMap::new(),
            max_label_sets: max_label_sets.max(1),
        })
    }

    /// Counts one event with these label values (in the order of the keys).
    pub fn count(&mut self, values: &[&str]) {
        let key: Vec<String> = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, _)| values.get(i).copied().unwrap_or("").to_string())
            .collect();
        let key = if self.counts.contains_key(&key) || self.counts.len() < self.max_label_sets {
            key
        } else {
            vec!["other".to_string(); self.keys.len()]
        };
        *self.counts.entry(key).or_insert(0) += 1;
    }

    /// Distinct label sets counted so far (the overflow set included).
    pub fn label_sets(&self) -> usize {
        self.counts.len()
    }

    /// Publishes every label set's count so far (cumulative).
    pub fn publish(&self) -> Result<(), String> {
        let samples: Vec<Sample> = self
            .counts
            .iter()
            .map(|(values, n)| {
                self.keys
                    .iter()
                    .zip(values)
                    .fold(Sample::new(&self.field, *n as f64), |s, (k, v)| {
                        s.label(k, v)
                    })
            })
            .collect();
        self.out.publish(&[], &samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::gadget::api::types::RecordField;

    fn layout() -> RecordLayout {
        let f = |name: &str, offset, size, kind| RecordField {
            name: name.into(),
            offset,
            size,
            kind,
            type_names: vec![],
            annotations: vec![],
        };
        RecordLayout {
            size: 24,
            fields: vec![
                f("proc", 0, 20, ValueKind::Structure),
                f("proc.comm", 0, 16, ValueKind::Cstring),
                f("proc.pid", 16, 4, ValueKind::U32),
                f("error", 20, 4, ValueKind::S32),
            ],
        }
    }

    #[test]
    fn fields_decode_and_encode_by_layout() {
        let l = layout();
        let comm = l.field("proc.comm").unwrap();
        let pid = l.field("proc.pid").unwrap();
        let err = l.field("error").unwrap();
        let mut rec = [0u8; 24];
        rec[..3].copy_from_slice(b"cat");
        rec[16..20].copy_from_slice(&4242u32.to_le_bytes());
        rec[20..24].copy_from_slice(&(-2i32).to_le_bytes());
        assert_eq!(comm.str(&rec), "cat");
        assert_eq!(pid.u32(&rec), 4242);
        assert_eq!(err.i64(&rec), -2);
        comm.set_str(&mut rec, "a-very-long-command-name");
        assert_eq!(
            comm.str(&rec),
            "a-very-long-com",
            "truncated to leave a NUL"
        );
        pid.set_u64(&mut rec, 7);
        assert_eq!(pid.u64(&rec), 7);
        assert_eq!(pid.u64(&rec[..10]), 0, "short record reads zero");
        let e = l.field("fname").unwrap_err();
        assert!(e.contains("proc.comm") && e.contains("fname"), "{e}");
    }

    #[test]
    fn batch_result_drops_modifies_and_fills_added_columns() {
        ADDED.with_borrow_mut(|a| a.push(("t".into(), vec![AddedKind::U64, AddedKind::String])));
        let num = Added::<u64> {
            datasource: "t".into(),
            index: 0,
            _type: PhantomData,
        };
        let text = Added::<String> {
            datasource: "t".into(),
            index: 1,
            _type: PhantomData,
        };
        let mut ev = Events::from_batch(EventBatch {
            datasource: "t".into(),
            data: vec![1, 1, 2, 2, 3, 3],
            ends: vec![2, 4, 6],
        })
        .unwrap();
        assert_eq!(ev.record(1), &[2, 2]);
        ev.drop_event(0);
        ev.record_mut(2)[0] = 9;
        ev.record_mut(0)[0] = 9;
        ev.set(1, &num, 5);
        ev.set(2, &text, "x".to_string());
        let r = ev.into_result();
        assert_eq!(r.dropped, vec![0]);
        assert_eq!(
            r.modified,
            vec![(2, vec![9, 3])],
            "dropped events are not sent back"
        );
        assert!(matches!(&r.added[0], AddedValues::U64(v) if *v == vec![5, 0]));
        assert!(
            matches!(&r.added[1], AddedValues::String(v) if *v == vec![String::new(), "x".to_string()])
        );
        let bad = Events::from_batch(EventBatch {
            datasource: "t".into(),
            data: vec![0; 2],
            ends: vec![3],
        });
        assert!(bad.is_err());
    }
}
