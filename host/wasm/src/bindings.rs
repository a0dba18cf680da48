//! Generated bindings for `wit/gadget.wit` (the current minor version) and for every older minor
//! version the host still runs (`wit/v0.1.0/`), with the conversions to and from the host's own
//! types. An older version's host calls are answered by the current implementation after
//! converting their arguments: a minor version only adds, so nothing is lost.

use gadget_model::MapSnapshot;
use gadget_model::datasource as model;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "gadget",
});

pub use gadget::api::types;

/// The WIT package the host implements, as it appears in import names.
pub const PACKAGE: &str = "gadget:api";
pub const VERSION: &str = "0.2.0";

/// Guests built against `gadget:api@0.1.x`: map snapshots only, no events.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "gadget",
    });

    pub use gadget::api::types;

    pub const VERSION: &str = "0.1.0";

    use super::types as cur;

    pub fn config(c: &cur::GadgetConfig) -> types::GadgetConfig {
        types::GadgetConfig {
            gadget_name: c.gadget_name.clone(),
            // Event datasources mean nothing to a 0.1 guest: their events reach the operators
            // without it, as for a guest that does not subscribe.
            datasources: c
                .datasources
                .iter()
                .filter(|d| d.events.is_none())
                .map(|d| types::DatasourceConfig {
                    name: d.name.clone(),
                    annotations: d.annotations.clone(),
                    fields: d
                        .fields
                        .iter()
                        .map(|f| types::FieldConfig {
                            name: f.name.clone(),
                            annotations: f.annotations.clone(),
                        })
                        .collect(),
                })
                .collect(),
            params: c.params.clone(),
        }
    }

    pub fn snapshot(s: &cur::MapSnapshot) -> types::MapSnapshot {
        types::MapSnapshot {
            datasource: s.datasource.clone(),
            map_name: s.map_name.clone(),
            key_size: s.key_size,
            value_size: s.value_size,
            entries: s
                .entries
                .iter()
                .map(|e| types::MapEntry {
                    key: e.key.clone(),
                    value: e.value.clone(),
                })
                .collect(),
            taken_at_ns: s.taken_at_ns,
        }
    }

    pub fn spec(s: types::DatasourceSpec) -> cur::DatasourceSpec {
        cur::DatasourceSpec {
            name: s.name,
            annotations: s.annotations,
            fields: s
                .fields
                .into_iter()
                .map(|f| cur::FieldSpec {
                    name: f.name,
                    kind: match f.kind {
                        types::FieldKind::Key => cur::FieldKind::Key,
                        types::FieldKind::Counter => cur::FieldKind::Counter,
                        types::FieldKind::Gauge => cur::FieldKind::Gauge,
                        types::FieldKind::Histogram => cur::FieldKind::Histogram,
                        types::FieldKind::Value => cur::FieldKind::Value,
                    },
                    unit: f.unit,
                    description: f.description,
                    annotations: f.annotations,
                })
                .collect(),
        }
    }

    pub fn histogram(h: types::Histogram) -> cur::Histogram {
        cur::Histogram {
            field: h.field,
            labels: h.labels,
            upper_bounds: h.upper_bounds,
            counts: h.counts,
            sum: h.sum,
        }
    }

    pub fn sample(s: types::Sample) -> cur::Sample {
        cur::Sample {
            field: s.field,
            labels: s.labels,
            value: s.value,
        }
    }

    pub fn log_level(l: types::LogLevel) -> cur::LogLevel {
        match l {
            types::LogLevel::Error => cur::LogLevel::Error,
            types::LogLevel::Warn => cur::LogLevel::Warn,
            types::LogLevel::Info => cur::LogLevel::Info,
            types::LogLevel::Debug => cur::LogLevel::Debug,
        }
    }
}

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

/// The guest's configuration: gadget.yaml's datasources (with the user's annotations), each
/// event datasource with its record layout; an event datasource gadget.yaml does not describe is
/// added after them.
pub fn config_to_wit(
    c: &gadget_model::GuestConfig,
    events: &[crate::EventDatasource],
) -> types::GadgetConfig {
    let mut datasources: Vec<types::DatasourceConfig> = c
        .datasources
        .iter()
        .map(|d| {
            let source = events.iter().find(|e| e.datasource == d.name);
            types::DatasourceConfig {
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
                events: source.map(|s| layout_to_wit(&s.layout, &d.fields)),
            }
        })
        .collect();
    for e in events {
        if !c.datasources.iter().any(|d| d.name == e.datasource) {
            datasources.push(types::DatasourceConfig {
                name: e.datasource.clone(),
                annotations: Vec::new(),
                fields: Vec::new(),
                events: Some(layout_to_wit(&e.layout, &[])),
            });
        }
    }
    types::GadgetConfig {
        gadget_name: c.gadget_name.clone(),
        datasources,
        params: c.params.clone(),
    }
}

/// A record layout as the guest sees it; a field's annotations are the layout's (IG's implicit
/// ones) then gadget.yaml's and the user's for the same name, so later entries win.
fn layout_to_wit(
    layout: &gadget_events::Layout,
    configured: &[(String, Vec<(String, String)>)],
) -> types::RecordLayout {
    use gadget_events::FieldKind as K;
    types::RecordLayout {
        size: layout.record_size(),
        fields: layout
            .fields()
            .iter()
            .map(|f| {
                let mut annotations: Vec<(String, String)> = f
                    .annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some((_, extra)) = configured.iter().find(|(n, _)| *n == f.full_name) {
                    annotations.extend(extra.iter().cloned());
                }
                types::RecordField {
                    name: f.full_name.clone(),
                    offset: f.offset,
                    size: f.size,
                    kind: match f.kind {
                        K::U8 => types::ValueKind::U8,
                        K::U16 => types::ValueKind::U16,
                        K::U32 => types::ValueKind::U32,
                        K::U64 => types::ValueKind::U64,
                        K::I8 => types::ValueKind::S8,
                        K::I16 => types::ValueKind::S16,
                        K::I32 => types::ValueKind::S32,
                        K::I64 => types::ValueKind::S64,
                        K::Bool => types::ValueKind::Bool,
                        K::F32 => types::ValueKind::F32,
                        K::F64 => types::ValueKind::F64,
                        K::CString => types::ValueKind::Cstring,
                        K::Struct => types::ValueKind::Structure,
                        K::Union => types::ValueKind::Union,
                        // A layout never holds host-computed strings (LayoutError::HostKind).
                        K::Bytes | K::String => types::ValueKind::Bytes,
                    },
                    type_names: f.type_names.clone(),
                    annotations,
                }
            })
            .collect(),
    }
}
