//! `gadget image export|import`: one image as an OCI image layout in a tar file, the format
//! `skopeo copy … oci-archive:` and IG's `image export` use. An imported archive is hostile
//! input: only `oci-layout`, `index.json` and `blobs/sha256/<hex>` are read, each blob is
//! verified against its name and capped in size, links are refused, and references appear in
//! the store only once everything they point to is verified, each blob's size against its
//! descriptor too ([`Store::publish`]); blobs the index does not reach are not kept.
//!
//! Signatures travel with the image: an export carries the image's signature tags (cosign's
//! `sha256-<hex>.sig` and the referrers tag `sha256-<hex>`, see [`super::signatures`]) as more
//! entries of its index.json, and an import stores those of each image beside it, under the
//! image's repository. With `verify-image` on, an import is refused unless a trusted key signs
//! each image (read from the staging area before anything is published, so a refusal leaves
//! the store as it was); `image import --trust` vouches for the archive instead.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use gadget_model::fsutil::{AtomicFile, parent_dir};
use oci_client::manifest::{ImageIndexEntry, OciImageIndex};

use super::layout::{LocalImage, gadget_layers};
use super::signatures::{self, StoreSource};
use super::store::{self, Entry, Store, repo_of};
use super::{ImageConfig, ImageError, ImageRef, REF_NAME_ANNOTATION, digest_hex};

const MAX_ENTRIES: usize = 10_000;
const MAX_INDEX_BYTES: u64 = 1 << 20;

/// Writes the image `r` to `out` (written to a temporary name, then renamed).
pub fn export(
    cfg: &ImageConfig,
    store: &Store,
    r: &ImageRef,
    out: &Path,
) -> Result<(), ImageError> {
    let entry = store
        .resolve(r)?
        .ok_or_else(|| ImageError::NotLocal(r.to_string(), store.root().display().to_string()))?;
    let named = |name: String, e: &Entry| ImageIndexEntry {
        media_type: e.media_type.clone(),
        digest: e.digest.clone(),
        size: e.size as i64,
        platform: None,
        annotations: Some([(REF_NAME_ANNOTATION.to_string(), name)].into()),
        artifact_type: None,
    };
    let mut manifests = vec![named(entry.name.clone(), &entry)];
    // Its signatures, named under the image's repository (found under any name of its digest).
    let repository = repo_of(&entry.name).to_string();
    let stored = store.entries()?;
    for tag in signatures::signature_tags(&entry.digest) {
        if let Some(sig) = signatures::find_tag(&stored, &repository, &tag) {
            manifests.push(named(format!("{repository}:{tag}"), &sig));
        }
    }
    let index = OciImageIndex {
        manifests,
        ..store::empty_index()
    };
    let blobs = store.reachable(&index)?;
    let mut atomic = AtomicFile::new(parent_dir(out), 0o644).map_err(|e| ImageError::io(out, e))?;
    let tmp = atomic.temp_path().to_path_buf();
    let mut tar = tar::Builder::new(atomic.file());
    let mut add = |name: &str, bytes: &[u8]| -> Result<(), ImageError> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes)
            .map_err(|e| ImageError::io(&tmp, e))
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index_bytes = serde_json::to_vec(&index)
        .map_err(|e| ImageError::invalid(r.to_string(), e.to_string()))?;
    add("index.json", &index_bytes)?;
    for digest in &blobs {
        let bytes = store.read_blob(
            digest,
            cfg.limits.layer_bytes.max(cfg.limits.manifest_bytes),
        )?;
        let hex = digest_hex(digest).unwrap_or_default();
        add(&format!("blobs/sha256/{hex}"), &bytes)?;
    }
    tar.into_inner().map_err(|e| ImageError::io(&tmp, e))?;
    atomic.commit(out).map_err(|e| ImageError::io(out, e))
}

/// The `org.opencontainers.image.ref.name` of an index.json entry.
fn ref_name(m: &ImageIndexEntry) -> Option<String> {
    m.annotations
        .as_ref()
        .and_then(|a| a.get(REF_NAME_ANNOTATION))
        .cloned()
}

/// The tag of a reference name: a full name's tag, or the whole of a bare tag (as skopeo
/// names the entries of a layout).
fn tag_of(name: &str) -> &str {
    let repository = repo_of(name);
    if name.contains('/') && repository.len() < name.len() {
        name[repository.len()..].trim_start_matches(':')
    } else {
        name
    }
}

/// Imports every image of an archive, with its signatures; `name` names the image when the
/// archive's own reference is only a tag (as skopeo writes it) or absent. With
/// `cfg.verify.verify_image`, each image must pass IG's checks (`allowed-gadgets`, a signature
/// by a trusted key, read from the archive or the store) before anything is published.
/// Returns the imported references.
pub fn import(
    cfg: &ImageConfig,
    store: &Store,
    archive: &Path,
    name: Option<&ImageRef>,
) -> Result<Vec<Entry>, ImageError> {
    import_with(cfg, store, archive, name, false)
}

/// [`import`]; `trusted`: the caller vouches for the archive (`image import --trust`, which
/// then signs its images with this host's key), so its signatures are kept but not judged.
pub fn import_with(
    cfg: &ImageConfig,
    store: &Store,
    archive: &Path,
    name: Option<&ImageRef>,
    trusted: bool,
) -> Result<Vec<Entry>, ImageError> {
    let origin = archive.display().to_string();
    let bad = |m: String| ImageError::invalid(&origin, m);
    let file = File::open(archive).map_err(|e| ImageError::io(archive, e))?;
    let mut tar = tar::Archive::new(file);
    let mut index_bytes: Option<Vec<u8>> = None;
    let mut staging = store.staging()?;
    let mut staged = std::collections::BTreeSet::new();
    let blob_limit = cfg.limits.layer_bytes.max(cfg.limits.manifest_bytes);
    let entries = tar.entries().map_err(|e| ImageError::io(archive, e))?;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(|e| ImageError::io(archive, e))?;
        let path = entry
            .path()
            .map_err(|e| ImageError::io(archive, e))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(bad(format!(
                "{path:?} is a link or special file; OCI layouts have none"
            )));
        }
        let size = entry.size();
        if path == "index.json" {
            if size > MAX_INDEX_BYTES {
                return Err(bad("index.json is larger than 1 MiB".into()));
            }
            let mut b = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut b)
                .map_err(|e| ImageError::io(archive, e))?;
            index_bytes = Some(b);
        } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            let digest = format!("sha256:{hex}");
            if digest_hex(&digest).is_none() {
                return Err(bad(format!("{path:?} is not named by a sha256 digest")));
            }
            if size > blob_limit {
                return Err(ImageError::TooLarge {
                    what: format!("blob {digest}"),
                    origin: origin.clone(),
                    size,
                    limit: blob_limit,
                    setting: "limits.layer-bytes",
                });
            }
            if store.has_blob(&digest, size) {
                continue;
            }
            let mut w = staging.blob_writer(size, &format!("blob {path}"), &origin)?;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let k = entry
                    .read(&mut buf)
                    .map_err(|e| ImageError::io(archive, e))?;
                if k == 0 {
                    break;
                }
                w.write(&buf[..k])?;
            }
            w.commit(&digest, size)?;
            staged.insert(digest);
        } else if path != "oci-layout" {
            tracing::info!("{origin}: ignoring {path:?} (not part of an OCI image layout)");
        }
    }
    let index_bytes =
        index_bytes.ok_or_else(|| bad("no index.json: not an OCI image layout".into()))?;
    let index: OciImageIndex = serde_json::from_slice(&index_bytes)
        .map_err(|e| bad(format!("index.json is not an OCI image index: {e}")))?;
    // Signature entries (named by a tag of the signature schemes) go with the image whose
    // digest they name; the others are images.
    let (sigs, images): (Vec<&ImageIndexEntry>, Vec<&ImageIndexEntry>) = index
        .manifests
        .iter()
        .partition(|m| ref_name(m).is_some_and(|n| signatures::is_signature_tag(tag_of(&n))));
    if images.is_empty() {
        return Err(bad("index.json lists no image".into()));
    }
    if name.is_some() && images.len() > 1 {
        return Err(bad(format!(
            "the archive holds {} images; import it without a name (they keep their own)",
            images.len()
        )));
    }
    // Verify everything first, then publish the references.
    let mut todo = Vec::new();
    let mut names = Vec::new();
    for m in images {
        let target = match (name, ref_name(m)) {
            (Some(n), _) => n.clone(),
            (None, Some(own)) if own.contains('/') => ImageRef::parse(&own, &cfg.registry_prefix)?,
            (None, own) => {
                return Err(bad(format!(
                    "the image's reference is {} (not a full name); give one: gadget image import {origin} REGISTRY/REPO:TAG",
                    own.map_or("absent".to_string(), |o| format!("{o:?}"))
                )));
            }
        };
        let entry = Entry {
            name: target.to_string(),
            media_type: m.media_type.clone(),
            digest: m.digest.clone(),
            size: u64::try_from(m.size).unwrap_or(0),
            annotations: Default::default(),
        };
        let image = LocalImage::load_with(
            |d, l| staging.read_blob(store, d, l),
            entry.clone(),
            &cfg.limits,
        )?;
        gadget_layers(&image.manifest, &entry.name, &cfg.limits)?;
        // Presence here; sizes against descriptors (and that only reachable blobs are kept)
        // when publishing.
        for d in super::layout::all_blobs(&image.manifest) {
            if !staged.contains(&d.digest) && !store.blob_path(&d.digest)?.exists() {
                return Err(bad(format!(
                    "blob {} ({}) is missing",
                    d.digest, d.media_type
                )));
            }
        }
        // This image's signatures, under its (new) repository.
        let repository = target.name();
        let own_tags = signatures::signature_tags(&m.digest);
        let mut pending = std::collections::BTreeMap::new();
        for s in &sigs {
            let Some(n) = ref_name(s) else { continue };
            let tag = tag_of(&n);
            if own_tags.iter().any(|t| t == tag) {
                pending.insert(tag.to_string(), (s.digest.clone(), s.media_type.clone()));
                todo.push((
                    format!("{repository}:{tag}"),
                    ImageIndexEntry {
                        annotations: None,
                        ..(*s).clone()
                    },
                ));
            }
        }
        if !trusted {
            let source = StoreSource::staged(store, &staging, &repository, pending);
            let outcome = signatures::check(
                &cfg.verify,
                &source,
                &format!("{target} (from {origin})"),
                &target,
                &m.digest,
            )?;
            for w in &outcome.warnings {
                tracing::warn!("{w}");
            }
        }
        todo.push((
            target.to_string(),
            ImageIndexEntry {
                annotations: None,
                ..m.clone()
            },
        ));
        names.push(target);
    }
    store.publish(staging, todo)?;
    let mut out = Vec::new();
    for n in names {
        out.extend(store.resolve(&n)?);
    }
    Ok(out)
}
