//! The console served in the cluster (by the operator): every request needs the console's token
//! (Bearer, or Basic's password) unless reading without it was chosen; with actions off every
//! action route answers 403 and the pages offer none; with them on, only a request with the
//! token acts, and the CSRF checks still apply. Through the router, against the recording
//! stand-in API server of `actions.rs`.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use base64::Engine;

use super::actions::{Calls, HOST, OWN, POOL, console_with, post, send};
use crate::{
    access::{Access, AccessError, Acts, BearerToken, InCluster, TokenError, Unauthorized},
    csrf::Csrf,
};

const SECRET: &str = "0123456789abcdef-console-token";

fn token() -> BearerToken {
    BearerToken::new(SECRET).unwrap()
}

fn in_cluster(actions: bool, anonymous_read: bool, with_token: bool) -> Access {
    Access::InCluster(InCluster::new(with_token.then(token), actions, anonymous_read).unwrap())
}

/// A console in the cluster as the operator builds it: its CSRF token derived from its token.
fn cluster_console(access: Access) -> (axum::Router, Calls) {
    let csrf = Csrf::from_key(access.key("troupe-console csrf"));
    console_with(200, POOL, access, csrf)
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!("Basic {}", b64.encode(format!("{user}:{password}")))
}

fn get(path: &str, auth: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(path).header("host", HOST);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::empty()).unwrap()
}

fn with_auth(mut req: Request<Body>, auth: &str) -> Request<Body> {
    req.headers_mut().insert("authorization", auth.parse().unwrap());
    req
}

/// Every route that acts, as (method, path): the seven actions' confirmation pages and POSTs,
/// and the tell/ask form.
fn action_routes() -> Vec<(&'static str, String)> {
    let mut routes = vec![];
    for verb in ["promote", "abort", "retry", "undo"] {
        routes.push(("GET", format!("/namespaces/t/pools/p/{verb}")));
        routes.push(("POST", format!("/namespaces/t/pools/p/{verb}")));
    }
    for verb in ["pause", "resume", "trigger"] {
        routes.push(("GET", format!("/namespaces/t/actors/a/{verb}")));
        routes.push(("POST", format!("/namespaces/t/actors/a/{verb}")));
    }
    routes.push(("POST", "/namespaces/t/actors/a/message".into()));
    routes
}

fn request(method: &str, path: &str, csrf: &str) -> Request<Body> {
    match method {
        "GET" => get(path, None),
        _ => post(path, OWN, &format!("csrf={csrf}&confirm=yes&kind=ask&message=1")),
    }
}

#[test]
fn an_in_cluster_console_refuses_to_start_actions_or_token_free_reading_without_a_token() {
    assert_eq!(
        InCluster::new(None, true, true).unwrap_err(),
        AccessError::ActionsWithoutToken
    );
    assert_eq!(
        InCluster::new(None, true, false).unwrap_err(),
        AccessError::ActionsWithoutToken
    );
    assert_eq!(
        InCluster::new(None, false, false).unwrap_err(),
        AccessError::ReadingWithoutToken
    );
    assert!(
        InCluster::new(None, false, true).is_ok(),
        "read-only, open: chosen explicitly"
    );
    assert!(InCluster::new(Some(token()), true, false).is_ok());
    assert!(
        AccessError::ActionsWithoutToken
            .to_string()
            .contains("there is no default token")
    );
}

#[test]
fn a_token_must_be_long_and_plain_and_is_never_printed() {
    assert_eq!(BearerToken::new(" \n").unwrap_err(), TokenError::Empty);
    assert_eq!(BearerToken::new("short").unwrap_err(), TokenError::TooShort(5));
    assert_eq!(
        BearerToken::new("0123456789 abcdef0123").unwrap_err(),
        TokenError::BadCharacter
    );
    // A Secret's value often ends with a newline: not part of the token.
    let t = BearerToken::new(&format!("{SECRET}\n")).unwrap();
    assert!(t.matches(SECRET.as_bytes()));
    assert!(!t.matches(format!("{SECRET}x").as_bytes()));
    assert!(!t.matches(b""));
    assert!(!format!("{t:?}").contains(SECRET));
    // Derived keys are the same for the same token, differ by purpose, and are not the token.
    assert_eq!(t.derive("a"), token().derive("a"));
    assert_ne!(t.derive("a"), t.derive("b"));
}

#[tokio::test]
async fn without_the_token_every_request_is_401_and_asks_for_it_and_a_wrong_one_too() {
    let (router, calls) = cluster_console(in_cluster(true, false, true));
    for auth in [
        None,
        Some(bearer("wrong-token-wrong-token")),
        Some(bearer("")),
        Some(basic("me", "wrong-token-wrong-token")),
        Some(format!("Token {SECRET}")),
        Some("Basic %%%".to_string()),
    ] {
        for path in [
            "/",
            "/actors",
            "/namespaces/t/pools/p",
            "/live",
            "/assets/console.js",
            "/namespaces/t/pools/p/promote",
        ] {
            let resp = tower::ServiceExt::oneshot(router.clone(), get(path, auth.as_deref()))
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path} with {auth:?}");
            let challenges: Vec<_> = resp
                .headers()
                .get_all("www-authenticate")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            assert!(challenges[0].starts_with("Basic realm="), "{challenges:?}");
            assert!(challenges.iter().any(|c| c.starts_with("Bearer")));
            assert_eq!(
                resp.headers()["content-security-policy"],
                crate::server::CSP,
                "the guard's headers on refusals too"
            );
        }
        let (status, body) = send(&router, post("/namespaces/t/pools/p/promote", OWN, "confirm=yes")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("needs its token"), "{body}");
    }
    let (_, body) = send(&router, get("/", Some(&bearer("wrong-token-wrong")))).await;
    assert_eq!(body, Unauthorized::Wrong.sentence());
    assert!(!body.contains(SECRET));
    assert!(calls.lock().unwrap().is_empty(), "no API call");
}

#[tokio::test]
async fn the_right_token_as_bearer_or_as_basics_password_reads_every_page() {
    let (router, _) = cluster_console(in_cluster(false, false, true));
    for auth in [bearer(SECRET), basic("anyone", SECRET), basic("", SECRET)] {
        for path in ["/", "/actors", "/namespaces/t/pools/p", "/namespaces/t/actors/a"] {
            let (status, page) = send(&router, get(path, Some(&auth))).await;
            assert_eq!(status, StatusCode::OK, "{path} with {auth}: {page}");
        }
    }
    // A host name of the cluster (a Service, an Ingress) is fine here: the token guards it.
    let req = Request::builder()
        .uri("/")
        .header("host", "troupe-operator.troupe-system:8090")
        .header("authorization", bearer(SECRET))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_read_only_console_answers_every_action_route_403_and_offers_no_action() {
    let access = in_cluster(false, false, true);
    let csrf = Csrf::from_key(access.key("troupe-console csrf"));
    let (router, calls) = cluster_console(access);
    for (method, path) in action_routes() {
        let req = with_auth(request(method, &path, csrf.token()), &bearer(SECRET));
        let (status, page) = send(&router, req).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {page}");
        assert!(
            page.contains("This console is read-only")
                && page.contains("nothing was done")
                && page.contains("console.actions.enabled"),
            "{method} {path}: {page}"
        );
    }
    // A result link (made by a console with actions) shows nothing here either.
    let (status, _) = send(&router, get("/results/x.y", Some(&bearer(SECRET)))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(calls.lock().unwrap().is_empty(), "no API call");

    // The pages: no action link, no form, no CSRF token; they say why.
    for path in [
        "/namespaces/t/pools/p",
        "/namespaces/t/actors/a",
        "/namespaces/t/actors/a/message",
    ] {
        let (status, page) = send(&router, get(path, Some(&bearer(SECRET)))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!page.contains("<form"), "{path}: {page}");
        assert!(!page.contains("id=\"act-"), "{path}");
        assert!(!page.contains(csrf.token()), "{path}");
        assert!(page.contains(r#"id="actions-off""#), "{path}: {page}");
        assert!(page.contains("read-only"), "{path}");
    }
    let (_, page) = send(&router, get("/", Some(&bearer(SECRET)))).await;
    assert!(
        page.contains(r#"id="served""#) && page.contains(">Read-only<"),
        "{page}"
    );
}

#[tokio::test]
async fn with_actions_on_the_token_acts_and_the_csrf_checks_still_apply() {
    let access = in_cluster(true, false, true);
    let csrf = Csrf::from_key(access.key("troupe-console csrf"));
    let (router, calls) = cluster_console(access);
    // The pages offer the actions.
    let (_, page) = send(&router, get("/namespaces/t/pools/p", Some(&bearer(SECRET)))).await;
    assert!(page.contains(r#"id="act-promote""#), "{page}");
    assert!(page.contains("Operator&#39;s account") || page.contains("Operator's account"));
    // The token alone is not enough: the form's token and the origin are checked too.
    let no_csrf = with_auth(
        post("/namespaces/t/pools/p/promote", OWN, "confirm=yes"),
        &bearer(SECRET),
    );
    assert_eq!(send(&router, no_csrf).await.0, StatusCode::FORBIDDEN);
    let form = format!("csrf={}&confirm=yes", csrf.token());
    let foreign = with_auth(
        post(
            "/namespaces/t/pools/p/promote",
            Some("http://evil.example"),
            &form,
        ),
        &bearer(SECRET),
    );
    assert_eq!(send(&router, foreign).await.0, StatusCode::FORBIDDEN);
    assert!(calls.lock().unwrap().is_empty(), "no API call yet");
    // All of it: done, and its result page.
    let req = with_auth(
        post("/namespaces/t/pools/p/promote", OWN, &form),
        &basic("me", SECRET),
    );
    let resp = tower::ServiceExt::oneshot(router.clone(), req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        calls.lock().unwrap()[0].0,
        "PATCH /apis/troupe.dev/v1alpha1/namespaces/t/actorpools/p"
    );
    let (status, page) = send(&router, get(&location, Some(&bearer(SECRET)))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Promote requested"), "{page}");

    // Another replica (its own process, the same token) takes this one's form and link.
    let (replica, replica_calls) = cluster_console(in_cluster(true, false, true));
    let (status, page) = send(&replica, get(&location, Some(&bearer(SECRET)))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let req = with_auth(post("/namespaces/t/pools/p/abort", OWN, &form), &bearer(SECRET));
    assert_eq!(send(&replica, req).await.0, StatusCode::SEE_OTHER);
    assert_eq!(replica_calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn reading_without_the_token_when_chosen_shows_pages_but_actions_still_need_it() {
    let access = in_cluster(true, true, true);
    let csrf = Csrf::from_key(access.key("troupe-console csrf"));
    let (router, calls) = cluster_console(access.clone());
    assert_eq!(access.admit(&Default::default()), Ok(Acts::SignIn));
    let (status, page) = send(&router, get("/namespaces/t/actors/a", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("<form"), "{page}");
    assert!(!page.contains(csrf.token()), "no form token for readers");
    assert!(page.contains(r#"href="/login""#), "{page}");
    for (method, path) in action_routes() {
        let (status, _) = send(&router, request(method, &path, csrf.token())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // A wrong token is refused, not treated as a reader.
    let (status, _) = send(&router, get("/", Some(&bearer("not-the-token-at-all")))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // /login asks for the token, and with it goes back to the overview.
    assert_eq!(
        send(&router, get("/login", None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = send(&router, get("/login", Some(&basic("me", SECRET)))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(calls.lock().unwrap().is_empty());

    // Open reading with no token at all: read-only.
    let (router, _) = cluster_console(in_cluster(false, true, false));
    let (status, page) = send(&router, get("/namespaces/t/pools/p", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="actions-off""#));
    let req = post("/namespaces/t/pools/p/promote", OWN, "confirm=yes");
    assert_eq!(send(&router, req).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_local_console_is_unchanged_no_token_and_its_actions_on() {
    let (router, _) = console_with(200, POOL, Access::Local, Csrf::fixed("t"));
    let (status, page) = send(&router, get("/namespaces/t/pools/p", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="act-promote""#));
    assert!(page.contains(">Your RBAC<"));
}
