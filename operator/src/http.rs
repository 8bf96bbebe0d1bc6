//! The operator's HTTP server: liveness, readiness, Prometheus metrics, and Alertmanager's
//! webhook (`POST /v1/alerts`, bearer token).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
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

pub async fn serve(listen: SocketAddr, health: Arc<Health>, alerts: Arc<AlertSink>) -> anyhow::Result<()> {
    let app = Router::new()
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
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "operator HTTP listening");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn ready(State(h): State<Arc<Health>>) -> impl IntoResponse {
    if h.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting: caches not synced")
    }
}
