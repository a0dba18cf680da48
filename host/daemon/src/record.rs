//! One managed instance as the daemon keeps it: its saved request, its status, its thread, and
//! the frames attached viewers see.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;

use tokio::sync::broadcast;

use gadget_api::{InstanceInfo, SnapshotFrame};
use gadget_model::datasource::{DatasourceSpec, Publication};
use gadget_operators::{Operator, OperatorError};

use crate::store::SavedInstance;

/// The last frame and the live stream of an instance's terminal view.
#[derive(Clone)]
pub(crate) struct Frames {
    pub(crate) last: Arc<Mutex<String>>,
    pub(crate) live: broadcast::Sender<String>,
}

/// The printer's output in the daemon: each flushed frame goes to attached viewers.
pub(crate) struct FrameSink {
    pub(crate) frames: Frames,
    pub(crate) buf: Vec<u8>,
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

/// An instance's latest snapshot as data (what `Request::Fetch` answers).
pub(crate) type DataSlot = Arc<Mutex<SnapshotFrame>>;

pub(crate) fn empty_data() -> DataSlot {
    Arc::new(Mutex::new(SnapshotFrame {
        seq: 0,
        datasources: Vec::new(),
        publications: Vec::new(),
    }))
}

/// The operator that keeps [`DataSlot`] current: every datasource's declaration and the last
/// snapshot's publications (all datasources: the client picks what it shows).
pub(crate) struct DataSink(pub(crate) DataSlot);

impl Operator for DataSink {
    fn start(&mut self, datasources: &[DatasourceSpec]) -> Result<(), OperatorError> {
        lock(&self.0).datasources = datasources.to_vec();
        Ok(())
    }

    fn publish(&mut self, publications: &[Publication]) -> Result<(), OperatorError> {
        let mut slot = lock(&self.0);
        slot.seq += 1;
        slot.publications = publications.to_vec();
        Ok(())
    }
}

/// A temporary instance's lease: the daemon deletes the instance once `deadline` passes; each
/// fetch by its client moves the deadline `duration` ahead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease {
    pub(crate) duration: std::time::Duration,
    pub(crate) deadline: std::time::Instant,
}

impl Lease {
    pub(crate) fn new(duration: std::time::Duration) -> Lease {
        Lease {
            duration,
            deadline: std::time::Instant::now() + duration,
        }
    }

    pub(crate) fn renew(&mut self) {
        self.deadline = std::time::Instant::now() + self.duration;
    }
}

/// What an instance is doing: `gadget list`'s STATUS column (its text is the wire format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceStatus {
    /// Loading and attaching; `run` has not answered yet.
    Starting,
    Running,
    /// Its loop ended normally (a timeout).
    Stopped,
    /// It failed to start or stopped on an error; listed until deleted, so the user sees why.
    Failed(String),
}

impl std::fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstanceStatus::Starting => f.write_str("Starting"),
            InstanceStatus::Running => f.write_str("Running"),
            InstanceStatus::Stopped => f.write_str("Stopped"),
            InstanceStatus::Failed(why) => write!(f, "Failed: {why}"),
        }
    }
}

pub(crate) struct Managed {
    pub(crate) saved: SavedInstance,
    pub(crate) status: Arc<Mutex<InstanceStatus>>,
    pub(crate) stop: Option<mpsc::Sender<()>>,
    pub(crate) thread: Option<JoinHandle<()>>,
    pub(crate) frames: Frames,
    pub(crate) data: DataSlot,
    /// Some for a temporary instance (a foreground cluster run): never saved, deleted when the
    /// lease runs out.
    pub(crate) lease: Option<Lease>,
}

impl Managed {
    pub(crate) fn info(&self) -> InstanceInfo {
        let r = &self.saved.request;
        InstanceInfo {
            id: self.saved.id.clone(),
            name: r.name.clone().unwrap_or_default(),
            tags: r.tags.clone(),
            gadget: r.reference.clone(),
            status: lock(&self.status).to_string(),
            created_ms: self.saved.created_ms,
        }
    }

    /// Stops the instance's thread and waits for it (its programs stay pinned).
    pub(crate) fn stop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::InstanceStatus;

    /// The text is what `gadget list` and older clients read: it must not change.
    #[test]
    fn instance_status_text_is_the_wire_format() {
        assert_eq!(InstanceStatus::Starting.to_string(), "Starting");
        assert_eq!(InstanceStatus::Running.to_string(), "Running");
        assert_eq!(InstanceStatus::Stopped.to_string(), "Stopped");
        assert_eq!(
            InstanceStatus::Failed("attach: no such tracepoint".into()).to_string(),
            "Failed: attach: no such tracepoint"
        );
    }
}
