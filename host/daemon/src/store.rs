//! Persisted instances: one JSON file per instance in `<state-dir>/instances/`, written
//! atomically (temporary file, fsync, rename), so a crash never leaves a half-written spec.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use gadget_api::RunRequest;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedInstance {
    pub id: String,
    pub created_ms: u64,
    pub request: RunRequest,
}

/// A saved file that could not be read back. When its file name is an instance ID, its pins
/// may still be in bpffs with programs attached: the daemon lists it so it can be deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    /// The instance ID the file name carries, if it is one.
    pub id: Option<String>,
    pub path: PathBuf,
    pub reason: String,
    pub modified_ms: u64,
}

/// What [`Store::load_all`] found.
#[derive(Debug, Default, PartialEq)]
pub struct Loaded {
    pub instances: Vec<SavedInstance>,
    pub unreadable: Vec<Unreadable>,
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(state_dir: &Path) -> std::io::Result<Store> {
        let dir = state_dir.join("instances");
        // Specs carry image names, params and annotations: root's business only.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(Store { dir })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn save(&self, inst: &SavedInstance) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(inst).map_err(std::io::Error::other)?;
        gadget_model::fsutil::write_atomic(&self.path(&inst.id), &bytes, 0o600)
    }

    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every saved instance, and the files that could not be read (never deleted here: the
    /// user decides, with `gadget delete`).
    pub fn load_all(&self) -> Loaded {
        let mut out = Loaded::default();
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
                // The ID names files and bpffs pins: only the daemon's own form is accepted,
                // and it must be the one the file is named after.
                Ok(i) if valid_id(&i.id) && path.file_stem() == Some(i.id.as_ref()) => {
                    out.instances.push(i)
                }
                Ok(i) => out.unreadable.push(unreadable(
                    &path,
                    format!("{:?} is not this file's instance ID (32 hex digits)", i.id),
                )),
                Err(e) => out.unreadable.push(unreadable(&path, e)),
            }
        }
        out.instances.sort_by_key(|i| (i.created_ms, i.id.clone()));
        out.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

fn unreadable(path: &Path, reason: String) -> Unreadable {
    let modified_ms = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    Unreadable {
        id: path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| valid_id(s))
            .map(str::to_string),
        path: path.to_path_buf(),
        reason,
        modified_ms,
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
        let corrupt = dir
            .path()
            .join("instances/fedcba9876543210fedcba9876543210.json");
        std::fs::write(&corrupt, b"{\"id\": 3").unwrap();
        let loaded = store.load_all();
        assert_eq!(loaded.instances, vec![good.clone()]);
        assert!(
            dir.path().join("instances/garbage.json").exists(),
            "left in place for the user"
        );
        // The corrupt one keeps its ID (from its name) so its pins can be found and deleted.
        let ids: Vec<Option<&str>> = loaded.unreadable.iter().map(|u| u.id.as_deref()).collect();
        assert_eq!(ids, [None, Some("fedcba9876543210fedcba9876543210"), None]);
        let mode = |p: &Path| {
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
                & 0o777
        };
        assert_eq!(
            mode(&dir.path().join(format!("instances/{}.json", good.id))),
            0o600
        );
        assert_eq!(mode(&dir.path().join("instances")), 0o700);
    }

    #[test]
    fn saved_instances_round_trip_in_creation_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let inst = |id: &str, created_ms, reference: &str| SavedInstance {
            id: id.into(),
            created_ms,
            request: RunRequest {
                reference: reference.into(),
                interval_ms: 250,
                ..Default::default()
            },
        };
        let late = inst("ffffffffffffffffffffffffffffffff", 2, "late");
        let mut early = inst("00000000000000000000000000000000", 1, "first");
        store.save(&late).unwrap();
        store.save(&early).unwrap();
        // Saving again replaces the file: one instance, the new spec, no temporaries left.
        early.request.reference = "second".into();
        store.save(&early).unwrap();
        assert_eq!(
            store.load_all().instances,
            vec![early.clone(), late.clone()]
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("instances"))
                .unwrap()
                .count(),
            2
        );
        // Reopening finds them; removing twice is not an error.
        let reopened = Store::open(dir.path()).unwrap();
        reopened.remove(&early.id).unwrap();
        reopened.remove(&early.id).unwrap();
        assert_eq!(
            reopened.load_all(),
            Loaded {
                instances: vec![late],
                unreadable: vec![]
            }
        );
    }

    #[test]
    fn only_the_daemons_own_ids_are_valid() {
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "../../../../../../../../../../etc",
            "0123456789abcdef0123456789abcdeg",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
