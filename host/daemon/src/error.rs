//! What can stop the daemon from starting or running.

use std::path::PathBuf;

use gadget_operators::metrics::server;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "another gadget daemon already uses {0}: stop it first (one daemon per state directory and socket)"
    )]
    AlreadyRunning(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("listening for SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Metrics(#[from] server::ServerError),
    #[error(transparent)]
    System(#[from] gadget_ebpf::system::SystemError),
}
