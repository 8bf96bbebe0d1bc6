//! Service-account tokens and RBAC on the local control plane's API server (e2e/coreapi:
//! satoken.go, tokenrequest.go, authn.go, auth.go, rbacrules.go): TokenRequest answers a signed
//! token with kube's claims, the server authenticates it as kube-apiserver does, and every user
//! but system:masters is judged by RBAC from the stored Roles and bindings. The requests go
//! straight to the API server (the front would add the admin certificate), with kube's client
//! trusting the cluster CA.

mod common;

use std::{path::PathBuf, time::Duration};

use base64::Engine;
use common::{TestEnv, cluster_setting, eventually};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::{Value, json};

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn cluster_dir() -> PathBuf {
    PathBuf::from(std::env::var("TROUPE_CLUSTER_DIR").expect("TROUPE_CLUSTER_DIR (make e2e sets it)"))
}

fn api_url() -> String {
    format!("https://127.0.0.1:{}", cluster_setting("TROUPE_APISERVER_PORT"))
}

async fn client_from(kubeconfig: Kubeconfig) -> Client {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    Client::try_from(config).expect("client")
}

/// A client that presents `token` (None: no credentials at all) and trusts the cluster's CA.
async fn token_client(token: Option<&str>) -> Client {
    let user = match token {
        Some(t) => format!("{{token: {}}}", serde_json::to_string(t).unwrap()),
        None => "{}".to_string(),
    };
    let ca = cluster_dir().join("certs/ca.crt");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters: [{{name: c, cluster: {{server: '{}', certificate-authority: '{}'}}}}]\n\
         users: [{{name: u, user: {user}}}]\n\
         contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\n",
        api_url(),
        ca.display()
    );
    client_from(Kubeconfig::from_yaml(&yaml).expect("kubeconfig")).await
}

/// The admin's client certificate (O=system:masters), straight to the API server.
async fn admin_client() -> Client {
    let path = cluster_dir().join("admin.kubeconfig");
    client_from(Kubeconfig::read_from(&path).expect("admin kubeconfig")).await
}

/// One request; answers the status code and the body (JSON, or the text as a JSON string).
async fn call(client: &Client, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Accept", "application/json");
    if body.is_some() {
        req = req.header("Content-Type", "application/json");
    }
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
    let res = client
        .send(req.body(bytes).unwrap().map(kube::client::Body::from))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status().as_u16();
    let bytes = res.into_body().collect_bytes().await.expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn get(client: &Client, path: &str) -> u16 {
    call(client, "GET", path, None).await.0
}

/// POSTs a TokenRequest for ServiceAccount `sa` as the admin; answers the status and the body.
async fn token_request(env: &TestEnv, sa: &str, spec: Value) -> (u16, Value) {
    let path = format!("/api/v1/namespaces/{}/serviceaccounts/{sa}/token", env.namespace);
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    call(&admin_client().await, "POST", &path, Some(body)).await
}

/// A token for `sa`, bound to a Pod as the node agent asks for one.
async fn token_for(env: &TestEnv, sa: &str) -> String {
    let spec = json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "0f0e4c5e-0000-4000-8000-000000000001"}});
    let (status, body) = token_request(env, sa, spec).await;
    assert_eq!(status, 201, "TokenRequest: {body}");
    body["status"]["token"]
        .as_str()
        .expect("status.token")
        .to_string()
}

/// A namespace with a ServiceAccount `robot` in it; answers the namespace's name.
fn namespace_with_robot(env: &TestEnv) -> &str {
    let ns = env.namespace.as_str();
    env.kubectl_ok(&["create", "namespace", ns]);
    env.kubectl_ok(&["create", "serviceaccount", "robot"]);
    ns
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

fn forbidden_message(ns: &str, verb: &str, resource: &str, group: &str) -> String {
    format!(
        "{resource} is forbidden: User \"system:serviceaccount:{ns}:robot\" cannot {verb} resource \"{resource}\" in API group \"{group}\" in the namespace \"{ns}\""
    )
}

/// Waits until `path` answers `want` to `client` (RBAC reads the objects through informers: a
/// new binding takes effect a moment after it is stored).
async fn eventually_status(client: &Client, path: &str, want: u16) {
    eventually(
        &format!("GET {path} answering {want}"),
        Duration::from_secs(15),
        || async { (get(client, path).await == want).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_token_request_answers_a_signed_pod_bound_token_with_kubes_claims_and_user() {
    let env = TestEnv::new("sa-token-claims").await;
    let ns = namespace_with_robot(&env);
    let sa_uid = env.kubectl_json(&["get", "serviceaccount", "robot"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let pod_uid = "0f0e4c5e-0000-4000-8000-0000000000aa";
    let spec = json!({"expirationSeconds": 3600, "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "worker-0", "uid": pod_uid}});
    let (status, tr) = token_request(&env, "robot", spec).await;
    assert_eq!(status, 201, "{tr}");
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(
        tr["spec"]["audiences"],
        json!([ISSUER]),
        "defaulted to the issuer"
    );
    let token = tr["status"]["token"].as_str().unwrap();

    let header = jwt_part(token, 0);
    assert_eq!(header["alg"], "RS256", "{header}");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()), "{header}");
    let claims = jwt_part(token, 1);
    assert_eq!(claims["iss"], ISSUER, "{claims}");
    assert_eq!(claims["sub"], format!("system:serviceaccount:{ns}:robot"));
    assert_eq!(claims["aud"], json!([ISSUER]));
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 3600, "{claims}");
    assert_eq!(claims["nbf"], claims["iat"]);
    let jti = claims["jti"].as_str().expect("jti").to_string();
    assert_eq!(
        claims["kubernetes.io"],
        json!({"namespace": ns, "serviceaccount": {"name": "robot", "uid": sa_uid}, "pod": {"name": "worker-0", "uid": pod_uid}})
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(tr["status"]["expirationTimestamp"].as_str().unwrap()).unwrap();
    assert_eq!(expires.timestamp(), exp);

    // Who the server says the token's bearer is (kubectl auth whoami), as kube-apiserver would.
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let client = token_client(Some(token)).await;
    let (status, me) = call(
        &client,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(review),
    )
    .await;
    assert_eq!(status, 201, "{me}");
    assert_eq!(
        me["status"]["userInfo"],
        json!({
            "username": format!("system:serviceaccount:{ns}:robot"),
            "uid": sa_uid,
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
            "extra": {
                "authentication.kubernetes.io/pod-name": ["worker-0"],
                "authentication.kubernetes.io/pod-uid": [pod_uid],
                "authentication.kubernetes.io/credential-id": [format!("JTI={jti}")],
            }
        })
    );
}

#[tokio::test]
async fn token_requests_are_refused_or_capped_as_kube_apiserver_does() {
    let env = TestEnv::new("sa-token-requests").await;
    namespace_with_robot(&env);
    let (status, body) = token_request(&env, "nobody", json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], "serviceaccounts \"nobody\" not found");
    // kube-apiserver's validation: an Invalid error (422), its words.
    let (status, body) = token_request(&env, "robot", json!({"expirationSeconds": 599})).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(
            "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
        ),
        "{body}"
    );
    let (status, body) = token_request(&env, "robot", json!({"expirationSeconds": 600})).await;
    assert_eq!(status, 201, "600 s is the minimum: {body}");
    // Defaults to an hour; capped at --service-account-max-token-expiration (48 h).
    let (_, body) = token_request(&env, "robot", json!({})).await;
    assert_eq!(body["spec"]["expirationSeconds"], 3600, "{body}");
    let (_, body) = token_request(&env, "robot", json!({"expirationSeconds": 30 * 24 * 3600})).await;
    assert_eq!(body["spec"]["expirationSeconds"], 48 * 3600, "{body}");
    let claims = jwt_part(body["status"]["token"].as_str().unwrap(), 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        48 * 3600
    );
    let secret = json!({"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s", "uid": "1"}});
    let (status, body) = token_request(&env, "robot", secret).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "cannot bind token to object of type /v1, Kind=Secret"
    );
    let no_uid = json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}});
    let (status, body) = token_request(&env, "robot", no_uid).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_service_account_without_bindings_may_discover_but_is_forbidden_with_kubes_message() {
    let env = TestEnv::new("sa-unbound").await;
    let ns = namespace_with_robot(&env);
    let client = token_client(Some(&token_for(&env, "robot").await)).await;
    let (status, body) = call(
        &client,
        "GET",
        &format!("/api/v1/namespaces/{ns}/configmaps"),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(body["message"], forbidden_message(ns, "list", "configmaps", ""));
    let (status, body) = call(&client, "GET", "/api/v1/namespaces", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        format!(
            "namespaces is forbidden: User \"system:serviceaccount:{ns}:robot\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        )
    );
    // What kube's bootstrap policy gives every authenticated user (system:discovery).
    for path in [
        "/version",
        "/api",
        "/api/v1",
        "/apis",
        "/apis/troupe.dev/v1alpha1",
        "/healthz",
        "/openapi/v3",
    ] {
        let (status, body) = call(&client, "GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
    }
    assert_eq!(
        call(&client, "GET", "/version", None).await.1["gitVersion"],
        "v1.36.4"
    );
    // But not other paths, nor writes to discovery paths.
    assert_eq!(get(&client, "/metrics").await, 403);
    assert_eq!(call(&client, "POST", "/apis", Some(json!({}))).await.0, 403);
}

#[tokio::test]
async fn a_role_binding_grants_its_role_in_its_namespace_only() {
    let env = TestEnv::new("sa-role-binding").await;
    let ns = namespace_with_robot(&env);
    let client = token_client(Some(&token_for(&env, "robot").await)).await;
    let list = format!("/api/v1/namespaces/{ns}/configmaps");
    assert_eq!(get(&client, &list).await, 403);
    env.kubectl_ok(&[
        "create",
        "role",
        "cm-reader",
        "--verb=get,list,watch",
        "--resource=configmaps",
    ]);
    // The subject's namespace defaults to the binding's.
    let (ok, out) = env.apply(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: cm-reader}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}\n\
         subjects: [{kind: ServiceAccount, name: robot}]\n",
    );
    assert!(ok, "{out}");
    eventually_status(&client, &list, 200).await;
    // Only what the Role says, only in its namespace.
    assert_eq!(
        call(&client, "POST", &list, Some(json!({"metadata": {"name": "x"}})))
            .await
            .0,
        403
    );
    assert_eq!(
        get(&client, &format!("/api/v1/namespaces/{ns}/secrets")).await,
        403
    );
    assert_eq!(get(&client, "/api/v1/namespaces/default/configmaps").await, 403);
    assert_eq!(get(&client, "/api/v1/configmaps").await, 403, "cluster-wide list");
    // A binding to a Role that does not exist grants nothing, and says why.
    env.kubectl_ok(&[
        "create",
        "rolebinding",
        "dangling",
        "--role=missing",
        &format!("--serviceaccount={ns}:robot"),
    ]);
    let secrets = format!("/api/v1/namespaces/{ns}/secrets");
    eventually(
        "the dangling binding named in the denial",
        Duration::from_secs(15),
        || async {
            let (_, body) = call(&client, "GET", &secrets, None).await;
            let message = body["message"].as_str().unwrap_or_default().to_string();
            message
                .ends_with(": RBAC: role.rbac.authorization.k8s.io \"missing\" not found")
                .then_some(())
        },
    )
    .await;
    // Unbound again: forbidden again.
    env.kubectl_ok(&["delete", "rolebinding", "cm-reader"]);
    eventually_status(&client, &list, 403).await;
}

#[tokio::test]
async fn a_cluster_role_binding_grants_cluster_wide_and_a_role_binding_to_a_cluster_role_in_one_namespace() {
    let env = TestEnv::new("sa-cluster-role").await;
    let ns = namespace_with_robot(&env);
    let client = token_client(Some(&token_for(&env, "robot").await)).await;
    let (services, events) = (format!("{ns}-services"), format!("{ns}-events"));
    env.kubectl_ok(&[
        "create",
        "clusterrole",
        &services,
        "--verb=list",
        "--resource=services",
    ]);
    env.kubectl_ok(&[
        "create",
        "clusterrole",
        &events,
        "--verb=list",
        "--resource=events.events.k8s.io",
    ]);
    env.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        &services,
        &format!("--clusterrole={services}"),
        &format!("--serviceaccount={ns}:robot"),
    ]);
    env.kubectl_ok(&[
        "create",
        "rolebinding",
        "events",
        &format!("--clusterrole={events}"),
        &format!("--serviceaccount={ns}:robot"),
    ]);
    eventually_status(&client, "/api/v1/services", 200).await;
    assert_eq!(get(&client, "/api/v1/namespaces/kube-system/services").await, 200);
    assert_eq!(
        get(&client, &format!("/api/v1/namespaces/{ns}/services")).await,
        200
    );
    eventually_status(
        &client,
        &format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"),
        200,
    )
    .await;
    assert_eq!(
        get(&client, "/apis/events.k8s.io/v1/namespaces/default/events").await,
        403
    );
    assert_eq!(get(&client, "/apis/events.k8s.io/v1/events").await, 403);
    // The group matters: core Events are another resource.
    assert_eq!(
        get(&client, &format!("/api/v1/namespaces/{ns}/events")).await,
        403
    );
    // A group subject: every ServiceAccount of the namespace.
    let group = format!("{ns}-group");
    env.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        &group,
        &format!("--clusterrole={events}"),
        &format!("--group=system:serviceaccounts:{ns}"),
    ]);
    eventually_status(&client, "/apis/events.k8s.io/v1/events", 200).await;
    env.kubectl_ok(&["delete", "clusterrolebinding", &services, &group]);
    env.kubectl_ok(&["delete", "clusterrole", &services, &events]);
    eventually_status(&client, "/api/v1/services", 403).await;
}

#[tokio::test]
async fn resource_names_and_subresources_are_matched_exactly() {
    let env = TestEnv::new("sa-rules").await;
    let ns = namespace_with_robot(&env);
    let client = token_client(Some(&token_for(&env, "robot").await)).await;
    env.kubectl_ok(&["create", "configmap", "allowed"]);
    env.kubectl_ok(&["create", "configmap", "other"]);
    env.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let (ok, out) = env.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: rules}}\nrules:\n\
         - {{apiGroups: [''], resources: [configmaps], resourceNames: [allowed], verbs: [get]}}\n\
         - {{apiGroups: [''], resources: [services/status], verbs: [get]}}\n\
         - {{apiGroups: [troupe.dev], resources: [actors/status], verbs: [get]}}\n\
         - {{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [list]}}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: rules}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: rules}}\n\
         subjects: [{{kind: ServiceAccount, name: robot, namespace: {ns}}}]\n"
    ));
    assert!(ok, "{out}");
    let base = format!("/api/v1/namespaces/{ns}");
    eventually_status(&client, &format!("{base}/configmaps/allowed"), 200).await;
    assert_eq!(get(&client, &format!("{base}/configmaps/other")).await, 403);
    // resourceNames never cover a list: it has no name.
    assert_eq!(get(&client, &format!("{base}/configmaps")).await, 403);
    assert_eq!(get(&client, &format!("{base}/services/web/status")).await, 200);
    assert_eq!(
        get(&client, &format!("{base}/services/web")).await,
        403,
        "services/status does not grant services"
    );
    // Custom resources (served by the delegate) are judged the same way: a missing Actor's
    // status is a 404 (allowed, then not found), the Actor itself is forbidden.
    let actors = format!("/apis/troupe.dev/v1alpha1/namespaces/{ns}/actors");
    let (status, body) = call(&client, "GET", &format!("{actors}/nothing/status"), None).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(&client, "GET", &format!("{actors}/nothing"), None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        format!(
            "actors.troupe.dev \"nothing\" is forbidden: User \"system:serviceaccount:{ns}:robot\" cannot get resource \"actors\" in API group \"troupe.dev\" in the namespace \"{ns}\""
        )
    );
    assert_eq!(
        get(
            &client,
            &format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases")
        )
        .await,
        200
    );
    assert_eq!(
        get(
            &client,
            &format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/x")
        )
        .await,
        403,
        "list, not get"
    );
    // "*/status" matches any resource's status, and only that.
    env.kubectl_ok(&[
        "create",
        "role",
        "any-status",
        "--verb=get",
        "--resource=*/status",
    ]);
    env.kubectl_ok(&[
        "create",
        "rolebinding",
        "any-status",
        "--role=any-status",
        &format!("--serviceaccount={ns}:robot"),
    ]);
    eventually_status(&client, &format!("/api/v1/namespaces/{ns}/status"), 200).await;
    assert_eq!(get(&client, &format!("/api/v1/namespaces/{ns}")).await, 403);
}

#[tokio::test]
async fn a_tampered_foreign_or_garbage_token_is_unauthorized() {
    let env = TestEnv::new("sa-tampered").await;
    let ns = namespace_with_robot(&env);
    let token = token_for(&env, "robot").await;
    let path = "/version";
    assert_eq!(
        get(&token_client(Some(&token)).await, path).await,
        200,
        "the token as issued"
    );
    let parts: Vec<&str> = token.split('.').collect();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // Another subject in the payload, the signature kept.
    let mut claims = jwt_part(&token, 1);
    claims["sub"] = json!(format!("system:serviceaccount:{ns}:admin"));
    let payload = engine.encode(serde_json::to_vec(&claims).unwrap());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    // A signature of the right length that is not the one.
    let mut signature = engine.decode(parts[2]).unwrap();
    signature[10] ^= 0x55;
    let bad_signature = format!("{}.{}.{}", parts[0], parts[1], engine.encode(signature));
    // Signed right, for another audience only.
    let (_, tr) = token_request(&env, "robot", json!({"audiences": ["vault"]})).await;
    let other_audience = tr["status"]["token"].as_str().unwrap().to_string();
    for (what, bad) in [
        ("payload tampered", forged.as_str()),
        ("signature tampered", bad_signature.as_str()),
        ("another audience", other_audience.as_str()),
        ("not a JWT", "garbage"),
    ] {
        let (status, body) = call(&token_client(Some(bad)).await, "GET", path, None).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["reason"], "Unauthorized", "{what}: {body}");
    }
    // No credentials at all: anonymous, allowed the health checks only (as before RBAC).
    let anonymous = token_client(None).await;
    assert_eq!(get(&anonymous, "/healthz").await, 200);
    let (status, body) = call(&anonymous, "GET", "/api/v1/namespaces", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("User \"system:anonymous\""),
        "{body}"
    );
}

#[tokio::test]
async fn deleting_the_service_account_revokes_its_tokens() {
    let env = TestEnv::new("sa-revoked").await;
    namespace_with_robot(&env);
    let client = token_client(Some(&token_for(&env, "robot").await)).await;
    assert_eq!(get(&client, "/apis").await, 200);
    env.kubectl_ok(&["delete", "serviceaccount", "robot"]);
    eventually_status(&client, "/apis", 401).await;
    // A new ServiceAccount of the same name is another one (uid): the old token stays refused.
    env.kubectl_ok(&["create", "serviceaccount", "robot"]);
    let fresh = token_client(Some(&token_for(&env, "robot").await)).await;
    assert_eq!(get(&fresh, "/apis").await, 200);
    assert_eq!(get(&client, "/apis").await, 401);
}

#[tokio::test]
async fn the_admin_certificate_still_does_everything() {
    let env = TestEnv::new("sa-admin").await;
    let ns = namespace_with_robot(&env);
    let admin = admin_client().await;
    for path in [
        "/api/v1/namespaces",
        "/api/v1/secrets",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "/apis/troupe.dev/v1alpha1/actors",
        "/metrics",
        "/version",
    ] {
        let (status, body) = call(&admin, "GET", path, None).await;
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            body.to_string().chars().take(300).collect::<String>()
        );
    }
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "by-admin"}, "data": {"a": "b"}});
    let (status, body) = call(
        &admin,
        "POST",
        &format!("/api/v1/namespaces/{ns}/configmaps"),
        Some(cm),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = call(
        &admin,
        "DELETE",
        &format!("/api/v1/namespaces/{ns}/configmaps/by-admin"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // Who the admin is: system:masters, from the certificate.
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let (status, me) = call(
        &admin,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(review),
    )
    .await;
    assert_eq!(status, 201, "{me}");
    assert_eq!(me["status"]["userInfo"]["username"], "troupe-admin");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
}
