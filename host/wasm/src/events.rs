//! Event batches: what the host hands a guest for a tracer's datasource and what it gets back.
//!
//! The host calls the guest once per batch ([`crate::GuestInstance::on_events`]), never once per
//! event. The guest's answer ([`EventsOut`]) is checked whole before any of it is used: dropped
//! indices ascending and inside the batch, modified records exactly as long as the originals,
//! one value of the declared type per kept event for each added field, string values within
//! `guest.label-bytes` and all of them within `guest.added-string-bytes-per-batch`. A malformed
//! answer fails the batch ([`crate::GuestError::Malformed`]); nothing of it is used.

use gadget_model::budgets::GuestBudget;
use gadget_model::datasource::Publication;

use crate::bindings::types;

/// An event datasource of the gadget (a `GADGET_TRACER`) and its records' layout, as the
/// object's BTF describes the event struct. Handed to [`crate::GuestInstance::start_with_events`]
/// so the guest's `init` sees the layout.
#[derive(Debug, Clone)]
pub struct EventDatasource {
    pub datasource: String,
    pub layout: gadget_events::Layout,
}

/// The type of a field a guest adds to events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddedKind {
    U64,
    I64,
    F64,
    Bool,
    String,
}

/// A field the guest added to an event datasource in `init` (`add-field`).
#[derive(Debug, Clone, PartialEq)]
pub struct AddedField {
    pub name: String,
    pub kind: AddedKind,
    pub description: String,
    pub annotations: Vec<(String, String)>,
}

/// The values of one added field, one per kept event, in batch order.
#[derive(Debug, Clone, PartialEq)]
pub enum AddedValues {
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
}

impl AddedValues {
    pub fn kind(&self) -> AddedKind {
        match self {
            AddedValues::U64(_) => AddedKind::U64,
            AddedValues::I64(_) => AddedKind::I64,
            AddedValues::F64(_) => AddedKind::F64,
            AddedValues::Bool(_) => AddedKind::Bool,
            AddedValues::String(_) => AddedKind::String,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            AddedValues::U64(v) => v.len(),
            AddedValues::I64(v) => v.len(),
            AddedValues::F64(v) => v.len(),
            AddedValues::Bool(v) => v.len(),
            AddedValues::String(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn append(&mut self, other: AddedValues) {
        match (self, other) {
            (AddedValues::U64(a), AddedValues::U64(b)) => a.extend(b),
            (AddedValues::I64(a), AddedValues::I64(b)) => a.extend(b),
            (AddedValues::F64(a), AddedValues::F64(b)) => a.extend(b),
            (AddedValues::Bool(a), AddedValues::Bool(b)) => a.extend(b),
            (AddedValues::String(a), AddedValues::String(b)) => a.extend(b),
            // Both come from checked results for the same declared field: same kind.
            _ => {}
        }
    }
}

/// What the guest made of a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventsOut {
    /// Indices (into the batch) of the events to show, ascending.
    pub kept: Vec<u32>,
    /// New bytes for kept events, by index into the batch, ascending; each exactly as long as
    /// the event it replaces.
    pub modified: Vec<(u32, Vec<u8>)>,
    /// One column per added field ([`crate::GuestInstance::added_fields`] order), one value per
    /// kept event (`added[f]`'s i-th value belongs to `kept[i]`). Empty when none were added.
    pub added: Vec<AddedValues>,
    /// Counters and gauges the guest published during the batch (replacing its previous ones).
    pub published: Vec<Publication>,
}

impl EventsOut {
    /// Every event kept unchanged: what a guest that did not subscribe amounts to.
    pub fn pass_through(n: usize) -> Self {
        EventsOut {
            kept: (0..n as u32).collect(),
            ..EventsOut::default()
        }
    }

    /// The records to show, in order: the kept ones of `records` (the batch handed to
    /// [`crate::GuestInstance::on_events`]), the guest's new bytes in place of the originals.
    /// The i-th record returned goes with the i-th value of every [`EventsOut::added`] column.
    pub fn apply(&self, mut records: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut modified = self.modified.iter().peekable();
        self.kept
            .iter()
            .filter_map(|&i| {
                let new = modified.next_if(|(m, _)| *m == i).map(|(_, b)| b.clone());
                let slot = records.get_mut(i as usize)?;
                Some(new.unwrap_or_else(|| std::mem::take(slot)))
            })
            .collect()
    }

    /// Appends the result of the next chunk of the same batch, whose first event is `offset`.
    pub(crate) fn append(&mut self, next: EventsOut, offset: u32) {
        self.kept.extend(next.kept.into_iter().map(|i| i + offset));
        self.modified
            .extend(next.modified.into_iter().map(|(i, b)| (i + offset, b)));
        if self.added.is_empty() {
            self.added = next.added;
        } else {
            for (mine, theirs) in self.added.iter_mut().zip(next.added) {
                mine.append(theirs);
            }
        }
        // A later publication of a datasource replaces the earlier one, as within one call.
        for p in next.published {
            self.published.retain(|q| q.datasource != p.datasource);
            self.published.push(p);
        }
    }
}

pub(crate) fn added_from_wit(f: types::AddedField) -> AddedField {
    AddedField {
        name: f.name,
        kind: match f.kind {
            types::AddedKind::U64 => AddedKind::U64,
            types::AddedKind::S64 => AddedKind::I64,
            types::AddedKind::F64 => AddedKind::F64,
            types::AddedKind::Bool => AddedKind::Bool,
            types::AddedKind::String => AddedKind::String,
        },
        description: f.description,
        annotations: f.annotations,
    }
}

/// One chunk of raw records, flattened for the guest (one copy of the bytes).
pub(crate) fn batch_to_wit<R: AsRef<[u8]>>(
    datasource: &str,
    records: &[R],
) -> Result<types::EventBatch, String> {
    let total: usize = records.iter().map(|r| r.as_ref().len()).sum();
    if u32::try_from(total).is_err() {
        return Err(format!(
            "a batch of {total} bytes of records (at most {} in one call)",
            u32::MAX
        ));
    }
    let mut data = Vec::with_capacity(total);
    let mut ends = Vec::with_capacity(records.len());
    for r in records {
        data.extend_from_slice(r.as_ref());
        // Fits: checked against the total above.
        ends.push(data.len() as u32);
    }
    Ok(types::EventBatch {
        datasource: datasource.to_string(),
        data,
        ends,
    })
}

/// Checks the guest's answer for a chunk of `records` against its declared `added` fields and
/// the budget, and turns it into the host's form.
pub(crate) fn check_result<R: AsRef<[u8]>>(
    records: &[R],
    added: &[AddedField],
    budget: &GuestBudget,
    result: types::BatchResult,
) -> Result<EventsOut, String> {
    let n = records.len();
    let mut kept = Vec::with_capacity(n.saturating_sub(result.dropped.len()));
    let mut next = 0usize;
    for &d in &result.dropped {
        let d = d as usize;
        if d >= n {
            return Err(format!(
                "dropped event {d} is not in the batch of {n} events"
            ));
        }
        if d < next {
            return Err(format!(
                "dropped indices must be ascending and unique: {d} comes after {}",
                next.saturating_sub(1)
            ));
        }
        kept.extend(next as u32..d as u32);
        next = d + 1;
    }
    kept.extend(next as u32..n as u32);
    let mut previous: Option<u32> = None;
    for (i, bytes) in &result.modified {
        if previous.is_some_and(|p| p >= *i) {
            return Err(format!(
                "modified indices must be ascending and unique: {i} comes after {}",
                previous.unwrap_or_default()
            ));
        }
        previous = Some(*i);
        let Some(original) = records.get(*i as usize) else {
            return Err(format!(
                "modified event {i} is not in the batch of {n} events"
            ));
        };
        if kept.binary_search(i).is_err() {
            return Err(format!("event {i} is both dropped and modified"));
        }
        let want = original.as_ref().len();
        if bytes.len() != want {
            return Err(format!(
                "modified event {i} is {} bytes, but the record it replaces is {want}: a guest rewrites fields in place and cannot change a record's size",
                bytes.len()
            ));
        }
    }
    if result.added.len() != added.len() {
        return Err(format!(
            "{} columns of added values for {} added fields ({})",
            result.added.len(),
            added.len(),
            added
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut string_bytes = 0usize;
    let mut columns = Vec::with_capacity(added.len());
    for (field, values) in added.iter().zip(result.added) {
        let values = match values {
            types::AddedValues::U64(v) => AddedValues::U64(v),
            types::AddedValues::S64(v) => AddedValues::I64(v),
            types::AddedValues::F64(v) => AddedValues::F64(v),
            types::AddedValues::Bool(v) => AddedValues::Bool(v),
            types::AddedValues::String(v) => AddedValues::String(v),
        };
        if values.kind() != field.kind {
            return Err(format!(
                "added field {} is declared {:?} but the guest returned {:?} values",
                field.name,
                field.kind,
                values.kind()
            ));
        }
        if values.len() != kept.len() {
            return Err(format!(
                "added field {} has {} values for {} kept events",
                field.name,
                values.len(),
                kept.len()
            ));
        }
        if let AddedValues::String(strings) = &values {
            for s in strings {
                if s.len() > budget.label_bytes {
                    return Err(format!(
                        "a value of added field {} is {} bytes (budget guest.label-bytes = {})",
                        field.name,
                        s.len(),
                        budget.label_bytes
                    ));
                }
                string_bytes += s.len();
            }
            if string_bytes > budget.added_string_bytes_per_batch {
                return Err(format!(
                    "{string_bytes} bytes of added string values in one batch (budget guest.added-string-bytes-per-batch = {})",
                    budget.added_string_bytes_per_batch
                ));
            }
        }
        columns.push(values);
    }
    Ok(EventsOut {
        kept,
        modified: result.modified,
        added: columns,
        published: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: AddedKind) -> AddedField {
        AddedField {
            name: name.into(),
            kind,
            description: String::new(),
            annotations: Vec::new(),
        }
    }

    fn result(
        dropped: Vec<u32>,
        modified: Vec<(u32, Vec<u8>)>,
        added: Vec<types::AddedValues>,
    ) -> types::BatchResult {
        types::BatchResult {
            dropped,
            modified,
            added,
        }
    }

    const RECORDS: [[u8; 4]; 4] = [[0; 4], [1; 4], [2; 4], [3; 4]];

    #[test]
    fn drops_modifies_and_adds() {
        let b = GuestBudget::default();
        let out = check_result(
            &RECORDS,
            &[field("x", AddedKind::U64)],
            &b,
            result(
                vec![1, 3],
                vec![(2, vec![9; 4])],
                vec![types::AddedValues::U64(vec![10, 12])],
            ),
        )
        .unwrap();
        assert_eq!(out.kept, vec![0, 2]);
        assert_eq!(out.modified, vec![(2, vec![9; 4])]);
        assert_eq!(out.added, vec![AddedValues::U64(vec![10, 12])]);
        let records: Vec<Vec<u8>> = RECORDS.iter().map(|r| r.to_vec()).collect();
        assert_eq!(out.apply(records), vec![vec![0; 4], vec![9; 4]]);
    }

    #[test]
    fn malformed_answers_are_refused_with_the_reason() {
        let b = GuestBudget::default();
        let none: &[AddedField] = &[];
        let err = |r| check_result(&RECORDS, none, &b, r).unwrap_err();
        assert!(err(result(vec![4], vec![], vec![])).contains("not in the batch of 4"));
        assert!(err(result(vec![2, 1], vec![], vec![])).contains("ascending"));
        assert!(err(result(vec![1, 1], vec![], vec![])).contains("ascending"));
        assert!(err(result(vec![], vec![(0, vec![0; 5])], vec![])).contains("5 bytes"));
        assert!(err(result(vec![0], vec![(0, vec![0; 4])], vec![])).contains("both dropped"));
        assert!(
            err(result(
                vec![],
                vec![(1, vec![0; 4]), (1, vec![0; 4])],
                vec![]
            ))
            .contains("ascending")
        );
        assert!(
            err(result(
                vec![],
                vec![],
                vec![types::AddedValues::U64(vec![])]
            ))
            .contains("1 columns of added values for 0")
        );
        let one = [field("s", AddedKind::String)];
        let err = |r| check_result(&RECORDS, &one, &b, r).unwrap_err();
        assert!(
            err(result(
                vec![],
                vec![],
                vec![types::AddedValues::U64(vec![0; 4])]
            ))
            .contains("declared String")
        );
        assert!(
            err(result(
                vec![],
                vec![],
                vec![types::AddedValues::String(vec![String::new(); 3])]
            ))
            .contains("3 values for 4 kept")
        );
        let long = "x".repeat(b.label_bytes + 1);
        assert!(
            err(result(
                vec![],
                vec![],
                vec![types::AddedValues::String(vec![long; 4])]
            ))
            .contains("guest.label-bytes")
        );
        let small = GuestBudget {
            added_string_bytes_per_batch: 10,
            ..GuestBudget::default()
        };
        let e = check_result(
            &RECORDS,
            &one,
            &small,
            result(
                vec![],
                vec![],
                vec![types::AddedValues::String(vec!["abcd".into(); 4])],
            ),
        )
        .unwrap_err();
        assert!(e.contains("guest.added-string-bytes-per-batch = 10"), "{e}");
    }

    #[test]
    fn chunks_append_with_their_offset() {
        let mut all = EventsOut::default();
        all.append(
            EventsOut {
                kept: vec![0, 1],
                modified: vec![(1, vec![1])],
                added: vec![AddedValues::U64(vec![1, 2])],
                published: vec![],
            },
            0,
        );
        all.append(
            EventsOut {
                kept: vec![1],
                modified: vec![(1, vec![2])],
                added: vec![AddedValues::U64(vec![3])],
                published: vec![],
            },
            2,
        );
        assert_eq!(all.kept, vec![0, 1, 3]);
        assert_eq!(all.modified, vec![(1, vec![1]), (3, vec![2])]);
        assert_eq!(all.added, vec![AddedValues::U64(vec![1, 2, 3])]);
    }
}
