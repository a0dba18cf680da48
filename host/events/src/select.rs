//! IG's `--fields` (pkg/operators/cli `parseFields` + textcolumns `SetShowColumns`).
//!
//! Comma-separated; blanks trimmed; `+name` adds to the selection, `-name` removes from it, plain
//! names (deduplicated, in the given order) replace the default set. Names match full field names
//! case-insensitively, or a `columns.alias` when exactly one field has it (IG looks aliases up in
//! a map, so an alias shared by two fields, like `comm`, would be ambiguous there).

use crate::layout::FieldId;
use crate::schema::Schema;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("--fields: unknown field {field:?}; available fields: {}", available.join(", "))]
    Unknown {
        field: String,
        available: Vec<String>,
    },
}

fn resolve(schema: &Schema, name: &str) -> Result<FieldId, SelectError> {
    let lower = name.to_lowercase();
    if let Some(i) = schema
        .fields()
        .iter()
        .position(|f| f.full_name.to_lowercase() == lower)
    {
        return Ok(i);
    }
    let by_alias: Vec<FieldId> = (0..schema.fields().len())
        .filter(|&i| {
            schema.fields()[i]
                .annotation(crate::annotations::COLUMNS_ALIAS)
                .is_some_and(|a| a.to_lowercase() == lower)
        })
        .collect();
    match by_alias.as_slice() {
        [one] => Ok(*one),
        _ => Err(SelectError::Unknown {
            field: name.to_string(),
            available: schema.available(),
        }),
    }
}

/// The fields to show for `spec` (`None` = the default set), in display order.
pub fn select_fields(schema: &Schema, spec: Option<&str>) -> Result<Vec<FieldId>, SelectError> {
    let default = schema.default_fields();
    let Some(spec) = spec else { return Ok(default) };
    let mut explicit: Vec<FieldId> = Vec::new();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for part in spec.split(',') {
        let part = part.trim();
        if let Some(name) = part.strip_prefix('+') {
            added.push(resolve(schema, name)?);
        } else if let Some(name) = part.strip_prefix('-') {
            removed.push(resolve(schema, name)?);
        } else if !part.is_empty() {
            let id = resolve(schema, part)?;
            if !explicit.contains(&id) {
                explicit.push(id);
            }
        }
    }
    let mut out = if explicit.is_empty() {
        default
    } else {
        explicit
    };
    for id in added {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out.retain(|id| !removed.contains(id));
    Ok(out)
}
