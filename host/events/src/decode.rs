//! Raw record bytes → typed values, one per layout field.
//!
//! Invariants: decoding never panics and never reads outside the record; a record shorter than
//! the layout is an error (a longer one is accepted: ring buffer records may be padded); a char
//! array stops at its first NUL and invalid UTF-8 is replaced (lossy), so a hostile comm or path
//! cannot break the output encodings.

use crate::kind::FieldKind;
use crate::layout::Layout;

/// One decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    /// Raw bytes: structs, unions (their members are values of their own) and unknown types.
    Bytes(Vec<u8>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error(
        "event record has {got} bytes but its layout needs {need}: the eBPF program and its BTF disagree"
    )]
    Short { got: usize, need: u32 },
}

/// Decodes the scalar or string at `bytes` (exactly the field's bytes) as `kind`.
pub(crate) fn decode_value(kind: FieldKind, bytes: &[u8]) -> Value {
    fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
        let mut out = [0u8; N];
        let n = b.len().min(N);
        out[..n].copy_from_slice(&b[..n]);
        out
    }
    match kind {
        FieldKind::U8 => Value::U64(u64::from(arr::<1>(bytes)[0])),
        FieldKind::U16 => Value::U64(u64::from(u16::from_le_bytes(arr(bytes)))),
        FieldKind::U32 => Value::U64(u64::from(u32::from_le_bytes(arr(bytes)))),
        FieldKind::U64 => Value::U64(u64::from_le_bytes(arr(bytes))),
        FieldKind::I8 => Value::I64(i64::from(i8::from_le_bytes(arr(bytes)))),
        FieldKind::I16 => Value::I64(i64::from(i16::from_le_bytes(arr(bytes)))),
        FieldKind::I32 => Value::I64(i64::from(i32::from_le_bytes(arr(bytes)))),
        FieldKind::I64 => Value::I64(i64::from_le_bytes(arr(bytes))),
        // IG's Bool accessor: any non-zero byte is true.
        FieldKind::Bool => Value::Bool(arr::<1>(bytes)[0] != 0),
        FieldKind::F32 => Value::F32(f32::from_le_bytes(arr(bytes))),
        FieldKind::F64 => Value::F64(f64::from_le_bytes(arr(bytes))),
        FieldKind::CString | FieldKind::String => {
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            Value::Str(String::from_utf8_lossy(&bytes[..end]).into_owned())
        }
        FieldKind::Bytes | FieldKind::Struct | FieldKind::Union => Value::Bytes(bytes.to_vec()),
    }
}

/// Decodes every field of `layout` from `record`.
pub fn decode(layout: &Layout, record: &[u8]) -> Result<Vec<Value>, DecodeError> {
    if record.len() < layout.record_size() as usize {
        return Err(DecodeError::Short {
            got: record.len(),
            need: layout.record_size(),
        });
    }
    Ok(layout
        .fields()
        .iter()
        .map(|f| {
            // In bounds: the layout guarantees offset + size <= record_size <= record.len().
            let start = f.offset as usize;
            let bytes = record.get(start..start + f.size as usize).unwrap_or(&[]);
            decode_value(f.kind, bytes)
        })
        .collect())
}
