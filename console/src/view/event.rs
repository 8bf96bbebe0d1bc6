//! Events (events.k8s.io/v1) about one object, newest first: the timeline of a pool or an actor.

use std::sync::Arc;

use k8s_openapi::{api::events::v1::Event, jiff::Timestamp};
use kube::ResourceExt;

/// One Event as a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub time: Option<Timestamp>,
    pub type_: String,
    pub reason: String,
    pub note: String,
    /// How many times it happened (series), 1 for a single occurrence.
    pub count: i32,
    pub reporter: String,
}

/// When an Event last happened: its series' last observation, else its eventTime, else the
/// core/v1 fields older writers fill, else its creation.
fn last_seen(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The Events regarding the `kind` object `ns/name`, newest first, at most `limit`.
pub fn events_about(events: &[Arc<Event>], kind: &str, ns: &str, name: &str, limit: usize) -> Vec<EventRow> {
    let mut rows: Vec<EventRow> = events
        .iter()
        // An Event lives in the namespace of the object it is about.
        .filter(|e| {
            e.namespace().as_deref() == Some(ns)
                && e.regarding
                    .as_ref()
                    .is_some_and(|r| r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name))
        })
        .map(|e| EventRow {
            time: last_seen(e),
            type_: e.type_.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            note: e.note.clone().unwrap_or_default(),
            count: e
                .series
                .as_ref()
                .map(|s| s.count)
                .or(e.deprecated_count)
                .unwrap_or(1),
            reporter: e.reporting_controller.clone().unwrap_or_default(),
        })
        .collect();
    rows.sort_by_key(|e| std::cmp::Reverse(e.time));
    rows.truncate(limit);
    rows
}
