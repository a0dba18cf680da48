//! `gadget daemon`: hosts detached gadget instances and the metrics endpoint, serves the local
//! API on a Unix socket, and persists instances so they come back after a restart or a crash.
//!
//! Instances are pinned in bpffs (`/sys/fs/bpf/gadget/<state-dir hash>/<id>/`): their programs
//! keep counting while the daemon is down, and a restarted daemon adopts them, so no I/O is lost
//! and Prometheus sees no counter reset. Removing all state: stop the daemon, then
//! `rm -rf <state-dir> /sys/fs/bpf/gadget`.

pub mod api;
pub mod cluster_api;
pub mod memory;
pub mod store;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

use api::{InstanceInfo, Reply, Request, RunRequest};
use store::{SavedInstance, Store};

use crate::instance::{self, Hooks};
use crate::operators::Operator;
use crate::operators::metrics::{MetricsOperator, MetricsRegistry, server};
use crate::operators::printer::Printer;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/gadget";
const PIN_ROOT: &str = "/sys/fs/bpf/gadget";

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
    #[error(transparent)]
    Metrics(#[from] server::ServerError),
    #[error(transparent)]
    System(#[from] crate::ebpf::system::SystemError),
}

pub struct DaemonConfig {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub metrics_address: Option<String>,
    /// The cluster CLI's API: address and the file holding its bearer token.
    pub cluster_api: Option<(String, PathBuf)>,
    /// Where image references are found (and pulled into when missing).
    pub images: crate::image::ImageConfig,
    /// Budgets of each listener: the socket, the metrics endpoint, the cluster API.
    pub connections: crate::net::ConnectionLimits,
}

/// The last frame and the live stream of an instance's terminal view.
#[derive(Clone)]
struct Frames {
    last: Arc<Mutex<String>>,
    live: broadcast::Sender<String>,
}

/// The printer's output in the daemon: each flushed frame goes to attached viewers.
struct FrameSink {
    frames: Frames,
    buf: Vec<u8>,
}

impl Write for FrameSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let frame = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).to_string();
        *lock(&self.frames.last) = frame.clone();
        let _ = self.frames.live.send(frame);
        Ok(())
    }
}

struct Managed {
    saved: SavedInstance,
    status: Arc<Mutex<String>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    frames: Frames,
}

impl Managed {
    fn info(&self) -> InstanceInfo {
        let r = &self.saved.request;
        InstanceInfo {
            id: self.saved.id.clone(),
            name: r.name.clone().unwrap_or_default(),
            tags: r.tags.clone(),
            gadget: r.reference.clone(),
            status: lock(&self.status).clone(),
            created_ms: self.saved.created_ms,
        }
    }

    /// Stops the instance's thread and waits for it (its programs stay pinned).
    fn stop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Daemon {
    store: Store,
    images: crate::image::ImageConfig,
    pin_root: PathBuf,
    registry: MetricsRegistry,
    instances: Mutex<BTreeMap<String, Managed>>,
}

fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        bytes[..16].copy_from_slice(&(t.as_nanos() ^ u128::from(std::process::id())).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds: instances started within one second still list in creation order.
/// The 12-character form `gadget list` shows.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// FNV-1a of the state directory: daemons with different state directories (tests, several
/// users of one machine) never share pins.
fn state_hash(dir: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Daemon {
    fn pin_dir(&self, id: &str) -> PathBuf {
        self.pin_root.join(id)
    }

    /// Starts an instance and waits until it is attached (or failed). New instances are saved
    /// only once running; restored ones that fail stay listed with their error.
    fn start(&self, saved: SavedInstance, restoring: bool) -> Result<String, String> {
        let id = saved.id.clone();
        let (spec, names) = saved.request.to_spec()?;
        let frames = Frames {
            last: Arc::new(Mutex::new(String::new())),
            live: broadcast::channel(16).0,
        };
        let status = Arc::new(Mutex::new("Starting".to_string()));
        {
            let mut map = lock(&self.instances);
            let max = crate::budgets::Budgets::current().daemon.max_instances;
            if map.len() >= max {
                return Err(format!(
                    "this daemon already runs {} instances (budget daemon.max-instances = {max}); delete one, or start the daemon with --budget daemon.max-instances=N if the node has the memory",
                    map.len()
                ));
            }
            if !restoring {
                // Instances still starting have not reached their peak yet: count them too.
                let starting = map
                    .values()
                    .filter(|m| *lock(&m.status) == "Starting")
                    .count();
                memory::check_room_for_instance(starting)?;
            }
            if let Some(name) = saved.request.name.as_deref().filter(|n| !n.is_empty())
                && let Some(other) = map
                    .values()
                    .find(|m| m.saved.request.name.as_deref() == Some(name))
            {
                return Err(format!(
                    "an instance named {name:?} already exists (ID {})",
                    short(&other.saved.id)
                ));
            }
            map.insert(
                id.clone(),
                Managed {
                    saved: saved.clone(),
                    status: status.clone(),
                    stop: None,
                    thread: None,
                    frames: frames.clone(),
                },
            );
        }
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let registry = self.registry.clone();
        let pin_dir = self.pin_dir(&id);
        let thread_status = status.clone();
        let on_attached = ready_tx.clone();
        let images = self.images.clone();
        let thread = std::thread::Builder::new()
            .name(format!("gadget-{}", short(&id)))
            .spawn(move || {
                let sink = FrameSink {
                    frames,
                    buf: Vec::new(),
                };
                let mut operators: Vec<Box<dyn Operator>> = vec![
                    Box::new(Printer::new(Box::new(sink), false)),
                    Box::new(MetricsOperator::new(registry, names)),
                ];
                let hooks = Hooks {
                    images,
                    pin_dir: Some(pin_dir),
                    on_attached: Some(Box::new(move || {
                        let _ = on_attached.send(Ok(()));
                    })),
                    on_warning: None,
                };
                let result = instance::run(&spec, &mut operators, &stop_rx, hooks);
                let end = match &result {
                    Ok(_) => "Stopped".to_string(),
                    Err(e) => format!("Failed: {e}"),
                };
                *lock(&thread_status) = end;
                if let Err(e) = result {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            })
            .map_err(|e| {
                lock(&self.instances).remove(&id);
                format!("starting a thread: {e}")
            })?;
        let outcome = ready_rx
            .recv()
            .unwrap_or_else(|_| Err("the instance ended before attaching".into()));
        let mut map = lock(&self.instances);
        let Some(m) = map.get_mut(&id) else {
            // Deleted while starting: finish the job the delete could not do.
            drop(map);
            drop(stop_tx);
            let _ = thread.join();
            crate::ebpf::loader::remove_pins(&self.pin_dir(&id));
            return Err("deleted while starting".into());
        };
        m.stop = Some(stop_tx);
        m.thread = Some(thread);
        match outcome {
            Ok(()) => {
                *lock(&status) = "Running".into();
                drop(map);
                if !restoring && let Err(e) = self.store.save(&saved) {
                    self.remove(&id);
                    return Err(format!("saving the instance: {e}"));
                }
                Ok(id)
            }
            Err(e) => {
                if restoring {
                    // Keep it listed: the user sees why and can delete it.
                    m.stop();
                    Err(e)
                } else {
                    drop(map);
                    self.remove(&id);
                    Err(e)
                }
            }
        }
    }

    /// Stops, unpins and forgets an instance.
    fn remove(&self, id: &str) -> Option<String> {
        let mut m = lock(&self.instances).remove(id)?;
        m.stop();
        crate::instance::memory::release_free_heap();
        crate::ebpf::loader::remove_pins(&self.pin_dir(id));
        if let Err(e) = self.store.remove(id) {
            tracing::error!("removing the saved spec of {id}: {e}");
        }
        Some(m.saved.id)
    }

    /// An ID, a unique ID prefix or a name.
    fn resolve(&self, target: &str) -> Result<String, String> {
        let map = lock(&self.instances);
        if map.contains_key(target) {
            return Ok(target.to_string());
        }
        let by_name: Vec<&String> = map
            .iter()
            .filter(|(_, m)| m.saved.request.name.as_deref() == Some(target))
            .map(|(id, _)| id)
            .collect();
        if let [id] = by_name.as_slice() {
            return Ok((*id).clone());
        }
        let by_prefix: Vec<&String> = map
            .keys()
            .filter(|id| target.len() >= 4 && id.starts_with(target))
            .collect();
        match by_prefix.as_slice() {
            [id] => Ok((*id).clone()),
            [] => Err(format!(
                "no instance with ID or name {target:?} (see `gadget list`)"
            )),
            _ => Err(format!(
                "{target:?} matches several instance IDs; give more characters"
            )),
        }
    }

    fn list(&self) -> Vec<InstanceInfo> {
        let mut v: Vec<InstanceInfo> = lock(&self.instances).values().map(Managed::info).collect();
        v.sort_by_key(|i| (i.created_ms, i.id.clone()));
        v
    }

    fn restore(&self) {
        let loaded = self.store.load_all();
        for u in loaded.unreadable {
            let Some(id) = u.id else {
                tracing::error!(
                    "skipping {}: {} (not named after an instance ID, so it has no pins; fix or delete the file)",
                    u.path.display(),
                    u.reason
                );
                continue;
            };
            // Its programs may still be pinned and attached: list it so `delete` can unpin them.
            tracing::error!(
                "instance {id}: saved spec {} is unreadable: {}",
                u.path.display(),
                u.reason
            );
            let status = format!(
                "Failed: saved spec {} is unreadable ({}); `gadget delete {}` removes it and its pinned programs",
                u.path.display(),
                u.reason,
                short(&id)
            );
            let saved = SavedInstance {
                id: id.clone(),
                created_ms: u.modified_ms,
                request: RunRequest {
                    reference: "(unreadable saved spec)".into(),
                    ..Default::default()
                },
            };
            lock(&self.instances).insert(
                id,
                Managed {
                    saved,
                    status: Arc::new(Mutex::new(status)),
                    stop: None,
                    thread: None,
                    frames: Frames {
                        last: Arc::new(Mutex::new(String::new())),
                        live: broadcast::channel(1).0,
                    },
                },
            );
        }
        for saved in loaded.instances {
            let id = saved.id.clone();
            match self.start(saved, true) {
                Ok(_) => tracing::info!("restored instance {id}"),
                Err(e) => tracing::error!("instance {id} could not be restored: {e}"),
            }
        }
    }

    fn shutdown(&self) {
        let mut map = lock(&self.instances);
        for m in map.values_mut() {
            m.stop();
        }
    }

    /// Run, list and delete: one request, one reply (the local socket and the cluster API).
    async fn dispatch(self: Arc<Self>, request: Request) -> Reply {
        match request {
            Request::Run { spec } => {
                // A reference the CLI pulled is local already; a remote CLI's may not be.
                if let Err(e) = crate::image::ensure(&self.images, &spec.reference, crate::image::PullPolicy::Missing).await {
                    return Reply::Error { message: crate::error_chain(&e) };
                }
                let me = self.clone();
                let saved = SavedInstance { id: new_id(), created_ms: now_ms(), request: spec };
                match tokio::task::spawn_blocking(move || me.start(saved, false)).await {
                    Ok(Ok(id)) => Reply::Started { id },
                    Ok(Err(message)) => Reply::Error { message },
                    Err(e) => Reply::Error { message: format!("internal error: {e}") },
                }
            }
            Request::List => Reply::Instances { instances: self.list() },
            Request::Delete { targets } => {
                let ids: Result<Vec<String>, String> = targets.iter().map(|t| self.resolve(t)).collect();
                match ids {
                    Err(message) => Reply::Error { message },
                    Ok(ids) => {
                        let me = self.clone();
                        let done =
                            tokio::task::spawn_blocking(move || ids.iter().filter_map(|id| me.remove(id)).collect()).await;
                        Reply::Deleted { ids: done.unwrap_or_default() }
                    }
                }
            }
            Request::Attach { .. } => Reply::Error {
                message: "attach is only available on the node (gadget attach, through kubectl exec in a cluster)".into(),
            },
        }
    }

    /// One connection on the socket: the request line within the header timeout (or the gate
    /// closes it to make room), then busy until the reply is written; every write must make
    /// progress within the idle timeout.
    async fn handle(self: Arc<Self>, stream: UnixStream, permit: crate::net::Permit) {
        let limits = permit.limits();
        let (read, write) = stream.into_split();
        let mut write = crate::net::StallTimeout::new(write, limits.idle_timeout);
        let mut line = String::new();
        let mut reader = BufReader::new(read.take(api::MAX_REQUEST_BYTES));
        let reply = |r: &Reply| {
            let mut s = serde_json::to_string(r)
                .unwrap_or_else(|e| format!("{{\"reply\":\"error\",\"message\":\"{e}\"}}"));
            s.push('\n');
            s
        };
        tokio::select! {
            read = tokio::time::timeout(limits.header_timeout, reader.read_line(&mut line)) => {
                match read {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        let message = format!(
                            "no complete request within {} s (the header timeout)",
                            limits.header_timeout.as_secs_f64()
                        );
                        let _ = write.write_all(reply(&Reply::Error { message }).as_bytes()).await;
                        return;
                    }
                }
            }
            () = permit.evicted() => return,
        }
        permit.set_busy(true);
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let _ = write
                    .write_all(
                        reply(&Reply::Error {
                            message: format!("bad request: {e}"),
                        })
                        .as_bytes(),
                    )
                    .await;
                return;
            }
        };
        let out = match request {
            Request::Attach { target } => {
                let frames = match self.resolve(&target) {
                    Ok(id) => lock(&self.instances).get(&id).map(|m| m.frames.clone()),
                    Err(message) => {
                        let _ = write
                            .write_all(reply(&Reply::Error { message }).as_bytes())
                            .await;
                        return;
                    }
                };
                let Some(frames) = frames else { return };
                let mut live = frames.live.subscribe();
                let first = lock(&frames.last).clone();
                if !first.is_empty()
                    && write
                        .write_all(reply(&Reply::Frame { text: first }).as_bytes())
                        .await
                        .is_err()
                {
                    return;
                }
                // Until the viewer goes away or the instance ends.
                loop {
                    match live.recv().await {
                        Ok(text) => {
                            if write
                                .write_all(reply(&Reply::Frame { text }).as_bytes())
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
            other => self.clone().dispatch(other).await,
        };
        let _ = write.write_all(reply(&out).as_bytes()).await;
    }
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
    // SAFETY: flock on an fd we own.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        return Err(DaemonError::AlreadyRunning(dir.display().to_string()));
    }
    Ok(f)
}

/// Binds the socket: refuses if a live daemon answers there, replaces a stale socket file.
fn bind_socket(socket: &Path) -> Result<UnixListener, DaemonError> {
    let io = |source| DaemonError::Io {
        path: socket.to_path_buf(),
        source,
    };
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(DaemonError::AlreadyRunning(socket.display().to_string()));
        }
        tracing::info!("removing the stale socket {}", socket.display());
        std::fs::remove_file(socket).map_err(io)?;
    }
    let listener = UnixListener::bind(socket).map_err(io)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
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
    crate::ebpf::system::prepare_daemon()?;
    let daemon = Arc::new(Daemon {
        store,
        images: config.images.clone(),
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
    ready.store(true, Ordering::SeqCst);
    tracing::info!(
        "gadget daemon ready on {} (state in {})",
        config.socket.display(),
        state_dir.display()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| DaemonError::Io {
            path: PathBuf::from("SIGTERM"),
            source,
        })?;
    let refusal = serde_json::to_string(&Reply::Error {
        message: format!(
            "the daemon has {} connections on its socket, all busy (--max-connections); try again",
            config.connections.max_connections
        ),
    })
    .unwrap_or_default()
        + "\n";
    let d = daemon.clone();
    let accepting = tokio::spawn(crate::net::accept_loop(
        listener,
        crate::net::Gate::new("daemon socket", config.connections),
        refusal.into_bytes(),
        move |stream, permit| d.clone().handle(stream, permit),
    ));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    accepting.abort();
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
