//! The guest the host runs when a gadget ships no Wasm module, so every gadget takes the same path
//! (snapshot → guest → operators).
//!
//! It understands the histogram convention of gadget.yaml: each datasource's map value is an
//! array of 27 log2 slots (u32 as in IG's gadgets, or u64), all keys are summed, and the histogram
//! field is the datasource's field annotated `metrics.type: histogram`, else the first field with
//! a `metrics.unit`, else the first field listed.

use gadget_sdk::{
    Annotations, Datasource, DatasourceConfig, Gadget, GadgetConfig, Log2Histogram, MapSnapshot,
};

struct DefaultGuest {
    outputs: Vec<(Datasource, String)>,
}

fn histogram_field(ds: &DatasourceConfig) -> Result<String, String> {
    let by = |pred: &dyn Fn(&gadget_sdk::FieldConfig) -> bool| {
        ds.fields.iter().find(|f| pred(f)).map(|f| f.name.clone())
    };
    by(&|f| f.annotations.annotation("metrics.type") == Some("histogram"))
        .or_else(|| by(&|f| f.annotations.annotation("metrics.unit").is_some()))
        .or_else(|| by(&|_| true))
        .ok_or_else(|| {
            format!(
                "datasource {}: gadget.yaml lists no fields, so the default guest cannot name its histogram",
                ds.name
            )
        })
}

impl Gadget for DefaultGuest {
    fn init(config: &GadgetConfig) -> Result<Self, String> {
        let mut outputs = Vec::new();
        for ds in &config.datasources {
            let field = histogram_field(ds)?;
            outputs.push((Datasource::add(ds.histogram_spec(&field)?)?, field));
        }
        Ok(DefaultGuest { outputs })
    }

    fn on_snapshot(&mut self, snapshots: &[MapSnapshot]) -> Result<(), String> {
        for (out, field) in &self.outputs {
            let Some(snap) = snapshots.iter().find(|s| s.datasource == out.name()) else {
                continue;
            };
            let mut total = Log2Histogram::default();
            for entry in &snap.entries {
                let slots = Log2Histogram::from_le_slots(&entry.value).map_err(|e| {
                    format!("datasource {} (map {}): {e}", out.name(), snap.map_name)
                })?;
                total.add(&slots);
            }
            out.publish(&[total.to_histogram(field, Vec::new())], &[])?;
        }
        Ok(())
    }
}

gadget_sdk::gadget!(DefaultGuest);
