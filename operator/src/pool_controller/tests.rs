//! The write sequence of a pool reconcile, checked against a mock API server: what one
//! reconcile writes, with which precondition, in which order — and that it writes nothing else.
//!
//! The placement protocol these writes carry out is in docs/architecture.md ("Single
//! activation: the placement protocol"): every actor write is conditional on the
//! resourceVersion it was decided from; a status explains a label change before the worker acts
//! on it; a worker that looks gone is read again before its actors fail over.
//!
//! Every scenario starts on a control plane that serves no core/v1 (as the local one): the
//! reconcile asks once, and then writes no ServiceAccount or Service.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use troupe_crds::{Actor, ActorPool, labels};

use super::reconcile;
use crate::fixtures::{
    ActorFixture, Caches, Expected, LeaseFixture, PoolFixture, Reply, Stage, actor_path, deployment_of,
    pool_status_path, run_scenario, test_context,
};

/// The discovery of core/v1, answered as a control plane without it answers.
fn no_core_v1() -> Stage {
    Expected::get("the discovery of core/v1", "/api/v1".into())
        .reply(Reply::not_found())
        .into()
}

/// The label-and-epoch merge patch of an assignment to `worker` under `epoch`, conditional on
/// `read_at`; it also drops `troupe.dev/released-from`.
fn assignment(actor: &Actor, worker: &str, epoch: u64, read_at: &str, answered_at: &str) -> Expected {
    let name = actor.metadata.name.clone().unwrap_or_default();
    Expected::merge_patch(
        &format!("the assignment of {name} to {worker}"),
        actor_path(&name),
    )
    .body(json!({"metadata": {
        "resourceVersion": read_at,
        "labels": {labels::WORKER: worker, labels::RELEASED_FROM: null},
        "annotations": {labels::EPOCH: epoch.to_string()},
    }}))
    .reply(Reply::merged(actor, answered_at))
}

/// The pool's one status write (a forced apply of the status subresource).
fn pool_status(pool: &ActorPool, check: impl FnOnce(&Value) + Send + 'static) -> Stage {
    let name = pool.metadata.name.clone().unwrap_or_default();
    Expected::apply("the pool's status", pool_status_path(&name))
        .body_includes(json!({"apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool"}))
        .body_with(check)
        .reply(Reply::merged(pool, "8"))
        .into()
}

/// The condition of `type_` in a status body.
fn condition<'a>(body: &'a Value, type_: &str) -> &'a Value {
    body["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no condition {type_} in {body}"))
}

/// `n` live workers `w-1`… of `pool`'s current revision.
fn live_workers(pool: &ActorPool, n: usize) -> Vec<Lease> {
    let rev = pool.current_revision();
    (1..=n)
        .map(|i| Lease::test_worker(&format!("w-{i}")).pool("p").revision(&rev))
        .collect()
}

#[tokio::test]
async fn new_actors_get_one_label_and_epoch_patch_each_from_the_version_read_and_the_pool_one_status_write() {
    let pool = ActorPool::test("p").replicas(3);
    let actors: Vec<Actor> = [("a1", "41"), ("a2", "42"), ("a3", "43")]
        .iter()
        .map(|(n, rv)| Actor::test(n).in_pool("p").version(rv))
        .collect();
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: actors.clone(),
        leases: live_workers(&pool, 3),
        deployments: vec![deployment_of(&pool)],
    });
    let rev = pool.current_revision();
    let script = vec![
        no_core_v1(),
        // The Deployment in the cache is the one the pool asks for: not applied again.
        // Each new actor: one write of label and epoch 1, no status (its worker's claim writes it).
        Stage::interleaved(vec![
            vec![assignment(&actors[0], "w-1", 1, "41", "51")],
            vec![assignment(&actors[1], "w-2", 1, "42", "52")],
            vec![assignment(&actors[2], "w-3", 1, "43", "53")],
        ]),
        Expected::event("Normal", "Placed", "p").into(),
        pool_status(&pool, move |body| {
            let status = &body["status"];
            assert_eq!(status["phase"], "Healthy", "{body}");
            assert_eq!(
                status["stableRevision"],
                json!(rev),
                "the first revision is stable at once"
            );
            assert_eq!(
                (&status["readyWorkers"], &status["desiredWorkers"]),
                (&json!(3), &json!(3))
            );
            assert_eq!(status["actors"], json!({"total": 3, "byPhase": {"Pending": 3}}));
            assert_eq!(condition(body, "WorkersDeployed")["status"], "True");
            assert_eq!(condition(body, "Available")["reason"], "AllWorkersReady");
        }),
    ];
    let action = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert_eq!(
        action.expect("the reconcile succeeds"),
        Action::requeue(super::RESYNC)
    );
}

#[tokio::test]
async fn a_replica_that_cannot_prove_its_leadership_writes_nothing() {
    let pool = ActorPool::test("p");
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: vec![Actor::test("a1").in_pool("p")],
        leases: live_workers(&pool, 1),
        deployments: vec![],
    });
    // Paused past its proof, or cut off from the API server: another replica may lead by now.
    ctx.leadership.revoke();
    let action = run_scenario(ctx, server, vec![], |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert_eq!(
        action.expect("not an error: it just waits"),
        Action::requeue(Duration::from_secs(1))
    );
}
