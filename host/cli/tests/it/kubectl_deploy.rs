//! `kubectl gadget deploy` / `undeploy` through the plugin's name. No Kubernetes API server can
//! run here: the API side is a stand-in of the test's own that keeps the objects it is sent
//! (server-side apply PATCH, create, get, delete by path), plays the DaemonSet controller's
//! status from a script, and records every request, so the tests assert on what the client
//! really sent. It checks what a real API server would refuse (an apply without a field
//! manager or with the wrong content type, a name that is not the path's); it does not
//! merge fields the way server-side apply does (each apply replaces the object).

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::cluster::{ApiRequest, kubeconfig, read_request};

/// One request the stand-in got.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    /// Path and query.
    target: String,
    content_type: String,
    body: String,
}

impl Recorded {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// The DaemonSet controller's part: the status to show on the n-th read of the DaemonSet.
type Rollout = Box<dyn Fn(usize) -> Value + Send + Sync>;

struct Script {
    rollout: Rollout,
    /// The daemon pods' list.
    pods: Value,
    /// How many reads a deleted Namespace stays visible (Terminating), as a namespace's
    /// deletion takes a while.
    linger: usize,
    /// "METHOD path" answered 403.
    forbidden: Vec<String>,
    /// Objects there from the start: (path, object).
    initial: Vec<(String, Value)>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    /// Deleted namespaces still visible: path -> (object, reads left).
    terminating: BTreeMap<String, (Value, usize)>,
    daemonset_reads: usize,
}

struct ObjectApi {
    port: u16,
    seen: Arc<Mutex<Vec<Recorded>>>,
    state: Arc<Mutex<State>>,
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

impl ObjectApi {
    fn start(script: Script) -> ObjectApi {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let state: Arc<Mutex<State>> = Arc::default();
        state
            .lock()
            .unwrap()
            .objects
            .extend(script.initial.iter().cloned());
        let script = Arc::new(script);
        let (s, st) = (seen.clone(), state.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (seen, state, script) = (s.clone(), st.clone(), script.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    while let Some(ApiRequest {
                        method,
                        target,
                        content_type,
                        body,
                        ..
                    }) = read_request(&mut reader)
                    {
                        let r = Recorded {
                            method,
                            target,
                            content_type,
                            body,
                        };
                        seen.lock().unwrap().push(r.clone());
                        let (code, reply) = answer(&r, &script, &mut state.lock().unwrap());
                        let reply = reply.to_string();
                        if write!(
                            conn,
                            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
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
        ObjectApi { port, seen, state }
    }

    fn seen(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    fn object(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    fn paths(&self) -> Vec<String> {
        self.state.lock().unwrap().objects.keys().cloned().collect()
    }
}

/// The stand-in's answer to one request.
fn answer(r: &Recorded, script: &Script, state: &mut State) -> (u16, Value) {
    let path = r.path().to_string();
    if script.forbidden.contains(&format!("{} {path}", r.method)) {
        let what = path.rsplit('/').nth(1).unwrap_or("");
        return status(
            403,
            "Forbidden",
            &format!(
                "User \"alice\" cannot {} resource \"{what}\"",
                r.method.to_lowercase()
            ),
        );
    }
    match r.method.as_str() {
        "PATCH" => {
            if !r.target.contains("fieldManager=kubectl-gadget") {
                return status(400, "BadRequest", "PATCH requires fieldManager for apply");
            }
            if r.content_type != "application/apply-patch+yaml" {
                return status(415, "UnsupportedMediaType", &r.content_type);
            }
            let Ok(mut obj) = serde_json::from_str::<Value>(&r.body) else {
                return status(400, "BadRequest", "not an object");
            };
            let name = obj["metadata"]["name"].as_str().unwrap_or("");
            if !path.ends_with(&format!("/{name}")) {
                return status(400, "BadRequest", "the name does not match the path");
            }
            if let Some(ns) = obj["metadata"]["namespace"].as_str()
                && !path.contains(&format!("/namespaces/{ns}/"))
            {
                return status(400, "BadRequest", "the namespace does not match the path");
            }
            let old = state.objects.get(&path);
            let generation = match old {
                Some(o) if o["spec"] == obj["spec"] => o["metadata"]["generation"].clone(),
                Some(o) => json!(o["metadata"]["generation"].as_i64().unwrap_or(0) + 1),
                None => json!(1),
            };
            obj["metadata"]["generation"] = generation;
            state.objects.insert(path, obj.clone());
            (200, obj)
        }
        "POST" => {
            let Ok(obj) = serde_json::from_str::<Value>(&r.body) else {
                return status(400, "BadRequest", "not an object");
            };
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            let at = format!("{path}/{name}");
            if state.objects.contains_key(&at) {
                return status(409, "AlreadyExists", &format!("{name} already exists"));
            }
            state.objects.insert(at, obj.clone());
            (201, obj)
        }
        "DELETE" => match state.objects.remove(&path) {
            Some(obj) => {
                if obj["kind"] == "Namespace" && script.linger > 0 {
                    state
                        .terminating
                        .insert(path.clone(), (obj.clone(), script.linger));
                }
                (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                )
            }
            None => status(404, "NotFound", &format!("{path} not found")),
        },
        "GET" if path.ends_with("/pods") => (200, script.pods.clone()),
        "GET" => {
            if let Some((obj, left)) = state.terminating.get_mut(&path) {
                let mut obj = obj.clone();
                obj["status"] = json!({"phase": "Terminating"});
                *left = left.saturating_sub(1);
                if *left == 0 {
                    state.terminating.remove(&path);
                }
                return (200, obj);
            }
            match state.objects.get(&path) {
                Some(obj) if obj["kind"] == "DaemonSet" => {
                    let mut obj = obj.clone();
                    obj["status"] = (script.rollout)(state.daemonset_reads);
                    state.daemonset_reads += 1;
                    (200, obj)
                }
                Some(obj) => (200, obj.clone()),
                None => status(404, "NotFound", &format!("{path} not found")),
            }
        }
        _ => status(405, "MethodNotAllowed", &r.method),
    }
}

/// A DaemonSet status on two nodes.
fn ds_status(observed: i64, ready: i64, updated: i64) -> Value {
    json!({"observedGeneration": observed, "desiredNumberScheduled": 2,
           "numberReady": ready, "updatedNumberScheduled": updated})
}

fn script(rollout: Rollout) -> Script {
    Script {
        rollout,
        pods: json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}),
        linger: 0,
        forbidden: Vec::new(),
        initial: Vec::new(),
    }
}

/// The plugin as typed, with only the kubeconfig the test gives.
fn kubectl_gadget(dir: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(crate::kubectl::plugin(dir));
    cmd.env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", dir)
        .args(args);
    if let Some(kc) = kubeconfig {
        cmd.env("KUBECONFIG", kc);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const NS: &str = "/api/v1/namespaces/ig";
const SA: &str = "/api/v1/namespaces/ig/serviceaccounts/gadget";
const ROLE: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/ig/roles/gadget-cluster-client";
const SECRET: &str = "/api/v1/namespaces/ig/secrets/gadget-api-token";
const DS: &str = "/apis/apps/v1/namespaces/ig/daemonsets/gadget";

/// The token the stored Secret holds (the daemon reads the decoded data as text).
fn stored_token(api: &ObjectApi) -> String {
    use base64::Engine as _;
    let secret = api.object(SECRET).expect("the Secret was created");
    let b64 = secret["data"]["token"].as_str().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn deploy_applies_the_manifests_server_side_and_waits_for_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    // The controller: first a status from before the applied spec, then one pod of two ready,
    // then both.
    let api = ObjectApi::start(script(Box::new(|n| match n {
        0 => ds_status(0, 0, 0),
        1 => ds_status(1, 1, 2),
        _ => ds_status(1, 2, 2),
    })));
    let kc = kubeconfig(tmp.path(), api.port);
    let out = kubectl_gadget(
        tmp.path(),
        Some(&kc),
        &[
            "deploy",
            "-n",
            "ig",
            "--image",
            "registry.example/gadget:v9",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Each state of the rollout once, then done.
    for line in [
        "0/2 gadget pod(s) ready, 0 up to date (the controller has not yet seen the new spec)",
        "1/2 gadget pod(s) ready, 2 up to date",
        "2/2 gadget pod(s) ready, 2 up to date",
        "gadget deployed: a ready daemon on every node",
    ] {
        assert_eq!(
            stdout.lines().filter(|l| *l == line).count(),
            1,
            "{line}:\n{stdout}"
        );
    }

    // What was sent, in order: server-side apply (the field manager named, the apply content
    // type) of the namespace, ServiceAccount and Role, the Secret created, then the DaemonSet.
    let writes: Vec<(String, String)> = api
        .seen()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| (r.method.clone(), r.path().to_string()))
        .collect();
    let expect = [
        ("PATCH", NS),
        ("PATCH", SA),
        ("PATCH", ROLE),
        ("POST", "/api/v1/namespaces/ig/secrets"),
        ("PATCH", DS),
    ];
    assert_eq!(
        writes,
        expect.map(|(m, p)| (m.to_string(), p.to_string())),
        "{stdout}"
    );
    for r in api.seen().iter().filter(|r| r.method == "PATCH") {
        assert!(r.target.contains("fieldManager=kubectl-gadget"), "{r:?}");
        assert_eq!(r.content_type, "application/apply-patch+yaml");
    }
    // The objects as the API server got them: the namespace, the image, the pull policy.
    let ns = api.object(NS).unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    // Created by deploy, and marked so: undeploy deletes it.
    assert_eq!(
        ns["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "kubectl-gadget"
    );
    let ds = api.object(DS).unwrap();
    assert_eq!(ds["metadata"]["namespace"], "ig");
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/gadget:v9");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        ds["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "api-token")
            .unwrap()["secret"],
        json!({"secretName": "gadget-api-token", "defaultMode": 0o400})
    );
    let token = stored_token(&api);
    assert_eq!(token.len(), 44, "32 random bytes as base64 text: {token}");

    // Deploying again keeps the token the daemons already use: the Secret is not sent.
    let before = api.seen().len();
    let out = kubectl_gadget(
        tmp.path(),
        Some(&kc),
        &["deploy", "-n", "ig", "--wait=false"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("Secret/gadget-api-token kept") && stdout.contains("being deployed"),
        "{stdout}"
    );
    assert!(
        !api.seen()[before..]
            .iter()
            .any(|r| r.path().contains("/secrets") && r.method != "GET"),
        "{:?}",
        &api.seen()[before..]
    );
    assert_eq!(stored_token(&api), token);
    // --wait=false: the DaemonSet is not read.
    assert!(
        !api.seen()[before..]
            .iter()
            .any(|r| r.method == "GET" && r.path() == DS)
    );
}

#[test]
fn print_only_prints_what_deploy_applies_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "deploy",
        "-n",
        "ig",
        "--image",
        "registry.example/gadget:v9",
        "--image-pull-policy",
        "IfNotPresent",
    ];
    // What deploy sends, on one stand-in.
    let api = ObjectApi::start(script(Box::new(|_| ds_status(1, 2, 2))));
    let kc = kubeconfig(tmp.path(), api.port);
    let out = kubectl_gadget(tmp.path(), Some(&kc), &args);
    assert!(out.status.success(), "{}", text(&out).1);
    let applied: Vec<Value> = api
        .seen()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(applied.len(), 4);

    // --print-only with the same flags, the kubeconfig pointing at another stand-in.
    let quiet = ObjectApi::start(script(Box::new(|_| ds_status(1, 2, 2))));
    let kc = kubeconfig(tmp.path(), quiet.port);
    let out = kubectl_gadget(
        tmp.path(),
        Some(&kc),
        &[&args[..], &["--print-only"]].concat(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(quiet.seen().is_empty(), "{:?}", quiet.seen());
    let printed: Vec<Value> = gadget_model::yaml::from_str_multiple::<Value>(
        &stdout,
        &gadget_model::yaml::YamlLimits::default(),
    )
    .unwrap()
    .into_iter()
    .flatten()
    .collect();
    let (secrets, others): (Vec<Value>, Vec<Value>) =
        printed.into_iter().partition(|o| o["kind"] == "Secret");
    assert_eq!(others, applied, "{stdout}");
    assert_eq!(secrets.len(), 1, "{stdout}");
    assert_eq!(secrets[0]["metadata"]["name"], "gadget-api-token");
    assert_eq!(secrets[0]["metadata"]["namespace"], "ig");
    assert!(
        secrets[0]["data"]["token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    // It needs no cluster at all: no kubeconfig anywhere.
    let out = kubectl_gadget(tmp.path(), None, &["deploy", "--print-only"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(text(&out).0.contains("kind: DaemonSet"));
}

#[test]
fn wait_names_the_nodes_whose_pod_is_not_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = script(Box::new(|_| ds_status(1, 1, 2)));
    s.pods = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
        {"metadata": {"name": "gadget-aaaaa"}, "spec": {"nodeName": "node-a"},
         "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "gadget-bbbbb"}, "spec": {"nodeName": "node-b"},
         "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [{"name": "gadget",
                        "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}
    ]});
    let api = ObjectApi::start(s);
    let kc = kubeconfig(tmp.path(), api.port);
    let out = kubectl_gadget(
        tmp.path(),
        Some(&kc),
        &["deploy", "-n", "ig", "--timeout", "2s"],
    );
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("the DaemonSet ig/gadget is not ready after 2 s")
            && stderr.contains("1/2 gadget pod(s) ready")
            && stderr.contains("pod gadget-bbbbb on node node-b (ImagePullBackOff)")
            && !stderr.contains("gadget-aaaaa"),
        "{stderr}"
    );
}

#[test]
fn undeploy_removes_what_deploy_created_and_waits_until_it_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = script(Box::new(|_| ds_status(1, 2, 2)));
    s.linger = 3;
    let api = ObjectApi::start(s);
    let kc = kubeconfig(tmp.path(), api.port);
    let out = kubectl_gadget(tmp.path(), Some(&kc), &["deploy", "-n", "ig"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(api.paths().len(), 5, "{:?}", api.paths());

    let before = api.seen().len();
    let out = kubectl_gadget(tmp.path(), Some(&kc), &["undeploy", "-n", "ig"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let seen = api.seen();
    let deletes: Vec<&str> = seen[before..]
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path())
        .collect();
    // The DaemonSet (its pods) first, the namespace last.
    assert_eq!(deletes, [DS, SA, ROLE, SECRET, NS]);
    let ds_delete = seen[before..].iter().find(|r| r.path() == DS).unwrap();
    assert!(ds_delete.body.contains("Foreground"), "{ds_delete:?}");
    assert!(api.paths().is_empty(), "{:?}", api.paths());
    // --wait read the namespace until it was gone (it lingers for three reads).
    let ns_reads = seen[before..]
        .iter()
        .filter(|r| r.method == "GET" && r.path() == NS)
        .count();
    assert!(ns_reads >= 4, "{ns_reads} reads of {NS}");
    assert!(stdout.contains("Namespace/ig deleted") && stdout.contains("gadget undeployed"));

    // Again: nothing is left, which is not a failure.
    let out = kubectl_gadget(tmp.path(), Some(&kc), &["undeploy", "-n", "ig"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.matches("not found (nothing to delete)").count(),
        5,
        "{stdout}"
    );

    // A namespace that does not go away in time is named.
    let mut s = script(Box::new(|_| ds_status(1, 2, 2)));
    s.linger = usize::MAX;
    let api = ObjectApi::start(s);
    let kc = kubeconfig(tmp.path(), api.port);
    assert!(
        kubectl_gadget(tmp.path(), Some(&kc), &["deploy", "-n", "ig"])
            .status
            .success()
    );
    let out = kubectl_gadget(
        tmp.path(),
        Some(&kc),
        &["undeploy", "-n", "ig", "--timeout", "2s"],
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("after 2 s these still exist: Namespace/ig"),
        "{stderr}"
    );
}

#[test]
fn refusals_and_reserved_namespaces_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = script(Box::new(|_| ds_status(1, 2, 2)));
    s.forbidden = vec![format!("PATCH {DS}")];
    let api = ObjectApi::start(s);
    let kc = kubeconfig(tmp.path(), api.port);
    let out = kubectl_gadget(tmp.path(), Some(&kc), &["deploy", "-n", "ig"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("applying DaemonSet gadget: 403 Forbidden")
            && stderr.contains("cannot patch resource \"daemonsets\"")
            && stderr.contains("cluster administrator"),
        "{stderr}"
    );

    // Kubernetes' own namespaces are never labelled or deleted: refused before any request.
    for verb in ["deploy", "undeploy"] {
        let out = kubectl_gadget(tmp.path(), Some(&kc), &[verb, "-n", "kube-system"]);
        let (_, stderr) = text(&out);
        assert!(
            !out.status.success() && stderr.contains("\"kube-system\" is Kubernetes' own"),
            "{stderr}"
        );
    }
    assert!(!api.seen().iter().any(|r| r.target.contains("kube-system")));
}

#[test]
fn a_namespace_that_was_there_before_deploy_is_kept_by_undeploy() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = script(Box::new(|_| ds_status(1, 2, 2)));
    s.initial = vec![(
        NS.to_string(),
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "ig", "labels": {"team": "storage"}}}),
    )];
    let api = ObjectApi::start(s);
    let kc = kubeconfig(tmp.path(), api.port);
    let out = kubectl_gadget(tmp.path(), Some(&kc), &["deploy", "-n", "ig"]);
    assert!(out.status.success(), "{}", text(&out).1);
    // Applied (the Pod Security labels) but not marked as deploy's.
    let ns = api.object(NS).unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    assert!(
        ns["metadata"]["labels"]
            .get("app.kubernetes.io/managed-by")
            .is_none(),
        "{ns}"
    );

    let out = kubectl_gadget(tmp.path(), Some(&kc), &["undeploy", "-n", "ig"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Namespace/ig kept"), "{stdout}");
    assert!(
        !api.seen()
            .iter()
            .any(|r| r.method == "DELETE" && r.path() == NS)
    );
    assert_eq!(api.paths(), [NS], "everything else is gone");

    // --delete-namespace: deleted all the same (IG's flag).
    let out = kubectl_gadget(
        tmp.path(),
        Some(&kc),
        &["undeploy", "-n", "ig", "--delete-namespace"],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(api.paths().is_empty(), "{:?}", api.paths());
}
