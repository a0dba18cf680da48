//! Persisted instances: one JSON file per instance in `<state-dir>/instances/`, written
//! atomically (temporary file, fsync, rename), so a crash never leaves a half-written spec.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::api::RunRequest;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedInstance {
    pub id: String,
    pub created_ms: u64,
    pub request: RunRequest,
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(state_dir: &Path) -> std::io::Result<Store> {
        let dir = state_dir.join("instances");
        std::fs::create_dir_all(&dir)?;
        Ok(Store { dir })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn save(&self, inst: &SavedInstance) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{}.tmp", inst.id));
        let bytes = serde_json::to_vec_pretty(inst).map_err(std::io::Error::other)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path(&inst.id))?;
        // The rename itself must reach the disk too.
        std::fs::File::open(&self.dir)?.sync_all()
    }

    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every saved instance; unreadable files are reported and skipped, never deleted.
    pub fn load_all(&self) -> Vec<SavedInstance> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<SavedInstance>(&b).map_err(|e| e.to_string())
                }) {
                // The ID names files and bpffs pins: only the daemon's own form is accepted.
                Ok(i) if !valid_id(&i.id) => tracing::error!(
                    "skipping {}: {:?} is not an instance ID (32 hex digits)",
                    path.display(),
                    i.id
                ),
                Ok(i) => out.push(i),
                Err(e) => tracing::error!(
                    "skipping {}: {e} (left in place; fix or delete it)",
                    path.display()
                ),
            }
        }
        out.sort_by_key(|i| (i.created_ms, i.id.clone()));
        out
    }
}

/// Instance IDs are 32 lowercase hex digits (what the daemon generates).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_saved_specs_are_skipped_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let good = SavedInstance {
            id: "0123456789abcdef0123456789abcdef".into(),
            created_ms: 1,
            request: RunRequest {
                reference: "/g".into(),
                interval_ms: 1000,
                ..Default::default()
            },
        };
        store.save(&good).unwrap();
        let mut evil = good.clone();
        evil.id = "../../../etc".into();
        std::fs::write(
            dir.path().join("instances/evil.json"),
            serde_json::to_vec(&evil).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("instances/garbage.json"), b"{not json").unwrap();
        assert_eq!(store.load_all(), vec![good]);
        assert!(
            dir.path().join("instances/garbage.json").exists(),
            "left in place for the user"
        );
    }
}
