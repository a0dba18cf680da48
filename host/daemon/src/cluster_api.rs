//! The daemon's API for the cluster CLI: `POST /api/v1` with a JSON [`Request`] and the token in
//! `X-Gadget-Token`, reached through the Kubernetes API server's pod proxy. The token (a Secret
//! mounted in the pod) keeps other pods on the network from driving the daemon: only users
//! allowed to read that Secret and to proxy to pods get this far. (A custom header, because the
//! API server consumes `Authorization` for the user's own credentials.)

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

use super::Daemon;
use gadget_api::{ErrorCode, MAX_REQUEST_BYTES, Reply, Request};
use gadget_net::{self as net, ConnectionLimits};

use gadget_api::{CLUSTER_API_PATH as PATH, CLUSTER_TOKEN_HEADER as TOKEN_HEADER};

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn reply(status: StatusCode, r: &Reply) -> axum::response::Response {
    let body = serde_json::to_string(r).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub async fn serve(
    addr: &str,
    token: String,
    daemon: Arc<Daemon>,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let token = Arc::new(token);
    let app = Router::new().route(
        PATH,
        post(move |headers: HeaderMap, body: Body| {
            let (token, daemon) = (token.clone(), daemon.clone());
            async move {
                let given = headers
                    .get(TOKEN_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !same(given.as_bytes(), token.as_bytes()) {
                    let message =
                        format!("missing or wrong {TOKEN_HEADER} (the gadget-api-token Secret)");
                    return reply(
                        StatusCode::UNAUTHORIZED,
                        &Reply::error(ErrorCode::Unauthorized, message),
                    );
                }
                // Read only once authorized, capped, and within the idle timeout.
                let body = match tokio::time::timeout(
                    limits.idle_timeout,
                    axum::body::to_bytes(body, MAX_REQUEST_BYTES as usize),
                )
                .await
                {
                    Ok(Ok(b)) => b,
                    Ok(Err(e)) => {
                        let message =
                            format!("reading the request: {e} (at most {MAX_REQUEST_BYTES} bytes)");
                        return reply(
                            StatusCode::BAD_REQUEST,
                            &Reply::error(ErrorCode::BadRequest, message),
                        );
                    }
                    Err(_) => {
                        let message = format!(
                            "the request body did not arrive within {} s (the idle timeout)",
                            limits.idle_timeout.as_secs_f64()
                        );
                        return reply(
                            StatusCode::REQUEST_TIMEOUT,
                            &Reply::error(ErrorCode::Timeout, message),
                        );
                    }
                };
                let request: Request = match serde_json::from_slice(&body) {
                    Ok(r) => r,
                    Err(e) => {
                        return reply(
                            StatusCode::BAD_REQUEST,
                            &Reply::error(ErrorCode::BadRequest, format!("bad request: {e}")),
                        );
                    }
                };
                // Errors of the request itself travel as Reply::Error in a 200, so that the API
                // server passes them through untouched.
                reply(StatusCode::OK, &daemon.dispatch(request).await)
            }
        }),
    );
    tracing::info!(
        "serving the cluster API on http://{}{PATH}",
        listener.local_addr()?
    );
    net::serve_http(listener, app, net::Gate::new("cluster API", limits));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_comparison() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"ab"));
        assert!(!super::same(b"", b"x"));
    }
}
