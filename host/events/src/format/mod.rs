//! IG's formatters: fields derived from fields of a known IG type, one family per file behind the
//! small [`Family`] trait.
//!
//! IG's rule for the derived field's name (pkg/utils/annotations `GetTargetNameFromAnnotation`):
//! the family's target annotation on the source field if set (`formatters.errno.target`), else the
//! source name without its `_raw` suffix (`error_raw` → `error`); a source with neither is left
//! alone. uid/gid fall back to `user`/`group` (IG's uidgidresolver). The derived field has the
//! source's parent (`proc.creds.uid` → `proc.creds.user`) and comes after all record fields, in
//! IG's order: signal, errno, syscall, timestamp, bytes, duration, file_mode, file_flags, then uid,
//! gid.

pub mod errno;
pub mod file;
mod go_layout;
pub mod human;
pub mod ids;
pub mod signal;
pub mod syscall;
mod syscall_x86_64;
pub mod timestamp;

use crate::annotations;
use crate::decode::Value;
use crate::kind::{FieldKind, ig_type};
use ids::IdResolver;
use timestamp::WallClock;

/// What formatting needs from outside: the clock and the id names.
pub struct FormatContext<'a> {
    pub clock: WallClock,
    pub ids: &'a dyn IdResolver,
}

/// How a family hides its source field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceVisibility {
    /// IG's `SetFieldVisibility(true, …)`: hidden unless the source's own `columns.hidden` says
    /// otherwise.
    HiddenUnlessAnnotated,
    /// Always hidden (IG's uidgidresolver).
    Hidden,
}

/// One formatter family.
pub trait Family: Sync {
    /// IG's type name this family formats (`gadget_errno`).
    fn ig_type(&self) -> &'static str;
    /// The annotation naming the derived field (`formatters.errno.target`).
    fn target_annotation(&self) -> &'static str;
    /// Name used when the source has neither the target annotation nor a `_raw` suffix.
    fn fallback_target(&self) -> Option<&'static str> {
        None
    }
    /// Whether IG adds the derived field for a source of this kind at all.
    fn applies(&self, _kind: FieldKind) -> bool {
        true
    }
    /// The derived field's starting annotations: `None` = IG's defaults (width 16, ellipsis end,
    /// left); `Some` = exactly these (IG's `WithAnnotations` replaces the defaults), a `template`
    /// entry then being expanded.
    fn base_annotations(&self) -> Option<&'static [(&'static str, &'static str)]> {
        None
    }
    fn derived_hidden(&self) -> bool {
        false
    }
    fn source_visibility(&self) -> SourceVisibility {
        SourceVisibility::HiddenUnlessAnnotated
    }
    /// The derived string for `raw` (a value of kind `kind`); may rewrite `raw` (timestamps become
    /// wall-clock ns in place, as in IG). An empty string where IG leaves the field unset.
    fn derive(&self, raw: &mut Value, kind: FieldKind, ctx: &FormatContext<'_>) -> String;
    /// [`Family::derive`] for families that read options from the source field's annotations.
    fn derive_with(
        &self,
        raw: &mut Value,
        kind: FieldKind,
        _source_annotations: &annotations::Annotations,
        ctx: &FormatContext<'_>,
    ) -> String {
        self.derive(raw, kind, ctx)
    }
}

fn u32_of(raw: &Value, kind: FieldKind) -> Option<u32> {
    match (raw, kind) {
        (Value::U64(v), FieldKind::U32) => u32::try_from(*v).ok(),
        _ => None,
    }
}

struct Signal;
impl Family for Signal {
    fn ig_type(&self) -> &'static str {
        ig_type::SIGNAL
    }
    fn target_annotation(&self) -> &'static str {
        "formatters.signal.target"
    }
    fn base_annotations(&self) -> Option<&'static [(&'static str, &'static str)]> {
        Some(&[(annotations::VALUE_ONE_OF, signal::ONE_OF)])
    }
    fn derive(&self, raw: &mut Value, kind: FieldKind, _: &FormatContext<'_>) -> String {
        // IG formats any 4-byte field.
        match (raw, kind) {
            (Value::U64(v), FieldKind::U32) => signal::signal_string(*v as u32),
            (Value::I64(v), FieldKind::I32) => signal::signal_string(*v as u32),
            _ => String::new(),
        }
    }
}

struct Errno;
impl Family for Errno {
    fn ig_type(&self) -> &'static str {
        ig_type::ERRNO
    }
    fn target_annotation(&self) -> &'static str {
        "formatters.errno.target"
    }
    fn base_annotations(&self) -> Option<&'static [(&'static str, &'static str)]> {
        Some(&[
            (annotations::TEMPLATE, "errorString"),
            (annotations::VALUE_ONE_OF, errno::ONE_OF),
        ])
    }
    fn derive(&self, raw: &mut Value, kind: FieldKind, _: &FormatContext<'_>) -> String {
        u32_of(raw, kind)
            .map(errno::errno_string)
            .unwrap_or_default()
    }
}

struct Syscall;
impl Family for Syscall {
    fn ig_type(&self) -> &'static str {
        ig_type::SYSCALL
    }
    fn target_annotation(&self) -> &'static str {
        "formatters.syscall.target"
    }
    fn applies(&self, kind: FieldKind) -> bool {
        kind == FieldKind::U64
    }
    fn derive(&self, raw: &mut Value, _: FieldKind, _: &FormatContext<'_>) -> String {
        raw.as_u64()
            .map(syscall::syscall_string)
            .unwrap_or_default()
    }
}

struct Timestamp;
impl Family for Timestamp {
    fn ig_type(&self) -> &'static str {
        ig_type::TIMESTAMP
    }
    fn target_annotation(&self) -> &'static str {
        "formatters.timestamp.target"
    }
    fn base_annotations(&self) -> Option<&'static [(&'static str, &'static str)]> {
        Some(&[(annotations::TEMPLATE, "timestamp")])
    }
    fn derive(&self, raw: &mut Value, kind: FieldKind, ctx: &FormatContext<'_>) -> String {
        self.derive_with(raw, kind, &annotations::Annotations::new(), ctx)
    }
    fn derive_with(
        &self,
        raw: &mut Value,
        kind: FieldKind,
        source_annotations: &annotations::Annotations,
        ctx: &FormatContext<'_>,
    ) -> String {
        let layout = source_annotations
            .get("formatters.timestamp.format")
            .filter(|l| !l.is_empty())
            .map_or(timestamp::DEFAULT_LAYOUT, String::as_str);
        let wall = match (&*raw, kind) {
            (Value::U64(v), FieldKind::U64) => {
                let wall = ctx.clock.wall_ns(*v);
                *raw = Value::U64(wall as u64);
                wall
            }
            (Value::I64(v), FieldKind::I64) => {
                let wall = ctx.clock.wall_ns(*v as u64);
                *raw = Value::I64(wall);
                wall
            }
            _ => return String::new(),
        };
        timestamp::format_wall_ns_layout(wall, ctx.clock.utc_offset_secs, layout)
    }
}

/// A u64 shown in human units (IG's bytes and duration families).
struct HumanU64 {
    ig_type: &'static str,
    target: &'static str,
    template: &'static [(&'static str, &'static str)],
    format: fn(u64) -> String,
}
impl Family for HumanU64 {
    fn ig_type(&self) -> &'static str {
        self.ig_type
    }
    fn target_annotation(&self) -> &'static str {
        self.target
    }
    fn base_annotations(&self) -> Option<&'static [(&'static str, &'static str)]> {
        Some(self.template)
    }
    fn derive(&self, raw: &mut Value, kind: FieldKind, _: &FormatContext<'_>) -> String {
        match (&*raw, kind) {
            (Value::U64(v), FieldKind::U64) => (self.format)(*v),
            _ => String::new(),
        }
    }
}

static BYTES: HumanU64 = HumanU64 {
    ig_type: ig_type::BYTES,
    target: "formatters.bytes.target",
    template: &[(annotations::TEMPLATE, "bytes")],
    format: human::bytes_string,
};

static DURATION: HumanU64 = HumanU64 {
    ig_type: ig_type::DURATION,
    target: "formatters.duration.target",
    template: &[(annotations::TEMPLATE, "duration")],
    format: human::duration_string,
};

/// A u32 of file bits (IG's file_mode and file_flags families).
struct FileBits {
    ig_type: &'static str,
    target: &'static str,
    format: fn(u32) -> String,
}
impl Family for FileBits {
    fn ig_type(&self) -> &'static str {
        self.ig_type
    }
    fn target_annotation(&self) -> &'static str {
        self.target
    }
    fn applies(&self, kind: FieldKind) -> bool {
        kind == FieldKind::U32
    }
    fn derive(&self, raw: &mut Value, kind: FieldKind, _: &FormatContext<'_>) -> String {
        u32_of(raw, kind).map(self.format).unwrap_or_default()
    }
}

static FILE_MODE: FileBits = FileBits {
    ig_type: ig_type::FILE_MODE,
    target: "formatters.file_mode.target",
    format: file::file_mode_string,
};

static FILE_FLAGS: FileBits = FileBits {
    ig_type: ig_type::FILE_FLAGS,
    target: "formatters.file_flags.target",
    format: file::file_flags_string,
};

/// A uid or gid resolved to its name (IG's uidgidresolver): the source is hidden, and so is
/// the name unless asked for.
struct IdName {
    ig_type: &'static str,
    fallback: &'static str,
    resolve: fn(&dyn ids::IdResolver, u32) -> String,
}
impl Family for IdName {
    fn ig_type(&self) -> &'static str {
        self.ig_type
    }
    fn target_annotation(&self) -> &'static str {
        "uidgidresolver.target"
    }
    fn fallback_target(&self) -> Option<&'static str> {
        Some(self.fallback)
    }
    fn derived_hidden(&self) -> bool {
        true
    }
    fn source_visibility(&self) -> SourceVisibility {
        SourceVisibility::Hidden
    }
    fn derive(&self, raw: &mut Value, kind: FieldKind, ctx: &FormatContext<'_>) -> String {
        u32_of(raw, kind)
            .map(|id| (self.resolve)(ctx.ids, id))
            .unwrap_or_default()
    }
}

static USER: IdName = IdName {
    ig_type: ig_type::UID,
    fallback: "user",
    resolve: ids::user_string,
};

static GROUP: IdName = IdName {
    ig_type: ig_type::GID,
    fallback: "group",
    resolve: ids::group_string,
};

/// The families in the order IG adds their fields.
pub(crate) static FAMILIES: &[&dyn Family] = &[
    &Signal,
    &Errno,
    &Syscall,
    &Timestamp,
    &BYTES,
    &DURATION,
    &FILE_MODE,
    &FILE_FLAGS,
    &USER,
    &GROUP,
];
