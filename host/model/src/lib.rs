//! The gadget host library. The modules follow the data's path:
//!
//! - [`gadget`]: the gadget bundle (gadget.yaml, eBPF object, Wasm guest) and where it comes from;
//!   params and annotations.
//! - [`image`]: gadget images (OCI, IG's format): references, the local store, registries, build.
//! - [`ebpf`]: system checks, loading and attaching with aya, map snapshots.
//! - [`wasm`]: the guest runtime (wasmtime components, limits, the built-in default guest).
//! - [`datasource`]: what guests publish and operators consume.
//! - [`operators`]: outputs (the terminal printer; metrics next).
//! - [`instance`]: one running gadget, tying the above together on a timer.
//! - [`daemon`]: detached instances, the local API, persistence and pinning.
//! - [`cluster`]: the kube-based client that drives every node's daemon.
//! - [`cli`]: the `gadget` command line.

pub mod budgets;
pub mod cli;
pub mod cluster;
pub mod daemon;
pub mod datasource;
pub mod duration;
pub mod ebpf;
pub mod fsutil;
pub mod gadget;
pub mod image;
pub mod instance;
pub mod net;
pub mod operators;
pub mod wasm;
pub mod yaml;

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
