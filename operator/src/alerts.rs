//! Alertmanager's webhook (payload version 4), behind a bearer token. A firing alert whose
//! `namespace` and `pool` labels name a pool with `spec.rollback.onAlerts` (and carrying the
//! pool's `matchLabels`) is handed to that pool's next reconcile, which aborts its rollout or
//! rolls back a revision promoted within the rollback window. Resolved alerts change nothing;
//! repeats are harmless (an aborted rollout is not aborted twice).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header::AUTHORIZATION},
    response::{IntoResponse, Response},
};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Deserialize;
use serde_json::json;
use troupe_crds::ActorPool;

use crate::{context::Context, rollout::AlertHit};

/// Alertmanager's webhook body (the fields Troupe reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<String>,
}

/// What the webhook needs: the token, the pools, where to leave alerts, how to wake the
/// controller, and whether this replica leads.
/// The largest webhook body read, and only once the token matched. Alertmanager sends one
/// group of alerts per call, about 1 KiB each: 1 MiB holds a group of several hundred alerts
/// (set `max_alerts` on the receiver to stay below it); anything larger is answered 413.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

pub struct AlertSink {
    pub token: Option<String>,
    pub ctx: Arc<Context>,
    pub leader: Arc<AtomicBool>,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn answer(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({"message": message.into()}))).into_response()
}

/// The pool an alert names, if that pool takes alerts and the alert carries its match labels.
pub fn pool_for<'a>(alert: &Alert, pools: &'a [Arc<ActorPool>]) -> Option<&'a Arc<ActorPool>> {
    let ns = alert.labels.get("namespace")?;
    let name = alert.labels.get("pool")?;
    pools.iter().find(|p| {
        p.namespace().as_deref() == Some(ns.as_str())
            && p.name_any() == *name
            && p.spec.rollback.as_ref().is_some_and(|r| {
                r.on_alerts && r.match_labels.iter().all(|(k, v)| alert.labels.get(k) == Some(v))
            })
    })
}

/// Checks the token before a byte of the body is read, then reads at most [`MAX_PAYLOAD`].
pub async fn receive(State(sink): State<Arc<AlertSink>>, headers: HeaderMap, body: Body) -> Response {
    let metrics = &sink.ctx.metrics;
    let Some(token) = sink.token.as_deref() else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the alert webhook is off: start the operator with --alert-token-file",
        );
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), token.as_bytes())) {
        metrics
            .alert_deliveries
            .with_label_values(&["unauthorized"])
            .inc();
        return answer(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    }
    if !sink.leader.load(Ordering::SeqCst) || !sink.ctx.leading() {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "this replica is not the leader; Alertmanager retries",
        );
    }
    let body = match troupe_net::read_request_body(&headers, body, MAX_PAYLOAD).await {
        Ok(b) => b,
        Err(e @ troupe_net::BodyError::TooLarge { .. }) => {
            metrics.alert_deliveries.with_label_values(&["malformed"]).inc();
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the webhook payload is {e}: set max_alerts on the Alertmanager receiver"),
            );
        }
        Err(e) => {
            metrics.alert_deliveries.with_label_values(&["malformed"]).inc();
            return answer(
                StatusCode::BAD_REQUEST,
                format!("reading the webhook payload: {e}"),
            );
        }
    };
    let payload: Payload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            metrics.alert_deliveries.with_label_values(&["malformed"]).inc();
            return answer(
                StatusCode::BAD_REQUEST,
                format!("not an Alertmanager webhook payload: {e}"),
            );
        }
    };
    if payload.version != "4" {
        metrics.alert_deliveries.with_label_values(&["malformed"]).inc();
        return answer(
            StatusCode::BAD_REQUEST,
            format!(
                "webhook payload version {:?} is not supported (only 4)",
                payload.version
            ),
        );
    }
    let received = Instant::now();
    let pools = sink.ctx.pools.state();
    let mut matched = Vec::new();
    for alert in payload.alerts.iter().filter(|a| a.status == "firing") {
        let Some(pool) = pool_for(alert, &pools) else {
            continue;
        };
        let key = (pool.namespace().unwrap_or_default(), pool.name_any());
        let hit = AlertHit {
            name: alert
                .labels
                .get("alertname")
                .cloned()
                .unwrap_or_else(|| "unnamed".into()),
            starts_at: alert
                .starts_at
                .as_deref()
                .and_then(|s| s.parse::<Timestamp>().ok()),
            summary: alert
                .annotations
                .get("summary")
                .or_else(|| alert.annotations.get("description"))
                .cloned()
                .unwrap_or_default(),
        };
        tracing::info!(namespace = %key.0, pool = %key.1, alert = %hit.name, "firing alert for a pool");
        matched.push(format!("{}/{}", key.0, key.1));
        let pool_ref = kube::runtime::reflector::ObjectRef::new(&key.1).within(&key.0);
        sink.ctx
            .alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert((hit, received));
        sink.ctx.poke(pool_ref);
    }
    metrics.alert_deliveries.with_label_values(&["accepted"]).inc();
    (
        StatusCode::OK,
        Json(json!({"message": "accepted", "alerts": payload.alerts.len(), "pools": matched})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(ns: &str, name: &str, rollback: serde_json::Value) -> Arc<ActorPool> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}, "rollback": rollback}
            }))
            .unwrap(),
        )
    }

    fn alert(labels: serde_json::Value) -> Alert {
        serde_json::from_value(json!({"status": "firing", "labels": labels})).unwrap()
    }

    #[test]
    fn an_alert_matches_the_pool_its_labels_name_when_that_pool_takes_alerts() {
        let pools = vec![
            pool("a", "p", json!({"matchLabels": {"severity": "critical"}})),
            pool("b", "p", json!({"onAlerts": false})),
        ];
        let hit = alert(json!({"namespace": "a", "pool": "p", "severity": "critical"}));
        assert_eq!(
            pool_for(&hit, &pools).map(|p| p.namespace()),
            Some(Some("a".into()))
        );
        let warning = alert(json!({"namespace": "a", "pool": "p", "severity": "warning"}));
        assert!(pool_for(&warning, &pools).is_none(), "matchLabels must all match");
        let off = alert(json!({"namespace": "b", "pool": "p"}));
        assert!(pool_for(&off, &pools).is_none(), "onAlerts: false");
        let unnamed = alert(json!({"alertname": "X"}));
        assert!(pool_for(&unnamed, &pools).is_none());
    }

    #[test]
    fn the_token_comparison_needs_the_exact_token() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
