//! Where signature artifacts come from: the [`ArtifactSource`] trait, the OCI JSON shapes the
//! verifiers read, and [`OciLayout`], a source over an OCI image layout directory.
//!
//! Invariants:
//! - Nothing a source returns is trusted: the verifiers re-hash every manifest and blob fetched
//!   by digest ([`fetch_manifest`], [`fetch_blob`]) and refuse a mismatch, so a source may be a
//!   registry, a store on disk someone could write to, or an archive.
//! - Every read is capped by the caller's limit; a source must not buffer more than `max + 1`
//!   bytes of anything, and says [`SourceError::TooBig`] with the limit.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// The largest manifest or index read: 4 MiB, what the OCI distribution spec asks registries
/// to accept at least; signature manifests are a few KiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// One OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest (OCI or Docker schema 2), as far as signatures need it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (also the shape of a referrers list and of `index.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A manifest or index as fetched: its bytes and the media type the transport gave (a
/// registry's Content-Type, a layout's descriptor), if any.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: Option<String>,
}

/// Why a source could not produce something. "Not there" is not an error: sources say `None`.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{what} is larger than the {limit}-byte limit")]
    TooBig { what: String, limit: u64 },
    #[error("{what} does not hash to its digest (got {actual}): the content was altered")]
    DigestMismatch { what: String, actual: Digest },
    #[error("{what}: {reason}")]
    Unreadable { what: String, reason: String },
}

/// Where signature artifacts of one repository come from (a registry, the local store, an OCI
/// layout). Implementations return raw bytes; the verifiers check digests, sizes and formats.
pub trait ArtifactSource {
    /// The manifest or index tagged `tag` in the image's repository, at most `max` bytes.
    fn manifest_by_tag(&self, tag: &str, max: u64) -> Result<Option<Fetched>, SourceError>;

    /// The manifest or index with this digest, at most `max` bytes.
    fn manifest(&self, digest: &Digest, max: u64) -> Result<Option<Fetched>, SourceError>;

    /// The blob with this digest, at most `max` bytes.
    fn blob(&self, digest: &Digest, max: u64) -> Result<Option<Vec<u8>>, SourceError>;

    /// The descriptors of the manifests whose `subject` is `subject` (OCI 1.1 referrers).
    ///
    /// The default reads the referrers tag schema (an index tagged `sha256-<hex>`), the
    /// fallback for registries without the referrers API and what a layout holds; a registry
    /// source asks the API first and falls back to this.
    fn referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>, SourceError> {
        referrers_from_tag(self, subject)
    }
}

/// The referrers tag schema: the index tagged `sha256-<hex>`, or nothing.
pub fn referrers_from_tag<S: ArtifactSource + ?Sized>(
    source: &S,
    subject: &Digest,
) -> Result<Vec<Descriptor>, SourceError> {
    let tag = subject.referrers_tag();
    let Some(fetched) = source.manifest_by_tag(&tag, MAX_MANIFEST_BYTES)? else {
        return Ok(Vec::new());
    };
    let index: Index =
        serde_json::from_slice(&fetched.bytes).map_err(|e| SourceError::Unreadable {
            what: format!("referrers index (tag {tag})"),
            reason: format!("not an OCI index: {e}"),
        })?;
    Ok(index.manifests)
}

/// Fetches the manifest `digest` and checks its bytes hash to it.
pub(crate) fn fetch_manifest<S: ArtifactSource + ?Sized>(
    source: &S,
    digest: &Digest,
    what: &str,
) -> Result<Option<Fetched>, SourceError> {
    let Some(fetched) = source.manifest(digest, MAX_MANIFEST_BYTES)? else {
        return Ok(None);
    };
    check_len(what, fetched.bytes.len(), MAX_MANIFEST_BYTES)?;
    check_digest(what, &fetched.bytes, digest)?;
    Ok(Some(fetched))
}

/// Fetches the blob a descriptor names, at most `max` bytes, checking its size and digest.
pub(crate) fn fetch_blob<S: ArtifactSource + ?Sized>(
    source: &S,
    descriptor: &Descriptor,
    max: u64,
    what: &str,
) -> Result<Option<Vec<u8>>, SourceError> {
    let digest = Digest::parse(&descriptor.digest).map_err(|e| SourceError::Unreadable {
        what: what.to_string(),
        reason: e.to_string(),
    })?;
    if descriptor.size > max {
        return Err(SourceError::TooBig {
            what: format!("{what} ({} bytes by its descriptor)", descriptor.size),
            limit: max,
        });
    }
    let Some(bytes) = source.blob(&digest, max)? else {
        return Ok(None);
    };
    check_len(what, bytes.len(), max)?;
    if bytes.len() as u64 != descriptor.size {
        return Err(SourceError::Unreadable {
            what: what.to_string(),
            reason: format!(
                "{} bytes, but its descriptor says {}",
                bytes.len(),
                descriptor.size
            ),
        });
    }
    check_digest(what, &bytes, &digest)?;
    Ok(Some(bytes))
}

fn check_len(what: &str, len: usize, max: u64) -> Result<(), SourceError> {
    if len as u64 > max {
        return Err(SourceError::TooBig {
            what: what.to_string(),
            limit: max,
        });
    }
    Ok(())
}

fn check_digest(what: &str, bytes: &[u8], digest: &Digest) -> Result<(), SourceError> {
    let actual = Digest::of(bytes);
    if &actual != digest {
        return Err(SourceError::DigestMismatch {
            what: format!("{what} {digest}"),
            actual,
        });
    }
    Ok(())
}

/// The `mediaType` a manifest or index declares in its JSON, else the transport's.
pub(crate) fn declared_media_type(fetched: &Fetched) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(&fetched.bytes)
        .ok()
        .and_then(|p| p.media_type)
        .or_else(|| fetched.media_type.clone())
}

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) read as the
/// signature source of one repository. Tags are looked up in index.json's
/// `org.opencontainers.image.ref.name` annotations, either bare (`sha256-<hex>.sig`, what
/// `oras`/`skopeo` write for a layout) or as `<repository>:<tag>`.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
    index: Index,
    repository: Option<String>,
}

/// index.json lists references, not content.
const MAX_LAYOUT_INDEX_BYTES: u64 = 16 << 20;

impl OciLayout {
    /// Reads `root/index.json` (at most 16 MiB).
    pub fn open(root: impl Into<PathBuf>) -> Result<OciLayout, SourceError> {
        let root = root.into();
        let path = root.join("index.json");
        let what = path.display().to_string();
        let bytes = read_capped(&path, MAX_LAYOUT_INDEX_BYTES, &what)?.ok_or_else(|| {
            SourceError::Unreadable {
                what: what.clone(),
                reason: "missing: not an OCI image layout".to_string(),
            }
        })?;
        let index = serde_json::from_slice(&bytes).map_err(|e| SourceError::Unreadable {
            what,
            reason: format!("not an OCI index: {e}"),
        })?;
        Ok(OciLayout {
            root,
            index,
            repository: None,
        })
    }

    /// Also matches tags written as `<repository>:<tag>`.
    pub fn with_repository(mut self, repository: &str) -> OciLayout {
        self.repository = Some(repository.to_string());
        self
    }

    /// The descriptor index.json gives for a reference name (exactly as written there).
    pub fn resolve(&self, ref_name: &str) -> Option<&Descriptor> {
        self.index
            .manifests
            .iter()
            .find(|d| d.annotations.get(REF_NAME_ANNOTATION).map(String::as_str) == Some(ref_name))
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }
}

impl ArtifactSource for OciLayout {
    fn manifest_by_tag(&self, tag: &str, max: u64) -> Result<Option<Fetched>, SourceError> {
        let qualified = self.repository.as_ref().map(|r| format!("{r}:{tag}"));
        let found = self.index.manifests.iter().find(|d| {
            d.annotations
                .get(REF_NAME_ANNOTATION)
                .is_some_and(|name| name == tag || Some(name) == qualified.as_ref())
        });
        let Some(descriptor) = found else {
            return Ok(None);
        };
        let digest = Digest::parse(&descriptor.digest).map_err(|e| SourceError::Unreadable {
            what: format!("index.json entry for tag {tag}"),
            reason: e.to_string(),
        })?;
        let what = format!("manifest tagged {tag}");
        let Some(bytes) = read_capped(&self.blob_path(&digest), max, &what)? else {
            return Ok(None);
        };
        check_digest(&what, &bytes, &digest)?;
        Ok(Some(Fetched {
            bytes,
            media_type: Some(descriptor.media_type.clone()),
        }))
    }

    fn manifest(&self, digest: &Digest, max: u64) -> Result<Option<Fetched>, SourceError> {
        let bytes = read_capped(&self.blob_path(digest), max, &format!("manifest {digest}"))?;
        Ok(bytes.map(|bytes| Fetched {
            bytes,
            media_type: None,
        }))
    }

    fn blob(&self, digest: &Digest, max: u64) -> Result<Option<Vec<u8>>, SourceError> {
        read_capped(&self.blob_path(digest), max, &format!("blob {digest}"))
    }
}

/// Reads at most `max` bytes of `path`; more is [`SourceError::TooBig`], absent is `None`.
fn read_capped(path: &Path, max: u64, what: &str) -> Result<Option<Vec<u8>>, SourceError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SourceError::Unreadable {
                what: what.to_string(),
                reason: e.to_string(),
            });
        }
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| SourceError::Unreadable {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
    check_len(what, bytes.len(), max)?;
    Ok(Some(bytes))
}
