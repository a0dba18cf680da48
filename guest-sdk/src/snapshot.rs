//! Decoding raw map bytes into records. The kernel writes maps in the host's byte order; every
//! architecture the host supports (x86_64, arm64) is little endian.
//!
//! A map's key and value are C structs. Describe each as a Rust type implementing
//! [`FromBytes`] with a [`Reader`], then let [`MapSnapshot::records`] check sizes and decode
//! every entry:
//!
//! ```
//! use gadget_sdk::{FromBytes, MapEntry, MapSnapshot, Reader};
//!
//! /// `struct key { u32 tgid; char comm[16]; }` in program.bpf.c
//! struct Key {
//!     tgid: u32,
//!     comm: String,
//! }
//!
//! impl FromBytes for Key {
//!     const SIZE: usize = 20;
//!     fn from_bytes(r: &mut Reader) -> Result<Self, String> {
//!         Ok(Key { tgid: r.u32()?, comm: r.cstr(16)? })
//!     }
//! }
//!
//! let mut key = 42u32.to_le_bytes().to_vec();
//! key.extend_from_slice(b"dd\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
//! let snap = MapSnapshot {
//!     datasource: "procs".into(),
//!     map_name: "counts".into(),
//!     key_size: 20,
//!     value_size: 8,
//!     entries: vec![MapEntry { key, value: 7u64.to_le_bytes().to_vec() }],
//!     taken_at_ns: 0,
//! };
//! let records: Vec<(Key, u64)> = snap.records()?;
//! assert_eq!((records[0].0.tgid, records[0].0.comm.as_str(), records[0].1), (42, "dd", 7));
//! # Ok::<(), String>(())
//! ```

use crate::MapSnapshot;

/// Reads a little-endian u32 at `offset`; an error says what was short.
pub fn read_u32(bytes: &[u8], offset: usize) -> Result<u32, String> {
    Reader::at(bytes, offset).u32()
}

/// Reads a little-endian u64 at `offset`.
pub fn read_u64(bytes: &[u8], offset: usize) -> Result<u64, String> {
    Reader::at(bytes, offset).u64()
}

/// A cursor over a C struct's bytes; every read is bounds-checked and says what was short.
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    pub fn at(bytes: &'a [u8], offset: usize) -> Self {
        Reader { bytes, offset }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.offset.checked_add(n);
        let slice = end
            .and_then(|e| self.bytes.get(self.offset..e))
            .ok_or_else(|| {
                format!(
                    "need {n} bytes at offset {}, have {}",
                    self.offset,
                    self.bytes.len()
                )
            })?;
        self.offset += n;
        Ok(slice)
    }

    /// Skips padding (C structs align their fields).
    pub fn skip(&mut self, n: usize) -> Result<(), String> {
        self.bytes(n).map(|_| ())
    }

    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A NUL-terminated string in a fixed-size `char[n]` (a task's `comm`, say); invalid
    /// UTF-8 is replaced, never an error: the kernel does not promise UTF-8.
    pub fn cstr(&mut self, n: usize) -> Result<String, String> {
        let raw = self.bytes(n)?;
        let len = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..len]).into_owned())
    }

    /// Bytes not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let r = self.bytes.get(self.offset..).unwrap_or(&[]);
        self.offset = self.bytes.len();
        r
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        self.bytes(N).map(|b| b.try_into().unwrap_or([0; N]))
    }
}

/// A C struct of a map key or value, decoded with a [`Reader`].
pub trait FromBytes: Sized {
    /// `sizeof` the C struct: checked against the map's key or value size before decoding.
    const SIZE: usize;
    fn from_bytes(r: &mut Reader) -> Result<Self, String>;
}

impl FromBytes for u32 {
    const SIZE: usize = 4;
    fn from_bytes(r: &mut Reader) -> Result<Self, String> {
        r.u32()
    }
}

impl FromBytes for u64 {
    const SIZE: usize = 8;
    fn from_bytes(r: &mut Reader) -> Result<Self, String> {
        r.u64()
    }
}

impl MapSnapshot {
    /// Every entry decoded as (key, value) records. The sizes are checked first, so an eBPF
    /// program and guest that disagree on a struct fail with both sizes named, not with garbage.
    /// Array maps are keyed by a `u32` index.
    pub fn records<K: FromBytes, V: FromBytes>(&self) -> Result<Vec<(K, V)>, String> {
        let check = |what: &str, have: u32, want: usize| {
            if have as usize == want {
                Ok(())
            } else {
                Err(format!(
                    "map {} of datasource {}: {what} is {have} bytes, the guest expects {want}",
                    self.map_name, self.datasource
                ))
            }
        };
        check("the key", self.key_size, K::SIZE)?;
        check("the value", self.value_size, V::SIZE)?;
        self.entries
            .iter()
            .map(|e| {
                let k = K::from_bytes(&mut Reader::new(&e.key))?;
                let v = V::from_bytes(&mut Reader::new(&e.value))?;
                Ok((k, v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MapEntry;

    #[test]
    fn reads_and_bounds_checks() {
        let b = [1, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(read_u32(&b, 4), Ok(2));
        assert_eq!(read_u64(&b, 0), Ok(0x2_0000_0001));
        assert!(read_u32(&b, 6).is_err());
        assert!(read_u64(&b, usize::MAX - 2).is_err());
        let mut r = Reader::new(b"ab\0cdefg\xff");
        assert_eq!(r.cstr(4).unwrap(), "ab");
        r.skip(4).unwrap();
        assert_eq!(r.u8(), Ok(0xff));
        assert!(r.u8().is_err());
    }

    #[test]
    fn records_check_sizes_first() {
        let snap = MapSnapshot {
            datasource: "d".into(),
            map_name: "m".into(),
            key_size: 4,
            value_size: 4,
            entries: vec![MapEntry {
                key: vec![0; 4],
                value: vec![0; 4],
            }],
            taken_at_ns: 0,
        };
        let err = snap.records::<u32, u64>().unwrap_err();
        assert!(
            err.contains("value is 4 bytes") && err.contains("expects 8"),
            "{err}"
        );
        assert_eq!(snap.records::<u32, u32>().unwrap().len(), 1);
    }
}
