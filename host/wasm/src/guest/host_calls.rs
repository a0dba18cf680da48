//! The host side of a guest's calls (`add-datasource`, `publish`, `log`) without a Wasm
//! instance: the same functions and the same per-instance state wasmtime calls into, reachable
//! from plain Rust so the fuzz target `guest_publish` (fuzz/fuzz_targets/guest_publish.rs) can
//! drive what a hostile guest may publish without compiling or running a component.
//! Nothing else uses it; it adds no behaviour of its own beyond converting to the WIT types.

use super::{GuestLimits, HostState, Spent, TrackedLimits};
use crate::bindings::gadget::api::host::Host;
use crate::bindings::types;
use gadget_model::datasource::{DatasourceSpec, FieldKind, Histogram, Publication, Sample};

/// One guest's host-side state, as after instantiation (`init` still running).
pub struct HostCalls(HostState);

impl HostCalls {
    pub fn new(origin: &str) -> Self {
        HostCalls(HostState {
            wasi: wasmtime_wasi::WasiCtx::builder().build(),
            table: wasmtime::component::ResourceTable::new(),
            limits: TrackedLimits {
                inner: wasmtime::StoreLimitsBuilder::new()
                    .memory_size(GuestLimits::default().memory_bytes)
                    .build(),
                memory_bytes: 0,
            },
            in_init: true,
            datasources: Vec::new(),
            published: Vec::new(),
            origin: origin.to_string(),
            budget: GuestLimits::default().budget,
            spent: Spent::default(),
            event_sources: Vec::new(),
            subscribed: Vec::new(),
        })
    }

    /// `add-datasource`, as the guest calls it.
    pub fn add_datasource(&mut self, spec: &DatasourceSpec) -> Result<u32, String> {
        self.0.add_datasource(spec_to_wit(spec))
    }

    /// `init` returned: from now on only `publish` and `log`. Returns the declared datasources.
    pub fn end_init(&mut self) -> Vec<DatasourceSpec> {
        self.0.in_init = false;
        self.0.datasources.clone()
    }

    /// `publish`, as the guest calls it.
    pub fn publish(
        &mut self,
        datasource: u32,
        histograms: &[Histogram],
        samples: &[Sample],
    ) -> Result<(), String> {
        let histograms = histograms
            .iter()
            .map(|h| types::Histogram {
                field: h.field.clone(),
                labels: h.labels.clone(),
                upper_bounds: h.upper_bounds.clone(),
                counts: h.counts.clone(),
                sum: h.sum,
            })
            .collect();
        let samples = samples
            .iter()
            .map(|s| types::Sample {
                field: s.field.clone(),
                labels: s.labels.clone(),
                value: s.value,
            })
            .collect();
        self.0.publish(datasource, histograms, samples)
    }

    /// `log`, as the guest calls it.
    pub fn log(&mut self, message: String) {
        self.0.log(types::LogLevel::Debug, message);
    }

    /// Before a guest call (`on-snapshot`): nothing published, nothing spent yet.
    pub fn begin_call(&mut self) {
        self.0.published.clear();
        self.0.spent = Spent::default();
    }

    /// After the guest's call returned: what `on-snapshot` hands the instance loop, or the
    /// budget the call crossed (then nothing of it is used).
    pub fn end_call(&mut self) -> Result<Vec<Publication>, String> {
        if let Some(message) = self.0.spent.over.take() {
            self.0.published.clear();
            return Err(message);
        }
        Ok(std::mem::take(&mut self.0.published))
    }
}

fn spec_to_wit(s: &DatasourceSpec) -> types::DatasourceSpec {
    types::DatasourceSpec {
        name: s.name.clone(),
        annotations: s.annotations.clone(),
        fields: s
            .fields
            .iter()
            .map(|f| types::FieldSpec {
                name: f.name.clone(),
                kind: match f.kind {
                    FieldKind::Key => types::FieldKind::Key,
                    FieldKind::Counter => types::FieldKind::Counter,
                    FieldKind::Gauge => types::FieldKind::Gauge,
                    FieldKind::Histogram => types::FieldKind::Histogram,
                    FieldKind::Value => types::FieldKind::Value,
                },
                unit: f.unit.clone(),
                description: f.description.clone(),
                annotations: f.annotations.clone(),
            })
            .collect(),
    }
}
