//! `kubectl gadget deploy` / `undeploy`: the manifests of deploy/kubernetes (built into the
//! binary, so the client deploys exactly what it was built with), applied with server-side apply
//! under the field manager [`FIELD_MANAGER`], plus the cluster API's token Secret, created with a
//! random token only if absent (applying it would replace the token the daemons already use).
//!
//! Invariants: the objects are the manifests' with only the namespace, the image and its pull
//! policy changed; [`objects`] is what `--print-only` shows and what [`Cluster::apply`] sends, so
//! the two cannot differ. Undeploy deletes exactly those objects by name, never by a label
//! selector that could match someone else's. Every wait is bounded and names what it waited for.

use std::time::Duration;

use serde_json::Value;

use crate::{API_TIMEOUT, Cluster, TOKEN_SECRET, TransportError};

/// The server-side apply field manager (IG's name: the two clients manage the same fields).
pub const FIELD_MANAGER: &str = "kubectl-gadget";

/// The label deploy puts on the namespace when it creates it: undeploy deletes only a namespace
/// that has it (a namespace that was there before deploy is left, as IG leaves it, unless
/// `--delete-namespace`).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Marks a Namespace object as created by deploy ([`MANAGED_BY`]).
pub fn mark_created(namespace: &mut Value) {
    if let Some(meta) = namespace.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(l) = labels.as_object_mut() {
            l.insert(MANAGED_BY.into(), Value::from(FIELD_MANAGER));
        }
    }
}

/// Whether deploy created this Namespace (it carries [`MANAGED_BY`]).
pub fn created_by_deploy(namespace: &Value) -> bool {
    namespace["metadata"]["labels"][MANAGED_BY] == FIELD_MANAGER
}

/// The manifests, in deploy/kubernetes/kustomization.yaml's order (a unit test keeps the two in
/// step): the namespace first, the DaemonSet last.
const MANIFESTS: [(&str, &str); 4] = [
    (
        "namespace.yaml",
        include_str!("../../../deploy/kubernetes/namespace.yaml"),
    ),
    (
        "serviceaccount.yaml",
        include_str!("../../../deploy/kubernetes/serviceaccount.yaml"),
    ),
    (
        "rbac.yaml",
        include_str!("../../../deploy/kubernetes/rbac.yaml"),
    ),
    (
        "daemonset.yaml",
        include_str!("../../../deploy/kubernetes/daemonset.yaml"),
    ),
];

/// Kubernetes' own namespaces: deploy labels its namespace for privileged pods and undeploy
/// deletes it, neither of which may happen to these.
const RESERVED_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// IG's `--image-pull-policy` values.
pub const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("deploy/kubernetes/{file} (built into this binary): {reason}")]
    Manifest { file: &'static str, reason: String },
    #[error(
        "namespace {0:?} is Kubernetes' own: deploy and undeploy label and delete their namespace, so pick another with -n"
    )]
    ReservedNamespace(String),
    #[error("--image-pull-policy {0:?}: use one of Always, IfNotPresent, Never")]
    PullPolicy(String),
    #[error("--image {0:?}: give an image reference (REGISTRY/NAME:TAG or @sha256:…)")]
    Image(String),
    #[error(
        "{verb} {kind} {name}: {message} (deploy and undeploy manage a namespace, RBAC and a DaemonSet: run them as a cluster administrator)"
    )]
    Forbidden {
        verb: &'static str,
        kind: String,
        name: String,
        message: String,
    },
    #[error("{verb} {kind} {name}: {reason}")]
    Api {
        verb: &'static str,
        kind: String,
        name: String,
        reason: TransportError,
    },
    #[error("reading random bytes for the token: {0}")]
    Random(std::io::Error),
    #[error(
        "the DaemonSet {namespace}/gadget is not ready after {secs} s: {status}{pods} (see `kubectl -n {namespace} describe daemonset gadget`)"
    )]
    NotReady {
        namespace: String,
        secs: u64,
        status: Rollout,
        pods: String,
    },
    #[error("after {secs} s these still exist: {left} (deletion is under way; check again later)")]
    StillThere { secs: u64, left: String },
}

/// What deploy changes in the manifests.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub namespace: String,
    /// The DaemonSet's image; the manifest's when None.
    pub image: Option<String>,
    /// The DaemonSet's imagePullPolicy; the manifest's when None.
    pub pull_policy: Option<String>,
}

/// The objects deploy applies, in order: the manifests' with the options applied.
pub fn objects(opts: &DeployOptions) -> Result<Vec<Value>, DeployError> {
    if RESERVED_NAMESPACES.contains(&opts.namespace.as_str()) {
        return Err(DeployError::ReservedNamespace(opts.namespace.clone()));
    }
    if let Some(p) = opts
        .pull_policy
        .as_deref()
        .filter(|p| !PULL_POLICIES.contains(p))
    {
        return Err(DeployError::PullPolicy(p.to_string()));
    }
    if let Some(i) = opts.image.as_deref().filter(|i| !plausible_image(i)) {
        return Err(DeployError::Image(i.to_string()));
    }
    let limits = gadget_model::budgets::Budgets::current().yaml;
    let mut out = Vec::new();
    for (file, text) in MANIFESTS {
        let bad = |reason: String| DeployError::Manifest { file, reason };
        let docs: Vec<Option<Value>> =
            gadget_model::yaml::from_str_multiple(text, &limits).map_err(|e| bad(e.to_string()))?;
        for mut obj in docs.into_iter().flatten() {
            let kind = kind_of(&obj).map_err(|e| bad(e.to_string()))?;
            let meta = obj
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| bad("an object without metadata".into()))?;
            if kind.namespaced {
                meta.insert("namespace".into(), Value::from(opts.namespace.clone()));
            } else if kind.kind == "Namespace" {
                meta.insert("name".into(), Value::from(opts.namespace.clone()));
            }
            if kind.kind == "DaemonSet" {
                let containers = obj
                    .pointer_mut("/spec/template/spec/containers")
                    .and_then(Value::as_array_mut)
                    .ok_or_else(|| bad("the DaemonSet has no containers".into()))?;
                for c in containers.iter_mut().filter(|c| c["name"] == "gadget") {
                    if let Some(i) = &opts.image {
                        c["image"] = Value::from(i.clone());
                    }
                    if let Some(p) = &opts.pull_policy {
                        c["imagePullPolicy"] = Value::from(p.clone());
                    }
                }
            }
            out.push(obj);
        }
    }
    Ok(out)
}

/// An image reference as a kubelet would take it: no spaces or control characters, a name.
fn plausible_image(image: &str) -> bool {
    !image.is_empty()
        && image.len() <= 4096
        && !image.starts_with(['-', ':', '@', '/'])
        && image.chars().all(|c| c.is_ascii_graphic())
}

/// The cluster API's token Secret with a new random token (32 bytes, base64).
pub fn token_secret(namespace: &str) -> Result<Value, DeployError> {
    use base64::Engine as _;
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(DeployError::Random)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    // The daemon reads the token file as text: the token is the base64 text of the bytes.
    let token = b64.encode(bytes);
    Ok(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": TOKEN_SECRET,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "gadget", "app.kubernetes.io/part-of": "gadget"}
        },
        "type": "Opaque",
        "data": {"token": b64.encode(token)}
    }))
}

/// Where an object lives in the API: the kinds deploy/kubernetes holds (and the Secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub kind: String,
    pub name: String,
    pub namespaced: bool,
    /// The collection's path, e.g. /apis/apps/v1/namespaces/gadget/daemonsets.
    pub collection: String,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KindError(String);

/// The API path of `obj`'s collection, from its apiVersion and kind.
pub fn kind_of(obj: &Value) -> Result<Kind, KindError> {
    let api = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        return Err(KindError(format!("{kind} without metadata.name")));
    }
    let (plural, namespaced) = match (api, kind) {
        ("v1", "Namespace") => ("namespaces", false),
        ("v1", "ServiceAccount") => ("serviceaccounts", true),
        ("v1", "Secret") => ("secrets", true),
        ("rbac.authorization.k8s.io/v1", "Role") => ("roles", true),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => ("rolebindings", true),
        ("apps/v1", "DaemonSet") => ("daemonsets", true),
        _ => {
            return Err(KindError(format!(
                "{api} {kind} is not a kind `kubectl gadget deploy` knows (add it to deploy.rs's kind_of)"
            )));
        }
    };
    let base = if api == "v1" {
        "/api/v1".to_string()
    } else {
        format!("/apis/{api}")
    };
    let collection = if namespaced {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
        format!("{base}/namespaces/{ns}/{plural}")
    } else {
        format!("{base}/{plural}")
    };
    Ok(Kind {
        kind: kind.to_string(),
        name: name.to_string(),
        namespaced,
        collection,
    })
}

/// A DaemonSet's rollout, from its status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollout {
    pub desired: i64,
    pub ready: i64,
    pub updated: i64,
    /// The controller has seen the latest spec (status.observedGeneration ≥ metadata.generation).
    pub observed: bool,
}

impl Rollout {
    pub fn from_daemonset(ds: &Value) -> Rollout {
        let n = |k: &str| ds["status"][k].as_i64().unwrap_or(0);
        let generation = ds["metadata"]["generation"].as_i64().unwrap_or(0);
        Rollout {
            desired: n("desiredNumberScheduled"),
            ready: n("numberReady"),
            updated: n("updatedNumberScheduled"),
            observed: ds["status"]["observedGeneration"]
                .as_i64()
                .is_some_and(|g| g >= generation),
        }
    }

    /// Every node the DaemonSet should run on has an up-to-date, ready pod (IG's test, plus
    /// that the controller has seen the applied spec: a status from before it proves nothing).
    pub fn done(&self) -> bool {
        self.observed && self.ready == self.desired && self.updated == self.desired
    }
}

impl std::fmt::Display for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} gadget pod(s) ready, {} up to date",
            self.ready.min(self.updated),
            self.desired,
            self.updated
        )?;
        if !self.observed {
            write!(f, " (the controller has not yet seen the new spec)")?;
        }
        Ok(())
    }
}

/// What deleting one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// There was nothing to delete.
    Absent,
}

/// How often a wait asks again.
const POLL: Duration = Duration::from_secs(1);

impl Cluster {
    /// The namespace this client works in (`-n`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn api_err(verb: &'static str, kind: &Kind, reason: TransportError) -> DeployError {
        if let TransportError::Status { code: 403, message } = reason {
            return DeployError::Forbidden {
                verb,
                kind: kind.kind.clone(),
                name: kind.name.clone(),
                message,
            };
        }
        DeployError::Api {
            verb,
            kind: kind.kind.clone(),
            name: kind.name.clone(),
            reason,
        }
    }

    /// Server-side apply of one object (field manager [`FIELD_MANAGER`]); the object as the
    /// API server has it afterwards.
    pub async fn apply(&self, obj: &Value) -> Result<Value, DeployError> {
        let kind = kind_of(obj).map_err(|e| DeployError::Manifest {
            file: "(object)",
            reason: e.to_string(),
        })?;
        let params = kube::api::PatchParams::apply(FIELD_MANAGER);
        let req = kube::core::Request::new(&kind.collection).patch(
            &kind.name,
            &params,
            &kube::api::Patch::Apply(obj),
        );
        let body = self
            .send(req, API_TIMEOUT)
            .await
            .map_err(|e| Self::api_err("applying", &kind, e))?;
        serde_json::from_slice(&body).map_err(|e| {
            Self::api_err(
                "applying",
                &kind,
                TransportError::Unparsable {
                    reason: e.to_string(),
                    text: crate::excerpt(&body),
                },
            )
        })
    }

    /// The object of `kind`'s name, or None if there is none.
    pub async fn get_object(&self, kind: &Kind) -> Result<Option<Value>, DeployError> {
        let req = kube::core::Request::new(&kind.collection)
            .get(&kind.name, &kube::api::GetParams::default());
        match self.get_json::<Value>(req).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(Self::api_err("reading", kind, e)),
        }
    }

    /// Creates `obj` unless an object of its name exists: true when it was created.
    pub async fn create_if_absent(&self, obj: &Value) -> Result<bool, DeployError> {
        let kind = kind_of(obj).map_err(|e| DeployError::Manifest {
            file: "(object)",
            reason: e.to_string(),
        })?;
        if self.get_object(&kind).await?.is_some() {
            return Ok(false);
        }
        let body = serde_json::to_vec(obj)
            .map_err(|e| Self::api_err("creating", &kind, TransportError::Encode(e.to_string())))?;
        let req = kube::core::Request::new(&kind.collection)
            .create(&kube::api::PostParams::default(), body);
        match self.send(req, API_TIMEOUT).await {
            Ok(_) => Ok(true),
            // Created meanwhile by someone else: theirs is kept, as when it was there before.
            Err(TransportError::Status { code: 409, .. }) => Ok(false),
            Err(e) => Err(Self::api_err("creating", &kind, e)),
        }
    }

    /// Deletes one object by name (foreground propagation: its pods go with a DaemonSet).
    pub async fn delete_object(&self, kind: &Kind) -> Result<Deleted, DeployError> {
        let params = kube::api::DeleteParams::foreground();
        let req = kube::core::Request::new(&kind.collection).delete(&kind.name, &params);
        match self.send(req, API_TIMEOUT).await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if not_found(&e) => Ok(Deleted::Absent),
            Err(e) => Err(Self::api_err("deleting", kind, e)),
        }
    }

    /// Waits until the DaemonSet `ds` has a ready, up-to-date pod on every node it should
    /// run on, at most `timeout`; `progress` sees each new rollout state. The error names the
    /// rollout and every daemon pod that is not ready, with its node and why.
    pub async fn wait_ready(
        &self,
        ds: &Kind,
        timeout: Duration,
        mut progress: impl FnMut(&Rollout),
    ) -> Result<Rollout, DeployError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last: Option<Rollout> = None;
        loop {
            let now = match self.get_object(ds).await? {
                Some(obj) => Rollout::from_daemonset(&obj),
                None => Rollout::default(),
            };
            if last.as_ref() != Some(&now) {
                progress(&now);
            }
            if now.done() {
                return Ok(now);
            }
            last = Some(now);
            if tokio::time::Instant::now() + POLL > deadline {
                let status = last.unwrap_or_default();
                return Err(DeployError::NotReady {
                    namespace: self.namespace.clone(),
                    secs: timeout.as_secs(),
                    pods: self.unready_pods().await,
                    status,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// "; not ready: pod P on node N (why), …" for the daemon pods that are not ready, or
    /// what kept them from being listed.
    async fn unready_pods(&self) -> String {
        let req = kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", self.namespace))
            .list(&kube::api::ListParams::default().labels(crate::DAEMON_SELECTOR));
        let list: Value = match self.get_json(req).await {
            Ok(l) => l,
            Err(e) => return format!("; listing its pods: {e}"),
        };
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return "; it has no pods yet".into();
        }
        let not_ready: Vec<String> = items
            .iter()
            .filter_map(|p| {
                let conditions = p["status"]["conditions"].as_array();
                let ready = conditions
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if ready {
                    return None;
                }
                let why = p["status"]["containerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find_map(|c| c["state"]["waiting"]["reason"].as_str())
                    .or_else(|| p["status"]["phase"].as_str())
                    .unwrap_or("unknown");
                Some(format!(
                    "pod {} on node {} ({why})",
                    p["metadata"]["name"].as_str().unwrap_or("?"),
                    p["spec"]["nodeName"].as_str().unwrap_or("(unscheduled)")
                ))
            })
            .collect();
        if not_ready.is_empty() {
            String::new()
        } else {
            format!("; not ready: {}", not_ready.join(", "))
        }
    }

    /// Waits until none of `kinds` exists, at most `timeout`; the error names those left.
    pub async fn wait_gone(&self, kinds: &[Kind], timeout: Duration) -> Result<(), DeployError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut left = Vec::new();
            for k in kinds {
                if self.get_object(k).await?.is_some() {
                    left.push(k.to_string());
                }
            }
            if left.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() + POLL > deadline {
                return Err(DeployError::StillThere {
                    secs: timeout.as_secs(),
                    left: left.join(", "),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn not_found(e: &TransportError) -> bool {
    matches!(e, TransportError::Status { code: 404, .. })
}

/// `objects` as a YAML stream (`---` between objects), as `kubectl apply -f -` takes it.
pub fn to_yaml_stream(objects: &[Value]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        yaml_value(o, 0, &mut out);
    }
    out
}

/// Block-style YAML of a JSON value at `indent` (maps' keys, sequences' dashes at it).
fn yaml_value(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (i, (k, val)) in m.iter().enumerate() {
                // The first key of a sequence item follows its "- ".
                if i > 0 || !out.ends_with("- ") {
                    out.push_str(&" ".repeat(indent));
                }
                out.push_str(&yaml_scalar_str(k));
                out.push(':');
                yaml_after_key(val, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                match item {
                    Value::Object(m) if !m.is_empty() => yaml_value(item, indent + 2, out),
                    Value::Array(a) if !a.is_empty() => {
                        out.push('\n');
                        yaml_value(item, indent + 2, out);
                    }
                    scalar => {
                        out.push_str(&yaml_scalar(scalar));
                        out.push('\n');
                    }
                }
            }
        }
        scalar => {
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
}

fn yaml_after_key(val: &Value, indent: usize, out: &mut String) {
    match val {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml_value(val, indent + 2, out);
        }
        // A sequence under a key sits at the key's indent, as kubectl prints it.
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            yaml_value(val, indent, out);
        }
        scalar => {
            out.push(' ');
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => yaml_scalar_str(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

/// A string plain when no YAML reader could take it for anything else, else double-quoted
/// (JSON's escapes are YAML's).
fn yaml_scalar_str(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        Value::from(s).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(ns: &str) -> DeployOptions {
        DeployOptions {
            namespace: ns.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_manifests_are_the_kustomizations() {
        let k = include_str!("../../../deploy/kubernetes/kustomization.yaml");
        let k: Value =
            gadget_model::yaml::from_str(k, &gadget_model::yaml::YamlLimits::default()).unwrap();
        let listed: Vec<&str> = k["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let built: Vec<&str> = MANIFESTS.iter().map(|(f, _)| *f).collect();
        assert_eq!(listed, built);
    }

    #[test]
    fn objects_take_the_namespace_image_and_pull_policy() {
        let o = objects(&DeployOptions {
            namespace: "ig".into(),
            image: Some("registry.example/gadget:v1".into()),
            pull_policy: Some("IfNotPresent".into()),
        })
        .unwrap();
        let kinds: Vec<String> = o.iter().map(|v| kind_of(v).unwrap().to_string()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace/ig",
                "ServiceAccount/gadget",
                "Role/gadget-cluster-client",
                "DaemonSet/gadget"
            ]
        );
        for v in &o[1..] {
            assert_eq!(v["metadata"]["namespace"], "ig", "{v}");
        }
        let ds = &o[3];
        let c = &ds["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "registry.example/gadget:v1");
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        // The Secret's mode is 0400 whichever YAML version reads the manifest.
        let vols = ds["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap();
        let secret = vols.iter().find(|v| v.get("secret").is_some()).unwrap();
        assert_eq!(secret["secret"]["defaultMode"], 0o400);
        assert_eq!(
            kind_of(ds).unwrap().collection,
            "/apis/apps/v1/namespaces/ig/daemonsets"
        );
        // Without options: the manifests' own image.
        let plain = objects(&opts("gadget")).unwrap();
        assert_eq!(
            plain[3]["spec"]["template"]["spec"]["containers"][0]["image"],
            "ghcr.io/gadget-host/gadget:latest"
        );
    }

    #[test]
    fn bad_options_are_named() {
        assert!(matches!(
            objects(&opts("kube-system")),
            Err(DeployError::ReservedNamespace(_))
        ));
        let e = objects(&DeployOptions {
            pull_policy: Some("Sometimes".into()),
            ..opts("gadget")
        })
        .unwrap_err();
        assert!(e.to_string().contains("Sometimes"), "{e}");
        let e = objects(&DeployOptions {
            image: Some("a b".into()),
            ..opts("gadget")
        })
        .unwrap_err();
        assert!(e.to_string().contains("--image"), "{e}");
    }

    #[test]
    fn the_yaml_stream_reads_back_as_the_objects() {
        let mut o = objects(&opts("gadget")).unwrap();
        o.push(token_secret("gadget").unwrap());
        let text = to_yaml_stream(&o);
        let back: Vec<Option<Value>> = gadget_model::yaml::from_str_multiple(
            &text,
            &gadget_model::yaml::YamlLimits::default(),
        )
        .unwrap();
        let back: Vec<Value> = back.into_iter().flatten().collect();
        assert_eq!(back, o, "{text}");
        // Strings a YAML 1.1 reader would take for numbers or booleans stay strings.
        assert!(text.contains("prometheus.io/port: \"2224\""), "{text}");
        assert!(text.contains("prometheus.io/scrape: \"true\""), "{text}");
    }

    #[test]
    fn each_token_is_new() {
        let a = token_secret("gadget").unwrap();
        let b = token_secret("gadget").unwrap();
        assert_ne!(a["data"]["token"], b["data"]["token"]);
        assert_eq!(
            kind_of(&a).unwrap().collection,
            "/api/v1/namespaces/gadget/secrets"
        );
    }
}
