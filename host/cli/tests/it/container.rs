//! The container image (`make image`, deploy/Dockerfile) run by podman as the DaemonSet runs
//! it: the pod is translated from deploy/kubernetes/daemonset.yaml by common/pod.rs (command,
//! env, ports, hostPath/emptyDir/Secret volumes, privileged, read-only root, limits, grace
//! period), never written out by hand. Real parts: podman + runc, the image's own binary and
//! pre-seeded gadget store, eBPF on a loop device, Debian's Prometheus configured from the
//! pod's annotations. No Kubernetes API server runs here: what it would do for the test
//! (schedule, fill NODE_NAME, mount the Secret, proxy to the pod) the test does itself.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::pod::{self, Node, PodRun, podman_out};
use crate::common::prometheus::Prometheus;
use crate::common::*;

const TOKEN: &str = "container-test-token-0123456789";
const NODE: &str = "node-in-a-container";
/// Instances running when the container's memory is measured.
const MEASURED_INSTANCES: usize = 10;

fn http(url: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// POST a request to the daemon's cluster API, as the API server's pod proxy forwards it.
fn api(pod: &PodRun, token: Option<&str>, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let mut extra = vec![
        "-X".to_string(),
        "POST".into(),
        "-H".into(),
        "content-type: application/json".into(),
        "--data-binary".into(),
        body.to_string(),
    ];
    if let Some(t) = token {
        extra.extend(["-H".into(), format!("x-gadget-token: {t}")]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (code, text) = http(&pod.url("api", "/api/v1"), &extra);
    let reply = serde_json::from_str(text.lines().next().unwrap_or("null"))
        .unwrap_or(serde_json::Value::Null);
    (code, reply)
}

fn logs(name: &str) -> String {
    let out = podman_out(&["logs", name]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits for the readiness probe's answer, as the kubelet does before sending traffic.
fn wait_ready(pod: &PodRun, name: &str) {
    let (path, port) = &pod.readiness;
    let start = Instant::now();
    while http(&pod.url(port, path), &[]).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{path} never answered 200\n{}",
            logs(name)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (Re)starts the container `name` from the pod's image and volumes, as the kubelet does after
/// a crash or a stop, and waits until it is ready.
fn start_container(pod: &PodRun, name: &str) {
    pod::remove(name);
    let out = pod.run(name, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_ready(pod, name);
}

fn instance_ids(pod: &PodRun) -> Vec<String> {
    let (code, reply) = api(pod, Some(TOKEN), &serde_json::json!({"op": "list"}));
    assert_eq!(code, 200, "{reply}");
    let mut ids: Vec<String> = reply["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn run_request(reference: &str, name: &str, disk: &str, scope: &str) -> serde_json::Value {
    serde_json::json!({"op": "run", "spec": {
        "name": name,
        "reference": reference,
        "params": {"disk": disk},
        "annotations": [
            "blockio:metrics.collect=true",
            "blockio:env.fields.node=NODE_NAME",
            "blockio.node:metrics.type=key",
        ],
        "metrics_names": [format!("blockio:{scope}")],
        "interval_ms": 1000,
        // The CLI's defaults (`gadget run --help`).
        "guest_fuel": 1_000_000_000u64,
        "guest_memory_mib": 64,
    }})
}

/// The image and the manifest agree with each other and with what the daemon serves.
#[test]
#[ignore = "needs root"]
fn manifest_image_and_dockerfile_agree() {
    let node = Node::new(NODE, TOKEN);
    let pod = pod::translate(&pod::daemonset(), &node);
    // The image's CMD is the manifest's command (a pod without `command` runs the same).
    let out = podman_out(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}}",
        &pod::image(),
    ]);
    assert!(
        out.status.success(),
        "the image {} is missing: run `make image` first\n{}",
        pod::image(),
        String::from_utf8_lossy(&out.stderr)
    );
    let cmd: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cmd, pod.command, "image CMD vs {}", pod::MANIFEST);
    let dockerfile = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    let cmd_line = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("deploy/Dockerfile has a CMD");
    let dockerfile_cmd: Vec<String> = serde_json::from_str(cmd_line).unwrap();
    assert_eq!(
        dockerfile_cmd,
        pod.command,
        "deploy/Dockerfile CMD vs {}",
        pod::MANIFEST
    );
    // The OCI labels a registry and scanners read.
    let out = podman_out(&[
        "image",
        "inspect",
        "--format",
        "{{json .Labels}}",
        &pod::image(),
    ]);
    let labels: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["version", "revision", "source"] {
        let v = labels[format!("org.opencontainers.image.{key}")]
            .as_str()
            .unwrap_or_default();
        assert!(!v.is_empty() && v != "unknown", "label {key}: {labels}");
    }

    // IG's short name resolves inside the image with no network and a read-only root.
    let out = pod::podman()
        .args([
            "run",
            "--rm",
            "--network=none",
            "--read-only",
            "--read-only-tmpfs=false",
        ])
        .args(pod::runtime_ulimits())
        .args([&pod::image(), "gadget", "image", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && list
                .lines()
                .any(|l| l.starts_with("profile_blockio ") && l.contains(" v0.46.0 ")),
        "{list}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Probes and the Prometheus annotations point at the metrics listener of the command.
    let flag = |name: &str| {
        pod.command
            .iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("command has --{name}"))
            .to_string()
    };
    let metrics_port: u16 = flag("otel-metrics-listen-address")
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let api_port: u16 = flag("api-listen-address")
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert_eq!(pod.ports["metrics"].0, metrics_port);
    assert_eq!(pod.ports["api"].0, api_port);
    assert_eq!(
        pod.annotations["prometheus.io/port"],
        metrics_port.to_string()
    );
    assert_eq!(pod.annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        pod.liveness,
        ("/healthz".to_string(), "metrics".to_string())
    );
    assert_eq!(
        pod.readiness,
        ("/readyz".to_string(), "metrics".to_string())
    );
    // The token file of the command is the Secret's `token` key where the Secret is mounted.
    assert!(
        pod.args
            .iter()
            .any(|a| a.ends_with(":/etc/gadget/api-token:ro")),
        "{:?}",
        pod.args
    );
    assert_eq!(flag("api-token-file"), "/etc/gadget/api-token/token");
    assert_eq!(flag("state-dir"), "/var/lib/gadget");
}

#[test]
#[ignore = "needs root"]
fn daemonset_pod_in_podman_end_to_end() {
    assert!(is_root(), "needs root: run through `make test`");
    let node = Node::new(NODE, TOKEN);
    let pod = pod::translate(&pod::daemonset(), &node);
    let name = format!("gadget-test-{}", std::process::id());
    pod::remove(&name);
    let dev = LoopDevice::new("container");
    let out = pod.run(&name, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _cleanup = Cleanup(name.clone());
    wait_ready(&pod, &name);
    let (path, port) = &pod.liveness;
    assert_eq!(http(&pod.url(port, path), &[]).0, 200, "liveness {path}");

    // The cluster API: refused without the token and with a wrong one.
    let req = run_request(
        "profile_blockio:v0.46.0",
        "via-api",
        &dev.name,
        "container-api",
    );
    let (code, reply) = api(&pod, None, &req);
    assert_eq!(code, 401, "{reply}");
    let (code, reply) = api(&pod, Some("wrong-token-wrong-token-wrong"), &req);
    assert_eq!(code, 401, "{reply}");
    assert!(
        instance_ids(&pod).is_empty(),
        "nothing started without the token"
    );
    // With it: IG's short name resolves to the gadget in the image's own store (no pull).
    let (code, reply) = api(&pod, Some(TOKEN), &req);
    assert_eq!(code, 200);
    assert_eq!(reply["reply"], "started", "{reply}\n{}", logs(&name));

    // IG's instance manifest through `kubectl exec`'s equivalent, from stdin.
    let manifest = format!(
        "apiVersion: 1\nkind: instance-spec\nimage: profile_blockio:v0.46.0\nname: via-exec\n\
         paramValues:\n  operator.oci.annotate: blockio:metrics.collect=true,blockio:env.fields.node=NODE_NAME,blockio.node:metrics.type=key\n  \
         operator.otel-metrics.otel-metrics-name: blockio:container-exec\n  operator.oci.ebpf.disk: {}\n",
        dev.name
    );
    let mut exec = pod::podman()
        .args(["exec", "-i", &name, "gadget", "run", "-f", "-", "--detach"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        exec.stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
    }
    let out = exec.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before_restart = instance_ids(&pod);
    assert_eq!(before_restart.len(), 2);

    // Prometheus as a cluster's kubernetes_sd "role: pod" config would scrape this pod: the
    // pod's address with the annotations' port (published here) and path.
    let metrics_port: u16 = pod.annotations["prometheus.io/port"].parse().unwrap();
    let (_, host_port) = pod
        .ports
        .values()
        .find(|(c, _)| *c == metrics_port)
        .copied()
        .unwrap();
    let prom = Prometheus::start_scraping(
        &[format!("127.0.0.1:{host_port}")],
        &pod.annotations["prometheus.io/path"],
    );
    let inf_of = |scope: &str| {
        format!("sum by (node) (latency__s_bucket{{otel_scope_name=\"{scope}\", le=\"+Inf\"}})")
    };
    let wait_both = |want: f64| {
        for scope in ["container-api", "container-exec"] {
            prom.wait_for(&inf_of(scope), |r| {
                r.len() == 1
                    && r[0].0.get("node").map(String::as_str) == Some(NODE)
                    && r[0].1 == want
            });
        }
    };

    let start = dev.completed();
    dev.write_direct(300);
    dev.read_direct(100);
    let kernel = (dev.completed() - start) as f64;
    wait_both(kernel);

    // Memory: what the daemon uses with MEASURED_INSTANCES instances, against the manifest's
    // limit (the number written next to the limit in the manifest comes from this line).
    let cg = pod::memory_cgroup(&name).expect("the container's memory cgroup");
    let read = |file: &str| -> u64 {
        std::fs::read_to_string(cg.join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    eprintln!(
        "container memory: peak {} MiB with 2 instances",
        read("memory.max_usage_in_bytes") >> 20
    );
    let extra: Vec<String> = (2..MEASURED_INSTANCES)
        .map(|i| {
            let req = run_request(
                "profile_blockio:v0.46.0",
                &format!("extra-{i}"),
                &dev.name,
                &format!("extra-{i}"),
            );
            let (code, reply) = api(&pod, Some(TOKEN), &req);
            assert_eq!(
                (code, &reply["reply"]),
                (200, &serde_json::json!("started")),
                "{reply}"
            );
            reply["id"].as_str().unwrap().to_string()
        })
        .collect();
    dev.write_direct(100);
    // The extra instances count the same device; the two checked ones must still be exact.
    wait_both((dev.completed() - start) as f64);
    let (peak, limit) = (
        read("memory.max_usage_in_bytes"),
        read("memory.limit_in_bytes"),
    );
    assert_eq!(
        limit, pod.memory_limit_bytes,
        "the manifest's limit is applied"
    );
    eprintln!(
        "container memory: peak {} MiB with {MEASURED_INSTANCES} instances (limit {} MiB)",
        peak >> 20,
        limit >> 20
    );
    assert!(peak < limit);
    let (code, reply) = api(
        &pod,
        Some(TOKEN),
        &serde_json::json!({"op": "delete", "targets": extra}),
    );
    assert_eq!(code, 200, "{reply}");
    let kernel = (dev.completed() - start) as f64;

    // Killed as the kubelet kills a container past its grace period, or the OOM killer does.
    let out = podman_out(&["kill", "--signal", "KILL", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // I/O while no daemon runs: the pinned programs count it.
    let down = dev.completed();
    dev.write_direct(200);
    let kernel = kernel + (dev.completed() - down) as f64;
    // The kubelet starts a new container from the same image with the same volumes.
    start_container(&pod, &name);
    assert_eq!(
        instance_ids(&pod),
        before_restart,
        "the instances came back"
    );
    wait_both(kernel);
    for scope in ["container-api", "container-exec"] {
        let r = prom.query(&format!(
            "resets(latency__s_bucket{{otel_scope_name=\"{scope}\", le=\"+Inf\"}}[10m])"
        ));
        assert!(
            !r.is_empty() && r.iter().all(|(_, v)| *v == 0.0),
            "{scope}: {r:?}"
        );
    }

    // SIGTERM with the manifest's grace period: the daemon exits by itself (code 0, not
    // killed at the end of the grace period: 137) and its instances stay saved.
    let grace = pod.grace_seconds.to_string();
    let out = podman_out(&["stop", "--time", &grace, &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = podman_out(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "{}",
        logs(&name)
    );
    assert!(logs(&name).contains("instances stay pinned and saved"));
    start_container(&pod, &name);
    assert_eq!(instance_ids(&pod), before_restart, "saved across the stop");

    // Leave nothing pinned on the node.
    let (code, reply) = api(
        &pod,
        Some(TOKEN),
        &serde_json::json!({"op": "delete", "targets": before_restart}),
    );
    assert_eq!(code, 200, "{reply}");
    assert!(instance_ids(&pod).is_empty());
}

/// Removes the test's container however the test ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        pod::remove(&self.0);
    }
}

/// The manifest without one of the container's volume mounts.
fn drop_mount(mount: &'static str) -> impl Fn(&mut serde_json::Value) {
    move |ds: &mut serde_json::Value| {
        let mounts = pod::container_mut(ds)["volumeMounts"]
            .as_array_mut()
            .unwrap();
        let before = mounts.len();
        mounts.retain(|m| m["name"].as_str() != Some(mount));
        assert_eq!(mounts.len(), before - 1, "the manifest mounts {mount}");
    }
}

/// The manifest with one thing missing: the daemon names it and exits non-zero.
#[test]
#[ignore = "needs root"]
fn a_pod_missing_a_mount_or_privilege_is_refused_with_the_reason() {
    assert!(is_root(), "needs root: run through `make test`");
    type Change = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Change, &[&str])> = vec![
        (
            "no bpffs volume",
            Box::new(drop_mount("bpffs")),
            &[
                "bpffs is not mounted at /sys/fs/bpf",
                "mountPropagation: Bidirectional",
            ],
        ),
        (
            "no tracefs volume, capabilities instead of privileged",
            Box::new(|ds: &mut serde_json::Value| {
                drop_mount("tracefs")(ds);
                let c = pod::container_mut(ds);
                c["securityContext"]["privileged"] = false.into();
            }),
            &[
                "tracefs is not mounted at /sys/kernel/tracing",
                "no CAP_SYS_ADMIN to mount it",
                "hostPath /sys/kernel/tracing",
            ],
        ),
        (
            "read-only state directory",
            Box::new(|ds: &mut serde_json::Value| {
                let c = pod::container_mut(ds);
                for m in c["volumeMounts"].as_array_mut().unwrap() {
                    if m["name"].as_str() == Some("state") {
                        m["readOnly"] = true.into();
                    }
                }
            }),
            &["/var/lib/gadget/daemon.lock", "Read-only file system"],
        ),
        (
            "no token Secret",
            Box::new(drop_mount("api-token")),
            &["/etc/gadget/api-token/token", "No such file or directory"],
        ),
        (
            "not privileged",
            Box::new(|ds: &mut serde_json::Value| {
                pod::container_mut(ds)["securityContext"]["privileged"] = false.into();
            }),
            &[
                "needs root, or the capabilities CAP_BPF and CAP_PERFMON",
                "privileged: true",
            ],
        ),
    ];
    for (what, change, expect) in cases {
        let node = Node::new(NODE, TOKEN);
        let mut ds = pod::daemonset();
        change(&mut ds);
        let mut pod = pod::translate(&ds, &node);
        if what.starts_with("no tracefs") {
            // What IG's own chart grants instead of privileged: enough for eBPF, not to mount.
            pod.args
                .extend(["--cap-add=BPF".into(), "--cap-add=PERFMON".into()]);
        }
        let name = format!("gadget-test-{}-bad", std::process::id());
        pod::remove(&name);
        let out = pod.run(&name, false);
        let log = logs(&name);
        pod::remove(&name);
        assert!(!out.status.success(), "{what}: the daemon started\n{log}");
        for e in expect {
            assert!(log.contains(e), "{what}: no {e:?} in:\n{log}");
        }
        eprintln!("{what}: {}", log.lines().last().unwrap_or_default());
    }
}

/// A pod template field the translation does not know fails (the manifest and the test cannot
/// drift apart silently).
#[test]
#[ignore = "needs root"]
#[should_panic(expected = "hostIPC is not translated by host/cli/tests/it/common/pod.rs")]
fn an_untranslated_manifest_field_fails_the_test() {
    let mut ds = pod::daemonset();
    ds["spec"]["template"]["spec"]["hostIPC"] = true.into();
    pod::translate(&ds, &Node::new(NODE, TOKEN));
}

#[test]
#[ignore = "needs root"]
#[should_panic(expected = "containers[0].lifecycle is not translated")]
fn an_untranslated_container_field_fails_the_test() {
    let mut ds = pod::daemonset();
    pod::container_mut(&mut ds)["lifecycle"] = serde_json::Value::Object(Default::default());
    pod::translate(&ds, &Node::new(NODE, TOKEN));
}
