//! The cluster CLI (`gadget --cluster …`): finds the daemon pods through the Kubernetes API
//! server (kubeconfig and context taken the usual way, or the in-cluster service account) and
//! talks to each node's daemon through the API server's pod proxy.
//!
//! May depend on: gadget-api (the protocol), gadget-model, kube. Returns data (per-node results,
//! skipped pods); the CLI prints them. Decisions use the reply's [`ErrorCode`], never its text.

pub mod deploy;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{GetParams, ListParams, ObjectList};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

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
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// A fetch answers from memory: a node that takes longer has stalled.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The API server's own objects (pods, Secrets, what deploy applies) come from its cache.
pub const API_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// The node's daemon speaks another protocol: no request is sent to it.
    #[error(
        "its daemon is gadget {version} (protocol {protocol}), which this client (gadget {client}, protocol {ours}) cannot talk to: deploy this client's version (kubectl gadget deploy), or use a client of the daemon's version",
        client = gadget_api::VERSION,
        ours = gadget_api::PROTOCOL
    )]
    Incompatible { version: String, protocol: u32 },
}

/// A node whose daemon is of another version than this client, but of the same protocol: it is
/// used, and named (IG warns of such a version skew the same way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionSkew {
    #[error(
        "version skew: its daemon is gadget {daemon}, this client is gadget {client} (redeploy with this client's version, or use a client of the daemon's)",
        client = gadget_api::VERSION
    )]
    Differs { daemon: String },
    #[error(
        "version skew: its daemon does not report its version, so it is older than this client (gadget {client}); redeploy it with `kubectl gadget deploy`",
        client = gadget_api::VERSION
    )]
    Unknown,
}

/// Why a request did not reach a node's daemon, or its answer made no sense. Clonable (results
/// are shown per node), so the API server's error is kept as its description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Encode(String),
    /// The whole reply (head and body) did not arrive in time: a stalled or trickling sender.
    #[error("no complete reply within {0} s")]
    Timeout(u64),
    /// The reply is larger than the `cluster.reply-bytes` budget (the value is the limit).
    #[error(
        "the reply is larger than {0} bytes (budget cluster.reply-bytes; raise it with --budget cluster.reply-bytes=BYTES)"
    )]
    TooLarge(u64),
    /// [`describe`] of the API server's error when there was no reply (connection refused, TLS).
    #[error("{0}")]
    Api(String),
    /// The API server (or a daemon through its proxy) answered with an error status: its
    /// `Status` as "CODE REASON: MESSAGE" (a refusal adds the Role the client needs).
    #[error("{message}{hint}", hint = if *code == 403 { CLIENT_ROLE_HINT } else { "" })]
    Status { code: u16, message: String },
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
    /// Nodes whose daemon is of another version (they answered, see `results`).
    pub skew: Vec<(DaemonPod, VersionSkew)>,
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

/// What a refused `kubectl gadget` user (not deploy) asks for.
const CLIENT_ROLE_HINT: &str =
    " (ask for the gadget-cluster-client Role in deploy/kubernetes/rbac.yaml)";

/// Turns API errors into what a user can act on: who refused what, and the RBAC to ask for.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let mut s = status_line(status);
            if status.code == 403 {
                s.push_str(CLIENT_ROLE_HINT);
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
        let list_err = |reason: String| ClusterError::ListPods {
            namespace: self.namespace.clone(),
            reason,
        };
        let list: ObjectList<Pod> = self
            .get_json(
                kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", self.namespace))
                    .list(&ListParams::default().labels(DAEMON_SELECTOR)),
            )
            .await
            .map_err(|e| list_err(e.to_string()))?;
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
        let err = |reason: String| ClusterError::Token {
            namespace: self.namespace.clone(),
            reason,
        };
        let secret: Secret = self
            .get_json(
                kube::core::Request::new(format!("/api/v1/namespaces/{}/secrets", self.namespace))
                    .get(TOKEN_SECRET, &GetParams::default()),
            )
            .await
            .map_err(|e| err(e.to_string()))?;
        let token = secret
            .data
            .and_then(|d| d.get("token").cloned())
            .ok_or_else(|| err("it has no key `token`".into()))?;
        String::from_utf8(token.0)
            .map(|t| t.trim().to_string())
            .map_err(|_| err("`token` is not text".into()))
    }

    /// Sends one request to the API server and reads its reply: at most the
    /// `cluster.reply-bytes` budget, all of it (head and body) within `timeout`, so neither an
    /// oversized nor a trickling reply can hold the command or its memory. A reply with an
    /// error status is [`TransportError::Status`], described as kube describes the API
    /// server's errors ([`describe`]).
    pub(crate) async fn send(
        &self,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        let (status, body) = self.send_raw(request, timeout).await?;
        if status.is_client_error() || status.is_server_error() {
            return Err(status_error(status, &body));
        }
        Ok(body)
    }

    /// [`Cluster::send`] that returns an error status with its body.
    async fn send_raw(
        &self,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
        timeout: Duration,
    ) -> Result<(http::StatusCode, Vec<u8>), TransportError> {
        use http_body_util::BodyExt;
        let request = request.map_err(|e| TransportError::Encode(e.to_string()))?;
        let limit = gadget_model::budgets::Budgets::current()
            .cluster
            .reply_bytes;
        let exchange = async {
            let res = self
                .client
                .send(request.map(kube::client::Body::from))
                .await
                .map_err(|e| TransportError::Api(describe(&e)))?;
            let status = res.status();
            let capped = http_body_util::Limited::new(
                res.into_body(),
                usize::try_from(limit).unwrap_or(usize::MAX),
            );
            let body = capped.collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    TransportError::TooLarge(limit)
                } else {
                    TransportError::Api(gadget_model::error_chain(&*e))
                }
            })?;
            Ok((status, body.to_bytes().to_vec()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout(timeout.as_secs()))?
    }

    /// [`Cluster::send`] of a request for one of the API server's objects, parsed.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<T, TransportError> {
        let body = self.send(request, API_TIMEOUT).await?;
        serde_json::from_slice(&body).map_err(|e| TransportError::Unparsable {
            reason: e.to_string(),
            text: excerpt(&body),
        })
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

    /// The daemons and the token, looked up once for a run of many requests. Each daemon is
    /// asked its version first: one of another protocol is refused (in `refused`, sent
    /// nothing more), one of another version is named in `skew`.
    pub async fn session(&self, nodes: &[String]) -> Result<Session, ClusterError> {
        let (found, skipped) = self.daemons(nodes).await?;
        let token = self.token().await?;
        let calls = found
            .iter()
            .map(|d| self.call_within(d, &token, &Request::Version, FETCH_TIMEOUT));
        let answers = futures::future::join_all(calls).await;
        let mut session = Session {
            daemons: Vec::new(),
            skipped,
            refused: Vec::new(),
            skew: Vec::new(),
            token,
        };
        for (d, answer) in found.into_iter().zip(answers) {
            match answer {
                Ok(Reply::Version { protocol, version }) if protocol != gadget_api::PROTOCOL => {
                    session
                        .refused
                        .push((d, NodeError::Incompatible { version, protocol }));
                }
                Ok(Reply::Version { version, .. }) => {
                    if version != gadget_api::VERSION {
                        session
                            .skew
                            .push((d.clone(), VersionSkew::Differs { daemon: version }));
                    }
                    session.daemons.push(d);
                }
                // A daemon from before `version` existed refuses it as a bad request.
                Err(NodeError::Daemon {
                    code: ErrorCode::BadRequest,
                    ..
                }) => {
                    session.skew.push((d.clone(), VersionSkew::Unknown));
                    session.daemons.push(d);
                }
                Ok(other) => session.refused.push((d, unexpected(&other))),
                Err(e) => session.refused.push((d, e)),
            }
        }
        Ok(session)
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
        // A node whose daemon hangs, trickles or floods must not hold the whole command.
        let (status, text) = self.send_raw(Ok(req), timeout).await?;
        // The daemon's own error replies may come with an error status (a request it cannot
        // parse is a 400): its reply is the answer whatever the status; anything else with an
        // error status is the API server's.
        let reply: Reply = match serde_json::from_slice(&text) {
            Ok(r) => r,
            Err(_) if status.is_client_error() || status.is_server_error() => {
                return Err(status_error(status, &text));
            }
            Err(e) => {
                return Err(TransportError::Unparsable {
                    reason: e.to_string(),
                    text: excerpt(&text),
                });
            }
        };
        Ok(match reply {
            Reply::Error { code, message } => Err(NodeError::Daemon { code, message }),
            r => Ok(r),
        })
    }

    /// The same request on every selected node, concurrently; per-node results in node order
    /// (a node refused for its version is a failed result, asked nothing).
    pub async fn broadcast(
        &self,
        nodes: &[String],
        request: &Request,
    ) -> Result<Outcome<Reply>, ClusterError> {
        let session = self.session(nodes).await?;
        let calls = session
            .daemons
            .iter()
            .map(|d| self.call(d, &session.token, request));
        let results = futures::future::join_all(calls).await;
        let mut results: Vec<(DaemonPod, Result<Reply, NodeError>)> =
            session.daemons.into_iter().zip(results).collect();
        results.extend(session.refused.into_iter().map(|(d, e)| (d, Err(e))));
        results.sort_by(|a, b| a.0.node.cmp(&b.0.node));
        Ok(Outcome {
            results,
            skipped: session.skipped,
            skew: session.skew,
        })
    }
}

/// The daemons selected for a run and the token to talk to them.
pub struct Session {
    /// The daemons requests go to.
    pub daemons: Vec<DaemonPod>,
    pub skipped: Vec<SkippedPod>,
    /// Daemons that answered the version check with a failure, or of another protocol.
    pub refused: Vec<(DaemonPod, NodeError)>,
    /// Daemons (among `daemons`) of another version than this client.
    pub skew: Vec<(DaemonPod, VersionSkew)>,
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
        skew: Vec::new(),
    };
    for spec in requests {
        let o = cluster.broadcast(nodes, &Request::Run { spec }).await?;
        all.skipped = o.skipped;
        all.skew = o.skew;
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
        skew: o.skew,
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
        skew: Vec::new(),
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
        all.skew = o.skew;
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

fn status_error(status: http::StatusCode, body: &[u8]) -> TransportError {
    let kube::Error::Api(s) = api_error(status, body) else {
        return TransportError::Api(excerpt(body));
    };
    TransportError::Status {
        code: status.as_u16(),
        message: status_line(&s),
    }
}

/// "CODE REASON: MESSAGE" of the API server's `Status`.
fn status_line(s: &kube::core::Status) -> String {
    format!("{} {}: {}", s.code, s.reason, s.message)
}

/// An error reply as kube describes it: the API server's `Status` when the body is one, else a
/// failure with the reply's text (a proxy's or daemon's plain-text error).
fn api_error(status: http::StatusCode, body: &[u8]) -> kube::Error {
    let parsed = serde_json::from_slice::<kube::core::Status>(body)
        .ok()
        .filter(|s| s.code != 0 || !s.message.is_empty());
    let s = parsed.unwrap_or_else(|| {
        kube::core::Status::failure(&excerpt(body), status.canonical_reason().unwrap_or(""))
            .with_code(status.as_u16())
    });
    kube::Error::Api(s.boxed())
}

/// The start of a reply, for an error message: never a whole oversized body.
fn excerpt(body: &[u8]) -> String {
    const SHOWN: usize = 512;
    let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    let text = text.trim();
    if body.len() > SHOWN {
        format!("{text}… ({} bytes)", body.len())
    } else {
        text.to_string()
    }
}

fn unexpected(reply: &Reply) -> NodeError {
    NodeError::Transport(TransportError::Unexpected(format!("{reply:?}")))
}
