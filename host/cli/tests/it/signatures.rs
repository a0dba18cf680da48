//! Signature verification, IG's policy (issue 20), against Debian's docker-registry and the real
//! signed images in ../shared/fixtures/ig-signatures (cosign legacy tag, cosign OCI 1.1
//! referrers, notation, unsigned), each copied into the registry with skopeo together with its
//! signature artifacts.
//!
//! The fixture images are signature test data, not runnable gadgets (they have no eBPF layer):
//! a run that verifies goes on to fail for that named reason, one that does not is refused with
//! the verifier's message, and a refusal leaves the store's index.json as it was.
//!
//! Needs docker-registry and skopeo (`make test` provides them); root only for the tests that
//! load a gadget we build.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::registry::{DockerRegistry, skopeo};
use crate::common::*;

const NOT_SIGNED: &str = "the image was not signed by the provided keys or certificates";
const NO_EBPF: &str = "the image has no layer of media type";
/// The fixture image IG's own tests use as unsigned.
const UNSIGNED: &str = "ghcr.io/inspektor-gadget/gadget/unsigned:francis-signature-unit-tests";

fn fixtures() -> PathBuf {
    let dir = repo_root().join("../shared/fixtures/ig-signatures");
    assert!(
        dir.join("oci-store/index.json").is_file(),
        "{} is missing",
        dir.display()
    );
    dir
}

fn key(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

/// The fixture layout's digest for a reference name.
fn fixture_digest(name: &str) -> Option<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("oci-store/index.json")).unwrap())
            .unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .map(|m| m["digest"].as_str().unwrap().to_string())
}

/// Copies `ttl.sh/<name>:latest` (or `unsigned`) into the registry as `<host>/<name>:latest`,
/// with its `.sig` tag and referrers tag unless `with_signatures` is false.
fn publish(reg: &DockerRegistry, source: &str, name: &str, with_signatures: bool) -> String {
    let store = fixtures().join("oci-store");
    let target = format!("{}/{name}", reg.host());
    let copy = |from: &str, to: &str, preserve: bool| {
        let mut args = vec!["copy", "--all", "--dest-tls-verify=false"];
        if preserve {
            args.push("--preserve-digests");
        }
        let src = format!("oci:{}:{from}", store.display());
        let dst = format!("docker://{to}");
        args.push(&src);
        args.push(&dst);
        skopeo(&args);
    };
    copy(source, &format!("{target}:latest"), true);
    if with_signatures {
        let digest = fixture_digest(source).unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        let legacy = format!("sha256-{hex}.sig");
        if fixture_digest(&legacy).is_some() {
            copy(&legacy, &format!("{target}:{legacy}"), true);
        }
        let referrers = format!("sha256-{hex}");
        if fixture_digest(&referrers).is_some() {
            // The referrers index is rewritten (skopeo adds its media type); the referrer
            // manifests it lists keep their digests.
            copy(&referrers, &format!("{target}:{referrers}"), false);
        }
    }
    format!("{target}:latest")
}

fn index_of(store: &Path) -> String {
    std::fs::read_to_string(store.join("index.json")).unwrap_or_default()
}

/// `gadget run REF …` in `store` with this test's own (absent) host key: only the keys given
/// are trusted.
fn run(store: &Path, reference: &str, extra: &[&str]) -> Output {
    let nokey = store.with_extension("no-host-key.pem");
    let mut args = vec![
        "--signing-key",
        nokey.to_str().unwrap(),
        "run",
        reference,
        "--timeout",
        "1",
    ];
    args.extend_from_slice(extra);
    gadget_in(store, &args)
}

/// A refusal: the verifier's message, naming the image, and the store untouched.
fn refused(store: &Path, reference: &str, extra: &[&str], why: &str) -> String {
    let before = index_of(store);
    let err = fails(&run(store, reference, extra));
    assert!(err.contains(why), "{err}");
    assert!(err.contains(reference), "{err}");
    assert_eq!(index_of(store), before, "a refusal changed the store");
    err
}

/// `image verify REFERENCE --public-key-file KEY`.
fn verify_args<'a>(reference: &'a str, public_key: &'a str) -> [&'a str; 5] {
    [
        "image",
        "verify",
        reference,
        "--public-key-file",
        public_key,
    ]
}

/// Verified, then stopped because the fixture is not a gadget.
fn verified(store: &Path, reference: &str, extra: &[&str]) {
    let err = fails(&run(store, reference, extra));
    assert!(!err.contains(NOT_SIGNED), "{err}");
    assert!(err.contains(NO_EBPF), "{err}");
}

#[test]
fn cosign_both_schemes_verify_with_the_good_key_and_are_refused_with_others() {
    let reg = DockerRegistry::start();
    let good = key("cosign-good.pub");
    let wrong = key("cosign-wrong.pub");
    for name in ["signed_with_cosign_legacy", "signed_with_cosign_oci11"] {
        let reference = publish(&reg, &format!("ttl.sh/{name}:latest"), name, true);
        let store = tempfile::tempdir().unwrap();
        let err = refused(
            store.path(),
            &reference,
            &["--public-key-file", &wrong],
            NOT_SIGNED,
        );
        assert!(
            err.contains("public key 1"),
            "the key tried is named: {err}"
        );
        // The defaults (IG's key, no host key here) do not verify these either.
        refused(store.path(), &reference, &[], NOT_SIGNED);
        verified(store.path(), &reference, &["--public-key-file", &good]);
        // Several keys, one good; IG's flag with PEM text.
        let wrong_pem = std::fs::read_to_string(&wrong).unwrap();
        verified(
            store.path(),
            &reference,
            &["--public-keys", &wrong_pem, "--public-key-file", &good],
        );
    }
}

#[test]
fn notation_verifies_with_the_good_certificate_and_policy_only() {
    let reg = DockerRegistry::start();
    let reference = publish(
        &reg,
        "ttl.sh/signed_with_notation:latest",
        "signed_with_notation",
        true,
    );
    let store = tempfile::tempdir().unwrap();
    let policy = std::fs::read_to_string(fixtures().join("notation-policy.json")).unwrap();
    let cert = |name: &str| std::fs::read_to_string(fixtures().join(name)).unwrap();
    let good = cert("notation-good.crt");
    let wrong = cert("notation-wrong.crt");
    verified(
        store.path(),
        &reference,
        &[
            "--notation-certificates",
            &good,
            "--notation-policy-document",
            &policy,
        ],
    );
    refused(
        store.path(),
        &reference,
        &[
            "--notation-certificates",
            &wrong,
            "--notation-policy-document",
            &policy,
        ],
        NOT_SIGNED,
    );
}

#[test]
fn unsigned_images_and_missing_or_misplaced_signatures_are_refused() {
    let reg = DockerRegistry::start();
    let good = key("cosign-good.pub");
    let store = tempfile::tempdir().unwrap();
    let unsigned = publish(&reg, UNSIGNED, "unsigned", false);
    refused(
        store.path(),
        &unsigned,
        &["--public-key-file", &good],
        NOT_SIGNED,
    );
    // The registry serves the image but not its signature.
    let bare = publish(
        &reg,
        "ttl.sh/signed_with_cosign_legacy:latest",
        "nosig",
        false,
    );
    refused(
        store.path(),
        &bare,
        &["--public-key-file", &good],
        NOT_SIGNED,
    );
    // A signature over another digest: the legacy image's signature manifest tagged for the
    // unsigned image's digest.
    let unsigned_digest = fixture_digest(UNSIGNED).unwrap();
    let legacy_digest = fixture_digest("ttl.sh/signed_with_cosign_legacy:latest").unwrap();
    let legacy_sig = format!("sha256-{}.sig", &legacy_digest[7..]);
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!(
            "oci:{}:{legacy_sig}",
            fixtures().join("oci-store").display()
        ),
        &format!(
            "docker://{}/unsigned:sha256-{}.sig",
            reg.host(),
            &unsigned_digest[7..]
        ),
    ]);
    refused(
        store.path(),
        &unsigned,
        &["--public-key-file", &good],
        NOT_SIGNED,
    );
}

#[test]
fn verification_off_warns_and_allowed_gadgets_filters_by_digest() {
    let reg = DockerRegistry::start();
    let store = tempfile::tempdir().unwrap();
    let unsigned = publish(&reg, UNSIGNED, "unsigned", false);
    // The one test that turns verification off: the image gets past it, with IG's warning.
    let err = fails(&run(store.path(), &unsigned, &["--verify-image=false"]));
    assert!(
        err.contains("gadget signature verification is disabled due to using corresponding option"),
        "{err}"
    );
    assert!(err.contains(NO_EBPF), "{err}");
    // allowed-gadgets applies whether or not signatures are verified.
    let store = tempfile::tempdir().unwrap();
    let digest = fixture_digest(UNSIGNED).unwrap();
    let repo = format!("{}/unsigned", reg.host());
    refused(
        store.path(),
        &unsigned,
        &[
            "--verify-image=false",
            "--allowed-gadgets",
            &format!("{repo}@sha256:{}", "0".repeat(64)),
        ],
        "is not part of allowed gadgets",
    );
    let err = fails(&run(
        store.path(),
        &unsigned,
        &[
            "--verify-image=false",
            "--allowed-gadgets",
            &format!("{repo}@{digest}"),
        ],
    ));
    assert!(err.contains(NO_EBPF), "{err}");
}

#[test]
#[ignore = "needs root"]
fn an_image_we_build_sign_and_push_verifies_with_our_key_only() {
    let reg = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let builder = work.path().join("builder");
    let host_key = work.path().join("host-key.pem");
    let reference = format!("{}/ours/profile_blockio:v1", reg.host());
    let build = |args: &[&str]| {
        let mut all = vec!["--signing-key", host_key.to_str().unwrap()];
        all.extend_from_slice(args);
        gadget_in(&builder, &all)
    };
    ok(&build(&[
        "image",
        "build",
        profile_blockio_dir().to_str().unwrap(),
        "-t",
        &reference,
    ]));
    // Our own cosign-compatible key, made with openssl.
    let signing = work.path().join("cosign.key");
    let public = work.path().join("cosign.pub");
    let openssl = |args: &[&str], out: &Path| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .arg("-out")
            .arg(out)
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl {args:?} failed");
    };
    let signing_str = signing.to_str().unwrap();
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        &signing,
    );
    openssl(&["pkey", "-pubout", "-in", signing_str], &public);
    ok(&build(&["image", "sign", &reference, "--key", signing_str]));
    let public = public.to_str().unwrap();
    let out = ok(&build(&verify_args(&reference, public)));
    assert!(out.contains("verified"), "{out}");
    // The host key signed it at build time, and is trusted by default.
    ok(&build(&["image", "verify", &reference]));
    ok(&build(&["image", "push", &reference]));
    // A fresh store pulls the image and its signatures; our key verifies, another does not.
    let other = tempfile::tempdir().unwrap();
    let out = ok(&gadget_in(other.path(), &["image", "pull", &reference]));
    assert!(out.contains("pulled"), "{out}");
    let out = ok(&gadget_in(other.path(), &verify_args(&reference, public)));
    assert!(out.contains("verified"), "{out}");
    let wrong = key("cosign-wrong.pub");
    let err = fails(&gadget_in(other.path(), &verify_args(&reference, &wrong)));
    assert!(err.contains(NOT_SIGNED), "{err}");
    // Tampering with a stored layer after signing is caught before anything loads.
    let blobs = other.path().join("blobs/sha256");
    let mut largest: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(&blobs).unwrap() {
        let e = e.unwrap();
        let len = e.metadata().unwrap().len();
        if largest.as_ref().is_none_or(|(l, _)| len > *l) {
            largest = Some((len, e.path()));
        }
    }
    let (_, layer) = largest.unwrap();
    let mut bytes = std::fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    let err = fails(&gadget_in(
        other.path(),
        &[
            "run",
            &reference,
            "--public-key-file",
            public,
            "--timeout",
            "1",
        ],
    ));
    assert!(
        err.contains("no longer matches what was signed") || err.contains("does not match"),
        "{err}"
    );
}
