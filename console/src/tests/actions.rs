//! The actions through the router, against a stand-in API server behind a real `kube::Client`
//! that records every request: a POST without the form's token, from another origin, or not
//! confirmed is refused before any API call; a confirmed one writes exactly what `kubectl
//! troupe` writes; a refusal of the user's RBAC is shown in the API server's words.

use std::sync::{Arc, Mutex};

use axum::{
    body::Body,
    http::{Request, Response, StatusCode},
};
use http_body_util::BodyExt;
use tower::ServiceExt;
use troupe_client::messages::{Messenger, Route};

use crate::{
    access::Access,
    csrf::Csrf,
    live::Hub,
    results::Results,
    server::{App, router},
    watch::Stores,
};

const TOKEN: &str = "test-csrf-token";
pub(super) const HOST: &str = "127.0.0.1:8080";

/// What the stand-in API server was asked: `METHOD path` and the body.
pub(super) type Calls = Arc<Mutex<Vec<(String, String)>>>;

/// A console whose API server answers every request with `status` and `body`.
fn console(status: u16, body: &'static str) -> (axum::Router, Calls) {
    console_with(status, body, Access::Local, Csrf::fixed(TOKEN))
}

/// The same, served as `access` says, with `csrf`.
pub(super) fn console_with(
    status: u16,
    body: &'static str,
    access: Access,
    csrf: Csrf,
) -> (axum::Router, Calls) {
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let api = tower::service_fn(move |req: Request<kube::client::Body>| {
        let seen = seen.clone();
        async move {
            let line = format!("{} {}", req.method(), req.uri().path());
            let bytes = req.into_body().collect().await?.to_bytes();
            seen.lock()
                .unwrap()
                .push((line, String::from_utf8_lossy(&bytes).into_owned()));
            Ok::<_, tower::BoxError>(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(axum::body::Bytes::from_static(
                        body.as_bytes(),
                    )))
                    .unwrap(),
            )
        }
    });
    let client = kube::Client::new(api, "default");
    let app = test_app(Stores::detached(), client, access, csrf);
    (router(app), calls)
}

/// The console's state for a test: `stores`, the API server behind `client`, served as
/// `access` says with `csrf`.
pub(super) fn test_app(stores: Stores, client: kube::Client, access: Access, csrf: Csrf) -> Arc<App> {
    Arc::new(App {
        stores,
        hub: Hub::start(),
        namespace: None,
        any_host: access.in_cluster(),
        messenger: Messenger::new(client.clone(), Route::Lease),
        client,
        csrf,
        results: Results::new(access.key("troupe-console results")),
        instance: "test".into(),
        regions: Default::default(),
        mailboxes: Default::default(),
        access,
    })
}

pub(super) fn post(path: &str, origin: Option<&str>, form: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri(path)
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(Body::from(form.to_string())).unwrap()
}

pub(super) async fn send(router: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub(super) const OWN: Option<&str> = Some("http://127.0.0.1:8080");
pub(super) const POOL: &str = r#"{"apiVersion":"troupe.dev/v1alpha1","kind":"ActorPool","metadata":{"name":"p","namespace":"t"},"spec":{"template":{"spec":{"containers":[{"name":"worker","image":"troupe/worker:0.1.0"}]}}}}"#;

#[tokio::test]
async fn a_post_without_the_forms_token_is_refused_and_the_api_is_never_called() {
    let (router, calls) = console(200, POOL);
    for form in [
        "confirm=yes",
        "confirm=yes&csrf=",
        "confirm=yes&csrf=guessed",
        "%%%",
    ] {
        let (status, body) = send(&router, post("/namespaces/t/pools/p/promote", OWN, form)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form}");
        assert!(body.contains("token is missing or wrong"), "{body}");
        assert!(body.contains("Nothing was done"));
    }
    assert!(calls.lock().unwrap().is_empty(), "no API call");
}

#[tokio::test]
async fn a_post_from_another_origin_or_without_one_is_refused_even_with_the_right_token() {
    let (router, calls) = console(200, POOL);
    let form = format!("confirm=yes&csrf={TOKEN}");
    for origin in [
        Some("http://evil.example"),
        Some("null"),
        Some("http://127.0.0.1:9999"),
        None,
    ] {
        let (status, body) = send(&router, post("/namespaces/t/pools/p/abort", origin, &form)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?}");
        assert!(body.contains("Refused"), "{body}");
    }
    // A browser's own word that the form came from another site.
    let mut req = post("/namespaces/t/pools/p/abort", OWN, &form);
    req.headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(send(&router, req).await.0, StatusCode::FORBIDDEN);
    assert!(calls.lock().unwrap().is_empty(), "no API call");
}

#[tokio::test]
async fn an_action_is_done_only_once_confirmed_on_its_confirmation_page() {
    let (router, calls) = console(200, POOL);
    // The confirmation page: a form that POSTs back with the token, the kubectl equivalents.
    let get = Request::builder()
        .uri("/namespaces/t/pools/p/promote")
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    let (status, page) = send(&router, get).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"<form id="confirm" method="post" action="/namespaces/t/pools/p/promote">"#),
        "{page}"
    );
    assert!(page.contains(&format!(r#"<input type="hidden" name="csrf" value="{TOKEN}">"#)));
    assert!(page.contains(r#"name="confirm" value="yes""#));
    assert!(page.contains("kubectl troupe promote p -n t"));
    assert!(page.contains("kubectl annotate actorpool p -n t --overwrite troupe.dev/promote=now"));
    assert!(!page.contains("<script>"), "no inline script");

    let (status, page) = send(
        &router,
        post("/namespaces/t/pools/p/promote", OWN, &format!("csrf={TOKEN}")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Not confirmed: nothing was done"), "{page}");
    assert!(
        calls.lock().unwrap().is_empty(),
        "nothing written before the confirmation"
    );
}

#[tokio::test]
async fn a_confirmed_promote_sets_the_annotation_kubectl_troupe_sets_and_says_so() {
    let (router, calls) = console(200, POOL);
    let form = format!("csrf={TOKEN}&confirm=yes");
    let resp = router
        .clone()
        .oneshot(post("/namespaces/t/pools/p/promote", OWN, &form))
        .await
        .unwrap();
    // Done: a redirect to the result page, so that reloading it never promotes twice.
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/results/"), "{location}");
    let get = |uri: &str| {
        Request::builder()
            .uri(uri)
            .header("host", HOST)
            .body(Body::empty())
            .unwrap()
    };
    let (status, page) = send(&router, get(&location)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Promote requested"), "{page}");
    assert!(page.contains(r#"href="/namespaces/t/pools/p""#), "a way back");
    let (status, _) = send(&router, get("/results/0123456789abcdef0123456789abcdef")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an id not given out claims nothing"
    );
    // Nor does one altered: another pool's name under this link's MAC.
    let (payload, mac) = location["/results/".len()..].split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let text = String::from_utf8(b64.decode(payload).unwrap()).unwrap();
    assert!(text.starts_with("pool\npromote\nt\np\n"), "{text}");
    let forged = b64.encode(text.replace("\np\n", "\nq\n"));
    let (status, _) = send(&router, get(&format!("/results/{forged}.{mac}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an altered link claims nothing");
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].0,
        "PATCH /apis/troupe.dev/v1alpha1/namespaces/t/actorpools/p"
    );
    let patch: serde_json::Value = serde_json::from_str(&calls[0].1).unwrap();
    assert!(
        patch["metadata"]["annotations"]["troupe.dev/promote"].is_string(),
        "{patch}"
    );
}

#[tokio::test]
async fn a_confirmed_pause_patches_the_actors_spec() {
    let actor = r#"{"apiVersion":"troupe.dev/v1alpha1","kind":"Actor","metadata":{"name":"a","namespace":"t"},"spec":{"pool":"p","behavior":"counter","paused":true}}"#;
    let (router, calls) = console(200, actor);
    let form = format!("csrf={TOKEN}&confirm=yes");
    let (status, page) = send(&router, post("/namespaces/t/actors/a/pause", OWN, &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let calls = calls.lock().unwrap();
    assert_eq!(
        calls[0].0,
        "PATCH /apis/troupe.dev/v1alpha1/namespaces/t/actors/a"
    );
    assert_eq!(calls[0].1, r#"{"spec":{"paused":true}}"#);
}

#[tokio::test]
async fn a_refusal_by_the_users_rbac_is_shown_in_the_api_servers_words_with_its_status() {
    let forbidden = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"actorpools.troupe.dev \"p\" is forbidden: User \"viewer\" cannot patch resource \"actorpools\" in API group \"troupe.dev\" in the namespace \"t\"","reason":"Forbidden","code":403}"#;
    let (router, _) = console(403, forbidden);
    let form = format!("csrf={TOKEN}&confirm=yes");
    let (status, page) = send(&router, post("/namespaces/t/pools/p/undo", OWN, &form)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Undo failed"), "{page}");
    assert!(
        page.contains("User &quot;viewer&quot; cannot patch resource &quot;actorpools&quot;"),
        "{page}"
    );
    assert!(page.contains("HTTP 403, Forbidden"));
}

#[tokio::test]
async fn an_unknown_action_is_not_found_and_a_get_never_acts() {
    let (router, calls) = console(200, POOL);
    let form = format!("csrf={TOKEN}&confirm=yes");
    let (status, _) = send(&router, post("/namespaces/t/pools/p/delete", OWN, &form)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let get = Request::builder()
        .uri("/namespaces/t/actors/a/trigger?csrf=x&confirm=yes")
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&router, get).await.0,
        StatusCode::OK,
        "only the confirmation page"
    );
    assert!(calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_message_form_refuses_a_missing_token_and_json_that_is_not_before_sending() {
    let (router, calls) = console(200, POOL);
    let (status, page) = send(
        &router,
        post("/namespaces/t/actors/a/message", OWN, "kind=ask&message=1"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Not sent: refused"), "{page}");

    let form = format!("csrf={TOKEN}&kind=ask&message=%7Badd%3A+1%7D%3Cb%3E");
    let (status, page) = send(&router, post("/namespaces/t/actors/a/message", OWN, &form)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Not sent: the message is not JSON"), "{page}");
    assert!(
        page.contains("{add: 1}&lt;b&gt;</textarea>"),
        "kept, escaped: {page}"
    );
    assert!(calls.lock().unwrap().is_empty(), "no API call");
}

#[tokio::test]
async fn a_form_body_over_the_limit_is_refused_readably() {
    let (router, calls) = console(200, POOL);
    let big = format!(
        "csrf={TOKEN}&kind=tell&message={}",
        "1".repeat(crate::forms::MAX_FORM_BODY)
    );
    let (status, page) = send(&router, post("/namespaces/t/actors/a/message", OWN, &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.contains("at most 64 KiB"), "{page}");
    assert!(calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_message_to_an_actor_that_does_not_exist_says_so_with_the_api_servers_words() {
    let missing = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"actors.troupe.dev \"a\" not found","reason":"NotFound","code":404}"#;
    let (router, calls) = console(404, missing);
    let form = format!("csrf={TOKEN}&kind=ask&message=%7B%22add%22%3A1%7D");
    let (status, page) = send(&router, post("/namespaces/t/actors/a/message", OWN, &form)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        page.contains("actors.troupe.dev &quot;a&quot; not found"),
        "{page}"
    );
    assert_eq!(
        calls.lock().unwrap()[0].0,
        "GET /apis/troupe.dev/v1alpha1/namespaces/t/actors/a"
    );
}
