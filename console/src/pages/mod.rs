//! The HTML pages, server-rendered with maud (which escapes every spliced value: names, messages
//! and configs come from users). Each page is a static part (heading, forms) and a live region
//! (`<div id="live">`) that the embedded script replaces when a change concerns the page's
//! topics; the same region is served alone as a fragment for that (`X-Troupe-Fragment: live`).
//! No inline script or style: the Content-Security-Policy allows only this server's own files.

pub mod act;
pub mod actor;
pub mod actors;
pub mod chart;
pub mod overview;
pub mod pool;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp};
use maud::{DOCTYPE, Markup, html};

use crate::{
    access::Acts,
    view::{event::EventRow, phase::Badge, time::age},
    watch::WatchHealth,
};

/// How the console is served, as the header and footer say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Served {
    /// `kubectl troupe console`: the user's kubeconfig.
    Local,
    /// By the operator in the cluster; what this request may do.
    InCluster(Acts),
}

/// A page before layout.
pub struct Page {
    pub title: String,
    /// Above the live region: heading, forms (never replaced, so typing is not interrupted).
    pub head: Markup,
    pub live: Markup,
    /// What the live region shows (see `live::topics`).
    pub topics: Vec<String>,
}

/// What every page shows around its content.
pub struct Frame<'a> {
    /// The one namespace served, or all.
    pub namespace: Option<&'a str>,
    /// The last live batch this render is up to date with.
    pub seq: u64,
    pub problems: Vec<(&'static str, WatchHealth)>,
    pub now: Timestamp,
    pub served: Served,
    /// The server process (see `server::App::instance`).
    pub instance: &'a str,
}

/// The live region alone, for the script to swap in.
pub fn fragment(page: &Page, frame: &Frame) -> Markup {
    html! {
        div #live data-topics=(page.topics.join(" ")) data-seq=(frame.seq) data-server=(frame.instance) {
            (problems(&frame.problems))
            (page.live)
        }
    }
}

/// The whole document.
pub fn document(page: &Page, frame: &Frame) -> Markup {
    let scope = frame
        .namespace
        .map_or("all namespaces".to_string(), |ns| format!("namespace {ns}"));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (page.title) " · Troupe console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        a.brand href="/" { "Troupe console" }
                        a href="/" { "Overview" }
                        a href="/actors" { "Actors" }
                        span.scope { "Showing " (scope) }
                        (served_badge(frame.served))
                    }
                }
                main #main tabindex="-1" {
                    (page.head)
                    (fragment(page, frame))
                }
                footer {
                    p {
                        @match frame.served {
                            Served::Local => {
                                "Every action asks for confirmation and names its "
                                code { "kubectl troupe" } " equivalent; it is made with your kubeconfig. "
                            }
                            Served::InCluster(Acts::Allowed) => {
                                "Served by the Troupe operator. Every action asks for confirmation and names its "
                                code { "kubectl troupe" } " equivalent; it is made with the operator's ServiceAccount. "
                            }
                            Served::InCluster(Acts::SignIn) => {
                                "Served by the Troupe operator. Actions need the console's token: "
                                a href="/login" { "sign in" } ". "
                            }
                            Served::InCluster(Acts::Off) => {
                                "Served by the Troupe operator, read-only: its actions are turned off. Use "
                                code { "kubectl troupe" } " with your own credentials to act. "
                            }
                        }
                        span #live-status role="status" { "Live updates need JavaScript; reload to refresh." }
                    }
                }
            }
        }
    }
}

/// Who acts, in the header.
fn served_badge(served: Served) -> Markup {
    let (text, title) = match served {
        Served::Local => (
            "Your RBAC",
            "Actions and messages are made with your kubeconfig: your RBAC decides what they may do.",
        ),
        Served::InCluster(Acts::Allowed) => (
            "Operator's account",
            "Served by the Troupe operator: pages are read and actions made with the operator's ServiceAccount, for holders of the console's token.",
        ),
        Served::InCluster(Acts::SignIn) => (
            "Read-only until signed in",
            "Served by the Troupe operator: actions need the console's token.",
        ),
        Served::InCluster(Acts::Off) => (
            "Read-only",
            "Served by the Troupe operator with its actions turned off: nothing can be changed from here.",
        ),
    };
    html! { span.readonly #served title=(title) { (text) } }
}

fn problems(problems: &[(&'static str, WatchHealth)]) -> Markup {
    html! {
        @if !problems.is_empty() {
            div.notice role="alert" {
                p { "Some of the cluster is not shown:" }
                ul {
                    @for (kind, h) in problems {
                        li {
                            strong { (kind) } ": "
                            @match &h.error {
                                Some(e) => { (e) }
                                None => { "the first list has not arrived yet" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A phase as symbol and word; the class only adds colour.
pub fn badge(b: Badge) -> Markup {
    html! { span class={ "badge " (b.class) } { span aria-hidden="true" { (b.symbol) } " " (b.text) } }
}

/// A time as its age, with the exact time in a `<time>` element.
pub fn when(t: Option<Timestamp>, now: Timestamp) -> Markup {
    html! {
        @match t {
            Some(t) => time datetime=(t.to_string()) title=(t.to_string()) { (age(now, t)) " ago" },
            None => "—",
        }
    }
}

pub fn or_dash(s: Option<&str>) -> Markup {
    html! { @match s.filter(|s| !s.is_empty()) { Some(s) => (s), None => "—" } }
}

pub fn conditions_table(caption: &str, conditions: &[Condition], now: Timestamp) -> Markup {
    html! {
        @if conditions.is_empty() {
            p { "No conditions reported yet." }
        } @else {
            table {
                caption { (caption) }
                thead { tr { th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Reason" } th scope="col" { "Message" } th scope="col" { "Since" } } }
                tbody {
                    @for c in conditions {
                        tr {
                            th scope="row" { (c.type_) }
                            td { (condition_status(&c.status)) }
                            td { (c.reason) }
                            td { (c.message) }
                            td { (when(Some(c.last_transition_time.0), now)) }
                        }
                    }
                }
            }
        }
    }
}

/// A condition's status as symbol and word, without colour: whether True is good depends on the
/// type (Available True is, Progressing False is not bad).
fn condition_status(s: &str) -> Markup {
    let symbol = match s {
        "True" => "✔",
        "False" => "✖",
        _ => "?",
    };
    html! { span class="badge idle" { span aria-hidden="true" { (symbol) } " " (s) } }
}

pub fn events_table(caption: &str, events: &[EventRow], now: Timestamp) -> Markup {
    html! {
        @if events.is_empty() {
            p { "No Events." }
        } @else {
            table {
                caption { (caption) }
                thead { tr { th scope="col" { "When" } th scope="col" { "Type" } th scope="col" { "Reason" } th scope="col" { "Message" } th scope="col" { "Count" } th scope="col" { "From" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (when(e.time, now)) }
                            td { @if e.type_ == "Warning" { span.badge.bad { span aria-hidden="true" { "⚠" } " Warning" } } @else { (e.type_) } }
                            td { (e.reason) }
                            td { (e.note) }
                            td.num { (e.count) }
                            td { (e.reporter) }
                        }
                    }
                }
            }
        }
    }
}

/// A link to the page of pool `ns/name`.
pub fn pool_href(ns: &str, name: &str) -> String {
    format!("/namespaces/{}/pools/{}", path_segment(ns), path_segment(name))
}

/// A link to the page of actor `ns/name`.
pub fn actor_href(ns: &str, name: &str) -> String {
    format!("/namespaces/{}/actors/{}", path_segment(ns), path_segment(name))
}

/// Kubernetes names are DNS labels and subdomains, but a link is built from what the API
/// returned: anything outside their alphabet is percent-encoded all the same.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
