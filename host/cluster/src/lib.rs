//! The cluster CLI (`gadget --cluster …`): finds the daemon pods through the Kubernetes API
//! server (kubeconfig and context taken the usual way, or the in-cluster service account) and
//! talks to each node's daemon through the API server's pod proxy.
//!
//! May depend on: gadget-api (the protocol), gadget-model, kube. Returns data (per-node results,
//! skipped pods); the CLI prints them. Decisions use the reply's [`ErrorCode`], never its text.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use gadget_api::{
    CLUSTER_API_PATH, CLUSTER_TOKEN_HEADER, ErrorCode, InstanceInfo, Reply, Request, RunRequest,
    SnapshotFrame,
};

pub const DEFAULT_NAMESPACE: &str = "gadget";
/// The labels of deploy/kubernetes/daemonset.yaml's pods.
pub const DAEMON_SELECTOR: &str =
    "app.kubernetes.io/name=gadget,app.kubernetes.io/component=daemon";
/// `--api-listen-address` in the DaemonSet.
pub const API_PORT: u16 = 2225;
pub const TOKEN_SECRET: &str = "gadget-api-token";
/// An API server that does not accept the connection is named quickly, not after kube's 30 s.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Starting an instance waits for its programs to attach: seconds, not minutes.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// A fetch answers from memory: a node that takes longer has stalled.
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no usable Kubernetes configuration: {0} (set KUBECONFIG, or pass --kubeconfig or --context)"
    )]
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

/// Why one node did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The node's daemon answered with an error.
    #[error("{message}")]
    Daemon { code: ErrorCode, message: String },
    /// The node's daemon could not be reached or answered something unexpected.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Why a request did not reach a node's daemon, or its answer made no sense. Clonable (results
/// are shown per node), so the API server's error is kept as its description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Encode(String),
    #[error("no reply within {0}s")]
    Timeout(u64),
    /// [`describe`] of the API server's error.
    #[error("{0}")]
    Api(String),
    #[error("unexpected reply ({reason}): {text}")]
    Unparsable { reason: String, text: String },
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}

/// A daemon pod that is not running, so no request went to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedPod {
    pub pod: DaemonPod,
    pub phase: String,
}

/// What one request did on every selected node, in node order.
#[derive(Debug)]
pub struct Outcome<T> {
    pub results: Vec<(DaemonPod, Result<T, NodeError>)>,
    pub skipped: Vec<SkippedPod>,
}

impl<T> Outcome<T> {
    /// [`ClusterError::SomeNodesFailed`] when any node failed (the caller has shown each).
    pub fn check(&self) -> Result<(), ClusterError> {
        let failed = self.results.iter().filter(|(_, r)| r.is_err()).count();
        if failed > 0 {
            return Err(ClusterError::SomeNodesFailed {
                failed,
                total: self.results.len(),
            });
        }
        Ok(())
    }
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
            let mut s = gadget_model::error_chain(other);
            if refused(other) {
                s.push_str(" (is the API server in your kubeconfig reachable?)");
            }
            s
        }
    }
}

/// Whether a connection was refused somewhere down the error's chain of causes.
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

pub struct Cluster {
    client: Client,
    namespace: String,
}

impl Cluster {
    /// A client for the API server of `kubeconfig` (else `KUBECONFIG`, ~/.kube/config or the
    /// in-cluster service account, as kubectl finds it) in `context` (else the current one).
    pub async fn connect(
        namespace: &str,
        kubeconfig: Option<&std::path::Path>,
        context: Option<&str>,
    ) -> Result<Cluster, ClusterError> {
        let config_err =
            |e: &dyn std::error::Error| ClusterError::Config(gadget_model::error_chain(e));
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let mut config = match (kubeconfig, context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path).map_err(|e| {
                    ClusterError::Config(format!(
                        "{}: {}",
                        path.display(),
                        gadget_model::error_chain(&e)
                    ))
                })?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| config_err(&e))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| config_err(&e))?,
            (None, None) => Config::infer().await.map_err(|e| config_err(&e))?,
        };
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let client = Client::try_from(config).map_err(|e| ClusterError::Config(describe(&e)))?;
        Ok(Cluster {
            client,
            namespace: namespace.to_string(),
        })
    }

    /// Running daemon pods, limited to `nodes` when given, and the pods skipped as not running.
    pub async fn daemons(
        &self,
        nodes: &[String],
    ) -> Result<(Vec<DaemonPod>, Vec<SkippedPod>), ClusterError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let list = pods
            .list(&ListParams::default().labels(DAEMON_SELECTOR))
            .await
            .map_err(|e| ClusterError::ListPods {
                namespace: self.namespace.clone(),
                reason: describe(&e),
            })?;
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for p in list.items {
            let pod = p.metadata.name.unwrap_or_default();
            let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
            let phase = p.status.and_then(|s| s.phase).unwrap_or_default();
            if !nodes.is_empty() && !nodes.contains(&node) {
                continue;
            }
            if phase != "Running" {
                skipped.push(SkippedPod {
                    pod: DaemonPod { pod, node },
                    phase,
                });
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
        Ok((out, skipped))
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
    async fn call(
        &self,
        pod: &DaemonPod,
        token: &str,
        request: &Request,
    ) -> Result<Reply, NodeError> {
        self.call_within(pod, token, request, CALL_TIMEOUT).await
    }

    async fn call_within(
        &self,
        pod: &DaemonPod,
        token: &str,
        request: &Request,
        timeout: std::time::Duration,
    ) -> Result<Reply, NodeError> {
        self.call_text(pod, token, request, timeout)
            .await
            .map_err(NodeError::Transport)?
    }

    /// The daemons and the token, looked up once for a run of many requests.
    pub async fn session(&self, nodes: &[String]) -> Result<Session, ClusterError> {
        let (daemons, skipped) = self.daemons(nodes).await?;
        let token = self.token().await?;
        Ok(Session {
            daemons,
            skipped,
            token,
        })
    }

    /// [`Cluster::call`]: the outer error is the transport's, the inner the daemon's reply.
    async fn call_text(
        &self,
        pod: &DaemonPod,
        token: &str,
        request: &Request,
        timeout: std::time::Duration,
    ) -> Result<Result<Reply, NodeError>, TransportError> {
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}:{API_PORT}/proxy{}",
            self.namespace, pod.pod, CLUSTER_API_PATH
        );
        let body =
            serde_json::to_vec(request).map_err(|e| TransportError::Encode(e.to_string()))?;
        let req = http::Request::post(path)
            .header(CLUSTER_TOKEN_HEADER, token)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| TransportError::Encode(e.to_string()))?;
        // A node whose daemon hangs must not hang the whole command.
        let text = tokio::time::timeout(timeout, self.client.request_text(req))
            .await
            .map_err(|_| TransportError::Timeout(timeout.as_secs()))?
            .map_err(|e| TransportError::Api(describe(&e)))?;
        let reply: Reply = serde_json::from_str(&text).map_err(|e| TransportError::Unparsable {
            reason: e.to_string(),
            text: text.clone(),
        })?;
        Ok(match reply {
            Reply::Error { code, message } => Err(NodeError::Daemon { code, message }),
            r => Ok(r),
        })
    }

    /// The same request on every selected node, concurrently; per-node results in node order.
    pub async fn broadcast(
        &self,
        nodes: &[String],
        request: &Request,
    ) -> Result<Outcome<Reply>, ClusterError> {
        let (daemons, skipped) = self.daemons(nodes).await?;
        let token = self.token().await?;
        let calls = daemons.iter().map(|d| self.call(d, &token, request));
        let results = futures::future::join_all(calls).await;
        Ok(Outcome {
            results: daemons.into_iter().zip(results).collect(),
            skipped,
        })
    }
}

/// The daemons selected for a run and the token to talk to them.
pub struct Session {
    pub daemons: Vec<DaemonPod>,
    pub skipped: Vec<SkippedPod>,
    token: String,
}

/// Starts `spec` as a temporary instance on every daemon of the session: the instance ID per
/// node. Each is deleted by its daemon once `lease_seconds` pass without a [`fetch`].
pub async fn start_temporary(
    cluster: &Cluster,
    session: &Session,
    spec: RunRequest,
    lease_seconds: u32,
) -> Vec<(DaemonPod, Result<String, NodeError>)> {
    let request = Request::RunTemporary {
        spec,
        lease_seconds,
    };
    let calls = session
        .daemons
        .iter()
        .map(|d| cluster.call(d, &session.token, &request));
    let results = futures::future::join_all(calls).await;
    session
        .daemons
        .iter()
        .cloned()
        .zip(results)
        .map(|(d, r)| {
            let id = r.and_then(|reply| match reply {
                Reply::Started { id } => Ok(id),
                other => Err(unexpected(&other)),
            });
            (d, id)
        })
        .collect()
}

/// What one fetch of one node's instance returned.
#[derive(Debug)]
pub struct Fetched {
    /// The instance's status (`Running`, `Failed: …`).
    pub status: String,
    /// None when there is no snapshot newer than the one asked after.
    pub frame: Option<SnapshotFrame>,
}

/// The newest snapshot of `target` on `pod` after `after` (renews a temporary instance's
/// lease). A node that does not answer within [`FETCH_TIMEOUT`] is a transport error.
pub async fn fetch(
    cluster: &Cluster,
    session: &Session,
    pod: &DaemonPod,
    target: &str,
    after: u64,
) -> Result<Fetched, NodeError> {
    let request = Request::Fetch {
        target: target.to_string(),
        after,
    };
    match cluster
        .call_within(pod, &session.token, &request, FETCH_TIMEOUT)
        .await?
    {
        Reply::Snapshot { status, frame } => Ok(Fetched { status, frame }),
        other => Err(unexpected(&other)),
    }
}

/// [`fetch`] on several nodes at once: (pod, instance, after) each; results in that order.
pub async fn fetch_all(
    cluster: &Cluster,
    session: &Session,
    targets: &[(&DaemonPod, &str, u64)],
) -> Vec<Result<Fetched, NodeError>> {
    let calls = targets
        .iter()
        .map(|(d, id, after)| fetch(cluster, session, d, id, *after));
    futures::future::join_all(calls).await
}

/// Deletes one instance per node (the temporary instances of a run that ends).
pub async fn delete_each(
    cluster: &Cluster,
    session: &Session,
    instances: &[(DaemonPod, String)],
) -> Vec<(DaemonPod, Result<Vec<String>, NodeError>)> {
    let calls = instances.iter().map(|(d, id)| async move {
        let request = Request::Delete {
            targets: vec![id.clone()],
        };
        let r = cluster
            .call(d, &session.token, &request)
            .await
            .and_then(|reply| match reply {
                Reply::Deleted { ids } => Ok(ids),
                other => Err(unexpected(&other)),
            });
        (d.clone(), r)
    });
    futures::future::join_all(calls).await
}

/// Starts each request on every selected node: the instance ID per node.
pub async fn run(
    cluster: &Cluster,
    nodes: &[String],
    requests: Vec<RunRequest>,
) -> Result<Outcome<String>, ClusterError> {
    let mut all = Outcome {
        results: Vec::new(),
        skipped: Vec::new(),
    };
    for spec in requests {
        let o = cluster.broadcast(nodes, &Request::Run { spec }).await?;
        all.skipped = o.skipped;
        all.results.extend(o.results.into_iter().map(|(d, r)| {
            let id = r.and_then(|reply| match reply {
                Reply::Started { id } => Ok(id),
                other => Err(unexpected(&other)),
            });
            (d, id)
        }));
    }
    Ok(all)
}

/// Every node's instances.
pub async fn list(
    cluster: &Cluster,
    nodes: &[String],
) -> Result<Outcome<Vec<InstanceInfo>>, ClusterError> {
    let o = cluster.broadcast(nodes, &Request::List).await?;
    Ok(Outcome {
        results: o
            .results
            .into_iter()
            .map(|(d, r)| {
                let r = r.and_then(|reply| match reply {
                    Reply::Instances { instances } => Ok(instances),
                    other => Err(unexpected(&other)),
                });
                (d, r)
            })
            .collect(),
        skipped: o.skipped,
    })
}

/// Deletes each target on the nodes that have it: the deleted IDs per node. A node without the
/// target is not a failure when another node had it.
pub async fn delete(
    cluster: &Cluster,
    nodes: &[String],
    targets: Vec<String>,
) -> Result<Outcome<Vec<String>>, ClusterError> {
    let mut all = Outcome {
        results: Vec::new(),
        skipped: Vec::new(),
    };
    for target in targets {
        let o = cluster
            .broadcast(
                nodes,
                &Request::Delete {
                    targets: vec![target.clone()],
                },
            )
            .await?;
        all.skipped = o.skipped;
        let found = o.results.iter().any(|(_, r)| r.is_ok());
        for (d, r) in o.results {
            match r {
                Err(NodeError::Daemon {
                    code: ErrorCode::NotFound,
                    ..
                }) if found => {}
                r => {
                    let r = r.and_then(|reply| match reply {
                        Reply::Deleted { ids } => Ok(ids),
                        other => Err(unexpected(&other)),
                    });
                    all.results.push((d, r));
                }
            }
        }
    }
    Ok(all)
}

fn unexpected(reply: &Reply) -> NodeError {
    NodeError::Transport(TransportError::Unexpected(format!("{reply:?}")))
}
