//! The node agent's own HTTP API (loopback only): list pods, kill a pod's containers (a crash:
//! they restart in place), pause them (SIGSTOP, then SIGCONT after a while: a suspended VM),
//! delete a pod (node loss: the Deployment gets a new pod with a new name and address; its Pod
//! object is deleted with the grace period given).

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::Deserialize;

use super::{Deletion, Node, remove_pod};

pub async fn serve(node: Arc<Node>) -> anyhow::Result<()> {
    let listen = node.config.listen;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(list_pods))
        .route("/pods/{namespace}/{name}/kill", post(kill_pod))
        .route("/pods/{namespace}/{name}/pause", post(pause_pod))
        .route("/pods/{namespace}/{name}", delete(delete_pod))
        .with_state(node);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "node agent API listening");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn list_pods(State(node): State<Arc<Node>>) -> Response {
    let state = node.state.lock().await;
    Json(state.pods.values().map(|p| p.info()).collect::<Vec<_>>()).into_response()
}

fn not_found(ns: &str, name: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("pod {ns}/{name} not found\n")).into_response()
}

async fn kill_pod(State(node): State<Arc<Node>>, Path((ns, name)): Path<(String, String)>) -> Response {
    let state = node.state.lock().await;
    match state.pods.get(&(ns.clone(), name.clone())) {
        Some(pod) => {
            pod.kill_containers();
            tracing::info!(namespace = %ns, pod = %name, "killed the pod's containers on request");
            (StatusCode::ACCEPTED, "killed\n").into_response()
        }
        None => not_found(&ns, &name),
    }
}

#[derive(Deserialize)]
struct PauseQuery {
    /// How long the containers stay frozen, in milliseconds (at most 10 minutes).
    millis: u64,
}

async fn pause_pod(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<PauseQuery>,
) -> Response {
    if q.millis > 600_000 {
        return (StatusCode::BAD_REQUEST, "millis: at most 600000\n").into_response();
    }
    let state = node.state.lock().await;
    match state.pods.get(&(ns.clone(), name.clone())) {
        Some(pod) => {
            let pids = pod.pause(Duration::from_millis(q.millis));
            tracing::info!(namespace = %ns, pod = %name, ?pids, millis = q.millis, "paused the pod's containers on request");
            (StatusCode::ACCEPTED, "paused\n").into_response()
        }
        None => not_found(&ns, &name),
    }
}

#[derive(Deserialize)]
struct DeleteQuery {
    /// Grace period in seconds; 0 kills at once.
    grace: Option<u64>,
}

async fn delete_pod(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Response {
    let mut state = node.state.lock().await;
    let key = (ns.clone(), name.clone());
    if !state.pods.contains_key(&key) {
        return not_found(&ns, &name);
    }
    let grace = q.grace.map_or(Duration::from_secs(30), Duration::from_secs);
    remove_pod(&node, &mut state, &key, grace, Deletion::Ask);
    tracing::info!(namespace = %ns, pod = %name, "deleted the pod on request");
    (StatusCode::ACCEPTED, "deleted\n").into_response()
}
