//! The instance manager: starts (and restores), resolves, lists and removes instances, and
//! answers run, list and delete requests (the local socket and the cluster API).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::broadcast;

use gadget_api::{ErrorCode, InstanceInfo, Reply, Request, RunRequest};
use gadget_operators::Operator;
use gadget_operators::metrics::host::InstanceLabels;
use gadget_operators::metrics::{MetricsOperator, MetricsRegistry};
use gadget_operators::printer::Printer;
use gadget_runtime::instance::{self, Hooks};

use crate::ids::{new_id, now_ms, short};
use crate::record::{
    DataSink, FrameSink, Frames, InstanceStatus, Lease, Managed, empty_data, lock,
};
use crate::store::{SavedInstance, Store};

/// Why an instance did not start, or a target named none; [`ManagerError::code`] is the one
/// place these become protocol error codes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManagerError {
    #[error(transparent)]
    Request(#[from] instance::RequestError),
    #[error(
        "this daemon already runs {running} instances (budget daemon.max-instances = {max}); delete one, or start the daemon with --budget daemon.max-instances=N if the node has the memory"
    )]
    TooManyInstances { running: usize, max: usize },
    #[error(transparent)]
    NoRoom(#[from] crate::memory::NoRoom),
    #[error("an instance named {name:?} already exists (ID {id})")]
    NameTaken { name: String, id: String },
    // Causes are in the messages (the reply carries only the text), not `#[source]`s.
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
    /// The instance's own error (loading, attaching), as its thread reported it.
    #[error(transparent)]
    Instance(#[from] instance::InstanceError),
    #[error("the instance ended before attaching")]
    EndedBeforeAttaching,
    #[error("deleted while starting")]
    DeletedWhileStarting,
    #[error("saving the instance: {0}")]
    Save(std::io::Error),
    #[error("no instance with ID or name {0:?} (see `gadget list`)")]
    NotFound(String),
    #[error("{0:?} matches several instance IDs; give more characters")]
    Ambiguous(String),
}

impl ManagerError {
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            ManagerError::NotFound(_) => ErrorCode::NotFound,
            ManagerError::Ambiguous(_) => ErrorCode::Ambiguous,
            _ => ErrorCode::Failed,
        }
    }

    pub(crate) fn reply(&self) -> Reply {
        Reply::error(self.code(), self.to_string())
    }
}

pub struct Daemon {
    pub(crate) store: Store,
    pub(crate) images: gadget_image::ImageConfig,
    pub(crate) allow_unverified_requests: bool,
    pub(crate) pin_root: PathBuf,
    pub(crate) registry: MetricsRegistry,
    pub(crate) instances: Mutex<BTreeMap<String, Managed>>,
}

impl Daemon {
    pub(crate) fn pin_dir(&self, id: &str) -> PathBuf {
        self.pin_root.join(id)
    }

    /// Starts an instance and waits until it is attached (or failed). New instances are saved
    /// only once running, and temporary ones (with a `lease`) never; restored ones that fail
    /// stay listed with their error.
    pub(crate) fn start(
        &self,
        saved: SavedInstance,
        restoring: bool,
        lease: Option<Lease>,
    ) -> Result<String, ManagerError> {
        let id = saved.id.clone();
        let (spec, names) = instance::spec_from_request(&saved.request)?;
        let frames = Frames {
            last: Arc::new(Mutex::new(String::new())),
            live: broadcast::channel(16).0,
        };
        let data = empty_data();
        let status = Arc::new(Mutex::new(InstanceStatus::Starting));
        {
            let mut map = lock(&self.instances);
            let max = gadget_model::budgets::Budgets::current()
                .daemon
                .max_instances;
            if map.len() >= max {
                return Err(ManagerError::TooManyInstances {
                    running: map.len(),
                    max,
                });
            }
            if !restoring {
                // Instances still starting have not reached their peak yet: count them too.
                let starting = map
                    .values()
                    .filter(|m| matches!(*lock(&m.status), InstanceStatus::Starting))
                    .count();
                crate::memory::check_room_for_instance(starting)?;
            }
            if let Some(name) = saved.request.name.as_deref().filter(|n| !n.is_empty())
                && let Some(other) = map
                    .values()
                    .find(|m| m.saved.request.name.as_deref() == Some(name))
            {
                return Err(ManagerError::NameTaken {
                    name: name.to_string(),
                    id: short(&other.saved.id).to_string(),
                });
            }
            map.insert(
                id.clone(),
                Managed {
                    saved: saved.clone(),
                    status: status.clone(),
                    stop: None,
                    thread: None,
                    frames: frames.clone(),
                    data: data.clone(),
                    lease,
                },
            );
        }
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), instance::InstanceError>>();
        let registry = self.registry.clone();
        let stats = registry.register_instance(InstanceLabels {
            name: saved.request.name.clone().unwrap_or_default(),
            id: id.clone(),
            image: saved.request.reference.clone(),
        });
        // A temporary instance is not pinned: if the daemon dies, its programs go with it (it
        // is never saved, so a restarted daemon could not find the pins to remove them).
        let pin_dir = lease.is_none().then(|| self.pin_dir(&id));
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
                    Box::new(DataSink(data)),
                ];
                let hooks = Hooks {
                    images,
                    pin_dir,
                    on_attached: Some(Box::new(move || {
                        let _ = on_attached.send(Ok(()));
                    })),
                    on_warning: None,
                    stats: Some(stats),
                    event_sink: None,
                    batch_stage: None,
                };
                let result = instance::run(&spec, &mut operators, &stop_rx, hooks);
                let end = match &result {
                    Ok(_) => InstanceStatus::Stopped,
                    Err(e) => InstanceStatus::Failed(e.to_string()),
                };
                *lock(&thread_status) = end;
                if let Err(e) = result {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| {
                lock(&self.instances).remove(&id);
                ManagerError::Thread(e)
            })?;
        let outcome = match ready_rx.recv() {
            Ok(r) => r.map_err(ManagerError::from),
            Err(_) => Err(ManagerError::EndedBeforeAttaching),
        };
        let mut map = lock(&self.instances);
        let Some(m) = map.get_mut(&id) else {
            // Deleted while starting: finish the job the delete could not do.
            drop(map);
            drop(stop_tx);
            let _ = thread.join();
            gadget_ebpf::loader::remove_pins(&self.pin_dir(&id));
            return Err(ManagerError::DeletedWhileStarting);
        };
        m.stop = Some(stop_tx);
        m.thread = Some(thread);
        match outcome {
            Ok(()) => {
                *lock(&status) = InstanceStatus::Running;
                // Pulling and attaching do not count against the client's lease.
                if let Some(l) = m.lease.as_mut() {
                    l.renew();
                }
                drop(map);
                if !restoring
                    && lease.is_none()
                    && let Err(e) = self.store.save(&saved)
                {
                    self.remove(&id);
                    return Err(ManagerError::Save(e));
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
    pub(crate) fn remove(&self, id: &str) -> Option<String> {
        let mut m = lock(&self.instances).remove(id)?;
        m.stop();
        gadget_runtime::memory::release_free_heap();
        gadget_ebpf::loader::remove_pins(&self.pin_dir(id));
        if let Err(e) = self.store.remove(id) {
            tracing::error!("removing the saved spec of {id}: {e}");
        }
        Some(m.saved.id)
    }

    /// An ID, a unique ID prefix or a name.
    pub(crate) fn resolve(&self, target: &str) -> Result<String, ManagerError> {
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
            [] => Err(ManagerError::NotFound(target.to_string())),
            _ => Err(ManagerError::Ambiguous(target.to_string())),
        }
    }

    pub(crate) fn list(&self) -> Vec<InstanceInfo> {
        let mut v: Vec<InstanceInfo> = lock(&self.instances).values().map(Managed::info).collect();
        v.sort_by_key(|i| (i.created_ms, i.id.clone()));
        v
    }

    pub(crate) fn restore(&self) {
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
            let status = InstanceStatus::Failed(format!(
                "saved spec {} is unreadable ({}); `gadget delete {}` removes it and its pinned programs",
                u.path.display(),
                u.reason,
                short(&id)
            ));
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
                    data: empty_data(),
                    lease: None,
                },
            );
        }
        for saved in loaded.instances {
            let id = saved.id.clone();
            match self.start(saved, true, None) {
                Ok(_) => tracing::info!("restored instance {id}"),
                Err(e) => tracing::error!("instance {id} could not be restored: {e}"),
            }
        }
    }

    /// Stops every instance; temporary ones are removed (they are never restored, so their
    /// pins would otherwise stay behind).
    pub(crate) fn shutdown(&self) {
        let temporary: Vec<String> = lock(&self.instances)
            .iter()
            .filter(|(_, m)| m.lease.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in temporary {
            self.remove(&id);
        }
        let mut map = lock(&self.instances);
        for m in map.values_mut() {
            m.stop();
        }
    }

    /// The temporary instances whose lease ran out.
    pub(crate) fn expired(&self) -> Vec<String> {
        let now = std::time::Instant::now();
        lock(&self.instances)
            .iter()
            .filter(|(_, m)| m.lease.is_some_and(|l| l.deadline <= now))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Deletes temporary instances whose client stopped fetching, every second, until the
    /// daemon stops.
    pub(crate) async fn reap_expired(self: Arc<Self>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            for id in self.expired() {
                tracing::info!(
                    "deleting temporary instance {}: its client did not renew the lease",
                    short(&id)
                );
                let me = self.clone();
                let _ = tokio::task::spawn_blocking(move || me.remove(&id)).await;
            }
        }
    }

    /// The newest snapshot of `target` after `after`; renews a temporary instance's lease.
    fn fetch(&self, target: &str, after: u64) -> Reply {
        let id = match self.resolve(target) {
            Ok(id) => id,
            Err(e) => return e.reply(),
        };
        let mut map = lock(&self.instances);
        let Some(m) = map.get_mut(&id) else {
            return Reply::error(ErrorCode::NotFound, format!("instance {id} was deleted"));
        };
        if let Some(lease) = m.lease.as_mut() {
            lease.renew();
        }
        let status = lock(&m.status).to_string();
        let data = lock(&m.data);
        Reply::Snapshot {
            status,
            frame: (data.seq > after).then(|| data.clone()),
        }
    }

    /// Starts an instance (temporary when it has a lease).
    async fn run(self: &Arc<Self>, spec: RunRequest, lease: Option<Lease>) -> Reply {
        let images = match self.request_policy(&spec) {
            Ok(images) => images,
            Err(reply) => return reply,
        };
        // A reference the CLI pulled is local already; a remote CLI's may not be. Either way
        // it is verified here, with this daemon's keys, before anything loads.
        if let Err(e) =
            gadget_image::ensure(&images, &spec.reference, gadget_image::PullPolicy::Missing).await
        {
            return Reply::error(ErrorCode::Failed, gadget_model::error_chain(&e));
        }
        let me = self.clone();
        let saved = SavedInstance {
            id: new_id(),
            created_ms: now_ms(),
            request: spec,
        };
        match tokio::task::spawn_blocking(move || me.start(saved, false, lease)).await {
            Ok(Ok(id)) => Reply::Started { id },
            Ok(Err(e)) => e.reply(),
            Err(e) => Reply::error(ErrorCode::Internal, format!("internal error: {e}")),
        }
    }

    /// The image settings a request runs with: this daemon's. A request may ask for
    /// verification off (`verify_image: Some(false)`) only if the daemon was started with
    /// `--allow-unverified-requests`; it may always ask for it on.
    fn request_policy(&self, spec: &RunRequest) -> Result<gadget_image::ImageConfig, Reply> {
        let mut images = self.images.clone();
        match spec.verify_image {
            None => {}
            Some(true) => images.verify.verify_image = true,
            Some(false) if !images.verify.verify_image => {}
            Some(false) if self.allow_unverified_requests => {
                tracing::warn!(
                    "running {} without signature verification, as the request asks (--allow-unverified-requests)",
                    gadget_model::printable(&spec.reference)
                );
                images.verify.verify_image = false;
            }
            Some(false) => {
                return Err(Reply::error(
                    ErrorCode::BadRequest,
                    format!(
                        "{}: the request turns image signature verification off (--verify-image=false, or operator.oci.verify-image in a manifest), which this daemon does not allow: its own configuration decides (start it with --allow-unverified-requests to let requests do so, or sign the image: gadget image sign)",
                        gadget_model::printable(&spec.reference)
                    ),
                ));
            }
        }
        Ok(images)
    }

    /// Run, list and delete: one request, one reply (the local socket and the cluster API).
    pub(crate) async fn dispatch(self: Arc<Self>, request: Request) -> Reply {
        match request {
            Request::Run { spec } => self.run(spec, None).await,
            Request::RunTemporary {
                spec,
                lease_seconds,
            } => {
                let range = gadget_api::MIN_LEASE_SECONDS..=gadget_api::MAX_LEASE_SECONDS;
                if !range.contains(&lease_seconds) {
                    return Reply::error(
                        ErrorCode::BadRequest,
                        format!(
                            "lease_seconds = {lease_seconds}: give {} to {}",
                            range.start(),
                            range.end()
                        ),
                    );
                }
                let lease = Lease::new(std::time::Duration::from_secs(lease_seconds.into()));
                self.run(spec, Some(lease)).await
            }
            Request::Fetch { target, after } => self.fetch(&target, after),
            Request::List => Reply::Instances {
                instances: self.list(),
            },
            Request::Version => Reply::Version {
                version: gadget_api::VERSION.to_string(),
                protocol: gadget_api::PROTOCOL,
            },
            Request::Delete { targets } => {
                let ids: Result<Vec<String>, ManagerError> =
                    targets.iter().map(|t| self.resolve(t)).collect();
                match ids {
                    Err(e) => e.reply(),
                    Ok(ids) => {
                        let me = self.clone();
                        let done = tokio::task::spawn_blocking(move || {
                            ids.iter().filter_map(|id| me.remove(id)).collect()
                        })
                        .await;
                        Reply::Deleted {
                            ids: done.unwrap_or_default(),
                        }
                    }
                }
            }
            Request::Attach { .. } => Reply::error(
                ErrorCode::BadRequest,
                "attach is only available on the node (gadget attach, through kubectl exec in a cluster)",
            ),
        }
    }
}
