//! Verification (and cosign-compatible signing) of gadget image signatures, as pure functions
//! over bytes: no network, no files except through an [`ArtifactSource`], no printing.
//!
//! What is verified: that at least one configured cosign public key, or one notation
//! certificate under a trust policy, verifies a signature whose signed payload names the
//! image's digest — the digest the reference resolves to (the index for a multi-platform
//! image), as Inspektor Gadget does. See [`cosign`] and [`notation`] for each format.
//!
//! Invariants:
//! - Nothing from the source is trusted: every manifest and blob fetched by digest is re-hashed,
//!   every read is capped ([`source::MAX_MANIFEST_BYTES`], [`cosign::MAX_PAYLOAD_BYTES`],
//!   [`notation::MAX_ENVELOPE_BYTES`]), at most [`cosign::MAX_SIGNATURES`] signatures are
//!   looked at; malformed input is an error naming what and why, never a panic.
//! - A refusal ([`VerifyError::NotVerified`]) names the image and lists each signature
//!   found, the key or certificates tried and why each failed.
//! - Checks a notation policy only logs come back as [`Verified::warnings`]; the caller
//!   decides how to show them.

pub mod allowed;
pub mod cosign;
pub mod digest;
pub mod error;
pub mod keys;
pub mod notation;
pub mod sign;
pub mod source;

use std::time::SystemTime;

pub use digest::Digest;
pub use error::{Attempt, ConfigError, Failure, VerifyError};
pub use source::{ArtifactSource, Descriptor, Fetched, OciLayout, SourceError};

use cosign::{CosignKey, CosignVerified};
use notation::{NotationVerified, NotationVerifier};

/// Inspektor Gadget's public key: the default of IG's `--public-keys`
/// (`pkg/resources/inspektor-gadget.pub`), which verifies IG's official gadget images.
pub const INSPEKTOR_GADGET_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEoDOC0gYSxZTopenGmX3ZFvQ1DSfh
Ir4EKRt5jC+mXaJ7c7J+oREskYMn/SfZdRHNSOjLTZUMDm60zpXGhkFecg==
-----END PUBLIC KEY-----
";

/// What verification trusts, as IG's oci handler takes it.
#[derive(Debug, Clone, Default)]
pub struct VerifierConfig {
    /// `--public-keys`: PEM public keys (each text may hold several blocks).
    pub public_keys: Vec<String>,
    /// `--notation-certificates`: PEM certificates.
    pub notation_certificates: Vec<String>,
    /// `--notation-policy-document`: the trust policy JSON.
    pub notation_policy_document: Option<String>,
}

/// A configured verifier: parsed keys, certificates and policy.
#[derive(Debug, Clone)]
pub struct Verifier {
    cosign_keys: Vec<CosignKey>,
    notation: Option<NotationVerifier>,
}

/// The image being verified.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The reference as the user wrote it (for messages).
    pub name: &'a str,
    /// The normalized repository, `registry/path` (selects the notation trust policy).
    pub repository: &'a str,
    /// The digest the reference resolved to.
    pub digest: &'a Digest,
}

/// An image that verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub by: VerifiedBy,
    /// Checks that failed but that the notation policy only logs.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum VerifiedBy {
    Cosign(CosignVerified),
    Notation(NotationVerified),
}

impl Verifier {
    /// Parses the configuration. Certificates without a policy (or the reverse) and a
    /// configuration with nothing to verify with are errors, not a verifier that refuses all.
    pub fn new(config: &VerifierConfig) -> Result<Verifier, ConfigError> {
        let cosign_keys = cosign::parse_public_keys(&config.public_keys)?;
        let has_certs = config
            .notation_certificates
            .iter()
            .any(|c| !c.trim().is_empty());
        let notation = match (&config.notation_policy_document, has_certs) {
            (Some(policy), true) => Some(NotationVerifier::new(
                &config.notation_certificates,
                policy,
            )?),
            (Some(policy), false) if !policy.trim().is_empty() => {
                return Err(ConfigError::PolicyWithoutCertificates);
            }
            (None, true) => return Err(ConfigError::CertificatesWithoutPolicy),
            _ => None,
        };
        if cosign_keys.is_empty() && notation.is_none() {
            return Err(ConfigError::NothingToVerifyWith);
        }
        Ok(Verifier {
            cosign_keys,
            notation,
        })
    }

    pub fn cosign_keys(&self) -> &[CosignKey] {
        &self.cosign_keys
    }

    /// Verifies `subject` from the signatures `source` holds, at time `now` (certificate
    /// validity and signature expiry). cosign first, then notation; the first success wins.
    pub fn verify<S: ArtifactSource + ?Sized>(
        &self,
        source: &S,
        subject: &Subject<'_>,
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        let mut tried = Vec::new();
        let mut warnings = Vec::new();
        if !self.cosign_keys.is_empty()
            && let Some(ok) = cosign::verify(source, subject.digest, &self.cosign_keys, &mut tried)
        {
            return Ok(Verified {
                by: VerifiedBy::Cosign(ok),
                warnings,
            });
        }
        if let Some(notation) = &self.notation
            && let Some(ok) = notation.verify(
                source,
                subject.digest,
                subject.repository,
                now,
                &mut tried,
                &mut warnings,
            )
        {
            return Ok(Verified {
                by: VerifiedBy::Notation(ok),
                warnings,
            });
        }
        Err(VerifyError::NotVerified {
            image: subject.name.to_string(),
            digest: subject.digest.clone(),
            tried,
        })
    }
}
