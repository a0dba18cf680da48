//! Blob transfer progress, reported to whoever watches (the CLI draws a line on a terminal):
//! this crate returns data and never prints.

use std::sync::Arc;

/// One step of a blob transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer<'a> {
    /// `done` of `total` bytes of the blob `digest` moved; `verb` is "pulling" or "pushing".
    Moving {
        verb: &'a str,
        digest: &'a str,
        done: u64,
        total: u64,
    },
    /// The blob reported last is complete.
    Finished,
}

type Report = dyn Fn(Transfer<'_>) + Send + Sync;

/// Where transfer steps go; none by default (a daemon, a pipe: nobody watches).
#[derive(Clone, Default)]
pub struct ProgressSink(Option<Arc<Report>>);

impl ProgressSink {
    pub fn new(f: impl Fn(Transfer<'_>) + Send + Sync + 'static) -> Self {
        ProgressSink(Some(Arc::new(f)))
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProgressSink(set)"
        } else {
            "ProgressSink(none)"
        })
    }
}

/// Settings compare equal whoever watches their transfers.
impl PartialEq for ProgressSink {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A session's reporter: sends `Finished` only after something moved.
pub(crate) struct Progress {
    sink: ProgressSink,
    active: bool,
}

impl Progress {
    pub(crate) fn new(sink: &ProgressSink) -> Self {
        Progress {
            sink: sink.clone(),
            active: false,
        }
    }

    pub(crate) fn update(&mut self, verb: &str, digest: &str, done: u64, total: u64) {
        if let Some(f) = &self.sink.0 {
            self.active = true;
            f(Transfer::Moving {
                verb,
                digest,
                done,
                total,
            });
        }
    }

    pub(crate) fn done(&mut self) {
        if let (true, Some(f)) = (self.active, &self.sink.0) {
            f(Transfer::Finished);
            self.active = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn finished_follows_only_a_transfer() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let sink = ProgressSink::new(move |t| {
            log.lock().unwrap().push(match t {
                Transfer::Moving { done, total, .. } => format!("{done}/{total}"),
                Transfer::Finished => "end".to_string(),
            })
        });
        let mut p = Progress::new(&sink);
        p.done();
        p.update("pulling", "sha256:ab", 1, 2);
        p.update("pulling", "sha256:ab", 2, 2);
        p.done();
        p.done();
        assert_eq!(*seen.lock().unwrap(), ["1/2", "2/2", "end"]);
        // Nobody watching: nothing is built or sent.
        let mut quiet = Progress::new(&ProgressSink::default());
        quiet.update("pushing", "sha256:cd", 1, 1);
        assert!(!quiet.active);
    }
}
