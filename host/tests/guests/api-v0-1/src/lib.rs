//! A guest built against `gadget:api@0.1.0` (the copy of that WIT kept in wit/v0.1.0), with the
//! raw generated bindings as a 0.1 guest had them: no SDK, which now speaks 0.2. The host must
//! run it unchanged: it declares a datasource with one counter and, on every snapshot, publishes
//! how many map entries it saw, labelled with the datasource it counted and the gadget name,
//! and under the label `(config)` how many datasources its configuration listed.

wit_bindgen::generate!({ path: "../../../../wit/v0.1.0", world: "gadget" });

use gadget::api::host;
use gadget::api::types::{
    DatasourceSpec, FieldKind, FieldSpec, GadgetConfig, LogLevel, MapSnapshot, Sample,
};

struct V01;

static STATE: std::sync::Mutex<Option<(u32, String, usize)>> = std::sync::Mutex::new(None);

impl exports::gadget::api::guest::Guest for V01 {
    fn init(config: GadgetConfig) -> Result<(), String> {
        let field = |name: &str, kind| FieldSpec {
            name: name.into(),
            kind,
            unit: String::new(),
            description: String::new(),
            annotations: vec![],
        };
        let handle = host::add_datasource(&DatasourceSpec {
            name: "entries".into(),
            fields: vec![
                field("source", FieldKind::Key),
                field("entries", FieldKind::Counter),
            ],
            annotations: vec![("metrics.print".into(), "true".into())],
        })?;
        host::log(
            LogLevel::Debug,
            &format!("0.1 guest sees {} datasources", config.datasources.len()),
        );
        let seen = config.datasources.len();
        *STATE.lock().map_err(|e| e.to_string())? = Some((handle, config.gadget_name, seen));
        Ok(())
    }

    fn on_snapshot(snapshots: Vec<MapSnapshot>) -> Result<(), String> {
        let state = STATE.lock().map_err(|e| e.to_string())?;
        let Some((handle, gadget, seen)) = state.as_ref() else {
            return Err("on-snapshot before init".into());
        };
        let sample = |source: String, value: usize| Sample {
            field: "entries".into(),
            labels: vec![("source".into(), source)],
            value: value as f64,
        };
        let samples: Vec<Sample> = snapshots
            .iter()
            .map(|s| sample(format!("{gadget}/{}", s.datasource), s.entries.len()))
            .chain([sample("(config)".into(), *seen)])
            .collect();
        host::publish(*handle, &[], &samples)
    }
}

export!(V01);
