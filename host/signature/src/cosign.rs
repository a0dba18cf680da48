//! cosign signatures with a public key (no Rekor/Fulcio: as in IG, the transparency-log bundle
//! annotation is ignored and only the key signature counts).
//!
//! Format (what `cosign sign --key` writes, checked against the fixtures):
//! - a signature manifest (OCI or Docker schema 2) whose layers have media type
//!   `application/vnd.dev.cosign.simplesigning.v1+json`; each layer is a "simple signing"
//!   payload (`{"critical":{"identity":{"docker-reference":…},"image":{"docker-manifest-digest":
//!   "sha256:…"},"type":"cosign container image signature"},"optional":…}`) and carries its
//!   signature, base64 ASN.1 ECDSA over the payload's bytes with SHA-256, in the annotation
//!   `dev.cosignproject.cosign/signature`;
//! - found either by the legacy tag `sha256-<hex>.sig` in the image's repository, or as an OCI
//!   1.1 referrer of the image (artifact type `application/vnd.dev.cosign.artifact.sig.v1+json`,
//!   `subject` = the image).
//!
//! The digest signed is the one the reference resolves to: for a multi-platform gadget image,
//! the index digest (the fixtures' payloads name their index).
//!
//! Invariants: the payload is parsed only after a key verified its bytes (as IG and
//! containers-signature(5) do: unsigned JSON is never interpreted); a verified payload naming
//! another digest, or a referrer whose subject is another digest, is refused; one key verifying
//! one signature is enough.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Attempt, ConfigError, Failure};
use crate::keys::{Algorithm, Hash, KeyError, PublicKey, split_pem_blocks};
use crate::source::{
    ArtifactSource, DOCKER_MANIFEST, Descriptor, Manifest, OCI_MANIFEST, declared_media_type,
    fetch_blob, fetch_manifest,
};

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The largest simple-signing payload read (cosign's are ~250 bytes; `optional` may add some).
pub const MAX_PAYLOAD_BYTES: u64 = 256 << 10;
/// The longest base64 signature annotation accepted (an RSA-8192 signature is 1366 characters).
pub const MAX_SIGNATURE_BASE64: usize = 4096;
/// Signature manifests (and layers) looked at per image, as IG's notation verifier bounds them.
pub const MAX_SIGNATURES: usize = 50;

/// A public key given for cosign verification, numbered from 1 in the order given.
#[derive(Debug, Clone)]
pub struct CosignKey {
    pub index: usize,
    pub key: PublicKey,
    pub fingerprint: String,
}

impl CosignKey {
    fn label(&self) -> String {
        format!(
            "public key {} ({} {})",
            self.index,
            self.key.kind(),
            self.fingerprint
        )
    }
}

/// Reads `--public-keys` values: each text holds one or more PEM `PUBLIC KEY` blocks
/// (concatenated or comma-separated). Keys must be ECDSA P-256 or RSA, as cosign makes them.
pub fn parse_public_keys<S: AsRef<str>>(texts: &[S]) -> Result<Vec<CosignKey>, ConfigError> {
    let mut keys = Vec::new();
    for text in texts {
        for block in split_pem_blocks(text.as_ref())
            .map_err(|e| ConfigError::PublicKeyText(e.to_string()))?
        {
            let index = keys.len() + 1;
            let first_line = block.lines().next().unwrap_or_default().to_string();
            let key = PublicKey::from_pem(block).map_err(|source| ConfigError::PublicKey {
                index,
                first_line: first_line.clone(),
                source,
            })?;
            if matches!(key, PublicKey::P384(_)) {
                let source = KeyError::Unsupported(
                    "ECDSA P-384 for cosign (cosign keys are P-256 or RSA)".into(),
                );
                return Err(ConfigError::PublicKey {
                    index,
                    first_line,
                    source,
                });
            }
            let fingerprint = key.fingerprint();
            keys.push(CosignKey {
                index,
                key,
                fingerprint,
            });
        }
    }
    Ok(keys)
}

/// Where a cosign signature was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The tag `sha256-<hex>.sig`.
    LegacyTag,
    /// An OCI 1.1 referrer (API or referrers tag schema).
    Referrer,
}

/// A cosign signature that verified.
#[derive(Debug, Clone)]
pub struct CosignVerified {
    pub key_index: usize,
    pub key_fingerprint: String,
    pub scheme: Scheme,
    pub signature_manifest: Digest,
    /// The `docker-reference` the signer named (informational: cosign does not enforce it).
    pub docker_reference: String,
}

/// The simple-signing payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    pub optional: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: SignedImage,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedImage {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

struct Candidate {
    label: String,
    digest: Digest,
    manifest: Manifest,
    scheme: Scheme,
}

/// Looks for cosign signatures of `image` (legacy tag, then referrers) and returns the first
/// that one of `keys` verifies; every failure is pushed to `tried`.
pub(crate) fn verify<S: ArtifactSource + ?Sized>(
    source: &S,
    image: &Digest,
    keys: &[CosignKey],
    tried: &mut Vec<Attempt>,
) -> Option<CosignVerified> {
    let candidates = find_signatures(source, image, keys, tried);
    let mut layers_seen = 0;
    for candidate in candidates {
        let layers: Vec<&Descriptor> = candidate
            .manifest
            .layers
            .iter()
            .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
            .collect();
        if layers.is_empty() {
            tried.push(Attempt {
                signature: candidate.label.clone(),
                with: String::new(),
                failure: Failure::Malformed {
                    what: "signature manifest".into(),
                    reason: format!("no layer of media type {SIMPLE_SIGNING_MEDIA_TYPE}"),
                },
            });
        }
        for (n, layer) in layers.into_iter().enumerate() {
            layers_seen += 1;
            if layers_seen > MAX_SIGNATURES {
                tried.push(Attempt {
                    signature: candidate.label.clone(),
                    with: String::new(),
                    failure: Failure::TooBig {
                        what: "the cosign signatures".into(),
                        size: layers_seen,
                        limit: MAX_SIGNATURES,
                    },
                });
                return None;
            }
            let label = format!("{} layer {}", candidate.label, n + 1);
            match verify_layer(source, image, keys, layer, &label, tried) {
                Ok(Some((key, payload))) => {
                    return Some(CosignVerified {
                        key_index: key.index,
                        key_fingerprint: key.fingerprint.clone(),
                        scheme: candidate.scheme,
                        signature_manifest: candidate.digest.clone(),
                        docker_reference: payload.critical.identity.docker_reference,
                    });
                }
                Ok(None) => {}
                Err(failure) => tried.push(Attempt {
                    signature: label,
                    with: String::new(),
                    failure,
                }),
            }
        }
    }
    None
}

/// Checks one signature layer with every key: `Ok(Some)` when one verifies a payload for
/// `image`; per-key failures go to `tried`; `Err` when the layer itself is unusable.
fn verify_layer<'k, S: ArtifactSource + ?Sized>(
    source: &S,
    image: &Digest,
    keys: &'k [CosignKey],
    layer: &Descriptor,
    label: &str,
    tried: &mut Vec<Attempt>,
) -> Result<Option<(&'k CosignKey, SimpleSigning)>, Failure> {
    let encoded =
        layer
            .annotations
            .get(SIGNATURE_ANNOTATION)
            .ok_or_else(|| Failure::Malformed {
                what: "signature layer".into(),
                reason: format!("no {SIGNATURE_ANNOTATION} annotation"),
            })?;
    if encoded.len() > MAX_SIGNATURE_BASE64 {
        return Err(Failure::TooBig {
            what: "the signature annotation".into(),
            size: encoded.len(),
            limit: MAX_SIGNATURE_BASE64,
        });
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| Failure::Malformed {
            what: "the signature annotation".into(),
            reason: format!("not base64: {e}"),
        })?;
    let payload =
        fetch_blob(source, layer, MAX_PAYLOAD_BYTES, "signed payload")?.ok_or_else(|| {
            Failure::Missing {
                what: format!("payload {}", layer.digest),
                named_by: label.to_string(),
            }
        })?;
    for key in keys {
        let algorithm = match key.key {
            PublicKey::Rsa(_) => Algorithm::RsaPkcs1v15(Hash::Sha256),
            _ => Algorithm::EcdsaDer(Hash::Sha256),
        };
        if let Err(reason) = key.key.verify(algorithm, &payload, &signature) {
            tried.push(Attempt {
                signature: label.to_string(),
                with: key.label(),
                failure: Failure::BadSignature(reason.to_string()),
            });
            continue;
        }
        // Signed by this key: only now is the payload worth reading.
        let parsed: SimpleSigning =
            serde_json::from_slice(&payload).map_err(|e| Failure::Malformed {
                what: "the signed payload".into(),
                reason: format!("not a simple-signing document: {e}"),
            })?;
        if parsed.critical.kind != SIGNATURE_TYPE {
            return Err(Failure::Malformed {
                what: "the signed payload".into(),
                reason: format!(
                    "type is {:?}, expected {SIGNATURE_TYPE:?}",
                    parsed.critical.kind
                ),
            });
        }
        if parsed.critical.image.docker_manifest_digest != image.as_str() {
            let signed: String = parsed
                .critical
                .image
                .docker_manifest_digest
                .chars()
                .take(100)
                .collect();
            tried.push(Attempt {
                signature: label.to_string(),
                with: key.label(),
                failure: Failure::OtherDigest {
                    signed,
                    image: image.clone(),
                },
            });
            return Ok(None);
        }
        return Ok(Some((key, parsed)));
    }
    Ok(None)
}

/// Names all configured keys, for a refusal where none could be tried.
fn keys_label(keys: &[CosignKey]) -> String {
    let names: Vec<String> = keys
        .iter()
        .map(|k| format!("{} ({})", k.index, k.fingerprint))
        .collect();
    let noun = if names.len() == 1 {
        "public key"
    } else {
        "public keys"
    };
    format!("{noun} {}", names.join(", "))
}

/// The signature manifests of `image`: the legacy tag's, then the referrers'.
fn find_signatures<S: ArtifactSource + ?Sized>(
    source: &S,
    image: &Digest,
    keys: &[CosignKey],
    tried: &mut Vec<Attempt>,
) -> Vec<Candidate> {
    let mut found = Vec::new();
    let tag = image.cosign_signature_tag();
    let tag_label = format!("cosign signature (tag {tag})");
    match source.manifest_by_tag(&tag, crate::source::MAX_MANIFEST_BYTES) {
        Ok(Some(fetched)) => {
            let digest = Digest::of(&fetched.bytes);
            match parse_signature_manifest(&fetched) {
                Ok(manifest) => found.push(Candidate {
                    label: tag_label,
                    digest,
                    manifest,
                    scheme: Scheme::LegacyTag,
                }),
                Err(failure) => tried.push(Attempt {
                    signature: tag_label,
                    with: String::new(),
                    failure,
                }),
            }
        }
        Ok(None) => {}
        Err(e) => tried.push(Attempt {
            signature: tag_label,
            with: String::new(),
            failure: e.into(),
        }),
    }

    let referrers = match source.referrers(image) {
        Ok(list) => list,
        Err(e) => {
            tried.push(Attempt {
                signature: format!("cosign referrers of {image}"),
                with: String::new(),
                failure: e.into(),
            });
            Vec::new()
        }
    };
    for descriptor in referrers
        .iter()
        .filter(|d| d.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT_TYPE))
        .take(MAX_SIGNATURES)
    {
        let label = format!("cosign signature (referrer {})", descriptor.digest);
        match referrer_manifest(source, image, descriptor, &label) {
            Ok((digest, manifest)) => found.push(Candidate {
                label,
                digest,
                manifest,
                scheme: Scheme::Referrer,
            }),
            Err(failure) => tried.push(Attempt {
                signature: label,
                with: String::new(),
                failure,
            }),
        }
    }

    if found.is_empty() && tried.is_empty() {
        tried.push(Attempt {
            signature: "cosign".into(),
            with: keys_label(keys),
            failure: Failure::NotFound(format!("no tag {tag} and no referrer of {image} with artifact type {SIGNATURE_ARTIFACT_TYPE}")),
        });
    }
    found
}

fn referrer_manifest<S: ArtifactSource + ?Sized>(
    source: &S,
    image: &Digest,
    descriptor: &Descriptor,
    label: &str,
) -> Result<(Digest, Manifest), Failure> {
    let digest = Digest::parse(&descriptor.digest).map_err(|e| Failure::Malformed {
        what: "referrer descriptor".into(),
        reason: e.to_string(),
    })?;
    let fetched =
        fetch_manifest(source, &digest, "signature manifest")?.ok_or_else(|| Failure::Missing {
            what: format!("manifest {digest}"),
            named_by: label.to_string(),
        })?;
    let manifest = parse_signature_manifest(&fetched)?;
    check_subject(&manifest, image)?;
    Ok((digest, manifest))
}

/// A referrer must name the image as its subject: the referrers list is only an index.
pub(crate) fn check_subject(manifest: &Manifest, image: &Digest) -> Result<(), Failure> {
    match &manifest.subject {
        Some(subject) if subject.digest == image.as_str() => Ok(()),
        Some(subject) => Err(Failure::OtherSubject {
            subject: subject.digest.chars().take(100).collect(),
            image: image.clone(),
        }),
        None => Err(Failure::Malformed {
            what: "signature manifest".into(),
            reason: "a referrer without a subject".into(),
        }),
    }
}

/// Parses a fetched signature manifest, which must be an image manifest (OCI or Docker).
pub(crate) fn parse_signature_manifest(
    fetched: &crate::source::Fetched,
) -> Result<Manifest, Failure> {
    let media_type = declared_media_type(fetched).unwrap_or_default();
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(Failure::MediaType {
            what: "signature manifest".into(),
            found: media_type.chars().take(100).collect(),
            expected: format!("{OCI_MANIFEST} or {DOCKER_MANIFEST}"),
        });
    }
    serde_json::from_slice(&fetched.bytes).map_err(|e| Failure::Malformed {
        what: "signature manifest".into(),
        reason: e.to_string(),
    })
}
