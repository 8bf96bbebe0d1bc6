//! The handlers that act: the confirmation pages (GET), the confirmed actions (POST) on pools
//! (promote, abort, retry, undo) and actors (pause, resume, trigger), and the tell/ask form
//! (POST). Each first asks whether the request may act at all (`access.rs`: an in-cluster
//! console with its actions off answers 403, a reader without the token 401); every POST then
//! passes the origin and token checks (`csrf.rs`) before anything else, and an action also needs
//! its confirmation field; only then is the API called, with the console's client (the user's
//! own: their RBAC decides; a refusal is shown in the API server's words, with its status). A
//! done action redirects to its result page (`results.rs`). The writes themselves are
//! `troupe_client`'s, the same as `kubectl troupe`'s.

use std::{sync::Arc, time::Instant};

use axum::{
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use troupe_client::{
    actions::{self, ActionError, ActorAction, PoolAction},
    messages::MessageError,
};

use crate::{
    access::{Acts, Unauthorized},
    forms::{self, ConfirmForm, FormError, MessageForm},
    pages::{
        self, Page,
        act::{self, Act, Sent},
    },
    results::Outcome,
    server::{App, respond, unauthorized},
};

/// Refuses a request that may not act: 403 where the console's actions are off, 401 (asking
/// for the token) where they need a token it did not present. `None`: it may.
fn gate(app: &App, headers: &HeaderMap) -> Option<Response> {
    match app.acts(headers) {
        Acts::Allowed => None,
        Acts::Off => Some(respond(app, headers, StatusCode::FORBIDDEN, |_| act::off_page())),
        Acts::SignIn => Some(unauthorized(Unauthorized::Missing)),
    }
}

/// The pool page with its action links (or why there are none).
pub fn pool_page(app: &App, acts: Acts, ns: &str, name: &str, now: Timestamp) -> Page {
    let s = &app.stores;
    let src = pages::pool::Sources {
        pool: s.pools.get(&ObjectRef::new(name).within(ns)),
        actors: &s.actors.state(),
        leases: &s.leases.state(),
        events: &s.events.state(),
        mailboxes: &app.mailboxes.looked_at(ns, name),
    };
    let mut page = pages::pool::page(ns, name, src, now);
    let links = match acts {
        Acts::Allowed => act::action_links(&PoolAction::ALL.map(Act::Pool), ns, name),
        other => act::actions_unavailable(other),
    };
    page.head = maud::html! { (page.head) (links) };
    page
}

/// The actor page with its action links and the tell/ask form (`text` in its textarea, and the
/// answer to the message just sent), or why there are none.
pub fn actor_page(
    app: &App,
    acts: Acts,
    ns: &str,
    name: &str,
    now: Timestamp,
    text: &str,
    sent: Option<&Sent>,
) -> Page {
    let found = app.stores.actors.get(&ObjectRef::new(name).within(ns));
    let mut page = pages::actor::page(ns, name, found, &app.stores.events.state(), now);
    page.head = match acts {
        Acts::Allowed => maud::html! {
            (page.head)
            (act::action_links(&ActorAction::ALL.map(Act::Actor), ns, name))
            (act::message_form(ns, name, app.csrf.token(), text, sent))
        },
        other => maud::html! { (page.head) (act::actions_unavailable(other)) },
    };
    page
}

/// GET `/namespaces/{ns}/pools/{name}/{verb}`: the confirmation page.
pub async fn pool_get(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((ns, name, verb)): Path<(String, String, String)>,
) -> Response {
    if let Some(refused) = gate(&app, &headers) {
        return refused;
    }
    match PoolAction::from_verb(&verb) {
        Some(a) => confirm(&app, &headers, StatusCode::OK, Act::Pool(a), &ns, &name, None),
        None => not_found(),
    }
}

/// POST `/namespaces/{ns}/pools/{name}/{verb}`: the confirmed action.
pub async fn pool_post(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((ns, name, verb)): Path<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(refused) = gate(&app, &headers) {
        return refused;
    }
    match PoolAction::from_verb(&verb) {
        Some(a) => perform(&app, &headers, Act::Pool(a), &ns, &name, body).await,
        None => not_found(),
    }
}

/// GET `/namespaces/{ns}/actors/{name}/{verb}`: a confirmation page, or for `message` the
/// actor's page (the address the form's answer is shown at, which the live script refreshes).
pub async fn actor_get(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((ns, name, verb)): Path<(String, String, String)>,
) -> Response {
    if verb == "message" {
        let acts = app.acts(&headers);
        return respond(&app, &headers, StatusCode::OK, |now| {
            actor_page(&app, acts, &ns, &name, now, "", None)
        });
    }
    if let Some(refused) = gate(&app, &headers) {
        return refused;
    }
    match ActorAction::from_verb(&verb) {
        Some(a) => confirm(&app, &headers, StatusCode::OK, Act::Actor(a), &ns, &name, None),
        None => not_found(),
    }
}

/// POST `/namespaces/{ns}/actors/{name}/{verb}`: a confirmed action, or a message.
pub async fn actor_post(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((ns, name, verb)): Path<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(refused) = gate(&app, &headers) {
        return refused;
    }
    if verb == "message" {
        return message(&app, &headers, &ns, &name, body).await;
    }
    match ActorAction::from_verb(&verb) {
        Some(a) => perform(&app, &headers, Act::Actor(a), &ns, &name, body).await,
        None => not_found(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such action").into_response()
}

fn confirm(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    act: Act,
    ns: &str,
    name: &str,
    problem: Option<&str>,
) -> Response {
    respond(app, headers, status, |_| {
        act::confirm_page(act, ns, name, app.csrf.token(), problem)
    })
}

/// The checks, in order, then the write.
async fn perform(
    app: &App,
    headers: &HeaderMap,
    act: Act,
    ns: &str,
    name: &str,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form: ConfirmForm = match &body {
        Ok(b) => forms::parse(b).unwrap_or_default(),
        Err(e) => {
            let why = format!("The form could not be read: {e}");
            return confirm(app, headers, e.status(), act, ns, name, Some(&why));
        }
    };
    if let Err(refusal) = app.csrf.check(headers, &form.csrf) {
        let why = format!("Refused: {refusal}. Nothing was done.");
        return confirm(app, headers, StatusCode::FORBIDDEN, act, ns, name, Some(&why));
    }
    if !form.confirmed() {
        let why = "Not confirmed: nothing was done. Press the button to confirm.";
        return confirm(app, headers, StatusCode::BAD_REQUEST, act, ns, name, Some(why));
    }
    let done = match act {
        Act::Pool(a) => actions::pool_action(&app.client, ns, name, a).await,
        Act::Actor(a) => actions::actor_action(&app.client, ns, name, a).await,
    };
    match done {
        // Done: to the result page by a redirect, so that a reload never does it twice.
        Ok(()) => {
            tracing::info!(action = act.verb(), %ns, %name, "action done from the console");
            let id = app.results.put(&Outcome {
                act,
                namespace: ns.into(),
                name: name.into(),
                at: Timestamp::now(),
            });
            Redirect::to(&format!("/results/{id}")).into_response()
        }
        // Refused: nothing was written, so the answer to the POST says why, with its status.
        Err(e) => {
            tracing::info!(action = act.verb(), %ns, %name, error = %e, "action refused");
            respond(app, headers, api_status(&e), |now| {
                act::result_page(act, ns, name, Err(e.to_string()), now)
            })
        }
    }
}

/// GET `/results/{id}`: what an action done from this console did.
pub async fn result(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(refused) = gate(&app, &headers) {
        return refused;
    }
    match app.results.get(&id) {
        Some(o) => respond(&app, &headers, StatusCode::OK, |now| {
            act::result_page(o.act, &o.namespace, &o.name, Ok(o.at), now)
        }),
        None => (
            StatusCode::NOT_FOUND,
            "This console made no such result link (it was altered, or made by a console since restarted).",
        )
            .into_response(),
    }
}

/// The API server's status passed on when it is a refusal a person acts on (403, 404, 409, 422);
/// anything else is the gateway's problem (502).
fn api_status(e: &ActionError) -> StatusCode {
    match e.code() {
        Some(c @ (400 | 401 | 403 | 404 | 409 | 422)) => {
            StatusCode::from_u16(c).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// The tell/ask form: checks, then the message through a worker; the actor's page again with the
/// message kept in the textarea and the answer (or why there is none) under it.
async fn message(
    app: &App,
    headers: &HeaderMap,
    ns: &str,
    name: &str,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form: MessageForm = match &body {
        Ok(b) => forms::parse(b).unwrap_or_default(),
        Err(e) => {
            let why = format!(
                "{}; the console sends at most {} KiB",
                e.body_text(),
                forms::MAX_FORM_MESSAGE / 1024
            );
            return refused(app, headers, e.status(), ns, name, "", why);
        }
    };
    if let Err(refusal) = app.csrf.check(headers, &form.csrf) {
        let why = format!("refused: {refusal}");
        return refused(app, headers, StatusCode::FORBIDDEN, ns, name, "", why);
    }
    let msg = match form.message() {
        Ok(m) => m,
        Err(e) => {
            let code = match e {
                FormError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            return refused(app, headers, code, ns, name, &form.message, e.to_string());
        }
    };
    let started = Instant::now();
    let outcome = app.messenger.send(ns, name, msg.kind, &msg.json, None).await;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let status = match &outcome {
        Ok(_) => StatusCode::OK,
        Err(MessageError::Api(e)) => api_status(e),
        Err(MessageError::NoWorker { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        Err(_) => StatusCode::BAD_GATEWAY,
    };
    let sent = Sent {
        kind: msg.kind,
        json: msg.json,
        outcome: outcome.map_err(|e| e.to_string()),
        millis,
    };
    respond(app, headers, status, |now| {
        actor_page(app, Acts::Allowed, ns, name, now, &sent.json, Some(&sent))
    })
}

/// The actor page with the form refused, saying why, before anything was sent.
fn refused(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    ns: &str,
    name: &str,
    text: &str,
    why: String,
) -> Response {
    let sent = Sent {
        kind: troupe_client::messages::Kind::Ask,
        json: String::new(),
        outcome: Err(why),
        millis: 0.0,
    };
    let text: String = text.chars().take(forms::MAX_FORM_MESSAGE).collect();
    respond(app, headers, status, |now| {
        actor_page(app, Acts::Allowed, ns, name, now, &text, Some(&sent))
    })
}
