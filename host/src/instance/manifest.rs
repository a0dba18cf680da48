//! IG's instance manifests (`gadget run -f FILE`): YAML documents of `kind: instance-spec` naming
//! an image, an instance name, tags and `paramValues` keyed by IG's fully qualified parameter
//! names. Strict: an unknown key or a wrong type is an error with the file, document and line.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::daemon::api::RunRequest;

/// Bound on a manifest read from a file, stdin or a URL.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{origin}{doc}: {message}")]
pub struct ManifestError {
    pub origin: String,
    /// ", document N" when the file has several.
    pub doc: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Manifest {
    api_version: serde_yaml::Value,
    kind: String,
    image: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    param_values: BTreeMap<String, serde_yaml::Value>,
}

const ANNOTATE: &str = "operator.oci.annotate";
const METRICS_NAME: &str = "operator.otel-metrics.otel-metrics-name";
const PRINT_INTERVAL: &str = "operator.otel-metrics.otel-metrics-print-interval";
const EBPF_PARAM: &str = "operator.oci.ebpf.";
const WASM_PARAM: &str = "operator.oci.wasm.";

/// Parses every document; `base` carries the defaults (interval, guest limits) from the CLI.
pub fn parse(
    text: &str,
    origin: &str,
    base: &RunRequest,
) -> Result<Vec<RunRequest>, ManifestError> {
    let fail = |doc: String, message: String| ManifestError {
        origin: origin.to_string(),
        doc,
        message,
    };
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(fail(
            String::new(),
            format!("larger than {MAX_MANIFEST_BYTES} bytes"),
        ));
    }
    let docs: Vec<serde_yaml::Deserializer> = serde_yaml::Deserializer::from_str(text).collect();
    let many = docs.len() > 1;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let label = if many {
            format!(", document {}", i + 1)
        } else {
            String::new()
        };
        // Straight from the document, so errors keep their line numbers; None: an empty document.
        let Some(m) =
            Option::<Manifest>::deserialize(doc).map_err(|e| fail(label.clone(), e.to_string()))?
        else {
            continue;
        };
        let version_ok = match &m.api_version {
            serde_yaml::Value::Number(n) => n.as_u64() == Some(1),
            serde_yaml::Value::String(s) => s == "1",
            _ => false,
        };
        if !version_ok {
            return Err(fail(
                label,
                format!("field `apiVersion`: expected 1, got {:?}", m.api_version),
            ));
        }
        if m.kind != "instance-spec" {
            return Err(fail(
                label,
                format!("field `kind`: expected instance-spec, got {:?}", m.kind),
            ));
        }
        if m.image.trim().is_empty() {
            return Err(fail(label, "field `image`: must not be empty".into()));
        }
        if m.id.is_some() {
            tracing::warn!("{origin}{label}: field `id` is ignored; the daemon assigns IDs");
        }
        let mut req = base.clone();
        req.reference = m.image.clone();
        req.name = m.name.clone().filter(|n| !n.is_empty());
        req.tags = m.tags.clone();
        for (key, value) in &m.param_values {
            let value = scalar(value).ok_or_else(|| {
                fail(
                    label.clone(),
                    format!("field `paramValues.{key}`: expected a string, number or boolean"),
                )
            })?;
            if key == ANNOTATE {
                req.annotations.push(value);
            } else if key == METRICS_NAME {
                req.metrics_names.extend(
                    value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                );
            } else if key == PRINT_INTERVAL {
                let d = crate::cli::run::parse_duration(&value)
                    .map_err(|e| fail(label.clone(), format!("field `paramValues.{key}`: {e}")))?;
                req.interval_ms = d.as_millis().max(1) as u64;
            } else if let Some(p) = key
                .strip_prefix(EBPF_PARAM)
                .or_else(|| key.strip_prefix(WASM_PARAM))
            {
                req.params.insert(p.to_string(), value);
            } else {
                return Err(fail(
                    label.clone(),
                    format!(
                        "field `paramValues.{key}`: unknown parameter (supported: {ANNOTATE}, {METRICS_NAME}, {PRINT_INTERVAL}, {EBPF_PARAM}<param>, {WASM_PARAM}<param>)"
                    ),
                ));
            }
        }
        out.push(req);
    }
    if out.is_empty() {
        return Err(fail(String::new(), "no instance-spec document".into()));
    }
    Ok(out)
}

fn scalar(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunRequest {
        RunRequest {
            interval_ms: 1000,
            guest_fuel: 1,
            guest_memory_mib: 1,
            ..Default::default()
        }
    }

    const WORKFLOW: &str = r#"apiVersion: 1
kind: instance-spec
image: profile_blockio:v0.46.0
name: blockio-metrics
tags: [storage]
paramValues:
  operator.oci.annotate: blockio:metrics.collect=true,blockio:env.fields.node=NODE_NAME,blockio.node:metrics.type=key
  operator.otel-metrics.otel-metrics-name: blockio:blockio-metrics-with-nodeinfo
  operator.oci.ebpf.disk: loop0
---
apiVersion: "1"
kind: instance-spec
image: other
"#;

    #[test]
    fn parses_the_workflows_manifest_and_several_documents() {
        let r = parse(WORKFLOW, "m.yaml", &base()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].reference, "profile_blockio:v0.46.0");
        assert_eq!(r[0].name.as_deref(), Some("blockio-metrics"));
        assert_eq!(r[0].tags, ["storage"]);
        assert_eq!(r[0].annotations.len(), 1);
        assert_eq!(
            r[0].metrics_names,
            ["blockio:blockio-metrics-with-nodeinfo"]
        );
        assert_eq!(r[0].params["disk"], "loop0");
        assert_eq!(r[1].reference, "other");
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_file_document_line_and_field() {
        let err = parse(
            "apiVersion: 1\nkind: instance-spec\nimage: x\nimgae: y\n",
            "m.yaml",
            &base(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("m.yaml: ") && err.contains("imgae") && err.contains("line 4"),
            "{err}"
        );
        let err = parse(
            "apiVersion: 1\nkind: instance-spec\nimage: x\ntags: 3\n",
            "m.yaml",
            &base(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tags") && err.contains("line 4"), "{err}");
        let two = format!(
            "{WORKFLOW}---\napiVersion: 1\nkind: instance-spec\nimage: z\nparamValues:\n  operator.foo: 1\n"
        );
        let err = parse(&two, "m.yaml", &base()).unwrap_err().to_string();
        assert!(
            err.contains("document 3") && err.contains("paramValues.operator.foo"),
            "{err}"
        );
        let err = parse(
            "apiVersion: 2\nkind: instance-spec\nimage: x\n",
            "m.yaml",
            &base(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("apiVersion"), "{err}");
        assert!(parse("", "m.yaml", &base()).is_err());
    }
}
