//! Rollout commands given by annotation (promote, abort, retry, undo) and what a decision tells
//! people: the pool's Events and the rollout metrics.

use std::time::Instant;

use kube::{
    Api, Resource, ResourceExt,
    api::Patch,
    runtime::events::{Event, EventType},
};
use serde_json::{Value, json};
use troupe_crds::{ActorPool, HandledCommand, labels};

use super::Error;
use crate::{
    context::Context,
    deployment::deployment_name,
    placement::{merge_params, write::publish},
    revision::revision_of,
    rollout::{AlertHit, Command, Decision, Rollout},
};

/// A rollout command set by annotation on the pool.
pub(super) struct Given {
    pub command: Command,
    /// The annotation that gave it.
    pub key: &'static str,
    pub value: String,
    /// Acted on already (the status records it) while its removal did not land: only removed.
    pub handled: bool,
}

impl Given {
    /// What the status records once the command is acted on.
    pub fn record(&self) -> HandledCommand {
        HandledCommand {
            annotation: self.key.to_string(),
            value: self.value.clone(),
        }
    }
}

/// The command set by annotation on the pool, if any (abort wins over promote over retry if
/// several are set at once, which kubectl users rarely do).
pub(super) fn command_of(pool: &ActorPool) -> Option<Given> {
    let a = pool.annotations();
    let last = pool.status.as_ref().and_then(|s| s.last_command.as_ref());
    [
        (labels::ABORT, Command::Abort),
        (labels::PROMOTE, Command::Promote),
        (labels::RETRY, Command::Retry),
    ]
    .into_iter()
    .find_map(|(key, command)| {
        let value = a.get(key)?.clone();
        let handled = last.is_some_and(|l| l.annotation == key && l.value == value);
        Some(Given {
            command,
            key,
            value,
            handled,
        })
    })
}

/// What the status records as the last command acted on: the command of this reconcile once
/// acted on; the previous record while its annotation is still there; nothing once it is gone
/// (so that the same value given again later is a new command).
pub(super) fn last_command(
    pool: &ActorPool,
    given: Option<&Given>,
    acted_on: bool,
) -> Option<HandledCommand> {
    match given {
        Some(g) if acted_on || g.handled => Some(g.record()),
        Some(_) => pool.status.as_ref().and_then(|s| s.last_command.clone()),
        None => None,
    }
}

/// An Event on the pool about `revision`: that revision's Deployment is the related object, so
/// that Events of one reason about different revisions are not folded into one series (which
/// would keep the first one's message).
pub(super) async fn pool_event(
    ctx: &Context,
    pool: &ActorPool,
    revision: &str,
    warning: bool,
    reason: &str,
    note: String,
) {
    let type_ = if warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    let secondary = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("Deployment".into()),
        name: Some(deployment_name(&pool.name_any(), revision)),
        namespace: pool.namespace(),
        ..Default::default()
    };
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Rollout".into(),
        secondary: Some(secondary),
    };
    publish(ctx, event, &pool.object_ref(&())).await;
}

/// `troupe.dev/undo`, as `kubectl rollout undo`: the template before the spec's current one goes
/// back into the spec (the stable one during or after a rollout of another, else the previous
/// stable). Whether it was asked (and done).
pub(super) async fn undo_if_asked(
    ctx: &Context,
    pool: &ActorPool,
    current: &Rollout,
    target: &str,
) -> Result<bool, Error> {
    if !pool.annotations().contains_key(labels::UNDO) {
        return Ok(false);
    }
    let back_to = match current.stable.as_deref() {
        Some(stable) if stable != target => Some(stable),
        _ => current.previous.as_deref(),
    };
    undo(ctx, pool, &pool.namespace().unwrap_or_default(), back_to).await?;
    Ok(true)
}

/// `troupe.dev/undo`: the previous revision's template goes back into the spec.
async fn undo(ctx: &Context, pool: &ActorPool, ns: &str, previous: Option<&str>) -> Result<(), Error> {
    let api: Api<ActorPool> = Api::namespaced(ctx.client.clone(), ns);
    let name = pool.name_any();
    let template = previous.and_then(|rev| {
        ctx.deployments
            .state()
            .into_iter()
            .find(|d| {
                d.namespace().as_deref() == Some(ns)
                    && d.labels().get(labels::POOL) == Some(&name)
                    && d.labels().get(labels::REVISION).map(String::as_str) == Some(rev)
            })
            .and_then(|d| d.annotations().get(labels::TEMPLATE).cloned())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    });
    let patch = match template {
        Some(t) => {
            pool_event(
                ctx,
                pool,
                previous.unwrap_or_default(),
                false,
                "Undone",
                format!("template of revision {} restored", previous.unwrap_or_default()),
            )
            .await;
            json!({"metadata": {"annotations": {labels::UNDO: null}}, "spec": {"template": t}})
        }
        None => {
            pool_event(
                ctx,
                pool,
                &revision_of(&pool.spec.template),
                true,
                "UndoImpossible",
                "no previous revision is kept (none, or its rollback window has passed)".into(),
            )
            .await;
            json!({"metadata": {"annotations": {labels::UNDO: null}}})
        }
    };
    api.patch(&name, &merge_params(), &Patch::Merge(patch))
        .await
        .map_err(Error::WriteSpec)?;
    Ok(())
}

/// What the decision means to people and to metrics, once it is recorded in status: rollback and
/// promotion metrics, rollout Events.
pub(super) async fn announce(
    ctx: &Context,
    pool: &ActorPool,
    target: &str,
    decision: &Decision,
    alert: Option<&(AlertHit, Instant)>,
) {
    let next = &decision.next;
    if let Some((kind, detect)) = decision.aborted {
        let kind = format!("{kind:?}").to_lowercase();
        ctx.metrics.rollbacks.with_label_values(&[&kind]).inc();
        if let Some(s) = detect {
            ctx.metrics.time_to_detect.with_label_values(&[&kind]).observe(s);
        }
        if let Some((_, received)) = alert {
            ctx.metrics
                .alert_to_decision
                .observe(received.elapsed().as_secs_f64());
        }
    }
    if let Some(s) = decision.rollback_completed {
        let kind = next
            .abort
            .as_ref()
            .map(|a| format!("{:?}", a.kind).to_lowercase())
            .unwrap_or_default();
        ctx.metrics
            .time_to_rollback
            .with_label_values(&[&kind])
            .observe(s);
        let aborted = next
            .abort
            .as_ref()
            .map(|a| a.revision.clone())
            .unwrap_or_default();
        pool_event(
            ctx,
            pool,
            &aborted,
            true,
            "RollbackComplete",
            format!(
                "every actor left revision {aborted} and is back on {} after {s:.1}s",
                next.stable.clone().unwrap_or_default()
            ),
        )
        .await;
    }
    if decision.promoted {
        ctx.metrics.promotions.inc();
    }
    for n in &decision.notes {
        pool_event(ctx, pool, target, n.warning, n.reason, n.message.clone()).await;
    }
}

/// Removes a command annotation the decision acted on (recorded in status first), on condition
/// that the pool is still at `version` (the one after the status write): a command given again
/// meanwhile stays, and is looked at by the next reconcile.
pub(super) async fn clear_command(
    ctx: &Context,
    pool: &ActorPool,
    key: &str,
    version: Option<&str>,
) -> Result<(), Error> {
    let patch = json!({"metadata": {"resourceVersion": version, "annotations": {key: null}}});
    let result = Api::<ActorPool>::namespaced(ctx.client.clone(), &pool.namespace().unwrap_or_default())
        .patch(&pool.name_any(), &merge_params(), &Patch::Merge(patch))
        .await;
    match result {
        Ok(after) => {
            ctx.wrote(pool, &after);
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(Error::WriteSpec(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(annotations: Value, last_command: Option<Value>) -> ActorPool {
        serde_json::from_value(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool",
            "metadata": {"name": "p", "namespace": "ns", "annotations": annotations},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}},
            "status": {"lastCommand": last_command},
        }))
        .unwrap()
    }

    #[test]
    fn a_command_whose_removal_did_not_land_is_recognised_and_not_acted_on_twice() {
        let record = json!({"annotation": labels::PROMOTE, "value": "2026-11-22T10:00:00Z"});
        let p = pool(json!({labels::PROMOTE: "2026-11-22T10:00:00Z"}), Some(record));
        let given = command_of(&p).unwrap();
        assert_eq!((given.command, given.handled), (Command::Promote, true));
        // Still recorded while its annotation is there.
        assert_eq!(last_command(&p, Some(&given), false), Some(given.record()));
    }

    #[test]
    fn the_same_command_given_again_with_a_new_value_is_a_new_command() {
        let record = json!({"annotation": labels::PROMOTE, "value": "2026-11-22T10:00:00Z"});
        let p = pool(json!({labels::PROMOTE: "2026-11-22T10:05:00Z"}), Some(record));
        let given = command_of(&p).unwrap();
        assert!(!given.handled);
        assert_eq!(
            last_command(&p, Some(&given), true).map(|c| c.value),
            Some("2026-11-22T10:05:00Z".into())
        );
    }

    #[test]
    fn the_record_of_a_command_is_cleared_once_its_annotation_is_gone() {
        let record = json!({"annotation": labels::ABORT, "value": "x"});
        let p = pool(json!({}), Some(record));
        assert!(command_of(&p).is_none());
        assert_eq!(last_command(&p, None, false), None);
    }

    #[test]
    fn a_command_not_yet_acted_on_keeps_the_previous_record() {
        let record = json!({"annotation": labels::ABORT, "value": "x"});
        let p = pool(json!({labels::PROMOTE: "y"}), Some(record.clone()));
        let given = command_of(&p).unwrap();
        assert_eq!(
            last_command(&p, Some(&given), false),
            Some(serde_json::from_value(record).unwrap())
        );
    }
}
