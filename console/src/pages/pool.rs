//! `/namespaces/{ns}/pools/{name}`: a pool's rollout (steps with the current one marked,
//! analysis per metric with its recent measurements drawn against the threshold, the abort
//! reason), its workers (with their mailbox depth where it could be read) and its Events.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{
    api::{coordination::v1::Lease, events::v1::Event},
    jiff::Timestamp,
};
use maud::{Markup, html};
use troupe_crds::{Actor, ActorPool};

use super::{
    Page, badge,
    chart::{analysis_charts, outcome_badge},
    conditions_table, events_table, or_dash, when,
};
use crate::{
    live::topics::pool_topic,
    mailbox::Mailbox,
    query::ActorQuery,
    view::{
        event::events_about,
        phase::{actor_badge, actor_phase_named, pool_badge},
        pool::{PoolRow, StepState, Strategy, step_age, strategy},
        time::age,
        worker::workers,
    },
};

/// Events listed at most.
const EVENTS: usize = 50;

pub struct Sources<'a> {
    pub pool: Option<Arc<ActorPool>>,
    pub actors: &'a [Arc<Actor>],
    pub leases: &'a [Arc<Lease>],
    pub events: &'a [Arc<Event>],
    /// What the workers' metrics said of their mailboxes, by Lease name (`mailbox.rs`).
    pub mailboxes: &'a BTreeMap<String, Mailbox>,
}

pub fn page(ns: &str, name: &str, src: Sources, now: Timestamp) -> Page {
    let head = html! {
        p.crumbs { a href="/" { "Overview" } " › " (ns) " › pool" }
        h1 { "Pool " (name) }
    };
    let topics = vec![pool_topic(ns, name)];
    let Some(pool) = src.pool else {
        return Page {
            title: format!("Pool {name}"),
            head,
            live: html! { p.notice role="alert" { "There is no ActorPool " (ns) "/" (name) " (or it was deleted)." } },
            topics,
        };
    };
    let row = PoolRow::of(&pool);
    let status = pool.status.clone().unwrap_or_default();
    let workers = workers(src.leases, src.actors, src.mailboxes, ns, name, now);
    let events = events_about(src.events, "ActorPool", ns, name, EVENTS);
    let actors_link = ActorQuery {
        namespace: ns.to_string(),
        pool: name.to_string(),
        ..Default::default()
    }
    .at_page(1);
    let live = html! {
        dl.summary {
            dt { "Phase" } dd #pool-phase { (badge(pool_badge(row.phase))) @if row.paused { " — held by spec.paused" } }
            dt { "Stable revision" } dd.rev #stable-revision { (or_dash(row.stable.as_deref())) }
            dt { "Canary revision" } dd.rev #canary-revision { (or_dash(row.canary.as_deref())) }
            dt { "Canary weight" } dd { @match row.weight { Some(w) => { (w) "%" }, None => "—" } }
            dt { "Previous revision" } dd.rev { (or_dash(status.previous_revision.as_deref())) }
            dt { "Workers" } dd { (row.ready) " ready of " (row.desired) " desired" }
            dt { "Actors" } dd {
                a href={ "/actors?" (actors_link) } { (row.actors) " actors" }
                @for (phase, n) in &row.by_phase { " · " (n) " " (badge(actor_badge(actor_phase_named(phase)))) }
            }
        }
        section aria-labelledby="abort-h" {
            h2 #abort-h { "Last abort" }
            @match &status.abort {
                None => p { "No rollout of this pool has been aborted." },
                Some(a) => div #abort.notice {
                    p { strong { (format!("{:?}", a.kind)) } " aborted revision " span.rev { (a.revision) } " " (when(Some(a.time.0), now)) ":" }
                    p #abort-message { (a.message) }
                    @if let Some(done) = &a.completed_at { p { "Every actor was back on the stable revision " (when(Some(done.0), now)) "." } }
                }
            }
        }
        section aria-labelledby="rollout-h" {
            h2 #rollout-h { "Rollout" }
            @match strategy(&pool) {
                Strategy::BlueGreen(stage) => p { "Blue-green. " @match stage { Some(s) => { "Now: " strong { (s) } }, None => "No rollout in progress." } },
                Strategy::Canary(steps) => {
                    @if let Some(age) = step_age(&status, now).filter(|_| row.canary.is_some()) { p { "Current step began " (age) " ago." } }
                    ol #steps start="0" {
                        @for s in &steps {
                            @let (mark, label) = match s.state { StepState::Done => ("✓", "done"), StepState::Current => ("▶", "current step"), StepState::Upcoming => ("·", "to come") };
                            li class=(label.replace(' ', "-")) aria-current=[(s.state == StepState::Current).then_some("step")] {
                                span aria-hidden="true" { (mark) } " " (s.text) " " span.visually-hidden { "(" (label) ")" }
                                @if s.state == StepState::Current { " " strong { "← current" } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="analysis-h" {
            h2 #analysis-h { "Analysis" }
            @match &status.analysis {
                None => p { "No analysis has run for the revision being judged." },
                Some(a) => {
                    p { "Revision " span.rev { (a.revision) } ": " (a.successes) " passing rounds this step, "
                        (a.failures) " failed measurements, " (a.inconclusive) " inconclusive in a row; measured "
                        (when(a.measured_at.as_ref().map(|t| t.0), now)) "." }
                    table #analysis {
                        caption.visually-hidden { "The latest measurement of each metric" }
                        thead { tr { th scope="col" { "Metric" } th scope="col" { "Outcome" } th scope="col" { "Value" } th scope="col" { "Threshold" } th scope="col" { "Measured" } } }
                        tbody {
                            @for r in &a.results {
                                tr {
                                    th scope="row" { (r.name) }
                                    td { (outcome_badge(r.outcome)) }
                                    td.num { @match r.value { Some(v) => (format!("{v:.4}")), None => "—" } }
                                    td { (r.threshold) }
                                    td { (r.message) }
                                }
                            }
                        }
                    }
                    (analysis_charts(a, now))
                }
            }
        }
        section aria-labelledby="workers-h" {
            h2 #workers-h { "Workers" }
            @if workers.is_empty() { p { "No worker holds a lease." } } @else {
                table #workers {
                    caption.visually-hidden { "Worker pods, from their Leases; messages waiting in their actors' mailboxes, from their metrics" }
                    thead { tr { th scope="col" { "Worker" } th scope="col" { "Revision" } th scope="col" { "Lease" } th scope="col" { "Renewed" } th scope="col" { "Actors placed" } th scope="col" { "Mailboxes" } } }
                    tbody {
                        @for w in &workers {
                            tr {
                                th scope="row" { (w.name) }
                                td.rev { (w.revision) }
                                td { @if w.live { span.badge.ok { span aria-hidden="true" { "✔" } " live" } } @else { span.badge.bad { span aria-hidden="true" { "✖" } " expired" } } }
                                td { (w.renewed_ago.as_deref().map_or("never".to_string(), |a| format!("{a} ago"))) }
                                td.num { (w.actors_placed) }
                                td.num.mailbox { (mailbox(&w.mailbox, now)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="conditions-h" {
            h2 #conditions-h { "Conditions" }
            (conditions_table("The pool's conditions", &status.conditions, now))
        }
        section aria-labelledby="events-h" {
            h2 #events-h { "Events" }
            (events_table("Events about this pool, newest first", &events, now))
        }
    };
    Page {
        title: format!("Pool {name}"),
        head,
        live,
        topics,
    }
}

/// Messages waiting on a worker, with when its metrics said so; or a dash that says why it is not
/// known (as a tooltip, and in words for a screen reader).
fn mailbox(m: &Mailbox, now: Timestamp) -> Markup {
    match m {
        Mailbox::Known { messages, read_at } => html! {
            span title={ "Messages waiting in its actors' mailboxes (troupe_worker_mailbox_depth in its metrics), read " (age(now, *read_at)) " ago" } {
                (messages)
            }
        },
        Mailbox::Unknown(why) => html! {
            span title={ "Not known: " (why) } { span aria-hidden="true" { "—" } span.visually-hidden { "not known: " (why) } }
        },
    }
}
