//! IG's instance manifests (`gadget run -f FILE`): YAML documents of `kind: instance-spec` naming
//! an image, an instance name, tags and `paramValues` keyed by IG's fully qualified parameter
//! names. Strict: an unknown key or a wrong type is an error with the file, document and line.

use std::collections::BTreeMap;

use serde::Deserialize;

use gadget_api::RunRequest;
use gadget_model::budgets::Budgets;

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
    /// IG writes `1`; YAML scalars read as strings, so `1` and `"1"` are the same here.
    api_version: String,
    kind: String,
    image: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    param_values: BTreeMap<String, String>,
}

const ANNOTATE: &str = "operator.oci.annotate";
const METRICS_NAME: &str = "operator.otel-metrics.otel-metrics-name";
const PRINT_INTERVAL: &str = "operator.otel-metrics.otel-metrics-print-interval";
const EBPF_PARAM: &str = "operator.oci.ebpf.";
const WASM_PARAM: &str = "operator.oci.wasm.";
/// IG's global verification switch, here a request the daemon may refuse (see
/// [`RunRequest::verify_image`]).
const VERIFY_IMAGE: &str = "operator.oci.verify-image";

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
    // Errors carry the line, which names the document in a multi-document file.
    let docs: Vec<Option<Manifest>> =
        gadget_model::yaml::from_str_multiple(text, &Budgets::current().yaml)
            .map_err(|e| fail(String::new(), e.message))?;
    let many = docs.len() > 1;
    let mut out = Vec::new();
    for (i, m) in docs.into_iter().enumerate() {
        let label = if many {
            format!(", document {}", i + 1)
        } else {
            String::new()
        };
        let Some(m) = m else {
            continue;
        };
        if m.api_version != "1" {
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
        for (key, value) in m.param_values {
            let key = key.as_str();
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
                let d = gadget_model::duration::parse_positive(&value)
                    .map_err(|e| fail(label.clone(), format!("field `paramValues.{key}`: {e}")))?;
                req.interval_ms = d.as_millis().max(1) as u64;
            } else if key == VERIFY_IMAGE {
                let b = value.parse::<bool>().map_err(|_| {
                    fail(
                        label.clone(),
                        format!("field `paramValues.{key}`: expected true or false, got {value:?}"),
                    )
                })?;
                req.verify_image = Some(b);
            } else if let Some(p) = key
                .strip_prefix(EBPF_PARAM)
                .or_else(|| key.strip_prefix(WASM_PARAM))
            {
                req.params.insert(p.to_string(), value);
            } else {
                return Err(fail(
                    label.clone(),
                    format!(
                        "field `paramValues.{key}`: unknown parameter (supported: {ANNOTATE}, {METRICS_NAME}, {PRINT_INTERVAL}, {VERIFY_IMAGE}, {EBPF_PARAM}<param>, {WASM_PARAM}<param>)"
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
        assert_eq!(r[0].verify_image, None);
    }

    #[test]
    fn verify_image_is_a_request_and_must_be_a_boolean() {
        let doc = "apiVersion: 1\nkind: instance-spec\nimage: x\nparamValues:\n  operator.oci.verify-image: \"false\"\n";
        let r = parse(doc, "m.yaml", &base()).unwrap();
        assert_eq!(r[0].verify_image, Some(false));
        let err = parse(&doc.replace("\"false\"", "nope"), "m.yaml", &base())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("operator.oci.verify-image") && err.contains("true or false"),
            "{err}"
        );
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
