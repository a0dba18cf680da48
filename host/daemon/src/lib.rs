//! `gadget daemon`: hosts detached gadget instances and the metrics endpoint, serves the local
//! API on a Unix socket, and persists instances so they come back after a restart or a crash.
//!
//! Instances are pinned in bpffs (`/sys/fs/bpf/gadget/<state-dir hash>/<id>/`): their programs
//! keep counting while the daemon is down, and a restarted daemon adopts them, so no I/O is lost
//! and Prometheus sees no counter reset. Removing all state: stop the daemon, then
//! `rm -rf <state-dir> /sys/fs/bpf/gadget`.

pub mod cluster_api;
mod error;
mod ids;
mod manager;
pub mod memory;
mod record;
mod socket;
pub mod store;

pub use error::DaemonError;
pub use manager::Daemon;
pub use record::InstanceStatus;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gadget_api::{ErrorCode, Reply};
use gadget_operators::metrics::{MetricsRegistry, server};

use ids::state_hash;
use socket::bind_socket;
use store::Store;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/gadget";
const PIN_ROOT: &str = "/sys/fs/bpf/gadget";

pub struct DaemonConfig {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub metrics_address: Option<String>,
    /// The cluster CLI's API: address and the file holding its bearer token.
    pub cluster_api: Option<(String, PathBuf)>,
    /// Where image references are found (and pulled into when missing), and the signature
    /// policy every request is held to.
    pub images: gadget_image::ImageConfig,
    /// Whether a request may turn signature verification off for its image
    /// ([`gadget_api::RunRequest::verify_image`]); by default only this configuration can.
    pub allow_unverified_requests: bool,
    /// Budgets of each listener: the socket, the metrics endpoint, the cluster API.
    pub connections: gadget_net::ConnectionLimits,
}

/// Takes the state directory's lock (one daemon per state directory), held for the process's life.
fn lock_state_dir(dir: &Path) -> Result<std::fs::File, DaemonError> {
    let path = dir.join("daemon.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DaemonError::Io {
            path: path.clone(),
            source,
        })?;
    // Held for the daemon's lifetime; released when the file closes (also on a crash).
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(DaemonError::AlreadyRunning(dir.display().to_string()));
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(DaemonError::Io { path, source });
        }
    }
    Ok(f)
}

/// Runs the daemon until SIGINT or SIGTERM. Instances stay pinned and saved: the next start
/// adopts them.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| DaemonError::Io {
        path: config.state_dir.clone(),
        source,
    })?;
    let state_dir = config
        .state_dir
        .canonicalize()
        .map_err(|source| DaemonError::Io {
            path: config.state_dir.clone(),
            source,
        })?;
    let _lock = lock_state_dir(&state_dir)?;
    let listener = bind_socket(&config.socket)?;
    let store = Store::open(&state_dir).map_err(|source| DaemonError::Io {
        path: state_dir.clone(),
        source,
    })?;
    gadget_ebpf::system::prepare_daemon()?;
    let daemon = Arc::new(Daemon {
        store,
        images: config.images.clone(),
        allow_unverified_requests: config.allow_unverified_requests,
        pin_root: PathBuf::from(PIN_ROOT).join(state_hash(&state_dir)),
        registry: MetricsRegistry::default(),
        instances: Mutex::new(BTreeMap::new()),
    });
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(addr) = &config.metrics_address {
        server::serve_with_health(
            addr,
            daemon.registry.clone(),
            ready.clone(),
            config.connections,
        )
        .await?;
    }
    if let Some((addr, token_file)) = &config.cluster_api {
        let io = |source| DaemonError::Io {
            path: token_file.clone(),
            source,
        };
        let token = std::fs::read_to_string(token_file)
            .map_err(io)?
            .trim()
            .to_string();
        if token.len() < 16 {
            return Err(io(std::io::Error::other(
                "the cluster API token must be at least 16 characters",
            )));
        }
        cluster_api::serve(addr, token, daemon.clone(), config.connections)
            .await
            .map_err(|source| DaemonError::Io {
                path: PathBuf::from(addr),
                source,
            })?;
    }
    let d = daemon.clone();
    tokio::task::spawn_blocking(move || d.restore()).await.ok();
    let reaper = tokio::spawn(daemon.clone().reap_expired());
    ready.store(true, Ordering::SeqCst);
    tracing::info!(
        "gadget daemon ready on {} (state in {})",
        config.socket.display(),
        state_dir.display()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(DaemonError::Signal)?;
    let refusal = serde_json::to_string(&Reply::error(
        ErrorCode::Failed,
        format!(
            "the daemon has {} connections on its socket, all busy (--max-connections); try again",
            config.connections.max_connections
        ),
    ))
    .unwrap_or_default()
        + "\n";
    let d = daemon.clone();
    let accepting = tokio::spawn(gadget_net::accept_loop(
        listener,
        gadget_net::Gate::new("daemon socket", config.connections),
        refusal.into_bytes(),
        move |stream, permit| d.clone().handle(stream, permit),
    ));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    accepting.abort();
    reaper.abort();
    tracing::info!("stopping; instances stay pinned and saved for the next start");
    let d = daemon.clone();
    tokio::task::spawn_blocking(move || d.shutdown()).await.ok();
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}

/// For the client side: a `RunRequest` needs absolute gadget directories (the daemon's working
/// directory is not the user's).
pub fn absolute_reference(reference: &str) -> String {
    let p = Path::new(reference);
    if p.is_dir() {
        p.canonicalize()
            .map(|c| c.display().to_string())
            .unwrap_or_else(|_| reference.to_string())
    } else {
        reference.to_string()
    }
}
