//! The one way this host reads YAML from outside (manifests, gadget.yaml, image configs):
//! serde-saphyr with a budget, so hostile text costs bounded memory and time whatever its shape.
//!
//! Invariants:
//! - parsing is streaming and stops at the first error (serde_yaml's document iterator yielded
//!   the same error forever after a syntax error, which filled memory: issue #11);
//! - nesting, nodes, scalar bytes, documents and alias expansion are capped before anything is
//!   built, so an alias bomb or 200 KB of `[` fails in microseconds with a message naming the
//!   limit, instead of expanding to gigabytes;
//! - errors are one line (`line L column C: …`), ready to be prefixed with the file's name.

use serde::de::DeserializeOwned;

/// Bounds on one YAML input. The defaults fit every gadget.yaml and manifest seen in IG's tree
/// with a margin of 10× or more; see docs/budgets.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Nesting of collections (IG's files nest 5 deep).
    pub max_depth: usize,
    /// Scalars, sequences and mappings in the whole input.
    pub max_nodes: usize,
    /// `---` documents in one input.
    pub max_documents: usize,
    /// Aliases (`*name`); each expansion replays its anchor's events, which the node cap counts.
    pub max_aliases: usize,
    /// Bytes of all scalars together, after alias expansion.
    pub max_scalar_bytes: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        YamlLimits {
            max_depth: 64,
            max_nodes: 100_000,
            max_documents: 256,
            max_aliases: 1_000,
            max_scalar_bytes: 4 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct YamlError {
    pub message: String,
}

impl YamlLimits {
    fn options(&self) -> serde_saphyr::Options {
        let mut budget = serde_saphyr::Budget::default();
        budget.max_depth = self.max_depth;
        budget.max_nodes = self.max_nodes;
        budget.max_documents = self.max_documents;
        budget.max_aliases = self.max_aliases;
        budget.max_total_scalar_bytes = self.max_scalar_bytes;
        // Flow collections (`[[[…`) are a second nesting path in the scanner.
        budget.flow_nesting_limit = budget.flow_nesting_limit.min(self.max_depth);
        let mut alias_limits = serde_saphyr::options::AliasLimits::default();
        alias_limits.max_total_replayed_events = self.max_nodes;
        serde_saphyr::options! {
            budget: Some(budget),
            alias_limits: alias_limits,
            with_snippet: false,
            // YAML 1.2 booleans only, as IG's yaml.v3: `yes`/`no`/`on` stay the text written
            // (gadget.yaml annotation values are read as text).
            strict_booleans: true,
        }
    }
}

/// Longest excerpt of the offending line quoted in an error.
const EXCERPT_CHARS: usize = 60;

/// One line: the parser's position and reason, then the offending line quoted (the parser's
/// reason alone, "expected sequence start", does not say which key), escaped so input text
/// cannot reach a terminal raw.
fn one_line(e: serde_saphyr::Error, input: &str) -> YamlError {
    let mut message = e
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("; ");
    let line_no = e
        .location()
        .and_then(|loc| usize::try_from(loc.line()).ok())
        .and_then(|n| n.checked_sub(1));
    let line = line_no.and_then(|n| input.lines().nth(n));
    if let (Some(n), Some(line)) = (line_no, line.map(str::trim).filter(|l| !l.is_empty())) {
        let excerpt: String = line.chars().take(EXCERPT_CHARS).collect();
        let more = if line.chars().count() > EXCERPT_CHARS {
            "…"
        } else {
            ""
        };
        let path = key_path(input, n)
            .map(|p| format!("field `{}`: ", p.escape_debug()))
            .unwrap_or_default();
        message.push_str(&format!(" (at {path}{}{more})", excerpt.escape_debug()));
    }
    YamlError { message }
}

/// The dotted key path of block-style line `n` (`datasources.blockio.fields.latency`), read
/// from the indentation of the lines above it; the parser's errors carry only a position.
/// None when the line is not a `key:` line (flow style, sequences, scalars).
fn key_path(input: &str, n: usize) -> Option<String> {
    fn key_of(line: &str) -> Option<(usize, &str)> {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if body.starts_with(['#', '-', '[', '{']) {
            return None;
        }
        let (key, _) = body.split_once(':')?;
        let key = key.trim().trim_matches(['"', '\'']);
        (!key.is_empty() && key.len() <= 256).then_some((indent, key))
    }
    let lines: Vec<&str> = input.lines().take(n + 1).collect();
    let (mut indent, key) = key_of(lines.get(n)?)?;
    let mut path = vec![key];
    for line in lines[..n].iter().rev() {
        if indent == 0 {
            break;
        }
        if let Some((i, k)) = key_of(line).filter(|(i, _)| *i < indent) {
            path.push(k);
            indent = i;
        }
    }
    path.reverse();
    Some(path.join("."))
}

/// One document (an empty input is the type's empty value if it has one, else an error).
pub fn from_str<T: DeserializeOwned>(text: &str, limits: &YamlLimits) -> Result<T, YamlError> {
    serde_saphyr::from_str_with_options(text, limits.options()).map_err(|e| one_line(e, text))
}

/// [`from_str`] on bytes read from a file; text that is not UTF-8 is refused with its offset.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8], limits: &YamlLimits) -> Result<T, YamlError> {
    let text = std::str::from_utf8(bytes).map_err(|e| YamlError {
        message: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ),
    })?;
    from_str(text, limits)
}

/// Every `---` document; empty documents come back as `None`.
pub fn from_str_multiple<T: DeserializeOwned>(
    text: &str,
    limits: &YamlLimits,
) -> Result<Vec<Option<T>>, YamlError> {
    serde_saphyr::from_multiple_with_options(text, limits.options()).map_err(|e| one_line(e, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    type Doc = BTreeMap<String, serde_json::Value>;

    #[test]
    fn errors_stop_the_parse_and_name_the_line() {
        let err = from_str_multiple::<Doc>(
            "apiVersion: 1\nkind: instance-spec\nimage: x\nname:\n [unclosed\n",
            &YamlLimits::default(),
        )
        .unwrap_err();
        assert!(err.message.contains("line "), "{err}");
        assert!(!err.message.contains('\n'), "{err}");
    }

    #[test]
    fn errors_name_the_key_path_of_their_line() {
        type Nested = BTreeMap<String, BTreeMap<String, BTreeMap<String, Fields>>>;
        type Fields = BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>;
        let text =
            "datasources:\n  blockio:\n    fields:\n      latency:\n        annotations: nope\n";
        let err = from_str::<Nested>(text, &YamlLimits::default())
            .unwrap_err()
            .message;
        assert!(err.contains("line 5"), "{err}");
        assert!(
            err.contains("field `datasources.blockio.fields.latency.annotations`"),
            "{err}"
        );
        assert_eq!(key_path("a:\n  - b: 1\n", 1), None);
        assert_eq!(key_path("a:\n  b:\n\n  c: 1\n", 3).as_deref(), Some("a.c"));
    }

    #[test]
    fn deep_nesting_and_alias_bombs_fail_fast() {
        let deep = "[".repeat(200_000);
        let err = from_str::<serde_json::Value>(&deep, &YamlLimits::default()).unwrap_err();
        assert!(!err.message.is_empty());
        // Each level doubles: 2^30 nodes if expanded.
        let mut bomb = String::from("a0: &a0 [x, x]\n");
        for i in 1..30 {
            bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}]\n", p = i - 1));
        }
        let err = from_str::<serde_json::Value>(&bomb, &YamlLimits::default()).unwrap_err();
        assert!(!err.message.is_empty());
        // A long string aliased many times: bytes, not events, are what grows.
        let mut long = format!("s: &s {}\nl: [", "y".repeat(100_000));
        long.push_str(&vec!["*s"; 900].join(", "));
        long.push_str("]\n");
        let err = from_str::<serde_json::Value>(&long, &YamlLimits::default()).unwrap_err();
        assert!(!err.message.is_empty());
    }

    #[test]
    fn a_byte_order_mark_and_empty_documents_are_fine() {
        let docs: Vec<Option<Doc>> =
            from_str_multiple("\u{feff}a: 1\n---\n---\nb: 2\n", &YamlLimits::default()).unwrap();
        assert_eq!(docs.iter().flatten().count(), 2);
    }
}
