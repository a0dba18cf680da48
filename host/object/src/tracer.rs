//! Tracers (IG's `GADGET_TRACER(name, map, type)`): event datasources fed by a ring buffer (or
//! IG's perf-buffer fallback), with the record layout read from the BTF of the event struct.
//!
//! IG's facts (include/gadget/macros.h, buffer.h; pkg/operators/ebpf/tracer.go, struct.go):
//! - `GADGET_TRACER(open, events, event)` declares the global `gadget_tracer_open___events___event`
//!   (name, map, struct, split on `___`); `GADGET_TRACER_MAP(events, size)` declares a
//!   `BPF_MAP_TYPE_RINGBUF` map and the global `gadget_map_tracer_events`. The tracer's map must
//!   be a ring buffer or a perf event array, its struct a named struct of the object's BTF.
//! - Fields: the struct's members depth first, a struct or union member before its own members,
//!   named `parent.member`; members named `__*` are skipped; each field is tagged with the type
//!   names along its typedef chain (`gadget_errno` → `__u32` → `unsigned int`), which select IG's
//!   formatters and templates; `char` arrays are strings; pointers and other types with no
//!   kind are left out (IG skips them too), reported in [`TracerInfo::notices`].
//!
//! This host also accepts anonymous struct/union members (their members are flattened into the
//! enclosing struct, as C names them) where IG would produce an unnamed field.

use gadget_events::{FieldId, FieldKind, FieldSpec, Layout, LayoutBuilder, LayoutError};

use super::btf::{Btf, Kind, MAX_DEPTH};

/// Prefix of IG's tracer marker globals.
pub const TRACER_PREFIX: &str = "gadget_tracer_";
/// Prefix of IG's tracer-map marker globals (`GADGET_TRACER_MAP`).
pub const TRACER_MAP_PREFIX: &str = "gadget_map_tracer_";
/// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`.
pub const MAP_TYPE_PERF_EVENT_ARRAY: u32 = 4;
/// `BPF_MAP_TYPE_RINGBUF`.
pub const MAP_TYPE_RINGBUF: u32 = 27;
/// Nesting depth of structs followed in an event (IG's deepest, `proc.parent.pid`, is 3).
const MAX_NESTING: usize = 16;
/// Struct members visited while building one layout, skipped ones included: hostile BTF (a
/// struct of many anonymous copies of itself) must not make the walk exponential.
const MAX_VISITED: usize = 1 << 16;

/// A `GADGET_TRACER` marker, as named in the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracerMarker {
    pub name: String,
    pub map: String,
    pub struct_name: String,
}

impl TracerMarker {
    /// Parses the part after [`TRACER_PREFIX`]: `<name>___<map>___<struct>`.
    pub fn parse(rest: &str) -> Option<TracerMarker> {
        let mut parts = rest.split("___");
        let (name, map, struct_name) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || [name, map, struct_name].iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(TracerMarker {
            name: name.to_string(),
            map: map.to_string(),
            struct_name: struct_name.to_string(),
        })
    }
}

/// How the tracer's map hands records to user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferKind {
    RingBuf,
    PerfEventArray,
}

/// A tracer with its record layout.
#[derive(Debug, Clone)]
pub struct TracerInfo {
    /// The datasource name (`open`).
    pub name: String,
    pub map: String,
    pub struct_name: String,
    pub buffer: BufferKind,
    /// The map's declared `max_entries` (the ring buffer's size in bytes).
    pub map_size: Option<u32>,
    pub layout: Layout,
    /// Members left out (types without a kind), one line each, for a notice.
    pub notices: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    #[error(
        "GADGET_TRACER({name}, {map}, {struct_name}): the object has no map named {map} (in section .maps)"
    )]
    MissingMap {
        name: String,
        map: String,
        struct_name: String,
    },
    #[error(
        "GADGET_TRACER({name}, {map}, …): map {map} has type {map_type}; a tracer's map must be a ring buffer ({MAP_TYPE_RINGBUF}) or a perf event array ({MAP_TYPE_PERF_EVENT_ARRAY})"
    )]
    BadMapType {
        name: String,
        map: String,
        map_type: u32,
    },
    #[error(
        "GADGET_TRACER({name}, {map}, {struct_name}): the object's BTF has no struct named {struct_name}"
    )]
    MissingStruct {
        name: String,
        map: String,
        struct_name: String,
    },
    #[error("GADGET_TRACER({name}, …, {struct_name}): {source}")]
    Layout {
        name: String,
        struct_name: String,
        source: LayoutError,
    },
    #[error(
        "GADGET_TRACER({name}, …, {struct_name}): structs nested deeper than {MAX_NESTING} levels, or more than {MAX_VISITED} members in all"
    )]
    TooDeep { name: String, struct_name: String },
}

/// The tracer of `marker` with its layout, as IG's `populateTracer` builds it.
pub fn tracer_info(btf: &Btf, marker: &TracerMarker) -> Result<TracerInfo, TracerError> {
    let TracerMarker {
        name,
        map,
        struct_name,
    } = marker;
    let map_type = map_u32(btf, map, "type").ok_or_else(|| TracerError::MissingMap {
        name: name.clone(),
        map: map.clone(),
        struct_name: struct_name.clone(),
    })?;
    let buffer = match map_type {
        MAP_TYPE_RINGBUF => BufferKind::RingBuf,
        MAP_TYPE_PERF_EVENT_ARRAY => BufferKind::PerfEventArray,
        other => {
            return Err(TracerError::BadMapType {
                name: name.clone(),
                map: map.clone(),
                map_type: other,
            });
        }
    };
    let sid = btf
        .find_by_name(struct_name, Kind::Struct)
        .next()
        .ok_or_else(|| TracerError::MissingStruct {
            name: name.clone(),
            map: map.clone(),
            struct_name: struct_name.clone(),
        })?;
    let layout_err = |source| TracerError::Layout {
        name: name.clone(),
        struct_name: struct_name.clone(),
        source,
    };
    let mut walk = Walk {
        btf,
        builder: LayoutBuilder::new(btf.size(sid)),
        notices: Vec::new(),
        too_deep: false,
        visited: 0,
    };
    walk.members(sid, None, "", 0, 0).map_err(layout_err)?;
    if walk.too_deep {
        return Err(TracerError::TooDeep {
            name: name.clone(),
            struct_name: struct_name.clone(),
        });
    }
    let layout = walk.builder.build().map_err(layout_err)?;
    Ok(TracerInfo {
        name: name.clone(),
        map: map.clone(),
        struct_name: struct_name.clone(),
        buffer,
        map_size: map_u32(btf, map, "max_entries"),
        layout,
        notices: walk.notices,
    })
}

/// A `__uint(member, N)` of a BTF map definition (`int (*member)[N]`).
pub fn map_u32(btf: &Btf, map: &str, member: &str) -> Option<u32> {
    let var = btf.find_by_name(map, Kind::Var).next()?;
    let def = btf.skip_mods_and_typedefs(btf.type_ref(var));
    btf.members(def).into_iter().find_map(|m| {
        if btf.str_at(m.name_off) != member {
            return None;
        }
        let p = btf.skip_mods(m.type_id);
        (btf.kind(p) == Kind::Ptr).then(|| btf.array(btf.type_ref(p)).1)
    })
}

struct Walk<'a> {
    btf: &'a Btf,
    builder: LayoutBuilder,
    notices: Vec<String>,
    too_deep: bool,
    visited: usize,
}

impl Walk<'_> {
    /// Pushes the members of struct/union `sid` (at byte `base` of the record) under `parent`.
    fn members(
        &mut self,
        sid: u32,
        parent: Option<FieldId>,
        prefix: &str,
        base: u32,
        depth: usize,
    ) -> Result<(), LayoutError> {
        if depth > MAX_NESTING {
            self.too_deep = true;
            return Ok(());
        }
        let btf = self.btf;
        let kflag = btf.kflag(sid);
        for m in btf.members(sid) {
            self.visited += 1;
            if self.visited > MAX_VISITED || self.too_deep {
                self.too_deep = true;
                return Ok(());
            }
            let name = btf.str_at(m.name_off);
            let full = format!("{prefix}{name}");
            if kflag && (m.offset >> 24) != 0 {
                self.notices
                    .push(format!("field {full} is a bitfield: left out"));
                continue;
            }
            let bits = if kflag {
                m.offset & 0xff_ffff
            } else {
                m.offset
            };
            if bits % 8 != 0 {
                self.notices
                    .push(format!("field {full} is not byte-aligned: left out"));
                continue;
            }
            let offset = base.saturating_add(bits / 8);
            let (target, type_names) = type_chain(btf, m.type_id);
            let kind = btf.kind(target);
            if name.is_empty() {
                // An anonymous struct or union: its members belong to the enclosing one.
                if matches!(kind, Kind::Struct | Kind::Union) {
                    self.members(target, parent, prefix, offset, depth + 1)?;
                }
                continue;
            }
            if name.starts_with("__") {
                // IG's rule; the builder records the skip (with its members, nothing is pushed).
                self.builder
                    .push(FieldSpec::new(name, parent, offset, 0, FieldKind::Bytes))?;
                continue;
            }
            let size = btf
                .type_size(m.type_id)
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(0);
            let spec = |kind| {
                let mut s = FieldSpec::new(name, parent, offset, size, kind);
                s.type_names = type_names.clone();
                s
            };
            match kind {
                Kind::Struct | Kind::Union => {
                    let fk = if kind == Kind::Struct {
                        FieldKind::Struct
                    } else {
                        FieldKind::Union
                    };
                    if let Some(id) = self.builder.push(spec(fk))? {
                        self.members(target, Some(id), &format!("{full}."), offset, depth + 1)?;
                    }
                }
                _ => match field_kind(btf, target, &type_names) {
                    Some(fk) if size > 0 => {
                        self.builder.push(spec(fk))?;
                    }
                    _ => self.notices.push(format!(
                        "field {full} has a type this host cannot show ({}): left out, as IG does",
                        super::types::type_name(btf, m.type_id)
                    )),
                },
            }
        }
        Ok(())
    }
}

/// Follows modifiers and typedefs (and array element types) from `id`, collecting the names
/// met (IG's `btfhelpers.GetType` tags); returns the type reached after typedefs and modifiers.
fn type_chain(btf: &Btf, id: u32) -> (u32, Vec<String>) {
    let mut names = Vec::new();
    let mut cur = id;
    let mut first = None;
    for _ in 0..MAX_DEPTH {
        let name = btf.name(cur);
        if !name.is_empty() && !matches!(btf.kind(cur), Kind::Volatile | Kind::Const) {
            names.push(name.to_string());
        }
        match btf.kind(cur) {
            k if k.is_mod_or_typedef() => cur = btf.type_ref(cur),
            Kind::Array => {
                first.get_or_insert(cur);
                cur = btf.array(cur).0;
            }
            _ => break,
        }
    }
    (first.unwrap_or(cur), names)
}

/// IG's `getFieldKind` for a non-struct member.
fn field_kind(btf: &Btf, id: u32, type_names: &[String]) -> Option<FieldKind> {
    match btf.kind(id) {
        Kind::Array => {
            let elem = btf.skip_mods_and_typedefs(btf.array(id).0);
            match field_kind(btf, elem, type_names)? {
                FieldKind::I8 | FieldKind::U8 if type_names.iter().any(|t| t == "char") => {
                    Some(FieldKind::CString)
                }
                FieldKind::Struct | FieldKind::Union | FieldKind::CString | FieldKind::Bytes => {
                    None
                }
                _ => Some(FieldKind::Bytes),
            }
        }
        Kind::Int => {
            let (signed, _) = btf.int_encoding(id);
            let is_bool = (btf.int_raw(id) >> 24) & 4 != 0;
            match (btf.size(id), signed, is_bool) {
                (1, _, true) => Some(FieldKind::Bool),
                (1, true, _) => Some(FieldKind::I8),
                (1, false, _) => Some(FieldKind::U8),
                (2, true, _) => Some(FieldKind::I16),
                (2, false, _) => Some(FieldKind::U16),
                (4, true, _) => Some(FieldKind::I32),
                (4, false, _) => Some(FieldKind::U32),
                (8, true, _) => Some(FieldKind::I64),
                (8, false, _) => Some(FieldKind::U64),
                _ => None,
            }
        }
        Kind::Enum | Kind::Enum64 => match (btf.size(id), btf.kflag(id)) {
            (1, true) => Some(FieldKind::I8),
            (1, false) => Some(FieldKind::U8),
            (2, true) => Some(FieldKind::I16),
            (2, false) => Some(FieldKind::U16),
            (4, true) => Some(FieldKind::I32),
            (4, false) => Some(FieldKind::U32),
            (8, true) => Some(FieldKind::I64),
            (8, false) => Some(FieldKind::U64),
            _ => None,
        },
        Kind::Float => match btf.size(id) {
            4 => Some(FieldKind::F32),
            8 => Some(FieldKind::F64),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::ElfInfo;
    use gadget_events::{FieldConfig, FormatContext, NoNames, Schema, Value, WallClock};

    /// IG's trace_open object (fixtures/ig-v0.46.0/trace_open.oci.tar, amd64 layer), as checked
    /// into the fuzz corpus.
    const IG_TRACE_OPEN: &[u8] =
        include_bytes!("../../../fuzz/corpus/ebpf_object/ig-trace_open.bpf.o");

    #[test]
    fn markers_parse_as_ig_splits_them() {
        assert_eq!(
            TracerMarker::parse("open___events___event"),
            Some(TracerMarker {
                name: "open".into(),
                map: "events".into(),
                struct_name: "event".into()
            })
        );
        for bad in [
            "open___events",
            "a___b___c___d",
            "___events___event",
            "open",
        ] {
            assert_eq!(TracerMarker::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn trace_open_tracer_and_its_layout_from_the_real_object() {
        let info = ElfInfo::parse(IG_TRACE_OPEN).unwrap();
        let [t] = info.tracers.as_slice() else {
            panic!("{:?}", info.tracers)
        };
        assert_eq!(
            (t.name.as_str(), t.map.as_str(), t.struct_name.as_str()),
            ("open", "events", "event")
        );
        assert_eq!(t.buffer, BufferKind::RingBuf);
        assert_eq!(t.map_size, Some(256 * 1024));
        assert_eq!(info.tracer_maps, ["events"]);
        let l = &t.layout;
        assert_eq!(l.record_size(), 400);
        let f = |n: &str| l.field(n).unwrap_or_else(|| panic!("no {n}")).1;
        // Offsets and kinds as bpftool prints the BTF of struct event (see the events crate's
        // tests/trace_open.rs for the dump).
        for (name, off, size, kind) in [
            ("timestamp_raw", 0, 8, FieldKind::U64),
            ("proc", 8, 64, FieldKind::Struct),
            ("proc.comm", 8, 16, FieldKind::CString),
            ("proc.pid", 24, 4, FieldKind::U32),
            ("proc.tid", 28, 4, FieldKind::U32),
            ("proc.mntns_id", 32, 8, FieldKind::U64),
            ("proc.creds", 40, 8, FieldKind::Struct),
            ("proc.creds.uid", 40, 4, FieldKind::U32),
            ("proc.creds.gid", 44, 4, FieldKind::U32),
            ("proc.parent", 48, 20, FieldKind::Struct),
            ("proc.parent.comm", 48, 16, FieldKind::CString),
            ("proc.parent.pid", 64, 4, FieldKind::U32),
            ("error_raw", 72, 4, FieldKind::U32),
            ("fd", 76, 4, FieldKind::U32),
            ("flags_raw", 80, 4, FieldKind::U32),
            ("mode_raw", 84, 4, FieldKind::U32),
            ("ustack", 88, 56, FieldKind::Struct),
            ("fname", 144, 255, FieldKind::CString),
        ] {
            let got = f(name);
            assert_eq!(
                (got.offset, got.size, got.kind),
                (off, size, kind),
                "{name}"
            );
        }
        assert_eq!(
            f("error_raw").type_names,
            ["gadget_errno", "__u32", "unsigned int"]
        );
        assert_eq!(f("proc.comm").type_names, ["gadget_comm", "char"]);
        assert_eq!(f("proc").type_names, ["gadget_process"]);
        assert_eq!(
            f("proc.pid").annotations.get("columns.alias").unwrap(),
            "pid"
        );

        // With IG's derived fields and trace_open's gadget.yaml (`flags: columns.hidden: true`),
        // the default columns are IG's for trace_open.
        let mut config = FieldConfig::default();
        config
            .entry("flags".into())
            .or_default()
            .insert("columns.hidden".into(), "true".into());
        let schema = Schema::new(l.clone(), &config);
        let defaults: Vec<&str> = schema
            .default_fields()
            .into_iter()
            .map(|i| schema.field(i).unwrap().full_name.as_str())
            .collect();
        assert_eq!(
            defaults,
            [
                "proc.comm",
                "proc.pid",
                "proc.tid",
                "fd",
                "fname",
                "error",
                "mode"
            ]
        );

        // A record built at those offsets decodes to what was written.
        let mut rec = vec![0u8; 400];
        rec[8..11].copy_from_slice(b"cat");
        rec[24..28].copy_from_slice(&4242u32.to_le_bytes());
        rec[72..76].copy_from_slice(&2u32.to_le_bytes());
        rec[144..153].copy_from_slice(b"/etc/motd");
        let ctx = FormatContext {
            clock: WallClock::default(),
            ids: &NoNames,
        };
        let ev = schema.event(&rec, &ctx).unwrap();
        let val = |n: &str| ev.get(schema.id_of(n).unwrap()).unwrap().clone();
        assert_eq!(val("proc.comm"), Value::Str("cat".into()));
        assert_eq!(val("proc.pid"), Value::U64(4242));
        assert_eq!(val("fname"), Value::Str("/etc/motd".into()));
        assert_eq!(val("error"), Value::Str("ENOENT".into()));
    }

    /// A BTF blob of `struct A { <anonymous A> ×8 }` (sizes are irrelevant to the walk).
    fn self_nesting_btf() -> Btf {
        let strings = b"\0A\0".to_vec();
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        let mut def = vec![1, (4 << 24) | 8, 4];
        for _ in 0..8 {
            def.extend_from_slice(&[0, 1, 0]);
        }
        push(&def); // [1] struct A
        let mut blob = Vec::new();
        for w in [0xeb9f_u16 as u32 | (1 << 16), 24, 0, types.len() as u32] {
            blob.extend_from_slice(&w.to_le_bytes());
        }
        blob.extend_from_slice(&(types.len() as u32).to_le_bytes());
        blob.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        blob.extend_from_slice(&types);
        blob.extend_from_slice(&strings);
        Btf::parse(&blob, "test").unwrap()
    }

    #[test]
    fn a_self_nesting_struct_is_refused_without_an_exponential_walk() {
        let btf = self_nesting_btf();
        let mut walk = Walk {
            btf: &btf,
            builder: LayoutBuilder::new(4),
            notices: Vec::new(),
            too_deep: false,
            visited: 0,
        };
        // 8^16 members without the bound; the bound stops it after MAX_VISITED.
        walk.members(1, None, "", 0, 0).unwrap();
        assert!(walk.too_deep);
        assert!(walk.visited <= MAX_VISITED + 1, "{}", walk.visited);
    }

    #[test]
    fn objects_without_tracers_have_none() {
        let info = ElfInfo::parse(include_bytes!(
            "../../../fuzz/corpus/ebpf_object/ig-profile_blockio.bpf.o"
        ))
        .unwrap();
        assert!(info.tracers.is_empty());
    }
}
