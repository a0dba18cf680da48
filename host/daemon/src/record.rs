//! One managed instance as the daemon keeps it: its saved request, its status, its thread, and
//! the frames attached viewers see.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;

use tokio::sync::broadcast;

use gadget_api::InstanceInfo;

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
