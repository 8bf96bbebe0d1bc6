//! `/`: every pool (phase, revisions, weight, workers, actors by phase), the recent rollbacks
//! with their reasons, and a search box that filters pools and actors by name.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use maud::html;
use serde::Deserialize;
use troupe_crds::{Actor, ActorPool};

use super::{Page, actor_href, badge, or_dash, pool_href, when};
use crate::{
    query::{ActorQuery, actor_page},
    view::{
        phase::{actor_badge, actor_phase_named, pool_badge},
        pool::{pool_rows, recent_rollbacks},
    },
};

/// Rollbacks listed at most.
const ROLLBACKS: usize = 20;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OverviewQuery {
    /// Part of a pool's or actor's name.
    pub q: String,
}

pub fn page(pools: &[Arc<ActorPool>], actors: &[Arc<Actor>], query: &OverviewQuery, now: Timestamp) -> Page {
    let q = query.q.trim();
    let rows = pool_rows(pools, q);
    let rollbacks = recent_rollbacks(pools, ROLLBACKS);
    // Actors are searched only when asked: the overview must not walk 10,000 actors otherwise.
    let found = (!q.is_empty()).then(|| {
        actor_page(
            actors,
            &ActorQuery {
                name: q.to_string(),
                ..Default::default()
            },
        )
    });
    let head = html! {
        h1 { "Overview" }
        form.search role="search" method="get" action="/" {
            label for="q" { "Search pools and actors by name" }
            input #q type="search" name="q" value=(q) autocomplete="off";
            button type="submit" { "Search" }
            @if !q.is_empty() { " " a href="/" { "Clear" } }
        }
    };
    let live = html! {
        section aria-labelledby="pools-h" {
            h2 #pools-h { "Pools" }
            @if rows.is_empty() {
                p { @if q.is_empty() { "No ActorPools." } @else { "No pool's name contains “" (q) "”." } }
            } @else {
                table #pools {
                    caption.visually-hidden { "Every pool, with its rollout and actors" }
                    thead { tr {
                        th scope="col" { "Namespace" } th scope="col" { "Pool" } th scope="col" { "Phase" }
                        th scope="col" { "Stable" } th scope="col" { "Canary" } th scope="col" { "Weight" }
                        th scope="col" { "Workers ready / desired" } th scope="col" { "Actors by phase" }
                    } }
                    tbody {
                        @for r in &rows {
                            tr data-pool=(r.name) {
                                td { (r.namespace) }
                                th scope="row" { a href=(pool_href(&r.namespace, &r.name)) { (r.name) } }
                                td { (badge(pool_badge(r.phase))) @if r.paused { " (spec.paused)" } }
                                td.rev { (or_dash(r.stable.as_deref())) }
                                td.rev { (or_dash(r.canary.as_deref())) }
                                td.num { @match r.weight { Some(w) => { (w) "%" }, None => "—" } }
                                td.num { (r.ready) " / " (r.desired) }
                                td {
                                    @if r.by_phase.is_empty() { (r.actors) " actors" }
                                    ul.phases {
                                        @for (phase, n) in &r.by_phase {
                                            li data-phase=(phase) { (n) " " (badge(actor_badge(actor_phase_named(phase)))) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(found) = &found {
            section aria-labelledby="found-h" {
                h2 #found-h { "Actors whose name contains “" (q) "”" }
                @if found.rows.is_empty() {
                    p { "None." }
                } @else {
                    p { (found.matched) " found"
                        @if found.matched > found.rows.len() {
                            "; the first " (found.rows.len()) " are listed — "
                            a href={ "/actors?" (ActorQuery { name: q.to_string(), ..Default::default() }.at_page(1)) } { "all of them" }
                        } }
                    ul.found {
                        @for a in &found.rows {
                            li { a href=(actor_href(&a.namespace, &a.name)) { (a.namespace) "/" (a.name) } " " (badge(actor_badge(a.phase))) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="rollbacks-h" {
            h2 #rollbacks-h { "Recent rollbacks" }
            @if rollbacks.is_empty() {
                p { "No rollout has been aborted." }
            } @else {
                table #rollbacks {
                    caption.visually-hidden { "The last aborted rollout of each pool, newest first" }
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Pool" } th scope="col" { "Revision" }
                        th scope="col" { "Cause" } th scope="col" { "Reason" } th scope="col" { "Back on stable" }
                    } }
                    tbody {
                        @for r in &rollbacks {
                            tr {
                                td { (when(Some(r.abort.time.0), now)) }
                                th scope="row" { a href=(pool_href(&r.namespace, &r.pool)) { (r.namespace) "/" (r.pool) } }
                                td.rev { (r.abort.revision) }
                                td { (format!("{:?}", r.abort.kind)) }
                                td { (r.abort.message) }
                                td { (when(r.abort.completed_at.as_ref().map(|t| t.0), now)) }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut topics = vec!["pools".to_string()];
    if found.is_some() {
        topics.push("actors".into());
    }
    Page {
        title: "Overview".into(),
        head,
        live,
        topics,
    }
}
