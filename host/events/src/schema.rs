//! The fields a user sees for one datasource: the record's fields plus IG's derived fields, with
//! their final annotations, visibility and order; and the per-event values.
//!
//! Built once per run from a [`Layout`] and the datasource's field annotations (gadget.yaml
//! `datasources.<ds>.fields.<full name>.annotations`, then `--annotate`), in IG's order:
//! record fields get the config annotations of their full name; families add derived fields
//! (module [`crate::format`]), each getting its base annotations, its template, then the config
//! annotations of its own full name; `columns.hidden=true` hides; sources are hidden as the family
//! says; `gadget_user_stack` fields are hidden with all their members and `gadget_kernel_stack`
//! fields hidden (IG's ustack and kstack operators; their symbolized fields need the stack maps
//! and are not produced here).
//!
//! Fields the host adds later ([`Schema::add_host_field`], e.g. a Wasm guest's enrichment) come
//! last and start as their kind's zero value in each event.
//!
//! Invariants: field ids of the layout are the same ids here (derived, then added fields follow);
//! full names are unique; [`Schema::event`] yields exactly one value per field.

use std::collections::BTreeMap;

use crate::annotations::{self, Annotations};
use crate::decode::{self, DecodeError, Value};
use crate::format::{FAMILIES, FormatContext, SourceVisibility};
use crate::kind::{FieldKind, ig_type};
use crate::layout::{FieldId, Layout};

/// Most fields a schema may hold, record fields and added ones together.
pub const MAX_SCHEMA_FIELDS: usize = 2 * crate::layout::MAX_FIELDS;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("field name {0:?} is invalid: 1..=256 bytes without '.'")]
    InvalidName(String),
    #[error("field {0:?} already exists in the datasource")]
    Duplicate(String),
    #[error("field {0:?}: its parent is not a struct or union field of the datasource")]
    BadParent(String),
    #[error("field {name:?}: an added field must be a string, number or bool, not {kind}")]
    HostKind { name: String, kind: &'static str },
    #[error("the datasource has {MAX_SCHEMA_FIELDS} fields; no more can be added")]
    TooManyFields,
}

/// Annotations per full field name, as gadget.yaml and `--annotate` give them.
pub type FieldConfig = BTreeMap<String, Annotations>;

/// Where a field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Record,
    /// Computed by formatter family `family` (index into the crate's family table) from `from`.
    Derived {
        family: usize,
        from: FieldId,
    },
    /// Added by the host (e.g. declared by a Wasm guest that enriches events): starts as the
    /// kind's zero value in every event; the caller sets it.
    Host,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchemaField {
    pub name: String,
    pub full_name: String,
    pub parent: Option<FieldId>,
    pub kind: FieldKind,
    /// Bytes in the record (0 for derived fields).
    pub size: u32,
    pub type_names: Vec<String>,
    pub annotations: Annotations,
    /// Hidden by default (columns and the default `--fields`); JSON shows hidden fields too.
    pub hidden: bool,
    /// IG's `Order`: default columns are sorted by it (stable); record fields 0, derived fields
    /// their index, so they follow the record's fields.
    pub order: i64,
    pub source: Source,
}

impl SchemaField {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// The datasource's fields; see the module docs.
#[derive(Debug, Clone)]
pub struct Schema {
    layout: Layout,
    fields: Vec<SchemaField>,
    notices: Vec<String>,
}

/// One event: a value per schema field.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub values: Vec<Value>,
}

impl Event {
    pub fn get(&self, id: FieldId) -> Option<&Value> {
        self.values.get(id)
    }
}

fn is_hidden_annotated(ann: &Annotations) -> bool {
    ann.get(annotations::COLUMNS_HIDDEN).map(String::as_str) == Some("true")
}

impl Schema {
    pub fn new(layout: Layout, config: &FieldConfig) -> Schema {
        let mut notices = Vec::new();
        let mut fields: Vec<SchemaField> = layout
            .fields()
            .iter()
            .map(|f| {
                let mut ann = f.annotations.clone();
                if let Some(extra) = config.get(&f.full_name) {
                    apply_config(&mut ann, extra);
                }
                SchemaField {
                    name: f.name.clone(),
                    full_name: f.full_name.clone(),
                    parent: f.parent,
                    kind: f.kind,
                    size: f.size,
                    type_names: f.type_names.clone(),
                    hidden: is_hidden_annotated(&ann),
                    annotations: ann,
                    order: 0,
                    source: Source::Record,
                }
            })
            .collect();
        for skipped in layout.skipped() {
            notices.push(format!(
                "event field {skipped:?} is skipped (IG leaves out members named __*)"
            ));
        }

        let record_fields = fields.len();
        for (family_idx, family) in FAMILIES.iter().enumerate() {
            for src in 0..record_fields {
                let f = &fields[src];
                if !f.type_names.iter().any(|t| t == family.ig_type()) || !family.applies(f.kind) {
                    continue;
                }
                let target = match f.annotations.get(family.target_annotation()) {
                    Some(t) => t.clone(),
                    None => match f.name.strip_suffix("_raw") {
                        Some(t) => t.to_string(),
                        None => match family.fallback_target() {
                            Some(t) => t.to_string(),
                            None => continue,
                        },
                    },
                };
                let parent = f.parent;
                let full_name = match parent {
                    Some(p) => format!("{}.{}", fields[p].full_name, target),
                    None => target.clone(),
                };
                if target.is_empty()
                    || target.contains('.')
                    || fields.iter().any(|g| g.full_name == full_name)
                {
                    notices.push(format!(
                        "field {:?}: cannot add its formatted field {full_name:?} (name taken or invalid); shown raw",
                        f.full_name
                    ));
                    continue;
                }
                let mut ann = match family.base_annotations() {
                    None => annotations::defaults(),
                    Some(base) => base
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                        .collect(),
                };
                if let Some(t) = ann.get(annotations::TEMPLATE).cloned() {
                    annotations::apply_template(&t, &mut ann);
                }
                if let Some(extra) = config.get(&full_name) {
                    apply_config(&mut ann, extra);
                }
                let hidden = family.derived_hidden() || is_hidden_annotated(&ann);
                let src_hidden = match family.source_visibility() {
                    SourceVisibility::Hidden => true,
                    SourceVisibility::HiddenUnlessAnnotated => {
                        match f.annotations.get(annotations::COLUMNS_HIDDEN) {
                            Some(v) => v == "true",
                            None => true,
                        }
                    }
                };
                fields[src].hidden = src_hidden;
                let id = fields.len();
                fields.push(SchemaField {
                    name: target,
                    full_name,
                    parent,
                    kind: FieldKind::String,
                    size: 0,
                    type_names: Vec::new(),
                    annotations: ann,
                    hidden,
                    order: id as i64,
                    source: Source::Derived {
                        family: family_idx,
                        from: src,
                    },
                });
            }
        }

        // IG's ustack operator hides user stacks with all members; kstack hides the raw id.
        let children = child_lists(&fields);
        for i in 0..record_fields {
            if fields[i]
                .type_names
                .iter()
                .any(|t| t == ig_type::USER_STACK)
            {
                let mut stack = vec![i];
                while let Some(j) = stack.pop() {
                    fields[j].hidden = true;
                    stack.extend_from_slice(&children[j]);
                }
            }
            if fields[i]
                .type_names
                .iter()
                .any(|t| t == ig_type::KERNEL_STACK)
            {
                fields[i].hidden = true;
                notices.push(format!(
                    "field {:?} is a kernel stack id; symbolized stacks are not supported yet",
                    fields[i].full_name
                ));
            }
            if fields[i].kind == FieldKind::Bytes {
                notices.push(format!(
                    "field {:?} has a type the host cannot render; shown raw",
                    fields[i].full_name
                ));
            }
        }
        Schema {
            layout,
            fields,
            notices,
        }
    }

    /// Adds a field whose value the caller sets in each event (a guest's enrichment, an operator's
    /// field). `parent` nests it (JSON object, dotted name); annotations are IG's defaults plus
    /// `annotations`. Returns its id; events made by [`Schema::event`] carry the kind's zero value.
    pub fn add_host_field(
        &mut self,
        name: &str,
        parent: Option<FieldId>,
        kind: FieldKind,
        extra: &Annotations,
    ) -> Result<FieldId, SchemaError> {
        if name.is_empty() || name.len() > crate::layout::MAX_NAME_LEN || name.contains('.') {
            return Err(SchemaError::InvalidName(name.to_string()));
        }
        if !matches!(
            kind,
            FieldKind::String
                | FieldKind::U8
                | FieldKind::U16
                | FieldKind::U32
                | FieldKind::U64
                | FieldKind::I8
                | FieldKind::I16
                | FieldKind::I32
                | FieldKind::I64
                | FieldKind::Bool
                | FieldKind::F32
                | FieldKind::F64
        ) {
            return Err(SchemaError::HostKind {
                name: name.to_string(),
                kind: kind.name(),
            });
        }
        if self.fields.len() >= MAX_SCHEMA_FIELDS {
            return Err(SchemaError::TooManyFields);
        }
        let full_name = match parent {
            Some(p) => match self.fields.get(p) {
                Some(pf) if pf.kind.is_container() => format!("{}.{name}", pf.full_name),
                _ => return Err(SchemaError::BadParent(name.to_string())),
            },
            None => name.to_string(),
        };
        if self.id_of(&full_name).is_some() {
            return Err(SchemaError::Duplicate(full_name));
        }
        let mut ann = annotations::defaults();
        apply_config(&mut ann, extra);
        let id = self.fields.len();
        self.fields.push(SchemaField {
            name: name.to_string(),
            full_name,
            parent,
            kind,
            size: 0,
            type_names: Vec::new(),
            hidden: is_hidden_annotated(&ann),
            annotations: ann,
            order: id as i64,
            source: Source::Host,
        });
        Ok(id)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn fields(&self) -> &[SchemaField] {
        &self.fields
    }

    pub fn field(&self, id: FieldId) -> Option<&SchemaField> {
        self.fields.get(id)
    }

    /// Looks a field up by its full name.
    pub fn id_of(&self, full_name: &str) -> Option<FieldId> {
        self.fields.iter().position(|f| f.full_name == full_name)
    }

    /// Things the user should be told once (skipped members, raw-only types, …).
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Every selectable field name, sorted (IG's list under `--fields`).
    pub fn available(&self) -> Vec<String> {
        let mut names: Vec<String> = self.fields.iter().map(|f| f.full_name.clone()).collect();
        names.sort();
        names
    }

    /// The fields shown by default: not hidden, stably sorted by order (IG's default `--fields`).
    pub fn default_fields(&self) -> Vec<FieldId> {
        let mut ids: Vec<FieldId> = (0..self.fields.len())
            .filter(|&i| !self.fields[i].hidden)
            .collect();
        ids.sort_by_key(|&i| self.fields[i].order);
        ids
    }

    /// Decodes `record` and computes the derived fields.
    pub fn event(&self, record: &[u8], ctx: &FormatContext<'_>) -> Result<Event, DecodeError> {
        let mut values = decode::decode(&self.layout, record)?;
        values.reserve(self.fields.len() - values.len());
        for f in &self.fields[values.len()..] {
            let Source::Derived { family, from } = f.source else {
                values.push(zero(f.kind));
                continue;
            };
            let src = &self.fields[from];
            let s =
                FAMILIES[family].derive_with(&mut values[from], src.kind, &src.annotations, ctx);
            values.push(Value::Str(s));
        }
        Ok(Event { values })
    }
}

/// The members of each field (by id), in id order: one pass, so tree walks stay linear.
pub(crate) fn child_lists(fields: &[SchemaField]) -> Vec<Vec<FieldId>> {
    let mut out = vec![Vec::new(); fields.len()];
    for (i, f) in fields.iter().enumerate() {
        if let Some(p) = f.parent
            && p < out.len()
        {
            out[p].push(i);
        }
    }
    out
}

/// The value a host field starts with.
fn zero(kind: FieldKind) -> Value {
    match kind {
        FieldKind::U8 | FieldKind::U16 | FieldKind::U32 | FieldKind::U64 => Value::U64(0),
        FieldKind::I8 | FieldKind::I16 | FieldKind::I32 | FieldKind::I64 => Value::I64(0),
        FieldKind::Bool => Value::Bool(false),
        FieldKind::F32 => Value::F32(0.0),
        FieldKind::F64 => Value::F64(0.0),
        FieldKind::CString | FieldKind::String => Value::Str(String::new()),
        FieldKind::Bytes | FieldKind::Struct | FieldKind::Union => Value::Bytes(Vec::new()),
    }
}

fn apply_config(dst: &mut Annotations, extra: &Annotations) {
    // A template named in the config applies first, so the config's own keys win (IG's
    // applyFieldConfig).
    if let Some(t) = extra.get(annotations::TEMPLATE) {
        annotations::apply_template(t, dst);
    }
    for (k, v) in extra {
        dst.insert(k.clone(), v.clone());
    }
}
