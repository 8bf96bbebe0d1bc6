//! The API router driven in process (`tower::ServiceExt::oneshot`): statuses, tokens, bodies.

use axum::body::Body;
use tower::ServiceExt;

use super::*;
use crate::{builtin, host::HostConfig, metrics::Metrics};

async fn app(token: Option<&str>) -> (Router, Arc<Host>) {
    let (router, host, _) = app_in(token, true).await;
    (router, host)
}

/// The router of a worker that has `started` (or not), with its state (ready: as started).
async fn app_in(token: Option<&str>, started: bool) -> (Router, Arc<Host>, Arc<ApiState>) {
    let host = Host::start(HostConfig::default(), builtin::registry(), Metrics::new())
        .await
        .unwrap();
    let state = Arc::new(ApiState {
        host: host.clone(),
        token: token.map(str::to_string),
        forwarder: Arc::new(Forwarder::new(None, None, "me".into())),
        started: AtomicBool::new(started),
        ready: AtomicBool::new(started),
    });
    (router(state.clone()), host, state)
}

fn spec(behavior: &str, paused: bool) -> troupe_crds::ActorSpec {
    serde_json::from_value(json!({"pool": "p", "behavior": behavior, "paused": paused})).unwrap()
}

/// Sends `req` (with the bearer `token`, if any) and returns the status and the JSON answer.
async fn send(
    app: &Router,
    mut req: axum::http::request::Builder,
    token: Option<&str>,
    body: Body,
) -> (StatusCode, Value) {
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let code = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), MAX_BODY).await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn call(app: &Router, path: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let req = axum::http::Request::post(path).header("content-type", "application/json");
    send(app, req, token, Body::from(body.to_string())).await
}

#[tokio::test]
async fn messages_need_the_bearer_token() {
    let (app, host) = app(Some("s3cret")).await;
    host.upsert(ActorKey::new("ns", "e"), spec("echo", false), Some(1))
        .await;
    let path = "/v1/namespaces/ns/actors/e/ask";
    assert_eq!(call(&app, path, None, "1").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&app, path, Some("wrong"), "1").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, path, Some("s3cret"), "\"hi\"").await,
        (StatusCode::OK, json!("hi"))
    );
}

#[tokio::test]
async fn without_a_configured_token_the_message_api_is_off_but_health_answers() {
    let (app, _) = app(None).await;
    let (code, body) = call(&app, "/v1/namespaces/ns/actors/e/tell", Some("x"), "1").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().unwrap().contains("no token"));
    let resp = app
        .clone()
        .oneshot(axum::http::Request::get("/livez").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn errors_map_to_the_statuses_clients_expect() {
    let (app, host) = app(Some("t")).await;
    host.upsert(ActorKey::new("ns", "paused"), spec("echo", true), Some(1))
        .await;
    host.upsert(ActorKey::new("ns", "e"), spec("echo", false), Some(1))
        .await;
    let t = Some("t");
    let (code, body) = call(&app, "/v1/namespaces/ns/actors/e/tell", t, "{not json").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("must be JSON"));
    assert_eq!(
        call(&app, "/v1/namespaces/ns/actors/paused/tell", t, "1").await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(&app, "/v1/namespaces/ns/actors/nobody/tell", t, "1").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, "/v1/namespaces/ns/actors/e/tell", t, "1").await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        call(&app, "/v1/namespaces/ns/actors/e/ask?timeout=soon", t, "1")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn the_token_must_match_exactly() {
    let mut h = HeaderMap::new();
    assert!(!token_matches("abc", &h));
    h.insert(header::AUTHORIZATION, "Bearer abcd".parse().unwrap());
    assert!(!token_matches("abc", &h));
    h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
    assert!(token_matches("abc", &h));
    h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
    assert!(!token_matches("abc", &h));
}

async fn get(app: &Router, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    send(app, axum::http::Request::get(path), token, Body::empty()).await
}

#[tokio::test]
async fn a_moved_actors_state_is_handed_over_once_and_only_with_the_token() {
    let (app, host) = app(Some("s3cret")).await;
    let key = ActorKey::new("ns", "c");
    host.upsert(key.clone(), spec("counter", false), Some(1)).await;
    assert_eq!(
        call(&app, "/v1/namespaces/ns/actors/c/tell", Some("s3cret"), "3")
            .await
            .0,
        StatusCode::ACCEPTED
    );
    host.ask(&key, json!(0), Duration::from_secs(1)).await.unwrap();
    host.remove(&key, None).await;
    let path = "/v1/namespaces/ns/actors/c/handoff?epoch=0";
    assert_eq!(get(&app, path, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&app, "/v1/namespaces/ns/actors/c/handoff?epoch=1", Some("s3cret"))
            .await
            .0,
        StatusCode::NOT_FOUND,
        "another epoch's state is not this one"
    );
    assert_eq!(
        get(&app, path, Some("s3cret")).await,
        (StatusCode::OK, json!({"value": 3}))
    );
    let (code, body) = get(&app, path, Some("s3cret")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "handed over once");
    assert!(body["error"].as_str().unwrap().contains("for epoch 0"), "{body}");
}

#[tokio::test]
async fn the_journal_is_read_with_the_token_and_only_where_the_pool_keeps_a_store() {
    // Mode OnMove (the default): there is no store, so no journal.
    let (app, _) = app(Some("t")).await;
    let path = "/v1/namespaces/ns/actors/c/journal";
    assert_eq!(get(&app, path, None).await.0, StatusCode::UNAUTHORIZED);
    let (code, body) = get(&app, path, Some("t")).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(
        body["error"].as_str().unwrap().contains("keeps no state store"),
        "{body}"
    );

    // EveryMessage, with the store's rules in memory: a journaled counter's writes.
    let config = HostConfig {
        persistence: troupe_crds::PersistenceMode::EveryMessage,
        ..HostConfig::default()
    };
    let host = Host::start(config, builtin::registry(), Metrics::new())
        .await
        .unwrap();
    let store = Arc::new(crate::store::memory::MemoryStore::default());
    host.set_store(store.clone());
    let state = Arc::new(ApiState {
        host: host.clone(),
        token: Some("t".into()),
        forwarder: Arc::new(Forwarder::new(None, None, "me".into())),
        started: AtomicBool::new(true),
        ready: AtomicBool::new(true),
    });
    let app = router(state);
    let mut spec = spec("counter", false);
    spec.journal = Some(troupe_crds::JournalSpec::default());
    let key = ActorKey::new("ns", "c");
    host.assign(
        key.clone(),
        crate::host::Assignment {
            uid: Some("u".into()),
            ..crate::host::Assignment::of(spec, Some(1))
        },
    )
    .await;
    for _ in 0..3 {
        host.tell(&key, json!(1)).await.unwrap();
    }
    let (code, body) = get(&app, &format!("{path}?limit=2"), Some("t")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let values: Vec<_> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"]["value"].clone())
        .collect();
    assert_eq!(values, [json!(3), json!(2)], "the newest 2, newest first");
    assert_eq!(body["truncated"], json!(false));
    assert_eq!(body["entries"][0]["uid"], json!("u"));
}

#[test]
fn a_journal_answer_leaves_out_the_entries_past_its_byte_limit_and_says_so() {
    let entry = |seq| JournalEntry {
        seq,
        uid: "u".into(),
        epoch: 1,
        at: chrono::Utc::now(),
        messages: 1,
        state: json!({"blob": "x".repeat(1000)}),
    };
    let one = serde_json::to_vec(&entry(1)).unwrap().len();
    let (kept, truncated) = within_bytes((1..=10).map(entry).collect(), one * 3 + 10);
    assert_eq!(kept.len(), 3);
    assert!(truncated);
    let (kept, truncated) = within_bytes((1..=2).map(entry).collect(), one * 3);
    assert_eq!((kept.len(), truncated), (2, false));
}

#[tokio::test]
async fn a_leaving_worker_still_takes_messages_for_its_actors_and_a_starting_one_says_look_again() {
    let (app, host, state) = app_in(Some("t"), true).await;
    host.upsert(ActorKey::new("ns", "c"), spec("counter", false), Some(1))
        .await;
    // SIGTERM: no longer ready (no new traffic routed here), but its actors move only when the
    // operator moves them; until then their messages are theirs.
    state.ready.store(false, Ordering::SeqCst);
    let path = "/v1/namespaces/ns/actors/c/tell";
    assert_eq!(call(&app, path, Some("t"), "2").await.0, StatusCode::ACCEPTED);

    let (app, _, _) = app_in(Some("t"), false).await;
    let req = axum::http::Request::post(path)
        .header("content-type", "application/json")
        .header("authorization", "Bearer t");
    let resp = app.oneshot(req.body(Body::from("2")).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        resp.headers().contains_key(MOVING),
        "a worker that forwarded it looks again"
    );
}
