//! The DaemonSet's pod run by podman, the way the kubelet runs it: the container's command,
//! env, ports, volumes (hostPath, emptyDir, the token Secret), privileges, read-only root
//! filesystem, resource limits, probes and grace period are all read from
//! deploy/kubernetes/daemonset.yaml and translated into `podman run` arguments.
//!
//! Drift fails: every field of the pod template is either translated here or named as not
//! applying to one node (scheduling, RBAC); a field this module does not know makes the test
//! fail with its name, so the manifest cannot grow something the container test ignores.
//!
//! What a real node does that this does not: pulling the image (the test runs the image
//! `make image` built), the API server's Secret (the test writes the token file itself),
//! and disk-backed emptyDirs (tmpfs here, bounded by the same sizeLimit).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::repo_root;

pub const MANIFEST: &str = "deploy/kubernetes/daemonset.yaml";

/// `podman` with the runtime that works on this machine (stack.md: crun cannot run here).
pub fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    c
}

pub fn podman_out(args: &[&str]) -> Output {
    podman()
        .args(args)
        .output()
        .expect("podman (make deps installs it)")
}

/// The image under test: what `make image` built.
pub fn image() -> String {
    std::env::var("GADGET_IMAGE").unwrap_or_else(|_| "localhost/gadget:dev".to_string())
}

/// The manifest's DaemonSet, parsed.
pub fn daemonset() -> Value {
    let text = std::fs::read_to_string(repo_root().join(MANIFEST)).unwrap();
    gadget_model::yaml::from_str(&text, &gadget_model::yaml::YamlLimits::default()).unwrap()
}

/// The pod template's only container, for tests that change the manifest before running it.
pub fn container_mut(ds: &mut Value) -> &mut Value {
    &mut ds["spec"]["template"]["spec"]["containers"][0]
}

/// What the test supplies that a cluster would: the node's name, the node's state directory
/// (a directory of the test's own, not the machine's /var/lib/gadget) and the Secret's files.
pub struct Node {
    pub name: String,
    pub state_dir: PathBuf,
    pub secret_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    pub fn new(name: &str, token: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let secret_dir = dir.path().join("secret");
        std::fs::create_dir_all(&secret_dir).unwrap();
        std::fs::write(secret_dir.join("token"), token).unwrap();
        Node {
            name: name.to_string(),
            state_dir,
            secret_dir,
            _dir: dir,
        }
    }
}

/// The DaemonSet's pod as `podman run` arguments, plus what the test checks against.
#[derive(Debug)]
pub struct PodRun {
    /// Arguments between `podman run` and the image.
    pub args: Vec<String>,
    /// The container's `command` (runs instead of the image's CMD).
    pub command: Vec<String>,
    /// Port name -> (container port, published host port on 127.0.0.1).
    pub ports: BTreeMap<String, (u16, u16)>,
    pub annotations: BTreeMap<String, String>,
    /// (path, port name) of the liveness and readiness probes.
    pub liveness: (String, String),
    pub readiness: (String, String),
    pub grace_seconds: u64,
    pub memory_limit_bytes: u64,
}

/// Kubernetes quantities as bytes: 512Mi, 64Mi, 1Gi, 1M, plain numbers.
pub fn bytes(q: &str) -> u64 {
    let (num, mult) = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ]
    .iter()
    .find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m)))
    .unwrap_or((q, 1));
    num.parse::<u64>()
        .unwrap_or_else(|_| panic!("quantity {q:?}"))
        * mult
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

/// Fails on keys of `map` (at `at` in the manifest) that are not in `known`.
fn only_known(map: &Value, at: &str, known: &[&str]) {
    let Some(m) = map.as_object() else {
        panic!("{MANIFEST}: {at} is not a mapping");
    };
    for k in m.keys() {
        assert!(
            known.contains(&k.as_str()),
            "{MANIFEST}: {at}.{k} is not translated by host/cli/tests/it/common/pod.rs; teach it what \
             `{k}` means for the container (or name it as not applying to one node) so the \
             container test keeps running the pod as the manifest says"
        );
    }
}

/// A free TCP port on 127.0.0.1 for publishing a container port.
fn free_port() -> u16 {
    super::prometheus::free_port()
}

/// Translates the DaemonSet's pod template for `node`.
pub fn translate(ds: &Value, node: &Node) -> PodRun {
    assert_eq!(ds["kind"], Value::from("DaemonSet"), "{MANIFEST}: kind");
    let template = &ds["spec"]["template"];
    let pod = &template["spec"];
    only_known(
        pod,
        "spec.template.spec",
        &[
            // RBAC and scheduling: what an API server and a scheduler do, not the node.
            "serviceAccountName",
            "tolerations",
            // Translated below.
            "automountServiceAccountToken",
            "hostPID",
            "hostNetwork",
            "terminationGracePeriodSeconds",
            "containers",
            "volumes",
        ],
    );
    // podman mounts no service account token; a manifest that wants one must say how here.
    assert_eq!(
        pod["automountServiceAccountToken"],
        Value::from(false),
        "{MANIFEST}: the test has no service account token to mount"
    );
    let mut args: Vec<String> = Vec::new();
    if pod["hostPID"].as_bool() == Some(true) {
        args.push("--pid=host".into());
    }
    if pod["hostNetwork"].as_bool() == Some(true) {
        args.push("--network=host".into());
    }
    let grace_seconds = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    args.push(format!("--stop-timeout={grace_seconds}"));

    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{MANIFEST}: one container per pod");
    let c = &containers[0];
    only_known(
        c,
        "containers[0]",
        &[
            "name",
            // The image under test replaces the registry's: nothing is pulled here.
            "image",
            "imagePullPolicy",
            "command",
            "env",
            "ports",
            "livenessProbe",
            "readinessProbe",
            "resources",
            "securityContext",
            "volumeMounts",
        ],
    );
    let command: Vec<String> = c["command"]
        .as_array()
        .expect("command")
        .iter()
        .map(s)
        .collect();

    for e in c["env"].as_array().into_iter().flatten() {
        only_known(e, "env[]", &["name", "value", "valueFrom"]);
        let name = s(&e["name"]);
        let value = if let Some(v) = e.get("value") {
            s(v)
        } else {
            let field = s(&e["valueFrom"]["fieldRef"]["fieldPath"]);
            match field.as_str() {
                "spec.nodeName" => node.name.clone(),
                other => panic!("{MANIFEST}: env {name}: fieldRef {other} is not translated"),
            }
        };
        args.push(format!("--env={name}={value}"));
    }

    let mut ports = BTreeMap::new();
    for p in c["ports"].as_array().into_iter().flatten() {
        only_known(p, "ports[]", &["name", "containerPort", "protocol"]);
        assert_eq!(s(&p["protocol"]), "TCP");
        let container_port = p["containerPort"].as_u64().expect("containerPort") as u16;
        let host_port = free_port();
        args.push(format!("--publish=127.0.0.1:{host_port}:{container_port}"));
        ports.insert(s(&p["name"]), (container_port, host_port));
    }
    let probe = |key: &str| {
        let p = &c[key];
        only_known(
            p,
            key,
            &[
                "httpGet",
                "initialDelaySeconds",
                "periodSeconds",
                "timeoutSeconds",
                "failureThreshold",
            ],
        );
        only_known(&p["httpGet"], key, &["path", "port"]);
        let port = s(&p["httpGet"]["port"]);
        let name = ports
            .iter()
            .find(|(n, (cp, _))| **n == port || cp.to_string() == port)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| panic!("{MANIFEST}: {key} port {port} is not a container port"));
        (s(&p["httpGet"]["path"]), name)
    };
    let liveness = probe("livenessProbe");
    let readiness = probe("readinessProbe");

    only_known(&c["resources"], "resources", &["requests", "limits"]);
    only_known(
        &c["resources"]["limits"],
        "resources.limits",
        &["cpu", "memory"],
    );
    let memory_limit_bytes = bytes(&s(&c["resources"]["limits"]["memory"]));
    args.push(format!("--memory={memory_limit_bytes}"));
    let cpu = s(&c["resources"]["limits"]["cpu"]);
    let cpus = match cpu.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().unwrap() / 1000.0,
        None => cpu.parse::<f64>().unwrap(),
    };
    args.push(format!("--cpus={cpus}"));

    let sc = &c["securityContext"];
    only_known(
        sc,
        "securityContext",
        &["privileged", "readOnlyRootFilesystem"],
    );
    if sc["privileged"].as_bool() == Some(true) {
        args.push("--privileged".into());
    }
    if sc["readOnlyRootFilesystem"].as_bool() == Some(true) {
        // podman adds writable tmpfs on /tmp, /run and /var/tmp to --read-only containers
        // unless told not to; Kubernetes adds nothing.
        args.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
    }

    let volumes: BTreeMap<String, &Value> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| (s(&v["name"]), v))
        .collect();
    for m in c["volumeMounts"].as_array().expect("volumeMounts") {
        only_known(
            m,
            "volumeMounts[]",
            &["name", "mountPath", "readOnly", "mountPropagation"],
        );
        let name = s(&m["name"]);
        let path = s(&m["mountPath"]);
        let ro = m["readOnly"].as_bool() == Some(true);
        let v = volumes
            .get(&name)
            .unwrap_or_else(|| panic!("{MANIFEST}: volumeMount {name} has no volume"));
        let propagation = match m.get("mountPropagation").map(s).as_deref() {
            None | Some("None") => None,
            Some("HostToContainer") => Some("rslave"),
            Some("Bidirectional") => Some("rshared"),
            Some(other) => panic!("{MANIFEST}: mountPropagation {other}"),
        };
        if let Some(hp) = v.get("hostPath") {
            only_known(hp, "hostPath", &["path", "type"]);
            let host = s(&hp["path"]);
            // The node's state directory is the test's own: never the machine's.
            let host = if host == "/var/lib/gadget" {
                node.state_dir.clone()
            } else {
                PathBuf::from(host)
            };
            match s(&hp["type"]).as_str() {
                "Directory" => assert!(
                    host.is_dir(),
                    "hostPath {} (type Directory) is missing on this machine",
                    host.display()
                ),
                "DirectoryOrCreate" => std::fs::create_dir_all(&host).unwrap(),
                other => panic!("{MANIFEST}: hostPath type {other}"),
            }
            let mut opts = vec![if ro { "ro" } else { "rw" }];
            opts.extend(propagation);
            args.push(format!(
                "--volume={}:{path}:{}",
                host.display(),
                opts.join(",")
            ));
        } else if let Some(ed) = v.get("emptyDir") {
            only_known(ed, "emptyDir", &["medium", "sizeLimit"]);
            let size = bytes(&s(&ed["sizeLimit"]));
            args.push(format!(
                "--mount=type=tmpfs,destination={path},tmpfs-size={size}"
            ));
        } else if let Some(secret) = v.get("secret") {
            only_known(secret, "secret", &["secretName", "defaultMode"]);
            assert_eq!(s(&secret["secretName"]), "gadget-api-token");
            // Kubernetes writes each key of the Secret as a file with defaultMode, which YAML 1.1
            // (Kubernetes) reads as octal (256); the YAML 1.2 reader here reads the literal `0400` as
            // the number 400. Both are the manifest's `0400`.
            let mode = s(&secret["defaultMode"]);
            assert!(
                ["0400", "256", "0o400", "400", "400.0"].contains(&mode.as_str()),
                "{MANIFEST}: the Secret's defaultMode {mode} is not 0400; translate the new one"
            );
            for f in std::fs::read_dir(&node.secret_dir).unwrap() {
                use std::os::unix::fs::PermissionsExt;
                let f = f.unwrap().path();
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
            }
            assert!(ro, "{MANIFEST}: Secret volumes are read-only");
            args.push(format!("--volume={}:{path}:ro", node.secret_dir.display()));
        } else {
            panic!("{MANIFEST}: volume {name} is of a kind pod.rs does not translate: {v:?}");
        }
    }

    let annotations = template["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), s(v)))
        .collect();
    PodRun {
        args,
        command,
        ports,
        annotations,
        liveness,
        readiness,
        grace_seconds,
        memory_limit_bytes,
    }
}

/// `ulimit -Hn`, and the hard process limit capped where runc's setrlimit is still allowed
/// here (stack.md: without explicit ulimits runc's setrlimit is refused; measured: nproc
/// 32768 works, 65536 does not). Not part of the pod: a kubelet's runtime sets its own.
pub fn runtime_ulimits() -> Vec<String> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard = |name: &str| -> u64 {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024)
    };
    let nofile = hard("Max open files");
    let nproc = hard("Max processes").min(32768);
    vec![
        format!("--ulimit=nofile={nofile}:{nofile}"),
        format!("--ulimit=nproc={nproc}:{nproc}"),
    ]
}

impl PodRun {
    /// `podman run` of this pod's container: detached when `detach`, else to its exit.
    pub fn run(&self, name: &str, detach: bool) -> Output {
        let mut cmd = podman();
        cmd.arg("run").arg(format!("--name={name}"));
        if detach {
            cmd.arg("--detach");
        }
        cmd.args(runtime_ulimits())
            .args(&self.args)
            .arg(image())
            .args(&self.command);
        cmd.output().unwrap()
    }

    pub fn url(&self, port_name: &str, path: &str) -> String {
        let (_, host) = self.ports[port_name];
        format!("http://127.0.0.1:{host}{path}")
    }
}

/// Removes a container whatever its state.
pub fn remove(name: &str) {
    let _ = podman_out(&["rm", "--force", "--time=0", name]);
}

/// The container's cgroup (v1 memory controller) directory, found by its ID.
pub fn memory_cgroup(container: &str) -> Option<PathBuf> {
    let out = podman_out(&["inspect", "--format", "{{.Id}}", container]);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    fn find(dir: &Path, want: &str, depth: u32) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            if p.file_name()?.to_string_lossy().contains(want) {
                return Some(p);
            }
            if depth > 0
                && let Some(found) = find(&p, want, depth - 1)
            {
                return Some(found);
            }
        }
        None
    }
    find(Path::new("/sys/fs/cgroup/memory"), &id, 2)
}
