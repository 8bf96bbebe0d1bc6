//! The discovery front: a thin plain-HTTP server on loopback in front of the apiextensions-apiserver.
//!
//! The server lacks the core group (`/api`, `/api/v1`) and the group list at `/apis`, without
//! which kubectl's discovery fails. The front answers those from the installed CRDs, answers
//! core/v1 Event lists (what `kubectl describe` shows) from the events.k8s.io/v1 stand-in, and
//! passes every other request through unchanged with the admin client certificate, streaming
//! responses (watches included) as they come.

use std::{collections::BTreeMap, net::SocketAddr};

use axum::{
    Router,
    body::Body,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use k8s_openapi::{
    api::events::v1::Event, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, Client, api::ListParams};
use serde_json::{Value, json};

/// Largest request body the front accepts (the API server's own limit is 3 MiB).
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Clone)]
struct Front {
    client: Client,
    advertise: String,
}

/// Serves the front on `listen`, forwarding with `client` (which carries the admin credentials).
pub async fn serve(listen: SocketAddr, client: Client) -> anyhow::Result<()> {
    let front = Front {
        client,
        advertise: listen.to_string(),
    };
    let app = Router::new()
        .route("/api", get(api_versions))
        .route("/api/v1", get(core_v1_resources))
        .route("/apis", get(api_groups))
        .route("/api/v1/namespaces/{ns}/events", get(core_events_in_namespace))
        .route("/api/v1/events", get(core_events_everywhere))
        .fallback(pass_through)
        .with_state(front);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "discovery front listening");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn api_versions(State(front): State<Front>) -> Response {
    axum::Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": front.advertise}]
    }))
    .into_response()
}

async fn core_v1_resources() -> Response {
    // kubectl refuses an empty list for v1; Events is the one core resource the front serves.
    axum::Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "v1",
        "resources": [{
            "name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
            "verbs": ["get", "list"], "shortNames": ["ev"]
        }]
    }))
    .into_response()
}

async fn api_groups(State(front): State<Front>) -> Response {
    match Api::<CustomResourceDefinition>::all(front.client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(crds) => axum::Json(group_list(&crds.items)).into_response(),
        Err(e) => error_status(
            StatusCode::BAD_GATEWAY,
            &format!("listing CRDs for discovery: {e}"),
        ),
    }
}

/// Builds the `/apis` APIGroupList from the served versions of the installed CRDs, plus the
/// server's own apiextensions.k8s.io group.
pub fn group_list(crds: &[CustomResourceDefinition]) -> Value {
    let mut groups: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    groups.insert("apiextensions.k8s.io".into(), vec![("v1".into(), true)]);
    for crd in crds {
        let versions = groups.entry(crd.spec.group.clone()).or_default();
        for v in crd.spec.versions.iter().filter(|v| v.served) {
            if !versions.iter().any(|(name, _)| name == &v.name) {
                versions.push((v.name.clone(), v.storage));
            }
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .filter(|(_, versions)| !versions.is_empty())
        .map(|(group, versions)| {
            let preferred = versions
                .iter()
                .find(|(_, storage)| *storage)
                .unwrap_or(&versions[0])
                .0
                .clone();
            let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
            json!({
                "name": group,
                "versions": versions.iter().map(|(v, _)| gv(v)).collect::<Vec<_>>(),
                "preferredVersion": gv(&preferred),
            })
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

async fn core_events_in_namespace(
    State(front): State<Front>,
    Path(ns): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    core_events(front, Some(ns), q, wants_table(&headers)).await
}

async fn core_events_everywhere(
    State(front): State<Front>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    core_events(front, None, q, wants_table(&headers)).await
}

/// kubectl get asks for server-side printing (`as=Table`) and falls back to a list otherwise.
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

/// The core Events as the server-side table kubectl prints: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE.
pub fn event_table(items: &[Value]) -> Value {
    let column =
        |name: &str| json!({"name": name, "type": "string", "format": "", "description": "", "priority": 0});
    let now = chrono::Utc::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|e| {
            let last = e["lastTimestamp"].as_str().or_else(|| e["eventTime"].as_str()).unwrap_or("");
            let age = chrono::DateTime::parse_from_rfc3339(last)
                .map(|t| human_age(now.signed_duration_since(t.with_timezone(&chrono::Utc))))
                .unwrap_or_else(|_| "<unknown>".into());
            let object = format!(
                "{}/{}",
                e["involvedObject"]["kind"].as_str().unwrap_or("").to_lowercase(),
                e["involvedObject"]["name"].as_str().unwrap_or("")
            );
            json!({
                "cells": [age, e["type"], e["reason"], object, e["message"]],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": e["metadata"]}
            })
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
        "columnDefinitions": (["Last Seen", "Type", "Reason", "Object", "Message"].map(column)),
        "rows": rows
    })
}

fn human_age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

async fn core_events(
    front: Front,
    ns: Option<String>,
    query: BTreeMap<String, String>,
    table: bool,
) -> Response {
    let api: Api<Event> = match &ns {
        Some(ns) => Api::namespaced(front.client.clone(), ns),
        None => Api::all(front.client.clone()),
    };
    let events = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        // No events CRD yet, or nothing there: an empty list, as a cluster would answer.
        Err(kube::Error::Api(e)) if e.code == 404 => Vec::new(),
        Err(e) => return error_status(StatusCode::BAD_GATEWAY, &format!("listing events: {e}")),
    };
    let selector = parse_field_selector(query.get("fieldSelector").map(String::as_str).unwrap_or(""));
    let items: Vec<Value> = events
        .iter()
        .map(core_event)
        .filter(|e| {
            selector
                .iter()
                .all(|(path, want)| field(e, path) == Some(want.as_str()))
        })
        .collect();
    if table {
        return axum::Json(event_table(&items)).into_response();
    }
    axum::Json(json!({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items}))
        .into_response()
}

/// `a=b,c=d` (also `==`) into pairs. `!=` terms are not used by kubectl describe and are ignored.
fn parse_field_selector(selector: &str) -> Vec<(String, String)> {
    selector
        .split(',')
        .filter(|t| !t.is_empty() && !t.contains("!="))
        .filter_map(|t| {
            let (k, v) = t.split_once("==").or_else(|| t.split_once('='))?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn field<'a>(v: &'a Value, dotted: &str) -> Option<&'a str> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))?.as_str()
}

/// An events.k8s.io/v1 Event in core/v1 form, as kubectl describe reads it.
pub fn core_event(e: &Event) -> Value {
    let first = e
        .deprecated_first_timestamp
        .as_ref()
        .map(|t| json!(t))
        .or_else(|| e.event_time.as_ref().map(|t| json!(t)));
    let last = e
        .deprecated_last_timestamp
        .as_ref()
        .map(|t| json!(t))
        .or_else(|| e.series.as_ref().map(|s| json!(s.last_observed_time)))
        .or_else(|| first.clone());
    let count = e
        .series
        .as_ref()
        .map(|s| s.count)
        .or(e.deprecated_count)
        .unwrap_or(1);
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": e.metadata,
        "involvedObject": e.regarding,
        "reason": e.reason,
        "message": e.note,
        "type": e.type_,
        "count": count,
        "firstTimestamp": first,
        "lastTimestamp": last,
        "eventTime": e.event_time,
        "action": e.action,
        "reportingComponent": e.reporting_controller,
        "reportingInstance": e.reporting_instance,
        "source": {"component": e.reporting_controller},
    })
}

fn error_status(code: StatusCode, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "code": code.as_u16()
    });
    (code, axum::Json(body)).into_response()
}

/// Hop-by-hop headers are the front's own business on each side.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "upgrade" | "te" | "trailer" | "proxy-connection"
    ) || name == header::HOST
}

async fn pass_through(State(front): State<Front>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let strategic = parts.method == http::Method::PATCH
        && parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/strategic-merge-patch+json"));
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return error_status(StatusCode::PAYLOAD_TOO_LARGE, &format!("request body: {e}"));
        }
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if strategic {
        return strategic_patch(&front, path, &body).await;
    }
    let mut upstream = http::Request::builder().method(parts.method.clone()).uri(path);
    for (name, value) in parts.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        upstream = upstream.header(name, value);
    }
    let upstream = match upstream.body(kube::client::Body::from(body.to_vec())) {
        Ok(r) => r,
        Err(e) => return error_status(StatusCode::BAD_REQUEST, &format!("request: {e}")),
    };
    match front.client.send(upstream).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let mut headers = HeaderMap::new();
            for (name, value) in parts.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
                headers.append(name.clone(), value.clone());
            }
            let mut out = Response::new(Body::new(body));
            *out.status_mut() = parts.status;
            *out.headers_mut() = headers;
            out
        }
        Err(e) => error_status(StatusCode::BAD_GATEWAY, &format!("API server: {e}")),
    }
}

async fn send_raw(
    front: &Front,
    req: http::Request<Vec<u8>>,
) -> Result<(StatusCode, HeaderMap, bytes::Bytes), Response> {
    let (parts, body) = req.into_parts();
    let req = http::Request::from_parts(parts, kube::client::Body::from(body));
    let resp = front
        .client
        .send(req)
        .await
        .map_err(|e| error_status(StatusCode::BAD_GATEWAY, &format!("API server: {e}")))?;
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(Body::new(body), MAX_BODY)
        .await
        .map_err(|e| error_status(StatusCode::BAD_GATEWAY, &format!("API server body: {e}")))?;
    Ok((parts.status, parts.headers, bytes))
}

fn raw_response(status: StatusCode, headers: HeaderMap, body: bytes::Bytes) -> Response {
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    out
}

/// Applies a strategic merge patch for the server (see [`crate::smp`]): read, patch, update with
/// the read resourceVersion, and start over on a conflict.
async fn strategic_patch(front: &Front, path_and_query: &str, body: &[u8]) -> Response {
    let patch: Value = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => return error_status(StatusCode::BAD_REQUEST, &format!("strategic merge patch: {e}")),
    };
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    // Only what an update understands is kept from the patch's query.
    let update_query: Vec<&str> = query
        .split('&')
        .filter(|q| {
            q.starts_with("fieldManager=") || q.starts_with("dryRun=") || q.starts_with("fieldValidation=")
        })
        .collect();
    let put_uri = if update_query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", update_query.join("&"))
    };
    for _ in 0..5 {
        let get = http::Request::get(path)
            .body(Vec::new())
            .expect("a GET request builds");
        let (status, headers, current) = match send_raw(front, get).await {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        if !status.is_success() {
            return raw_response(status, headers, current);
        }
        let mut object: Value = match serde_json::from_slice(&current) {
            Ok(v) => v,
            Err(e) => return error_status(StatusCode::BAD_GATEWAY, &format!("API server sent no JSON: {e}")),
        };
        crate::smp::apply(&mut object, &patch);
        let put = http::Request::put(&put_uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&object).expect("JSON serializes"))
            .expect("a PUT request builds");
        let (status, headers, body) = match send_raw(front, put).await {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        if status != StatusCode::CONFLICT {
            return raw_response(status, headers, body);
        }
    }
    error_status(
        StatusCode::CONFLICT,
        "the object kept changing while the front applied a strategic merge patch",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion;

    fn crd(group: &str, versions: &[(&str, bool, bool)]) -> CustomResourceDefinition {
        let mut c = CustomResourceDefinition::default();
        c.spec.group = group.into();
        c.spec.versions = versions
            .iter()
            .map(|(name, served, storage)| CustomResourceDefinitionVersion {
                name: name.to_string(),
                served: *served,
                storage: *storage,
                ..Default::default()
            })
            .collect();
        c
    }

    #[test]
    fn group_list_merges_crds_of_one_group_and_prefers_the_storage_version() {
        let list = group_list(&[
            crd("troupe.dev", &[("v1alpha1", true, true)]),
            crd("troupe.dev", &[("v1alpha1", true, true)]),
            crd("apps", &[("v1", true, true), ("v2", false, false)]),
        ]);
        let groups = list["groups"].as_array().unwrap();
        let names: Vec<_> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["apiextensions.k8s.io", "apps", "troupe.dev"]);
        let apps = &groups[1];
        assert_eq!(
            apps["versions"].as_array().unwrap().len(),
            1,
            "unserved versions are not listed"
        );
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        assert_eq!(groups[2]["versions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn field_selectors_as_kubectl_describe_sends_them_are_understood() {
        let sel = parse_field_selector("involvedObject.name=a,involvedObject.namespace==ns,type!=Normal");
        assert_eq!(
            sel,
            vec![
                ("involvedObject.name".to_string(), "a".to_string()),
                ("involvedObject.namespace".to_string(), "ns".to_string())
            ]
        );
    }

    #[test]
    fn an_events_v1_event_reads_as_a_core_event() {
        let e: Event = serde_json::from_value(json!({
            "metadata": {"name": "x.1", "namespace": "ns"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "regarding": {"kind": "Actor", "name": "a", "namespace": "ns", "uid": "u"},
            "reason": "Placed", "note": "placed on w-1", "type": "Normal",
            "reportingController": "troupe.dev/operator", "reportingInstance": "op-1", "action": "Place"
        }))
        .unwrap();
        let core = core_event(&e);
        assert_eq!(field(&core, "involvedObject.name"), Some("a"));
        assert_eq!(core["message"], "placed on w-1");
        assert_eq!(core["count"], 1);
        assert_eq!(core["firstTimestamp"], core["lastTimestamp"]);
        assert_eq!(core["source"]["component"], "troupe.dev/operator");
        let table = event_table(&[core]);
        assert_eq!(table["rows"][0]["cells"][2], "Placed");
        assert_eq!(table["rows"][0]["cells"][3], "actor/a");
    }

    #[test]
    fn only_a_table_first_accept_header_gets_a_table() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert!(wants_table(&h));
        h.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(!wants_table(&h));
    }
}
