//! Signatures of stored images: the local store as a [`gadget_signature::ArtifactSource`], the
//! verification policy (Inspektor Gadget's `operator.oci.*` options), this host's own signing
//! key, and signing a stored image.
//!
//! Where signatures live: next to the image in the store's index.json, as IG keeps them — the
//! cosign legacy signature manifest tagged `<repository>:sha256-<hex>.sig`, and the OCI 1.1
//! referrers as an index tagged `<repository>:sha256-<hex>` (the referrers tag schema), with
//! every manifest and blob they reach in `blobs/`.
//!
//! Invariants:
//! - Verification reads only what the store (or a pull's staging area) holds, re-hashing every
//!   manifest and blob (the verifier does; [`Store::read_blob`] does too), so a blob altered in
//!   the store after signing is caught before anything is loaded.
//! - A refusal changes nothing: a pull verifies its staged blobs before publishing them.
//! - This host's key is created once, mode 0600, never overwritten (created beside, then linked
//!   into place, so two first uses agree on one key).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use gadget_signature::sign::{CosignSignature, SigningKey, add_to_referrers_index};
use gadget_signature::{
    ArtifactSource, Digest, Fetched, SourceError, Subject, Verified, VerifiedBy, Verifier,
    VerifierConfig,
};
use oci_client::manifest::ImageIndexEntry;

use super::store::{Entry, Staging, Store, repo_of};
use super::{ImageError, ImageRef, OCI_INDEX, OCI_MANIFEST};

/// This host's signing key, beside the default store (root-only, mode 0600).
pub const DEFAULT_SIGNING_KEY: &str = "/var/lib/gadget/signing-key.pem";
/// IG's warning when verification is turned off.
pub const DISABLED_WARNING: &str =
    "gadget signature verification is disabled due to using corresponding option";
/// A key file is a few hundred bytes.
const MAX_KEY_BYTES: u64 = 16 << 10;

/// IG's `operator.oci.*` verification options.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyConfig {
    /// `verify-image` (default true).
    pub verify_image: bool,
    /// `public-keys`: `None` means the defaults, IG's key and this host's own.
    pub public_keys: Option<Vec<String>>,
    /// `--public-key-file` keys: trusted in addition to `public_keys` (or the defaults), so a
    /// node can trust the key its bundled gadgets were signed with and still IG's.
    pub extra_public_keys: Vec<String>,
    /// `notation-certificates` (PEM texts).
    pub notation_certificates: Vec<String>,
    /// `notation-policy-document` (JSON text).
    pub notation_policy_document: Option<String>,
    /// `allowed-gadgets` (empty: all).
    pub allowed_gadgets: Vec<String>,
    /// This host's signing key (created on first `image build`).
    pub signing_key: PathBuf,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            verify_image: true,
            public_keys: None,
            extra_public_keys: Vec::new(),
            notation_certificates: Vec::new(),
            notation_policy_document: None,
            allowed_gadgets: Vec::new(),
            signing_key: PathBuf::from(DEFAULT_SIGNING_KEY),
        }
    }
}

impl VerifyConfig {
    /// The keys in force: the configured ones, else IG's key plus this host's public key (if
    /// the host has made one and this process may read it).
    pub fn effective_public_keys(&self) -> Vec<String> {
        let mut keys = self.base_public_keys();
        keys.extend(self.extra_public_keys.iter().cloned());
        keys
    }

    fn base_public_keys(&self) -> Vec<String> {
        if let Some(keys) = &self.public_keys {
            return keys.clone();
        }
        let mut keys = vec![gadget_signature::INSPEKTOR_GADGET_PUBLIC_KEY.to_string()];
        match read_key(&self.signing_key) {
            Ok(Some(k)) => match k.public_key_pem() {
                Ok(pem) => keys.push(pem),
                Err(e) => tracing::warn!("{}: {e}", self.signing_key.display()),
            },
            Ok(None) => {}
            Err(e) => tracing::debug!("this host's key is not trusted here: {e}"),
        }
        keys
    }

    pub fn verifier(&self) -> Result<Verifier, ImageError> {
        Verifier::new(&VerifierConfig {
            public_keys: self.effective_public_keys(),
            notation_certificates: self.notation_certificates.clone(),
            notation_policy_document: self.notation_policy_document.clone(),
        })
        .map_err(|e| ImageError::invalid("signature verification settings", e.to_string()))
    }
}

/// The store (and, during a pull, its staging area and the tags about to be published) as the
/// signature source of one repository.
pub struct StoreSource<'a> {
    store: &'a Store,
    staging: Option<&'a Staging>,
    repository: String,
    /// Tags not yet in index.json: tag → (digest, media type).
    pending: BTreeMap<String, (String, String)>,
}

impl<'a> StoreSource<'a> {
    pub fn new(store: &'a Store, repository: &str) -> Self {
        StoreSource {
            store,
            staging: None,
            repository: repository.to_string(),
            pending: BTreeMap::new(),
        }
    }

    pub(crate) fn staged(
        store: &'a Store,
        staging: &'a Staging,
        repository: &str,
        pending: BTreeMap<String, (String, String)>,
    ) -> Self {
        StoreSource {
            store,
            staging: Some(staging),
            repository: repository.to_string(),
            pending,
        }
    }

    fn read(&self, digest: &str, max: u64, what: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let present = match self.staging {
            Some(s) => s.has(self.store, digest),
            None => self
                .store
                .blob_path(digest)
                .map(|p| p.exists())
                .unwrap_or(false),
        };
        if !present {
            return Ok(None);
        }
        let read = match self.staging {
            Some(s) => s.read_blob(self.store, digest, max),
            None => self.store.read_blob(digest, max),
        };
        read.map(Some).map_err(|e| SourceError::Unreadable {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }
}

impl ArtifactSource for StoreSource<'_> {
    fn manifest_by_tag(&self, tag: &str, max: u64) -> Result<Option<Fetched>, SourceError> {
        let found = match self.pending.get(tag) {
            Some(found) => Some(found.clone()),
            None => {
                let entries = self.store.entries().map_err(|e| SourceError::Unreadable {
                    what: "the local store's index.json".into(),
                    reason: e.to_string(),
                })?;
                find_tag(&entries, &self.repository, tag).map(|e| (e.digest, e.media_type))
            }
        };
        let Some((digest, media_type)) = found else {
            return Ok(None);
        };
        Ok(self
            .read(&digest, max, &format!("manifest tagged {tag}"))?
            .map(|bytes| Fetched {
                bytes,
                media_type: Some(media_type),
            }))
    }

    fn manifest(&self, digest: &Digest, max: u64) -> Result<Option<Fetched>, SourceError> {
        Ok(self
            .read(digest.as_str(), max, &format!("manifest {digest}"))?
            .map(|bytes| Fetched {
                bytes,
                media_type: None,
            }))
    }

    fn blob(&self, digest: &Digest, max: u64) -> Result<Option<Vec<u8>>, SourceError> {
        self.read(digest.as_str(), max, &format!("blob {digest}"))
    }
}

/// The stored signature tag `tag` (which names the image's digest) of `repository`, else of
/// any repository: `image tag` gives an image another repository, and what signs its digest
/// signs it under every name (the verifier checks the digest each signature covers).
pub fn find_tag(entries: &[Entry], repository: &str, tag: &str) -> Option<Entry> {
    let own = format!("{repository}:{tag}");
    entries
        .iter()
        .find(|e| e.name == own)
        .or_else(|| {
            entries.iter().find(|e| {
                e.name.len() > tag.len() && e.name == format!("{}:{tag}", repo_of(&e.name))
            })
        })
        .cloned()
}

/// Whether a stored name is a signature tag (`…:sha256-<hex>.sig` or `…:sha256-<hex>`), which
/// `image list` does not show as an image.
pub fn is_signature_name(name: &str) -> bool {
    let repo = repo_of(name);
    name.get(repo.len()..)
        .and_then(|t| t.strip_prefix(':'))
        .is_some_and(is_signature_tag)
}

/// Whether a tag is one of the signature schemes' (`sha256-<hex>.sig` or `sha256-<hex>`).
pub fn is_signature_tag(tag: &str) -> bool {
    let hex = tag.strip_suffix(".sig").unwrap_or(tag);
    hex.strip_prefix("sha256-")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What verification said about an image about to run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Who signed it; `None` when verification is off.
    pub by: Option<String>,
    pub warnings: Vec<String>,
}

/// A one-line description of who signed.
pub fn describe(v: &Verified) -> String {
    match &v.by {
        VerifiedBy::Cosign(c) => format!(
            "cosign signature ({:?}, manifest {}) verified by public key {} ({})",
            c.scheme, c.signature_manifest, c.key_index, c.key_fingerprint
        ),
        VerifiedBy::Notation(n) => format!("notation signature verified: {n:?}"),
    }
}

/// IG's checks before an image may run: `allowed-gadgets`, then (unless `verify-image` is off)
/// a signature by a trusted key over `digest`, from `source`.
pub fn check<S: ArtifactSource + ?Sized>(
    cfg: &VerifyConfig,
    source: &S,
    name: &str,
    r: &ImageRef,
    digest: &str,
) -> Result<Outcome, ImageError> {
    let d = Digest::parse(digest).map_err(|e| ImageError::invalid(name, e.to_string()))?;
    let repository = r.name();
    let normalized = match &r.tag {
        Some(t) => format!("{repository}:{t}"),
        None => r.to_string(),
    };
    gadget_signature::allowed::check_allowed(
        name,
        &normalized,
        &repository,
        &d,
        &cfg.allowed_gadgets,
    )
    .map_err(|e| ImageError::Refused(e.to_string()))?;
    if !cfg.verify_image {
        return Ok(Outcome {
            by: None,
            warnings: vec![format!("{DISABLED_WARNING} (image {name}, {digest})")],
        });
    }
    let verifier = cfg.verifier()?;
    let subject = Subject {
        name,
        repository: &repository,
        digest: &d,
    };
    let verified = verifier
        .verify(source, &subject, SystemTime::now())
        .map_err(|e| ImageError::Refused(e.to_string()))?;
    Ok(Outcome {
        by: Some(describe(&verified)),
        warnings: verified.warnings,
    })
}

/// Checks a stored image before it runs: its signature (from the store) and that every blob
/// it reaches still hashes to its digest (a layer altered after signing is refused here).
pub fn check_stored(
    cfg: &VerifyConfig,
    store: &Store,
    r: &ImageRef,
    entry: &Entry,
) -> Result<Outcome, ImageError> {
    // A reference to a platform manifest runs what its index's signature covers: the
    // signature is over the index (the digest a tag resolves to), which lists this manifest.
    let subject = signed_index_of(store, entry)?.unwrap_or_else(|| entry.digest.clone());
    let outcome = check(
        cfg,
        &StoreSource::new(store, &r.name()),
        &r.to_string(),
        r,
        &subject,
    )?;
    if cfg.verify_image {
        check_intact(store, entry)?;
    }
    Ok(outcome)
}

/// The stored index that lists `entry` (a platform manifest), if any.
fn signed_index_of(store: &Store, entry: &Entry) -> Result<Option<String>, ImageError> {
    if crate::layout::is_index(&entry.media_type) {
        return Ok(None);
    }
    for e in store.entries()? {
        if !crate::layout::is_index(&e.media_type) || is_signature_name(&e.name) {
            continue;
        }
        let Ok(index) = store.read_json::<oci_client::manifest::OciImageIndex>(&e.digest, u64::MAX)
        else {
            continue;
        };
        if index.manifests.iter().any(|m| m.digest == entry.digest) {
            return Ok(Some(e.digest));
        }
    }
    Ok(None)
}

/// Re-reads every stored blob `entry` reaches (the store re-hashes each read).
fn check_intact(store: &Store, entry: &Entry) -> Result<(), ImageError> {
    let refused = |e: ImageError| {
        ImageError::Refused(format!(
            "{} ({}): the stored image no longer matches what was signed: {e}",
            entry.name, entry.digest
        ))
    };
    let index = oci_client::manifest::OciImageIndex {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests: vec![ImageIndexEntry {
            media_type: entry.media_type.clone(),
            digest: entry.digest.clone(),
            size: entry.size as i64,
            platform: None,
            annotations: None,
            artifact_type: None,
        }],
        artifact_type: None,
        annotations: None,
    };
    for digest in store.reachable(&index).map_err(refused)? {
        if store.blob_path(&digest)?.exists() {
            store.read_blob(&digest, u64::MAX).map_err(refused)?;
        }
    }
    Ok(())
}

/// Reads a PEM private key file (at most 16 KiB); `None` when absent.
pub fn read_key(path: &Path) -> Result<Option<SigningKey>, ImageError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ImageError::io(path, e)),
    };
    let mut text = String::new();
    file.take(MAX_KEY_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| ImageError::io(path, e))?;
    if text.len() as u64 > MAX_KEY_BYTES {
        return Err(ImageError::invalid(
            path.display().to_string(),
            "larger than 16 KiB: not a key",
        ));
    }
    SigningKey::from_pem(&text)
        .map(Some)
        .map_err(|e| ImageError::invalid(path.display().to_string(), e.to_string()))
}

/// This host's key: read, or created (PKCS#8 PEM, mode 0600) on first use.
pub fn local_key(path: &Path) -> Result<SigningKey, ImageError> {
    if let Some(k) = read_key(path)? {
        return Ok(k);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| ImageError::io(dir, e))?;
    let key = SigningKey::generate()
        .map_err(|e| ImageError::invalid(path.display().to_string(), e.to_string()))?;
    let pem = key
        .to_pem()
        .map_err(|e| ImageError::invalid(path.display().to_string(), e.to_string()))?;
    let tmp = dir.join(format!(".signing-key-{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        // A link never replaces: if another process made the key first, its key is the one.
        match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    })();
    let _ = fs::remove_file(&tmp);
    written.map_err(|e| ImageError::io(path, e))?;
    tracing::info!(
        "created this host's image signing key {} (mode 0600)",
        path.display()
    );
    read_key(path)?.ok_or_else(|| ImageError::invalid(path.display().to_string(), "vanished"))
}

/// Signs a stored image with `key` (cosign, both forms) and stores the signature next to it.
pub fn sign_stored(
    store: &Store,
    r: &ImageRef,
    entry: &Entry,
    key: &SigningKey,
) -> Result<CosignSignature, ImageError> {
    let repository = r.name();
    let bad = |m: String| ImageError::invalid(format!("signing {}", entry.name), m);
    let descriptor = gadget_signature::Descriptor {
        media_type: entry.media_type.clone(),
        digest: entry.digest.clone(),
        size: entry.size,
        artifact_type: None,
        annotations: Default::default(),
    };
    let sig = key
        .sign(&repository, &descriptor)
        .map_err(|e| bad(e.to_string()))?;
    let mut staging = store.staging()?;
    for m in [&sig.legacy, &sig.referrer] {
        for b in &m.blobs {
            staging.put_blob(b)?;
        }
        staging.put_blob(&m.manifest)?;
    }
    let source = StoreSource::new(store, &repository);
    let existing = source
        .manifest_by_tag(
            &sig.referrers_tag,
            gadget_signature::source::MAX_MANIFEST_BYTES,
        )
        .ok()
        .flatten();
    let index = add_to_referrers_index(
        existing.as_ref().map(|f| f.bytes.as_slice()),
        &sig.referrer.descriptor,
    )
    .map_err(|e| bad(e.to_string()))?;
    let index_digest = staging.put_blob(&index)?;
    let entry_of = |media_type: &str, digest: String, size: usize| ImageIndexEntry {
        media_type: media_type.to_string(),
        digest,
        size: size as i64,
        platform: None,
        annotations: None,
        artifact_type: None,
    };
    store.publish(
        staging,
        vec![
            (
                format!("{repository}:{}", sig.legacy_tag),
                entry_of(
                    OCI_MANIFEST,
                    sig.legacy.digest.to_string(),
                    sig.legacy.manifest.len(),
                ),
            ),
            (
                format!("{repository}:{}", sig.referrers_tag),
                entry_of(OCI_INDEX, index_digest, index.len()),
            ),
        ],
    )?;
    Ok(sig)
}

/// The signature tags of an image's digest.
pub fn signature_tags(digest: &str) -> Vec<String> {
    match Digest::parse(digest) {
        Ok(d) => vec![d.cosign_signature_tag(), d.referrers_tag()],
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_names_are_recognised() {
        let hex = "a".repeat(64);
        assert!(is_signature_name(&format!("r.io/a/b:sha256-{hex}.sig")));
        assert!(is_signature_name(&format!("r.io:5000/a:sha256-{hex}")));
        assert!(!is_signature_name("r.io/a:latest"));
        assert!(!is_signature_name("r.io/a:sha256-abc"));
    }

    #[test]
    fn the_host_key_is_made_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/signing-key.pem");
        let a = local_key(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = local_key(&path).unwrap();
        assert_eq!(a.public_key_pem().unwrap(), b.public_key_pem().unwrap());
        let cfg = VerifyConfig {
            signing_key: path,
            ..Default::default()
        };
        let keys = cfg.effective_public_keys();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1], a.public_key_pem().unwrap());
    }
}
