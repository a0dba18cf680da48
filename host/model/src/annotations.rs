//! IG's `--annotate` grammar: `<datasource>[.<field>]:<key>=<value>[,<target>:<key>=<value>…]`,
//! the flag repeatable. Targets are checked against gadget.yaml so a typo is an error that lists
//! what exists, not a silently ignored setting.

use super::metadata::GadgetMetadata;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AnnotationError {
    #[error("--annotate {item:?}: expected <datasource>[.<field>]:<key>=<value>")]
    Malformed { item: String },
    #[error(
        "--annotate {item:?}: datasource {datasource} has no field {field:?} (it has: {known}; env.fields.<name> adds one)"
    )]
    UnknownField {
        item: String,
        datasource: String,
        field: String,
        known: String,
    },
    #[error("--annotate {item:?}: {reason}")]
    BadValue {
        item: String,
        // In the message, not a `#[source]`: `{:#}` and error_chain would repeat it.
        reason: ValueError,
    },
    #[error("--annotate {item:?}: unknown datasource {datasource:?} (this gadget has: {known})")]
    UnknownDatasource {
        item: String,
        datasource: String,
        known: String,
    },
}

/// A value the host's operators cannot use for their annotation key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    #[error("{key} must be true or false, not {value:?}")]
    NotBool { key: String, value: String },
    #[error("metrics.type must be one of key, counter, gauge, histogram, not {0:?}")]
    MetricsType(String),
    #[error("env.fields.<field> needs a field name")]
    NoEnvField,
    #[error("{0:?} is not an environment variable name")]
    EnvVarName(String),
}

/// One parsed annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub datasource: String,
    /// `None` for a datasource annotation.
    pub field: Option<String>,
    pub key: String,
    pub value: String,
}

/// Parses every `--annotate` value. Unknown fields are allowed (guests and operators add fields,
/// e.g. `env.fields.node` creates `node`), unknown datasources are not.
pub fn parse(flags: &[String], meta: &GadgetMetadata) -> Result<Vec<Annotation>, AnnotationError> {
    let mut out = Vec::new();
    for flag in flags {
        for item in flag.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let malformed = || AnnotationError::Malformed {
                item: item.to_string(),
            };
            let (target, kv) = item.split_once(':').ok_or_else(malformed)?;
            let (key, value) = kv.split_once('=').ok_or_else(malformed)?;
            let (datasource, field) = match target.split_once('.') {
                Some((d, f)) => (d, Some(f)),
                None => (target, None),
            };
            if datasource.is_empty() || key.is_empty() || field.is_some_and(str::is_empty) {
                return Err(malformed());
            }
            if !meta.datasources.contains_key(datasource) {
                return Err(AnnotationError::UnknownDatasource {
                    item: item.to_string(),
                    datasource: datasource.to_string(),
                    known: meta
                        .datasources
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            check_value(key, value).map_err(|reason| AnnotationError::BadValue {
                item: item.to_string(),
                reason,
            })?;
            out.push(Annotation {
                datasource: datasource.to_string(),
                field: field.map(str::to_string),
                key: key.to_string(),
                value: value.to_string(),
            });
        }
    }
    // Field targets must exist in gadget.yaml or be created by an env field (from gadget.yaml or
    // from these flags), so a typo in a field name is an error, not a silent no-op.
    for a in &out {
        let Some(field) = &a.field else { continue };
        let ds = &meta.datasources[&a.datasource];
        let env_key = format!("env.fields.{field}");
        let known = ds.fields.0.iter().any(|(n, _)| n == field)
            || ds.annotations.contains_key(&env_key)
            || out
                .iter()
                .any(|b| b.datasource == a.datasource && b.field.is_none() && b.key == env_key);
        if !known {
            return Err(AnnotationError::UnknownField {
                item: format!("{}.{field}:{}={}", a.datasource, a.key, a.value),
                datasource: a.datasource.clone(),
                field: field.clone(),
                known: ds
                    .fields
                    .0
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(out)
}

/// Values of the annotations the host's operators understand; others pass through to the guest.
fn check_value(key: &str, value: &str) -> Result<(), ValueError> {
    match key {
        gadget_keys::METRICS_COLLECT
        | gadget_keys::METRICS_PRINT
        | gadget_keys::CLI_CLEAR_SCREEN_BEFORE => match value {
            "true" | "false" => Ok(()),
            _ => Err(ValueError::NotBool {
                key: key.to_string(),
                value: value.to_string(),
            }),
        },
        gadget_keys::METRICS_TYPE => match value {
            "key" | "counter" | "gauge" | "histogram" => Ok(()),
            _ => Err(ValueError::MetricsType(value.to_string())),
        },
        k if k.starts_with(gadget_keys::ENV_FIELDS_PREFIX) => {
            let field = &k[gadget_keys::ENV_FIELDS_PREFIX.len()..];
            let var_ok = !value.is_empty()
                && !value.starts_with(|c: char| c.is_ascii_digit())
                && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if field.is_empty() {
                Err(ValueError::NoEnvField)
            } else if !var_ok {
                Err(ValueError::EnvVarName(value.to_string()))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> GadgetMetadata {
        GadgetMetadata::parse(
            b"name: t\ndatasources:\n  blockio:\n    fields:\n      latency: {}\n",
            "t",
        )
        .unwrap()
    }

    #[test]
    fn parses_igs_workflow_annotations() {
        let flags = vec![
            "blockio:metrics.collect=true".to_string(),
            "blockio:env.fields.node=NODE_NAME,blockio.node:metrics.type=key".to_string(),
        ];
        let a = parse(&flags, &meta()).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].key, "metrics.collect");
        assert_eq!(a[1].key, "env.fields.node");
        assert_eq!(a[1].value, "NODE_NAME");
        assert_eq!(a[2].field.as_deref(), Some("node"));
    }

    #[test]
    fn every_malformed_shape_is_refused() {
        let m = meta();
        for bad in [
            "blockio",                   // no key
            "blockio:",                  // empty pair
            "blockio:metrics.print",     // no value separator
            "blockio:=true",             // empty key
            ":metrics.print=true",       // empty target
            ".latency:metrics.type=key", // empty datasource
            "blockio.:metrics.type=key", // empty field
            "=true",
            ":",
            "blockio:metrics.print=true,blockio", // a bad pair after a good one
        ] {
            let err = parse(&[bad.to_string()], &m).unwrap_err();
            assert!(
                matches!(err, AnnotationError::Malformed { .. }),
                "{bad:?} gave {err:?}"
            );
            assert!(
                err.to_string()
                    .contains("expected <datasource>[.<field>]:<key>=<value>"),
                "{err}"
            );
        }
    }

    #[test]
    fn separators_spaces_and_values_with_colons() {
        let m = meta();
        // Empty items between commas are skipped; spaces around items are trimmed; the value
        // is everything after the first `=` (it may hold `:` and `=`).
        let a = parse(&[" blockio:a=1 ,, blockio:b=x:y=z ,".to_string()], &m).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].value, "x:y=z");
        assert!(parse(&[String::new()], &m).unwrap().is_empty());
        // Repeated flags accumulate in order.
        let a = parse(&["blockio:a=1".into(), "blockio:a=2".into()], &m).unwrap();
        assert_eq!((a[0].value.as_str(), a[1].value.as_str()), ("1", "2"));
    }

    #[test]
    fn errors_name_the_item() {
        let m = meta();
        assert!(matches!(
            parse(&["blockio".into()], &m),
            Err(AnnotationError::Malformed { .. })
        ));
        assert!(matches!(
            parse(&["blockio:x".into()], &m),
            Err(AnnotationError::Malformed { .. })
        ));
        assert!(matches!(
            parse(&[":k=v".into()], &m),
            Err(AnnotationError::Malformed { .. })
        ));
        let err = parse(&["blocko:metrics.collect=true".into()], &m)
            .unwrap_err()
            .to_string();
        assert!(err.contains("blocko") && err.contains("blockio"), "{err}");
    }
}
