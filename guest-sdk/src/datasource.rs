//! Publishing to the host: datasources and logs.

use crate::bindings::gadget::api::host;
use crate::{DatasourceSpec, Histogram, LogLevel, Sample};

/// A datasource the guest declared; operators subscribe to it by its annotations.
pub struct Datasource {
    handle: u32,
    name: String,
}

impl Datasource {
    /// Declares a datasource. Only valid inside [`crate::Gadget::init`].
    pub fn add(spec: DatasourceSpec) -> Result<Self, String> {
        let name = spec.name.clone();
        let handle = host::add_datasource(&spec)?;
        Ok(Datasource { handle, name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces the datasource's published state with these histograms and samples.
    pub fn publish(&self, histograms: &[Histogram], samples: &[Sample]) -> Result<(), String> {
        host::publish(self.handle, histograms, samples)
    }
}

/// Logs through the host (shown with the gadget's name, filtered by the host's log level).
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}
