//! `/actors`: every actor, filtered by name, behaviour, phase, worker, revision, namespace and
//! pool (a plain GET form), 100 to a page.

use std::sync::Arc;

use maud::html;
use troupe_crds::{Actor, ActorPhase};

use super::{Page, actor_href, badge, or_dash, pool_href};
use crate::{
    query::{ActorQuery, actor_page},
    view::phase::actor_badge,
};

pub fn page(actors: &[Arc<Actor>], q: &ActorQuery) -> Page {
    let found = actor_page(actors, q);
    let field = |id: &'static str, label: &'static str, value: &str, hint: &'static str| {
        html! {
            div.field {
                label for=(id) { (label) }
                input id=(id) name=(id) type="text" value=(value) autocomplete="off" aria-describedby={ (id) "-hint" };
                small id={ (id) "-hint" } { (hint) }
            }
        }
    };
    let head = html! {
        h1 { "Actors" }
        form #filters method="get" action="/actors" {
            fieldset {
                legend { "Filter" }
                (field("name", "Name", &q.name, "part of the name"))
                (field("behavior", "Behaviour", &q.behavior, "part of the name"))
                div.field {
                    label for="phase" { "Phase" }
                    select #phase name="phase" {
                        option value="" selected[q.phase.is_empty()] { "any" }
                        @for p in ActorPhase::ALL {
                            @let name = format!("{p:?}");
                            option value=(name) selected[q.phase.eq_ignore_ascii_case(&name)] { (name) }
                        }
                    }
                }
                (field("worker", "Worker", &q.worker, "part of the pod name"))
                (field("revision", "Revision", &q.revision, "its first characters"))
                (field("namespace", "Namespace", &q.namespace, "exact"))
                (field("pool", "Pool", &q.pool, "exact"))
                div.actions { button type="submit" { "Apply filters" } " " a href="/actors" { "Clear" } }
            }
        }
    };
    let pager = html! {
        nav.pager aria-label="Pages" {
            @if found.page > 1 { a rel="prev" href={ "/actors?" (q.at_page(found.page - 1)) } { "← Previous" } }
            span { "Page " (found.page) " of " (found.pages) }
            @if found.page < found.pages { a rel="next" href={ "/actors?" (q.at_page(found.page + 1)) } { "Next →" } }
        }
    };
    let live = html! {
        p #count { @if found.matched == 0 { "No actor matches." } @else {
            "Showing " (found.first()) "–" (found.first() + found.rows.len() - 1) " of " (found.matched) " actors"
            @if found.matched < actors.len() { " (" (actors.len()) " in all)" } "."
        } }
        @if !found.rows.is_empty() {
            table #actors {
                caption.visually-hidden { "Actors matching the filters, by namespace and name" }
                thead { tr {
                    th scope="col" { "Namespace" } th scope="col" { "Name" } th scope="col" { "Pool" }
                    th scope="col" { "Behaviour" } th scope="col" { "Phase" } th scope="col" { "Worker" }
                    th scope="col" { "Revision" } th scope="col" { "Restarts" } th scope="col" { "Messages" }
                } }
                tbody {
                    @for a in &found.rows {
                        tr data-actor=(a.name) {
                            td { (a.namespace) }
                            th scope="row" { a href=(actor_href(&a.namespace, &a.name)) { (a.name) } }
                            td { a href=(pool_href(&a.namespace, &a.pool)) { (a.pool) } }
                            td { (a.behavior) }
                            td { (badge(actor_badge(a.phase))) }
                            td { (or_dash(Some(&a.worker))) }
                            td.rev { (or_dash(Some(&a.revision))) }
                            td.num { (a.restarts) }
                            td.num { (a.messages) }
                        }
                    }
                }
            }
            (pager)
        }
    };
    Page {
        title: "Actors".into(),
        head,
        live,
        topics: vec!["actors".into()],
    }
}
