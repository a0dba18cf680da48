//! The daemon's local API: one JSON request per connection on a Unix socket, answered by JSON
//! lines (several for `attach`, one per refreshed frame). Only root can connect (socket mode 0600).
//! The same requests and replies travel through the cluster API (HTTP, gadget-daemon).
//!
//! May depend on: gadget-model (text helpers), serde. Both ends of the protocol: the
//! types, the checks on names and tags, and the blocking socket client the CLI uses. Error
//! replies carry an [`ErrorCode`]: no client matches message text.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_SOCKET: &str = "/run/gadget/gadget.sock";
/// The daemon's cluster API (HTTP, behind the Kubernetes API server's pod proxy): the path
/// requests are POSTed to, and the header carrying the bearer token.
pub const CLUSTER_API_PATH: &str = "/api/v1";
pub const CLUSTER_TOKEN_HEADER: &str = "x-gadget-token";
/// This build's version: a daemon answers [`Request::Version`] with it, and the cluster client
/// names a node whose daemon's differs (as IG warns of a version skew).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The protocol of [`Request`] and [`Reply`]: raised when a change would make one side misread
/// the other. A cluster client does not talk to a daemon of another protocol.
pub const PROTOCOL: u32 = 1;
/// Bound on one request line: a spec is a few KiB.
pub const MAX_REQUEST_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the gadget daemon is not running (nothing listens on {socket}: {source}); start it with `gadget daemon` (as root), or pass --socket"
    )]
    NotRunning {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the gadget daemon's socket {socket} is only open to root: run this command as root (sudo), or pass --socket"
    )]
    Denied { socket: PathBuf },
    #[error("talking to the gadget daemon on {socket}: {source}")]
    Io {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("the gadget daemon sent a reply this client does not understand: {0}")]
    BadReply(String),
    #[error("{message}")]
    Daemon { code: ErrorCode, message: String },
}

/// Everything needed to (re)start an instance; what the daemon persists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// A gadget directory (absolute) or image reference.
    pub reference: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: Vec<String>,
    #[serde(default)]
    pub metrics_names: Vec<String>,
    pub interval_ms: u64,
    #[serde(default)]
    pub attach_mode: Option<String>,
    pub guest_fuel: u64,
    pub guest_memory_mib: u64,
    #[serde(default)]
    pub grants: Vec<String>,
    /// `Some(false)`: the client asks to run the image without signature verification
    /// (`--verify-image=false`, or a manifest's `operator.oci.verify-image: "false"`). The
    /// daemon's own configuration decides: it refuses unless started with
    /// `--allow-unverified-requests`. Absent: the daemon's policy, as always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_image: Option<bool>,
}

/// Longest instance name or tag: Kubernetes' label-value length, so names carry over.
pub const MAX_NAME_LEN: usize = 63;
/// Most tags on one instance.
pub const MAX_TAGS: usize = 16;

/// A name or tag a request may not carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "instance name {0:?}: use 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', starting with a letter or digit"
    )]
    InstanceName(String),
    #[error("tag {0:?}: use 1 to {MAX_NAME_LEN} printable characters without commas")]
    Tag(String),
}

/// Instance names are shown in tables and used on command lines: letters, digits, `-`, `_` and
/// `.`, starting with a letter or digit (no spaces or control characters that could fake rows).
pub fn check_instance_name(name: &str) -> Result<(), NameError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.chars().all(ok_char)
    {
        return Err(NameError::InstanceName(name.to_string()));
    }
    Ok(())
}

/// Tags are free text but one short line: printable, no commas (they are listed comma-joined).
pub fn check_tag(tag: &str) -> Result<(), NameError> {
    if tag.is_empty()
        || tag.chars().count() > MAX_NAME_LEN
        || tag.chars().any(|c| c.is_control() || c == ',')
    {
        return Err(NameError::Tag(tag.to_string()));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Run {
        spec: RunRequest,
    },
    List,
    Delete {
        targets: Vec<String>,
    },
    Attach {
        target: String,
    },
    /// A foreground run on a remote daemon: an instance that is never saved and that the
    /// daemon deletes once `lease_seconds` pass without a [`Request::Fetch`] of it (a client
    /// that died, or lost its network, leaves nothing behind).
    RunTemporary {
        spec: RunRequest,
        lease_seconds: u32,
    },
    /// An instance's latest datasource snapshot, as data, if newer than `after` (a sequence
    /// number from an earlier [`Reply::Snapshot`], 0 at first). Renews a temporary instance's
    /// lease.
    Fetch {
        target: String,
        #[serde(default)]
        after: u64,
    },
    /// The daemon's [`VERSION`] and [`PROTOCOL`].
    Version,
}

/// How long a temporary instance outlives its client's last fetch, unless the client asks for
/// another lease: long enough for a slow API server, short enough that a killed client's
/// programs go soon.
pub const DEFAULT_LEASE_SECONDS: u32 = 15;
/// Bounds on a requested lease.
pub const MIN_LEASE_SECONDS: u32 = 2;
pub const MAX_LEASE_SECONDS: u32 = 300;

/// One instance's datasources after a snapshot: their declarations and what was published,
/// the data the terminal view is rendered from (a cluster client combines nodes' frames).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFrame {
    /// Increases with every snapshot of the instance; 0 means none yet.
    pub seq: u64,
    pub datasources: Vec<gadget_model::datasource::DatasourceSpec>,
    pub publications: Vec<gadget_model::datasource::Publication>,
}

/// One row of `gadget list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub gadget: String,
    pub status: String,
    /// Milliseconds since the epoch.
    pub created_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    Started {
        id: String,
    },
    Instances {
        instances: Vec<InstanceInfo>,
    },
    Deleted {
        ids: Vec<String>,
    },
    Frame {
        text: String,
    },
    /// The answer to [`Request::Fetch`]: `frame` is None when nothing is newer than `after`.
    Snapshot {
        status: String,
        frame: Option<SnapshotFrame>,
    },
    /// The answer to [`Request::Version`].
    Version {
        version: String,
        protocol: u32,
    },
    Error {
        /// What kind of failure, for clients to act on (never the message's text).
        #[serde(default)]
        code: ErrorCode,
        message: String,
    },
}

impl Reply {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Reply {
        Reply::Error {
            code,
            message: message.into(),
        }
    }
}

/// The kind of an error reply. Clients decide on this (the cluster client skips nodes that do
/// not have an instance); the message is for people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Anything else: the request was understood and failed (a gadget that does not load, a
    /// budget exceeded, …). Also what a reply without a code means.
    #[default]
    Failed,
    /// No instance has that ID, ID prefix or name.
    NotFound,
    /// An ID prefix that matches several instances.
    Ambiguous,
    /// The request itself is malformed or not allowed here.
    BadRequest,
    /// The cluster API's token is missing or wrong.
    Unauthorized,
    /// The request did not arrive in time.
    Timeout,
    /// The daemon itself failed (a task panicked).
    Internal,
}

/// Sends one request and calls `on_reply` for each reply line until the daemon closes the
/// connection (or `on_reply` returns false).
pub fn call(
    socket: &Path,
    request: &Request,
    mut on_reply: impl FnMut(Reply) -> bool,
) -> Result<(), ClientError> {
    let io = |source| ClientError::Io {
        socket: socket.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            ClientError::Denied {
                socket: socket.to_path_buf(),
            }
        } else {
            ClientError::NotRunning {
                socket: socket.to_path_buf(),
                source,
            }
        }
    })?;
    let mut line =
        serde_json::to_string(request).map_err(|e| ClientError::BadReply(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    for reply in BufReader::new(stream).lines() {
        let reply = reply.map_err(io)?;
        let reply: Reply = serde_json::from_str(&reply).map_err(|e| {
            ClientError::BadReply(format!("{e}: {}", gadget_model::printable(&reply)))
        })?;
        if let Reply::Error { code, message } = reply {
            return Err(ClientError::Daemon { code, message });
        }
        if !on_reply(reply) {
            break;
        }
    }
    Ok(())
}

/// A request expecting exactly one reply.
pub fn call_one(socket: &Path, request: &Request) -> Result<Reply, ClientError> {
    let mut out = None;
    call(socket, request, |r| {
        out = Some(r);
        false
    })?;
    out.ok_or_else(|| {
        ClientError::BadReply("the daemon closed the connection without replying".into())
    })
}

#[cfg(test)]
mod tests {
    use super::{ErrorCode, Reply};

    #[test]
    fn error_replies_carry_a_code_and_a_reply_without_one_reads_as_failed() {
        let r = Reply::error(ErrorCode::NotFound, "no instance with ID or name \"x\"");
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"code\":\"not-found\""), "{text}");
        let back: Reply = serde_json::from_str(&text).unwrap();
        assert!(matches!(
            back,
            Reply::Error {
                code: ErrorCode::NotFound,
                ..
            }
        ));
        let old: Reply = serde_json::from_str(r#"{"reply":"error","message":"m"}"#).unwrap();
        assert!(matches!(
            old,
            Reply::Error {
                code: ErrorCode::Failed,
                ..
            }
        ));
    }
}
