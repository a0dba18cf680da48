//! Gadget images end to end, against real parts: Debian's `docker-registry` on a loopback port
//! (started here), `skopeo` as an independent client, real eBPF on a loop device; and a hostile
//! registry of the suite's own (common/registry.rs) for what a real registry never does.
//!
//! Needs root and the built gadget (`make gadgets`); `make test` provides both and installs
//! docker-registry and skopeo.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::registry::{
    DockerRegistry, FakeRegistry, Reply, serve_image, skopeo, write_docker_config,
};
use crate::common::*;
use gadget_image::{
    ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, EBPF_LAYER, OCI_INDEX, OCI_MANIFEST, WASM_LAYER,
    sha256_digest,
};
use serde_json::{Value, json};

const WRITES: u32 = 1500;

/// `gadget --store STORE args…` with extra environment.
fn gadget_env(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(gadget_bin());
    cmd.arg("--store").arg(store).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn gadget(store: &Path, args: &[&str]) -> Output {
    gadget_env(store, args, &[])
}

/// Runs a shell command with a pseudo-terminal as stdout and stderr (util-linux `script`).
fn in_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{command}:\n{text}");
    text
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn blob(store: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(store.join("blobs/sha256").join(&digest[7..])).unwrap()
}

/// What a store holds: index.json and the blob file names (the state a failed pull must keep).
fn snapshot(store: &Path) -> (Vec<u8>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(store.join("blobs/sha256"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    (
        std::fs::read(store.join("index.json")).unwrap_or_default(),
        names,
    )
}

/// Runs `reference` on a loop device while it does real I/O; the printed total must equal the
/// kernel's count. Returns stderr.
fn run_counts_io(store: &Path, reference: &str, extra: &[&str]) -> String {
    assert!(
        is_root(),
        "this test needs root: run it through `make test`"
    );
    let dev = LoopDevice::new("img");
    let store_s = store.to_str().unwrap();
    let (hists, kernel, missed, err) = measure_run(
        &dev,
        || {
            let mut args = vec![
                "--store",
                store_s,
                "run",
                reference,
                "--disk",
                &dev.name,
                "--interval",
                "300ms",
            ];
            args.extend_from_slice(extra);
            let mut g = Running::start(&args);
            g.wait_attached();
            g
        },
        || dev.write_direct(WRITES),
    );
    let h = final_histogram(&hists, &err);
    assert!(kernel >= u64::from(WRITES), "kernel counted {kernel}");
    assert_histogram_accounts(&h, missed, kernel, &dev, &err);
    err
}

#[test]
#[ignore = "needs root"]
fn built_image_travels_through_a_real_registry_and_runs_by_reference() {
    let reg = DockerRegistry::start();
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path();
    let host = reg.host();
    let tag = format!("{host}/gadget/profile_blockio:v0.46.0");
    let src = repo_root().join("gadgets/profile_blockio");

    // Build: compiles the C and the guest, stores IG's layout.
    let built = json_lines(&ok(&gadget(
        store,
        &[
            "image",
            "build",
            src.to_str().unwrap(),
            "-t",
            &tag,
            "-o",
            "json",
        ],
    )));
    let index_digest = built[0]["digest"].as_str().unwrap().to_string();
    let index: Value = serde_json::from_slice(&blob(store, &index_digest)).unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    let platform = &index["manifests"][0]["platform"];
    assert_eq!(platform["os"], "linux");
    assert_eq!(platform["architecture"], gadget_image::host_architecture());
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: Value = serde_json::from_slice(&blob(store, &manifest_digest)).unwrap();
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(manifest["artifactType"], ARTIFACT_TYPE);
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    assert_eq!(
        blob(store, manifest["config"]["digest"].as_str().unwrap()),
        std::fs::read(src.join("gadget.yaml")).unwrap(),
        "the config is gadget.yaml, byte for byte"
    );
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(types, [EBPF_LAYER, WASM_LAYER]);
    let ebpf = blob(store, manifest["layers"][0]["digest"].as_str().unwrap());
    assert!(
        ebpf.starts_with(b"\x7fELF"),
        "the eBPF layer is an ELF object"
    );
    for key in [
        "title",
        "description",
        "url",
        "documentation",
        "source",
        "created",
    ] {
        assert!(
            manifest["annotations"][format!("org.opencontainers.image.{key}")].is_string(),
            "annotation {key} missing: {manifest}"
        );
    }

    // list and inspect, in both formats.
    let listed: Value =
        serde_json::from_str(&ok(&gadget(store, &["image", "list", "-o", "json"]))).unwrap();
    assert_eq!(listed[0]["reference"], tag.as_str());
    assert_eq!(listed[0]["tag"], "v0.46.0");
    assert_eq!(listed[0]["digest"], index_digest.as_str());
    assert!(listed[0]["size"].as_u64().unwrap() > ebpf.len() as u64);
    let table = ok(&gadget(store, &["image", "list"]));
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(table.contains(&index_digest[7..19]), "{table}");
    let inspected: Value = serde_json::from_str(&ok(&gadget(
        store,
        &["image", "inspect", &tag, "-o", "json"],
    )))
    .unwrap();
    assert_eq!(inspected["manifestDigest"], manifest_digest.as_str());
    assert!(
        inspected["gadgetYaml"]
            .as_str()
            .unwrap()
            .contains("blockio")
    );

    // Push (in a terminal, with a progress line); an independent client reads back exactly
    // what we stored.
    let shown = in_terminal(&format!(
        "{} --store {} image push {tag}",
        gadget_bin().display(),
        store.display()
    ));
    assert!(
        shown.contains("pushing") && shown.contains("100%"),
        "{shown}"
    );
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{tag}"),
    ]);
    assert_eq!(
        raw.stdout,
        blob(store, &index_digest),
        "registry index = ours"
    );
    let copy = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{tag}"),
        &format!("oci:{}:v1", copy.path().display()),
    ]);
    let mut copied = Vec::new();
    for f in std::fs::read_dir(copy.path().join("blobs/sha256")).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().into_string().unwrap();
        assert_eq!(
            sha256_digest(&std::fs::read(f.path()).unwrap()),
            format!("sha256:{name}"),
            "skopeo's blob file is named by its sha256"
        );
        copied.push(format!("sha256:{name}"));
    }
    for d in [
        &manifest_digest,
        manifest["config"]["digest"].as_str().unwrap(),
        manifest["layers"][0]["digest"].as_str().unwrap(),
        manifest["layers"][1]["digest"].as_str().unwrap(),
    ] {
        assert!(copied.iter().any(|c| c == d), "skopeo did not copy {d}");
    }

    // Remove locally: nothing listed, no blob left.
    ok(&gadget(store, &["image", "remove", &tag]));
    assert_eq!(
        snapshot(store).1,
        Vec::<String>::new(),
        "remove collects unreferenced blobs"
    );
    let prefix = format!("{host}/gadget");
    let err = fails(&gadget(
        store,
        &[
            "--registry-prefix",
            &prefix,
            "run",
            "profile_blockio:v0.46.0",
            "--pull",
            "never",
        ],
    ));
    assert!(err.contains("not in the local store"), "{err}");

    // Run by short name, as IG users type it: pulled, then counts every I/O.
    let err = run_counts_io(
        store,
        "profile_blockio:v0.46.0",
        &["--registry-prefix", &prefix],
    );
    assert!(err.contains(&format!("pulling {tag}")), "{err}");
    let listed: Value =
        serde_json::from_str(&ok(&gadget(store, &["image", "list", "-o", "json"]))).unwrap();
    assert_eq!(
        listed[0]["digest"],
        index_digest.as_str(),
        "pulled = pushed"
    );

    // A digest pins the exact platform manifest; found locally, no pull.
    let pinned = format!("{host}/gadget/profile_blockio@{manifest_digest}");
    let out = gadget(
        store,
        &["run", &pinned, "--pull", "never", "--timeout", "1s"],
    );
    assert!(ok(&out).contains("distribution"));
    let wrong = format!("{host}/gadget/profile_blockio@sha256:{}", "0".repeat(64));
    let err = fails(&gadget(store, &["run", &wrong, "--pull", "never"]));
    assert!(err.contains("not in the local store"), "{err}");

    // --pull always goes to the registry although the image is local.
    let out = gadget(store, &["run", &tag, "--pull", "always", "--timeout", "1s"]);
    assert!(ok(&out).contains("distribution"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pulling {tag}")), "{err}");

    // tag, export, remove, import: the same digest comes back.
    let other = format!("{host}/mine/blockio:latest");
    ok(&gadget(store, &["image", "tag", &tag, &other]));
    let tarball = copy.path().join("blockio.tar");
    ok(&gadget(
        store,
        &["image", "export", &other, tarball.to_str().unwrap()],
    ));
    ok(&gadget(store, &["image", "remove", &tag, &other]));
    assert_eq!(snapshot(store).1, Vec::<String>::new());
    let imported = json_lines(&ok(&gadget(
        store,
        &["image", "import", tarball.to_str().unwrap(), "-o", "json"],
    )));
    assert_eq!(imported[0]["imported"], other.as_str());
    assert_eq!(imported[0]["digest"], index_digest.as_str());
    // skopeo reads our export as an OCI archive too; the image is picked by its name (the
    // archive also names its signatures).
    skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:{other}", tarball.display()),
    ]);
}

/// An OCI layout written by hand: IG's media types, no Wasm layer, an extra layer of a type
/// nobody knows; referenced by the bare tag `v1` (as skopeo and IG write layouts).
fn hand_made_layout(dir: &Path) -> String {
    let src = repo_root().join("gadgets/profile_blockio");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> Value {
        let d = sha256_digest(bytes);
        std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
        json!({"digest": d, "size": bytes.len()})
    };
    let with_type = |mut v: Value, t: &str| {
        v["mediaType"] = json!(t);
        v
    };
    let config = with_type(
        put(&std::fs::read(src.join("gadget.yaml")).unwrap()),
        CONFIG_MEDIA_TYPE,
    );
    let ebpf = with_type(
        put(&std::fs::read(src.join("program.bpf.o")).unwrap()),
        EBPF_LAYER,
    );
    let notes = with_type(
        put(b"release notes"),
        "application/vnd.example.notes.v1+text",
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": config,
        "layers": [notes, ebpf],
    });
    let m = with_type(put(&serde_json::to_vec(&manifest).unwrap()), OCI_MANIFEST);
    let mut entry = m.clone();
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [entry]})).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    m["digest"].as_str().unwrap().to_string()
}

#[test]
#[ignore = "needs root"]
fn image_written_by_skopeo_without_wasm_runs_through_the_default_guest() {
    let reg = DockerRegistry::start();
    let layout = tempfile::tempdir().unwrap();
    let manifest_digest = hand_made_layout(layout.path());
    let reference = format!("{}/hand/made:v1", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.path().display()),
        &format!("docker://{reference}"),
    ]);
    let store_dir = tempfile::tempdir().unwrap();
    // skopeo copied no signature: the user vouches for the hand-made image by signing it with
    // this host's key after pulling it (`run` would refuse it unsigned, as IG does).
    ok(&gadget(store_dir.path(), &["image", "pull", &reference]));
    ok(&gadget(store_dir.path(), &["image", "sign", &reference]));
    let err = run_counts_io(store_dir.path(), &reference, &[]);
    assert!(err.contains("default guest"), "{err}");
    assert!(
        err.contains("ignoring layer") && err.contains("application/vnd.example.notes.v1+text"),
        "{err}"
    );
    // The unknown layer is stored (the image stays complete), just not used.
    let names = snapshot(store_dir.path()).1;
    let notes = sha256_digest(b"release notes");
    assert!(names.contains(&notes[7..].to_string()), "{names:?}");
    assert!(names.contains(&manifest_digest[7..].to_string()));

    // The same layout as a tarball: imported under a name (its own is only a tag).
    let tarball = layout.path().join("../hand.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(layout.path())
        .arg("-cf")
        .arg(&tarball)
        .args(["oci-layout", "index.json", "blobs"])
        .status()
        .unwrap();
    assert!(status.success());
    let fresh = tempfile::tempdir().unwrap();
    let err = fails(&gadget(
        fresh.path(),
        &["image", "import", tarball.to_str().unwrap()],
    ));
    assert!(
        err.contains("\"v1\"") && err.contains("REGISTRY/REPO:TAG"),
        "{err}"
    );
    // No signature rides in a hand-made layout: the user vouches for it.
    let out = ok(&gadget(
        fresh.path(),
        &[
            "image",
            "import",
            "--trust",
            tarball.to_str().unwrap(),
            "local.test/hand:v1",
        ],
    ));
    assert!(out.contains(&manifest_digest), "{out}");
    let _ = std::fs::remove_file(tarball);
}

/// The blobs of a valid gadget image, and a manifest over them, for the hostile registry.
struct Parts {
    blobs: Vec<(String, Vec<u8>)>,
    config: Value,
    ebpf: Value,
}

fn parts() -> Parts {
    let src = repo_root().join("gadgets/profile_blockio");
    let mut blobs = Vec::new();
    let mut desc = |bytes: Vec<u8>, t: &str| {
        let d = sha256_digest(&bytes);
        let v = json!({"mediaType": t, "digest": d, "size": bytes.len()});
        blobs.push((d, bytes));
        v
    };
    let config = desc(
        std::fs::read(src.join("gadget.yaml")).unwrap(),
        CONFIG_MEDIA_TYPE,
    );
    let ebpf = desc(
        std::fs::read(src.join("program.bpf.o")).unwrap(),
        EBPF_LAYER,
    );
    Parts {
        blobs,
        config,
        ebpf,
    }
}

fn manifest_of(config: &Value, layers: &[&Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": config,
        "layers": layers,
    }))
    .unwrap()
}

#[test]
fn hostile_registry_replies_are_clear_errors_and_leave_the_store_untouched() {
    let p = parts();
    let ebpf_bytes = p.blobs[1].1.clone();
    // Layers of their own for the corrupt cases, so the good image's blobs stay good.
    let mut padded = ebpf_bytes.clone();
    padded.push(0);
    let padded_digest = sha256_digest(&padded);
    let padded_desc =
        json!({"mediaType": EBPF_LAYER, "digest": padded_digest, "size": padded.len()});
    let mut twice_padded = padded.clone();
    twice_padded.push(0);
    let truncated_digest = sha256_digest(&twice_padded);
    let truncated_desc =
        json!({"mediaType": EBPF_LAYER, "digest": truncated_digest, "size": twice_padded.len()});
    let huge_desc =
        json!({"mediaType": EBPF_LAYER, "digest": sha256_digest(b"huge"), "size": 1u64 << 40});
    let container_config = json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": p.config["digest"], "size": p.config["size"]});
    let notes_desc =
        json!({"mediaType": WASM_LAYER, "digest": p.ebpf["digest"], "size": p.ebpf["size"]});

    let good = manifest_of(&p.config, &[&p.ebpf]);
    // IG publishes amd64 and arm64: only this machine's platform is fetched.
    let other_arch = if gadget_image::host_architecture() == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    let multi = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha256_digest(b"never served"), "size": 12,
             "platform": {"os": "linux", "architecture": other_arch}},
            {"mediaType": OCI_MANIFEST, "digest": sha256_digest(&good), "size": good.len(),
             "platform": {"os": "linux", "architecture": gadget_image::host_architecture()}},
        ],
    }))
    .unwrap();
    let by_digest = good.clone();
    let manifests: Vec<(&str, Vec<u8>)> = vec![
        ("good", good.clone()),
        ("baddigest", manifest_of(&p.config, &[&padded_desc])),
        ("truncated", manifest_of(&p.config, &[&truncated_desc])),
        ("oversized", manifest_of(&p.config, &[&huge_desc])),
        ("container", manifest_of(&container_config, &[&p.ebpf])),
        ("noebpf", manifest_of(&p.config, &[&notes_desc])),
        ("twoebpf", manifest_of(&p.config, &[&p.ebpf, &p.ebpf])),
        ("bigmanifest", {
            let mut v: Value = serde_json::from_slice(&good).unwrap();
            v["annotations"] = json!({"padding": "x".repeat(5 << 20)});
            serde_json::to_vec(&v).unwrap()
        }),
    ];
    let blobs = p.blobs.clone();
    let (padded_d, truncated_d) = (padded_digest.clone(), truncated_digest.clone());
    let reg = FakeRegistry::start(move |req| {
        let (padded_digest, truncated_digest) = (&padded_d, &truncated_d);
        let path = req.path.as_str();
        if path == "/v2/" {
            return Reply::new(200, "{}");
        }
        if let Some(rest) = path.strip_prefix("/v2/evil/gadget/manifests/") {
            let reply = |bytes: &[u8], t: &str| {
                Reply::new(200, bytes.to_vec())
                    .header("Content-Type", t)
                    .header("Docker-Content-Digest", &sha256_digest(bytes))
            };
            return match rest {
                "multi" => reply(&multi, OCI_INDEX),
                d if d == sha256_digest(&by_digest) => reply(&by_digest, OCI_MANIFEST),
                "error500" => Reply::new(500, "internal error"),
                "wrongtype" => reply(
                    br#"{"schemaVersion":1,"name":"x"}"#,
                    "application/vnd.docker.distribution.manifest.v1+prettyjws",
                ),
                "headerdigest" => Reply::new(200, good.clone())
                    .header("Content-Type", OCI_MANIFEST)
                    .header("Docker-Content-Digest", &sha256_digest(b"something else")),
                tag => match manifests.iter().find(|(t, _)| *t == tag) {
                    Some((_, m)) => reply(m, OCI_MANIFEST),
                    None => Reply::new(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#),
                },
            };
        }
        if let Some(digest) = path.strip_prefix("/v2/evil/gadget/blobs/") {
            if digest == padded_digest.as_str() {
                // Same length, one byte changed: only the digest can tell.
                let mut wrong = padded.clone();
                *wrong.last_mut().unwrap() = 1;
                return Reply::new(200, wrong);
            }
            if digest == truncated_digest.as_str() {
                return Reply {
                    truncate_to: Some(twice_padded.len() / 2),
                    ..Reply::new(200, twice_padded.clone())
                };
            }
            if let Some((_, b)) = blobs.iter().find(|(d, _)| d == digest) {
                return Reply::new(200, b.clone());
            }
        }
        Reply::new(404, "")
    });
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path();
    let r = |tag: &str| format!("{}/evil/gadget:{tag}", reg.host());
    ok(&gadget(store, &["image", "pull", &r("good")]));
    ok(&gadget(store, &["image", "pull", &r("multi")]));
    let before = snapshot(store);
    assert_eq!(before.1.len(), 4, "config, eBPF layer, manifest, index");

    let cases: &[(&str, &[&str])] = &[
        ("baddigest", &["digest", &padded_digest]),
        ("truncated", &[&truncated_digest]),
        (
            "oversized",
            &["1099511627776 bytes", "limit", "layer-bytes"],
        ),
        (
            "container",
            &[
                "not a gadget image",
                "application/vnd.oci.image.config.v1+json",
            ],
        ),
        ("noebpf", &["no layer of media type", EBPF_LAYER]),
        ("twoebpf", &["2 layers of media type", EBPF_LAYER]),
        ("bigmanifest", &["limit", "manifest-bytes"]),
        ("wrongtype", &["media type", "prettyjws"]),
        ("headerdigest", &["does not match"]),
        ("error500", &["HTTP 500", "internal error"]),
        ("missing", &["HTTP 404", "does not exist"]),
    ];
    for (tag, expect) in cases {
        let err = fails(&gadget(store, &["image", "pull", &r(tag)]));
        for e in *expect {
            assert!(err.contains(e), "pull {tag}: {e:?} not in:\n{err}");
        }
        assert_eq!(snapshot(store), before, "pull {tag} changed the store");
        assert!(
            std::fs::read_dir(store.join("staging"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0,
            "pull {tag} left a staging area"
        );
    }
    // Sizes are checked before downloading: the oversized layer was never requested.
    let huge = huge_desc["digest"].as_str().unwrap().to_string();
    assert!(
        !reg.paths().iter().any(|p| p.ends_with(&huge)),
        "the oversized layer was requested"
    );
    // In a terminal a pull shows its progress; piped (as above) it does not. (Both names go,
    // or the blobs they share would stay and nothing would be downloaded.)
    ok(&gadget(
        store,
        &["image", "remove", &r("good"), &r("multi")],
    ));
    let shown = in_terminal(&format!(
        "{} --store {} image pull {}",
        gadget_bin().display(),
        store.display(),
        r("good")
    ));
    assert!(
        shown.contains("pulling") && shown.contains("100%"),
        "{shown}"
    );
    // The image that was there still runs (its user vouches for it: `image pull` stores
    // what a registry serves without judging it, and this test's registry signs nothing).
    ok(&gadget(store, &["image", "sign", &r("good")]));
    let out = ok(&gadget(
        store,
        &["run", &r("good"), "--pull", "never", "--timeout", "1s"],
    ));
    assert!(out.contains("distribution"));
}

#[test]
fn credentials_come_from_login_or_docker_config_and_are_never_printed() {
    let p = parts();
    let manifest = manifest_of(&p.config, &[&p.ebpf]);
    let blobs = p.blobs.clone();
    // alice:s3cret, as HTTP basic auth.
    let expected = "Basic YWxpY2U6czNjcmV0";
    let reg = FakeRegistry::start(move |req| {
        if req.authorization.as_deref() != Some(expected) {
            return Reply::new(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#)
                .header("WWW-Authenticate", "Basic realm=\"fake\"");
        }
        serve_image(req, &manifest, &blobs)
    });
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let auth_file = dir.path().join("auth/config.json");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("auth-file: {}\n", auth_file.display())).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let env = [
        ("GADGET_CONFIG", config.to_str().unwrap()),
        ("HOME", home.to_str().unwrap()),
    ];
    let reference = format!("{}/private/gadget:v1", reg.host());

    let err = fails(&gadget_env(&store, &["image", "pull", &reference], &env));
    assert!(err.contains("gadget login"), "{err}");

    // A wrong password is refused and not saved.
    let login = |password: &str| {
        let mut c = Command::new(gadget_bin())
            .args(["login", &reg.host(), "-u", "alice", "--password-stdin"])
            .env("GADGET_CONFIG", &config)
            .env("HOME", &home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        c.wait_with_output().unwrap()
    };
    let wrong = login("wrong\n");
    let err = fails(&wrong);
    assert!(
        !err.contains("wrong") || err.contains("wrong password"),
        "{err}"
    );
    assert!(!auth_file.exists(), "a refused login must not be saved");
    let good = login("s3cret\n");
    let out = ok(&good);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the credentials file is private");
    let pulled = gadget_env(
        &store,
        &["image", "pull", &reference, "--log-level", "debug"],
        &env,
    );
    let printed = format!(
        "{out}{}{}{}",
        String::from_utf8_lossy(&good.stderr),
        String::from_utf8_lossy(&pulled.stdout),
        String::from_utf8_lossy(&pulled.stderr)
    );
    ok(&pulled);
    assert!(
        !printed.contains("s3cret"),
        "a secret was printed:\n{printed}"
    );
    assert!(
        !printed.contains("YWxpY2U6czNjcmV0"),
        "a secret was printed:\n{printed}"
    );
    ok(&gadget_env(&store, &["logout", &reg.host()], &env));

    // Docker's config file works as well.
    let docker = dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    write_docker_config(&docker, &reg.host());
    ok(&gadget(&store, &["image", "remove", &reference]));
    let err = fails(&gadget_env(&store, &["image", "pull", &reference], &env));
    assert!(err.contains("gadget login"), "logged out: {err}");
    let mut env_docker = env.to_vec();
    env_docker.push(("DOCKER_CONFIG", docker.to_str().unwrap()));
    ok(&gadget_env(
        &store,
        &["image", "pull", &reference],
        &env_docker,
    ));
}

#[test]
fn plain_http_only_for_loopback_or_listed_registries() {
    // A registry that is not loopback is spoken to over TLS unless listed: with nothing
    // listening at this address, the error says which and how to allow plain HTTP.
    let store = tempfile::tempdir().unwrap();
    let err = fails(&gadget(
        store.path(),
        &["image", "pull", "registry.invalid:5000/x:v1"],
    ));
    assert!(err.contains("registry.invalid:5000"), "{err}");
    assert!(err.contains("--insecure-registries"), "{err}");
}

#[test]
#[ignore = "needs root"]
fn detached_instances_run_images_named_in_ig_manifests_and_survive_a_daemon_restart() {
    assert!(is_root(), "needs root: run through `make test`");
    let mut d = crate::common::daemon::Daemon::new();
    let src = repo_root().join("gadgets/profile_blockio");
    // Built locally under IG's own name: the short name resolves to it, no registry involved.
    d.ok(&[
        "image",
        "build",
        src.to_str().unwrap(),
        "-t",
        "profile_blockio:v0.46.0",
    ]);
    let full = "ghcr.io/inspektor-gadget/gadget/profile_blockio:v0.46.0";
    let dev = LoopDevice::new("imgd");
    let manifest = d.dir.join("blockio.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: 1\nkind: instance-spec\nimage: profile_blockio:v0.46.0\nname: from-image\nparamValues:\n  operator.oci.annotate: blockio:metrics.collect=true\n  operator.otel-metrics.otel-metrics-name: blockio:image-metrics\n  operator.oci.ebpf.disk: {}\n",
            dev.name
        ),
    )
    .unwrap();
    d.ok(&[
        "run",
        "-f",
        manifest.to_str().unwrap(),
        "--detach",
        "--pull",
        "never",
    ]);
    let listed: Value = serde_json::from_str(&d.ok(&["list", "-o", "json"])).unwrap();
    assert_eq!(listed[0]["gadget"], full, "the daemon runs the full name");
    dev.wait_quiet();
    let start = dev.completed();
    d.wait_inf("image-metrics", 0);
    dev.write_direct(400);
    d.kill9();
    dev.write_direct(200);
    // Restored from the saved spec: the image is found in the store again.
    d.start();
    dev.write_direct(100);
    let kernel = dev.completed() - start;
    d.wait_inf("image-metrics", kernel);
    d.ok(&["delete", "from-image"]);
}

#[test]
fn an_interrupted_pull_leaves_the_store_as_it_was() {
    let p = parts();
    let manifest = manifest_of(&p.config, &[&p.ebpf]);
    let (blobs, ebpf_digest) = (
        p.blobs.clone(),
        p.ebpf["digest"].as_str().unwrap().to_string(),
    );
    let stall = ebpf_digest.clone();
    let reg = FakeRegistry::start(move |req| {
        if req.path.ends_with("/manifests/v1") {
            return Reply::new(200, manifest.clone()).header("Content-Type", OCI_MANIFEST);
        }
        if req.path.ends_with(&stall) {
            // Half the layer, then nothing: the pull is killed while it waits.
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        match blobs.iter().find(|(d, _)| req.path.ends_with(d.as_str())) {
            Some((_, b)) => Reply::new(200, b.clone()),
            None => Reply::new(200, "{}"),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    // Something already stored, which must stay exactly as it is.
    let src = repo_root().join("gadgets/profile_blockio");
    ok(&gadget(
        store,
        &[
            "image",
            "build",
            src.to_str().unwrap(),
            "-t",
            "local.test/kept:v1",
        ],
    ));
    let before = snapshot(store);
    let mut child = Command::new(gadget_bin())
        .arg("--store")
        .arg(store)
        .args(["image", "pull", &format!("{}/slow/gadget:v1", reg.host())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !reg.paths().iter().any(|p| p.ends_with(&ebpf_digest)) {
        assert!(
            t.elapsed().as_secs() < 30,
            "the pull never reached the layer"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(snapshot(store), before, "a killed pull changed the store");
    let listed: Value =
        serde_json::from_str(&ok(&gadget(store, &["image", "list", "-o", "json"]))).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // Its staging area is collected by the next removal.
    assert!(store.join("staging").read_dir().unwrap().count() > 0);
    ok(&gadget(store, &["image", "remove", "local.test/kept:v1"]));
    assert_eq!(store.join("staging").read_dir().unwrap().count(), 0);
}
