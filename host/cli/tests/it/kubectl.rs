//! `kubectl gadget …`: the `gadget` binary called by the plugin's name (a `kubectl-gadget`
//! symlink, as `make install` makes and kubectl finds on PATH) acts on the cluster, with
//! kubectl's kubeconfig flags. The API server is cluster.rs's stand-in (no Kubernetes API server
//! can run here): it serves the recorded pod list and Secret and says what the client sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cluster::{
    ApiRequest, ID_A, ID_B, api_server, fixture, instances_reply, kubeconfig, read_request,
};
use crate::common::*;

/// `kubectl-gadget` (a symlink to the built binary, as `make install` makes) in `dir/bin`.
pub(crate) fn plugin(dir: &Path) -> PathBuf {
    let link = dir.join("bin/kubectl-gadget");
    if !link.exists() {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::os::unix::fs::symlink(gadget_bin(), &link).unwrap();
    }
    link
}

/// The plugin with no kubeconfig from the environment: only what the test passes.
fn kubectl_gadget(dir: &Path, args: &[&str]) -> Output {
    Command::new(plugin(dir))
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", dir)
        .args(args)
        .output()
        .unwrap()
}

fn routes(namespace: &str, replies: &[(&str, String)]) -> BTreeMap<String, (u16, String)> {
    let mut r: BTreeMap<String, (u16, String)> = [
        (
            format!("GET /api/v1/namespaces/{namespace}/pods"),
            (200, fixture("pods.json")),
        ),
        (
            format!("GET /api/v1/namespaces/{namespace}/secrets/gadget-api-token"),
            (200, fixture("secret.json")),
        ),
    ]
    .into();
    for (pod, body) in replies {
        r.insert(
            format!("POST /api/v1/namespaces/{namespace}/pods/{pod}:2225/proxy/api/v1"),
            (200, body.clone()),
        );
    }
    r
}

#[test]
fn the_plugin_name_acts_on_the_cluster_with_kubectls_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let (port, seen) = api_server(routes(
        "ig",
        &[
            ("gadget-7xk2p", instances_reply(ID_A, "p")),
            ("gadget-q9m4d", instances_reply(ID_B, "p")),
        ],
    ));
    // The kubeconfig in a file of its own, its context named explicitly: kubectl's flags.
    let kc = kubeconfig(tmp.path(), port);
    let list = |context: &str, more: &[&str]| {
        let mut args = vec!["list", "--kubeconfig", kc.to_str().unwrap(), "--context"];
        args.push(context);
        args.extend_from_slice(more);
        kubectl_gadget(tmp.path(), &args)
    };
    let out = list("test", &["-n", "ig"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().next().unwrap().starts_with("NODE"),
        "{stdout}"
    );
    assert!(
        stdout.contains("node-a") && stdout.contains("node-b"),
        "{stdout}"
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|s| s.1.starts_with("/api/v1/namespaces/ig/pods?")),
        "-n is the daemons' namespace: {seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|s| s.0 == "POST" && s.3 == r#"{"op":"list"}"#)
            .count(),
        2
    );
    drop(seen);

    // A context the kubeconfig does not have is named.
    let out = list("prod", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("prod"), "{stderr}");

    // `gadget` itself stays local: the same verb without --cluster never asks the API server.
    let out = Command::new(gadget_bin())
        .args(["list", "--kubeconfig", kc.to_str().unwrap(), "--socket"])
        .arg(tmp.path().join("no-daemon.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Kubernetes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_kubeconfig_or_no_api_server_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing to find: no KUBECONFIG, no ~/.kube/config, not in a pod.
    let out = kubectl_gadget(tmp.path(), &["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no usable Kubernetes configuration") && stderr.contains("--kubeconfig"),
        "{stderr}"
    );

    // A kubeconfig file that is not there is named.
    let missing = tmp.path().join("missing-kubeconfig");
    let out = kubectl_gadget(
        tmp.path(),
        &["list", "--kubeconfig", missing.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("missing-kubeconfig"), "{stderr}");

    // Nothing listens where the kubeconfig points.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kc = kubeconfig(tmp.path(), closed);
    let out = kubectl_gadget(tmp.path(), &["list", "--kubeconfig", kc.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.to_lowercase().contains("connection refused") && stderr.contains("reachable"),
        "{stderr}"
    );
}

/// The stand-in API server of the runs: the daemon pods' list and the token Secret, and the pod
/// proxy as a real reverse proxy to each node's daemon (its cluster API in the node's network
/// namespace), as the API server's `pods/proxy` subresource is. It is not Kubernetes: it only
/// serves the paths the client uses.
struct StandIn {
    port: u16,
    /// pod name -> host:port of its daemon's cluster API.
    _backends: std::sync::Arc<BTreeMap<String, String>>,
}

fn pod_list(nodes: &[(&str, &str)]) -> String {
    let items: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(pod, node)| {
            serde_json::json!({
                "metadata": {"name": pod, "namespace": "gadget",
                    "labels": {"app.kubernetes.io/name": "gadget", "app.kubernetes.io/component": "daemon"}},
                "spec": {"nodeName": node, "containers": [{"name": "gadget", "image": "gadget:dev"}]},
                "status": {"phase": "Running"}
            })
        })
        .collect();
    serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
        .to_string()
}

impl StandIn {
    fn start(pods: &[(&str, &str, String)]) -> StandIn {
        use std::io::{BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let backends: std::sync::Arc<BTreeMap<String, String>> = std::sync::Arc::new(
            pods.iter()
                .map(|(pod, _, api)| (pod.to_string(), api.clone()))
                .collect(),
        );
        let list = pod_list(&pods.iter().map(|(p, n, _)| (*p, *n)).collect::<Vec<_>>());
        let b = backends.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (b, list) = (b.clone(), list.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    loop {
                        let Some(ApiRequest {
                            method,
                            target,
                            token,
                            body,
                            ..
                        }) = read_request(&mut reader)
                        else {
                            return;
                        };
                        let path = target.split('?').next().unwrap_or("");
                        let proxied = path
                            .strip_prefix("/api/v1/namespaces/gadget/pods/")
                            .and_then(|r| r.strip_suffix(":2225/proxy/api/v1"));
                        let (status, reply) = match (method.as_str(), path, proxied) {
                            ("GET", "/api/v1/namespaces/gadget/pods", _) => (200, list.clone()),
                            ("GET", "/api/v1/namespaces/gadget/secrets/gadget-api-token", _) => {
                                (200, fixture("secret.json"))
                            }
                            ("POST", _, Some(pod)) => match b.get(pod) {
                                Some(api) => forward(api, &token, body.as_bytes()),
                                None => (404, "{}".to_string()),
                            },
                            _ => (404, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"not found","reason":"NotFound","code":404}"#.to_string()),
                        };
                        let reason = if status == 200 { "OK" } else { "Error" };
                        if write!(
                            conn,
                            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                            reply.len()
                        )
                        .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        StandIn {
            port,
            _backends: backends,
        }
    }
}

/// One request to a daemon's cluster API, as the API server's proxy makes it: the status and
/// body passed back; a daemon that does not answer is the API server's 503.
fn forward(api: &str, token: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let unavailable = |e: &dyn std::fmt::Display| {
        (
            503,
            format!(
                r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"error trying to reach service: {e}","reason":"ServiceUnavailable","code":503}}"#
            ),
        )
    };
    let mut s = match std::net::TcpStream::connect_timeout(
        &api.parse().unwrap(),
        std::time::Duration::from_secs(5),
    ) {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let head = format!(
        "POST /api/v1 HTTP/1.1\r\nHost: {api}\r\nX-Gadget-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = Vec::new();
    if let Err(e) = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .and_then(|()| s.read_to_end(&mut out).map(|_| ()))
    {
        return unavailable(&e);
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let Some((head, reply)) = text.split_once("\r\n\r\n") else {
        return unavailable(&"no HTTP reply");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    (status, reply.to_string())
}

/// BPF program IDs loaded right now (`bpftool prog show`).
fn prog_ids() -> std::collections::BTreeSet<u64> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .unwrap();
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    progs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_u64())
        .collect()
}

/// Waits (bounded) until every program loaded since `before` is gone: the kernel frees a
/// program once its last reference is dropped, which may be a moment after the fd closes.
fn wait_progs_gone(before: &std::collections::BTreeSet<u64>) {
    let start = std::time::Instant::now();
    loop {
        let left: Vec<u64> = prog_ids().difference(before).copied().collect();
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "programs left: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Nodes of a cluster on this machine: daemons in network namespaces with the cluster API,
/// each with profile_blockio:v0.46.0 in its own image store, behind the stand-in API server.
struct Nodes {
    daemons: Vec<crate::common::daemon::Daemon>,
    _netns: Vec<crate::multinode::Netns>,
    api: StandIn,
    tmp: tempfile::TempDir,
}

const TOKEN: &str = "s3cret-token-0123456789";

impl Nodes {
    fn start(names: &[&str]) -> Nodes {
        let netns: Vec<crate::multinode::Netns> = (0..names.len())
            .map(|i| crate::multinode::Netns::new(20 + i as u8))
            .collect();
        let daemons: Vec<crate::common::daemon::Daemon> = netns
            .iter()
            .zip(names)
            .enumerate()
            .map(|(i, (ns, node))| {
                let n = 20 + i;
                crate::common::daemon::Daemon::in_netns_with_api(
                    &ns.name,
                    &format!("10.250.{n}.2:2224"),
                    node,
                    &format!("10.250.{n}.2:2225"),
                    TOKEN,
                )
            })
            .collect();
        for d in &daemons {
            ok(&gadget_in(
                &d.store(),
                &[
                    "image",
                    "build",
                    profile_blockio_dir().to_str().unwrap(),
                    "-t",
                    "profile_blockio:v0.46.0",
                ],
            ));
        }
        let pods: Vec<(String, &str, String)> = names
            .iter()
            .enumerate()
            .map(|(i, node)| {
                (
                    format!("gadget-{node}"),
                    *node,
                    format!("10.250.{}.2:2225", 20 + i),
                )
            })
            .collect();
        let api = StandIn::start(
            &pods
                .iter()
                .map(|(p, n, a)| (p.as_str(), *n, a.clone()))
                .collect::<Vec<_>>(),
        );
        Nodes {
            daemons,
            _netns: netns,
            api,
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    /// `kubectl gadget ARGS…` exactly as typed, the kubeconfig from KUBECONFIG.
    fn kubectl_gadget(&self, args: &str) -> std::process::Child {
        let kc = kubeconfig(self.tmp.path(), self.api.port);
        Command::new(plugin(self.tmp.path()))
            .env("KUBECONFIG", kc)
            .args(args.split_whitespace())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Waits (bounded) until no daemon lists an instance.
    fn wait_no_instances(&self) {
        for d in &self.daemons {
            let start = std::time::Instant::now();
            loop {
                let list = d.ok(&["list", "-o", "json"]);
                let v: serde_json::Value = serde_json::from_str(&list).unwrap();
                if v.as_array().is_some_and(|a| a.is_empty()) {
                    break;
                }
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(90),
                    "instances left: {list}\n{}",
                    d.log()
                );
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
    }
}

/// Reads a child's stdout on a thread; the text so far.
fn collect(child: &mut std::process::Child) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::Read;
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let o = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            o.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    out
}

/// Waits (bounded) until the printed output satisfies `done`.
fn wait_output(out: &std::sync::Mutex<String>, what: &str, done: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let text = out.lock().unwrap().clone();
        if done(&text) {
            return text;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(90),
            "waiting for {what}; output so far:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root"]
fn kubectl_gadget_run_combines_every_nodes_histogram_and_cleans_up() {
    assert!(is_root(), "needs root: run through `make test`");
    let nodes = Nodes::start(&["node-a", "node-b"]);
    let devs: Vec<LoopDevice> = ["node-a", "node-b"]
        .iter()
        .map(|n| LoopDevice::new(n))
        .collect();
    let progs_before = prog_ids();

    // The seed's first command, as typed.
    let mut run = nodes.kubectl_gadget("run profile_blockio:v0.46.0");
    let out = collect(&mut run);
    wait_output(&out, "the first combined histogram", |t| {
        !parse_histograms(t).is_empty()
    });
    let mut kernel = 0u64;
    for (dev, n) in devs.iter().zip([300u32, 500]) {
        let before = dev.completed();
        dev.write_direct(n);
        kernel += dev.completed() - before;
    }
    // Tracepoints are kernel-wide and the command has no --disk: each node's gadget counts
    // every device's I/O, so the combined histogram holds it twice (once per node). One node's
    // histogram alone never reaches that.
    let text = wait_output(&out, "both nodes' I/O in one histogram", |t| {
        parse_histograms(t)
            .last()
            .is_some_and(|h| h.total() >= 2 * kernel)
    });
    let last = parse_histograms(&text).pop().unwrap();
    assert_eq!(last.title, "latency", "{text}");
    // Ctrl+C: the client deletes the temporary instance on every node.
    let (status, err) = interrupt_and_wait(&mut run);
    assert!(status.success(), "{err}");
    for d in &nodes.daemons {
        assert_eq!(d.ok(&["list", "-o", "json"]).trim(), "[]", "{}", d.log());
    }
    wait_progs_gone(&progs_before);

    // `--node` selects one node: only its daemon runs an instance.
    let mut one = nodes.kubectl_gadget("run profile_blockio:v0.46.0 --node node-b");
    let out = collect(&mut one);
    wait_output(&out, "node-b's histogram", |t| {
        !parse_histograms(t).is_empty()
    });
    assert_eq!(nodes.daemons[0].ok(&["list", "-o", "json"]).trim(), "[]");
    assert_ne!(nodes.daemons[1].ok(&["list", "-o", "json"]).trim(), "[]");

    // kill -9 of the client: the lease runs out and each daemon deletes its instance.
    one.kill().unwrap();
    one.wait().unwrap();
    nodes.wait_no_instances();
    assert!(
        nodes.daemons[1].log().contains("did not renew the lease"),
        "{}",
        nodes.daemons[1].log()
    );
    wait_progs_gone(&progs_before);
}

#[test]
#[ignore = "needs root"]
fn a_node_killed_mid_run_is_named_and_the_others_keep_streaming() {
    assert!(is_root(), "needs root: run through `make test`");
    let mut nodes = Nodes::start(&["node-a", "node-b"]);
    let dev = LoopDevice::new("node-a");
    let mut run = nodes.kubectl_gadget("run profile_blockio:v0.46.0");
    let out = collect(&mut run);
    wait_output(&out, "the first histogram", |t| {
        !parse_histograms(t).is_empty()
    });
    nodes.daemons[1].kill9();
    let printed = out.lock().unwrap().len();
    let before = dev.completed();
    dev.write_direct(200);
    let kernel = dev.completed() - before;
    // node-a's histogram alone keeps refreshing with the new I/O.
    wait_output(&out, "node-a still streaming", |t| {
        t.len() > printed
            && parse_histograms(&t[printed..])
                .last()
                .is_some_and(|h| h.total() >= kernel)
    });
    let (status, err) = interrupt_and_wait(&mut run);
    assert!(!status.success(), "a failed node fails the command: {err}");
    assert_eq!(err.matches("node node-b").count(), 1, "named once: {err}");
    assert!(err.contains("the other nodes keep streaming"), "{err}");
    assert_eq!(nodes.daemons[0].ok(&["list", "-o", "json"]).trim(), "[]");
    // The killed daemon's pins: restarted to delete what it left.
    for d in &mut nodes.daemons {
        d.clean_up();
    }
}

/// Ctrl+C to the client; its exit status and stderr.
fn interrupt_and_wait(run: &mut std::process::Child) -> (std::process::ExitStatus, String) {
    assert!(
        Command::new("kill")
            .args(["-INT", &run.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = run.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}

/// A real `kubectl` (Debian's kubernetes-client, or any other on PATH; `make deps` installs one
/// when there is none) finds the plugin on PATH and hands it the command line.
#[test]
fn a_real_kubectl_runs_the_plugin() {
    let kubectl = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("no kubectl on PATH: `make deps` installs Debian's kubernetes-client");
    let tmp = tempfile::tempdir().unwrap();
    let (port, seen) = api_server(routes(
        "ig",
        &[
            (
                "gadget-7xk2p",
                instances_reply("aaaaaaaaaaaa1111aaaaaaaaaaaa1111", "profileblockio"),
            ),
            (
                "gadget-q9m4d",
                instances_reply("bbbbbbbbbbbb2222bbbbbbbbbbbb2222", "profileblockio"),
            ),
        ],
    ));
    let kc = kubeconfig(tmp.path(), port);
    let bin = plugin(tmp.path()).parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let kubectl_run = |args: &[&str]| {
        Command::new(&kubectl)
            .env("PATH", &path)
            .env("HOME", tmp.path())
            .env_remove("KUBECONFIG")
            .args(args)
            .output()
            .unwrap()
    };
    let out = kubectl_run(&["plugin", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kubectl-gadget"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kubectl_run(&[
        "gadget",
        "list",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--context",
        "test",
        "-n",
        "ig",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("NODE") && stdout.contains("node-a") && stdout.contains("node-b"),
        "{stdout}"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|s| s.3 == r#"{"op":"list"}"#),
        "the plugin asked the daemons"
    );
    // kubectl's name for it in usage: `kubectl gadget`.
    let out = kubectl_run(&["gadget", "deploy", "--print-only", "-n", "ig"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("kind: DaemonSet"));
    let out = kubectl_run(&["gadget", "--help"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kubectl gadget"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

impl Nodes {
    /// `kubectl gadget ARGS…` run to its end: (success, stdout, stderr).
    fn kubectl_gadget_done(&self, args: &str) -> (bool, String, String) {
        let out = self.kubectl_gadget(args).wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[test]
#[ignore = "needs root"]
fn the_seeds_detached_commands_as_typed_on_every_node() {
    assert!(is_root(), "needs root: run through `make test`");
    let mut nodes = Nodes::start(&["node-a", "node-b"]);
    let devs: Vec<LoopDevice> = ["node-a", "node-b"]
        .iter()
        .map(|n| LoopDevice::new(n))
        .collect();
    let progs_before = prog_ids();

    // The seed's second command, as typed.
    let (ok, stdout, stderr) = nodes.kubectl_gadget_done(
        "run profile_blockio:v0.46.0 --annotate=blockio:metrics.collect=true \
         --otel-metrics-name blockio:blockio-metrics --name profileblockio --detach",
    );
    assert!(ok, "{stderr}");
    for (node, d) in ["node-a", "node-b"].iter().zip(&nodes.daemons) {
        let (id, name) = d.instances().pop().unwrap();
        assert_eq!(name, "profileblockio");
        assert!(stdout.contains(&format!("{node}\t{id}")), "{stdout}");
    }
    // Each node's daemon exports the kernel's counts under the metrics name given (without
    // --disk each node's gadget counts every device's I/O: both loop devices' at least).
    let mut kernel = 0;
    for dev in &devs {
        let before = dev.completed();
        dev.write_direct(200);
        kernel += dev.completed() - before;
    }
    for d in &nodes.daemons {
        let start = std::time::Instant::now();
        while d.inf("blockio-metrics").unwrap_or(0) < kernel {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "blockio-metrics +Inf {:?} < {kernel}:\n{}",
                d.inf("blockio-metrics"),
                d.metrics().unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    // The third: every node's instance, one row each.
    let (ok, stdout, stderr) = nodes.kubectl_gadget_done("list");
    assert!(ok, "{stderr}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("profileblockio"))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows[0].starts_with("node-a") && rows[1].starts_with("node-b"),
        "{stdout}"
    );

    // attach: the detached instances' histograms, combined; Ctrl+C leaves them running.
    let mut attach = nodes.kubectl_gadget("attach profileblockio");
    let out = collect(&mut attach);
    let text = wait_output(&out, "both nodes' I/O in the attached view", |t| {
        parse_histograms(t)
            .last()
            .is_some_and(|h| h.total() >= 2 * kernel)
    });
    assert_eq!(parse_histograms(&text).pop().unwrap().title, "latency");
    let (status, err) = interrupt_and_wait(&mut attach);
    assert!(status.success(), "{err}");
    for d in &nodes.daemons {
        assert_eq!(
            d.instances().len(),
            1,
            "attach left the instance: {}",
            d.log()
        );
    }

    // The fourth: gone from every node, programs unloaded.
    let (ok, stdout, stderr) = nodes.kubectl_gadget_done("delete profileblockio");
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    for d in &mut nodes.daemons {
        assert!(d.instances().is_empty(), "{}", d.log());
    }
    wait_progs_gone(&progs_before);
}

#[test]
#[ignore = "needs root"]
fn timeout_and_json_output_end_the_run_and_clean_up() {
    assert!(is_root(), "needs root: run through `make test`");
    let nodes = Nodes::start(&["node-a", "node-b"]);
    let progs_before = prog_ids();
    // --timeout ends the run by itself; -o json prints one line of combined data per refresh.
    let (ok, stdout, stderr) =
        nodes.kubectl_gadget_done("run profile_blockio:v0.46.0 -o json --timeout 4s");
    assert!(ok, "{stderr}");
    let lines: Vec<serde_json::Value> = json_lines(&stdout);
    assert!(!lines.is_empty(), "{stdout}\n{stderr}");
    let last = lines.last().unwrap();
    let latency = last
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["datasource"] == "combined-blockio")
        .unwrap_or_else(|| panic!("{last}"));
    assert!(
        !latency["histograms"].as_array().unwrap().is_empty(),
        "{last}"
    );
    // The combined view says which nodes it holds.
    assert!(
        lines
            .iter()
            .any(|l| l[0]["nodes"] == serde_json::json!(["node-a", "node-b"])),
        "{stdout}"
    );
    for d in &nodes.daemons {
        assert!(d.instances().is_empty(), "{}", d.log());
    }
    wait_progs_gone(&progs_before);
}
