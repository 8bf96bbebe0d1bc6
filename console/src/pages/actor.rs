//! `/namespaces/{ns}/actors/{name}`: an actor's status, conditions, config (credential-like
//! values hidden), schedule, restarts, last error, messages processed, epoch, and its Events.

use std::sync::Arc;

use k8s_openapi::{api::events::v1::Event, jiff::Timestamp};
use maud::html;
use troupe_crds::Actor;

use super::{Page, badge, conditions_table, events_table, or_dash, pool_href, when};
use crate::{
    live::topics::actor_topic,
    view::{actor::ActorDetail, event::events_about, phase::actor_badge},
};

const EVENTS: usize = 50;

pub fn page(ns: &str, name: &str, actor: Option<Arc<Actor>>, events: &[Arc<Event>], now: Timestamp) -> Page {
    let head = html! {
        p.crumbs { a href="/" { "Overview" } " › " a href="/actors" { "Actors" } " › " (ns) }
        h1 { "Actor " (name) }
    };
    let topics = vec![actor_topic(ns, name)];
    let Some(actor) = actor else {
        return Page {
            title: format!("Actor {name}"),
            head,
            live: html! { p.notice #gone role="alert" { "There is no Actor " (ns) "/" (name) " (or it was deleted)." } },
            topics,
        };
    };
    let d = ActorDetail::of(&actor);
    let events = events_about(events, "Actor", ns, name, EVENTS);
    let live = html! {
        dl.summary {
            dt { "Phase" } dd #actor-phase { (badge(actor_badge(d.row.phase))) @if d.paused { " — spec.paused is set" } }
            dt { "Pool" } dd { a href=(pool_href(ns, &d.row.pool)) { (d.row.pool) } }
            dt { "Behaviour" } dd { (d.row.behavior) }
            dt { "Worker" } dd { (or_dash(Some(&d.row.worker))) }
            dt { "Revision" } dd.rev { (or_dash(Some(&d.row.revision))) }
            dt { "Epoch" } dd { (or_dash(d.epoch.map(|e| e.to_string()).as_deref()))
                @if let Some(a) = d.assignment_epoch.filter(|a| Some(*a as i64) != d.epoch) { " (assignment " (a) ")" } }
            dt { "Messages processed" } dd #messages { (d.row.messages) }
            dt { "Restarts" } dd { (d.row.restarts) }
            dt { "Restart policy" } dd { (d.restart_policy) }
            dt { "Circuit breaker" } dd { @match d.circuit_breaker { Some(n) => { "opens after " (n) " consecutive failures" }, None => "none" } }
            dt { "Schedule" } dd { (or_dash(d.schedule.as_deref())) }
            dt { "Started" } dd { (when(d.started, now)) }
            dt { "Phase changed" } dd { (when(d.last_transition, now)) }
            dt { "Status" } dd { @if d.up_to_date { "describes the current spec" } @else { "not yet updated for the current spec" } }
            dt { "Last error" } dd #last-error { (or_dash(d.last_error.as_deref())) }
        }
        section aria-labelledby="conditions-h" {
            h2 #conditions-h { "Conditions" }
            (conditions_table("The actor's conditions", &d.conditions, now))
        }
        section aria-labelledby="config-h" {
            h2 #config-h { "Config" }
            @match &d.config {
                Ok(None) => p { "No config." },
                Ok(Some(text)) => {
                    p.hint { "Values of keys that look like credentials (password, token, secret, apiKey…) are hidden." }
                    pre #config { code { (text) } }
                }
                Err(why) => p.notice { "The config cannot be shown: " (why) },
            }
        }
        section aria-labelledby="events-h" {
            h2 #events-h { "Events" }
            (events_table("Events about this actor, newest first", &events, now))
        }
    };
    Page {
        title: format!("Actor {name}"),
        head,
        live,
        topics,
    }
}
