//! The local store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`),
//! readable by skopeo and oras as `oci:<dir>`. Each entry of index.json is one reference
//! (`org.opencontainers.image.ref.name` = the full `registry/repository:tag`).
//!
//! Crash safety: a pull, build or import writes its blobs into a staging directory of its own
//! (`staging/<pid>-<n>/`), each verified (size and digest) before it is kept there. Only
//! [`Store::publish`] touches the layout: under an exclusive lock it renames the staged blobs
//! into `blobs/` and replaces index.json by rename. A pull that fails leaves the store exactly
//! as it was; one that is killed leaves a staging directory, removed by the next `remove`.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use gadget_model::fsutil::{AtomicFile, sync_dir};
use oci_client::manifest::{ImageIndexEntry, OciImageIndex, OciImageManifest};
use sha2::Digest;

use super::layout::is_index;
use super::{ImageError, ImageRef, OCI_INDEX, REF_NAME_ANNOTATION, digest_hex, sha256_digest};

const LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const LOCK_FILE: &str = ".lock";
/// index.json lists references, not content: anything bigger than this is not ours.
const MAX_INDEX_BYTES: u64 = 16 << 20;
/// Blobs one published entry may reach (an index, its manifests, their configs and layers).
const MAX_REACHABLE: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One reference in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl Store {
    /// Opens the store, creating it (root-owned, world-readable) if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, ImageError> {
        let root = root.into();
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| ImageError::io(&blobs, e))?;
        let store = Store { root };
        let layout = store.root.join(LAYOUT_FILE);
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn err(&self, message: impl Into<String>) -> ImageError {
        ImageError::Store {
            path: self.root.display().to_string(),
            message: message.into(),
        }
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(digest)
            .ok_or_else(|| self.err(format!("{digest:?} is not a sha256 digest")))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Whether a blob is present with the expected size (its content was verified on the way in).
    pub fn has_blob(&self, digest: &str, size: u64) -> bool {
        self.blob_path(digest)
            .ok()
            .and_then(|p| fs::metadata(p).ok())
            .is_some_and(|m| m.len() == size)
    }

    /// Reads a blob, refusing it beyond `limit` and re-checking its digest (blobs are small;
    /// a store edited by hand must not feed the loader unverified bytes).
    pub fn read_blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest)?;
        let size = fs::metadata(&path)
            .map_err(|e| self.err(format!("blob {digest} is missing: {e}")))?
            .len();
        if size > limit {
            return Err(ImageError::TooLarge {
                what: format!("blob {digest}"),
                origin: self.root.display().to_string(),
                size,
                limit,
                setting: "limits in the config file",
            });
        }
        let bytes = fs::read(&path).map_err(|e| ImageError::io(&path, e))?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {}", path.display()),
                origin: "the local store (corrupted; remove and pull the image again)".into(),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// A private area for the blobs of one pull, build or import.
    pub fn staging(&self) -> Result<Staging, ImageError> {
        let dir = self.root.join("staging").join(format!(
            "{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
        Ok(Staging {
            dir: Some(dir),
            blobs: Vec::new(),
        })
    }

    /// Makes staged images visible: what each entry reaches is checked first (every blob
    /// present, staged or stored, with exactly the size its descriptor states; staged blobs were
    /// verified against their digest as they arrived), then only those blobs move into the
    /// layout (a staged blob nothing references is dropped), then index.json points each name
    /// at its entry.
    pub fn publish(
        &self,
        mut staging: Staging,
        refs: Vec<(String, ImageIndexEntry)>,
    ) -> Result<(), ImageError> {
        let lock = self.lock()?;
        let mut reached = BTreeSet::new();
        for (name, entry) in &refs {
            self.check_complete(&staging, name, entry, &mut reached)?;
        }
        let dir = staging.dir.take().unwrap_or_default();
        for digest in std::mem::take(&mut staging.blobs) {
            if !reached.contains(&digest) {
                continue;
            }
            let dest = self.blob_path(&digest)?;
            let src = dir.join(digest_hex(&digest).unwrap_or_default());
            if dest.exists() {
                continue;
            }
            fs::rename(&src, &dest).map_err(|e| ImageError::io(&dest, e))?;
        }
        // The blobs' renames are durable before index.json names them.
        let blobs = self.root.join("blobs/sha256");
        sync_dir(&blobs).map_err(|e| ImageError::io(&blobs, e))?;
        let _ = fs::remove_dir_all(&dir);
        let mut index = self.read_index()?;
        for (name, entry) in refs {
            add_ref(&mut index, &name, entry);
        }
        self.write_index(&index)?;
        drop(lock);
        Ok(())
    }

    /// Walks what `entry` reaches, staged or stored, into `reached`: the entry itself, each
    /// present platform manifest of an index (a pull stores one platform; the others are
    /// absent, but one must be there), and each manifest's config and layers (all required).
    /// Every blob found must have its descriptor's size. A concurrent `remove` may have
    /// collected a blob a pull skipped because it was there: that is reported as missing.
    fn check_complete(
        &self,
        staging: &Staging,
        name: &str,
        entry: &ImageIndexEntry,
        reached: &mut BTreeSet<String>,
    ) -> Result<(), ImageError> {
        let gone = |digest: &str| {
            self.err(format!(
                "blob {digest} is missing from the image being stored as {name} (removed concurrently?); run the command again"
            ))
        };
        // (media type, digest, size, required, depth)
        let mut todo = vec![(
            entry.media_type.clone(),
            entry.digest.clone(),
            entry.size,
            true,
            0usize,
        )];
        let mut visited = 0usize;
        while let Some((media_type, digest, size, required, depth)) = todo.pop() {
            visited += 1;
            // What index.json or an index points at must be an index or a manifest: a blob of
            // another type would not be walked here, so its descriptors' sizes would go
            // unchecked, yet loading the image reads it as a manifest (found by the
            // archive_import fuzz target: one flipped bit in a media type).
            let container = depth == 0 || !required;
            if container
                && !is_index(&media_type)
                && media_type != super::OCI_MANIFEST
                && media_type != super::DOCKER_MANIFEST
            {
                return Err(self.err(format!(
                    "{name}: blob {digest} has media type {media_type:?}, neither an image index nor a manifest"
                )));
            }
            if visited > MAX_REACHABLE || depth > 2 {
                return Err(self.err(format!(
                    "{name}: more than {MAX_REACHABLE} blobs or indexes nested deeper than 2; not a gadget image"
                )));
            }
            let Some(actual) = staging.blob_len(self, &digest) else {
                if required {
                    return Err(gone(&digest));
                }
                continue;
            };
            if u64::try_from(size).ok() != Some(actual) {
                return Err(ImageError::SizeMismatch {
                    what: format!("blob {digest} ({media_type})"),
                    origin: name.to_string(),
                    expected: u64::try_from(size).unwrap_or(0),
                    actual,
                });
            }
            if !reached.insert(digest.clone()) {
                continue;
            }
            if is_index(&media_type) {
                let bytes = staging.read_blob(self, &digest, MAX_INDEX_BYTES)?;
                let index: OciImageIndex = serde_json::from_slice(&bytes)
                    .map_err(|e| self.err(format!("blob {digest} is not an image index: {e}")))?;
                if !index
                    .manifests
                    .iter()
                    .any(|m| staging.blob_len(self, &m.digest).is_some())
                {
                    return Err(gone("of any platform manifest"));
                }
                todo.extend(
                    index
                        .manifests
                        .into_iter()
                        .map(|m| (m.media_type, m.digest, m.size, false, depth + 1)),
                );
            } else if media_type == super::OCI_MANIFEST || media_type == super::DOCKER_MANIFEST {
                let bytes = staging.read_blob(self, &digest, MAX_INDEX_BYTES)?;
                let manifest: OciImageManifest = serde_json::from_slice(&bytes)
                    .map_err(|e| self.err(format!("blob {digest} is not a manifest: {e}")))?;
                todo.extend(
                    std::iter::once(manifest.config)
                        .chain(manifest.layers)
                        .map(|d| (d.media_type, d.digest, d.size, true, depth + 1)),
                );
            }
        }
        Ok(())
    }

    /// The references in index.json.
    pub fn entries(&self) -> Result<Vec<Entry>, ImageError> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|m| {
                let annotations = m.annotations.unwrap_or_default();
                Some(Entry {
                    name: annotations.get(REF_NAME_ANNOTATION)?.clone(),
                    media_type: m.media_type,
                    digest: m.digest,
                    size: u64::try_from(m.size).ok()?,
                    annotations,
                })
            })
            .collect())
    }

    /// The entry a reference names: by full name, or by digest (of a stored index or of one of
    /// its manifests) within the same repository.
    pub fn resolve(&self, r: &ImageRef) -> Result<Option<Entry>, ImageError> {
        let entries = self.entries()?;
        let Some(digest) = &r.digest else {
            let name = r.to_string();
            return Ok(entries.into_iter().find(|e| e.name == name));
        };
        let repo = r.name();
        for e in entries.into_iter().filter(|e| repo_of(&e.name) == repo) {
            if &e.digest == digest {
                return Ok(Some(e));
            }
            if is_index(&e.media_type) {
                let index: OciImageIndex = self.read_json(&e.digest, u64::MAX)?;
                if let Some(m) = index.manifests.iter().find(|m| &m.digest == digest) {
                    return Ok(Some(Entry {
                        name: r.to_string(),
                        media_type: m.media_type.clone(),
                        digest: m.digest.clone(),
                        size: u64::try_from(m.size).unwrap_or(0),
                        annotations: Default::default(),
                    }));
                }
            }
        }
        Ok(None)
    }

    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        digest: &str,
        limit: u64,
    ) -> Result<T, ImageError> {
        let bytes = self.read_blob(digest, limit.min(MAX_INDEX_BYTES))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.err(format!("blob {digest} is not valid JSON: {e}")))
    }

    /// Points `name` at a stored manifest or index (whose blobs must all be present already):
    /// the one step that makes an image visible.
    pub fn set_ref(&self, name: &str, entry: ImageIndexEntry) -> Result<(), ImageError> {
        let lock = self.lock()?;
        self.set_ref_locked(name, entry, &lock)
    }

    fn set_ref_locked(
        &self,
        name: &str,
        entry: ImageIndexEntry,
        _lock: &Lock,
    ) -> Result<(), ImageError> {
        let mut index = self.read_index()?;
        add_ref(&mut index, name, entry);
        self.write_index(&index)
    }

    /// Removes a reference; returns whether it existed. Blobs nothing refers to any more go too.
    pub fn remove_ref(&self, name: &str) -> Result<bool, ImageError> {
        let lock = self.lock()?;
        let mut index = self.read_index()?;
        let before = index.manifests.len();
        index
            .manifests
            .retain(|m| ref_name(m).is_none_or(|n| n != name));
        let removed = index.manifests.len() != before;
        if removed {
            self.write_index(&index)?;
        }
        self.collect_garbage(&index, &lock)?;
        Ok(removed)
    }

    /// Every blob reachable from index.json.
    pub fn reachable(&self, index: &OciImageIndex) -> Result<BTreeSet<String>, ImageError> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<(String, String)> = index
            .manifests
            .iter()
            .map(|m| (m.media_type.clone(), m.digest.clone()))
            .collect();
        while let Some((media_type, digest)) = todo.pop() {
            if !seen.insert(digest.clone()) || !self.blob_path(&digest)?.exists() {
                continue;
            }
            // Only manifests and indexes lead further; layers are never parsed.
            if is_index(&media_type) {
                let i: OciImageIndex = self.read_json(&digest, u64::MAX)?;
                todo.extend(i.manifests.into_iter().map(|m| (m.media_type, m.digest)));
            } else if media_type == super::OCI_MANIFEST || media_type == super::DOCKER_MANIFEST {
                let m: OciImageManifest = self.read_json(&digest, u64::MAX)?;
                seen.insert(m.config.digest);
                seen.extend(m.layers.into_iter().map(|l| l.digest));
            }
        }
        Ok(seen)
    }

    fn collect_garbage(&self, index: &OciImageIndex, _lock: &Lock) -> Result<(), ImageError> {
        let keep = self.reachable(index)?;
        let dir = self.root.join("blobs/sha256");
        for f in fs::read_dir(&dir).map_err(|e| ImageError::io(&dir, e))? {
            let f = f.map_err(|e| ImageError::io(&dir, e))?;
            let name = f.file_name().to_string_lossy().into_owned();
            if keep.contains(&format!("sha256:{name}")) {
                continue;
            }
            fs::remove_file(f.path()).map_err(|e| ImageError::io(f.path(), e))?;
        }
        // Staging areas of processes that died (killed mid-pull); live ones are in use.
        let staging = self.root.join("staging");
        if let Ok(dirs) = fs::read_dir(&staging) {
            for d in dirs.flatten() {
                let name = d.file_name().to_string_lossy().into_owned();
                let pid = name.split('-').next().unwrap_or("");
                if !Path::new("/proc").join(pid).exists() || pid.is_empty() {
                    let _ = fs::remove_dir_all(d.path());
                }
            }
        }
        Ok(())
    }

    pub fn read_index(&self) -> Result<OciImageIndex, ImageError> {
        let path = self.root.join(INDEX_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(empty_index());
            }
            Err(e) => return Err(ImageError::io(&path, e)),
        };
        if bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(self.err("index.json is larger than 16 MiB"));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            self.err(format!(
                "index.json is not an OCI image index ({e}); fix or remove the file"
            ))
        })
    }

    fn write_index(&self, index: &OciImageIndex) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| self.err(format!("encoding index.json: {e}")))?;
        write_atomic(&self.root.join(INDEX_FILE), &bytes)
    }

    fn lock(&self) -> Result<Lock, ImageError> {
        let path = self.root.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| ImageError::io(&path, e))?;
        // An flock: released when the file closes.
        file.lock().map_err(|e| ImageError::io(&path, e))?;
        Ok(Lock(file))
    }
}

/// Held while index.json is read-modified-written.
struct Lock(#[allow(dead_code)] File);

static TMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn empty_index() -> OciImageIndex {
    OciImageIndex {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: Vec::new(),
        artifact_type: None,
        annotations: None,
    }
}

/// Points `name` at `entry` in an index, replacing what it named before.
fn add_ref(index: &mut OciImageIndex, name: &str, mut entry: ImageIndexEntry) {
    index
        .manifests
        .retain(|m| ref_name(m).is_none_or(|n| n != name));
    entry
        .annotations
        .get_or_insert_with(Default::default)
        .insert(REF_NAME_ANNOTATION.to_string(), name.to_string());
    entry.platform = None;
    index.manifests.push(entry);
}

fn ref_name(m: &ImageIndexEntry) -> Option<&str> {
    m.annotations
        .as_ref()?
        .get(REF_NAME_ANNOTATION)
        .map(String::as_str)
}

/// `registry/repository` of a stored full name (`…:tag` or `…@digest`).
pub fn repo_of(name: &str) -> &str {
    let name = name.split_once('@').map_or(name, |(n, _)| n);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].find(':') {
        Some(i) => &name[..slash + i],
        None => name,
    }
}

/// Blobs verified and waiting for [`Store::publish`]; dropped unpublished, they vanish.
pub struct Staging {
    dir: Option<PathBuf>,
    blobs: Vec<String>,
}

impl Staging {
    /// A blob staged here, or else already in the store; verified either way.
    pub fn read_blob(
        &self,
        store: &Store,
        digest: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ImageError> {
        if self.blobs.iter().any(|b| b == digest) {
            let path = self
                .dir
                .as_deref()
                .unwrap_or(Path::new(""))
                .join(digest_hex(digest).unwrap_or_default());
            let bytes = fs::read(&path).map_err(|e| ImageError::io(&path, e))?;
            if bytes.len() as u64 > limit {
                return Err(store.err(format!("staged blob {digest} is larger than {limit} bytes")));
            }
            return Ok(bytes);
        }
        store.read_blob(digest, limit)
    }

    /// Whether a blob is staged here or stored.
    pub fn has(&self, store: &Store, digest: &str) -> bool {
        self.blob_len(store, digest).is_some()
    }

    /// The size of a blob staged here, or else in the store; `None` when neither has it.
    fn blob_len(&self, store: &Store, digest: &str) -> Option<u64> {
        let path = if self.blobs.iter().any(|b| b == digest) {
            self.dir.as_deref()?.join(digest_hex(digest)?)
        } else {
            store.blob_path(digest).ok()?
        };
        fs::metadata(path).ok().map(|m| m.len())
    }

    /// Stages bytes whose digest is computed here; returns it.
    pub fn put_blob(&mut self, bytes: &[u8]) -> Result<String, ImageError> {
        let digest = sha256_digest(bytes);
        let mut w = self.blob_writer(bytes.len() as u64, "blob", "")?;
        w.write(bytes)?;
        w.commit(&digest, bytes.len() as u64)?;
        Ok(digest)
    }

    /// A writer for a blob arriving in pieces, refused beyond `limit` bytes; nothing is staged
    /// until `commit` verified it.
    pub fn blob_writer(
        &mut self,
        limit: u64,
        what: &str,
        origin: &str,
    ) -> Result<BlobWriter<'_>, ImageError> {
        let dir = self.dir.clone().unwrap_or_default();
        let file = AtomicFile::new(&dir, 0o644).map_err(|e| ImageError::io(&dir, e))?;
        Ok(BlobWriter {
            file,
            dir,
            staged: &mut self.blobs,
            hasher: sha2::Sha256::new(),
            written: 0,
            limit,
            what: what.to_string(),
            origin: origin.to_string(),
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// A blob on its way into a staging area.
pub struct BlobWriter<'a> {
    file: AtomicFile,
    dir: PathBuf,
    staged: &'a mut Vec<String>,
    hasher: sha2::Sha256,
    written: u64,
    limit: u64,
    what: String,
    origin: String,
}

impl BlobWriter<'_> {
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), ImageError> {
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(ImageError::SizeMismatch {
                what: self.what.clone(),
                origin: self.origin.clone(),
                expected: self.limit,
                actual: self.written,
            });
        }
        self.hasher.update(chunk);
        self.file
            .file()
            .write_all(chunk)
            .map_err(|e| ImageError::io(self.file.temp_path(), e))
    }

    /// Verifies size and digest, then moves the blob into place.
    pub fn commit(mut self, digest: &str, size: u64) -> Result<(), ImageError> {
        if self.written != size {
            return Err(ImageError::SizeMismatch {
                what: self.what.clone(),
                origin: self.origin.clone(),
                expected: size,
                actual: self.written,
            });
        }
        let actual = format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        );
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: self.what.clone(),
                origin: self.origin.clone(),
                expected: digest.to_string(),
                actual,
            });
        }
        let hex = digest_hex(digest).ok_or_else(|| {
            ImageError::invalid(&self.origin, format!("{digest:?} is not a sha256 digest"))
        })?;
        let dest = self.dir.join(hex);
        self.file
            .commit(&dest)
            .map_err(|e| ImageError::io(&dest, e))?;
        self.staged.push(digest.to_string());
        Ok(())
    }
}

/// index.json and oci-layout: [`gadget_model::fsutil::write_atomic`], readable by all.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    gadget_model::fsutil::write_atomic(path, bytes, 0o644).map_err(|e| ImageError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_entry(digest: &str, size: usize, media_type: &str) -> ImageIndexEntry {
        ImageIndexEntry {
            media_type: media_type.into(),
            digest: digest.into(),
            size: size as i64,
            platform: None,
            annotations: None,
            artifact_type: None,
        }
    }

    #[test]
    fn blobs_are_verified_before_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let good = sha256_digest(b"hello");
        let mut st = s.staging().unwrap();
        let mut w = st.blob_writer(100, "layer", "test").unwrap();
        w.write(b"hellO").unwrap();
        let e = w.commit(&good, 5).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        let mut w = st.blob_writer(100, "layer", "test").unwrap();
        w.write(b"hell").unwrap();
        assert!(
            w.commit(&good, 5)
                .unwrap_err()
                .to_string()
                .contains("4 bytes")
        );
        let mut w = st.blob_writer(3, "layer", "test").unwrap();
        assert!(w.write(b"hello").is_err());
        drop(w);
        assert_eq!(st.put_blob(b"hello").unwrap(), good);
        // Staged, not stored: dropping the staging area leaves the store as it was.
        drop(st);
        assert!(!s.has_blob(&good, 5));
        assert_eq!(fs::read_dir(dir.path().join("staging")).unwrap().count(), 0);
        // A bare blob is not an image: what index.json names must be an index or a manifest.
        let mut st = s.staging().unwrap();
        st.put_blob(b"hello").unwrap();
        let err = s
            .publish(
                st,
                vec![(
                    "r.io/blob:1".into(),
                    index_entry(&good, 5, "application/octet-stream"),
                )],
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("neither an image index nor a manifest"),
            "{err}"
        );
        assert!(!s.has_blob(&good, 5));
        let mut st = s.staging().unwrap();
        st.put_blob(b"hello").unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{good}","size":5}},"layers":[]}}"#
        );
        let m = st.put_blob(manifest.as_bytes()).unwrap();
        let entry = index_entry(&m, manifest.len(), crate::OCI_MANIFEST);
        s.publish(st, vec![("r.io/blob:1".into(), entry)]).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.contains(&digest_hex(&good).unwrap().to_string()));
        assert_eq!(s.read_blob(&good, 10).unwrap(), b"hello");
        fs::write(s.blob_path(&good).unwrap(), b"jello").unwrap();
        assert!(s.read_blob(&good, 10).is_err());
    }

    #[test]
    fn an_index_with_one_stored_platform_publishes_but_a_missing_layer_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut st = s.staging().unwrap();
        let cfg = st.put_blob(b"name: x").unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{cfg}","size":7}},"layers":[]}}"#
        );
        let m = st.put_blob(manifest.as_bytes()).unwrap();
        let other = sha256_digest(b"arm64 manifest, not pulled");
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{0}","digest":"{m}","size":{1}}},{{"mediaType":"{0}","digest":"{other}","size":9}}]}}"#,
            crate::OCI_MANIFEST,
            manifest.len()
        );
        let i = st.put_blob(index.as_bytes()).unwrap();
        let entry = index_entry;
        s.publish(
            st,
            vec![("r.io/a:1".into(), entry(&i, index.len(), OCI_INDEX))],
        )
        .unwrap();
        let broken = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{other}","size":9}},"layers":[]}}"#
        );
        let mut st = s.staging().unwrap();
        let b = st.put_blob(broken.as_bytes()).unwrap();
        let err = s
            .publish(
                st,
                vec![(
                    "r.io/b:1".into(),
                    entry(&b, broken.len(), crate::OCI_MANIFEST),
                )],
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains(&other), "{err}");
        assert_eq!(
            s.entries().unwrap().len(),
            1,
            "the broken image is not listed"
        );
    }

    #[test]
    fn descriptor_sizes_are_verified_and_unreferenced_blobs_stay_out() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let entry = |d: &str, n: usize| index_entry(d, n, crate::OCI_MANIFEST);
        let manifest_with_config_size = |st: &mut Staging, size: usize| {
            let cfg = st.put_blob(b"name: x").unwrap();
            let m = format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{cfg}","size":{size}}},"layers":[]}}"#
            );
            (st.put_blob(m.as_bytes()).unwrap(), m.len())
        };
        // The config's descriptor says 1 byte; the blob has 7.
        let mut st = s.staging().unwrap();
        let (m, n) = manifest_with_config_size(&mut st, 1);
        let err = s
            .publish(st, vec![("r.io/a:1".into(), entry(&m, n))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("7 bytes where the descriptor says 1"), "{err}");
        assert!(s.entries().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
        // The index entry's own size is checked as well.
        let mut st = s.staging().unwrap();
        let (m, n) = manifest_with_config_size(&mut st, 7);
        let err = s
            .publish(st, vec![("r.io/a:1".into(), entry(&m, n + 1))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("where the descriptor says"), "{err}");
        // Right sizes publish; a staged blob nothing references is not kept.
        let mut st = s.staging().unwrap();
        let (m, n) = manifest_with_config_size(&mut st, 7);
        let stray = st.put_blob(b"unreferenced").unwrap();
        s.publish(st, vec![("r.io/a:1".into(), entry(&m, n))])
            .unwrap();
        assert!(
            !s.has_blob(&stray, 12),
            "an unreferenced blob was published"
        );
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            2
        );
    }

    #[test]
    fn refs_replace_and_garbage_is_collected() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut st = s.staging().unwrap();
        let cfg = st.put_blob(b"name: x").unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"c","digest":"{cfg}","size":7}},"layers":[]}}"#,
            crate::OCI_MANIFEST
        );
        let m = st.put_blob(manifest.as_bytes()).unwrap();
        let stray = st.put_blob(b"unreferenced").unwrap();
        let entry = |d: &str, n: usize| index_entry(d, n, crate::OCI_MANIFEST);
        s.publish(st, vec![("r.io/a:1".into(), entry(&m, manifest.len()))])
            .unwrap();
        s.set_ref("r.io/a:2", entry(&m, manifest.len())).unwrap();
        s.set_ref("r.io/a:1", entry(&m, manifest.len())).unwrap();
        let names: Vec<_> = s.entries().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, vec!["r.io/a:2", "r.io/a:1"]);
        let by_digest = ImageRef::parse(&format!("r.io/a@{m}"), "x").unwrap();
        assert_eq!(s.resolve(&by_digest).unwrap().unwrap().digest, m);
        assert!(s.remove_ref("r.io/a:1").unwrap());
        assert!(!s.has_blob(&stray, 12), "unreferenced blob collected");
        assert!(s.has_blob(&cfg, 7), "still referenced by r.io/a:2");
        assert!(s.remove_ref("r.io/a:2").unwrap());
        assert!(!s.has_blob(&cfg, 7));
        assert!(!s.remove_ref("r.io/a:2").unwrap());
        assert_eq!(repo_of("r.io:5000/a/b:t"), "r.io:5000/a/b");
        assert_eq!(repo_of(&format!("r.io:5000/a@{m}")), "r.io:5000/a");
    }
}
