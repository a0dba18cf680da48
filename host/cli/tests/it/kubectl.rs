//! `kubectl gadget …`: the `gadget` binary called by the plugin's name (a `kubectl-gadget`
//! symlink, as `make install` makes and kubectl finds on PATH) acts on the cluster, with
//! kubectl's kubeconfig flags. The API server is cluster.rs's stand-in (no Kubernetes API server
//! can run here): it serves the recorded pod list and Secret and says what the client sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cluster::{api_server, fixture, instances_reply, kubeconfig};
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
            (
                "gadget-7xk2p",
                instances_reply("aaaaaaaaaaaa1111aaaaaaaaaaaa1111", "p"),
            ),
            (
                "gadget-q9m4d",
                instances_reply("bbbbbbbbbbbb2222bbbbbbbbbbbb2222", "p"),
            ),
        ],
    ));
    // The kubeconfig in a file of its own, its context named explicitly: kubectl's flags.
    let kc = kubeconfig(tmp.path(), port);
    let out = kubectl_gadget(
        tmp.path(),
        &[
            "list",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--context",
            "test",
            "-n",
            "ig",
        ],
    );
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
    assert_eq!(seen.iter().filter(|s| s.0 == "POST").count(), 2);
    drop(seen);

    // A context the kubeconfig does not have is named.
    let out = kubectl_gadget(
        tmp.path(),
        &[
            "list",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--context",
            "prod",
        ],
    );
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
