//! Rollout commands given by annotation (promote, abort, retry, undo) and what a decision tells
//! people: the pool's Events and the rollout metrics.

use std::time::Instant;

use kube::{
    Api, Resource, ResourceExt,
    api::Patch,
    runtime::events::{Event, EventType},
};
use serde_json::{Value, json};
use troupe_crds::{ActorPool, labels};

use super::Error;
use crate::{
    context::Context,
    deployment::deployment_name,
    placement::{merge_params, write::publish},
    revision::revision_of,
    rollout::{AlertHit, Command, Decision},
};

/// The command set by annotation on the pool, if any (promote wins over retry over abort only
/// if several are set at once, which kubectl users rarely do).
pub(super) fn command_of(pool: &ActorPool) -> Option<(Command, &'static str)> {
    let a = pool.annotations();
    [
        (labels::ABORT, Command::Abort),
        (labels::PROMOTE, Command::Promote),
        (labels::RETRY, Command::Retry),
    ]
    .into_iter()
    .find(|(key, _)| a.contains_key(*key))
    .map(|(key, c)| (c, key))
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

/// `troupe.dev/undo`: the previous revision's template goes back into the spec.
pub(super) async fn undo(
    ctx: &Context,
    pool: &ActorPool,
    ns: &str,
    previous: Option<&str>,
) -> Result<(), Error> {
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

/// Removes a command annotation the decision acted on.
pub(super) async fn clear_command(ctx: &Context, pool: &ActorPool, key: &str) -> Result<(), Error> {
    let patch = json!({"metadata": {"annotations": {key: null}}});
    let after = Api::<ActorPool>::namespaced(ctx.client.clone(), &pool.namespace().unwrap_or_default())
        .patch(&pool.name_any(), &merge_params(), &Patch::Merge(patch))
        .await
        .map_err(Error::WriteSpec)?;
    ctx.wrote(pool, &after);
    Ok(())
}
