//! The daemon's local API: one JSON request per connection on a Unix socket, answered by JSON
//! lines (several for `attach`, one per refreshed frame). Only root can connect (socket mode 0600).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ebpf::AttachMode;
use crate::instance::InstanceSpec;
use crate::operators::metrics::MetricsName;
use crate::wasm::GuestLimits;

pub const DEFAULT_SOCKET: &str = "/run/gadget/gadget.sock";
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
    #[error("{0}")]
    Daemon(String),
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
}

impl RunRequest {
    pub fn to_spec(&self) -> Result<(InstanceSpec, Vec<MetricsName>), String> {
        let attach_mode = self
            .attach_mode
            .as_deref()
            .map(str::parse::<AttachMode>)
            .transpose()?;
        let names = self
            .metrics_names
            .iter()
            .map(|n| n.parse::<MetricsName>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if self.interval_ms == 0 {
            return Err("interval must be positive".into());
        }
        if let Some(name) = &self.name {
            check_instance_name(name)?;
        }
        if self.tags.len() > MAX_TAGS {
            return Err(format!("{} tags: at most {MAX_TAGS}", self.tags.len()));
        }
        for tag in &self.tags {
            check_tag(tag)?;
        }
        let budget = crate::budgets::Budgets::current().daemon;
        if self.guest_memory_mib > budget.max_guest_memory_mib {
            return Err(format!(
                "--guest-memory-mib {} is over the budget daemon.max-guest-memory-mib = {}",
                self.guest_memory_mib, budget.max_guest_memory_mib
            ));
        }
        if self.guest_fuel > budget.max_guest_fuel {
            return Err(format!(
                "--guest-fuel {} is over the budget daemon.max-guest-fuel = {}",
                self.guest_fuel, budget.max_guest_fuel
            ));
        }
        let spec = InstanceSpec {
            reference: self.reference.clone(),
            params: self.params.clone(),
            annotations: self.annotations.clone(),
            interval: Duration::from_millis(self.interval_ms),
            timeout: None,
            grants: self.grants.clone(),
            attach_mode,
            limits: GuestLimits {
                fuel_per_call: self.guest_fuel,
                memory_bytes: usize::try_from(self.guest_memory_mib.saturating_mul(1 << 20))
                    .unwrap_or(usize::MAX),
                ..GuestLimits::default()
            },
        };
        Ok((spec, names))
    }
}

/// Longest instance name or tag: Kubernetes' label-value length, so names carry over.
pub const MAX_NAME_LEN: usize = 63;
/// Most tags on one instance.
pub const MAX_TAGS: usize = 16;

/// Instance names are shown in tables and used on command lines: letters, digits, `-`, `_` and
/// `.`, starting with a letter or digit (no spaces or control characters that could fake rows).
pub fn check_instance_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.chars().all(ok_char)
    {
        return Err(format!(
            "instance name {:?}: use 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', starting with a letter or digit",
            name
        ));
    }
    Ok(())
}

/// Tags are free text but one short line: printable, no commas (they are listed comma-joined).
pub fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty()
        || tag.chars().count() > MAX_NAME_LEN
        || tag.chars().any(|c| c.is_control() || c == ',')
    {
        return Err(format!(
            "tag {:?}: use 1 to {MAX_NAME_LEN} printable characters without commas",
            tag
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Run { spec: RunRequest },
    List,
    Delete { targets: Vec<String> },
    Attach { target: String },
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
    Started { id: String },
    Instances { instances: Vec<InstanceInfo> },
    Deleted { ids: Vec<String> },
    Frame { text: String },
    Error { message: String },
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
        let reply: Reply = serde_json::from_str(&reply)
            .map_err(|e| ClientError::BadReply(format!("{e}: {}", crate::printable(&reply))))?;
        if let Reply::Error { message } = reply {
            return Err(ClientError::Daemon(message));
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
