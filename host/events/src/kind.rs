//! Field kinds (how bytes decode) and IG's type tags (what a value means).
//!
//! A kind is fixed by the BTF type's size and encoding; the IG type tag comes from the typedef chain
//! (`gadget_errno` → `__u32` → `unsigned int`), exactly as IG tags its fields `type:<name>`.

/// How a field's bytes are decoded. Scalars are little-endian (the byte order of the eBPF target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    Bool,
    F32,
    F64,
    /// A `char` array: a string that stops at the first NUL (IG's `Kind_CString`).
    CString,
    /// Bytes the host cannot interpret (arrays of non-char, unknown types): rendered raw.
    Bytes,
    /// A struct whose members are fields of their own (IG flattens them as `parent.member`).
    Struct,
    /// A union: members overlap, each is a field of its own.
    Union,
    /// A string computed on the host (a formatter's output); never part of the record bytes.
    String,
}

impl FieldKind {
    /// The byte size a scalar kind needs; `None` for kinds whose size is the field's.
    pub fn fixed_size(self) -> Option<u32> {
        Some(match self {
            FieldKind::U8 | FieldKind::I8 | FieldKind::Bool => 1,
            FieldKind::U16 | FieldKind::I16 => 2,
            FieldKind::U32 | FieldKind::I32 | FieldKind::F32 => 4,
            FieldKind::U64 | FieldKind::I64 | FieldKind::F64 => 8,
            _ => return None,
        })
    }

    /// True for struct and union fields (fields that hold other fields).
    pub fn is_container(self) -> bool {
        matches!(self, FieldKind::Struct | FieldKind::Union)
    }

    pub fn is_unsigned(self) -> bool {
        matches!(
            self,
            FieldKind::U8 | FieldKind::U16 | FieldKind::U32 | FieldKind::U64
        )
    }

    pub fn is_signed(self) -> bool {
        matches!(
            self,
            FieldKind::I8 | FieldKind::I16 | FieldKind::I32 | FieldKind::I64
        )
    }

    pub fn is_float(self) -> bool {
        matches!(self, FieldKind::F32 | FieldKind::F64)
    }

    pub fn is_string(self) -> bool {
        matches!(self, FieldKind::CString | FieldKind::String)
    }

    /// The widest decimal rendering of the kind: IG's `GetWidthFromType` (pkg/columns/helpers.go),
    /// used as the default maximum width of numeric columns. 0 for kinds without one.
    pub fn type_width(self) -> usize {
        match self {
            FieldKind::U8 => 3,
            FieldKind::I8 => 4,
            FieldKind::U16 => 5,
            FieldKind::I16 => 6,
            FieldKind::U32 => 10,
            FieldKind::I32 => 11,
            FieldKind::U64 | FieldKind::I64 => 20,
            FieldKind::Bool => 5,
            _ => 0,
        }
    }

    /// Lower-case name used in errors and docs.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::U8 => "u8",
            FieldKind::U16 => "u16",
            FieldKind::U32 => "u32",
            FieldKind::U64 => "u64",
            FieldKind::I8 => "i8",
            FieldKind::I16 => "i16",
            FieldKind::I32 => "i32",
            FieldKind::I64 => "i64",
            FieldKind::Bool => "bool",
            FieldKind::F32 => "f32",
            FieldKind::F64 => "f64",
            FieldKind::CString => "string (char array)",
            FieldKind::Bytes => "bytes",
            FieldKind::Struct => "struct",
            FieldKind::Union => "union",
            FieldKind::String => "string",
        }
    }
}

/// IG's type names (pkg/operators/ebpf/types/types.go, include/gadget/types.h) this crate knows.
pub mod ig_type {
    pub const MNTNS_ID: &str = "gadget_mntns_id";
    pub const NETNS_ID: &str = "gadget_netns_id";
    pub const TIMESTAMP: &str = "gadget_timestamp";
    pub const SIGNAL: &str = "gadget_signal";
    pub const ERRNO: &str = "gadget_errno";
    pub const UID: &str = "gadget_uid";
    pub const GID: &str = "gadget_gid";
    pub const KERNEL_STACK: &str = "gadget_kernel_stack";
    pub const USER_STACK: &str = "gadget_user_stack";
    pub const PID: &str = "gadget_pid";
    pub const PPID: &str = "gadget_ppid";
    pub const TID: &str = "gadget_tid";
    pub const COMM: &str = "gadget_comm";
    pub const PCOMM: &str = "gadget_pcomm";
    pub const SYSCALL: &str = "gadget_syscall";
    pub const BYTES: &str = "gadget_bytes";
    pub const DURATION: &str = "gadget_duration";
    pub const PROCESS: &str = "gadget_process";
    pub const CREDS: &str = "gadget_creds";
    pub const PARENT: &str = "gadget_parent";
    pub const FILE_MODE: &str = "gadget_file_mode";
    pub const FILE_FLAGS: &str = "gadget_file_flags";
}
