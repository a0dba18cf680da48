//! Reading gadget.yaml-derived configuration: datasources, fields, annotations and params.

use crate::{
    DatasourceConfig, DatasourceSpec, FieldConfig, FieldKind, FieldSpec, GadgetConfig, Sample,
};

/// Lookups on IG-style annotation lists.
pub trait Annotations {
    /// The value of `key`, if set.
    fn annotation(&self, key: &str) -> Option<&str>;

    /// A boolean annotation (`true`/`false`), `default` when unset; an error names the bad value.
    fn annotation_bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.annotation(key) {
            None => Ok(default),
            Some(v) => parse_bool(v)
                .ok_or_else(|| format!("annotation {key}={v}: expected \"true\" or \"false\"")),
        }
    }
}

impl Annotations for [(String, String)] {
    fn annotation(&self, key: &str) -> Option<&str> {
        // Later entries win: the host appends the user's --annotate values after gadget.yaml's.
        self.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Annotations for Vec<(String, String)> {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.as_slice().annotation(key)
    }
}

/// Parses the boolean spellings IG accepts in annotations and params.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

impl GadgetConfig {
    /// The datasource `name` from gadget.yaml; an error lists the ones that exist.
    pub fn datasource(&self, name: &str) -> Result<&DatasourceConfig, String> {
        self.datasources
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.datasources.iter().map(|d| d.name.as_str()).collect();
                format!(
                    "gadget.yaml of {} has no datasource {name:?} (it has: {})",
                    self.gadget_name,
                    known.join(", ")
                )
            })
    }

    /// A parameter's value (defaults already applied by the host).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An integer parameter, `default` when unset; an error names the bad value.
    ///
    /// ```
    /// # use gadget_sdk::GadgetConfig;
    /// let cfg = GadgetConfig {
    ///     gadget_name: "g".into(),
    ///     datasources: vec![],
    ///     params: vec![("top".into(), "5".into()), ("bad".into(), "five".into())],
    /// };
    /// assert_eq!(cfg.param_u64("top", 10), Ok(5));
    /// assert_eq!(cfg.param_u64("unset", 10), Ok(10));
    /// assert!(cfg.param_u64("bad", 10).unwrap_err().contains("bad=five"));
    /// ```
    pub fn param_u64(&self, key: &str, default: u64) -> Result<u64, String> {
        match self.param(key) {
            None | Some("") => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("parameter {key}={v}: expected a non-negative integer")),
        }
    }

    /// A boolean parameter; unset means `false`.
    pub fn param_bool(&self, key: &str) -> Result<bool, String> {
        match self.param(key) {
            None => Ok(false),
            Some(v) => parse_bool(v)
                .ok_or_else(|| format!("parameter {key}={v}: expected \"true\" or \"false\"")),
        }
    }
}

impl DatasourceConfig {
    /// The field `name`, if gadget.yaml describes it.
    pub fn field(&self, name: &str) -> Option<&FieldConfig> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// A spec with the datasource's annotations and no fields yet: add them with
    /// [`DatasourceSpec::with_key`], [`DatasourceSpec::with_counter`],
    /// [`DatasourceSpec::with_gauge`]. The terminal view is on unless `metrics.print=false`.
    ///
    /// ```
    /// # use gadget_sdk::{DatasourceConfig, FieldKind};
    /// let ds = DatasourceConfig { name: "procs".into(), annotations: vec![], fields: vec![], events: None };
    /// let spec = ds.spec()?
    ///     .with_key("comm", "command name")
    ///     .with_counter("bytes", "bytes", "bytes written");
    /// assert!(matches!(spec.fields[1].kind, FieldKind::Counter));
    /// # Ok::<(), String>(())
    /// ```
    pub fn spec(&self) -> Result<DatasourceSpec, String> {
        let mut annotations = self.annotations.clone();
        if annotations.annotation(gadget_keys::METRICS_PRINT).is_none() {
            annotations.push((gadget_keys::METRICS_PRINT.into(), "true".into()));
        }
        // Validate early so a typo is reported at start, not on the first snapshot.
        annotations.annotation_bool(gadget_keys::METRICS_PRINT, true)?;
        annotations.annotation_bool(gadget_keys::METRICS_COLLECT, false)?;
        Ok(DatasourceSpec {
            name: self.name.clone(),
            fields: Vec::new(),
            annotations,
        })
    }

    /// A spec publishing one histogram field, carrying over gadget.yaml's annotations
    /// (unit, description) and the datasource's. The terminal view is on unless
    /// `metrics.print=false`, as in IG.
    pub fn histogram_spec(&self, field: &str) -> Result<DatasourceSpec, String> {
        let annotations = self
            .field(field)
            .map(|f| f.annotations.clone())
            .unwrap_or_default();
        let mut spec = self.spec()?;
        spec.fields.push(FieldSpec {
            name: field.to_string(),
            kind: FieldKind::Histogram,
            unit: annotations
                .annotation(gadget_keys::METRICS_UNIT)
                .unwrap_or("")
                .to_string(),
            description: annotations
                .annotation(gadget_keys::METRICS_DESCRIPTION)
                .or(annotations.annotation("description"))
                .unwrap_or("")
                .to_string(),
            annotations,
        });
        Ok(spec)
    }
}

impl DatasourceSpec {
    /// Adds a label field (a key, in IG's words) to the spec.
    pub fn with_key(self, name: &str, description: &str) -> Self {
        self.with_field(name, FieldKind::Key, "", description, "key")
    }

    /// Adds a counter field: a value that only grows (bytes, events); exported as a
    /// Prometheus counter and printed in the terminal view's table.
    pub fn with_counter(self, name: &str, unit: &str, description: &str) -> Self {
        self.with_field(name, FieldKind::Counter, unit, description, "counter")
    }

    /// Adds a gauge field: a value that goes up and down (a rate, a queue length).
    pub fn with_gauge(self, name: &str, unit: &str, description: &str) -> Self {
        self.with_field(name, FieldKind::Gauge, unit, description, "gauge")
    }

    fn with_field(
        mut self,
        name: &str,
        kind: FieldKind,
        unit: &str,
        description: &str,
        metrics_type: &str,
    ) -> Self {
        self.fields.push(FieldSpec {
            name: name.to_string(),
            kind,
            unit: unit.to_string(),
            description: description.to_string(),
            annotations: vec![(gadget_keys::METRICS_TYPE.into(), metrics_type.into())],
        });
        self
    }
}

impl Sample {
    /// A value for a counter or gauge field, with no labels yet.
    ///
    /// ```
    /// # use gadget_sdk::Sample;
    /// let s = Sample::new("bytes", 4096.0).label("comm", "dd").label("pid", 42);
    /// assert_eq!(s.labels[1], ("pid".to_string(), "42".to_string()));
    /// ```
    pub fn new(field: &str, value: f64) -> Self {
        Sample {
            field: field.to_string(),
            labels: Vec::new(),
            value,
        }
    }

    /// Adds a label (the value of a key field).
    pub fn label(mut self, key: &str, value: impl ToString) -> Self {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn later_annotations_override_earlier_ones() {
        let a = ann(&[("metrics.print", "true"), ("metrics.print", "false")]);
        assert_eq!(a.annotation_bool("metrics.print", true), Ok(false));
    }

    #[test]
    fn bad_boolean_names_the_annotation() {
        let a = ann(&[("metrics.collect", "maybe")]);
        let err = a.annotation_bool("metrics.collect", false).unwrap_err();
        assert!(err.contains("metrics.collect=maybe"), "{err}");
    }

    #[test]
    fn histogram_spec_prints_by_default_and_keeps_unit() {
        let ds = DatasourceConfig {
            name: "blockio".into(),
            annotations: vec![],
            fields: vec![FieldConfig {
                name: "latency".into(),
                annotations: ann(&[("metrics.unit", "µs")]),
            }],
            events: None,
        };
        let spec = ds.histogram_spec("latency").unwrap();
        assert_eq!(spec.annotations.annotation("metrics.print"), Some("true"));
        assert_eq!(spec.fields[0].unit, "µs");
        assert!(matches!(spec.fields[0].kind, FieldKind::Histogram));
    }

    #[test]
    fn missing_datasource_lists_known_ones() {
        let cfg = GadgetConfig {
            gadget_name: "g".into(),
            datasources: vec![DatasourceConfig {
                name: "blockio".into(),
                annotations: vec![],
                fields: vec![],
                events: None,
            }],
            params: vec![],
        };
        let err = cfg.datasource("nope").unwrap_err();
        assert!(err.contains("blockio"), "{err}");
    }
}
