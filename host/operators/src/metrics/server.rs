//! The Prometheus endpoint (IG's default `0.0.0.0:2224`, path `/metrics`), served within the
//! connection budgets of [`gadget_net`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;

use super::MetricsRegistry;
use gadget_net::{self as net, ConnectionLimits};

/// Prometheus's text exposition format, version 0.0.4 (what IG's exporter serves).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub const DEFAULT_ADDRESS: &str = "0.0.0.0:2224";
pub const PATH: &str = "/metrics";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "cannot serve metrics on {addr}: {source} (choose another with --otel-metrics-listen-address)"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Binds now (so a taken port is an error at start, not a log line later) and serves in the
/// background on the current tokio runtime. Returns the bound address.
pub async fn serve(addr: &str, registry: MetricsRegistry) -> Result<SocketAddr, ServerError> {
    serve_with_health(
        addr,
        registry,
        Arc::new(AtomicBool::new(true)),
        ConnectionLimits::default(),
    )
    .await
}

/// [`serve`] plus `/healthz` (the process answers) and `/readyz` (200 once `ready` is set,
/// e.g. after the daemon restored its instances; 503 before), for Kubernetes probes.
pub async fn serve_with_health(
    addr: &str,
    registry: MetricsRegistry,
    ready: Arc<AtomicBool>,
    limits: ConnectionLimits,
) -> Result<SocketAddr, ServerError> {
    let bind_err = |source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.load(Ordering::SeqCst);
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "restoring instances\n")
                    }
                }
            }),
        )
        .route(
            PATH,
            get(move || {
                let registry = registry.clone();
                // Rendering cannot fail: a series that cannot be encoded is left out and
                // counted, so one instance never takes the scrape down for the others.
                async move {
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, TEXT_FORMAT)],
                        registry.render(),
                    )
                }
            }),
        );
    net::serve_http(listener, app, net::Gate::new("metrics endpoint", limits));
    tracing::info!("serving metrics on http://{local}{PATH}");
    Ok(local)
}
