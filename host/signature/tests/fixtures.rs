//! Verification against real signatures: the images IG's own verifier tests use, signed by the
//! real cosign and notation CLIs (`../shared/fixtures/ig-signatures`, read in place), plus
//! signatures this crate makes. Attacks are built by serving altered artifacts through
//! [`Overlay`], a source that replaces or adds tags, manifests and blobs over the fixture
//! layout, as a hostile registry or a tampered store would.

// Test code: a panic in a helper (not a `#[test]` fn, which clippy.toml covers) is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gadget_signature::cosign::{SIGNATURE_ANNOTATION, Scheme};
use gadget_signature::notation::policy::Level;
use gadget_signature::sign::{SigningKey, add_to_referrers_index};
use gadget_signature::source::{Manifest, REF_NAME_ANNOTATION};
use gadget_signature::{
    ArtifactSource, ConfigError, Descriptor, Digest, Failure, Fetched, OciLayout, SourceError,
    Subject, Verified, VerifiedBy, Verifier, VerifierConfig, VerifyError,
};

const LEGACY: &str = "ttl.sh/signed_with_cosign_legacy:latest";
const OCI11: &str = "ttl.sh/signed_with_cosign_oci11:latest";
const NOTATION: &str = "ttl.sh/signed_with_notation:latest";
const UNSIGNED: &str = "ghcr.io/inspektor-gadget/gadget/unsigned:francis-signature-unit-tests";

/// The fixture directory: `shared/fixtures/ig-signatures` next to the checkout (found by
/// walking up from this crate), or `$GADGET_SIGNATURE_FIXTURES`. Absent fixtures fail the test.
fn fixtures() -> PathBuf {
    if let Some(dir) = std::env::var_os("GADGET_SIGNATURE_FIXTURES") {
        return PathBuf::from(dir);
    }
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for ancestor in manifest_dir.ancestors() {
        let candidate = ancestor.join("shared/fixtures/ig-signatures");
        if candidate.join("oci-store/index.json").is_file() {
            return candidate;
        }
    }
    panic!(
        "the signature fixtures are missing: no shared/fixtures/ig-signatures/oci-store/index.json above {} \
         (expected at ../../../shared/fixtures/ig-signatures from this crate, or set GADGET_SIGNATURE_FIXTURES)",
        manifest_dir.display()
    );
}

fn read(name: &str) -> String {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

fn layout() -> OciLayout {
    OciLayout::open(fixtures().join("oci-store")).expect("fixture OCI layout")
}

fn descriptor_of(reference: &str) -> Descriptor {
    layout()
        .resolve(reference)
        .unwrap_or_else(|| panic!("{reference} not in the fixture layout"))
        .clone()
}

fn digest_of(reference: &str) -> Digest {
    Digest::parse(&descriptor_of(reference).digest).unwrap()
}

fn repository(reference: &str) -> &str {
    reference.rsplit_once(':').map(|(repo, _)| repo).unwrap()
}

fn cosign(keys: &[&str]) -> Verifier {
    let public_keys = keys.iter().map(|k| read(k)).collect();
    Verifier::new(&VerifierConfig {
        public_keys,
        ..Default::default()
    })
    .expect("cosign verifier")
}

fn notation(cert: &str, policy: &str) -> Verifier {
    Verifier::new(&VerifierConfig {
        notation_certificates: vec![read(cert)],
        notation_policy_document: Some(policy.to_string()),
        ..Default::default()
    })
    .expect("notation verifier")
}

fn verify_at<S: ArtifactSource>(
    verifier: &Verifier,
    source: &S,
    reference: &str,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let digest = digest_of(reference);
    let subject = Subject {
        name: reference,
        repository: repository(reference),
        digest: &digest,
    };
    verifier.verify(source, &subject, now)
}

fn verify<S: ArtifactSource>(
    verifier: &Verifier,
    source: &S,
    reference: &str,
) -> Result<Verified, VerifyError> {
    verify_at(verifier, source, reference, SystemTime::now())
}

fn at(rfc3339: &str) -> SystemTime {
    let secs = chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp();
    UNIX_EPOCH + Duration::from_secs(secs as u64)
}

fn refused(result: Result<Verified, VerifyError>) -> VerifyError {
    match result {
        Ok(v) => panic!("verified, but must be refused: {v:?}"),
        Err(e) => e,
    }
}

/// The fixture layout with some tags, manifests and blobs replaced or added.
struct Overlay {
    base: OciLayout,
    tags: HashMap<String, Vec<u8>>,
    blobs: HashMap<Digest, Vec<u8>>,
    hidden: HashSet<Digest>,
}

impl Overlay {
    fn new() -> Overlay {
        Overlay {
            base: layout(),
            tags: HashMap::new(),
            blobs: HashMap::new(),
            hidden: HashSet::new(),
        }
    }
    fn tag(mut self, tag: String, bytes: Vec<u8>) -> Overlay {
        self.tags.insert(tag, bytes);
        self
    }
    /// Adds content under its own digest (manifests and blobs share the namespace).
    fn content(mut self, bytes: Vec<u8>) -> Overlay {
        self.blobs.insert(Digest::of(&bytes), bytes);
        self
    }
    /// Serves nothing for `digest`: a registry that lost (or never got) it.
    fn hide(mut self, digest: &Digest) -> Overlay {
        self.hidden.insert(digest.clone());
        self
    }
    /// Serves `bytes` for `digest` although they do not hash to it: a tampered store.
    fn tampered(mut self, digest: &Digest, bytes: Vec<u8>) -> Overlay {
        self.blobs.insert(digest.clone(), bytes);
        self
    }
}

impl ArtifactSource for Overlay {
    fn manifest_by_tag(&self, tag: &str, max: u64) -> Result<Option<Fetched>, SourceError> {
        match self.tags.get(tag) {
            Some(bytes) => Ok(Some(Fetched {
                bytes: bytes.clone(),
                media_type: None,
            })),
            None => self.base.manifest_by_tag(tag, max),
        }
    }
    fn manifest(&self, digest: &Digest, max: u64) -> Result<Option<Fetched>, SourceError> {
        if self.hidden.contains(digest) {
            return Ok(None);
        }
        match self.blobs.get(digest) {
            Some(bytes) => Ok(Some(Fetched {
                bytes: bytes.clone(),
                media_type: None,
            })),
            None => self.base.manifest(digest, max),
        }
    }
    fn blob(&self, digest: &Digest, max: u64) -> Result<Option<Vec<u8>>, SourceError> {
        if self.hidden.contains(digest) {
            return Ok(None);
        }
        match self.blobs.get(digest) {
            Some(bytes) => Ok(Some(bytes.clone())),
            None => self.base.blob(digest, max),
        }
    }
}

/// The legacy image's `.sig` manifest, parsed.
fn legacy_signature_manifest() -> Manifest {
    let tag = digest_of(LEGACY).cosign_signature_tag();
    let fetched = layout()
        .manifest_by_tag(&tag, 1 << 20)
        .unwrap()
        .expect("legacy .sig tag in the fixture");
    serde_json::from_slice(&fetched.bytes).unwrap()
}

fn blob(descriptor: &Descriptor) -> Vec<u8> {
    layout()
        .blob(&Digest::parse(&descriptor.digest).unwrap(), 1 << 20)
        .unwrap()
        .unwrap()
}

fn has_failure(err: &VerifyError, pred: impl Fn(&Failure) -> bool) -> bool {
    err.attempts().iter().any(|a| pred(&a.failure))
}

// ---- cosign -------------------------------------------------------------------------------

#[test]
fn cosign_legacy_tag_verifies_with_the_good_key() {
    let verified = verify(&cosign(&["cosign-good.pub"]), &layout(), LEGACY)
        .expect("legacy cosign signature verifies");
    let VerifiedBy::Cosign(c) = verified.by else {
        panic!("not cosign: {verified:?}")
    };
    assert_eq!(c.scheme, Scheme::LegacyTag);
    assert_eq!(c.key_index, 1);
    assert_eq!(c.docker_reference, "ttl.sh/signed_with_cosign_legacy");
    // The signature manifest is the one the `.sig` tag names in the layout.
    let tag = digest_of(LEGACY).cosign_signature_tag();
    assert_eq!(
        c.signature_manifest.as_str(),
        layout().resolve(&tag).unwrap().digest
    );
    assert!(verified.warnings.is_empty());
}

#[test]
fn cosign_legacy_tag_is_refused_with_the_wrong_key() {
    let err = refused(verify(&cosign(&["cosign-wrong.pub"]), &layout(), LEGACY));
    let text = err.to_string();
    assert!(text.contains(LEGACY), "{text}");
    assert!(text.contains(digest_of(LEGACY).as_str()), "{text}");
    assert!(text.contains("not signed by the provided keys"), "{text}");
    assert!(
        text.contains("with public key 1 (ECDSA P-256 sha256:"),
        "{text}"
    );
    assert!(
        has_failure(
            &err,
            |f| matches!(f, Failure::BadSignature(m) if m.contains("does not verify"))
        ),
        "{text}"
    );
}

#[test]
fn several_keys_verify_when_one_is_good() {
    let verified = verify(
        &cosign(&["cosign-wrong.pub", "cosign-good.pub"]),
        &layout(),
        LEGACY,
    )
    .expect("second key verifies");
    let VerifiedBy::Cosign(c) = verified.by else {
        panic!("not cosign")
    };
    assert_eq!(c.key_index, 2);
    // The same two keys as one text, comma-separated as IG's string-slice flag takes them.
    let joined = format!(
        "{},{}",
        read("cosign-wrong.pub").trim(),
        read("cosign-good.pub").trim()
    );
    let verifier = Verifier::new(&VerifierConfig {
        public_keys: vec![joined],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(verifier.cosign_keys().len(), 2);
    verify(&verifier, &layout(), LEGACY).expect("joined keys verify");
}

#[test]
fn cosign_oci11_referrer_verifies() {
    let verified = verify(&cosign(&["cosign-good.pub"]), &layout(), OCI11)
        .expect("OCI 1.1 cosign signature verifies");
    let VerifiedBy::Cosign(c) = verified.by else {
        panic!("not cosign")
    };
    assert_eq!(c.scheme, Scheme::Referrer);
    assert_eq!(c.docker_reference, "ttl.sh/signed_with_cosign_oci11");
    refused(verify(&cosign(&["cosign-wrong.pub"]), &layout(), OCI11));
}

#[test]
fn unsigned_image_is_refused_by_every_method() {
    let verifier = Verifier::new(&VerifierConfig {
        public_keys: vec![read("cosign-good.pub")],
        notation_certificates: vec![read("notation-good.crt")],
        notation_policy_document: Some(read("notation-policy.json")),
    })
    .unwrap();
    let err = refused(verify(&verifier, &layout(), UNSIGNED));
    let text = err.to_string();
    assert_eq!(err.attempts().len(), 2, "{text}");
    assert!(
        err.attempts()
            .iter()
            .all(|a| matches!(a.failure, Failure::NotFound(_))),
        "{text}"
    );
    assert!(
        text.contains(&digest_of(UNSIGNED).cosign_signature_tag()),
        "{text}"
    );
    assert!(
        text.contains("application/vnd.cncf.notary.signature"),
        "{text}"
    );
}

#[test]
fn a_good_signature_for_another_image_is_refused() {
    // The legacy image's genuine `.sig` manifest, served under the unsigned image's tag: the
    // key verifies the payload, which names the legacy image's digest.
    let sig = layout()
        .manifest_by_tag(&digest_of(LEGACY).cosign_signature_tag(), 1 << 20)
        .unwrap()
        .unwrap();
    let source = Overlay::new().tag(digest_of(UNSIGNED).cosign_signature_tag(), sig.bytes);
    let err = refused(verify(&cosign(&["cosign-good.pub"]), &source, UNSIGNED));
    assert!(
        has_failure(
            &err,
            |f| matches!(f, Failure::OtherDigest { signed, .. } if signed == digest_of(LEGACY).as_str())
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("a signature for another image"),
        "{err}"
    );

    // The OCI 1.1 referrers index of the cosign image, served as the unsigned image's: the
    // signature manifest's subject is the other image.
    let referrers = layout()
        .manifest_by_tag(&digest_of(OCI11).referrers_tag(), 1 << 20)
        .unwrap()
        .unwrap();
    let source = Overlay::new().tag(digest_of(UNSIGNED).referrers_tag(), referrers.bytes);
    let err = refused(verify(&cosign(&["cosign-good.pub"]), &source, UNSIGNED));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::OtherSubject { .. })),
        "{err}"
    );

    // Same for notation's referrers.
    let referrers = layout()
        .manifest_by_tag(&digest_of(NOTATION).referrers_tag(), 1 << 20)
        .unwrap()
        .unwrap();
    let source = Overlay::new().tag(digest_of(UNSIGNED).referrers_tag(), referrers.bytes);
    let err = refused(verify(
        &notation("notation-good.crt", &read("notation-policy.json")),
        &source,
        UNSIGNED,
    ));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::OtherSubject { .. })),
        "{err}"
    );
}

#[test]
fn a_tampered_payload_is_refused() {
    let manifest = legacy_signature_manifest();
    let layer = &manifest.layers[0];
    let payload = blob(layer);
    let altered = String::from_utf8(payload.clone())
        .unwrap()
        .replace("signed_with_cosign_legacy", "signed_with_cosign_legacx");
    assert_ne!(altered.as_bytes(), payload.as_slice());

    // A store whose payload blob was overwritten: caught by its digest before any key is tried.
    let source = Overlay::new().tampered(
        &Digest::parse(&layer.digest).unwrap(),
        altered.clone().into_bytes(),
    );
    let err = refused(verify(&cosign(&["cosign-good.pub"]), &source, LEGACY));
    assert!(
        has_failure(&err, |f| matches!(
            f,
            Failure::Source(SourceError::DigestMismatch { .. })
        )),
        "{err}"
    );
    assert!(err.to_string().contains("altered"), "{err}");

    // A registry that serves a consistent manifest for the altered payload, keeping the
    // original signature annotation: the signature does not verify.
    let mut rewritten = manifest.clone();
    rewritten.layers[0].digest = Digest::of(altered.as_bytes()).to_string();
    rewritten.layers[0].size = altered.len() as u64;
    let source = Overlay::new().content(altered.into_bytes()).tag(
        digest_of(LEGACY).cosign_signature_tag(),
        serde_json::to_vec(&rewritten).unwrap(),
    );
    let err = refused(verify(&cosign(&["cosign-good.pub"]), &source, LEGACY));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::BadSignature(_))),
        "{err}"
    );
}

#[test]
fn wrong_media_type_huge_and_truncated_signatures_are_clear_errors() {
    let tag = digest_of(LEGACY).cosign_signature_tag();
    let manifest = legacy_signature_manifest();
    let verifier = cosign(&["cosign-good.pub"]);

    // An index where a signature manifest belongs.
    let mut as_index: serde_json::Value = serde_json::to_value(&manifest).unwrap();
    as_index["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
    let source = Overlay::new().tag(tag.clone(), serde_json::to_vec(&as_index).unwrap());
    let err = refused(verify(&verifier, &source, LEGACY));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::MediaType { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("has media type \"application/vnd.oci.image.index.v1+json\""),
        "{err}"
    );

    // A payload descriptor claiming 64 MiB: refused before reading, naming the limit.
    let mut huge = manifest.clone();
    huge.layers[0].size = 64 << 20;
    let source = Overlay::new().tag(tag.clone(), serde_json::to_vec(&huge).unwrap());
    let err = refused(verify(&verifier, &source, LEGACY));
    assert!(
        has_failure(
            &err,
            |f| matches!(f, Failure::Source(SourceError::TooBig { limit, .. }) if *limit == gadget_signature::cosign::MAX_PAYLOAD_BYTES)
        ),
        "{err}"
    );
    assert!(err.to_string().contains("262144-byte limit"), "{err}");

    // A payload blob bigger than its descriptor and the cap (a lying registry).
    let big = vec![b'{'; (gadget_signature::cosign::MAX_PAYLOAD_BYTES + 10) as usize];
    let source = Overlay::new().tampered(&Digest::parse(&manifest.layers[0].digest).unwrap(), big);
    let err = refused(verify(&verifier, &source, LEGACY));
    assert!(
        has_failure(&err, |f| matches!(
            f,
            Failure::Source(SourceError::TooBig { .. })
        )),
        "{err}"
    );

    // A huge signature annotation.
    let mut long = manifest.clone();
    long.layers[0]
        .annotations
        .insert(SIGNATURE_ANNOTATION.into(), "A".repeat(1 << 20));
    let source = Overlay::new().tag(tag.clone(), serde_json::to_vec(&long).unwrap());
    let err = refused(verify(&verifier, &source, LEGACY));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::TooBig { limit: 4096, .. })),
        "{err}"
    );

    // A truncated signature (still valid base64) and one that is not base64.
    for (bad, expect) in [
        ("MEQCIE7/pE4x4eH4cbJR3oWQ", "malformed ECDSA signature"),
        ("!!notbase64", "not base64"),
    ] {
        let mut truncated = manifest.clone();
        truncated.layers[0]
            .annotations
            .insert(SIGNATURE_ANNOTATION.into(), bad.into());
        let source = Overlay::new().tag(tag.clone(), serde_json::to_vec(&truncated).unwrap());
        let err = refused(verify(&verifier, &source, LEGACY));
        assert!(err.to_string().contains(expect), "{expect:?} not in {err}");
    }

    // A manifest that is not JSON at all.
    let source = Overlay::new().tag(tag, b"\x00garbage".to_vec());
    let err = refused(verify(&verifier, &source, LEGACY));
    assert!(
        has_failure(&err, |f| matches!(
            f,
            Failure::MediaType { .. } | Failure::Malformed { .. }
        )),
        "{err}"
    );
}

#[test]
fn malformed_keys_and_certificates_are_clear_errors() {
    let config = |keys: Vec<String>| VerifierConfig {
        public_keys: keys,
        ..Default::default()
    };
    let err = Verifier::new(&config(vec!["foobar".into()])).unwrap_err();
    assert!(matches!(err, ConfigError::PublicKeyText(_)), "{err}");
    assert!(err.to_string().contains("foobar"), "{err}");

    let good = read("cosign-good.pub");
    let truncated_body = good.replace("n6u8dLv8gnPGFEoAeeRXZ9r1QUqu", "n6u8");
    let err = Verifier::new(&config(vec![good.clone(), truncated_body])).unwrap_err();
    assert!(
        matches!(err, ConfigError::PublicKey { index: 2, .. }),
        "{err}"
    );

    let cut = good.lines().take(2).collect::<Vec<_>>().join("\n");
    let err = Verifier::new(&config(vec![cut])).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    // A certificate where a public key belongs, and the reverse.
    let err = Verifier::new(&config(vec![read("notation-good.crt")])).unwrap_err();
    assert!(err.to_string().contains("expected \"PUBLIC KEY\""), "{err}");
    let err = Verifier::new(&VerifierConfig {
        notation_certificates: vec![good],
        notation_policy_document: Some(read("notation-policy.json")),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, ConfigError::Certificate { index: 1, .. }),
        "{err}"
    );

    assert!(matches!(
        Verifier::new(&VerifierConfig::default()),
        Err(ConfigError::NothingToVerifyWith)
    ));
    let err = Verifier::new(&VerifierConfig {
        notation_certificates: vec![read("notation-good.crt")],
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, ConfigError::CertificatesWithoutPolicy),
        "{err}"
    );
}

#[test]
fn inspektor_gadget_default_key_parses_and_does_not_verify_the_fixtures() {
    let verifier = Verifier::new(&VerifierConfig {
        public_keys: vec![gadget_signature::INSPEKTOR_GADGET_PUBLIC_KEY.into()],
        ..Default::default()
    })
    .unwrap();
    refused(verify(&verifier, &layout(), LEGACY));
}

#[test]
fn missing_signature_artifacts_are_refused_naming_what_is_missing() {
    // The `.sig` manifest is there but its payload blob is not.
    let manifest = legacy_signature_manifest();
    let payload = Digest::parse(&manifest.layers[0].digest).unwrap();
    let source = Overlay::new().hide(&payload);
    let err = refused(verify(&cosign(&["cosign-good.pub"]), &source, LEGACY));
    assert!(
        has_failure(
            &err,
            |f| matches!(f, Failure::Missing { what, .. } if what.contains(payload.as_str()))
        ),
        "{err}"
    );

    // The referrers index names a signature manifest the registry does not have.
    let referrers = layout().referrers(&digest_of(OCI11)).unwrap();
    let source = Overlay::new().hide(&Digest::parse(&referrers[0].digest).unwrap());
    let err = refused(verify(&cosign(&["cosign-good.pub"]), &source, OCI11));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::Missing { .. })),
        "{err}"
    );
}

#[test]
fn the_verifier_works_through_a_trait_object_and_across_threads() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let verifier = cosign(&["cosign-good.pub"]);
    shareable(&verifier);
    let source: Box<dyn ArtifactSource> = Box::new(layout());
    let digest = digest_of(OCI11);
    let subject = Subject {
        name: OCI11,
        repository: repository(OCI11),
        digest: &digest,
    };
    verifier
        .verify(source.as_ref(), &subject, SystemTime::now())
        .expect("verifies through dyn ArtifactSource");
}

// ---- notation -----------------------------------------------------------------------------

#[test]
fn notation_good_certificate_verifies_under_the_permissive_policy_logging_expiry() {
    let verifier = notation("notation-good.crt", &read("notation-policy.json"));
    let verified = verify(&verifier, &layout(), NOTATION).expect("notation signature verifies");
    let VerifiedBy::Notation(n) = &verified.by else {
        panic!("not notation: {verified:?}")
    };
    assert_eq!(n.level, Level::Permissive);
    assert_eq!(n.policy, "test-policy");
    assert!(n.signer.as_deref().unwrap().contains("CN=test.io"), "{n:?}");
    // The certificate expired on 2025-10-21: permissive logs it, and says so.
    assert!(
        verified
            .warnings
            .iter()
            .any(|w| w.contains("expired at 2025-10-21T11:41:22Z")
                && w.contains("logged, not enforced")),
        "{:?}",
        verified.warnings
    );
}

#[test]
fn notation_wrong_certificate_is_refused() {
    let err = refused(verify(
        &notation("notation-wrong.crt", &read("notation-policy.json")),
        &layout(),
        NOTATION,
    ));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::Untrusted)),
        "{err}"
    );
    assert!(
        err.to_string().contains("CN=xyz.io"),
        "the certificate tried is named: {err}"
    );
}

#[test]
fn notation_several_certificates_verify_when_one_is_good() {
    let verifier = Verifier::new(&VerifierConfig {
        notation_certificates: vec![read("notation-wrong.crt"), read("notation-good.crt")],
        notation_policy_document: Some(read("notation-policy.json")),
        ..Default::default()
    })
    .unwrap();
    verify(&verifier, &layout(), NOTATION).expect("one good certificate is enough");
}

#[test]
fn notation_strict_policy_refuses_the_expired_certificate() {
    let strict = read("notation-policy.json").replace("permissive", "strict");
    let verifier = notation("notation-good.crt", &strict);
    let err = refused(verify(&verifier, &layout(), NOTATION));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::CertificateExpired { .. })),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("expired at 2025-10-21T11:41:22Z"), "{text}");
    assert!(text.contains("level strict"), "{text}");

    // While the certificate was valid, the same strict policy verifies without warnings: the
    // refusal above is the expiry, not strictness as such.
    let verified =
        verify_at(&verifier, &layout(), NOTATION, at("2025-10-20T13:00:00Z")).expect("valid then");
    assert!(verified.warnings.is_empty(), "{:?}", verified.warnings);
    // And before it was issued, strict refuses again.
    let err = refused(verify_at(
        &verifier,
        &layout(),
        NOTATION,
        at("2025-10-19T00:00:00Z"),
    ));
    assert!(
        has_failure(&err, |f| matches!(
            f,
            Failure::CertificateNotYetValid { .. }
        )),
        "{err}"
    );
}

#[test]
fn notation_untrusted_identity_and_audit_level() {
    // Trusting only another subject: authenticity fails (enforced by permissive).
    let other_identity = read("notation-policy.json").replace("CN=test.io", "CN=other.io");
    let err = refused(verify(
        &notation("notation-good.crt", &other_identity),
        &layout(),
        NOTATION,
    ));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::UntrustedIdentity { .. })),
        "{err}"
    );

    // audit logs authenticity: the wrong certificate passes with a warning saying why.
    let audit = read("notation-policy.json").replace("permissive", "audit");
    let verified = verify(&notation("notation-wrong.crt", &audit), &layout(), NOTATION)
        .expect("audit only logs");
    assert!(
        verified
            .warnings
            .iter()
            .any(|w| w.contains("does not lead to any of the given certificates")),
        "{:?}",
        verified.warnings
    );

    // A policy scoped to another repository does not apply.
    let scoped = read("notation-policy.json").replace(r#"[ "*" ]"#, r#"[ "ttl.sh/other" ]"#);
    let err = refused(verify(
        &notation("notation-good.crt", &scoped),
        &layout(),
        NOTATION,
    ));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::NoPolicy(_))),
        "{err}"
    );
}

#[test]
fn notation_tampered_envelope_is_refused() {
    // The signature manifest the referrers index lists first, and its envelope.
    let referrers = layout().referrers(&digest_of(NOTATION)).unwrap();
    let manifest_digest = Digest::parse(&referrers[0].digest).unwrap();
    let manifest: Manifest = serde_json::from_slice(
        &layout()
            .manifest(&manifest_digest, 1 << 20)
            .unwrap()
            .unwrap()
            .bytes,
    )
    .unwrap();
    let envelope: serde_json::Value = serde_json::from_slice(&blob(&manifest.layers[0])).unwrap();

    // Re-point the signed payload at the unsigned image, keeping the signature.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = b64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let altered_payload = String::from_utf8(payload)
        .unwrap()
        .replace(digest_of(NOTATION).as_str(), digest_of(UNSIGNED).as_str());
    let mut altered = envelope.clone();
    altered["payload"] = b64.encode(altered_payload).into();
    let altered = serde_json::to_vec(&altered).unwrap();

    // Serve it as a referrer of the unsigned image, as a hostile registry would.
    let mut sig_manifest = manifest.clone();
    sig_manifest.layers[0].digest = Digest::of(&altered).to_string();
    sig_manifest.layers[0].size = altered.len() as u64;
    sig_manifest.subject.as_mut().unwrap().digest = digest_of(UNSIGNED).to_string();
    let sig_manifest = serde_json::to_vec(&sig_manifest).unwrap();
    let entry = Descriptor {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: Digest::of(&sig_manifest).to_string(),
        size: sig_manifest.len() as u64,
        artifact_type: Some("application/vnd.cncf.notary.signature".into()),
        annotations: Default::default(),
    };
    let index = add_to_referrers_index(None, &entry).unwrap();
    let source = Overlay::new()
        .content(altered)
        .content(sig_manifest)
        .tag(digest_of(UNSIGNED).referrers_tag(), index);
    let err = refused(verify(
        &notation("notation-good.crt", &read("notation-policy.json")),
        &source,
        UNSIGNED,
    ));
    assert!(
        has_failure(
            &err,
            |f| matches!(f, Failure::BadSignature(m) if m.contains("envelope does not verify"))
        ),
        "{err}"
    );
}

// ---- signing ------------------------------------------------------------------------------

/// The unsigned fixture image, signed with `key` in cosign's legacy form, as a source.
fn signed_legacy(key: &SigningKey) -> Overlay {
    let image = descriptor_of(UNSIGNED);
    let signature = key.sign(repository(UNSIGNED), &image).unwrap();
    let mut source = Overlay::new().tag(
        signature.legacy_tag.clone(),
        signature.legacy.manifest.clone(),
    );
    for blob in signature.legacy.blobs {
        source = source.content(blob);
    }
    source
}

fn verifier_for(key: &SigningKey) -> Verifier {
    Verifier::new(&VerifierConfig {
        public_keys: vec![key.public_key_pem().unwrap()],
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn signing_round_trips_through_the_verifier() {
    let key = SigningKey::generate().unwrap();
    let source = signed_legacy(&key);
    let verified = verify(&verifier_for(&key), &source, UNSIGNED)
        .expect("our signature verifies with our key");
    let VerifiedBy::Cosign(c) = verified.by else {
        panic!("not cosign")
    };
    assert_eq!(c.scheme, Scheme::LegacyTag);
    assert_eq!(c.docker_reference, repository(UNSIGNED));

    // Another key (ours, or the fixture's) refuses it.
    let other = SigningKey::generate().unwrap();
    let err = refused(verify(&verifier_for(&other), &source, UNSIGNED));
    assert!(
        has_failure(&err, |f| matches!(f, Failure::BadSignature(_))),
        "{err}"
    );
    refused(verify(&cosign(&["cosign-good.pub"]), &source, UNSIGNED));

    // The key survives its PEM file.
    let reread = SigningKey::from_pem(&key.to_pem().unwrap()).unwrap();
    verify(&verifier_for(&reread), &source, UNSIGNED).expect("re-read key verifies");
}

#[test]
fn signing_in_the_referrers_form_verifies() {
    let key = SigningKey::generate().unwrap();
    let image = descriptor_of(UNSIGNED);
    let signature = key.sign(repository(UNSIGNED), &image).unwrap();
    let index = add_to_referrers_index(None, &signature.referrer.descriptor).unwrap();
    let mut source = Overlay::new()
        .content(signature.referrer.manifest.clone())
        .tag(signature.referrers_tag.clone(), index);
    for blob in signature.referrer.blobs {
        source = source.content(blob);
    }
    let verified = verify(&verifier_for(&key), &source, UNSIGNED).expect("referrer form verifies");
    let VerifiedBy::Cosign(c) = verified.by else {
        panic!("not cosign")
    };
    assert_eq!(c.scheme, Scheme::Referrer);
    assert_eq!(c.signature_manifest, signature.referrer.digest);

    // Our manifests have the fixtures' shape: same media types and annotation as real cosign.
    let ours: Manifest = serde_json::from_slice(&signature.legacy.manifest).unwrap();
    let theirs = legacy_signature_manifest();
    assert_eq!(ours.config.media_type, theirs.config.media_type);
    assert_eq!(ours.layers[0].media_type, theirs.layers[0].media_type);
    assert!(
        ours.layers[0]
            .annotations
            .contains_key(SIGNATURE_ANNOTATION)
    );
    let payload: serde_json::Value = serde_json::from_slice(&signature.payload).unwrap();
    let real: serde_json::Value = serde_json::from_slice(&blob(&theirs.layers[0])).unwrap();
    assert_eq!(payload["critical"]["type"], real["critical"]["type"]);
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        image.digest.as_str()
    );
}

#[test]
fn signing_key_files() {
    assert!(SigningKey::from_pem("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----")
        .unwrap_err()
        .to_string()
        .contains("cosign's encrypted key format"));
    assert!(SigningKey::from_pem(&read("cosign-good.pub")).is_err());
    assert!(SigningKey::from_pem("garbage").is_err());
    let pem = SigningKey::generate().unwrap().to_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
}

#[test]
fn the_layout_names_what_the_fixture_readme_says() {
    // Guards the other tests: if the fixture changed shape, they would test nothing.
    let layout = layout();
    for reference in [LEGACY, OCI11, NOTATION, UNSIGNED] {
        let d = layout
            .resolve(reference)
            .unwrap_or_else(|| panic!("{reference}"));
        assert_eq!(
            d.media_type, "application/vnd.oci.image.index.v1+json",
            "{reference}"
        );
        assert_eq!(
            d.annotations.get(REF_NAME_ANNOTATION).map(String::as_str),
            Some(reference)
        );
    }
    assert!(
        layout
            .resolve(&digest_of(LEGACY).cosign_signature_tag())
            .is_some()
    );
    assert_eq!(layout.referrers(&digest_of(OCI11)).unwrap().len(), 1);
    assert_eq!(layout.referrers(&digest_of(NOTATION)).unwrap().len(), 2);
    assert!(layout.referrers(&digest_of(UNSIGNED)).unwrap().is_empty());
}
