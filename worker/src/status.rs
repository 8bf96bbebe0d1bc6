//! Publishes the runtime status of hosted actors: batched, and only what changed.
//!
//! Phase, restarts, errors and conditions are written on the next batch after they change;
//! the message counter alone is written at most every `counter_every`, so a busy but healthy
//! actor does not cost an API write per batch. Writes are server-side applies of the fields the
//! worker owns, under its own field manager.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};
use troupe_crds::Actor;

use crate::{
    host::{ActorKey, Host, RuntimeStatus},
    membership::FIELD_MANAGER,
};

fn time(t: chrono::DateTime<chrono::Utc>) -> Value {
    let ts = Timestamp::from_second(t.timestamp()).unwrap_or_else(|_| Timestamp::now());
    json!(Time(ts))
}

/// The status patch for one actor running on worker `pod` of `revision`. The worker records
/// where the actor runs (the operator records placement changes: moves, orphans, no worker), so
/// that a new actor's placement costs the operator one write (its label), not two.
pub fn status_patch(s: &RuntimeStatus, pod: &str, revision: &str) -> Value {
    let conditions: Vec<Value> = s
        .conditions
        .iter()
        .map(|c| {
            json!({
                "type": c.type_,
                "status": if c.status { "True" } else { "False" },
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": time(s.last_transition),
                "observedGeneration": s.observed_generation,
            })
        })
        .collect();
    json!({
        "apiVersion": "troupe.dev/v1alpha1",
        "kind": "Actor",
        "status": {
            "phase": s.phase,
            "worker": pod,
            "revision": revision,
            "restarts": s.restarts,
            "messagesProcessed": s.messages_processed,
            "lastError": s.last_error,
            "lastTransitionTime": time(s.last_transition),
            "startedAt": s.started_at.map(time),
            "observedGeneration": s.observed_generation,
            "conditions": conditions,
        }
    })
}

/// The status of an actor this worker stopped because it was unassigned: phase Migrating tells
/// the operator the actor no longer runs here.
pub fn departed_patch() -> Value {
    let now = time(chrono::Utc::now());
    json!({
        "apiVersion": "troupe.dev/v1alpha1",
        "kind": "Actor",
        "status": {
            "phase": "Migrating",
            "lastTransitionTime": now,
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "Unassigned",
                "message": "stopped on its previous worker; moving", "lastTransitionTime": now,
            }]
        }
    })
}

/// Whether `now` must be written, given what was written last and when.
pub fn needs_write(
    last: Option<&(RuntimeStatus, Instant)>,
    now: &RuntimeStatus,
    counter_every: Duration,
) -> bool {
    let Some((prev, at)) = last else { return true };
    // Someone else's phase on the object (say a late write of another worker): put ours back.
    if now.published_phase.is_some_and(|p| p != now.phase) && at.elapsed() >= Duration::from_secs(1) {
        return true;
    }
    let mut same_but_counter = prev.clone();
    same_but_counter.messages_processed = now.messages_processed;
    same_but_counter.published_phase = now.published_phase;
    if &same_but_counter != now {
        return true;
    }
    prev.messages_processed != now.messages_processed && at.elapsed() >= counter_every
}

/// Writes status every `every` until the process ends.
pub async fn run(client: Client, host: Arc<Host>, every: Duration, counter_every: Duration) {
    let mut written: HashMap<ActorKey, (RuntimeStatus, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush(&client, &host, &mut written, counter_every).await;
    }
}

/// One batch: every changed status, up to 16 writes in flight.
pub async fn flush(
    client: &Client,
    host: &Host,
    written: &mut HashMap<ActorKey, (RuntimeStatus, Instant)>,
    counter_every: Duration,
) {
    // Confirm departures first: the operator waits for them to place the actors elsewhere.
    for key in host.take_departed() {
        if host.is_hosted(&key) {
            continue;
        }
        let api: Api<Actor> = Api::namespaced(client.clone(), &key.namespace);
        let patch = departed_patch();
        match api
            .patch_status(
                &key.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => tracing::warn!(actor = %key, error = %e, "confirming a departure failed"),
        }
        written.remove(&key);
    }
    let snapshot = host.snapshot();
    let live: std::collections::HashSet<_> = snapshot.iter().map(|(k, _)| k.clone()).collect();
    written.retain(|k, _| live.contains(k));
    let changed: Vec<_> = snapshot
        .into_iter()
        .filter(|(k, s)| needs_write(written.get(k), s, counter_every))
        .collect();
    let (pod, revision) = (&host.config().pod, &host.config().revision);
    let results: Vec<_> = futures::stream::iter(changed)
        .map(|(key, status)| {
            let api: Api<Actor> = Api::namespaced(client.clone(), &key.namespace);
            async move {
                let r = api
                    .patch_status(
                        &key.name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(status_patch(&status, pod, revision)),
                    )
                    .await;
                (key, status, r)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (key, status, r) in results {
        match r {
            Ok(_) => {
                host.metrics().status_writes.with_label_values(&["ok"]).inc();
                written.insert(key, (status, Instant::now()));
            }
            // Deleted meanwhile: the watch removes it from the host.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                host.metrics().status_writes.with_label_values(&["error"]).inc();
                tracing::warn!(actor = %key, error = %e, "status write failed; retrying next batch");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::ConditionState;
    use troupe_crds::ActorPhase;

    fn status(processed: u64) -> RuntimeStatus {
        RuntimeStatus {
            phase: ActorPhase::Running,
            restarts: 0,
            messages_processed: processed,
            last_error: None,
            last_transition: chrono::Utc::now(),
            started_at: None,
            observed_generation: Some(1),
            conditions: vec![ConditionState {
                type_: "Ready",
                status: true,
                reason: "Running".into(),
                message: "the actor is running".into(),
            }],
            published_phase: Some(ActorPhase::Running),
        }
    }

    #[test]
    fn nothing_is_written_when_nothing_changed() {
        let s = status(5);
        assert!(needs_write(None, &s, Duration::from_secs(10)));
        assert!(!needs_write(
            Some(&(s.clone(), Instant::now())),
            &s,
            Duration::from_secs(10)
        ));
    }

    #[test]
    fn a_phase_change_is_written_at_once_but_a_counter_only_every_interval() {
        let s = status(5);
        let last = (s.clone(), Instant::now());
        let mut failed = s.clone();
        failed.phase = ActorPhase::Failed;
        assert!(needs_write(Some(&last), &failed, Duration::from_secs(10)));
        let mut busier = s.clone();
        busier.messages_processed = 6;
        assert!(!needs_write(Some(&last), &busier, Duration::from_secs(10)));
        assert!(needs_write(Some(&last), &busier, Duration::ZERO));
    }

    #[test]
    fn a_phase_another_writer_put_on_the_object_is_overwritten() {
        let s = status(5);
        let long_ago = Instant::now() - Duration::from_secs(5);
        let mut overwritten = s.clone();
        overwritten.published_phase = Some(ActorPhase::Migrating);
        assert!(needs_write(
            Some(&(s.clone(), long_ago)),
            &overwritten,
            Duration::from_secs(10)
        ));
        // Just written: the watch may not have caught up with our own write yet.
        assert!(!needs_write(
            Some(&(s.clone(), Instant::now())),
            &overwritten,
            Duration::from_secs(10)
        ));
    }

    #[test]
    fn the_patch_says_where_the_actor_runs_and_how_it_is() {
        let p = status_patch(&status(3), "w-1", "abc");
        let st = p["status"].as_object().unwrap();
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["messagesProcessed"], 3);
        assert_eq!(
            (st["worker"].as_str(), st["revision"].as_str()),
            (Some("w-1"), Some("abc"))
        );
        assert!(
            !st.contains_key("conditions")
                || st["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|c| c["type"] != "Placed"),
            "the Placed condition is the operator's"
        );
        assert_eq!(st["conditions"][0]["type"], "Ready");
        assert_eq!(st["conditions"][0]["status"], "True");
    }
}
