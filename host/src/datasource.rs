//! The data model between guests and operators: datasources (declared by the guest) and what is
//! published to them. Operators choose datasources by annotations, as in IG.

/// How operators should treat a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Key,
    Counter,
    Gauge,
    Histogram,
    Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    pub name: String,
    pub kind: FieldKind,
    pub unit: String,
    pub description: String,
    pub annotations: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasourceSpec {
    pub name: String,
    pub fields: Vec<FieldSpec>,
    pub annotations: Vec<(String, String)>,
}

impl DatasourceSpec {
    /// An annotation's value; later entries override earlier ones.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean annotation; anything but "true" is false, which the guest validated already.
    pub fn flag(&self, key: &str) -> bool {
        self.annotation(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A histogram's cumulative state; bucket i covers [upper_bounds[i-1], upper_bounds[i]).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub field: String,
    pub labels: Vec<(String, String)>,
    pub upper_bounds: Vec<u64>,
    pub counts: Vec<u64>,
    pub sum: Option<f64>,
}

impl Histogram {
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub field: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// One datasource's state after a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub datasource: usize,
    pub histograms: Vec<Histogram>,
    pub samples: Vec<Sample>,
}
