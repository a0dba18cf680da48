//! `gadget_file_flags` and `gadget_file_mode` as IG renders them (formatters.go, "file_flags" and
//! "file_mode"; both only for `u32` fields).
//!
//! Flags: the access mode (`O_RDONLY`, `O_WRONLY`, `O_RDWR`; nothing for 3) then every flag of IG's
//! table whose bits are all set, joined with `|`. Mode: Go's `fs.FileMode(mode).String()`: Go's
//! own type bits (31..19, "dalTLDpSugct?") then `rwxrwxrwx`, `-` when no type bit is set. Unix
//! `S_IF*`/setuid bits (9..18) are not Go's bits, so IG ignores them; so do we.

const FLAGS: [(u32, &str); 14] = [
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o20000, "O_FASYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
];

pub fn file_flags_string(flags: u32) -> String {
    let mut out: Vec<&str> = Vec::new();
    match flags & 3 {
        0 => out.push("O_RDONLY"),
        1 => out.push("O_WRONLY"),
        2 => out.push("O_RDWR"),
        _ => {}
    }
    out.extend(
        FLAGS
            .iter()
            .filter(|(bit, _)| flags & bit == *bit)
            .map(|(_, n)| *n),
    );
    out.join("|")
}

pub fn file_mode_string(mode: u32) -> String {
    const TYPES: &[u8] = b"dalTLDpSugct?";
    const RWX: &[u8] = b"rwxrwxrwx";
    let mut s = String::with_capacity(22);
    for (i, c) in TYPES.iter().enumerate() {
        if mode & (1 << (31 - i)) != 0 {
            s.push(char::from(*c));
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    for (i, c) in RWX.iter().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 {
            char::from(*c)
        } else {
            '-'
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings from IG v0.46.0 pkg/operators/formatters/formatters_test.go ("file_flags").
    #[test]
    fn flags_match_ig() {
        assert_eq!(file_flags_string(0), "O_RDONLY");
        assert_eq!(file_flags_string(1), "O_WRONLY");
        assert_eq!(file_flags_string(2), "O_RDWR");
        assert_eq!(file_flags_string(0o100), "O_RDONLY|O_CREAT");
        assert_eq!(file_flags_string(0o101), "O_WRONLY|O_CREAT");
        assert_eq!(file_flags_string(0o1102), "O_RDWR|O_CREAT|O_TRUNC");
        assert_eq!(file_flags_string(0o2000), "O_RDONLY|O_APPEND");
        assert_eq!(file_flags_string(3), "");
        assert_eq!(
            file_flags_string(0o2100000),
            "O_RDONLY|O_LARGEFILE|O_CLOEXEC"
        );
    }

    // Expected strings from IG v0.46.0 pkg/operators/formatters/formatters_test.go ("file_mode"),
    // plus Go's fs.FileMode.String for type bits.
    #[test]
    fn mode_matches_ig() {
        assert_eq!(file_mode_string(0o644), "-rw-r--r--");
        assert_eq!(file_mode_string(0o755), "-rwxr-xr-x");
        assert_eq!(file_mode_string(0o777), "-rwxrwxrwx");
        assert_eq!(file_mode_string(0o600), "-rw-------");
        assert_eq!(file_mode_string(0o444), "-r--r--r--");
        assert_eq!(file_mode_string(0), "----------");
        // S_IFREG|S_ISUID are not Go mode bits.
        assert_eq!(file_mode_string(0o104755), "-rwxr-xr-x");
        assert_eq!(file_mode_string((1 << 31) | 0o755), "drwxr-xr-x");
    }
}
