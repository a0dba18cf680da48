//! The cluster CLI (`gadget --cluster …`): finds the daemon pods through the Kubernetes API
//! server (kubeconfig and context taken the usual way, or the in-cluster service account) and
//! talks to each node's daemon through the API server's pod proxy.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use kube::config::KubeConfigOptions;
use kube::{Api, Client, Config};

use crate::daemon::api::{InstanceInfo, Reply, Request, RunRequest};
use crate::daemon::cluster_api;

pub const DEFAULT_NAMESPACE: &str = "gadget";
/// The labels of deploy/kubernetes/daemonset.yaml's pods.
pub const DAEMON_SELECTOR: &str =
    "app.kubernetes.io/name=gadget,app.kubernetes.io/component=daemon";
/// `--api-listen-address` in the DaemonSet.
pub const API_PORT: u16 = 2225;
pub const TOKEN_SECRET: &str = "gadget-api-token";
/// Starting an instance waits for its programs to attach: seconds, not minutes.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no usable Kubernetes configuration: {0} (set KUBECONFIG, or pass --context)")]
    Config(String),
    #[error("listing the gadget daemon pods in namespace {namespace}: {reason}")]
    ListPods { namespace: String, reason: String },
    #[error("reading the Secret {namespace}/{TOKEN_SECRET}: {reason}")]
    Token { namespace: String, reason: String },
    #[error(
        "no running gadget daemon pod in namespace {namespace}{which} (deploy it: kubectl apply -k deploy)"
    )]
    NoDaemons { namespace: String, which: String },
    #[error("{failed} of {total} nodes failed (see above)")]
    SomeNodesFailed { failed: usize, total: usize },
}

/// A daemon pod and the node it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonPod {
    pub pod: String,
    pub node: String,
}

/// Turns API errors into what a user can act on: who refused what, and the RBAC to ask for.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let mut s = format!("{} {}: {}", status.code, status.reason, status.message);
            if status.code == 403 {
                s.push_str(
                    " (ask for the gadget-cluster-client Role in deploy/kubernetes/rbac.yaml)",
                );
            }
            s
        }
        other => {
            let mut s = crate::error_chain(other);
            if s.contains("Connection refused") || s.contains("connection refused") {
                s.push_str(" (is the API server in your kubeconfig reachable?)");
            }
            s
        }
    }
}

pub struct Cluster {
    client: Client,
    namespace: String,
}

impl Cluster {
    pub async fn connect(namespace: &str, context: Option<&str>) -> Result<Cluster, ClusterError> {
        let config = match context {
            Some(ctx) => Config::from_kubeconfig(&KubeConfigOptions {
                context: Some(ctx.to_string()),
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::Config(e.to_string()))?,
            None => Config::infer()
                .await
                .map_err(|e| ClusterError::Config(e.to_string()))?,
        };
        let client = Client::try_from(config).map_err(|e| ClusterError::Config(describe(&e)))?;
        Ok(Cluster {
            client,
            namespace: namespace.to_string(),
        })
    }

    /// Running daemon pods, limited to `nodes` when given. Pods not running are reported and skipped.
    pub async fn daemons(&self, nodes: &[String]) -> Result<Vec<DaemonPod>, ClusterError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let list = pods
            .list(&ListParams::default().labels(DAEMON_SELECTOR))
            .await
            .map_err(|e| ClusterError::ListPods {
                namespace: self.namespace.clone(),
                reason: describe(&e),
            })?;
        let mut out = Vec::new();
        for p in list.items {
            let pod = p.metadata.name.unwrap_or_default();
            let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
            let phase = p.status.and_then(|s| s.phase).unwrap_or_default();
            if !nodes.is_empty() && !nodes.contains(&node) {
                continue;
            }
            if phase != "Running" {
                eprintln!("skipping node {node}: daemon pod {pod} is {phase}");
                continue;
            }
            out.push(DaemonPod { pod, node });
        }
        out.sort_by(|a, b| a.node.cmp(&b.node));
        if out.is_empty() {
            let which = if nodes.is_empty() {
                String::new()
            } else {
                format!(" on nodes {}", nodes.join(", "))
            };
            return Err(ClusterError::NoDaemons {
                namespace: self.namespace.clone(),
                which,
            });
        }
        Ok(out)
    }

    async fn token(&self) -> Result<String, ClusterError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let err = |reason: String| ClusterError::Token {
            namespace: self.namespace.clone(),
            reason,
        };
        let secret = secrets
            .get(TOKEN_SECRET)
            .await
            .map_err(|e| err(describe(&e)))?;
        let token = secret
            .data
            .and_then(|d| d.get("token").cloned())
            .ok_or_else(|| err("it has no key `token`".into()))?;
        String::from_utf8(token.0)
            .map(|t| t.trim().to_string())
            .map_err(|_| err("`token` is not text".into()))
    }

    /// One request to one node's daemon, through the pod proxy.
    async fn call(&self, pod: &DaemonPod, token: &str, request: &Request) -> Result<Reply, String> {
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}:{API_PORT}/proxy{}",
            self.namespace,
            pod.pod,
            cluster_api::PATH
        );
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let req = http::Request::post(path)
            .header(cluster_api::TOKEN_HEADER, token)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| e.to_string())?;
        // A node whose daemon hangs must not hang the whole command.
        let text = tokio::time::timeout(CALL_TIMEOUT, self.client.request_text(req))
            .await
            .map_err(|_| format!("no reply within {}s", CALL_TIMEOUT.as_secs()))?
            .map_err(|e| describe(&e))?;
        let reply: Reply =
            serde_json::from_str(&text).map_err(|e| format!("unexpected reply ({e}): {text}"))?;
        match reply {
            Reply::Error { message } => Err(message),
            r => Ok(r),
        }
    }

    /// The same request on every selected node, concurrently; per-node results in node order.
    pub async fn broadcast(
        &self,
        nodes: &[String],
        request: &Request,
    ) -> Result<Vec<(DaemonPod, Result<Reply, String>)>, ClusterError> {
        let daemons = self.daemons(nodes).await?;
        let token = self.token().await?;
        let calls = daemons.iter().map(|d| self.call(d, &token, request));
        let results = futures::future::join_all(calls).await;
        Ok(daemons.into_iter().zip(results).collect())
    }
}

/// Prints per-node outcomes; errors go to stderr and make the command fail at the end.
fn report<T>(results: &[(DaemonPod, Result<T, String>)]) -> Result<(), ClusterError> {
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    for (d, r) in results {
        if let Err(e) = r {
            eprintln!("node {} (pod {}): {e}", d.node, d.pod);
        }
    }
    if failed > 0 {
        return Err(ClusterError::SomeNodesFailed {
            failed,
            total: results.len(),
        });
    }
    Ok(())
}

pub async fn run(
    cluster: &Cluster,
    nodes: &[String],
    requests: Vec<RunRequest>,
) -> Result<(), ClusterError> {
    let mut all = Vec::new();
    for spec in requests {
        for (d, r) in cluster.broadcast(nodes, &Request::Run { spec }).await? {
            if let Ok(Reply::Started { id }) = &r {
                println!("{}\t{id}", d.node);
            }
            all.push((d, r.map(|_| ())));
        }
    }
    report(&all)
}

pub async fn list(cluster: &Cluster, nodes: &[String], json: bool) -> Result<(), ClusterError> {
    let results = cluster.broadcast(nodes, &Request::List).await?;
    let mut rows: Vec<(String, InstanceInfo)> = Vec::new();
    let mut outcomes = Vec::new();
    for (d, r) in results {
        if let Ok(Reply::Instances { instances }) = &r {
            rows.extend(instances.iter().map(|i| (d.node.clone(), i.clone())));
        }
        outcomes.push((d, r.map(|_| ())));
    }
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(node, i)| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                v["node"] = serde_json::Value::String(node.clone());
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let infos: Vec<InstanceInfo> = rows.iter().map(|(_, i)| i.clone()).collect();
        let table = crate::cli::instances::render_table(&infos);
        let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(4);
        for (i, line) in table.lines().enumerate() {
            let node = if i == 0 {
                "NODE"
            } else {
                rows[i - 1].0.as_str()
            };
            println!("{node:<width$}  {line}");
        }
    }
    report(&outcomes)
}

pub async fn delete(
    cluster: &Cluster,
    nodes: &[String],
    targets: Vec<String>,
) -> Result<(), ClusterError> {
    // Each target is deleted on the nodes that have it.
    let mut outcomes = Vec::new();
    for target in targets {
        let results = cluster
            .broadcast(
                nodes,
                &Request::Delete {
                    targets: vec![target.clone()],
                },
            )
            .await?;
        let found = results.iter().any(|(_, r)| r.is_ok());
        for (d, r) in results {
            match r {
                Ok(Reply::Deleted { ids }) => {
                    ids.iter().for_each(|id| println!("{}\t{id}", d.node))
                }
                Err(e) if found && e.starts_with("no instance with ID or name") => {}
                other => outcomes.push((d, other.map(|_| ()))),
            }
        }
    }
    report(&outcomes)
}
