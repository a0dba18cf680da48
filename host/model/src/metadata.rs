//! gadget.yaml: the metadata IG's gadgets carry (datasources, fields, annotations, params).
//!
//! Read the way IG reads it (viper): keys are case-insensitive (`dataSources`, `DataSources`
//! and `datasources` are one key), empty values are empty (`fields:` with nothing under it),
//! annotation and default values may be any YAML scalar (`true`, `yes`, `10`: kept as written
//! text). Keys this host does not know are ignored like IG ignores them, but never silently:
//! each becomes a warning naming the key and the file ([`GadgetMetadata::warnings`]), which
//! the CLI prints. A known key with the wrong type is an error naming the file, line and field.
//!
//! Names chosen by the gadget author (datasources, fields, annotation keys, params) keep their
//! case; only the schema's own keys are compared without case.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};

use gadget_object::types::{FieldType, ObjectDatasource};

/// Hostile-input bound: a gadget.yaml is a few KiB; refuse anything absurd before parsing.
pub const MAX_METADATA_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GadgetMetadata {
    pub name: String,
    pub description: String,
    pub homepage_url: String,
    pub documentation_url: String,
    pub source_url: String,
    /// Gadget-level annotations (IG's `annotations:`).
    pub annotations: BTreeMap<String, String>,
    pub datasources: BTreeMap<String, DatasourceMetadata>,
    pub params: Params,
    /// What the Wasm guest needs beyond computing: `clock`, `network`. Granted only if the user
    /// also passes `--grant` for it.
    pub capabilities: Vec<String>,
    /// Keys of the file this host ignored, one message each (file and key named).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasourceMetadata {
    pub annotations: BTreeMap<String, String>,
    /// Field order matters for the default guest ("first field"), so keep the file's order.
    pub fields: FieldMap,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldMetadata {
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
            fn visit_unit<E: serde::de::Error>(self) -> Result<FieldMap, E> {
                Ok(FieldMap::default())
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
        d.deserialize_any(Ordered)
    }
}

/// IG groups params by the layer that consumes them: `ebpf` params set `const volatile` globals
/// of the eBPF program; `wasm` params go to the guest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pub ebpf: BTreeMap<String, ParamSpec>,
    pub wasm: BTreeMap<String, ParamSpec>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamSpec {
    /// The user-facing name (`--disk`); defaults to the map key.
    pub key: String,
    pub default_value: String,
    pub description: String,
    /// `bool`, `int`, `uint`, `string`, or our `device` (a block device name or major:minor,
    /// turned into the kernel's dev_t for the eBPF side). IG spells the key `type`; ours
    /// `typeHint`; both are read. Empty for IG's eBPF params: the type comes from the BTF of
    /// the global.
    pub type_hint: String,
    /// IG's `possibleValues`: when not empty, the value must be one of them.
    pub possible_values: Vec<String>,
}

/// Any YAML scalar as the text it was written as (viper hands IG strings for annotations).
#[derive(Debug, Clone, Default, PartialEq)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or nothing")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A map of author-chosen names to scalars; `annotations:` with nothing is empty.
fn scalar_map<'de, A: MapAccess<'de>>(map: &mut A) -> Result<BTreeMap<String, String>, A::Error> {
    let m: Option<BTreeMap<String, Scalar>> = map.next_value()?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

fn string_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<String, A::Error> {
    Ok(map.next_value::<Scalar>()?.0)
}

/// Implements `Deserialize` for a schema struct: keys compared without case, unknown keys
/// skipped (the warnings pass reports them), `null` for the whole struct gives the default.
macro_rules! case_insensitive_struct {
    ($ty:ty, $what:literal, |$map:ident, $out:ident, $key:ident| $body:block) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_unit<E: serde::de::Error>(self) -> Result<$ty, E> {
                        Ok(<$ty>::default())
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut $map: A) -> Result<$ty, A::Error> {
                        let mut $out = <$ty>::default();
                        while let Some(k) = $map.next_key::<String>()? {
                            let $key = k.to_ascii_lowercase();
                            $body
                        }
                        Ok($out)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

case_insensitive_struct!(
    GadgetMetadata,
    "gadget metadata (a map)",
    |map, out, key| {
        match key.as_str() {
            "name" => out.name = string_value(&mut map)?,
            "description" => out.description = string_value(&mut map)?,
            "homepageurl" => out.homepage_url = string_value(&mut map)?,
            "documentationurl" => out.documentation_url = string_value(&mut map)?,
            "sourceurl" => out.source_url = string_value(&mut map)?,
            "annotations" => out.annotations = scalar_map(&mut map)?,
            "datasources" => {
                let m: Option<BTreeMap<String, Option<DatasourceMetadata>>> = map.next_value()?;
                out.datasources = m
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect();
            }
            "params" => out.params = map.next_value::<Option<Params>>()?.unwrap_or_default(),
            "capabilities" => {
                out.capabilities = map.next_value::<Option<Vec<String>>>()?.unwrap_or_default()
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
);

case_insensitive_struct!(
    DatasourceMetadata,
    "a datasource (a map)",
    |map, out, key| {
        match key.as_str() {
            "annotations" => out.annotations = scalar_map(&mut map)?,
            "fields" => out.fields = map.next_value()?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
);

case_insensitive_struct!(FieldMetadata, "a field (a map)", |map, out, key| {
    match key.as_str() {
        "annotations" => out.annotations = scalar_map(&mut map)?,
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
});

case_insensitive_struct!(Params, "params by layer (a map)", |map, out, key| {
    let layer = |m: Option<BTreeMap<String, Option<ParamSpec>>>| {
        m.unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    };
    match key.as_str() {
        "ebpf" => out.ebpf = layer(map.next_value()?),
        "wasm" => out.wasm = layer(map.next_value()?),
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
});

case_insensitive_struct!(ParamSpec, "a parameter (a map)", |map, out, key| {
    match key.as_str() {
        "key" => out.key = string_value(&mut map)?,
        "defaultvalue" => out.default_value = string_value(&mut map)?,
        "description" => out.description = string_value(&mut map)?,
        "typehint" | "type" => out.type_hint = string_value(&mut map)?,
        "possiblevalues" => {
            let v: Option<Vec<Scalar>> = map.next_value()?;
            out.possible_values = v.unwrap_or_default().into_iter().map(|s| s.0).collect();
        }
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
});

/// The schema's keys, lowercase, per level, for the warnings pass. Keys IG knows and this host
/// does not use yet (e.g. `programs`, a param's `alias`) are listed so they do not warn.
const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "homepageurl",
    "documentationurl",
    "sourceurl",
    "annotations",
    "datasources",
    "params",
    "capabilities",
    "programs",
];
const DATASOURCE_KEYS: &[&str] = &["annotations", "fields"];
const FIELD_KEYS: &[&str] = &["annotations"];
const PARAM_KEYS: &[&str] = &[
    "key",
    "alternativekey",
    "alias",
    "title",
    "defaultvalue",
    "description",
    "ismandatory",
    "tags",
    "type",
    "typehint",
    "valuehint",
    "possiblevalues",
];

/// Unknown keys of `doc`, as messages naming `origin` and the key's path.
fn unknown_keys(doc: &serde_json::Value, origin: &str) -> Vec<String> {
    use serde_json::Value;
    fn entries(v: &Value) -> Vec<(String, &Value)> {
        match v {
            Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
            _ => Vec::new(),
        }
    }
    let mut out = Vec::new();
    let mut check = |path: &str, key: &str, known: &[&str]| {
        let known_key = known.contains(&key.to_ascii_lowercase().as_str());
        if !known_key {
            out.push(format!(
                "{origin}: unknown key `{path}{key}` ignored (known here: {})",
                known.join(", ")
            ));
        }
        known_key
    };
    for (k, v) in entries(doc) {
        if !check("", &k, TOP_KEYS) {
            continue;
        }
        match k.to_ascii_lowercase().as_str() {
            "datasources" => {
                for (ds, dv) in entries(v) {
                    for (dk, fv) in entries(dv) {
                        let path = format!("{k}.{ds}.");
                        if check(&path, &dk, DATASOURCE_KEYS) && dk.eq_ignore_ascii_case("fields") {
                            for (f, fm) in entries(fv) {
                                for (fk, _) in entries(fm) {
                                    check(&format!("{path}{dk}.{f}."), &fk, FIELD_KEYS);
                                }
                            }
                        }
                    }
                }
            }
            "params" => {
                for (layer, lv) in entries(v) {
                    if !check(&format!("{k}."), &layer, &["ebpf", "wasm"]) {
                        continue;
                    }
                    for (p, pv) in entries(lv) {
                        for (pk, _) in entries(pv) {
                            check(&format!("{k}.{layer}.{p}."), &pk, PARAM_KEYS);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
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
        let limits = crate::budgets::Budgets::current().yaml;
        // The message carries the line, the key path and the offending line.
        let mut meta: GadgetMetadata =
            crate::yaml::from_str(text, &limits).map_err(|e| invalid(e.message))?;
        // The typed pass above succeeded, so the text is a YAML mapping (keys read as strings).
        if let Ok(doc) = crate::yaml::from_str::<serde_json::Value>(text, &limits) {
            meta.warnings = unknown_keys(&doc, origin);
        }
        if meta.name.trim().is_empty() {
            return Err(invalid("field `name`: must not be empty".into()));
        }
        for c in &meta.capabilities {
            if crate::Capability::parse(c).is_none() {
                return Err(invalid(format!(
                    "field `capabilities`: unknown capability {c:?} (expected {})",
                    crate::Capability::NAMES
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

impl GadgetMetadata {
    /// The datasources as IG sees them: one per `GADGET_MAPITER` of the object, with the fields
    /// of its BTF (each annotated with its `ebpf.*` layout; histogram slots also with
    /// `metrics.type: histogram` unless gadget.yaml says otherwise), gadget.yaml adding
    /// annotations on top. gadget.yaml datasources the object does not define stay (a Wasm
    /// guest may publish them) and each adds a warning naming it and `origin`.
    pub fn with_object(&self, objects: &[ObjectDatasource], origin: &str) -> GadgetMetadata {
        let mut out = self.clone();
        for obj in objects {
            let yaml = self.datasources.get(&obj.name).cloned().unwrap_or_default();
            let mut fields = Vec::new();
            for f in &obj.fields {
                let mut annotations: BTreeMap<String, String> =
                    f.annotations().into_iter().collect();
                if matches!(f.ty, FieldType::Histogram { .. }) {
                    annotations.insert(gadget_keys::METRICS_TYPE.into(), "histogram".into());
                }
                if let Some((_, y)) = yaml.fields.0.iter().find(|(n, _)| n == &f.name) {
                    annotations.extend(y.annotations.clone());
                }
                fields.push((f.name.clone(), FieldMetadata { annotations }));
            }
            for (name, y) in &yaml.fields.0 {
                if !obj.fields.iter().any(|f| &f.name == name) {
                    fields.push((name.clone(), y.clone()));
                }
            }
            out.datasources.insert(
                obj.name.clone(),
                DatasourceMetadata {
                    annotations: yaml.annotations.clone(),
                    fields: FieldMap(fields),
                },
            );
        }
        for name in self.datasources.keys() {
            if !objects.is_empty() && !objects.iter().any(|o| &o.name == name) {
                out.warnings.push(format!(
                    "{origin}: gadget.yaml describes datasource {name:?}, which the eBPF object does not define (no GADGET_MAPITER({name}, …)); the object defines: {}",
                    objects.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        out
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
    fn reads_keys_without_case_like_viper() {
        let yaml = "Name: x\ndataSources:\n  blockio:\n    Annotations:\n      metrics.print: true\n    FIELDS:\n      latency:\n        annotations:\n          metrics.unit: µs\n          columns.width: 10\n          columns.hidden: yes\n";
        let m = GadgetMetadata::parse(yaml.as_bytes(), "g.yaml").unwrap();
        assert_eq!(m.name, "x");
        let ds = &m.datasources["blockio"];
        assert_eq!(ds.annotations["metrics.print"], "true");
        let f = &ds.fields.0[0].1.annotations;
        assert_eq!(f["columns.width"], "10");
        assert_eq!(f["columns.hidden"], "yes");
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    }

    #[test]
    fn empty_values_and_igs_keys_are_accepted() {
        let yaml = "name: x\nprograms:\n  ig_profile:\n    attach_to: foo\ndatasources:\n  d:\n    fields:\n  e:\nparams:\n  ebpf:\n    targ_failed:\n      key: failed\n      defaultValue: \"\"\n      alias: f\n    other:\n";
        let m = GadgetMetadata::parse(yaml.as_bytes(), "g.yaml").unwrap();
        assert!(m.datasources["d"].fields.0.is_empty());
        assert!(m.datasources.contains_key("e"));
        assert_eq!(m.params.ebpf["targ_failed"].key, "failed");
        assert_eq!(m.params.ebpf["targ_failed"].default_value, "");
        assert!(m.params.ebpf.contains_key("other"));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    }

    #[test]
    fn unknown_keys_warn_with_file_and_path() {
        let yaml = "name: x\ndatasourcs:\n  d: {}\ndatasources:\n  blockio:\n    anotations: {}\n    fields:\n      f:\n        colour: red\nparams:\n  ebpf:\n    p:\n      defaultVal: 1\n";
        let m = GadgetMetadata::parse(yaml.as_bytes(), "img/gadget.yaml").unwrap();
        let w = m.warnings.join("\n");
        assert_eq!(m.warnings.len(), 4, "{w}");
        assert!(
            w.contains("img/gadget.yaml: unknown key `datasourcs`"),
            "{w}"
        );
        assert!(w.contains("`datasources.blockio.anotations`"), "{w}");
        assert!(w.contains("`datasources.blockio.fields.f.colour`"), "{w}");
        assert!(w.contains("`params.ebpf.p.defaultVal`"), "{w}");
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
