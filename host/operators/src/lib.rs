//! Operators consume what guests publish. Each subscribes to datasources by their annotations
//! (IG's model): adding an output never touches a gadget, adding a gadget never touches an output.
//!
//! May depend on: gadget-model (datasources), gadget-net (the metrics endpoint's serving loop).
//! Operators return data or errors; the terminal printer renders text for the CLI to write.

pub mod combiner;
pub mod env;
pub mod metrics;
pub mod printer;

use gadget_model::datasource::{DatasourceSpec, Publication};

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{operator}: {message}")]
    Failed {
        operator: &'static str,
        message: String,
    },
}

pub trait Operator: Send {
    /// Called once, with the datasources the guest declared (they cannot change afterwards:
    /// a guest declares them during init only).
    fn start(&mut self, datasources: &[DatasourceSpec]) -> Result<(), OperatorError>;

    /// Called after every snapshot with each datasource's new state; a publication names its
    /// datasource by its index in what [`Operator::start`] received.
    fn publish(&mut self, publications: &[Publication]) -> Result<(), OperatorError>;
}
