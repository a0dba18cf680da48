//! What IG derives from an object's BTF, derived the same way here: datasources of
//! `GADGET_MAPITER(name, map)` markers with fields from the map's key and value types, and the
//! types of `const volatile` globals that parameters set.
//!
//! Datasource fields carry their place in the map's bytes to the guest as annotations with
//! the `ebpf.` prefix ([`ObjectField::annotations`]), so any guest (the built-in default one
//! included) can decode entries without knowing the C types. The model is per datasource and
//! per field, not per map kind, so event datasources (ring buffers) can be added as another
//! source of the same fields later.

use super::btf::{Btf, Kind};
use super::elf::MapIter;

/// IG's typedefs that mark a value member as histogram slots (include/gadget/types.h).
pub const HIST_SLOT_U32: &str = "gadget_histogram_slot__u32";
pub const HIST_SLOT_U64: &str = "gadget_histogram_slot__u64";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    Int {
        signed: bool,
        size: u32,
    },
    Bool,
    /// A NUL-padded char array.
    String {
        len: u32,
    },
    /// `gadget_histogram_slot__u32/__u64 name[slots]`.
    Histogram {
        slot_size: u32,
        slots: u32,
    },
}

impl FieldType {
    /// The `ebpf.type` annotation value.
    pub fn name(&self) -> String {
        match self {
            FieldType::Int { signed, size } => {
                format!("{}{}", if *signed { "i" } else { "u" }, size * 8)
            }
            FieldType::Bool => "bool".into(),
            FieldType::String { .. } => "string".into(),
            FieldType::Histogram { slot_size, .. } => format!("histogram_u{}", slot_size * 8),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Key,
    Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectField {
    pub name: String,
    pub place: Place,
    /// Byte offset in the key or value.
    pub offset: u32,
    pub size: u32,
    pub ty: FieldType,
    /// The C type name as written (e.g. `gadget_pid`, `__u32`), for inspection.
    pub c_type: String,
}

impl ObjectField {
    /// What the guest needs to decode the field, as `ebpf.*` annotations.
    pub fn annotations(&self) -> Vec<(String, String)> {
        let mut a = vec![
            (
                gadget_keys::EBPF_PLACE.to_string(),
                match self.place {
                    Place::Key => "key",
                    Place::Value => "value",
                }
                .to_string(),
            ),
            (gadget_keys::EBPF_OFFSET.into(), self.offset.to_string()),
            (gadget_keys::EBPF_SIZE.into(), self.size.to_string()),
            (gadget_keys::EBPF_TYPE.into(), self.ty.name()),
        ];
        if let FieldType::Histogram { slots, .. } = self.ty {
            a.push((gadget_keys::EBPF_SLOTS.into(), slots.to_string()));
        }
        a
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDatasource {
    pub name: String,
    pub map: String,
    pub key_type: String,
    pub value_type: String,
    pub fields: Vec<ObjectField>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TypeError {
    #[error(
        "GADGET_MAPITER({datasource}, {map}): the object has no map named {map} (in section .maps)"
    )]
    MissingMap { datasource: String, map: String },
    #[error("GADGET_MAPITER({datasource}, {map}): {detail}")]
    BadMap {
        datasource: String,
        map: String,
        detail: String,
    },
    #[error(
        "GADGET_MAPITER({datasource}, {map}): the value type {value_type} has no histogram slots (a member `{HIST_SLOT_U32} name[N]` or `{HIST_SLOT_U64} name[N]`); map-iterator datasources need one"
    )]
    NoHistogram {
        datasource: String,
        map: String,
        value_type: String,
    },
    #[error(
        "eBPF parameter {global}: its type {c_type} is not supported (bool, integers of 1, 2, 4 or 8 bytes, or char arrays)"
    )]
    UnsupportedParam { global: String, c_type: String },
    #[error("eBPF parameter {global}: the object has no BTF for a global of that name")]
    MissingParam { global: String },
}

/// The type id of a `.maps` map definition or a global variable named `name`.
fn var_type(btf: &Btf, name: &str) -> Option<u32> {
    btf.find_by_name(name, Kind::Var)
        .next()
        .map(|id| btf.type_ref(id))
}

/// A readable name for a type: its own name, or `struct x`, `T[n]`, `*T`.
pub fn type_name(btf: &Btf, id: u32) -> String {
    let mut id = id;
    let mut prefix = String::new();
    for _ in 0..super::btf::MAX_DEPTH {
        let name = btf.name(id);
        match btf.kind(id) {
            Kind::Void => return format!("{prefix}void"),
            Kind::Struct if !name.is_empty() => return format!("{prefix}struct {name}"),
            Kind::Union if !name.is_empty() => return format!("{prefix}union {name}"),
            Kind::Enum | Kind::Enum64 if !name.is_empty() => return format!("{prefix}enum {name}"),
            Kind::Volatile => prefix.push_str("volatile "),
            Kind::Const => prefix.push_str("const "),
            Kind::Ptr => prefix.push('*'),
            Kind::Array => {
                let (elem, n) = btf.array(id);
                return format!("{prefix}{}[{n}]", type_name(btf, elem));
            }
            _ if !name.is_empty() => return format!("{prefix}{name}"),
            k => return format!("{prefix}({} anonymous)", k.to_string().to_lowercase()),
        }
        id = btf.type_ref(id);
    }
    prefix
}

/// Classifies a scalar type: ints (any width IG allows), bools, char arrays, enums as ints.
fn scalar_type(btf: &Btf, id: u32) -> Option<FieldType> {
    let id = btf.skip_mods_and_typedefs(id);
    match btf.kind(id) {
        Kind::Int => {
            let size = btf.size(id);
            let raw = btf.int_raw(id);
            let is_bool = (raw >> 24) & 4 != 0;
            if is_bool && size == 1 {
                return Some(FieldType::Bool);
            }
            let (signed, _) = btf.int_encoding(id);
            matches!(size, 1 | 2 | 4 | 8).then_some(FieldType::Int { signed, size })
        }
        Kind::Enum | Kind::Enum64 => {
            let size = btf.size(id);
            matches!(size, 1 | 2 | 4 | 8).then_some(FieldType::Int {
                signed: btf.kflag(id),
                size,
            })
        }
        Kind::Array => {
            let (elem, n) = btf.array(id);
            let e = btf.skip_mods_and_typedefs(elem);
            (btf.kind(e) == Kind::Int && btf.size(e) == 1).then_some(FieldType::String { len: n })
        }
        _ => None,
    }
}

/// The histogram slot width when `id` is `gadget_histogram_slot__uNN name[N]`.
fn histogram_type(btf: &Btf, id: u32) -> Option<FieldType> {
    let arr = btf.skip_mods(id);
    if btf.kind(arr) != Kind::Array {
        return None;
    }
    let (elem, slots) = btf.array(arr);
    let elem = btf.skip_mods(elem);
    let slot_size = match (btf.kind(elem), btf.name(elem)) {
        (Kind::Typedef, HIST_SLOT_U32) => 4,
        (Kind::Typedef, HIST_SLOT_U64) => 8,
        _ => return None,
    };
    Some(FieldType::Histogram { slot_size, slots })
}

/// Fields of a key or value type: struct members (nested structs flattened as `a.b`), or the
/// whole type as one field named `name` when it is a scalar.
fn fields_of(btf: &Btf, id: u32, place: Place, name: &str, base: u32, out: &mut Vec<ObjectField>) {
    let sid = btf.skip_mods_and_typedefs(id);
    match btf.kind(sid) {
        Kind::Struct | Kind::Union => {
            for m in btf.members(sid) {
                if btf.kflag(sid) && (m.offset >> 24) != 0 {
                    // Bitfields have no byte offset of their own; IG skips them too.
                    continue;
                }
                let bit_off = if btf.kflag(sid) {
                    m.offset & 0xff_ffff
                } else {
                    m.offset
                };
                if bit_off % 8 != 0 {
                    continue;
                }
                let mname = btf.str_at(m.name_off);
                let full = match (name.is_empty(), mname.is_empty()) {
                    (true, _) => mname.to_string(),
                    (false, true) => name.to_string(),
                    (false, false) => format!("{name}.{mname}"),
                };
                fields_of(btf, m.type_id, place, &full, base + bit_off / 8, out);
            }
        }
        _ => {
            let ty = histogram_type(btf, id).or_else(|| scalar_type(btf, id));
            if let Some(ty) = ty {
                let size = btf.type_size(id).unwrap_or(0) as u32;
                out.push(ObjectField {
                    name: match (name.is_empty(), place) {
                        (false, _) => name.to_string(),
                        (true, Place::Key) => "key".into(),
                        (true, Place::Value) => "value".into(),
                    },
                    place,
                    offset: base,
                    size,
                    ty,
                    c_type: type_name(btf, id),
                });
            }
        }
    }
}

/// The key and value type ids of a BTF map definition (`__type(key, T)`, `__type(value, T)`).
fn map_key_value(btf: &Btf, def: u32) -> Option<(u32, u32)> {
    let def = btf.skip_mods_and_typedefs(def);
    if btf.kind(def) != Kind::Struct {
        return None;
    }
    let mut key = None;
    let mut value = None;
    for m in btf.members(def) {
        let target = || {
            let p = btf.skip_mods(m.type_id);
            (btf.kind(p) == Kind::Ptr).then(|| btf.type_ref(p))
        };
        match btf.str_at(m.name_off) {
            "key" => key = target(),
            "value" => value = target(),
            _ => {}
        }
    }
    Some((key?, value?))
}

/// The datasource of one `GADGET_MAPITER` marker, as IG builds it.
pub fn mapiter_datasource(btf: &Btf, iter: &MapIter) -> Result<ObjectDatasource, TypeError> {
    let def = var_type(btf, &iter.map).ok_or_else(|| TypeError::MissingMap {
        datasource: iter.datasource.clone(),
        map: iter.map.clone(),
    })?;
    let (key, value) = map_key_value(btf, def).ok_or_else(|| TypeError::BadMap {
        datasource: iter.datasource.clone(),
        map: iter.map.clone(),
        detail: "its BTF definition has no __type(key, …) and __type(value, …)".into(),
    })?;
    let mut fields = Vec::new();
    fields_of(btf, key, Place::Key, "", 0, &mut fields);
    let before = fields.len();
    fields_of(btf, value, Place::Value, "", 0, &mut fields);
    let value_type = type_name(btf, value);
    if !fields[before..]
        .iter()
        .any(|f| matches!(f.ty, FieldType::Histogram { .. }))
    {
        return Err(TypeError::NoHistogram {
            datasource: iter.datasource.clone(),
            map: iter.map.clone(),
            value_type,
        });
    }
    Ok(ObjectDatasource {
        name: iter.datasource.clone(),
        map: iter.map.clone(),
        key_type: type_name(btf, key),
        value_type,
        fields,
    })
}

/// The type of a `const volatile` global, for a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalType {
    pub ty: FieldType,
    pub size: u32,
    /// The C type as written, e.g. `const volatile gadget_pid`.
    pub c_type: String,
    /// The innermost typedef name, e.g. `gadget_pid` or `__u32`; empty for plain C types.
    pub typedef: String,
}

pub fn global_type(btf: &Btf, global: &str) -> Result<GlobalType, TypeError> {
    let id = var_type(btf, global).ok_or_else(|| TypeError::MissingParam {
        global: global.to_string(),
    })?;
    let c_type = type_name(btf, id);
    let ty = match scalar_type(btf, id) {
        Some(t @ (FieldType::Int { .. } | FieldType::Bool | FieldType::String { .. })) => t,
        _ => {
            return Err(TypeError::UnsupportedParam {
                global: global.to_string(),
                c_type,
            });
        }
    };
    let stripped = btf.skip_mods(id);
    let typedef = if btf.kind(stripped) == Kind::Typedef {
        btf.name(stripped).to_string()
    } else {
        String::new()
    };
    Ok(GlobalType {
        size: btf.type_size(id).unwrap_or(0) as u32,
        ty,
        c_type,
        typedef,
    })
}

/// `max_entries` of a BTF map definition (`__uint(max_entries, N)` is `int (*)[N]`).
pub fn map_max_entries(btf: &Btf, map: &str) -> Option<u32> {
    let def = btf.skip_mods_and_typedefs(var_type(btf, map)?);
    btf.members(def).into_iter().find_map(|m| {
        if btf.str_at(m.name_off) != "max_entries" {
            return None;
        }
        let p = btf.skip_mods(m.type_id);
        (btf.kind(p) == Kind::Ptr).then(|| btf.array(btf.type_ref(p)).1)
    })
}

/// Names of the maps of section `.maps`.
pub fn map_names(btf: &Btf) -> Vec<String> {
    btf.find_by_name(".maps", Kind::DataSec)
        .flat_map(|sec| btf.members(sec))
        .map(|m| btf.name(m.type_id).to_string())
        .collect()
}
