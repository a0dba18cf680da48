//! The local API's Unix socket: binding it (root only) and serving one connection.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

use gadget_api::{ErrorCode, Reply, Request};

use crate::DaemonError;
use crate::record::lock;

use crate::manager::Daemon;

impl Daemon {
    /// One connection on the socket: the request line within the header timeout (or the gate
    /// closes it to make room), then busy until the reply is written; every write must make
    /// progress within the idle timeout.
    pub(crate) async fn handle(self: Arc<Self>, stream: UnixStream, permit: gadget_net::Permit) {
        let limits = permit.limits();
        let (read, write) = stream.into_split();
        let mut write = gadget_net::StallTimeout::new(write, limits.idle_timeout);
        let mut line = String::new();
        let mut reader = BufReader::new(read.take(gadget_api::MAX_REQUEST_BYTES));
        let reply = |r: &Reply| {
            let mut s = serde_json::to_string(r)
                .unwrap_or_else(|e| format!("{{\"reply\":\"error\",\"message\":\"{e}\"}}"));
            s.push('\n');
            s
        };
        tokio::select! {
            read = tokio::time::timeout(limits.header_timeout, reader.read_line(&mut line)) => {
                match read {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        let message = format!(
                            "no complete request within {} s (the header timeout)",
                            limits.header_timeout.as_secs_f64()
                        );
                        let _ = write.write_all(reply(&Reply::error(ErrorCode::Timeout, message)).as_bytes()).await;
                        return;
                    }
                }
            }
            () = permit.evicted() => return,
        }
        permit.set_busy(true);
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let _ = write
                    .write_all(
                        reply(&Reply::error(
                            ErrorCode::BadRequest,
                            format!("bad request: {e}"),
                        ))
                        .as_bytes(),
                    )
                    .await;
                return;
            }
        };
        let out = match request {
            Request::Attach { target } => {
                let frames = match self.resolve(&target) {
                    Ok(id) => lock(&self.instances).get(&id).map(|m| m.frames.clone()),
                    Err(e) => {
                        let _ = write.write_all(reply(&e.reply()).as_bytes()).await;
                        return;
                    }
                };
                let Some(frames) = frames else { return };
                let mut live = frames.live.subscribe();
                let first = lock(&frames.last).clone();
                if !first.is_empty()
                    && write
                        .write_all(reply(&Reply::Frame { text: first }).as_bytes())
                        .await
                        .is_err()
                {
                    return;
                }
                // Until the viewer goes away or the instance ends.
                loop {
                    match live.recv().await {
                        Ok(text) => {
                            if write
                                .write_all(reply(&Reply::Frame { text }).as_bytes())
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
            other => self.clone().dispatch(other).await,
        };
        let _ = write.write_all(reply(&out).as_bytes()).await;
    }
}

/// Binds the socket: refuses if a live daemon answers there, replaces a stale socket file.
pub(crate) fn bind_socket(socket: &Path) -> Result<UnixListener, DaemonError> {
    let io = |source| DaemonError::Io {
        path: socket.to_path_buf(),
        source,
    };
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(DaemonError::AlreadyRunning(socket.display().to_string()));
        }
        tracing::info!("removing the stale socket {}", socket.display());
        std::fs::remove_file(socket).map_err(io)?;
    }
    let listener = UnixListener::bind(socket).map_err(io)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}
