//! {{name}}'s Wasm guest: reads the eBPF `hists` map (one log2 histogram of request sizes) and
//! publishes it as the `size` histogram of the `{{name}}` datasource. The host prints it (IG's
//! histogram view) and, with `--annotate {{name}}:metrics.collect=true --otel-metrics-name
//! {{name}}:NAME`, exports it to Prometheus and OTLP.

use gadget_sdk::{Datasource, Gadget, GadgetConfig, Log2Histogram, MapSnapshot, Slots64};

const DATASOURCE: &str = "{{name}}";
const FIELD: &str = "size";

struct Guest {
    out: Datasource,
}

impl Gadget for Guest {
    /// Called once: check the configuration, declare what is published.
    fn init(config: &GadgetConfig) -> Result<Self, String> {
        let spec = config.datasource(DATASOURCE)?.histogram_spec(FIELD)?;
        Ok(Guest {
            out: Datasource::add(spec)?,
        })
    }

    /// Called every interval with the maps' current contents.
    fn on_snapshot(&mut self, snapshots: &[MapSnapshot]) -> Result<(), String> {
        let Some(snap) = snapshots.iter().find(|s| s.datasource == DATASOURCE) else {
            return Ok(());
        };
        // Keys are the array index (u32), values `struct hist { u64 size[27]; }`: sum them.
        let mut total = Log2Histogram::default();
        for (_index, hist) in snap.records::<u32, Slots64>()? {
            total.add(&hist.0);
        }
        self.out.publish(&[total.to_histogram(FIELD, Vec::new())], &[])
    }
}

gadget_sdk::gadget!(Guest);
