//! The operator's HTTP server: liveness, readiness, Prometheus metrics, and Alertmanager's
//! webhook (`POST /v1/alerts`, bearer token).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};

use crate::{
    alerts::{AlertSink, receive},
    context::Metrics,
};

pub struct Health {
    pub ready: AtomicBool,
    pub metrics: Metrics,
}

/// The limits of the operator's server. Its clients are few and quick: the kubelet's probes,
/// a Prometheus scrape, Alertmanager (one call per alert group, a few replicas).
pub const LIMITS: troupe_net::Limits = troupe_net::Limits {
    // Every client here sends a whole request at once; 10 s allows a slow network and cuts a
    // client that trickles headers or holds an idle connection.
    header_read: Duration::from_secs(10),
    // Each handler answers from memory in milliseconds, and the webhook body is at most 1 MiB:
    // 10 s is ample, and a client slower than that is not Alertmanager.
    request: Duration::from_secs(10),
    // Probes, scrapes and a few Alertmanager replicas use a handful of connections at a time.
    connections: 64,
    // Requests handled at once: a webhook payload is buffered (at most 1 MiB each), so this
    // bounds the memory a burst can take to 32 MiB.
    in_flight: 32,
    // The operator's server stops with the process; nothing to drain.
    drain: Duration::ZERO,
};

/// The operator's routes: health, metrics and the alert webhook.
pub fn app(health: Arc<Health>, alerts: Arc<AlertSink>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/startupz", get(ready))
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(|State(h): State<Arc<Health>>| async move { h.metrics.render() }),
        )
        .with_state(health)
        .merge(
            Router::new()
                .route("/v1/alerts", post(receive))
                .with_state(alerts),
        )
}

/// Serves [`app`] on `listen` under [`LIMITS`] for the life of the process.
pub async fn serve(listen: SocketAddr, health: Arc<Health>, alerts: Arc<AlertSink>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "operator HTTP listening");
    troupe_net::serve(listener, app(health, alerts), LIMITS, std::future::pending()).await?;
    Ok(())
}

async fn ready(State(h): State<Arc<Health>>) -> impl IntoResponse {
    if h.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting: caches not synced")
    }
}

#[cfg(test)]
mod tests;
