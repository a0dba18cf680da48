//! IG's columns output for events (pkg/datasource/columns.go, pkg/columns, textcolumns).
//!
//! Per column, from the field's annotations: `columns.width` (IG default 16; `type` = the kind's
//! widest rendering), `columns.minwidth`, `columns.maxwidth` (numeric fields default their max and,
//! when unset, their width to the kind's widest rendering), `columns.alignment` (`left` default,
//! `right`), `columns.ellipsis` (`end` default, `start`, `middle`, `""` = none as in IG, `none` also
//! accepted; a field whose defaults were replaced by a formatter has none), `columns.fixed`,
//! `columns.hex`, `columns.precision` (floats; default 0 as in IG's datasource columns, -1 the
//! shortest exact form), `columns.alias` (header). The header is the alias or
//! full name, upper-cased, cut with `…` at the end. Columns are separated by one space. Without a
//! terminal width the configured widths are used; with one, widths are scaled to it exactly as
//! IG's `RecalculateWidths` does. Structs, unions and raw bytes show as `<N bytes>`.

use crate::annotations as ann;
use crate::decode::Value;
use crate::layout::FieldId;
use crate::schema::{Event, Schema};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ColumnsError {
    #[error("field {field:?}: invalid {key} {value:?} ({expected})")]
    Annotation {
        field: String,
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("field id {0} is not in the datasource")]
    NoField(FieldId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ellipsis {
    None,
    End,
    Start,
    Middle,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub field: FieldId,
    pub header: String,
    pub width: usize,
    pub min_width: usize,
    pub max_width: usize,
    pub fixed: bool,
    pub align: Align,
    pub ellipsis: Ellipsis,
    pub hex: bool,
    /// Decimals of floats; `None` = shortest exact form (IG's precision -1).
    pub precision: Option<usize>,
    /// The width used (configured, or scaled to the terminal).
    pub calculated: usize,
    treat_as_fixed: bool,
}

/// Renders the header and rows of a fixed set of columns.
#[derive(Debug, Clone)]
pub struct ColumnsRenderer {
    columns: Vec<Column>,
}

const ELLIPSIS: char = '…';

/// IG's `ellipsis.Shorten`.
fn shorten(rs: &[char], max: usize, e: Ellipsis) -> Vec<char> {
    if max == 0 {
        return Vec::new();
    }
    if rs.len() <= max {
        return rs.to_vec();
    }
    if max <= 1 && e != Ellipsis::None {
        return vec![ELLIPSIS];
    }
    match e {
        Ellipsis::None => rs[..max].to_vec(),
        Ellipsis::Start => {
            let mut v = vec![ELLIPSIS];
            v.extend_from_slice(&rs[rs.len() - max + 1..]);
            v
        }
        Ellipsis::End => {
            let mut v = rs[..max - 1].to_vec();
            v.push(ELLIPSIS);
            v
        }
        Ellipsis::Middle => {
            let mid = max / 2;
            let end = if max.is_multiple_of(2) { mid - 1 } else { mid };
            let mut v = rs[..mid].to_vec();
            v.push(ELLIPSIS);
            v.extend_from_slice(&rs[rs.len() - end..]);
            v
        }
    }
}

/// IG's `buildFixedString`.
fn fixed(s: &str, width: usize, e: Ellipsis, align: Align) -> String {
    if width == 0 {
        return String::new();
    }
    let rs: Vec<char> = s.chars().collect();
    let short = shorten(&rs, width, e);
    let pad = " ".repeat(width - short.len());
    let text: String = short.into_iter().collect();
    match align {
        Align::Left => text + &pad,
        Align::Right => pad + &text,
    }
}

/// Go's `strconv.FormatFloat(v, 'f', precision, 64)`.
fn go_float(v: f64, precision: Option<usize>) -> String {
    match precision {
        Some(p) => format!("{v:.p$}"),
        None => format!("{v}"),
    }
}

impl ColumnsRenderer {
    /// Columns for `fields` (e.g. from [`crate::select_fields`]); `terminal_width` scales them.
    pub fn new(
        schema: &Schema,
        fields: &[FieldId],
        terminal_width: Option<usize>,
    ) -> Result<Self, ColumnsError> {
        let mut columns = Vec::with_capacity(fields.len());
        for &id in fields {
            let f = schema.field(id).ok_or(ColumnsError::NoField(id))?;
            let bad =
                |key: &'static str, value: &str, expected: &'static str| ColumnsError::Annotation {
                    field: f.full_name.clone(),
                    key,
                    value: value.to_string(),
                    expected,
                };
            let width_of = |key: &'static str| -> Result<Option<usize>, ColumnsError> {
                match f.annotation(key) {
                    None => Ok(None),
                    Some("type") => match f.kind.type_width() {
                        0 => Err(bad(
                            key,
                            "type",
                            "`type` only applies to integer and bool fields",
                        )),
                        w => Ok(Some(w)),
                    },
                    Some(v) => v
                        .parse::<usize>()
                        .map(Some)
                        .map_err(|_| bad(key, v, "a number of characters")),
                }
            };
            let mut width = width_of(ann::COLUMNS_WIDTH)?.unwrap_or(16);
            let min_width = width_of(ann::COLUMNS_MIN_WIDTH)?.unwrap_or(0);
            let mut max_width = width_of(ann::COLUMNS_MAX_WIDTH)?.unwrap_or(0);
            let align = match f.annotation(ann::COLUMNS_ALIGNMENT) {
                None | Some("left") => Align::Left,
                Some("right") => Align::Right,
                Some(v) => return Err(bad("columns.alignment", v, "left or right")),
            };
            let ellipsis = match f.annotation(ann::COLUMNS_ELLIPSIS) {
                // IG spells "no ellipsis" as the empty string; `none` is accepted as well.
                None | Some("") | Some("none") => Ellipsis::None,
                Some("end") => Ellipsis::End,
                Some("start") => Ellipsis::Start,
                Some("middle") => Ellipsis::Middle,
                Some(v) => {
                    return Err(bad(
                        "columns.ellipsis",
                        v,
                        "\"\" (none), start, middle or end",
                    ));
                }
            };
            let precision = match f.annotation(ann::COLUMNS_PRECISION) {
                None => Some(0),
                Some("-1") => None,
                Some(v) => Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|p| *p <= 64)
                        .ok_or_else(|| bad("columns.precision", v, "-1 (shortest) or 0..=64"))?,
                ),
            };
            let tw = f.kind.type_width();
            if tw > 0 && (width == 0 || max_width == 0) {
                if width == 0 {
                    width = tw;
                }
                if max_width == 0 {
                    max_width = tw;
                }
            }
            if width == 0 {
                width = 16;
            }
            let header = f
                .annotation(ann::COLUMNS_ALIAS)
                .filter(|a| !a.is_empty())
                .unwrap_or(&f.full_name)
                .to_uppercase();
            columns.push(Column {
                field: id,
                header,
                width,
                min_width,
                max_width,
                fixed: f.annotation(ann::COLUMNS_FIXED) == Some("true"),
                align,
                ellipsis,
                hex: f.annotation(ann::COLUMNS_HEX) == Some("true"),
                precision,
                calculated: width,
                treat_as_fixed: false,
            });
        }
        let mut r = ColumnsRenderer { columns };
        if let Some(w) = terminal_width.filter(|w| *w > 0) {
            r.scale_to(w);
        }
        Ok(r)
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// IG's `RecalculateWidths(maxWidth, force=false)`.
    fn scale_to(&mut self, max_width: usize) {
        let cols = &mut self.columns;
        if cols.is_empty() {
            return;
        }
        let divider = cols.len() - 1;
        let mut required = divider;
        let mut not_fixed = 0usize;
        let mut total_fixed = divider;
        for c in cols.iter_mut() {
            c.treat_as_fixed = false;
            if c.fixed {
                required += c.width;
                total_fixed += c.width;
                continue;
            }
            not_fixed += c.width;
            required += if c.min_width > 0 { c.min_width } else { 1 };
        }
        let max_width = max_width.max(required);
        let mut adjusted;
        loop {
            let mut satisfied = true;
            let (mut add_fixed, mut remove_not_fixed) = (0, 0);
            adjusted = 0;
            for c in cols.iter_mut() {
                if c.fixed || c.treat_as_fixed {
                    if c.fixed {
                        c.calculated = c.width;
                    }
                    continue;
                }
                let avail = max_width.saturating_sub(total_fixed) as f64;
                c.calculated = if not_fixed == 0 {
                    0
                } else {
                    (c.width as f64 / not_fixed as f64 * avail).floor() as usize
                };
                if c.max_width > 0 && c.calculated > c.max_width {
                    c.calculated = c.max_width;
                } else if c.min_width > 0 && c.calculated < c.min_width {
                    c.calculated = c.min_width;
                } else {
                    adjusted += c.calculated;
                    continue;
                }
                c.treat_as_fixed = true;
                satisfied = false;
                add_fixed += c.calculated;
                remove_not_fixed += c.width;
            }
            if satisfied {
                break;
            }
            total_fixed += add_fixed;
            not_fixed = not_fixed.saturating_sub(remove_not_fixed);
        }
        let mut leftover = max_width.saturating_sub(adjusted + total_fixed);
        // IG's duplicate-column handling only matters for repeated columns; --fields deduplicates.
        while leftover > 0 {
            let mut spent = false;
            for c in cols.iter_mut() {
                if c.fixed || c.treat_as_fixed {
                    continue;
                }
                c.calculated += 1;
                leftover -= 1;
                spent = true;
                if leftover == 0 {
                    break;
                }
            }
            if !spent {
                break;
            }
        }
    }

    /// The header line (no newline).
    pub fn header(&self) -> String {
        self.columns
            .iter()
            .map(|c| fixed(&c.header, c.calculated, Ellipsis::End, c.align))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// One row for `event` (no newline).
    pub fn row(&self, event: &Event) -> String {
        self.columns
            .iter()
            .map(|c| fixed(&self.cell(c, event), c.calculated, c.ellipsis, c.align))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn cell(&self, c: &Column, event: &Event) -> String {
        match event.get(c.field) {
            None => String::new(),
            Some(Value::U64(v)) if c.hex => format!("0x{v:X}"),
            Some(Value::I64(v)) if c.hex => {
                // Go's FormatInt(v, 16) keeps the sign: -0x1F is "0x-1F".
                if *v < 0 {
                    format!("0x-{:X}", v.unsigned_abs())
                } else {
                    format!("0x{v:X}")
                }
            }
            Some(Value::U64(v)) => v.to_string(),
            Some(Value::I64(v)) => v.to_string(),
            Some(Value::F32(v)) => go_float(f64::from(*v), c.precision),
            Some(Value::F64(v)) => go_float(*v, c.precision),
            Some(Value::Bool(v)) => v.to_string(),
            Some(Value::Str(s)) => s.clone(),
            Some(Value::Bytes(b)) => format!("<{} bytes>", b.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cases from IG v0.46.0 pkg/columns/ellipsis/ellipsis_test.go (TestEllipsis).
    #[test]
    fn shorten_like_ig() {
        let s = |x: &str, n, e| {
            shorten(&x.chars().collect::<Vec<_>>(), n, e)
                .into_iter()
                .collect::<String>()
        };
        let cases = [
            ("Demo", 8, Ellipsis::None, "Demo"),
            ("D", 1, Ellipsis::None, "D"),
            ("Demo1234", 4, Ellipsis::None, "Demo"),
            ("Demo1234", 4, Ellipsis::End, "Dem…"),
            ("Demo1234", 4, Ellipsis::Start, "…234"),
            ("Demo1234", 4, Ellipsis::Middle, "De…4"),
            ("Demo1234", 5, Ellipsis::Middle, "De…34"),
            ("Demo🖐🖐🖐🖐", 8, Ellipsis::None, "Demo🖐🖐🖐🖐"),
            ("Demo", 0, Ellipsis::None, ""),
            ("Demo", 1, Ellipsis::None, "D"),
            ("Demo", 1, Ellipsis::Start, "…"),
            ("Demo", 1, Ellipsis::End, "…"),
            ("Demo", 1, Ellipsis::Middle, "…"),
            ("Exact", 5, Ellipsis::None, "Exact"),
        ];
        for (input, max, e, want) in cases {
            assert_eq!(s(input, max, e), want, "{input} {max} {e:?}");
        }
        assert_eq!(fixed("ab", 4, Ellipsis::End, Align::Right), "  ab");
        assert_eq!(fixed("ab", 0, Ellipsis::End, Align::Right), "");
    }
}
