//! Inspektor Gadget's own published image, unchanged (host/tests/fixtures/ig-v0.46.0: IG's
//! profile_blockio built and packaged the way IG does; see the README there): imported with
//! `gadget image import`, pushed with skopeo to Debian's docker-registry and run by reference,
//! inspected, and run on real block I/O. Its object has no device filter, so every disk's
//! completed requests are accounted for.
//!
//! Needs root, docker-registry and skopeo (`make test` provides them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::registry::{DockerRegistry, skopeo};
use crate::common::*;
use sha2::Digest;

const IG_REF: &str = "ghcr.io/inspektor-gadget/gadget/profile_blockio:v0.46.0";
const WRITES: u32 = 2000;

/// sha256 of IG's artifact (host/tests/fixtures/ig-v0.46.0/README.md).
const FIXTURE_SHA256: &str = "63eb7ea601c890af6c2de01844a8bd94041f84ab41a4bc2eda22bc1d671914bc";

/// IG's artifact as the project shares it (`../shared/fixtures`) where that exists, else the
/// byte-identical copy in this repository; either way checked against its known digest.
fn fixture() -> PathBuf {
    let root = repo_root();
    let shared = root.join("../shared/fixtures/ig-v0.46.0/profile_blockio.oci.tar");
    let path = if shared.is_file() {
        shared
    } else {
        root.join("host/tests/fixtures/ig-v0.46.0/profile_blockio.oci.tar")
    };
    let digest = sha2::Sha256::digest(std::fs::read(&path).unwrap());
    let hex = hex::encode(digest);
    assert_eq!(
        hex,
        FIXTURE_SHA256,
        "{} is not IG's artifact",
        path.display()
    );
    path
}

fn gadget(store: &Path, args: &[&str]) -> Output {
    gadget_in(store, args)
}

fn imported_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // IG's published archive carries no signature (IG signs in its registry, not in the
    // archive), so `run` would refuse it, as IG does. The test vouches for this local fixture
    // (checked against its known sha256 above) with --trust, which signs it with this host's
    // key: the user's explicit decision `image import --trust` exists for.
    let out = ok(&gadget(
        dir.path(),
        &["image", "import", "--trust", fixture().to_str().unwrap()],
    ));
    assert!(out.contains(IG_REF), "{out}");
    dir
}

/// Completed requests of every whole disk (`/sys/block/*`), by name.
fn all_disks() -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir("/sys/block").unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Ok(stat) = std::fs::read_to_string(format!("/sys/block/{name}/stat")) else {
            continue;
        };
        let f: Vec<u64> = stat
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 8 {
            continue;
        }
        let done = f[0] + f[4] + f.get(11).copied().unwrap_or(0) + f.get(15).copied().unwrap_or(0);
        out.insert(name, done);
    }
    out
}

fn wait_all_quiet() {
    let mut last = all_disks();
    let mut stable_since = Instant::now();
    let start = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(700)
        && start.elapsed() < Duration::from_secs(15)
    {
        std::thread::sleep(Duration::from_millis(100));
        let now = all_disks();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
}

/// Recursion misses (runs the kernel skipped, see crate::common::program_misses) of the programs
/// loaded after `existing` was taken, by program name.
fn misses_by_name(
    existing: &std::collections::BTreeSet<u64>,
) -> std::collections::BTreeMap<String, u64> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut by_name = std::collections::BTreeMap::new();
    for p in v.as_array().into_iter().flatten() {
        let (Some(id), Some(name)) = (p["id"].as_u64(), p["name"].as_str()) else {
            continue;
        };
        if !existing.contains(&id) {
            *by_name.entry(name.to_string()).or_insert(0) +=
                p["recursion_misses"].as_u64().unwrap_or(0);
        }
    }
    by_name
}

/// One measured run on every disk.
struct Measured {
    printed: u64,
    kernel: u64,
    /// Skipped runs of IG's completion program: each is a request the histogram cannot hold.
    done_misses: u64,
    /// Skipped runs of the insert/issue programs: a request may still be timed by the other.
    start_misses: u64,
    /// Disks other than ours that completed requests in the window.
    others: Vec<String>,
    out: String,
    err: String,
}

fn measure_all_disks(store: &Path, reference: &str, dev: &LoopDevice, extra: &[&str]) -> Measured {
    let existing: std::collections::BTreeSet<u64> = program_misses().into_keys().collect();
    let store_s = store.to_str().unwrap();
    let mut args = vec!["--store", store_s, "run", reference, "--interval", "300ms"];
    args.extend_from_slice(extra);
    let mut g = Running::start(&args);
    g.wait_attached();
    wait_all_quiet();
    let before = all_disks();
    dev.write_direct(WRITES);
    dev.wait_quiet();
    let misses = misses_by_name(&existing);
    let (status, out, err) = g.interrupt();
    let after = all_disks();
    assert!(status.success(), "gadget exit {status}; stderr:\n{err}");
    let kernel: u64 = after
        .iter()
        .map(|(d, n)| n - before.get(d).copied().unwrap_or(*n))
        .sum();
    let others: Vec<String> = after
        .iter()
        .filter(|(d, n)| **d != dev.name && before.get(*d) != Some(n))
        .map(|(d, _)| d.clone())
        .collect();
    let h = final_histogram(&parse_histograms(&out), &err);
    let done_misses = misses.get("ig_profio_done").copied().unwrap_or(0);
    let start_misses = misses.values().sum::<u64>() - done_misses;
    Measured {
        printed: h.total(),
        kernel,
        done_misses,
        start_misses,
        others,
        out,
        err,
    }
}

/// The printed total equals the kernel's completed requests over every disk. Another disk's
/// background I/O can complete between the gadget's last read and its exit (counted by the
/// kernel only): such a run is retried, up to three times; a run where only our device moved
/// must match exactly.
fn assert_counts_every_disk(store: &Path, reference: &str, extra: &[&str]) -> String {
    assert!(
        is_root(),
        "this test needs root: run it through `make test`"
    );
    let dev = LoopDevice::new("igimg");
    let mut last = String::new();
    for attempt in 1..=3 {
        let m = measure_all_disks(store, reference, &dev, extra);
        assert!(m.kernel >= u64::from(WRITES), "kernel counted {}", m.kernel);
        // Exact when no start program was skipped; otherwise each skipped start can lose one.
        let lost = m.kernel.checked_sub(m.printed + m.done_misses);
        if lost.is_some_and(|l| l <= m.start_misses) {
            assert!(m.out.contains("latency\n"), "{}", m.out);
            return m.err;
        }
        assert!(
            !m.others.is_empty(),
            "only {} moved, yet printed {} + {} skipped completions != kernel {} ({} skipped starts); stderr:\n{}",
            dev.name,
            m.printed,
            m.done_misses,
            m.kernel,
            m.start_misses,
            m.err
        );
        last = format!(
            "attempt {attempt}: printed {} (+{} skipped completions, {} skipped starts), kernel {}, background I/O on {:?}",
            m.printed, m.done_misses, m.start_misses, m.kernel, m.others
        );
        eprintln!("{last}");
    }
    panic!("background I/O interfered three times; {last}");
}

#[test]
fn igs_image_imports_and_inspects_with_igs_metadata() {
    let store = imported_store();
    let out = ok(&gadget(
        store.path(),
        &["image", "inspect", IG_REF, "-o", "json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["manifest"]["artifactType"],
        "application/vnd.gadget.v1+binary"
    );
    assert!(v["gadgetYaml"].as_str().unwrap().contains("dataSources:"));
    let g = &v["gadget"];
    assert_eq!(g["name"], "profile blockio");
    assert_eq!(g["warnings"], serde_json::json!([]), "{g}");
    let ds = &g["datasources"][0];
    assert_eq!(ds["name"], "blockio");
    assert_eq!(ds["map"], "hists");
    assert_eq!(ds["keyType"], "struct hist_key");
    assert_eq!(ds["valueType"], "struct hist_value");
    let fields: Vec<&str> = ds["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["cmd_flags", "dev", "latency"]);
    let latency = &ds["fields"][2];
    assert_eq!(
        latency["annotations"]["metrics.unit"], "µs",
        "gadget.yaml's"
    );
    assert_eq!(latency["annotations"]["metrics.type"], "histogram");
    assert_eq!(latency["annotations"]["ebpf.type"], "histogram_u32");
    assert_eq!(latency["annotations"]["ebpf.slots"], "27");
    assert_eq!(ds["annotations"]["metrics.print"], "true");
    // No GADGET_PARAM in IG's profile_blockio, and no params in its gadget.yaml.
    assert_eq!(g["params"], serde_json::json!([]));
    // The text form shows the same.
    let text = ok(&gadget(store.path(), &["image", "inspect", IG_REF]));
    assert!(
        text.contains(
            "Datasource blockio (map hists, key struct hist_key, value struct hist_value)"
        ),
        "{text}"
    );
    assert!(
        text.contains("field latency (gadget_histogram_slot__u32[27])"),
        "{text}"
    );
}

#[test]
#[ignore = "needs root"]
fn igs_image_counts_every_completed_request() {
    let store = imported_store();
    let err = assert_counts_every_disk(store.path(), IG_REF, &[]);
    assert!(!err.contains("warning"), "{err}");
    assert!(
        err.contains("attached profile blockio with raw_tp"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root"]
fn igs_image_pushed_with_skopeo_runs_by_reference() {
    let reg = DockerRegistry::start();
    let store = tempfile::tempdir().unwrap();
    let target = format!("{}/inspektor-gadget/profile_blockio:v0.46.0", reg.host());
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", fixture().display()),
        &format!("docker://{target}"),
    ]);
    // skopeo copies the unsigned image; the signature this host trusts comes from a store
    // that imported the fixture with --trust, pushed beside it by `image push`.
    let signer = tempfile::tempdir().unwrap();
    ok(&gadget(
        signer.path(),
        &[
            "image",
            "import",
            "--trust",
            fixture().to_str().unwrap(),
            &target,
        ],
    ));
    ok(&gadget(signer.path(), &["image", "push", &target]));
    // The registry's blob files are written to the root disk: flush them now, so their
    // writeback does not land in the measured window of every disk.
    assert!(Command::new("sync").status().unwrap().success());
    assert_counts_every_disk(store.path(), &target, &[]);
    // Pulled into the empty store by the run (the first attempt: a retry after background I/O
    // finds it local, so the pull's log line is not a reliable witness).
    let listed = ok(&gadget(store.path(), &["image", "list", "-o", "json"]));
    assert!(
        listed.contains(&format!("{}/inspektor-gadget/profile_blockio", reg.host())),
        "{listed}"
    );
}

/// The `le` values IG's exporter writes for bounds 2^0 … 2^26 (Go's 'g' formatting).
fn igs_le() -> Vec<String> {
    (0..27)
        .map(|k| {
            let v = 1u64 << k;
            if v < 1_000_000 {
                v.to_string()
            } else {
                let s = v.to_string();
                let (first, rest) = s.split_at(1);
                let rest = rest.trim_end_matches('0');
                let frac = if rest.is_empty() {
                    String::new()
                } else {
                    format!(".{rest}")
                };
                format!("{first}{frac}e+{:02}", s.len() - 1)
            }
        })
        .collect()
}

#[test]
#[ignore = "needs root"]
fn igs_image_exposition_has_igs_shape_and_the_kernels_total() {
    assert!(
        is_root(),
        "this test needs root: run it through `make test`"
    );
    let store = imported_store();
    let dev = LoopDevice::new("igprom");
    let listen = format!("127.0.0.1:{}", crate::common::prometheus::free_port());
    let store_s = store.path().to_str().unwrap().to_string();
    let run = ["--store", &store_s, "run", IG_REF, "--interval", "200ms"];
    let flags = crate::common::prometheus::blockio_metrics_flags(&listen);
    let mut g = Running::start(&[&run[..], &flags].concat());
    g.wait_attached();
    dev.write_direct(WRITES);
    dev.wait_quiet();
    // Wait (bounded) until the endpoint shows at least our writes.
    let start = Instant::now();
    let inf_line = |text: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with("latency__s_bucket{") && l.contains("le=\"+Inf\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
    };
    let text = loop {
        let body = Command::new("curl")
            .args(["-sf", &format!("http://{listen}/metrics")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&body.stdout).to_string();
        if inf_line(&text).is_some_and(|n| n >= u64::from(WRITES)) {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no total in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (status, _, err) = g.interrupt();
    assert!(status.success(), "{err}");
    // The latency family, line by line, as IG's exporter writes it.
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "# HELP latency__s ")
        .unwrap_or_else(|| panic!("no IG HELP line in:\n{text}"));
    assert_eq!(lines[at + 1], "# TYPE latency__s histogram");
    let labels =
        r#"otel_scope_name="blockio-metrics",otel_scope_schema_url="",otel_scope_version="""#;
    let mut cumulative = Vec::new();
    for (i, le) in igs_le().iter().chain([&"+Inf".to_string()]).enumerate() {
        let l = lines[at + 2 + i];
        let prefix = format!("latency__s_bucket{{{labels},le=\"{le}\"}} ");
        assert!(l.starts_with(&prefix), "line {i}: {l:?} lacks {prefix:?}");
        cumulative.push(l[prefix.len()..].parse::<f64>().unwrap());
    }
    assert!(
        cumulative.windows(2).all(|w| w[0] <= w[1]),
        "{cumulative:?}"
    );
    let total = *cumulative.last().unwrap();
    let rest = &lines[at + 2 + 28..at + 2 + 30];
    assert!(
        rest[0].starts_with(&format!("latency__s_sum{{{labels}}} ")),
        "{rest:?}"
    );
    assert_eq!(
        rest[1],
        format!("latency__s_count{{{labels}}} {}", total as u64)
    );
    assert!(
        text.contains("# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info{"),
        "{text}"
    );
}
