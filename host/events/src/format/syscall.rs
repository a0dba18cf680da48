//! `gadget_syscall` → `SYS_<NAME>` as IG renders it (formatters.go, "syscall": a `u64` field only;
//! `"SYS_" + upper(name)`, `SYS_UNKNOWN` for numbers not in the table). The table is x86_64's;
//! an arm64 host needs IG's arm64 table (not included: this host is x86_64-only for now).

use super::syscall_x86_64::SYSCALLS_X86_64;

/// The kernel's name of x86_64 syscall `nr`, if known.
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    let nr = u32::try_from(nr).ok()?;
    SYSCALLS_X86_64
        .binary_search_by_key(&nr, |(n, _)| *n)
        .ok()
        .map(|i| SYSCALLS_X86_64[i].1)
}

pub fn syscall_string(nr: u64) -> String {
    format!(
        "SYS_{}",
        syscall_name(nr).unwrap_or("unknown").to_ascii_uppercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings from IG v0.46.0 pkg/operators/formatters/formatters_test.go ("syscall",
    // amd64 cases).
    #[test]
    fn matches_ig() {
        assert_eq!(syscall_string(60), "SYS_EXIT");
        assert_eq!(syscall_string(80), "SYS_CHDIR");
        assert_eq!(syscall_string(3), "SYS_CLOSE");
        assert_eq!(syscall_string(292), "SYS_DUP3");
        assert_eq!(syscall_string(300), "SYS_FANOTIFY_INIT");
        assert_eq!(syscall_string(1_000_000), "SYS_UNKNOWN");
        assert_eq!(syscall_string(u64::MAX), "SYS_UNKNOWN");
        assert_eq!(syscall_string(257), "SYS_OPENAT");
    }

    #[test]
    fn table_sorted_for_binary_search() {
        assert!(SYSCALLS_X86_64.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
