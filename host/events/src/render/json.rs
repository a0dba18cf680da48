//! IG's JSON output for events (pkg/datasource/formatters/json, used by the CLI with `showAll`):
//! every field, hidden ones included, except `json.skip=true`; nested objects following the field
//! tree (`{"proc":{"comm":…,"creds":{…}}}`); keys sorted bytewise at each level; numbers as
//! integers, floats like Go's encoding/json, strings escaped like Go (control characters, `"` and
//! `\`, U+2028/U+2029; invalid UTF-8 is already replaced when decoding); raw bytes as a hex string.
//! `pretty` is IG's `jsonpretty` (two-space indent, `"key": value`). NaN and infinities, which Go
//! cannot encode, are written as `null`.

use std::fmt::Write;

use crate::annotations as ann;
use crate::decode::Value;
use crate::layout::FieldId;
use crate::schema::{Event, Schema};

#[derive(Debug, Clone)]
struct Node {
    field: FieldId,
    key: String,
    children: Vec<Node>,
    has_children: bool,
}

/// Renders events of one schema as JSON objects (no trailing newline).
#[derive(Debug, Clone)]
pub struct JsonRenderer {
    roots: Vec<Node>,
    pretty: bool,
}

/// The JSON nodes for `ids` (the members of one object, or the roots). `only`: keep a field if it
/// is listed, if a listed field is below it (its object is kept for the path), or if it is below
/// a listed field (a listed object keeps all its members).
fn build(
    schema: &Schema,
    children: &[Vec<FieldId>],
    ids: &[FieldId],
    only: Option<&[FieldId]>,
) -> Vec<Node> {
    let mut ids = ids.to_vec();
    ids.sort_by(|a, b| {
        schema.fields()[*a]
            .name
            .as_bytes()
            .cmp(schema.fields()[*b].name.as_bytes())
    });
    ids.into_iter()
        .filter(|&i| schema.fields()[i].annotation(ann::JSON_SKIP) != Some("true"))
        .filter(|&i| {
            only.is_none_or(|o| o.contains(&i) || o.iter().any(|&s| is_below(schema, s, i)))
        })
        .map(|i| {
            let has_children = !children[i].is_empty();
            let mut key = String::new();
            write_str(&mut key, &schema.fields()[i].name);
            Node {
                field: i,
                key,
                // Below a listed field everything is kept.
                children: build(
                    schema,
                    children,
                    &children[i],
                    only.filter(|o| !o.contains(&i)),
                ),
                has_children,
            }
        })
        .collect()
}

fn roots_of(schema: &Schema, only: Option<&[FieldId]>) -> Vec<Node> {
    let children = crate::schema::child_lists(schema.fields());
    let roots: Vec<FieldId> = (0..schema.fields().len())
        .filter(|&i| schema.fields()[i].parent.is_none())
        .collect();
    build(schema, &children, &roots, only)
}

/// True if `field` is `ancestor` or nested (at any depth) below it.
fn is_below(schema: &Schema, field: FieldId, ancestor: FieldId) -> bool {
    let mut cur = Some(field);
    let mut steps = 0;
    while let Some(c) = cur {
        if c == ancestor {
            return true;
        }
        steps += 1;
        if steps > schema.fields().len() {
            return false;
        }
        cur = schema.field(c).and_then(|f| f.parent);
    }
    false
}

/// Go's encoding/json string escaping (HTML escaping off, as IG's formatter).
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u00{:02x}", c as u32);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's encoding/json float format (ES6 style): shortest round-trip digits, plain notation unless
/// |v| < 1e-6 or >= 1e21, exponents like `1e-7`, `1e+21`.
fn write_float(out: &mut String, v: f64, shortest: String, exp: String) {
    if !v.is_finite() {
        out.push_str("null");
        return;
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        // Rust: "1e-7" / "1e21"; Go: "1e-7" / "1e+21".
        match exp.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => {
                let _ = write!(out, "{m}e+{e}");
            }
            _ => out.push_str(&exp),
        }
    } else {
        out.push_str(&shortest);
    }
}

fn write_value(out: &mut String, v: Option<&Value>) {
    match v {
        Some(Value::U64(x)) => {
            let _ = write!(out, "{x}");
        }
        Some(Value::I64(x)) => {
            let _ = write!(out, "{x}");
        }
        Some(Value::F32(x)) => write_float(out, f64::from(*x), format!("{x}"), format!("{x:e}")),
        Some(Value::F64(x)) => write_float(out, *x, format!("{x}"), format!("{x:e}")),
        Some(Value::Bool(x)) => out.push_str(if *x { "true" } else { "false" }),
        Some(Value::Str(s)) => write_str(out, s),
        Some(Value::Bytes(b)) => {
            out.push('"');
            out.push_str(&hex::encode(b));
            out.push('"');
        }
        None => out.push_str("null"),
    }
}

impl JsonRenderer {
    /// All fields, as IG's CLI prints `-o json` (it ignores `--fields` for JSON).
    pub fn new(schema: &Schema, pretty: bool) -> Self {
        JsonRenderer {
            roots: roots_of(schema, None),
            pretty,
        }
    }

    /// Only `fields` (with the objects on their path, and all members of a listed object), in
    /// the same shape: for a CLI that applies `--fields` to JSON too.
    pub fn with_fields(schema: &Schema, pretty: bool, fields: &[FieldId]) -> Self {
        JsonRenderer {
            roots: roots_of(schema, Some(fields)),
            pretty,
        }
    }

    pub fn render(&self, event: &Event) -> String {
        let mut out = String::with_capacity(512);
        self.render_into(&mut out, event);
        out
    }

    /// Appends the JSON of `event` to `out`.
    pub fn render_into(&self, out: &mut String, event: &Event) {
        out.push('{');
        if self.pretty {
            out.push('\n');
        }
        self.level(out, event, &self.roots, "  ");
        if self.pretty {
            out.push('\n');
        }
        out.push('}');
    }

    fn level(&self, out: &mut String, event: &Event, nodes: &[Node], indent: &str) {
        for (i, n) in nodes.iter().enumerate() {
            if i > 0 {
                out.push(',');
                if self.pretty {
                    out.push('\n');
                }
            }
            if self.pretty {
                out.push_str(indent);
            }
            out.push_str(&n.key);
            out.push(':');
            if self.pretty {
                out.push(' ');
            }
            if n.has_children {
                out.push('{');
                if self.pretty {
                    out.push('\n');
                }
                self.level(out, event, &n.children, &format!("{indent}  "));
                if self.pretty {
                    out.push('\n');
                    out.push_str(indent);
                }
                out.push('}');
            } else {
                write_value(out, event.get(n.field));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_string_escaping() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\n\t\u{1}<>&\u{2028}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\t\\u0001<>&\\u2028é\"");
    }

    #[test]
    fn go_floats() {
        let f = |v: f64| {
            let mut s = String::new();
            write_float(&mut s, v, format!("{v}"), format!("{v:e}"));
            s
        };
        assert_eq!(f(456.0), "456");
        assert_eq!(f(0.5), "0.5");
        assert_eq!(f(1e-7), "1e-7");
        assert_eq!(f(1e21), "1e+21");
        assert_eq!(f(1.5e22), "1.5e+22");
        assert_eq!(f(123456789.0), "123456789");
        assert_eq!(f(f64::NAN), "null");
        assert_eq!(f(0.0), "0");
    }
}
