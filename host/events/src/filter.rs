//! IG's `--filter` grammar (pkg/operators/filter/filter.go), parsed once, evaluated per event.
//!
//! `rule[,rule…]`, all rules must match (AND). A comma or backslash inside a value is escaped
//! with `\` (IG's `SplitStringWithEscape`; other `\x` pairs stay as they are). A rule is
//! `field` + operator + non-empty value, the operator being the run of `!~><=` characters after
//! the name: `==` (or `=`), `!=`, `>=`, `>`, `<=`, `<`, `~` (regex), `!~` (regex does not match).
//! The value is typed by the field: integers parse at the field's width, floats, `true|false|1|0`
//! for bools (equality only), strings compare bytewise; regexes only on strings, unanchored
//! (RE2 syntax as in Go; Rust's `regex` is RE2-like).
//!
//! Bounds: at most [`MAX_RULES`] rules; regexes compile with [`REGEX_SIZE_LIMIT`].

use regex::{Regex, RegexBuilder};

use crate::decode::Value;
use crate::kind::FieldKind;
use crate::layout::FieldId;
use crate::schema::{Event, Schema};

pub const MAX_RULES: usize = 64;
/// Compiled-program size limit of one regex (bytes).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Longest regex source accepted.
pub const MAX_REGEX_LEN: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("filter rule {0:?} is incomplete: expected <field><op><value>, e.g. proc.comm==cat")]
    Incomplete(String),
    #[error("filter rule {rule:?}: invalid operator {op:?}; use one of == != >= > <= < ~ !~")]
    Operator { rule: String, op: String },
    #[error("filter rule {rule:?}: unknown field {field:?}; available fields: {}", available.join(", "))]
    UnknownField {
        rule: String,
        field: String,
        available: Vec<String>,
    },
    #[error("filter rule {rule:?}: {value:?} is not a valid {kind} value for field {field:?}")]
    Value {
        rule: String,
        field: String,
        value: String,
        kind: &'static str,
    },
    #[error("filter rule {rule:?}: invalid regular expression: {reason}")]
    Regex { rule: String, reason: String },
    #[error(
        "filter rule {rule:?}: regular expressions (~, !~) only apply to string fields; {field:?} is {kind}"
    )]
    RegexOnNonString {
        rule: String,
        field: String,
        kind: &'static str,
    },
    #[error("filter rule {rule:?}: boolean field {field:?} can only be compared with == or !=")]
    BoolOrder { rule: String, field: String },
    #[error("filter rule {rule:?}: field {field:?} ({kind}) cannot be compared")]
    Unsupported {
        rule: String,
        field: String,
        kind: &'static str,
    },
    #[error("filter has more than {MAX_RULES} rules")]
    TooManyRules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
    Regex,
}

#[derive(Debug, Clone)]
enum Operand {
    U(u64),
    I(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    Re(Regex),
}

#[derive(Debug, Clone)]
struct Rule {
    field: FieldId,
    op: Op,
    negate: bool,
    operand: Operand,
}

/// A parsed filter; [`Filter::matches`] is true when every rule matches.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    rules: Vec<Rule>,
}

/// IG's `SplitStringWithEscape(s, ',')`.
fn split_escaped(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escape = false;
    for c in s.chars() {
        if escape {
            escape = false;
            if c != ',' && c != '\\' {
                cur.push('\\');
            }
            cur.push(c);
            continue;
        }
        match c {
            '\\' => escape = true,
            ',' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// IG's `extractFilter`: (field, op, negate, value).
fn split_rule(rule: &str) -> Result<(&str, Op, bool, &str), FilterError> {
    let is_op = |c: char| matches!(c, '!' | '~' | '>' | '<' | '=');
    let Some(op_start) = rule.find(is_op) else {
        return Err(FilterError::Incomplete(rule.to_string()));
    };
    let rest = &rule[op_start..];
    let op_len = rest
        .find(|c: char| !is_op(c))
        .ok_or_else(|| FilterError::Incomplete(rule.to_string()))?;
    let (op_str, value) = rest.split_at(op_len);
    let (op, negate) = match op_str {
        "=" | "==" => (Op::Eq, false),
        "!=" => (Op::Eq, true),
        "<=" => (Op::Lte, false),
        "<" => (Op::Lt, false),
        ">=" => (Op::Gte, false),
        ">" => (Op::Gt, false),
        "~" => (Op::Regex, false),
        "!~" => (Op::Regex, true),
        _ => {
            return Err(FilterError::Operator {
                rule: rule.to_string(),
                op: op_str.to_string(),
            });
        }
    };
    Ok((&rule[..op_start], op, negate, value))
}

fn cmp<T: PartialOrd>(op: Op, a: T, b: T) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Lt => a < b,
        Op::Lte => a <= b,
        Op::Gt => a > b,
        Op::Gte => a >= b,
        Op::Regex => false,
    }
}

impl Filter {
    /// Parses `spec` against the datasource's fields. An empty spec matches everything.
    pub fn parse(schema: &Schema, spec: &str) -> Result<Filter, FilterError> {
        let parts: Vec<String> = split_escaped(spec)
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        if parts.len() > MAX_RULES {
            return Err(FilterError::TooManyRules);
        }
        let mut rules = Vec::with_capacity(parts.len());
        for rule in &parts {
            rules.push(Self::parse_rule(schema, rule)?);
        }
        Ok(Filter { rules })
    }

    fn parse_rule(schema: &Schema, rule: &str) -> Result<Rule, FilterError> {
        let (name, op, negate, value) = split_rule(rule)?;
        let Some(field) = schema.id_of(name) else {
            return Err(FilterError::UnknownField {
                rule: rule.to_string(),
                field: name.to_string(),
                available: schema.available(),
            });
        };
        let kind = schema.fields()[field].kind;
        let bad_value = || FilterError::Value {
            rule: rule.to_string(),
            field: name.to_string(),
            value: value.to_string(),
            kind: kind.name(),
        };
        if op == Op::Regex {
            if !kind.is_string() {
                return Err(FilterError::RegexOnNonString {
                    rule: rule.to_string(),
                    field: name.to_string(),
                    kind: kind.name(),
                });
            }
            if value.len() > MAX_REGEX_LEN {
                return Err(FilterError::Regex {
                    rule: rule.to_string(),
                    reason: format!("longer than {MAX_REGEX_LEN} bytes"),
                });
            }
            let re = RegexBuilder::new(value)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| FilterError::Regex {
                    rule: rule.to_string(),
                    reason: e.to_string(),
                })?;
            return Ok(Rule {
                field,
                op,
                negate,
                operand: Operand::Re(re),
            });
        }
        let operand = match kind {
            FieldKind::U8 => Operand::U(u64::from(value.parse::<u8>().map_err(|_| bad_value())?)),
            FieldKind::U16 => Operand::U(u64::from(value.parse::<u16>().map_err(|_| bad_value())?)),
            FieldKind::U32 => Operand::U(u64::from(value.parse::<u32>().map_err(|_| bad_value())?)),
            FieldKind::U64 => Operand::U(value.parse::<u64>().map_err(|_| bad_value())?),
            FieldKind::I8 => Operand::I(i64::from(value.parse::<i8>().map_err(|_| bad_value())?)),
            FieldKind::I16 => Operand::I(i64::from(value.parse::<i16>().map_err(|_| bad_value())?)),
            FieldKind::I32 => Operand::I(i64::from(value.parse::<i32>().map_err(|_| bad_value())?)),
            FieldKind::I64 => Operand::I(value.parse::<i64>().map_err(|_| bad_value())?),
            FieldKind::F32 => Operand::F32(value.parse::<f32>().map_err(|_| bad_value())?),
            FieldKind::F64 => Operand::F64(value.parse::<f64>().map_err(|_| bad_value())?),
            FieldKind::Bool => {
                if op != Op::Eq {
                    return Err(FilterError::BoolOrder {
                        rule: rule.to_string(),
                        field: name.to_string(),
                    });
                }
                match value {
                    "true" | "1" => Operand::Bool(true),
                    "false" | "0" => Operand::Bool(false),
                    _ => return Err(bad_value()),
                }
            }
            FieldKind::CString | FieldKind::String => Operand::Str(value.to_string()),
            FieldKind::Bytes | FieldKind::Struct | FieldKind::Union => {
                return Err(FilterError::Unsupported {
                    rule: rule.to_string(),
                    field: name.to_string(),
                    kind: kind.name(),
                });
            }
        };
        Ok(Rule {
            field,
            op,
            negate,
            operand,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True if every rule matches `event` (an event of the schema the filter was parsed for).
    pub fn matches(&self, event: &Event) -> bool {
        self.rules.iter().all(|r| {
            let Some(v) = event.get(r.field) else {
                return false;
            };
            let m = match (&r.operand, v) {
                (Operand::U(b), Value::U64(a)) => cmp(r.op, *a, *b),
                (Operand::I(b), Value::I64(a)) => cmp(r.op, *a, *b),
                (Operand::F32(b), Value::F32(a)) => cmp(r.op, *a, *b),
                (Operand::F64(b), Value::F64(a)) => cmp(r.op, *a, *b),
                (Operand::Bool(b), Value::Bool(a)) => a == b,
                (Operand::Str(b), Value::Str(a)) => cmp(r.op, a.as_str(), b.as_str()),
                (Operand::Re(re), Value::Str(a)) => re.is_match(a),
                // A value of another type (a guest changed it): the rule cannot hold.
                _ => return false,
            };
            m != r.negate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cases from IG v0.46.0 pkg/operators/filter/filter_test.go (TestFilterRuleExtractor).
    #[test]
    fn rule_extraction_matches_ig() {
        let ok = |s: &str| split_rule(s).map(|(f, op, n, v)| (f.to_string(), op, n, v.to_string()));
        assert_eq!(
            ok("abc==def").unwrap(),
            ("abc".into(), Op::Eq, false, "def".into())
        );
        assert_eq!(
            ok("abc!=def").unwrap(),
            ("abc".into(), Op::Eq, true, "def".into())
        );
        assert_eq!(
            ok("abc<=def").unwrap(),
            ("abc".into(), Op::Lte, false, "def".into())
        );
        assert_eq!(
            ok("abc<def").unwrap(),
            ("abc".into(), Op::Lt, false, "def".into())
        );
        assert_eq!(
            ok("abc>=def").unwrap(),
            ("abc".into(), Op::Gte, false, "def".into())
        );
        assert_eq!(
            ok("abc>def").unwrap(),
            ("abc".into(), Op::Gt, false, "def".into())
        );
        assert_eq!(
            ok("abc~def").unwrap(),
            ("abc".into(), Op::Regex, false, "def".into())
        );
        assert_eq!(
            ok("abc!~def").unwrap(),
            ("abc".into(), Op::Regex, true, "def".into())
        );
        assert_eq!(
            ok("abc=def").unwrap(),
            ("abc".into(), Op::Eq, false, "def".into())
        );
        for bad in ["incomplete", "abc==", "abc!", "abc:", ":"] {
            assert!(
                matches!(split_rule(bad), Err(FilterError::Incomplete(_))),
                "{bad}"
            );
        }
        for (bad, op) in [("abc===def", "==="), ("abc!==def", "!=="), ("abc!def", "!")] {
            assert_eq!(
                split_rule(bad).unwrap_err(),
                FilterError::Operator {
                    rule: bad.into(),
                    op: op.into()
                }
            );
        }
    }

    // IG's SplitStringWithEscape behaviour (filter_test.go "string escaped match positive":
    // `a\,\/` → `a,\/`).
    #[test]
    fn escaping() {
        assert_eq!(
            split_escaped(r"x==a\,\/,y==1"),
            vec![r"x==a,\/".to_string(), "y==1".to_string()]
        );
        assert_eq!(split_escaped(r"x==a\\b"), vec![r"x==a\b".to_string()]);
        assert_eq!(
            split_escaped("a,,b,"),
            vec!["a".to_string(), String::new(), "b".to_string()]
        );
    }
}
