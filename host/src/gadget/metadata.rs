//! gadget.yaml: the metadata IG's gadgets carry (datasources, fields, annotations, params).
//!
//! The model follows IG's file so IG's gadget.yaml files load unchanged; keys we do not use are
//! ignored, while a known key with the wrong type is an error naming the file, line and field.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// Hostile-input bound: a gadget.yaml is a few KiB; refuse anything absurd before parsing.
pub const MAX_METADATA_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GadgetMetadata {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "homepageURL")]
    pub homepage_url: String,
    #[serde(default, rename = "documentationURL")]
    pub documentation_url: String,
    #[serde(default, rename = "sourceURL")]
    pub source_url: String,
    #[serde(default)]
    pub datasources: BTreeMap<String, DatasourceMetadata>,
    #[serde(default)]
    pub params: Params,
    /// What the Wasm guest needs beyond computing: `clock`, `network`. Granted only if the user
    /// also passes `--grant` for it.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct DatasourceMetadata {
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Field order matters for the default guest ("first field"), so keep the file's order.
    #[serde(default)]
    pub fields: FieldMap,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct FieldMetadata {
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Fields in the order gadget.yaml lists them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldMap(pub Vec<(String, FieldMetadata)>);

impl<'de> Deserialize<'de> for FieldMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> serde::de::Visitor<'de> for Ordered {
            type Value = FieldMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of field names to field descriptions")
            }
            // Entry by entry, so an error inside a field keeps its own line and path.
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<FieldMap, A::Error> {
                let mut out = Vec::new();
                while let Some((name, field)) = map.next_entry::<String, Option<FieldMetadata>>()? {
                    out.push((name, field.unwrap_or_default()));
                }
                Ok(FieldMap(out))
            }
        }
        d.deserialize_map(Ordered)
    }
}

/// IG groups params by the layer that consumes them: `ebpf` params set `const volatile` globals
/// of the eBPF program; `wasm` params go to the guest.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Params {
    #[serde(default)]
    pub ebpf: BTreeMap<String, ParamSpec>,
    #[serde(default)]
    pub wasm: BTreeMap<String, ParamSpec>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParamSpec {
    /// The user-facing name (`--disk`); defaults to the map key.
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub default_value: String,
    #[serde(default)]
    pub description: String,
    /// `bool`, `int`, `uint`, `string`, or our `device` (a block device name or major:minor,
    /// turned into the kernel's dev_t for the eBPF side).
    #[serde(default)]
    pub type_hint: String,
}

impl GadgetMetadata {
    /// Parses gadget.yaml bytes; `origin` (a path or image reference) prefixes every error.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self, MetadataError> {
        let invalid = |message: String| MetadataError::Invalid {
            origin: origin.to_string(),
            message,
        };
        if bytes.len() > MAX_METADATA_BYTES {
            return Err(invalid(format!(
                "{} bytes is larger than the {} byte limit for gadget.yaml",
                bytes.len(),
                MAX_METADATA_BYTES
            )));
        }
        let text =
            std::str::from_utf8(bytes).map_err(|e| invalid(format!("not UTF-8 text: {e}")))?;
        let meta: GadgetMetadata = serde_yaml::from_str(text).map_err(|e| {
            // serde_yaml puts "at line L column C" in the message and the field path in front.
            invalid(e.to_string())
        })?;
        if meta.name.trim().is_empty() {
            return Err(invalid("field `name`: must not be empty".into()));
        }
        for c in &meta.capabilities {
            if crate::wasm::Capability::parse(c).is_none() {
                return Err(invalid(format!(
                    "field `capabilities`: unknown capability {c:?} (expected {})",
                    crate::wasm::Capability::NAMES
                )));
            }
        }
        for (layer, params) in [("ebpf", &meta.params.ebpf), ("wasm", &meta.params.wasm)] {
            for (name, p) in params {
                if !matches!(
                    p.type_hint.as_str(),
                    "" | "bool" | "int" | "uint" | "string" | "device"
                ) {
                    return Err(invalid(format!(
                        "field `params.{layer}.{name}.typeHint`: unknown type {:?} (expected bool, int, uint, string or device)",
                        p.type_hint
                    )));
                }
            }
        }
        Ok(meta)
    }

    pub fn from_file(path: &Path) -> Result<Self, MetadataError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| MetadataError::Invalid {
            origin: origin.clone(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&bytes, &origin)
    }
}

impl ParamSpec {
    /// The name users type.
    pub fn user_key<'a>(&'a self, name: &'a str) -> &'a str {
        if self.key.is_empty() { name } else { &self.key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IG_PROFILE_BLOCKIO: &str = r#"
name: profile blockio
description: Analyze block I/O performance through a latency distribution
homepageURL: https://inspektor-gadget.io/
datasources:
  blockio:
    annotations:
      metrics.print: "true"
      cli.clear-screen-before: "true"
    fields:
      latency:
        annotations:
          metrics.unit: µs
      another:
        annotations: {}
"#;

    #[test]
    fn parses_igs_profile_blockio_yaml() {
        let m = GadgetMetadata::parse(IG_PROFILE_BLOCKIO.as_bytes(), "gadget.yaml").unwrap();
        assert_eq!(m.name, "profile blockio");
        let ds = &m.datasources["blockio"];
        assert_eq!(ds.annotations["metrics.print"], "true");
        assert_eq!(ds.fields.0[0].0, "latency");
        assert_eq!(ds.fields.0[0].1.annotations["metrics.unit"], "µs");
        assert_eq!(ds.fields.0[1].0, "another");
    }

    #[test]
    fn wrong_type_names_file_field_and_line() {
        let bad = "name: x\ndatasources:\n  blockio:\n    annotations: [1, 2]\n";
        let err = GadgetMetadata::parse(bad.as_bytes(), "dir/gadget.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("dir/gadget.yaml: "), "{err}");
        assert!(err.contains("datasources.blockio.annotations"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn missing_name_is_an_error() {
        let err = GadgetMetadata::parse(b"description: no name\n", "g.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("name"), "{err}");
    }

    #[test]
    fn unknown_type_hint_is_refused() {
        let bad =
            "name: x\nparams:\n  ebpf:\n    targ_dev:\n      key: disk\n      typeHint: colour\n";
        let err = GadgetMetadata::parse(bad.as_bytes(), "g.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("params.ebpf.targ_dev.typeHint"), "{err}");
    }

    #[test]
    fn oversized_and_binary_input_is_refused() {
        let big = vec![b'#'; MAX_METADATA_BYTES + 1];
        assert!(GadgetMetadata::parse(&big, "g.yaml").is_err());
        assert!(GadgetMetadata::parse(&[0xff, 0xfe, 0x00], "g.yaml").is_err());
    }
}
