//! Generated bindings for `wit/gadget.wit` and the conversions to and from the host's own types.

use gadget_model::MapSnapshot;
use gadget_model::datasource as model;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "gadget",
});

pub use gadget::api::types;

/// The WIT package the host implements, as it appears in import names.
pub const PACKAGE: &str = "gadget:api";
pub const VERSION: &str = "0.1.0";

pub fn snapshot_to_wit(s: &MapSnapshot) -> types::MapSnapshot {
    types::MapSnapshot {
        datasource: s.datasource.clone(),
        map_name: s.map_name.clone(),
        key_size: s.key_size,
        value_size: s.value_size,
        entries: s
            .entries
            .iter()
            .map(|(k, v)| types::MapEntry {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        taken_at_ns: s.taken_at_ns,
    }
}

pub fn spec_from_wit(s: types::DatasourceSpec) -> model::DatasourceSpec {
    model::DatasourceSpec {
        name: s.name,
        annotations: s.annotations,
        fields: s
            .fields
            .into_iter()
            .map(|f| model::FieldSpec {
                name: f.name,
                kind: match f.kind {
                    types::FieldKind::Key => model::FieldKind::Key,
                    types::FieldKind::Counter => model::FieldKind::Counter,
                    types::FieldKind::Gauge => model::FieldKind::Gauge,
                    types::FieldKind::Histogram => model::FieldKind::Histogram,
                    types::FieldKind::Value => model::FieldKind::Value,
                },
                unit: f.unit,
                description: f.description,
                annotations: f.annotations,
            })
            .collect(),
    }
}

pub fn histogram_from_wit(h: types::Histogram) -> model::Histogram {
    model::Histogram {
        field: h.field,
        labels: h.labels,
        upper_bounds: h.upper_bounds,
        counts: h.counts,
        sum: h.sum,
    }
}

pub fn sample_from_wit(s: types::Sample) -> model::Sample {
    model::Sample {
        field: s.field,
        labels: s.labels,
        value: s.value,
    }
}

pub fn config_to_wit(c: &gadget_model::GuestConfig) -> types::GadgetConfig {
    types::GadgetConfig {
        gadget_name: c.gadget_name.clone(),
        datasources: c
            .datasources
            .iter()
            .map(|d| types::DatasourceConfig {
                name: d.name.clone(),
                annotations: d.annotations.clone(),
                fields: d
                    .fields
                    .iter()
                    .map(|(name, annotations)| types::FieldConfig {
                        name: name.clone(),
                        annotations: annotations.clone(),
                    })
                    .collect(),
            })
            .collect(),
        params: c.params.clone(),
    }
}
