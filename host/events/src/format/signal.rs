//! `gadget_signal` → IG's signal name.
//!
//! IG (formatters.go, "signal"): a 4-byte field; Go's `unix.SignalName` (linux signalList, 1..=31)
//! or `signal#<n>` for anything else, including 0 and real-time signals.

const NAMES: [&str; 32] = [
    "",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

pub fn signal_string(n: u32) -> String {
    match NAMES.get(n as usize) {
        Some(name) if !name.is_empty() => (*name).to_string(),
        _ => format!("signal#{n}"),
    }
}

/// IG's `value.one-of` annotation of the derived field (pkg/operators/formatters/types.go).
pub const ONE_OF: &str = "SIGABRT, SIGALRM, SIGBUS, SIGCHLD, SIGCLD, SIGCONT, SIGFPE, SIGHUP, SIGILL, SIGINT, SIGIO, SIGIOT, SIGKILL, SIGPIPE, SIGPOLL, SIGPROF, SIGPWR, SIGQUIT, SIGSEGV, SIGSTKFLT, SIGSTOP, SIGSYS, SIGTERM, SIGTRAP, SIGTSTP, SIGTTIN, SIGTTOU, SIGUNUSED, SIGURG, SIGUSR1, SIGUSR2, SIGVTALRM, SIGWINCH, SIGXCPU, SIGXFSZ";

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings from IG v0.46.0 pkg/operators/formatters/formatters_test.go ("signal" cases).
    #[test]
    fn matches_ig() {
        assert_eq!(signal_string(9), "SIGKILL");
        assert_eq!(signal_string(15), "SIGTERM");
        assert_eq!(signal_string(2), "SIGINT");
        assert_eq!(signal_string(11), "SIGSEGV");
        assert_eq!(signal_string(1), "SIGHUP");
        assert_eq!(signal_string(32), "signal#32");
        assert_eq!(signal_string(100), "signal#100");
        assert_eq!(signal_string(0), "signal#0");
        assert_eq!(signal_string(31), "SIGSYS");
    }
}
