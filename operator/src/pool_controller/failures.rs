//! Actors that failed on their worker — a behaviour it does not know, a config it cannot read,
//! the restart limit — are told once as a Warning Event on the actor, with the worker's reason
//! and error. The worker writes the status; the operator, which may write Events in every
//! namespace, tells it, so that `kubectl describe actor` and `kubectl get events` show why.

use std::{collections::HashMap, sync::Mutex};

use kube::{
    ResourceExt,
    runtime::{events::EventType, reflector::ObjectRef},
};
use troupe_crds::{Actor, ActorPhase};

use super::observe::Snapshot;
use crate::{context::Context, placement::write::event};

/// The failure last told of each actor, by (namespace, name): told again only when it changes.
#[derive(Default)]
pub struct ToldFailures(Mutex<HashMap<(String, String), String>>);

/// The reason and message of a failed actor, from its status (`Ready` condition and
/// `lastError`).
fn failure_of(actor: &Actor) -> Option<(String, String)> {
    let status = actor.status.as_ref()?;
    if status.phase != Some(ActorPhase::Failed) {
        return None;
    }
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    let reason = ready
        .map(|c| c.reason.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "Failed".into());
    let message = status
        .last_error
        .clone()
        .or_else(|| ready.map(|c| c.message.clone()))
        .unwrap_or_default();
    Some((reason, message))
}

/// Tells each newly failed actor of the pool; forgets actors no longer failed.
pub(super) async fn tell_failures(ctx: &Context, snap: &Snapshot) {
    let mut to_tell = Vec::new();
    {
        let mut told = ctx.told_failures.0.lock().unwrap_or_else(|e| e.into_inner());
        for actor in &snap.actors {
            let key = (snap.ns.clone(), actor.name_any());
            match failure_of(actor) {
                Some((reason, message)) => {
                    let said = format!("{reason}: {message}");
                    if told.get(&key) != Some(&said) {
                        told.insert(key, said);
                        to_tell.push((actor.clone(), reason, message));
                    }
                }
                None => {
                    told.remove(&key);
                }
            }
        }
        // Actors deleted since (in any pool): their entries would stay forever.
        told.retain(|(ns, name), _| ctx.actors.get(&ObjectRef::new(name).within(ns)).is_some());
    }
    for (actor, reason, message) in to_tell {
        event(ctx, &actor, EventType::Warning, &reason, "Run", message).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ActorFixture;

    #[test]
    fn a_failed_actor_is_told_with_its_workers_reason_and_error_and_a_running_one_is_not() {
        let mut failed = Actor::test("a");
        let status = failed.status.get_or_insert_with(Default::default);
        status.phase = Some(ActorPhase::Failed);
        status.last_error = Some("unknown behavior \"teleporter\"".into());
        status.conditions.push(troupe_crds::common::Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "UnknownBehavior".into(),
            message: "unknown behavior".into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        });
        assert_eq!(
            failure_of(&failed),
            Some(("UnknownBehavior".into(), "unknown behavior \"teleporter\"".into()))
        );
        assert_eq!(failure_of(&Actor::test("b")), None);
    }
}
