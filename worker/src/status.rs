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
use kube::ResourceExt;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};
use troupe_crds::{Actor, labels};

use crate::{
    host::{ActorKey, Claim, Claimer, Departure, Host, RuntimeStatus},
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
            "epoch": s.epoch,
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

/// The confirmation that this worker stopped an actor it was assigned under `epoch`: phase
/// Migrating, with the worker and epoch that the operator checks against the assignment it
/// ended, conditional on the Actor's version (`None`: unconditional), and `Ready=False`.
///
/// It also says that the actor is between placements (`Placed=False`, reason `Moving`): the
/// operator released it with its label alone, and writes `Placed` again when it assigns it.
pub fn departed_patch(name: &str, pod: &str, epoch: u64, resource_version: Option<&str>) -> Value {
    let now = time(chrono::Utc::now());
    json!({
        "apiVersion": "troupe.dev/v1alpha1",
        "kind": "Actor",
        "metadata": {"name": name, "resourceVersion": resource_version},
        "status": {
            "phase": "Migrating",
            "worker": pod,
            "epoch": epoch,
            "lastTransitionTime": now,
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "Unassigned",
                "message": format!("stopped on worker {pod}; moving"), "lastTransitionTime": now,
            }, {
                "type": "Placed", "status": "False", "reason": "Moving",
                "message": format!("released from worker {pod}, which stopped it; waiting for its next worker"),
                "lastTransitionTime": now,
            }]
        }
    })
}

/// The claim of an assignment: this worker runs the actor under `running.epoch` on `revision`,
/// from now on (the status the actor has once started, so that the claim is also the start's
/// status write), on condition that the Actor is still at `resource_version`.
pub fn claim_patch(
    name: &str,
    running: &RuntimeStatus,
    pod: &str,
    revision: &str,
    resource_version: Option<&str>,
) -> Value {
    let mut patch = status_patch(running, pod, revision);
    patch["metadata"] = json!({"name": name, "resourceVersion": resource_version});
    patch
}

/// Whether `a` is assigned to `pod` under `epoch`.
fn assigned_to(a: &Actor, pod: &str, epoch: u64) -> bool {
    a.labels().get(labels::WORKER).map(String::as_str) == Some(pod)
        && a.assignment_epoch().unwrap_or(0) == epoch
}

/// Writes a status patch conditional on the version in it; on a conflict, reads the Actor again
/// and, while `still` holds for it, retries with its new version. `Ok(false)`: `still` no longer
/// holds (or the actor is gone), nothing written.
async fn conditional_write(
    api: &Api<Actor>,
    name: &str,
    mut resource_version: Option<String>,
    patch: impl Fn(Option<&str>) -> Value,
    still: impl Fn(&Actor) -> bool,
) -> Result<bool, kube::Error> {
    for _ in 0..5 {
        if resource_version.is_none() {
            match api.get_opt(name).await? {
                Some(a) if still(&a) => resource_version = a.resource_version(),
                _ => return Ok(false),
            }
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api
            .patch_status(name, &params, &Patch::Apply(patch(resource_version.as_deref())))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => resource_version = None,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Err(kube::Error::Api(
        kube::core::Status::failure("the actor kept changing under the write", "Conflict")
            .with_code(409)
            .boxed(),
    ))
}

/// Claims assignments through the Kubernetes API (see [`crate::host::Claimer`]).
pub struct KubeClaimer {
    pub client: Client,
    pub pod: String,
    pub revision: String,
}

#[async_trait::async_trait]
impl Claimer for KubeClaimer {
    async fn claim(
        &self,
        key: &ActorKey,
        epoch: u64,
        resource_version: Option<&str>,
        running: &RuntimeStatus,
    ) -> Claim {
        let api: Api<Actor> = Api::namespaced(self.client.clone(), &key.namespace);
        let (pod, revision) = (self.pod.as_str(), self.revision.as_str());
        let written = conditional_write(
            &api,
            &key.name,
            resource_version.map(str::to_string),
            |rv| claim_patch(&key.name, running, pod, revision, rv),
            |a| assigned_to(a, pod, epoch) && a.metadata.deletion_timestamp.is_none(),
        )
        .await;
        match written {
            Ok(true) => Claim::Won,
            Ok(false) => Claim::Lost(format!(
                "the actor is no longer assigned to {pod} under epoch {epoch}"
            )),
            Err(e) => Claim::Failed(e.to_string()),
        }
    }
}

/// Confirms a departure; false when it must be tried again.
async fn confirm(client: &Client, pod: &str, d: &Departure) -> bool {
    let api: Api<Actor> = Api::namespaced(client.clone(), &d.key.namespace);
    // Moot once the actor has a newer assignment (or is back here under the same one).
    let still =
        |a: &Actor| a.assignment_epoch().unwrap_or(0) == d.epoch && !a.labels().contains_key(labels::WORKER);
    match conditional_write(
        &api,
        &d.key.name,
        d.resource_version.clone(),
        |rv| departed_patch(&d.key.name, pod, d.epoch, rv),
        still,
    )
    .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(actor = %d.key, error = %e, "confirming a departure failed; retrying");
            false
        }
    }
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

/// What the status writer last wrote of each actor, and when.
pub type Written = HashMap<ActorKey, (RuntimeStatus, Instant)>;

/// Writes status every `every` until `stop` is sent, and returns what it wrote. A batch under way
/// when `stop` comes ends first: a departure it took is confirmed, not lost with the task.
pub async fn run(
    client: Client,
    host: Arc<Host>,
    every: Duration,
    counter_every: Duration,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Written {
    let mut written = Written::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => flush(&client, &host, &mut written, counter_every).await,
            _ = &mut stop => return written,
        }
    }
}

/// One batch: every changed status, up to 16 writes in flight.
pub async fn flush(client: &Client, host: &Host, written: &mut Written, counter_every: Duration) {
    // What won claims wrote is published already.
    for (key, status) in host.take_claimed() {
        written.insert(key, (status, Instant::now()));
    }
    // Confirm departures first: the operator waits for them to place the actors elsewhere.
    let pod = host.config().pod.clone();
    let departed = host.take_departed();
    let confirmed: Vec<_> = futures::stream::iter(departed)
        .map(|d| {
            let pod = pod.clone();
            async move {
                let ok = host.is_hosted(&d.key) || confirm(client, &pod, &d).await;
                (d, ok)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (d, ok) in confirmed {
        written.remove(&d.key);
        if !ok {
            host.retry_departure(d);
        }
    }
    // A worker that cannot prove its lease, or has not re-read its assignments since a fence,
    // says nothing about where actors run: its snapshot may be stale (after a pause they run
    // elsewhere by now), and an unconditional write would overwrite the status of the worker
    // that really runs them. Departures above are conditional, so they go on.
    if host.is_fenced() || !host.config().lease.is_live() {
        return;
    }
    let snapshot = host.snapshot();
    let live: std::collections::HashSet<_> = snapshot.iter().map(|(k, _)| k.clone()).collect();
    written.retain(|k, _| live.contains(k));
    let changed: Vec<_> = snapshot
        .into_iter()
        .filter(|(k, s)| s.publishable() && needs_write(written.get(k), s, counter_every))
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
            epoch: 3,
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
            claimed: true,
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
        assert_eq!(st["epoch"], 3, "the status names the epoch the actor runs under");
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

    #[test]
    fn a_departure_names_the_worker_and_epoch_and_is_conditional_on_what_the_worker_saw() {
        let p = departed_patch("a", "w-1", 7, Some("42"));
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        assert_eq!(p["status"]["phase"], "Migrating");
        assert_eq!(p["status"]["worker"], "w-1");
        assert_eq!(p["status"]["epoch"], 7);
        let placed = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Placed")
            .expect("the departure says the actor is between placements");
        assert_eq!(
            (&placed["status"], &placed["reason"]),
            (&json!("False"), &json!("Moving"))
        );
    }

    #[test]
    fn an_actor_is_published_only_once_claimed_unless_it_is_paused_or_failed() {
        let mut s = status(0);
        s.claimed = false;
        for (phase, published) in [
            (ActorPhase::Starting, false),
            (ActorPhase::Pending, false),
            (ActorPhase::Paused, true),
            (ActorPhase::Failed, true),
        ] {
            s.phase = phase;
            assert_eq!(s.publishable(), published, "{phase:?}");
        }
        s.claimed = true;
        s.phase = ActorPhase::Starting;
        assert!(s.publishable());
    }

    #[test]
    fn a_claim_is_conditional_on_the_version_the_assignment_was_read_at() {
        let mut running = status(0);
        running.epoch = 7;
        let p = claim_patch("a", &running, "w-1", "r1", Some("42"));
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["revision"], "r1");
        assert_eq!(
            (&p["status"]["worker"], &p["status"]["epoch"]),
            (&json!("w-1"), &json!(7))
        );
    }
}
