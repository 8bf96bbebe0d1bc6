//! The HTTP side: routes, the response headers every answer carries (a Content-Security-Policy
//! that allows only this server's own files), the Host check that keeps other web sites out of
//! a console on loopback, the token check of a console in the cluster (`access.rs`), the
//! embedded assets, and page-or-fragment rendering. The handlers that act (POST) are in
//! `actions.rs`.

use std::{sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Path, Query, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use troupe_client::messages::Messenger;

use crate::{
    access::{Access, Acts, Unauthorized},
    actions,
    csrf::Csrf,
    forms::MAX_FORM_BODY,
    live::{
        Hub,
        regions::{Got, Key, Region, Regions},
        sse,
    },
    mailbox::Mailboxes,
    pages::{self, Frame, Page, Served},
    query::ActorQuery,
    results::Results,
    watch::Stores,
};

/// The request header by which the script asks for the live region alone.
pub const FRAGMENT_HEADER: &str = "x-troupe-fragment";
/// Nothing from elsewhere, no inline script or style, no framing, forms only to this server.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// What every handler reads.
pub struct App {
    pub stores: Stores,
    pub hub: Hub,
    pub namespace: Option<String>,
    /// Accept any Host header (remote serving was asked for); otherwise loopback names only.
    pub any_host: bool,
    /// Who may read and act (`access.rs`).
    pub access: Access,
    /// The client the actions write with: the user's own (locally), or the operator's.
    pub client: Client,
    /// Tell and ask, with the same client.
    pub messenger: Messenger,
    /// The token of every form (see `csrf.rs`).
    pub csrf: Csrf,
    /// The result pages' links (see `results.rs`).
    pub results: Results,
    /// Live regions rendered lately, shared by the requests of one batch (`live/regions.rs`).
    pub regions: Regions,
    /// Workers' mailbox depth, where it can be read (`mailbox.rs`).
    pub mailboxes: Mailboxes,
    /// This process, for the pages' live script: batch numbers are this process's own, so a
    /// region fetched from another replica of an in-cluster console is never skipped by them.
    pub instance: String,
}

impl App {
    /// What the request may do (it passed the guard, so it may read).
    pub fn acts(&self, headers: &HeaderMap) -> Acts {
        self.access.admit(headers).unwrap_or(Acts::Off)
    }
}

/// A random name for this process (16 hex digits).
pub fn instance_id() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/actors", get(actors))
        .route("/namespaces/{ns}/pools/{name}", get(pool))
        .route("/namespaces/{ns}/actors/{name}", get(actor))
        .route(
            "/namespaces/{ns}/pools/{name}/{verb}",
            get(actions::pool_get).post(actions::pool_post),
        )
        .route(
            "/namespaces/{ns}/actors/{name}/{verb}",
            get(actions::actor_get).post(actions::actor_post),
        )
        .route("/results/{id}", get(actions::result))
        .route("/login", get(login))
        .route("/live", get(live))
        .route(
            "/assets/console.css",
            get(|| async { asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/console.js",
            get(|| async { asset(JS, "text/javascript; charset=utf-8") }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page") })
        // The forms are small: a message of at most 64 KiB, percent-encoded.
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Whether `host` (a Host header) names this machine's loopback: `localhost`, `127.x.y.z` or
/// `[::1]`, with any port. A browser sends the name it resolved; a page of another site that
/// rebinds its own name to 127.0.0.1 sends that name, and is refused.
pub fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// 401, asking for the console's token. Basic first: a browser asks the person for it (the
/// token as the password); a program sends it as a Bearer.
pub fn unauthorized(why: Unauthorized) -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, why.sentence()).into_response();
    let h = resp.headers_mut();
    h.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="Troupe console", charset="UTF-8""#),
    );
    h.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="Troupe console""#),
    );
    resp
}

async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let mut resp = if !(app.any_host || loopback_host(host)) {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "this console answers only to its loopback address",
        )
            .into_response()
    } else if let Err(refused) = app.access.admit(req.headers()) {
        unauthorized(refused)
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it browsers send `Origin: null` with the console's own form
    // POSTs, which the CSRF check needs to see. `same-origin` still sends nothing elsewhere.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// The page `render` builds, or its live region alone when the script asks; with the server's
/// render time.
///
/// The hub's number is read before `render` reads the stores: a change that lands in a store
/// after that read belongs to a later batch, which the page then refreshes for. Read after, the
/// page could claim a batch whose change it does not show, and ignore it.
pub fn respond(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    render: impl FnOnce(Timestamp) -> Page,
) -> Response {
    let seq = app.hub.seq();
    let region = build(app, headers, status, seq, is_fragment(headers), render);
    timed(region, Got::Rendered, None)
}

/// A page as [`respond`] renders it, except that its live region (what every open page showing
/// it fetches after a batch) is rendered once per batch for every request that asks for the
/// same one ([`Regions`](crate::live::regions)). `uri` is the URL asked for: the region's name.
pub async fn respond_live(
    app: &App,
    headers: &HeaderMap,
    uri: &Uri,
    render: impl FnOnce(Timestamp) -> Page,
) -> Response {
    if !is_fragment(headers) {
        return respond(app, headers, StatusCode::OK, render);
    }
    let started = Instant::now();
    // Read before the render, as in `respond`: the region is up to date with this batch.
    let seq = app.hub.seq();
    let key = Key {
        uri: uri.to_string(),
        served: served(app, headers),
    };
    let (region, got) = app
        .regions
        .get(key, seq, || {
            build(app, headers, StatusCode::OK, seq, true, render)
        })
        .await;
    timed(region, got, Some(started.elapsed()))
}

fn is_fragment(headers: &HeaderMap) -> bool {
    headers.get(FRAGMENT_HEADER).is_some_and(|v| v == "live")
}

fn served(app: &App, headers: &HeaderMap) -> Served {
    if app.access.in_cluster() {
        Served::InCluster(app.acts(headers))
    } else {
        Served::Local
    }
}

/// Renders the page or its region, up to date with batch `seq`.
fn build(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    seq: u64,
    fragment: bool,
    render: impl FnOnce(Timestamp) -> Page,
) -> Region {
    let started = Instant::now();
    let now = Timestamp::now();
    let page = render(now);
    let frame = Frame {
        namespace: app.namespace.as_deref(),
        seq,
        problems: app.stores.problems(),
        now,
        served: served(app, headers),
        instance: &app.instance,
    };
    let body = if fragment {
        pages::fragment(&page, &frame)
    } else {
        pages::document(&page, &frame)
    };
    Region {
        status,
        body: body.into_string().into(),
        took: started.elapsed(),
    }
}

/// The response, with its time in `Server-Timing` (the browser's developer tools, the e2e
/// tests and the bench read it): `render` when this request rendered it, `shared` (the wait)
/// when it got a render made for another request of the same batch.
fn timed(region: Region, got: Got, waited: Option<std::time::Duration>) -> Response {
    let timing = match got {
        Got::Rendered => format!("render;dur={:.3}", region.took.as_secs_f64() * 1000.0),
        Got::Shared => format!(
            "shared;dur={:.3};desc=\"rendered once for this batch\"",
            waited.unwrap_or_default().as_secs_f64() * 1000.0
        ),
    };
    let mut resp = (
        region.status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        region.body,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static(FRAGMENT_HEADER));
    if let Ok(v) = HeaderValue::from_str(&timing) {
        h.insert(HeaderName::from_static("server-timing"), v);
    }
    resp
}

async fn overview(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<pages::overview::OverviewQuery>,
) -> Response {
    respond_live(&app, &headers, &uri, |now| {
        // The actors only for a search: a copy of the store's list is 10,000 reference counts
        // touched (and as many released), most of the overview's time with that many actors.
        let actors = if q.q.trim().is_empty() {
            Vec::new()
        } else {
            app.stores.actors.state()
        };
        pages::overview::page(&app.stores.pools.state(), &actors, &q, now)
    })
    .await
}

async fn actors(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<ActorQuery>,
) -> Response {
    respond_live(&app, &headers, &uri, |_| {
        pages::actors::page(&app.stores.actors.state(), &q)
    })
    .await
}

async fn pool(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let acts = app.acts(&headers);
    respond_live(&app, &headers, &uri, |now| {
        actions::pool_page(&app, acts, &ns, &name, now)
    })
    .await
}

async fn actor(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let acts = app.acts(&headers);
    respond_live(&app, &headers, &uri, |now| {
        actions::actor_page(&app, acts, &ns, &name, now, "", None)
    })
    .await
}

async fn live(State(app): State<Arc<App>>) -> impl IntoResponse {
    sse::stream_for(&app.hub, &app.instance)
}

/// `/login`: where an anonymous reader of an in-cluster console gets the token asked for (a
/// browser prompts on the 401 of the guard); with it, or where no token is needed, back to
/// the overview.
async fn login(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let signed_in = match &app.access {
        Access::Local => true,
        Access::InCluster(_) => crate::access::presented(&headers).is_some(),
    };
    if signed_in {
        axum::response::Redirect::to("/").into_response()
    } else {
        unauthorized(Unauthorized::Missing)
    }
}
