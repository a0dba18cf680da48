//! The layout of one event record: its fields as IG names them, where their bytes are, and what
//! they mean.
//!
//! The caller (the object crate, from the BTF of the tracer's event struct) pushes one
//! [`FieldSpec`] per struct member, depth first, a struct or union member before its own members,
//! exactly as IG's eBPF operator walks the BTF (pkg/operators/ebpf/struct.go). The builder:
//! - names fields as IG does: `parent.member` (`proc.parent.pid`);
//! - applies IG's implicit annotations: the templates of `gadget_*` types (`gadget_pid` → right
//!   aligned, min width 7 …), hidden process/creds/parent structs, and `columns.alias` = the member
//!   name for members of `gadget_process`, `gadget_creds` and `gadget_parent`;
//! - skips members whose name starts with `__` (IG's rule), reporting them as skipped.
//!
//! Invariants of a built [`Layout`] (checked, each violation a typed error naming the field):
//! every field lies inside the record and inside its parent; a scalar's size is its kind's size;
//! members of a struct (and top-level fields) do not overlap, members of a union may; full names are
//! unique; at most [`MAX_FIELDS`] fields; names are 1..=[`MAX_NAME_LEN`] bytes without `.`.

use crate::annotations::{self, Annotations};
use crate::kind::{FieldKind, ig_type};

/// Most fields one layout may hold (IG's biggest event structs have well under 100).
pub const MAX_FIELDS: usize = 4096;
/// Longest member name accepted.
pub const MAX_NAME_LEN: usize = 256;
/// Largest record accepted (a ring buffer record is far smaller).
pub const MAX_RECORD_SIZE: u32 = 16 << 20;

/// Index of a field in its layout (and in the [`crate::Schema`] built from it).
pub type FieldId = usize;

/// One member as the caller found it in BTF.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// The member's own name (`pid`), not the full name.
    pub name: String,
    /// The struct or union member this one belongs to, `None` at the top level.
    pub parent: Option<FieldId>,
    /// Byte offset from the start of the record (not from the parent).
    pub offset: u32,
    pub size: u32,
    pub kind: FieldKind,
    /// BTF type names along the member's typedef chain, outermost first
    /// (`["gadget_errno", "__u32", "unsigned int"]`); IG tags the field `type:<name>` for each.
    pub type_names: Vec<String>,
}

impl FieldSpec {
    pub fn new(
        name: &str,
        parent: Option<FieldId>,
        offset: u32,
        size: u32,
        kind: FieldKind,
    ) -> Self {
        FieldSpec {
            name: name.to_string(),
            parent,
            offset,
            size,
            kind,
            type_names: Vec::new(),
        }
    }

    /// Adds BTF type names (outermost first).
    pub fn types(mut self, names: &[&str]) -> Self {
        self.type_names
            .extend(names.iter().map(|s| (*s).to_string()));
        self
    }
}

/// A field of a built layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutField {
    pub name: String,
    /// Dotted name as IG shows it (`proc.creds.uid`).
    pub full_name: String,
    pub parent: Option<FieldId>,
    pub offset: u32,
    pub size: u32,
    pub kind: FieldKind,
    pub type_names: Vec<String>,
    /// IG's defaults plus the implicit annotations of the field's types.
    pub annotations: Annotations,
}

impl LayoutField {
    /// True if `type_name` is in the field's typedef chain (IG: the field has tag `type:<name>`).
    pub fn has_type(&self, type_name: &str) -> bool {
        self.type_names.iter().any(|t| t == type_name)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error(
        "event field name {0:?} is invalid: a member name must be 1..={MAX_NAME_LEN} bytes without '.'"
    )]
    InvalidName(String),
    #[error("event field {0:?} appears twice; BTF member names must be unique within a struct")]
    Duplicate(String),
    #[error(
        "event field {field:?} names parent #{parent}, which is not an earlier struct or union field"
    )]
    BadParent { field: String, parent: FieldId },
    #[error(
        "event field {field:?} (offset {offset}, size {size}) ends beyond the {record_size}-byte record"
    )]
    BeyondRecord {
        field: String,
        offset: u32,
        size: u32,
        record_size: u32,
    },
    #[error(
        "event field {field:?} (offset {offset}, size {size}) is not inside its parent {parent:?}"
    )]
    BeyondParent {
        field: String,
        offset: u32,
        size: u32,
        parent: String,
    },
    #[error("event field {field:?} has size {size} but its kind {kind} needs {needed} bytes")]
    SizeMismatch {
        field: String,
        kind: &'static str,
        size: u32,
        needed: u32,
    },
    #[error("event fields {first:?} and {second:?} overlap (only members of a union may)")]
    Overlap { first: String, second: String },
    #[error(
        "event field {0:?}: kind string is computed on the host and cannot be part of a record"
    )]
    HostKind(String),
    #[error("event record has more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("event record size {0} is out of range (1..={MAX_RECORD_SIZE})")]
    RecordSize(u32),
}

/// The fields of one record type, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    record_size: u32,
    fields: Vec<LayoutField>,
    skipped: Vec<String>,
}

impl Layout {
    pub fn record_size(&self) -> u32 {
        self.record_size
    }

    pub fn fields(&self) -> &[LayoutField] {
        &self.fields
    }

    pub fn field(&self, full_name: &str) -> Option<(FieldId, &LayoutField)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.full_name == full_name)
    }

    /// Full names of members left out under IG's rules (names starting with `__`), for a notice.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}

/// Builds a [`Layout`]; see the module docs for the rules.
#[derive(Debug)]
pub struct LayoutBuilder {
    record_size: u32,
    fields: Vec<LayoutField>,
    /// Maps the caller's push order to layout ids (skipped members map to `None`).
    ids: Vec<Option<FieldId>>,
    skipped: Vec<String>,
}

impl LayoutBuilder {
    pub fn new(record_size: u32) -> Self {
        LayoutBuilder {
            record_size,
            fields: Vec::new(),
            ids: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Adds a member; returns its id, or `None` if IG's rules skip it (a `__` name: its own members
    /// must then not be pushed, they would name a missing parent).
    pub fn push(&mut self, spec: FieldSpec) -> Result<Option<FieldId>, LayoutError> {
        if spec.name.is_empty() || spec.name.len() > MAX_NAME_LEN || spec.name.contains('.') {
            return Err(LayoutError::InvalidName(spec.name));
        }
        if self.fields.len() >= MAX_FIELDS {
            return Err(LayoutError::TooManyFields);
        }
        let parent = match spec.parent {
            None => None,
            Some(p) => match self.fields.get(p) {
                Some(pf) if pf.kind.is_container() => Some(p),
                _ => {
                    return Err(LayoutError::BadParent {
                        field: spec.name,
                        parent: p,
                    });
                }
            },
        };
        let full_name = match parent {
            Some(p) => format!("{}.{}", self.fields[p].full_name, spec.name),
            None => spec.name.clone(),
        };
        if spec.name.starts_with("__") {
            self.skipped.push(full_name);
            self.ids.push(None);
            return Ok(None);
        }
        if spec.kind == FieldKind::String {
            return Err(LayoutError::HostKind(full_name));
        }
        if self.fields.iter().any(|f| f.full_name == full_name) {
            return Err(LayoutError::Duplicate(full_name));
        }
        if let Some(needed) = spec.kind.fixed_size()
            && needed != spec.size
        {
            return Err(LayoutError::SizeMismatch {
                field: full_name,
                kind: spec.kind.name(),
                size: spec.size,
                needed,
            });
        }

        let mut ann = annotations::defaults();
        for t in &spec.type_names {
            annotations::apply_type_template(t, &mut ann);
        }
        // IG shortens the headers of process fields to the member name (`COMM`, not `PROC.COMM`).
        if let Some(p) = parent {
            let pf = &self.fields[p];
            if pf.has_type(ig_type::PROCESS)
                || pf.has_type(ig_type::CREDS)
                || pf.has_type(ig_type::PARENT)
            {
                ann.insert(annotations::COLUMNS_ALIAS.to_string(), spec.name.clone());
            }
        }

        let id = self.fields.len();
        self.fields.push(LayoutField {
            name: spec.name,
            full_name,
            parent,
            offset: spec.offset,
            size: spec.size,
            kind: spec.kind,
            type_names: spec.type_names,
            annotations: ann,
        });
        self.ids.push(Some(id));
        Ok(Some(id))
    }

    /// Validates placement (record bounds, parents, overlaps) and returns the layout.
    pub fn build(self) -> Result<Layout, LayoutError> {
        if self.record_size == 0 || self.record_size > MAX_RECORD_SIZE {
            return Err(LayoutError::RecordSize(self.record_size));
        }
        let end = |f: &LayoutField| u64::from(f.offset) + u64::from(f.size);
        for f in &self.fields {
            if end(f) > u64::from(self.record_size) {
                return Err(LayoutError::BeyondRecord {
                    field: f.full_name.clone(),
                    offset: f.offset,
                    size: f.size,
                    record_size: self.record_size,
                });
            }
            if let Some(p) = f.parent {
                let pf = &self.fields[p];
                if f.offset < pf.offset || end(f) > end(pf) {
                    return Err(LayoutError::BeyondParent {
                        field: f.full_name.clone(),
                        offset: f.offset,
                        size: f.size,
                        parent: pf.full_name.clone(),
                    });
                }
            }
        }
        // Siblings of a struct (or of the record) must not overlap; sort by offset per parent so
        // the check is O(n log n) even for hostile layouts.
        let mut by_parent: std::collections::BTreeMap<Option<FieldId>, Vec<FieldId>> =
            Default::default();
        for (i, f) in self.fields.iter().enumerate() {
            by_parent.entry(f.parent).or_default().push(i);
        }
        for (parent, mut ids) in by_parent {
            if let Some(p) = parent
                && self.fields[p].kind == FieldKind::Union
            {
                continue;
            }
            ids.sort_by_key(|&i| (self.fields[i].offset, self.fields[i].size));
            for w in ids.windows(2) {
                let (a, b) = (&self.fields[w[0]], &self.fields[w[1]]);
                // Zero-sized members (flexible arrays) occupy nothing.
                if a.size > 0 && b.size > 0 && end(a) > u64::from(b.offset) {
                    return Err(LayoutError::Overlap {
                        first: a.full_name.clone(),
                        second: b.full_name.clone(),
                    });
                }
            }
        }
        Ok(Layout {
            record_size: self.record_size,
            fields: self.fields,
            skipped: self.skipped,
        })
    }
}
