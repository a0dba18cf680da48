//! Notary Project (notation) signatures: JWS envelopes with an X.509 chain, checked against
//! the given certificates under a trust policy document.
//!
//! Format (what `notation sign` writes, checked against the fixtures): an OCI 1.1 referrer of
//! the image with artifact type `application/vnd.cncf.notary.signature`, one layer of media type
//! `application/jose+json` holding a flattened JWS JSON envelope: `protected` (alg PS256/384/512
//! or ES256/384, `cty` `application/vnd.cncf.notary.payload.v1+json`, signing scheme
//! `notary.x509`), `payload` (`{"targetArtifact": <descriptor of the image>}`), `header.x5c`
//! (the signing chain, leaf first) and `signature`. COSE envelopes (`application/cose`) are
//! refused as unsupported, by name.
//!
//! Checks, in the order of the Notary Project verification spec, each under the action the
//! policy's level gives it ([`policy`]):
//! - integrity (always): the leaf's key verifies the JWS, each chain certificate is signed by
//!   the next, the payload's target digest is the image's;
//! - authenticity: a certificate of the chain is one of the given certificates (IG puts them all
//!   in the policy's one trust store) and the leaf's subject is a trusted identity;
//! - authentic timestamp: without a timestamp countersignature (not supported), every chain
//!   certificate must be valid *now* — this is where an expired certificate fails;
//! - expiry: the envelope's `io.cncf.notary.expiry`, if any, is in the future.
//!
//! Revocation (OCSP/CRL) is not checked: it needs the network, and this crate is pure.
//! A check whose action is `log` that fails becomes a warning in the result, never silence.

pub mod policy;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use der::{Decode, Encode};
use serde::Deserialize;
use x509_cert::Certificate;

use crate::digest::Digest;
use crate::error::{Attempt, ConfigError, Failure};
use crate::keys::{Algorithm, Hash, PublicKey, split_pem_blocks};
use crate::source::{ArtifactSource, Descriptor, fetch_blob, fetch_manifest};
use policy::{Action, Identities, Level, TrustPolicy, TrustPolicyDocument};

pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
pub const JWS_MEDIA_TYPE: &str = "application/jose+json";
pub const COSE_MEDIA_TYPE: &str = "application/cose";
pub const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";

/// The largest signature envelope read.
pub const MAX_ENVELOPE_BYTES: u64 = 1 << 20;
/// Signatures looked at per image (IG's `maxSignatureAttempts`).
pub const MAX_SIGNATURES: usize = 50;
/// Certificates in one envelope's chain.
pub const MAX_CHAIN: usize = 10;

/// A certificate given for notation verification, numbered from 1.
#[derive(Debug, Clone)]
pub struct TrustedCertificate {
    pub index: usize,
    pub subject: String,
    der: Vec<u8>,
}

/// Certificates plus the trust policy document: what `--notation-certificates` and
/// `--notation-policy-document` configure.
#[derive(Debug, Clone)]
pub struct NotationVerifier {
    certificates: Vec<TrustedCertificate>,
    policy: TrustPolicyDocument,
}

/// A notation verification that passed (or was skipped by policy).
#[derive(Debug, Clone)]
pub struct NotationVerified {
    pub policy: String,
    pub level: Level,
    /// `None` when the policy's level is skip.
    pub signature_manifest: Option<Digest>,
    /// The leaf certificate's subject.
    pub signer: Option<String>,
}

impl NotationVerifier {
    /// Reads PEM certificates (one or more blocks per text) and a policy document.
    pub fn new<S: AsRef<str>>(
        certificates: &[S],
        policy_document: &str,
    ) -> Result<NotationVerifier, ConfigError> {
        let mut certs = Vec::new();
        for text in certificates {
            for block in split_pem_blocks(text.as_ref())
                .map_err(|e| ConfigError::CertificateText(e.to_string()))?
            {
                let index = certs.len() + 1;
                let (label, der) = pem_rfc7468::decode_vec(block.as_bytes()).map_err(|e| {
                    ConfigError::Certificate {
                        index,
                        reason: format!("not PEM: {e}"),
                    }
                })?;
                if label != "CERTIFICATE" {
                    return Err(ConfigError::Certificate {
                        index,
                        reason: format!("PEM block is {label:?}, expected \"CERTIFICATE\""),
                    });
                }
                let cert = Certificate::from_der(&der).map_err(|e| ConfigError::Certificate {
                    index,
                    reason: format!("not an X.509 certificate: {e}"),
                })?;
                let subject = cert.tbs_certificate().subject().to_string();
                certs.push(TrustedCertificate {
                    index,
                    subject,
                    der,
                });
            }
        }
        if certs.is_empty() {
            return Err(ConfigError::PolicyWithoutCertificates);
        }
        let policy = TrustPolicyDocument::parse(policy_document).map_err(ConfigError::Policy)?;
        Ok(NotationVerifier {
            certificates: certs,
            policy,
        })
    }

    fn certificates_label(&self) -> String {
        let names: Vec<String> = self
            .certificates
            .iter()
            .map(|c| format!("{} ({})", c.index, c.subject))
            .collect();
        format!("certificates {}", names.join(", "))
    }

    /// Looks for notation signatures of `image` in `repository` (for the policy's scope) and
    /// returns the first that passes; failures go to `tried`, logged checks to `warnings`.
    pub(crate) fn verify<S: ArtifactSource + ?Sized>(
        &self,
        source: &S,
        image: &Digest,
        repository: &str,
        now: SystemTime,
        tried: &mut Vec<Attempt>,
        warnings: &mut Vec<String>,
    ) -> Option<NotationVerified> {
        let Some(policy) = self.policy.applicable(repository) else {
            tried.push(Attempt {
                signature: "notation".into(),
                with: String::new(),
                failure: Failure::NoPolicy(repository.into()),
            });
            return None;
        };
        if policy.level == Level::Skip {
            warnings.push(format!(
                "notation trust policy {:?} has level skip: signatures of {repository} are not verified",
                policy.name
            ));
            return Some(NotationVerified {
                policy: policy.name.clone(),
                level: policy.level,
                signature_manifest: None,
                signer: None,
            });
        }
        let referrers = match source.referrers(image) {
            Ok(list) => list,
            Err(e) => {
                tried.push(Attempt {
                    signature: format!("notation referrers of {image}"),
                    with: String::new(),
                    failure: e.into(),
                });
                return None;
            }
        };
        let signatures: Vec<&Descriptor> = referrers
            .iter()
            .filter(|d| d.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT_TYPE))
            .take(MAX_SIGNATURES)
            .collect();
        if signatures.is_empty() {
            tried.push(Attempt {
                signature: "notation".into(),
                with: self.certificates_label(),
                failure: Failure::NotFound(format!(
                    "no referrer of {image} with artifact type {SIGNATURE_ARTIFACT_TYPE}"
                )),
            });
            return None;
        }
        for descriptor in signatures {
            let label = format!("notation signature (referrer {})", descriptor.digest);
            let mut local_warnings = Vec::new();
            match self.verify_one(source, image, descriptor, policy, now, &mut local_warnings) {
                Ok((digest, signer)) => {
                    warnings.extend(local_warnings.into_iter().map(|w| format!("{label}: {w}")));
                    return Some(NotationVerified {
                        policy: policy.name.clone(),
                        level: policy.level,
                        signature_manifest: Some(digest),
                        signer: Some(signer),
                    });
                }
                Err(failure) => tried.push(Attempt {
                    signature: label,
                    with: self.certificates_label(),
                    failure,
                }),
            }
        }
        None
    }

    fn verify_one<S: ArtifactSource + ?Sized>(
        &self,
        source: &S,
        image: &Digest,
        descriptor: &Descriptor,
        policy: &TrustPolicy,
        now: SystemTime,
        warnings: &mut Vec<String>,
    ) -> Result<(Digest, String), Failure> {
        let digest = Digest::parse(&descriptor.digest).map_err(|e| Failure::Malformed {
            what: "referrer descriptor".into(),
            reason: e.to_string(),
        })?;
        let fetched = fetch_manifest(source, &digest, "signature manifest")?.ok_or_else(|| {
            Failure::Missing {
                what: format!("manifest {digest}"),
                named_by: "the referrers list".into(),
            }
        })?;
        let manifest = crate::cosign::parse_signature_manifest(&fetched)?;
        crate::cosign::check_subject(&manifest, image)?;
        let artifact_type = manifest
            .artifact_type
            .as_deref()
            .unwrap_or(&manifest.config.media_type);
        if artifact_type != SIGNATURE_ARTIFACT_TYPE {
            return Err(Failure::MediaType {
                what: "signature manifest's artifact type".into(),
                found: artifact_type.chars().take(100).collect(),
                expected: SIGNATURE_ARTIFACT_TYPE.into(),
            });
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(Failure::Malformed {
                what: "signature manifest".into(),
                reason: format!(
                    "{} layers, expected exactly one envelope",
                    manifest.layers.len()
                ),
            });
        };
        match layer.media_type.as_str() {
            JWS_MEDIA_TYPE => {}
            COSE_MEDIA_TYPE => return Err(Failure::Unsupported("COSE signature envelopes (application/cose) are not supported; sign with notation's default JWS envelope".into())),
            other => {
                return Err(Failure::MediaType {
                    what: "signature envelope".into(),
                    found: other.chars().take(100).collect(),
                    expected: JWS_MEDIA_TYPE.into(),
                });
            }
        }
        let envelope = fetch_blob(source, layer, MAX_ENVELOPE_BYTES, "signature envelope")?
            .ok_or_else(|| Failure::Missing {
                what: format!("envelope {}", layer.digest),
                named_by: format!("manifest {digest}"),
            })?;
        let signer = self.verify_envelope(&envelope, image, policy, now, warnings)?;
        Ok((digest, signer))
    }

    /// Verifies one JWS envelope for `image` under `policy`; returns the signer's subject.
    pub(crate) fn verify_envelope(
        &self,
        envelope: &[u8],
        image: &Digest,
        policy: &TrustPolicy,
        now: SystemTime,
        warnings: &mut Vec<String>,
    ) -> Result<String, Failure> {
        let jws = Jws::parse(envelope)?;

        // Integrity.
        let leaf = &jws.chain[0];
        let leaf_subject = leaf.tbs_certificate().subject().to_string();
        let leaf_key = PublicKey::from_spki_der(
            &leaf
                .tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .unwrap_or_default(),
        )
        .map_err(|e| Failure::Malformed {
            what: "signing certificate's key".into(),
            reason: e.to_string(),
        })?;
        leaf_key
            .verify(jws.algorithm, jws.signing_input.as_bytes(), &jws.signature)
            .map_err(|e| Failure::BadSignature(format!("the envelope does not verify with its signing certificate {leaf_subject:?}: {e}")))?;
        check_chain(&jws.chain)?;
        let target = &jws.payload.target_artifact.digest;
        if target != image.as_str() {
            return Err(Failure::OtherDigest {
                signed: target.chars().take(100).collect(),
                image: image.clone(),
            });
        }

        let level = policy.level.to_string();
        let mut apply = |action: Action, failure: Failure| -> Result<(), Failure> {
            match action {
                Action::Enforce => Err(failure),
                Action::Log => {
                    warnings.push(format!("{failure} (logged, not enforced)"));
                    Ok(())
                }
                Action::Skip => Ok(()),
            }
        };

        // Authenticity.
        let anchored = jws
            .chain_der
            .iter()
            .any(|der| self.certificates.iter().any(|c| &c.der == der));
        if !anchored {
            apply(policy.actions.authenticity, Failure::Untrusted)?;
        } else if !identity_trusted(&policy.identities, leaf) {
            apply(
                policy.actions.authenticity,
                Failure::UntrustedIdentity {
                    subject: leaf_subject.clone(),
                    policy: policy.name.clone(),
                },
            )?;
        }

        // Authentic timestamp: no countersignature support, so the chain must be valid now.
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for cert in &jws.chain {
            let validity = cert.tbs_certificate().validity();
            let subject = cert.tbs_certificate().subject().to_string();
            let not_before = validity.not_before.to_unix_duration().as_secs();
            let not_after = validity.not_after.to_unix_duration().as_secs();
            if now_secs > not_after {
                apply(
                    policy.actions.authentic_timestamp,
                    Failure::CertificateExpired {
                        subject,
                        at: rfc3339(not_after),
                        policy: policy.name.clone(),
                        level: level.clone(),
                    },
                )?;
            } else if now_secs < not_before {
                apply(
                    policy.actions.authentic_timestamp,
                    Failure::CertificateNotYetValid {
                        subject,
                        at: rfc3339(not_before),
                        policy: policy.name.clone(),
                        level: level.clone(),
                    },
                )?;
            }
        }

        // Expiry.
        if let Some(expiry) = jws.expiry
            && now_secs as i64 > expiry
        {
            apply(
                policy.actions.expiry,
                Failure::SignatureExpired {
                    at: rfc3339(expiry.max(0) as u64),
                    policy: policy.name.clone(),
                    level,
                },
            )?;
        }
        Ok(leaf_subject)
    }
}

/// A parsed, not yet verified, JWS envelope.
struct Jws {
    algorithm: Algorithm,
    signing_input: String,
    signature: Vec<u8>,
    payload: Payload,
    chain: Vec<Certificate>,
    chain_der: Vec<Vec<u8>>,
    expiry: Option<i64>,
}

#[derive(Deserialize)]
struct EnvelopeJson {
    payload: String,
    protected: String,
    header: UnprotectedJson,
    signature: String,
}

#[derive(Deserialize)]
struct UnprotectedJson {
    x5c: Vec<String>,
}

#[derive(Deserialize)]
struct ProtectedJson {
    alg: String,
    #[serde(default)]
    crit: Vec<String>,
    cty: Option<String>,
    #[serde(rename = "io.cncf.notary.signingScheme")]
    signing_scheme: Option<String>,
    #[serde(rename = "io.cncf.notary.expiry")]
    expiry: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: Descriptor,
}

const KNOWN_CRITICAL: [&str; 3] = [
    "io.cncf.notary.signingScheme",
    "io.cncf.notary.expiry",
    "io.cncf.notary.authenticSigningTime",
];

impl Jws {
    fn parse(bytes: &[u8]) -> Result<Jws, Failure> {
        let malformed = |reason: String| Failure::Malformed {
            what: "JWS envelope".into(),
            reason,
        };
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let json: EnvelopeJson =
            serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let protected_bytes = b64url
            .decode(&json.protected)
            .map_err(|e| malformed(format!("protected header: {e}")))?;
        let protected: ProtectedJson = serde_json::from_slice(&protected_bytes)
            .map_err(|e| malformed(format!("protected header: {e}")))?;
        for name in &protected.crit {
            if !KNOWN_CRITICAL.contains(&name.as_str()) {
                return Err(malformed(format!("unknown critical header {name:?}")));
            }
        }
        if !protected
            .crit
            .iter()
            .any(|c| c == "io.cncf.notary.signingScheme")
        {
            return Err(malformed(
                "io.cncf.notary.signingScheme is not marked critical".into(),
            ));
        }
        if protected.expiry.is_some()
            && !protected.crit.iter().any(|c| c == "io.cncf.notary.expiry")
        {
            return Err(malformed(
                "io.cncf.notary.expiry is not marked critical".into(),
            ));
        }
        match protected.signing_scheme.as_deref() {
            Some("notary.x509") => {}
            Some("notary.x509.signingAuthority") => {
                return Err(Failure::Unsupported("signing scheme notary.x509.signingAuthority (needs authentic signing time) is not supported".into()));
            }
            other => {
                return Err(malformed(format!(
                    "signing scheme {other:?}, expected \"notary.x509\""
                )));
            }
        }
        if protected.cty.as_deref() != Some(PAYLOAD_CONTENT_TYPE) {
            return Err(malformed(format!(
                "content type {:?}, expected {PAYLOAD_CONTENT_TYPE:?}",
                protected.cty
            )));
        }
        let algorithm = match protected.alg.as_str() {
            "PS256" => Algorithm::RsaPss(Hash::Sha256),
            "PS384" => Algorithm::RsaPss(Hash::Sha384),
            "PS512" => Algorithm::RsaPss(Hash::Sha512),
            "ES256" => Algorithm::EcdsaFixed(Hash::Sha256),
            "ES384" => Algorithm::EcdsaFixed(Hash::Sha384),
            other => {
                return Err(Failure::Unsupported(format!(
                    "JWS algorithm {other:?} (supported: PS256, PS384, PS512, ES256, ES384)"
                )));
            }
        };
        let expiry = match &protected.expiry {
            None => None,
            Some(text) => Some(
                chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|e| malformed(format!("io.cncf.notary.expiry {text:?}: {e}")))?
                    .timestamp(),
            ),
        };
        let payload_bytes = b64url
            .decode(&json.payload)
            .map_err(|e| malformed(format!("payload: {e}")))?;
        let payload: Payload = serde_json::from_slice(&payload_bytes)
            .map_err(|e| malformed(format!("payload: {e}")))?;
        let signature = b64url
            .decode(&json.signature)
            .map_err(|e| malformed(format!("signature: {e}")))?;
        if json.header.x5c.is_empty() || json.header.x5c.len() > MAX_CHAIN {
            return Err(malformed(format!(
                "x5c holds {} certificates, expected 1 to {MAX_CHAIN}",
                json.header.x5c.len()
            )));
        }
        let mut chain = Vec::new();
        let mut chain_der = Vec::new();
        for (i, encoded) in json.header.x5c.iter().enumerate() {
            let der = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| malformed(format!("x5c[{i}]: {e}")))?;
            chain.push(
                Certificate::from_der(&der)
                    .map_err(|e| malformed(format!("x5c[{i}] is not a certificate: {e}")))?,
            );
            chain_der.push(der);
        }
        Ok(Jws {
            algorithm,
            signing_input: format!("{}.{}", json.protected, json.payload),
            signature,
            payload,
            chain,
            chain_der,
            expiry,
        })
    }
}

/// Each certificate is issued and signed by the next (a self-issued last one signs itself),
/// the leaf may sign code and the others are CAs: the Notary Project's certificate
/// requirements, as far as they decide whether the chain means what it says.
fn check_chain(chain: &[Certificate]) -> Result<(), Failure> {
    for (i, cert) in chain.iter().enumerate() {
        let tbs = cert.tbs_certificate();
        check_usage(cert, i == 0, chain.len() == 1).map_err(|reason| {
            Failure::BadSignature(format!(
                "certificate {:?}: {reason}",
                tbs.subject().to_string()
            ))
        })?;
        let issuer = match chain.get(i + 1) {
            Some(next) => next,
            None if tbs.issuer() == tbs.subject() => cert,
            // The chain may stop below a root held only in the trust store: nothing to check.
            None => return Ok(()),
        };
        if issuer.tbs_certificate().subject() != tbs.issuer() {
            return Err(Failure::BadSignature(format!(
                "certificate chain is broken: {:?} is not issued by {:?}",
                tbs.subject().to_string(),
                issuer.tbs_certificate().subject().to_string()
            )));
        }
        verify_certificate_signature(cert, issuer).map_err(|e| {
            Failure::BadSignature(format!("certificate {:?}: {e}", tbs.subject().to_string()))
        })?;
    }
    Ok(())
}

/// Why a chain certificate's usage does not fit its place in the chain.
#[derive(Debug, thiserror::Error)]
enum UsageError {
    #[error("{0}: {1}")]
    Extension(&'static str, #[source] der::Error),
    #[error("the signing certificate's key usage does not allow digital signatures")]
    NoDigitalSignature,
    #[error("the signing certificate's extended key usage does not include code signing")]
    NoCodeSigning,
    #[error("the signing certificate is a CA certificate")]
    LeafIsCa,
    #[error("an issuing certificate is not a CA (basic constraints)")]
    IssuerNotCa,
    #[error("an issuing certificate's key usage does not allow signing certificates")]
    IssuerCannotSign,
}

/// Why a certificate's signature by its issuer does not check.
#[derive(Debug, thiserror::Error)]
enum CertSignatureError {
    #[error("{0}")]
    Der(#[source] der::Error),
    #[error("{0}")]
    Key(#[source] crate::keys::KeyError),
    #[error("unsupported certificate signature algorithm {0}")]
    Algorithm(String),
    #[error("signature is not whole bytes")]
    NotWholeBytes,
    #[error("{0}")]
    Verify(#[source] crate::keys::VerifyError),
}

/// Key usage, extended key usage and basic constraints of one chain certificate.
fn check_usage(cert: &Certificate, leaf: bool, alone: bool) -> Result<(), UsageError> {
    use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
    const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
    let tbs = cert.tbs_certificate();
    let key_usage = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| UsageError::Extension("key usage", e))?
        .map(|(_, k)| k);
    let ca = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| UsageError::Extension("basic constraints", e))?
        .is_some_and(|(_, b)| b.ca);
    if leaf {
        if !key_usage.is_some_and(|k| k.digital_signature()) {
            return Err(UsageError::NoDigitalSignature);
        }
        if let Some((_, eku)) = tbs
            .get_extension::<ExtendedKeyUsage>()
            .map_err(|e| UsageError::Extension("extended key usage", e))?
            && !eku.0.iter().any(|oid| oid.to_string() == CODE_SIGNING)
        {
            return Err(UsageError::NoCodeSigning);
        }
        // A self-signed leaf alone (what `notation cert generate-test` makes) is no CA; a
        // leaf below a CA must not be one either.
        if ca && !alone {
            return Err(UsageError::LeafIsCa);
        }
    } else {
        if !ca {
            return Err(UsageError::IssuerNotCa);
        }
        if key_usage.is_some_and(|k| !k.key_cert_sign()) {
            return Err(UsageError::IssuerCannotSign);
        }
    }
    Ok(())
}

fn verify_certificate_signature(
    cert: &Certificate,
    issuer: &Certificate,
) -> Result<(), CertSignatureError> {
    let spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(CertSignatureError::Der)?;
    let key = PublicKey::from_spki_der(&spki).map_err(CertSignatureError::Key)?;
    let oid = cert.signature_algorithm().oid.to_string();
    let algorithm = match oid.as_str() {
        "1.2.840.113549.1.1.11" => Algorithm::RsaPkcs1v15(Hash::Sha256),
        "1.2.840.113549.1.1.12" => Algorithm::RsaPkcs1v15(Hash::Sha384),
        "1.2.840.113549.1.1.13" => Algorithm::RsaPkcs1v15(Hash::Sha512),
        "1.2.840.10045.4.3.2" => Algorithm::EcdsaDer(Hash::Sha256),
        "1.2.840.10045.4.3.3" => Algorithm::EcdsaDer(Hash::Sha384),
        other => {
            return Err(CertSignatureError::Algorithm(other.to_string()));
        }
    };
    let tbs = cert
        .tbs_certificate()
        .to_der()
        .map_err(CertSignatureError::Der)?;
    let signature = cert
        .signature()
        .as_bytes()
        .ok_or(CertSignatureError::NotWholeBytes)?;
    key.verify(algorithm, &tbs, signature)
        .map_err(CertSignatureError::Verify)
}

/// Whether the leaf's subject holds every attribute of one trusted identity.
fn identity_trusted(identities: &Identities, leaf: &Certificate) -> bool {
    let subjects = match identities {
        Identities::Any => return true,
        Identities::Subjects(s) => s,
    };
    let Ok(leaf_pairs) = policy::parse_dn(&leaf.tbs_certificate().subject().to_string()) else {
        return false;
    };
    subjects
        .iter()
        .any(|wanted| wanted.iter().all(|pair| leaf_pairs.contains(pair)))
}

fn rfc3339(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs.min(i64::MAX as u64) as i64, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{secs} s after the epoch"))
}

#[cfg(test)]
mod tests {
    use der::DecodePem;

    use super::*;

    /// notation's test certificate from the fixtures (found by walking up from this crate).
    fn fixture_certificate(name: &str) -> Certificate {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|a| a.join("shared/fixtures/ig-signatures"))
            .find(|d| d.is_dir())
            .expect("shared/fixtures/ig-signatures above this crate");
        let pem = std::fs::read(dir.join(name)).expect("fixture certificate");
        Certificate::from_pem(&pem).expect("PEM certificate")
    }

    #[test]
    fn certificate_usage_is_checked_per_position() {
        let cert = fixture_certificate("notation-good.crt");
        // A code-signing leaf, alone: fine.
        check_usage(&cert, true, true).unwrap();
        // The same certificate cannot issue others: no CA basic constraint.
        assert!(
            check_usage(&cert, false, false)
                .unwrap_err()
                .to_string()
                .contains("not a CA")
        );
        // A chain where it issues itself is refused by check_chain for that reason.
        let err = check_chain(&[cert.clone(), cert]).unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");
    }
}
