//! The gadget model: pure data and the rules on it, shared by every layer above. No I/O stack
//! (no aya, wasmtime, tokio, kube, hyper, HTTP clients): it builds and tests fast, without root.
//!
//! - [`metadata`]: gadget.yaml; [`params`] and [`annotations`]: what the user sets on top;
//!   [`guest_config`]: what the guest's `init` receives; [`capability`]: what a guest may touch.
//! - [`datasource`]: what guests publish and operators consume; [`snapshot`]: what guests read.
//! - [`budgets`]: the host's limits; [`yaml`]: bounded YAML parsing; [`duration`]: durations as
//!   IG writes them; [`fsutil`]: atomic file writes; [`table`]: text tables.
//! - Text helpers for messages users read: [`error_chain`], [`printable`], [`printable_lines`].
//!
//! Invariant: nothing here prints; everything returns data or typed errors.

pub mod annotations;
pub mod budgets;
pub mod capability;
pub mod datasource;
pub mod duration;
pub mod fsutil;
pub mod guest_config;
pub mod metadata;
pub mod params;
pub mod snapshot;
pub mod table;
pub mod yaml;

pub use capability::Capability;
pub use guest_config::{DatasourceConfig, GuestConfig};
pub use metadata::{GadgetMetadata, MetadataError};
pub use snapshot::MapSnapshot;

/// The first 12 characters of an instance ID or a digest's hex: the form listings show and
/// commands accept (as IG and docker do).
pub fn short_id(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(end, _)| &id[..end])
}

/// An error with its whole chain of causes on one line, for messages users act on.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// Text from outside made safe for a terminal or a log line: control characters (newlines,
/// escape sequences, carriage returns) are shown escaped (`\n`, `\u{1b}`), so no input can
/// forge lines, move the cursor or clear the screen. Everything else is kept as is.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`printable`] for multi-line text (a gadget.yaml shown by `image inspect`): its lines are
/// kept, every other control character is escaped.
pub fn printable_lines(s: &str) -> String {
    s.lines().map(printable).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_ids_are_twelve_characters_never_a_split_one() {
        assert_eq!(super::short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(super::short_id("short"), "short");
        assert_eq!(super::short_id("ééééééééééééé"), "éééééééééééé");
    }

    #[test]
    fn printable_lines_keeps_lines() {
        assert_eq!(
            super::printable_lines("a: 1\nb: \x1b[31m\n"),
            "a: 1\nb: \\u{1b}[31m"
        );
    }

    #[test]
    fn printable_escapes_control_characters_only() {
        assert_eq!(super::printable("µs node-a"), "µs node-a");
        assert_eq!(super::printable("a\nb\x1b[2J\r"), "a\\nb\\u{1b}[2J\\r");
    }
}
