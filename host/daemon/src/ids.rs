//! Instance IDs (random, hex), their short form, creation times, and the state directory's hash
//! that keeps daemons' pins apart.

use std::path::Path;

pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        bytes[..16].copy_from_slice(&(t.as_nanos() ^ u128::from(std::process::id())).to_le_bytes());
    }
    hex::encode(bytes)
}

pub(crate) use gadget_model::short_id as short;

/// Milliseconds: instances started within one second still list in creation order.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// FNV-1a of the state directory: daemons with different state directories (tests, several
/// users of one machine) never share pins.
pub(crate) fn state_hash(dir: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_distinct_and_shorten_to_twelve() {
        let a = new_id();
        let b = new_id();
        assert!(crate::store::valid_id(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(short(&a), &a[..12]);
        assert_eq!(short("abc"), "abc");
    }

    #[test]
    fn state_hashes_keep_state_directories_apart() {
        let a = state_hash(Path::new("/var/lib/gadget"));
        assert_eq!(a, state_hash(Path::new("/var/lib/gadget")));
        assert_ne!(a, state_hash(Path::new("/var/lib/gadget2")));
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
