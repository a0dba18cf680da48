//! Gadget parameters: user values checked against what the gadget declares, turned into eBPF
//! global bytes (ebpf layer) or guest key/values (wasm layer).
//!
//! eBPF parameters are declared as IG declares them: by `GADGET_PARAM(x)` markers in the object
//! and by gadget.yaml `params.ebpf`, the type of each coming from the BTF of its `const
//! volatile` global (bool, signed or unsigned integers of 1, 2, 4 or 8 bytes, char arrays as
//! strings; typedefs such as IG's `gadget_pid` resolved), written into `.rodata` with that
//! width and sign. gadget.yaml adds the user-facing key, default and description, and may set
//! our `device` type hint (a block device name turned into a dev_t). IG's well-known globals
//! (`targ_pid` of type `gadget_pid`, …) get IG's keys and descriptions.

use std::collections::BTreeMap;
use std::path::Path;

use super::metadata::{GadgetMetadata, ParamSpec};
use gadget_object::btf::Btf;
use gadget_object::elf::ElfInfo;
use gadget_object::types::{self, FieldType, GlobalType, TypeError};

#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("unknown gadget parameter --{key} (this gadget takes: {known})")]
    Unknown { key: String, known: String },
    #[error("gadget parameter --{key}={value}: {reason}")]
    BadValue {
        key: String,
        value: String,
        // In the message, not a `#[source]`: `{:#}` and error_chain would repeat it. Boxed: the
        // error stays small on the happy path's stack.
        reason: Box<ValueError>,
    },
    #[error(
        "gadget.yaml declares eBPF parameter {global} but the eBPF object has no global of that name"
    )]
    MissingGlobal { global: String },
    #[error(transparent)]
    Type(#[from] TypeError),
}

/// Why a parameter's value cannot be used (the gadget, the key and the value are in
/// [`ParamError::BadValue`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("expected one of {0}")]
    NotOneOf(String),
    #[error("expected true or false")]
    NotBool,
    #[error("{0:?} is not a boolean")]
    NotGoBool(String),
    #[error("{0:?} is not an integer")]
    NotInt(String),
    #[error("{n} is out of range [{min}, {max}]")]
    OutOfRange { n: i64, min: i64, max: i64 },
    #[error("{0:?} is not a non-negative integer")]
    NotUint(String),
    #[error("{len} bytes do not fit (at most {max} and a NUL)")]
    StringTooLong { len: usize, max: u32 },
    #[error("a histogram cannot be a parameter")]
    Histogram,
    #[error("expected an integer: {0}")]
    Int(std::num::ParseIntError),
    #[error("expected an unsigned integer: {0}")]
    Uint(std::num::ParseIntError),
    #[error("global too large")]
    GlobalTooLarge,
    #[error("the eBPF global is {0} bytes; only 1, 2, 4 or 8 byte integers can be set")]
    GlobalSize(usize),
    #[error("type {0} cannot set an eBPF global")]
    HintType(String),
    #[error("does not fit in the eBPF global's {0} bytes")]
    DoesNotFit(usize),
    #[error("expected a block device name like loop0 or major:minor")]
    DeviceName,
    /// `reason` is the read error's text (the error stays comparable and clonable).
    #[error("no block device {name:?} ({path}: {reason})")]
    NoDevice {
        name: String,
        path: String,
        reason: String,
    },
    #[error("{0:?} is not major:minor")]
    NotMajorMinor(String),
    #[error("{major}:{minor} is out of the kernel's dev_t range")]
    DevRange { major: u32, minor: u32 },
    /// A value the global's BTF type refuses, with that type.
    #[error("{reason}; expected {what} ({c_type} {global})")]
    Typed {
        reason: Box<ValueError>,
        what: String,
        c_type: String,
        global: String,
    },
}

/// Parameters ready for the two layers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedParams {
    /// `const volatile` global name → its bytes, sized like the global in the object.
    pub ebpf_globals: Vec<(String, Vec<u8>)>,
    /// Every parameter by its user key (ebpf ones too, so the guest can see them).
    pub values: Vec<(String, String)>,
}

/// One parameter a gadget accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    /// The name users type (`--key`).
    pub key: String,
    /// The `const volatile` global it sets, for eBPF parameters.
    pub global: Option<String>,
    /// The global's type from BTF, when the object has BTF for it.
    pub btf: Option<GlobalType>,
    /// gadget.yaml's description (or IG's for well-known globals) and default.
    pub spec: ParamSpec,
}

impl ParamDecl {
    /// The type shown in `--help` and in errors.
    pub fn type_name(&self) -> String {
        if self.spec.type_hint == "device" {
            return "device".into();
        }
        match &self.btf {
            Some(t) => match t.ty {
                FieldType::Bool => "bool".into(),
                FieldType::Int { signed, size } => {
                    format!("{}int{}", if signed { "" } else { "u" }, size * 8)
                }
                FieldType::String { len } => {
                    format!("string (at most {} bytes)", len.saturating_sub(1))
                }
                FieldType::Histogram { .. } => "histogram".into(),
            },
            None if self.spec.type_hint.is_empty() => "string".into(),
            None => self.spec.type_hint.clone(),
        }
    }

    /// A flag without a value means true.
    pub fn is_bool(&self) -> bool {
        match &self.btf {
            Some(t) => t.ty == FieldType::Bool && self.spec.type_hint != "device",
            None => self.spec.type_hint == "bool",
        }
    }
}

/// IG's keys and descriptions for globals it knows by type and name (its ebpf operator's
/// `wellKnownParams`).
fn well_known(global: &str, typedef: &str) -> Option<(&'static str, &'static str)> {
    Some(match (typedef, global) {
        ("gadget_pid", "targ_pid") => (
            "pid",
            "Show only events generated by processes with this pid",
        ),
        ("gadget_tid", "targ_tid") => {
            ("tid", "Show only events generated by threads with this tid")
        }
        ("gadget_uid", "targ_uid") => (
            "uid",
            "Show only events generated by processes with this uid",
        ),
        ("gadget_gid", "targ_gid") => (
            "gid",
            "Show only events generated by processes with this gid",
        ),
        ("gadget_comm", "targ_comm") => (
            "comm",
            "Show only events generated by processes with this name",
        ),
        (_, "collect_ustack") => ("collect-ustack", "Collect user stack traces"),
        (_, "collect_build_id") => ("collect-build-id", "Collect build IDs"),
        _ => return None,
    })
}

/// The params a gadget accepts: eBPF ones (`GADGET_PARAM` markers, then gadget.yaml
/// `params.ebpf`), then wasm ones. Errors for a param whose BTF type is unsupported.
pub fn declared_with_object(
    meta: &GadgetMetadata,
    elf: &ElfInfo,
) -> Result<Vec<ParamDecl>, ParamError> {
    let mut globals: Vec<&str> = elf.params.iter().map(String::as_str).collect();
    for g in meta.params.ebpf.keys() {
        if !globals.contains(&g.as_str()) {
            globals.push(g);
        }
    }
    let mut out = Vec::new();
    for global in globals {
        let yaml = meta.params.ebpf.get(global);
        let btf = match &elf.btf {
            Some(btf) if has_var(btf, global) => Some(types::global_type(btf, global)?),
            _ => None,
        };
        let mut spec = yaml.cloned().unwrap_or_default();
        if let Some((key, description)) = btf.as_ref().and_then(|t| well_known(global, &t.typedef))
        {
            if spec.key.is_empty() {
                spec.key = key.into();
            }
            if spec.description.is_empty() {
                spec.description = description.into();
            }
        }
        out.push(ParamDecl {
            key: spec.user_key(global).to_string(),
            global: Some(global.to_string()),
            btf,
            spec,
        });
    }
    for (name, spec) in &meta.params.wasm {
        out.push(ParamDecl {
            key: spec.user_key(name).to_string(),
            global: None,
            btf: None,
            spec: spec.clone(),
        });
    }
    Ok(out)
}

fn has_var(btf: &Btf, name: &str) -> bool {
    btf.find_by_name(name, gadget_object::btf::Kind::Var)
        .next()
        .is_some()
}

/// The params a gadget accepts according to gadget.yaml alone (no object at hand).
pub fn declared(meta: &GadgetMetadata) -> Vec<(&str, &ParamSpec)> {
    meta.params
        .ebpf
        .iter()
        .chain(meta.params.wasm.iter())
        .map(|(name, spec)| (spec.user_key(name), spec))
        .collect()
}

/// Checks `user` (key → value) against the declared params and encodes the values. `globals`
/// gives the size of each global in the eBPF object; `sys_block` is where block devices are
/// looked up (`/sys/class/block`, a parameter so tests can point elsewhere).
pub fn resolve(
    meta: &GadgetMetadata,
    elf: &ElfInfo,
    user: &BTreeMap<String, String>,
    sys_block: &Path,
) -> Result<ResolvedParams, ParamError> {
    let decls = declared_with_object(meta, elf)?;
    for key in user.keys() {
        if !decls.iter().any(|d| &d.key == key) {
            let mut names: Vec<String> = decls
                .iter()
                .map(|d| format!("--{} ({})", d.key, d.type_name()))
                .collect();
            if names.is_empty() {
                names.push("no parameters".into());
            }
            return Err(ParamError::Unknown {
                key: key.clone(),
                known: names.join(", "),
            });
        }
    }
    let mut out = ResolvedParams::default();
    for d in &decls {
        let given = user.get(&d.key);
        let value = given
            .cloned()
            .unwrap_or_else(|| d.spec.default_value.clone());
        let bad = |reason: ValueError| ParamError::BadValue {
            key: d.key.clone(),
            value: value.clone(),
            reason: Box::new(reason),
        };
        if !d.spec.possible_values.is_empty()
            && !value.is_empty()
            && !d.spec.possible_values.contains(&value)
        {
            return Err(bad(ValueError::NotOneOf(d.spec.possible_values.join(", "))));
        }
        let Some(global) = &d.global else {
            if d.spec.type_hint == "bool" && parse_bool(&value).is_none() {
                return Err(bad(ValueError::NotBool));
            }
            out.values.push((d.key.clone(), value));
            continue;
        };
        let size = *elf
            .globals
            .get(global)
            .ok_or_else(|| ParamError::MissingGlobal {
                global: global.clone(),
            })?;
        let typed = |reason: ValueError| ValueError::Typed {
            reason: Box::new(reason),
            what: d.type_name(),
            c_type: d
                .btf
                .as_ref()
                .map(|t| t.c_type.as_str())
                .unwrap_or("eBPF global")
                .to_string(),
            global: global.clone(),
        };
        let bytes = if d.spec.type_hint == "device" {
            let dev = device_number(&value, sys_block).map_err(bad)?;
            Some(encode(dev.into(), size).map_err(bad)?)
        } else if given.is_none() && value.is_empty() {
            // No value and no default: the global keeps the object's own initial value.
            None
        } else if let Some(t) = &d.btf {
            Some(encode_typed(&value, &t.ty).map_err(|r| bad(typed(r)))?)
        } else {
            Some(encode_hint(&value, &d.spec.type_hint, size).map_err(bad)?)
        };
        if let Some(bytes) = bytes {
            out.ebpf_globals.push((global.clone(), bytes));
        }
        out.values.push((d.key.clone(), value));
    }
    Ok(out)
}

/// Bytes of `value` for a global of BTF type `ty`, with its width and sign.
fn encode_typed(value: &str, ty: &FieldType) -> Result<Vec<u8>, ValueError> {
    let v = value.trim();
    match *ty {
        FieldType::Bool => parse_go_bool(v)
            .map(|b| vec![u8::from(b)])
            .ok_or_else(|| ValueError::NotGoBool(v.to_string())),
        FieldType::Int { signed: true, size } => {
            let n: i64 = v.parse().map_err(|_| ValueError::NotInt(v.to_string()))?;
            let bits = size * 8;
            let (min, max) = if bits == 64 {
                (i64::MIN, i64::MAX)
            } else {
                (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
            };
            if n < min || n > max {
                return Err(ValueError::OutOfRange { n, min, max });
            }
            Ok(n.to_le_bytes()[..size as usize].to_vec())
        }
        FieldType::Int {
            signed: false,
            size,
        } => {
            let n: u64 = v.parse().map_err(|_| ValueError::NotUint(v.to_string()))?;
            encode(n, u64::from(size))
        }
        FieldType::String { len } => {
            let b = value.as_bytes();
            if b.len() >= len as usize {
                return Err(ValueError::StringTooLong {
                    len: b.len(),
                    max: len.saturating_sub(1),
                });
            }
            let mut out = vec![0u8; len as usize];
            out[..b.len()].copy_from_slice(b);
            Ok(out)
        }
        FieldType::Histogram { .. } => Err(ValueError::Histogram),
    }
}

/// Go's `strconv.ParseBool`, which IG's bool params use.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Our own gadgets' typeHint-only params (objects without BTF for the global).
fn encode_hint(value: &str, hint: &str, size: u64) -> Result<Vec<u8>, ValueError> {
    let number: u64 = match hint {
        "bool" => u64::from(parse_bool(value).ok_or(ValueError::NotBool)?),
        "int" => {
            let v: i64 = value.parse().map_err(ValueError::Int)?;
            let bytes = v.to_le_bytes();
            let size = usize::try_from(size).map_err(|_| ValueError::GlobalTooLarge)?;
            if !matches!(size, 1 | 2 | 4 | 8) {
                return Err(ValueError::GlobalSize(size));
            }
            return Ok(bytes[..size].to_vec());
        }
        "uint" | "" => value.parse().map_err(ValueError::Uint)?,
        other => return Err(ValueError::HintType(other.to_string())),
    };
    encode(number, size)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// Little-endian bytes of `v` in a global of `size` bytes; refuses values that do not fit.
fn encode(v: u64, size: u64) -> Result<Vec<u8>, ValueError> {
    let size = usize::try_from(size).map_err(|_| ValueError::GlobalTooLarge)?;
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(ValueError::GlobalSize(size));
    }
    if size < 8 && v >> (size * 8) != 0 {
        return Err(ValueError::DoesNotFit(size));
    }
    Ok(v.to_le_bytes()[..size].to_vec())
}

/// A block device given as `loop0`, `/dev/loop0` or `7:0`, as the kernel's internal dev_t
/// (`major << 20 | minor`). Empty means "all devices" (0).
pub fn device_number(value: &str, sys_block: &Path) -> Result<u32, ValueError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(0);
    }
    let majmin = if value.contains(':') {
        value.to_string()
    } else {
        let name = value.strip_prefix("/dev/").unwrap_or(value);
        if name.contains('/') || name.starts_with('.') {
            return Err(ValueError::DeviceName);
        }
        let path = sys_block.join(name).join("dev");
        std::fs::read_to_string(&path)
            .map_err(|e| ValueError::NoDevice {
                name: name.to_string(),
                path: path.display().to_string(),
                reason: e.to_string(),
            })?
            .trim()
            .to_string()
    };
    let (maj, min) = majmin
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .ok_or_else(|| ValueError::NotMajorMinor(majmin.clone()))?;
    if maj >= 1 << 12 || min >= 1 << 20 {
        return Err(ValueError::DevRange {
            major: maj,
            minor: min,
        });
    }
    Ok((maj << 20) | min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> GadgetMetadata {
        GadgetMetadata::parse(
            br#"
name: t
params:
  ebpf:
    targ_dev: {key: disk, typeHint: device, description: only this device}
    force_start_map: {key: force-start-map, typeHint: bool, defaultValue: "false"}
  wasm:
    per-device: {typeHint: bool, defaultValue: "false"}
"#,
            "t.yaml",
        )
        .unwrap()
    }

    fn elf() -> ElfInfo {
        ElfInfo {
            globals: [
                ("targ_dev".to_string(), 4),
                ("force_start_map".to_string(), 1),
            ]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn encodes_devices_and_bools() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("loop3")).unwrap();
        std::fs::write(dir.path().join("loop3/dev"), "7:3\n").unwrap();
        let user = [
            ("disk".to_string(), "/dev/loop3".to_string()),
            ("per-device".into(), "true".into()),
        ]
        .into();
        let r = resolve(&meta(), &elf(), &user, dir.path()).unwrap();
        let dev = (7u32 << 20 | 3).to_le_bytes().to_vec();
        assert!(r.ebpf_globals.contains(&("targ_dev".into(), dev)));
        assert!(
            r.ebpf_globals
                .contains(&("force_start_map".into(), vec![0]))
        );
        assert!(r.values.contains(&("per-device".into(), "true".into())));
    }

    #[test]
    fn unknown_param_lists_known_ones() {
        let user = [("disc".to_string(), "x".to_string())].into();
        let err = resolve(&meta(), &elf(), &user, Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--disc") && err.contains("--disk") && err.contains("--per-device"),
            "{err}"
        );
    }

    #[test]
    fn bad_device_and_bool_are_explained() {
        let user = [("disk".to_string(), "nosuchdisk".to_string())].into();
        let err = resolve(&meta(), &elf(), &user, Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--disk=nosuchdisk") && err.contains("no block device"),
            "{err}"
        );
        let user = [("force-start-map".to_string(), "perhaps".to_string())].into();
        assert!(resolve(&meta(), &elf(), &user, Path::new("/x")).is_err());
        assert_eq!(device_number("7:0", Path::new("/x")), Ok(7 << 20));
        assert!(device_number("4096:0", Path::new("/x")).is_err());
        assert!(device_number("../etc", Path::new("/x")).is_err());
    }

    #[test]
    fn typed_values_use_the_globals_width_and_sign() {
        let i8t = FieldType::Int {
            signed: true,
            size: 1,
        };
        assert_eq!(encode_typed("-1", &i8t), Ok(vec![0xff]));
        assert!(
            encode_typed("128", &i8t)
                .unwrap_err()
                .to_string()
                .contains("out of range [-128, 127]")
        );
        let i32t = FieldType::Int {
            signed: true,
            size: 4,
        };
        assert_eq!(encode_typed("-1", &i32t), Ok(vec![0xff; 4]));
        let u16t = FieldType::Int {
            signed: false,
            size: 2,
        };
        assert_eq!(encode_typed("65535", &u16t), Ok(vec![0xff, 0xff]));
        assert!(encode_typed("-1", &u16t).is_err());
        assert!(encode_typed("65536", &u16t).is_err());
        let i64t = FieldType::Int {
            signed: true,
            size: 8,
        };
        assert_eq!(
            encode_typed("-2", &i64t),
            Ok((-2i64).to_le_bytes().to_vec())
        );
        assert_eq!(encode_typed("false", &FieldType::Bool), Ok(vec![0]));
        assert_eq!(encode_typed("T", &FieldType::Bool), Ok(vec![1]));
        assert!(encode_typed("yes", &FieldType::Bool).is_err());
        let s4 = FieldType::String { len: 4 };
        assert_eq!(encode_typed("ab", &s4), Ok(vec![b'a', b'b', 0, 0]));
        assert!(encode_typed("abcd", &s4).is_err());
    }

    #[test]
    fn values_must_fit_the_global() {
        assert_eq!(encode(255, 1), Ok(vec![255]));
        assert!(encode(256, 1).is_err());
        assert!(encode(1, 3).is_err());
    }
}
