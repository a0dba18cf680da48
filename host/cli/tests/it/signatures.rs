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

use crate::common::daemon::Daemon;
use crate::common::registry::{DockerRegistry, FakeRegistry, Reply, skopeo};
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

/// What a store holds: index.json's text and every file under it with its size (a refusal
/// must leave all of it as it was).
fn index_of(store: &Path) -> String {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                walk(&e.path(), root, out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.push(format!("{rel} {}", m.len()));
            }
        }
    }
    let mut files = Vec::new();
    walk(store, store, &mut files);
    files.sort();
    format!(
        "{}\n{}",
        std::fs::read_to_string(store.join("index.json")).unwrap_or_default(),
        files.join("\n")
    )
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
    // An empty layout first (opening a store makes one), so what is compared is content.
    ok(&gadget_in(store, &["image", "list"]));
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
    // The good certificate expired on 2025-10-21: a strict policy refuses it, saying so.
    let strict = policy.replace("permissive", "strict");
    let err = refused(
        store.path(),
        &reference,
        &[
            "--notation-certificates",
            &good,
            "--notation-policy-document",
            &strict,
        ],
        NOT_SIGNED,
    );
    assert!(
        err.contains("expired at 2025-10-21T11:41:22Z") && err.contains("level strict"),
        "{err}"
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
    // The good key verifies that signature, whose payload names the other image's digest.
    let err = refused(
        store.path(),
        &unsigned,
        &["--public-key-file", &good],
        NOT_SIGNED,
    );
    assert!(
        err.contains("a signature for another image") && err.contains(&legacy_digest),
        "{err}"
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
    let (signing, public) = openssl_key_pair(work.path(), "cosign");
    ok(&build(&[
        "image",
        "sign",
        &reference,
        "--key",
        signing.to_str().unwrap(),
    ]));
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

/// A P-256 key pair made with openssl (cosign's kind): (private key file, public key file).
fn openssl_key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let signing = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let status = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&signing)
        .status()
        .unwrap();
    assert!(status.success());
    let status = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&signing)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(status.success());
    (signing, public)
}

/// The reference names in an exported archive's index.json.
fn archive_names(archive: &Path) -> Vec<String> {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == "index.json" {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            return index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    m["annotations"]["org.opencontainers.image.ref.name"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
        }
    }
    panic!("no index.json in {}", archive.display());
}

#[test]
#[ignore = "needs root"]
fn export_carries_signatures_and_import_verifies_them() {
    let work = tempfile::tempdir().unwrap();
    let reference = "local.test/signed/profile_blockio:v1";
    // `gadget` in `store` with its own host key (absent unless something makes it).
    let in_store = |store: &Path, args: &[&str]| {
        let host_key = store.with_extension("host-key.pem");
        let mut all = vec!["--signing-key", host_key.to_str().unwrap()];
        all.extend_from_slice(args);
        gadget_in(store, &all)
    };
    let a = work.path().join("a");
    ok(&in_store(
        &a,
        &[
            "image",
            "build",
            profile_blockio_dir().to_str().unwrap(),
            "-t",
            reference,
        ],
    ));
    let (signing, public) = openssl_key_pair(work.path(), "cosign");
    ok(&in_store(
        &a,
        &[
            "image",
            "sign",
            reference,
            "--key",
            signing.to_str().unwrap(),
        ],
    ));
    let archive = work.path().join("signed.tar");
    ok(&in_store(
        &a,
        &["image", "export", reference, archive.to_str().unwrap()],
    ));
    // The archive names the image and both signature tags of its digest.
    let names = archive_names(&archive);
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], reference);
    let legacy = names.iter().find(|n| n.ends_with(".sig")).unwrap();
    let hex = legacy
        .strip_prefix("local.test/signed/profile_blockio:sha256-")
        .and_then(|t| t.strip_suffix(".sig"))
        .unwrap();
    assert!(
        names.contains(&format!("local.test/signed/profile_blockio:sha256-{hex}")),
        "{names:?}"
    );
    let public = public.to_str().unwrap();

    // The right key: imported, then verified (and runnable) from the new store.
    let b = work.path().join("b");
    let out = ok(&in_store(
        &b,
        &[
            "image",
            "import",
            archive.to_str().unwrap(),
            "--public-key-file",
            public,
        ],
    ));
    assert!(out.contains(&format!("sha256:{hex}")), "{out}");
    let out = ok(&in_store(
        &b,
        &["image", "verify", reference, "--public-key-file", public],
    ));
    assert!(
        out.contains("verified") && out.contains("public key"),
        "{out}"
    );
    // Another key: B's own host key did not sign it.
    let err = fails(&in_store(&b, &["image", "verify", reference]));
    assert!(err.contains(NOT_SIGNED), "{err}");

    // A wrong key: refused, naming the image and the keys tried; the store is as it was.
    let c = work.path().join("c");
    ok(&in_store(&c, &["image", "list"]));
    let before = index_of(&c);
    let wrong = key("cosign-wrong.pub");
    let err = fails(&in_store(
        &c,
        &[
            "image",
            "import",
            archive.to_str().unwrap(),
            "--public-key-file",
            &wrong,
        ],
    ));
    assert!(err.contains(NOT_SIGNED), "{err}");
    assert!(err.contains(reference), "{err}");
    assert!(err.contains("public key"), "{err}");
    assert_eq!(index_of(&c), before, "a refused import changed the store");
    // --trust vouches for it: imported, and signed by C's host key, which C trusts.
    ok(&in_store(
        &c,
        &[
            "image",
            "import",
            "--trust",
            archive.to_str().unwrap(),
            "--public-key-file",
            &wrong,
        ],
    ));
    let out = ok(&in_store(&c, &["image", "verify", reference]));
    assert!(out.contains("verified"), "{out}");
    // The archive's own signatures came along too.
    ok(&in_store(
        &c,
        &[
            "image",
            "verify",
            reference,
            &format!("--public-keys={}", std::fs::read_to_string(public).unwrap()),
        ],
    ));
}

/// `gadget run IMAGE --detach --disk DISK` with `flags`, and `gadget run -f MANIFEST --detach`
/// with `manifest_flags` for the same image with `manifest_params` (more `paramValues` lines),
/// against `d`.
fn detached(
    d: &Daemon,
    reference: &str,
    disk: &str,
    flags: &[&str],
    manifest_params: &str,
    manifest_flags: &[&str],
) -> (Output, Output) {
    let mut args = vec!["run", reference, "--detach", "--disk", disk];
    args.extend_from_slice(flags);
    let by_flags = d.cli(&args);
    let manifest = d.dir.join("unverified.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: 1\nkind: instance-spec\nimage: {reference}\nparamValues:\n  operator.oci.ebpf.disk: {disk}\n{manifest_params}"
        ),
    )
    .unwrap();
    let mut args = vec!["run", "-f", manifest.to_str().unwrap(), "--detach"];
    args.extend_from_slice(manifest_flags);
    (by_flags, d.cli(&args))
}

#[test]
#[ignore = "needs root"]
fn a_request_turns_verification_off_only_where_the_daemon_allows_it() {
    let work = tempfile::tempdir().unwrap();
    // Signed at build time by a key of its own, which no daemon here trusts.
    let (other, other_pub) = openssl_key_pair(work.path(), "other");
    let reference = "local.test/unverified/profile_blockio:v1";
    let dev = LoopDevice::new("sigdaemon");
    let build = |d: &Daemon| {
        ok(&d.cli(&[
            "--signing-key",
            other.to_str().unwrap(),
            "image",
            "build",
            profile_blockio_dir().to_str().unwrap(),
            "-t",
            reference,
        ]));
    };
    let off_in_manifest = "  operator.oci.verify-image: \"false\"\n";
    let not_allowed = "which this daemon does not allow";

    // A daemon with the default policy.
    let d = Daemon::new();
    build(&d);
    let before = index_of(&d.store());
    // The client trusts the key; the daemon does not, and its policy is the one applied.
    let trusting = ["--public-key-file", other_pub.to_str().unwrap()];
    let (flags, manifest) = detached(&d, reference, &dev.name, &trusting, "", &trusting);
    for out in [flags, manifest] {
        let err = fails(&out);
        assert!(err.contains(NOT_SIGNED) && err.contains(reference), "{err}");
    }
    // Turning verification off is a request the daemon refuses, by flag and by manifest.
    let off = ["--verify-image=false"];
    let (flags, manifest) = detached(&d, reference, &dev.name, &off, off_in_manifest, &[]);
    let err = fails(&flags);
    assert!(
        err.contains(not_allowed)
            && err.contains("--allow-unverified-requests")
            && err.contains(reference),
        "{err}"
    );
    let err = fails(&manifest);
    assert!(
        err.contains(not_allowed) && err.contains(reference),
        "{err}"
    );
    assert!(d.instances().is_empty());
    assert_eq!(
        index_of(&d.store()),
        before,
        "a refused request changed the store"
    );
    // In the foreground a manifest cannot turn it off either: only the command's own flags.
    let manifest = d.dir.join("unverified.yaml");
    let err = fails(&d.cli(&["run", "-f", manifest.to_str().unwrap(), "--timeout", "1"]));
    assert!(err.contains("only this command's own settings"), "{err}");
    drop(d);

    // A daemon that allows it: the same requests run, with warnings naming the image.
    let d = Daemon::with_flags(&["--allow-unverified-requests"], None);
    build(&d);
    // Allowing is not turning off: a request that does not ask is still verified.
    let (flags, manifest) = detached(&d, reference, &dev.name, &trusting, "", &trusting);
    for out in [flags, manifest] {
        let err = fails(&out);
        assert!(err.contains(NOT_SIGNED), "{err}");
    }
    let (flags, manifest) = detached(&d, reference, &dev.name, &off, off_in_manifest, &[]);
    let id = ok(&flags);
    assert_eq!(id.trim().len(), 32, "{id}");
    let id2 = ok(&manifest);
    assert_eq!(id2.trim().len(), 32, "{id2}");
    assert_eq!(d.instances().len(), 2);
    let log = d.log();
    assert!(
        log.contains(&format!(
            "running {reference} without signature verification"
        )) && log.contains(
            "gadget signature verification is disabled due to using corresponding option"
        ),
        "{log}"
    );
    d.ok(&["delete", id.trim(), id2.trim()]);
}

/// A blob of the fixture layout.
fn fixture_blob(digest: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("oci-store/blobs/sha256").join(&digest[7..])).unwrap()
}

/// The fixture layout's media type for a reference name.
fn fixture_media_type(name: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("oci-store/index.json")).unwrap())
            .unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .map(|m| m["mediaType"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn malformed_keys_and_certificates_are_clear_errors_and_load_nothing() {
    let reg = DockerRegistry::start();
    let reference = publish(
        &reg,
        "ttl.sh/signed_with_cosign_legacy:latest",
        "signed_with_cosign_legacy",
        true,
    );
    let store = tempfile::tempdir().unwrap();
    ok(&gadget_in(store.path(), &["image", "list"]));
    let before = index_of(store.path());
    let not_a_key = store.path().with_extension("not-a-key.pem");
    std::fs::write(&not_a_key, "this is not a key\n").unwrap();
    let cert = std::fs::read_to_string(fixtures().join("notation-good.crt")).unwrap();
    let policy = std::fs::read_to_string(fixtures().join("notation-policy.json")).unwrap();
    let garbage_pem = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n";
    let broken_cert = cert.replace(&cert[40..80], "!!!!");
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "--public-keys of garbage",
            vec!["--public-keys".into(), "garbage".into()],
            "public keys",
        ),
        (
            "--public-keys of a PEM block that is no key",
            vec![format!("--public-keys={garbage_pem}")],
            "public key 1",
        ),
        (
            "--public-key-file of a text file",
            vec!["--public-key-file".into(), not_a_key.display().to_string()],
            "public keys",
        ),
        (
            "--public-key-file of a certificate",
            vec![
                "--public-key-file".into(),
                fixtures().join("notation-good.crt").display().to_string(),
            ],
            "public key",
        ),
        (
            "a malformed notation certificate",
            vec![
                format!("--notation-certificates={broken_cert}"),
                format!("--notation-policy-document={policy}"),
            ],
            "notation certificate",
        ),
        (
            "a notation certificate of garbage",
            vec![
                "--notation-certificates".into(),
                "garbage".into(),
                format!("--notation-policy-document={policy}"),
            ],
            "notation certificates",
        ),
    ];
    for (what, flags, why) in cases {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let err = fails(&run(store.path(), &reference, &flags));
        assert!(err.contains(why), "{what}: {err}");
        assert!(!err.contains(NO_EBPF), "{what}: went on to load: {err}");
        assert_eq!(index_of(store.path()), before, "{what} changed the store");
    }
}

#[test]
fn hostile_signature_artifacts_are_refused_within_their_limits() {
    let top_name = "ttl.sh/signed_with_cosign_legacy:latest";
    let top_digest = fixture_digest(top_name).unwrap();
    let top = fixture_blob(&top_digest);
    let top_type = fixture_media_type(top_name);
    let hex = top_digest[7..].to_string();
    let sig_name = format!("sha256-{hex}.sig");
    let sig_digest = fixture_digest(&sig_name).unwrap();
    let sig = fixture_blob(&sig_digest);
    let sig_manifest: serde_json::Value = serde_json::from_slice(&sig).unwrap();
    let payload_digest = sig_manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let payload = fixture_blob(&payload_digest);
    // The signature manifest with its payload's size as a registry might lie about it.
    let with_layer_size = |size: u64| {
        let mut m = sig_manifest.clone();
        m["layers"][0]["size"] = size.into();
        serde_json::to_vec(&m).unwrap()
    };
    let huge = with_layer_size(1 << 40);
    let index_type = "application/vnd.oci.image.index.v1+json";
    // The signature manifest saying it is an index.
    let retyped = {
        let mut m = sig_manifest.clone();
        m["mediaType"] = index_type.into();
        serde_json::to_vec(&m).unwrap()
    };
    let cfg_digest = sig_manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let cfg = fixture_blob(&cfg_digest);
    let oci_manifest = "application/vnd.oci.image.manifest.v1+json";
    let (sig_tag, payload_d) = (sig_name.clone(), payload_digest.clone());
    let reg = FakeRegistry::start(move |req| {
        let (sig_name, payload_digest) = (&sig_tag, &payload_d);
        let path = req.path.as_str();
        if path == "/v2/" {
            return Reply::new(200, "{}");
        }
        let Some((case, rest)) = path.strip_prefix("/v2/").and_then(|p| p.split_once('/')) else {
            return Reply::new(404, "");
        };
        let manifest = |bytes: &[u8], t: &str| {
            Reply::new(200, bytes.to_vec())
                .header("Content-Type", t)
                .header("Docker-Content-Digest", &gadget_image::sha256_digest(bytes))
        };
        if rest == "manifests/latest" {
            return manifest(&top, &top_type);
        }
        if rest == format!("manifests/{sig_name}") {
            return match case {
                "wrongtype" => manifest(&retyped, index_type),
                "oversized" => manifest(&huge, oci_manifest),
                _ => manifest(&sig, oci_manifest),
            };
        }
        if rest == format!("blobs/{payload_digest}") {
            return match case {
                "truncated" => Reply {
                    truncate_to: Some(payload.len() / 2),
                    ..Reply::new(200, payload.clone())
                },
                // Far more than the descriptor says, generated as it is sent.
                "overlong" => Reply {
                    filler: 1 << 30,
                    ..Reply::new(200, payload.clone())
                },
                _ => Reply::new(200, payload.clone()),
            };
        }
        if rest == format!("blobs/{cfg_digest}") {
            return Reply::new(200, cfg.clone());
        }
        // The image's own manifests and blobs, from the fixture layout.
        let stored = |d: &str| {
            std::fs::read(
                fixtures()
                    .join("oci-store/blobs/sha256")
                    .join(d.strip_prefix("sha256:")?),
            )
            .ok()
        };
        if let Some(d) = rest.strip_prefix("manifests/")
            && let Some(bytes) = stored(d)
        {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let t = v["mediaType"].as_str().unwrap_or(oci_manifest).to_string();
            return manifest(&bytes, &t);
        }
        if let Some(bytes) = rest.strip_prefix("blobs/").and_then(stored) {
            return Reply::new(200, bytes);
        }
        Reply::new(404, "")
    });
    let store = tempfile::tempdir().unwrap();
    ok(&gadget_in(store.path(), &["image", "list"]));
    let good = key("cosign-good.pub");
    // The same signature served intact verifies: what the other cases break is what refuses.
    verified(
        store.path(),
        &format!("{}/intact:latest", reg.host()),
        &["--public-key-file", &good],
    );
    let store = tempfile::tempdir().unwrap();
    ok(&gadget_in(store.path(), &["image", "list"]));
    for (case, why) in [
        ("wrongtype", "signature manifest of media type"),
        ("oversized", "limits.manifest-bytes"),
        ("truncated", &payload_digest),
        ("overlong", &payload_digest),
    ] {
        let reference = format!("{}/{case}:latest", reg.host());
        let err = refused(
            store.path(),
            &reference,
            &["--public-key-file", &good],
            NOT_SIGNED,
        );
        assert!(err.contains(why), "{case}: {err}");
        assert!(
            err.contains(&sig_name),
            "{case}: names the signature: {err}"
        );
    }
    // Under an address-space cap far below the gigabyte the registry streams after the payload:
    // the read stops at the descriptor's size, whatever follows.
    let capped = tempfile::tempdir().unwrap();
    let reference = format!("{}/overlong:latest", reg.host());
    let nokey = capped.path().with_extension("no-host-key.pem");
    let args = [
        "--signing-key",
        nokey.to_str().unwrap(),
        "run",
        &reference,
        "--timeout",
        "1",
        "--public-key-file",
        &good,
    ];
    let out = gadget_capped("1073741824", capped.path(), &args, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "ended by a signal? {err}");
    assert!(
        err.contains(NOT_SIGNED) && err.contains(&payload_digest),
        "{err}"
    );
}

/// `gadget --cluster run …` sends the request through the (stand-in) API server's pod proxy to
/// every node's daemon: turning verification off travels as a request the daemons judge
/// (below), and keys the client trusts do not travel at all.
#[test]
fn the_cluster_client_asks_each_daemon_and_never_decides_for_it() {
    use crate::cluster::{api_server, fixture, kubeconfig};
    let tmp = tempfile::tempdir().unwrap();
    let started = r#"{"reply":"started","id":"aaaaaaaaaaaa1111aaaaaaaaaaaa1111"}"#.to_string();
    let proxy = |pod: &str| format!("POST /api/v1/namespaces/gadget/pods/{pod}:2225/proxy/api/v1");
    let routes: std::collections::BTreeMap<String, (u16, String)> = [
        (
            "GET /api/v1/namespaces/gadget/pods".to_string(),
            (200, fixture("pods.json")),
        ),
        (
            "GET /api/v1/namespaces/gadget/secrets/gadget-api-token".to_string(),
            (200, fixture("secret.json")),
        ),
        (proxy("gadget-7xk2p"), (200, started.clone())),
        (proxy("gadget-q9m4d"), (200, started)),
    ]
    .into();
    let (port, seen) = api_server(routes);
    let kc = kubeconfig(tmp.path(), port);
    let cluster = |args: &[&str]| {
        std::process::Command::new(gadget_bin())
            .env("KUBECONFIG", &kc)
            .arg("--cluster")
            .args(args)
            .output()
            .unwrap()
    };
    let specs = |from: usize| -> Vec<serde_json::Value> {
        seen.lock().unwrap()[from..]
            .iter()
            .filter(|s| s.0 == "POST" && s.3.contains(r#""op":"run""#))
            .map(|s| serde_json::from_str::<serde_json::Value>(&s.3).unwrap()["spec"].clone())
            .collect()
    };
    let good = key("cosign-good.pub");
    ok(&cluster(&[
        "run",
        "profile_blockio:v0.46.0",
        "--detach",
        "--public-key-file",
        &good,
    ]));
    let sent = specs(0);
    assert_eq!(sent.len(), 2, "{sent:?}");
    for spec in &sent {
        assert!(spec.get("verify_image").is_none(), "{spec}");
        assert!(
            !spec.to_string().contains("PUBLIC KEY"),
            "a key travelled: {spec}"
        );
    }
    let from = seen.lock().unwrap().len();
    ok(&cluster(&[
        "run",
        "profile_blockio:v0.46.0",
        "--detach",
        "--verify-image=false",
    ]));
    let sent = specs(from);
    assert_eq!(sent.len(), 2, "{sent:?}");
    for spec in &sent {
        assert_eq!(spec["verify_image"], false, "{spec}");
    }
    // A manifest's operator.oci.verify-image travels the same way.
    let manifest = tmp.path().join("m.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: 1\nkind: instance-spec\nimage: profile_blockio:v0.46.0\nparamValues:\n  operator.oci.verify-image: \"false\"\n",
    )
    .unwrap();
    let from = seen.lock().unwrap().len();
    ok(&cluster(&[
        "run",
        "-f",
        manifest.to_str().unwrap(),
        "--detach",
    ]));
    let sent = specs(from);
    assert_eq!(sent.len(), 2, "{sent:?}");
    for spec in &sent {
        assert_eq!(spec["verify_image"], false, "{spec}");
    }
}

/// What a node's daemon does with such requests on its cluster API (the path the API server's
/// pod proxy forwards to): its own policy, whatever the request asks.
#[test]
#[ignore = "needs root"]
fn a_daemons_cluster_api_applies_its_own_policy() {
    let token = "0123456789abcdef-token";
    let work = tempfile::tempdir().unwrap();
    let (other, _) = openssl_key_pair(work.path(), "other");
    let reference = "local.test/cluster/profile_blockio:v1";
    let post = |d: &Daemon, verify_image: Option<bool>| {
        let mut spec = serde_json::json!({
            "reference": reference,
            "params": {"disk": "loop0"},
            "interval_ms": 1000,
            "guest_fuel": 1_000_000_000u64,
            "guest_memory_mib": 64,
        });
        if let Some(v) = verify_image {
            spec["verify_image"] = v.into();
        }
        let body = serde_json::json!({"op": "run", "spec": spec}).to_string();
        let out = std::process::Command::new("curl")
            .args(["-s", "-X", "POST", "-H"])
            .arg(format!("X-Gadget-Token: {token}"))
            .arg("--data")
            .arg(&body)
            .arg(format!(
                "http://{}/api/v1",
                d.cluster_api.as_deref().unwrap()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let d = Daemon::with_cluster_api(token);
    // Signed by a key this daemon does not trust.
    ok(&d.cli(&[
        "--signing-key",
        other.to_str().unwrap(),
        "image",
        "build",
        profile_blockio_dir().to_str().unwrap(),
        "-t",
        reference,
    ]));
    let before = index_of(&d.store());
    let reply = post(&d, None);
    assert!(
        reply.contains(NOT_SIGNED) && reply.contains(reference),
        "{reply}"
    );
    let reply = post(&d, Some(false));
    assert!(
        reply.contains("which this daemon does not allow") && reply.contains("bad-request"),
        "{reply}"
    );
    assert!(d.instances().is_empty());
    assert_eq!(
        index_of(&d.store()),
        before,
        "a refused request changed the store"
    );
}
