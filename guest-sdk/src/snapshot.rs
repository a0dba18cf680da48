//! Decoding raw map bytes. The kernel writes maps in the host's byte order; every architecture
//! the host supports (x86_64, arm64) is little endian.

/// Reads a little-endian u32 at `offset`; an error says what was short.
pub fn read_u32(bytes: &[u8], offset: usize) -> Result<u32, String> {
    offset
        .checked_add(4)
        .and_then(|end| bytes.get(offset..end))
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| format!("need 4 bytes at offset {offset}, have {}", bytes.len()))
}

/// Reads a little-endian u64 at `offset`.
pub fn read_u64(bytes: &[u8], offset: usize) -> Result<u64, String> {
    offset
        .checked_add(8)
        .and_then(|end| bytes.get(offset..end))
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| format!("need 8 bytes at offset {offset}, have {}", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_bounds_checks() {
        let b = [1, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(read_u32(&b, 4), Ok(2));
        assert_eq!(read_u64(&b, 0), Ok(0x2_0000_0001));
        assert!(read_u32(&b, 6).is_err());
        assert!(read_u64(&b, usize::MAX - 2).is_err());
    }
}
