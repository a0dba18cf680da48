//! A small reader of BTF (the BPF Type Format), for what the host must know about types that
//! aya does not expose: the kernel's and the object's types for CO-RE "type matches"
//! relocations ([`super::core`]), and the types of datasource maps and parameters.
//!
//! Invariants: the type section is copied once and types are decoded on demand from it (a
//! kernel's BTF has ~150k types; decoding all of them up front would cost memory for nothing).
//! Every offset read is bounds-checked at parse time, so the accessors cannot fail afterwards.
//! Only little-endian BTF is accepted (the architectures IG builds for, x86-64 and arm64).

use std::fmt;

/// BTF magic number, as read little-endian.
const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
/// Bound on nested types followed through typedefs and modifiers (libbpf uses 32 too).
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("{what}: BTF is truncated or malformed ({detail})")]
    Malformed { what: String, detail: String },
    #[error("{what}: BTF type [{id}] has kind {kind}, which this host does not know")]
    UnknownKind { what: String, id: u32, kind: u32 },
    #[error("{what}: big-endian BTF is not supported")]
    BigEndian { what: String },
}

/// BTF kinds (`BTF_KIND_*` in the kernel's uapi/linux/btf.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Void,
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    DataSec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Kind> {
        Some(match raw {
            0 => Kind::Void,
            1 => Kind::Int,
            2 => Kind::Ptr,
            3 => Kind::Array,
            4 => Kind::Struct,
            5 => Kind::Union,
            6 => Kind::Enum,
            7 => Kind::Fwd,
            8 => Kind::Typedef,
            9 => Kind::Volatile,
            10 => Kind::Const,
            11 => Kind::Restrict,
            12 => Kind::Func,
            13 => Kind::FuncProto,
            14 => Kind::Var,
            15 => Kind::DataSec,
            16 => Kind::Float,
            17 => Kind::DeclTag,
            18 => Kind::TypeTag,
            19 => Kind::Enum64,
            _ => return None,
        })
    }

    /// Bytes that follow the common 12-byte header for `vlen` entries.
    fn extra_len(self, vlen: usize) -> usize {
        match self {
            Kind::Int | Kind::Var | Kind::DeclTag => 4,
            Kind::Array => 12,
            Kind::Struct | Kind::Union | Kind::DataSec | Kind::Enum64 => 12 * vlen,
            Kind::Enum | Kind::FuncProto => 8 * vlen,
            _ => 0,
        }
    }

    /// Modifiers and typedefs, which CO-RE looks through.
    pub fn is_mod_or_typedef(self) -> bool {
        matches!(
            self,
            Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A member of a struct or union, a parameter of a function prototype, or an enum variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub name_off: u32,
    /// Type id (for members and params); unused for enums.
    pub type_id: u32,
    /// Bit offset for members (without the bitfield size when the kind flag is set).
    pub offset: u32,
}

/// Parsed BTF: the type section and string table of one blob.
#[derive(Clone)]
pub struct Btf {
    types: Vec<u8>,
    strings: Vec<u8>,
    /// Offset in `types` of each type; index 0 is void and has no entry in the data.
    offsets: Vec<u32>,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.offsets.len())
            .finish_non_exhaustive()
    }
}

fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    data.get(off..off + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Btf {
    /// The running kernel's BTF.
    pub fn from_kernel() -> Result<Btf, BtfError> {
        const PATH: &str = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(PATH).map_err(|e| BtfError::Malformed {
            what: PATH.to_string(),
            detail: format!("cannot read it: {e}"),
        })?;
        Btf::parse(&data, PATH)
    }

    /// Parses a BTF blob; `what` names it in errors (e.g. "eBPF object of profile_blockio: .BTF").
    pub fn parse(data: &[u8], what: &str) -> Result<Btf, BtfError> {
        let bad = |detail: &str| BtfError::Malformed {
            what: what.to_string(),
            detail: detail.to_string(),
        };
        if data.len() < HEADER_LEN {
            return Err(bad("shorter than the header"));
        }
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic == MAGIC.swap_bytes() {
            return Err(BtfError::BigEndian {
                what: what.to_string(),
            });
        }
        if magic != MAGIC {
            return Err(bad("bad magic"));
        }
        let field = |i: usize| u32_at(data, 4 + 4 * i).unwrap_or(0) as usize;
        let (hdr_len, type_off, type_len, str_off, str_len) =
            (field(0), field(1), field(2), field(3), field(4));
        let section = |off: usize, len: usize, name: &str| {
            let start = hdr_len.checked_add(off);
            let end = start.and_then(|s| s.checked_add(len));
            match (start, end) {
                (Some(s), Some(e)) if e <= data.len() => Ok(data[s..e].to_vec()),
                _ => Err(bad(&format!("{name} section out of bounds"))),
            }
        };
        let types = section(type_off, type_len, "type")?;
        let strings = section(str_off, str_len, "string")?;
        let mut offsets = vec![0u32];
        let mut off = 0usize;
        while off < types.len() {
            let info = u32_at(&types, off + 4).ok_or_else(|| bad("type header truncated"))?;
            let raw_kind = (info >> 24) & 0x1f;
            let id = offsets.len() as u32;
            let kind = Kind::from_raw(raw_kind).ok_or(BtfError::UnknownKind {
                what: what.to_string(),
                id,
                kind: raw_kind,
            })?;
            let vlen = (info & 0xffff) as usize;
            let next = off + 12 + kind.extra_len(vlen);
            if next > types.len() {
                return Err(bad(&format!("type [{id}] truncated")));
            }
            offsets.push(off as u32);
            off = next;
        }
        Ok(Btf {
            types,
            strings,
            offsets,
        })
    }

    /// Number of type ids, including void (0).
    pub fn len(&self) -> u32 {
        self.offsets.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.len() <= 1
    }

    fn word(&self, id: u32, i: usize) -> u32 {
        if id == 0 {
            return 0;
        }
        self.offsets
            .get(id as usize)
            .and_then(|&o| u32_at(&self.types, o as usize + 4 * i))
            .unwrap_or(0)
    }

    pub fn exists(&self, id: u32) -> bool {
        (id as usize) < self.offsets.len()
    }

    pub fn kind(&self, id: u32) -> Kind {
        Kind::from_raw((self.word(id, 1) >> 24) & 0x1f).unwrap_or(Kind::Void)
    }

    pub fn vlen(&self, id: u32) -> usize {
        (self.word(id, 1) & 0xffff) as usize
    }

    pub fn kflag(&self, id: u32) -> bool {
        self.word(id, 1) >> 31 == 1
    }

    pub fn name_off(&self, id: u32) -> u32 {
        self.word(id, 0)
    }

    /// Size in bytes (ints, structs, unions, enums, datasecs).
    pub fn size(&self, id: u32) -> u32 {
        self.word(id, 2)
    }

    /// The referenced type (pointers, typedefs, modifiers, vars, funcs, return type of protos).
    pub fn type_ref(&self, id: u32) -> u32 {
        self.word(id, 2)
    }

    /// A string of the string table; "" when the offset is out of range or not UTF-8.
    pub fn str_at(&self, off: u32) -> &str {
        let Some(rest) = self.strings.get(off as usize..) else {
            return "";
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    pub fn name(&self, id: u32) -> &str {
        self.str_at(self.name_off(id))
    }

    /// Int encoding: (signed, bits).
    pub fn int_encoding(&self, id: u32) -> (bool, u32) {
        let w = self.word(id, 3);
        ((w >> 24) & 1 == 1, w & 0xff)
    }

    /// The raw int description word (encoding in bits 24-27: 1 signed, 2 char, 4 bool).
    pub fn int_raw(&self, id: u32) -> u32 {
        self.word(id, 3)
    }

    /// Array: (element type, number of elements).
    pub fn array(&self, id: u32) -> (u32, u32) {
        (self.word(id, 3), self.word(id, 5))
    }

    /// Members of a struct or union, params of a func proto, variants of an enum (names only
    /// and values in `offset`, low 32 bits), or entries of a datasec (`name_off` is the var).
    pub fn members(&self, id: u32) -> Vec<Member> {
        let n = self.vlen(id);
        let (stride, words): (usize, usize) = match self.kind(id) {
            Kind::Struct | Kind::Union | Kind::Enum64 | Kind::DataSec => (3, 3),
            Kind::Enum | Kind::FuncProto => (2, 2),
            _ => return Vec::new(),
        };
        (0..n)
            .map(|i| {
                let base = 3 + i * stride;
                let w = |k: usize| {
                    if k < words {
                        self.word(id, base + k)
                    } else {
                        0
                    }
                };
                match self.kind(id) {
                    Kind::Enum => Member {
                        name_off: w(0),
                        type_id: 0,
                        offset: w(1),
                    },
                    Kind::DataSec => Member {
                        name_off: w(0),
                        type_id: w(0),
                        offset: w(1),
                    },
                    _ => Member {
                        name_off: w(0),
                        type_id: w(1),
                        offset: w(2),
                    },
                }
            })
            .collect()
    }

    /// Follows typedefs and modifiers; returns the id reached (at most [`MAX_DEPTH`] steps).
    pub fn skip_mods_and_typedefs(&self, mut id: u32) -> u32 {
        for _ in 0..MAX_DEPTH {
            if !self.kind(id).is_mod_or_typedef() {
                return id;
            }
            id = self.type_ref(id);
        }
        id
    }

    /// Follows modifiers only (typedef names carry meaning, e.g. IG's `gadget_*` typedefs).
    pub fn skip_mods(&self, mut id: u32) -> u32 {
        for _ in 0..MAX_DEPTH {
            match self.kind(id) {
                Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag => {
                    id = self.type_ref(id)
                }
                _ => return id,
            }
        }
        id
    }

    /// Ids of all types of `kind` named `name`.
    pub fn find_by_name(&self, name: &str, kind: Kind) -> impl Iterator<Item = u32> + '_ {
        let name = name.to_string();
        (1..self.len()).filter(move |&id| self.kind(id) == kind && self.name(id) == name)
    }

    /// Size in bytes of a type (following typedefs, modifiers and arrays).
    pub fn type_size(&self, id: u32) -> Option<u64> {
        let mut id = id;
        let mut mult: u64 = 1;
        for _ in 0..MAX_DEPTH {
            id = self.skip_mods_and_typedefs(id);
            match self.kind(id) {
                Kind::Int
                | Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::Float => {
                    return mult.checked_mul(u64::from(self.size(id)));
                }
                Kind::Ptr => return mult.checked_mul(8),
                Kind::Array => {
                    let (elem, n) = self.array(id);
                    mult = mult.checked_mul(u64::from(n))?;
                    id = elem;
                }
                _ => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made blob: int, typedef to it, struct { t a; int b[3]; }.
    pub(crate) fn sample() -> Vec<u8> {
        let strings = b"\0int\0t\0s\0a\0b\0".to_vec();
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        push(&[1, 1 << 24, 4, (1 << 24) | 32]); // [1] int, signed 32
        push(&[5, 8 << 24, 1]); // [2] typedef t -> 1
        push(&[0, 3 << 24, 0, 1, 1, 3]); // [3] array int[3]
        push(&[7, (4 << 24) | 2, 16, 9, 2, 0, 11, 3, 32]); // [4] struct s
        let mut blob = Vec::new();
        for w in [0xeb9f_u16 as u32 | (1 << 16), 24, 0, types.len() as u32] {
            blob.extend_from_slice(&w.to_le_bytes());
        }
        blob.extend_from_slice(&(types.len() as u32).to_le_bytes());
        blob.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        blob.extend_from_slice(&types);
        blob.extend_from_slice(&strings);
        blob
    }

    #[test]
    fn parses_types_members_and_sizes() {
        let btf = Btf::parse(&sample(), "sample").unwrap();
        assert_eq!(btf.len(), 5);
        assert_eq!(btf.kind(4), Kind::Struct);
        assert_eq!(btf.name(4), "s");
        let m = btf.members(4);
        assert_eq!(m.len(), 2);
        assert_eq!(btf.str_at(m[1].name_off), "b");
        assert_eq!(btf.type_size(m[1].type_id), Some(12));
        assert_eq!(btf.skip_mods_and_typedefs(2), 1);
        assert_eq!(btf.int_encoding(1), (true, 32));
        assert_eq!(
            btf.find_by_name("s", Kind::Struct).collect::<Vec<_>>(),
            vec![4]
        );
    }

    #[test]
    fn rejects_truncated_and_unknown_kinds() {
        let mut blob = sample();
        blob.truncate(40);
        assert!(Btf::parse(&blob, "x").is_err());
        let mut blob = sample();
        // Kind of type [1] set to 31.
        blob[24 + 7] = 31;
        let err = Btf::parse(&blob, "obj").unwrap_err().to_string();
        assert!(err.contains("obj") && err.contains("kind 31"), "{err}");
    }
}
