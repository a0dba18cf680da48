//! Gadget parameters: user values checked against gadget.yaml's `params`, turned into eBPF
//! global bytes (ebpf layer) or guest key/values (wasm layer).

use std::collections::BTreeMap;
use std::path::Path;

use super::metadata::{GadgetMetadata, ParamSpec};

#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("unknown gadget parameter --{key} (this gadget takes: {known})")]
    Unknown { key: String, known: String },
    #[error("gadget parameter --{key}={value}: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error(
        "gadget.yaml declares eBPF parameter {global} but the eBPF object has no global of that name"
    )]
    MissingGlobal { global: String },
}

/// Parameters ready for the two layers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedParams {
    /// `const volatile` global name → its bytes, sized like the global in the object.
    pub ebpf_globals: Vec<(String, Vec<u8>)>,
    /// Every parameter by its user key (ebpf ones too, so the guest can see them).
    pub values: Vec<(String, String)>,
}

/// The params a gadget accepts, by the name users type.
pub fn declared(meta: &GadgetMetadata) -> Vec<(&str, &ParamSpec)> {
    meta.params
        .ebpf
        .iter()
        .chain(meta.params.wasm.iter())
        .map(|(name, spec)| (spec.user_key(name), spec))
        .collect()
}

/// Checks `user` (key → value) against gadget.yaml and encodes the values. `globals` gives the
/// size of each global in the eBPF object; `sys_block` is where block devices are looked up
/// (`/sys/class/block`, a parameter so tests can point elsewhere).
pub fn resolve(
    meta: &GadgetMetadata,
    user: &BTreeMap<String, String>,
    globals: &BTreeMap<String, u64>,
    sys_block: &Path,
) -> Result<ResolvedParams, ParamError> {
    let known = declared(meta);
    for key in user.keys() {
        if !known.iter().any(|(k, _)| k == key) {
            let mut names: Vec<String> = known.iter().map(|(k, _)| format!("--{k}")).collect();
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
    for (global, spec) in &meta.params.ebpf {
        let key = spec.user_key(global);
        let value = user
            .get(key)
            .cloned()
            .unwrap_or_else(|| spec.default_value.clone());
        let size = *globals
            .get(global)
            .ok_or_else(|| ParamError::MissingGlobal {
                global: global.clone(),
            })?;
        let bad = |reason: String| ParamError::BadValue {
            key: key.to_string(),
            value: value.clone(),
            reason,
        };
        let number: u64 = match spec.type_hint.as_str() {
            "bool" => {
                u64::from(parse_bool(&value).ok_or_else(|| bad("expected true or false".into()))?)
            }
            "device" => device_number(&value, sys_block).map_err(bad)?.into(),
            "int" => {
                let v: i64 = if value.is_empty() {
                    0
                } else {
                    value
                        .parse()
                        .map_err(|e| bad(format!("expected an integer: {e}")))?
                };
                v as u64
            }
            "uint" | "" => {
                if value.is_empty() {
                    0
                } else {
                    value
                        .parse()
                        .map_err(|e| bad(format!("expected an unsigned integer: {e}")))?
                }
            }
            other => return Err(bad(format!("type {other} cannot set an eBPF global"))),
        };
        let bytes = encode(number, size).map_err(bad)?;
        out.ebpf_globals.push((global.clone(), bytes));
        out.values.push((key.to_string(), value));
    }
    for (name, spec) in &meta.params.wasm {
        let key = spec.user_key(name);
        let value = user
            .get(key)
            .cloned()
            .unwrap_or_else(|| spec.default_value.clone());
        if spec.type_hint == "bool" && parse_bool(&value).is_none() {
            return Err(ParamError::BadValue {
                key: key.to_string(),
                value,
                reason: "expected true or false".into(),
            });
        }
        out.values.push((key.to_string(), value));
    }
    Ok(out)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// Little-endian bytes of `v` in a global of `size` bytes; refuses values that do not fit.
fn encode(v: u64, size: u64) -> Result<Vec<u8>, String> {
    let size = usize::try_from(size).map_err(|_| "global too large".to_string())?;
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(format!(
            "the eBPF global is {size} bytes; only 1, 2, 4 or 8 byte integers can be set"
        ));
    }
    if size < 8 && v >> (size * 8) != 0 {
        return Err(format!("does not fit in the eBPF global's {size} bytes"));
    }
    Ok(v.to_le_bytes()[..size].to_vec())
}

/// A block device given as `loop0`, `/dev/loop0` or `7:0`, as the kernel's internal dev_t
/// (`major << 20 | minor`). Empty means "all devices" (0).
pub fn device_number(value: &str, sys_block: &Path) -> Result<u32, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(0);
    }
    let majmin = if value.contains(':') {
        value.to_string()
    } else {
        let name = value.strip_prefix("/dev/").unwrap_or(value);
        if name.contains('/') || name.starts_with('.') {
            return Err("expected a block device name like loop0 or major:minor".into());
        }
        let path = sys_block.join(name).join("dev");
        std::fs::read_to_string(&path)
            .map_err(|e| format!("no block device {name:?} ({}: {e})", path.display()))?
            .trim()
            .to_string()
    };
    let (maj, min) = majmin
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .ok_or_else(|| format!("{majmin:?} is not major:minor"))?;
    if maj >= 1 << 12 || min >= 1 << 20 {
        return Err(format!("{maj}:{min} is out of the kernel's dev_t range"));
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

    fn globals() -> BTreeMap<String, u64> {
        [
            ("targ_dev".to_string(), 4),
            ("force_start_map".to_string(), 1),
        ]
        .into()
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
        let r = resolve(&meta(), &user, &globals(), dir.path()).unwrap();
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
        let err = resolve(&meta(), &user, &globals(), Path::new("/nonexistent"))
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
        let err = resolve(&meta(), &user, &globals(), Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--disk=nosuchdisk") && err.contains("no block device"),
            "{err}"
        );
        let user = [("force-start-map".to_string(), "perhaps".to_string())].into();
        assert!(resolve(&meta(), &user, &globals(), Path::new("/x")).is_err());
        assert_eq!(device_number("7:0", Path::new("/x")), Ok(7 << 20));
        assert!(device_number("4096:0", Path::new("/x")).is_err());
        assert!(device_number("../etc", Path::new("/x")).is_err());
    }

    #[test]
    fn values_must_fit_the_global() {
        assert_eq!(encode(255, 1), Ok(vec![255]));
        assert!(encode(256, 1).is_err());
        assert!(encode(1, 3).is_err());
    }
}
