//! Errors: [`ConfigError`] for keys, certificates and policies that cannot be used, and
//! [`VerifyError`] for an image that is refused, listing every signature looked at, with which
//! key or certificate, and why each failed.

use std::fmt;

use crate::digest::Digest;
use crate::keys::KeyError;
use crate::notation::policy::PolicyError;
use crate::source::SourceError;

/// A verifier configuration that cannot verify anything.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no public keys and no notation certificates given: verification needs at least one \
         (or turn it off, naming the risk, with --verify-image=false)"
    )]
    NothingToVerifyWith,
    #[error("public keys: {0}")]
    PublicKeyText(String),
    #[error("public key {index} ({first_line}): {source}")]
    PublicKey {
        index: usize,
        first_line: String,
        source: KeyError,
    },
    #[error("notation certificates: {0}")]
    CertificateText(String),
    #[error("notation certificate {index}: {reason}")]
    Certificate { index: usize, reason: String },
    #[error(
        "notation certificates were given without a trust policy document (--notation-policy-document)"
    )]
    CertificatesWithoutPolicy,
    #[error(
        "a notation trust policy document was given without certificates (--notation-certificates)"
    )]
    PolicyWithoutCertificates,
    #[error("notation trust policy document: {0}")]
    Policy(PolicyError),
}

/// An image that did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No configured key or certificate verified a signature over the image's digest.
    #[error(
        "verifying gadget signature {image:?} ({digest}): the image was not signed by the provided keys or certificates{}",
        AttemptList(tried)
    )]
    NotVerified {
        image: String,
        digest: Digest,
        tried: Vec<Attempt>,
    },
}

impl VerifyError {
    /// Every signature looked at and why it failed.
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            VerifyError::NotVerified { tried, .. } => tried,
        }
    }
}

/// One signature (or the search for one) and why it did not verify the image.
#[derive(Debug)]
pub struct Attempt {
    /// Which signature: scheme and where it was found.
    pub signature: String,
    /// Which key or certificate was tried, or empty when none could be (nothing found).
    pub with: String,
    pub failure: Failure,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.with.is_empty() {
            write!(f, "{}: {}", self.signature, self.failure)
        } else {
            write!(f, "{} with {}: {}", self.signature, self.with, self.failure)
        }
    }
}

struct AttemptList<'a>(&'a [Attempt]);

impl fmt::Display for AttemptList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for attempt in self.0 {
            write!(f, "\n  - {attempt}")?;
        }
        Ok(())
    }
}

/// Why one signature did not verify the image.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("no signature found ({0})")]
    NotFound(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{what} is missing from the source (named by {named_by})")]
    Missing { what: String, named_by: String },
    #[error("{what} has media type {found:?}, expected {expected}")]
    MediaType {
        what: String,
        found: String,
        expected: String,
    },
    #[error("{what} is malformed: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{what} is {size} bytes, more than the {limit}-byte limit")]
    TooBig {
        what: String,
        size: usize,
        limit: usize,
    },
    #[error("{0}")]
    BadSignature(String),
    #[error(
        "the signed payload names {signed}, not this image ({image}): a signature for another image"
    )]
    OtherDigest { signed: String, image: Digest },
    #[error("the signature manifest's subject is {subject}, not this image ({image})")]
    OtherSubject { subject: String, image: Digest },
    #[error("the certificate chain does not lead to any of the given certificates")]
    Untrusted,
    #[error(
        "the signing certificate's subject {subject:?} is not a trusted identity of policy {policy:?}"
    )]
    UntrustedIdentity { subject: String, policy: String },
    #[error("certificate {subject:?} expired at {at} (trust policy {policy:?}, level {level})")]
    CertificateExpired {
        subject: String,
        at: String,
        policy: String,
        level: String,
    },
    #[error(
        "certificate {subject:?} is not valid before {at} (trust policy {policy:?}, level {level})"
    )]
    CertificateNotYetValid {
        subject: String,
        at: String,
        policy: String,
        level: String,
    },
    #[error("the signature expired at {at} (trust policy {policy:?}, level {level})")]
    SignatureExpired {
        at: String,
        policy: String,
        level: String,
    },
    #[error(
        "no notation trust policy applies to repository {0:?} (registryScopes match neither it nor \"*\")"
    )]
    NoPolicy(String),
    #[error("{0}")]
    Unsupported(String),
}
