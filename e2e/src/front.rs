//! The discovery front: a thin plain-HTTP server on loopback in front of the local API server.
//!
//! The API server (the core API in front of the apiextensions-apiserver, in one process) serves
//! `/api`, `/api/v1` and the groups in [NATIVE_GROUPS] itself, but its `/apis` lists only the groups of
//! the core server, not the CRDs'. The front answers `/apis` from both, applies strategic merge
//! patches for the CRDs (which the server refuses; kubectl sends them for Deployments), and passes
//! every other request through unchanged with the admin client certificate, streaming responses
//! (watches included) as they come.

use std::{collections::BTreeMap, net::SocketAddr};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, api::ListParams};
use serde_json::{Value, json};

/// Largest request body the front accepts (the API server's own limit is 3 MiB).
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Clone)]
struct Front {
    client: Client,
}

/// Serves the front on `listen`, forwarding with `client` (which carries the admin credentials).
pub async fn serve(listen: SocketAddr, client: Client) -> anyhow::Result<()> {
    let front = Front { client };
    let app = Router::new()
        .route("/apis", get(api_groups))
        .fallback(pass_through)
        .with_state(front);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "discovery front listening");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn api_groups(State(front): State<Front>) -> Response {
    let crds = match Api::<CustomResourceDefinition>::all(front.client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(crds) => crds.items,
        Err(e) => {
            return error_status(
                StatusCode::BAD_GATEWAY,
                &format!("listing CRDs for discovery: {e}"),
            );
        }
    };
    // The core server's own groups (events.k8s.io, rbac.authorization.k8s.io, policy).
    let own = match front.client.list_api_groups().await {
        Ok(list) => list.groups,
        Err(e) => {
            return error_status(
                StatusCode::BAD_GATEWAY,
                &format!("listing the server's groups: {e}"),
            );
        }
    };
    let mut list = group_list(&crds);
    if let Some(groups) = list["groups"].as_array_mut() {
        for g in own {
            if !groups.iter().any(|x| x["name"] == g.name.as_str()) {
                groups.push(serde_json::to_value(&g).expect("an APIGroup serializes"));
            }
        }
    }
    axum::Json(list).into_response()
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

fn error_status(code: StatusCode, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "code": code.as_u16()
    });
    (code, axum::Json(body)).into_response()
}

/// The groups the core API serves from Go types (e2e/coreapi): it applies their strategic merge
/// patches itself.
pub const NATIVE_GROUPS: &[&str] = &["events.k8s.io", "rbac.authorization.k8s.io", "policy"];

fn is_native(path: &str) -> bool {
    path.starts_with("/api/")
        || NATIVE_GROUPS.iter().any(|g| {
            path.strip_prefix("/apis/")
                .and_then(|p| p.strip_prefix(g))
                .is_some_and(|rest| rest.starts_with('/'))
        })
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
    // The core API applies strategic merge patches itself (it has the Go types' patch tags).
    let native = is_native(parts.uri.path());
    let strategic = parts.method == http::Method::PATCH
        && !native
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
    fn native_groups_are_the_core_apis_and_not_the_crds_with_a_longer_name() {
        assert!(is_native("/api/v1/namespaces/x/services/y"));
        assert!(is_native("/apis/policy/v1/namespaces/x/poddisruptionbudgets/y"));
        assert!(is_native("/apis/rbac.authorization.k8s.io/v1/clusterroles/y"));
        assert!(!is_native("/apis/policy.example.com/v1/things/y"));
        assert!(!is_native("/apis/apps/v1/namespaces/x/deployments/y"));
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
}
