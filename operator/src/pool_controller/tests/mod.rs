//! The write sequence of a pool reconcile, checked against a mock API server: what one
//! reconcile writes, with which precondition, in which order — and that it writes nothing else.
//!
//! The placement protocol these writes carry out is in docs/architecture.md ("Single
//! activation: the placement protocol"): every actor write is conditional on the
//! resourceVersion it was decided from; a status explains a label change before the worker acts
//! on it; a worker that looks gone is read again before its actors fail over.
//!
//! Unless a scenario says otherwise, the control plane serves no core/v1 (as the local one
//! does): the reconcile asks once, then writes no ServiceAccount or Service.

use std::time::Duration;

use http::StatusCode;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use troupe_crds::{Actor, ActorPhase, ActorPool, labels};

use super::{Error, reconcile};

mod workers;
use crate::{
    deployment::{WorkerSettings, deployment_name},
    fixtures::{
        ActorFixture, Caches, Expected, LEASE_SECONDS, LeaseFixture, PoolFixture, Reply, Stage, actor_path,
        actor_status_path, deployment_of, deployment_path, deployment_with, last_renewal_seen, lease_path,
        pool_status_path, run_scenario, test_context, test_context_with,
    },
};

/// The discovery of core/v1, answered as a control plane without it answers.
fn no_core_v1() -> Stage {
    Expected::get("the discovery of core/v1", "/api/v1".into())
        .reply(Reply::not_found())
        .into()
}

/// The label-and-epoch merge patch of an assignment to `worker` under `epoch`, conditional on
/// `read_at`; it also drops `troupe.dev/released-from` and, for an actor whose stop no worker
/// confirmed, any `troupe.dev/handoff-from`.
fn assignment(actor: &Actor, worker: &str, epoch: u64, read_at: &str, answered_at: &str) -> Expected {
    assignment_handing_over(actor, worker, epoch, None, read_at, answered_at)
}

/// An assignment that names where the actor's state waits (`handoff`: `<pod>/<epoch>`).
fn assignment_handing_over(
    actor: &Actor,
    worker: &str,
    epoch: u64,
    handoff: Option<&str>,
    read_at: &str,
    answered_at: &str,
) -> Expected {
    let name = actor.metadata.name.clone().unwrap_or_default();
    Expected::merge_patch(
        &format!("the assignment of {name} to {worker}"),
        actor_path(&name),
    )
    .body(json!({"metadata": {
        "resourceVersion": read_at,
        "labels": {labels::WORKER: worker, labels::RELEASED_FROM: null},
        "annotations": {labels::EPOCH: epoch.to_string(), labels::HANDOFF_FROM: handoff},
    }}))
    .reply(Reply::merged(actor, answered_at))
}

/// The operator's status apply of an actor, conditional on `read_at`, answered at `answered_at`.
fn actor_status(
    actor: &Actor,
    what: &str,
    read_at: &str,
    status: Value,
    placed: (&str, &str),
    answered_at: &str,
) -> Expected {
    let name = actor.metadata.name.clone().unwrap_or_default();
    let (placed_status, placed_reason) = (placed.0.to_string(), placed.1.to_string());
    Expected::apply(&format!("{name}'s status: {what}"), actor_status_path(&name))
        .body_includes(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
            "metadata": {"resourceVersion": read_at},
            "status": status,
        }))
        .body_with(move |body| {
            let placed = condition(body, "Placed");
            assert_eq!(
                (placed["status"].as_str(), placed["reason"].as_str()),
                (Some(placed_status.as_str()), Some(placed_reason.as_str())),
                "{body}"
            );
        })
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

/// Actors (name, resourceVersion) running on `worker` under epoch 1.
fn running_on(worker: &str, actors: &[(&str, &str)]) -> Vec<Actor> {
    actors
        .iter()
        .map(|(n, rv)| {
            Actor::test(n)
                .on_worker(worker)
                .epoch(1)
                .phase(ActorPhase::Running, Some(worker))
                .version(rv)
        })
        .collect()
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

#[tokio::test]
async fn a_replica_that_loses_its_leadership_while_applying_a_deployment_places_no_actor() {
    let pool = ActorPool::test("p");
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: vec![Actor::test("a1").in_pool("p")],
        leases: live_workers(&pool, 1),
        deployments: vec![],
    });
    let leadership = ctx.leadership.clone();
    let name = deployment_name("p", &pool.current_revision());
    let script = vec![
        no_core_v1(),
        Expected::apply("the Deployment of the current revision", deployment_path(&name))
            .then(move || leadership.revoke())
            .reply(Reply::Echo(StatusCode::OK))
            .into(),
    ];
    let action = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert_eq!(
        action.expect("not an error"),
        Action::requeue(Duration::from_secs(1))
    );
}

/// A pool of one live worker `w-1`, and `a1` on worker `w-gone`, whose lease is in the cache
/// as renewed last [`LEASE_SECONDS`] + 5 s ago on the operator's clock: it looks expired.
fn worker_looking_gone() -> (ActorPool, Actor, Lease, Caches) {
    let pool = ActorPool::test("p");
    let gone = Lease::test_worker("w-gone")
        .pool("p")
        .revision(&pool.current_revision());
    let a1 = Actor::test("a1")
        .on_worker("w-gone")
        .epoch(2)
        .phase(ActorPhase::Running, Some("w-gone"))
        .version("21");
    let mut leases = live_workers(&pool, 1);
    leases.push(gone.clone());
    let caches = Caches {
        pools: vec![pool.clone()],
        actors: vec![a1.clone()],
        leases,
        deployments: vec![deployment_of(&pool)],
    };
    (pool, a1, gone, caches)
}

fn looks_expired() -> Duration {
    Duration::from_secs(LEASE_SECONDS as u64 + 5)
}

#[tokio::test]
async fn an_actor_whose_workers_lease_looks_expired_fails_over_only_after_a_fresh_read_finds_the_lease_gone()
{
    let (pool, a1, gone, caches) = worker_looking_gone();
    let (ctx, server) = test_context(caches);
    last_renewal_seen(&ctx, &gone, looks_expired());
    let rev = pool.current_revision();
    let script = vec![
        // Read before anything moves: a stalled Lease watch must never fail a pool over.
        Expected::get("a fresh read of w-gone's lease", lease_path("w-gone"))
            .reply(Reply::not_found())
            .into(),
        no_core_v1(),
        // Status first (the worker acts on the label), both conditional, epoch above the old 2.
        actor_status(
            &a1,
            "placed on w-1 under epoch 3",
            "21",
            json!({"phase": "Placed", "worker": "w-1", "revision": rev, "epoch": 3}),
            ("True", "Placed"),
            "22",
        )
        .into(),
        assignment(&a1, "w-1", 3, "22", "23").into(),
        Expected::event("Warning", "FailedOver", "a1").into(),
        pool_status(&pool, |body| {
            assert_eq!(body["status"]["readyWorkers"], 1, "w-gone is gone: {body}");
        }),
    ];
    let action = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert_eq!(
        action.expect("the reconcile succeeds"),
        Action::requeue(super::RESYNC)
    );
}

#[tokio::test]
async fn an_actor_stays_on_its_worker_when_the_fresh_read_shows_the_lease_renewed() {
    let (pool, _a1, gone, caches) = worker_looking_gone();
    let (ctx, server) = test_context(caches);
    last_renewal_seen(&ctx, &gone, looks_expired());
    // The cache lags: the API server has a renewal the watch has not brought.
    let renewed = gone.clone().renewed_at("2026-01-01T00:00:09.000000Z");
    let script = vec![
        Expected::get("a fresh read of w-gone's lease", lease_path("w-gone"))
            .reply(Reply::Object(serde_json::to_value(&renewed).expect("json")))
            .into(),
        no_core_v1(),
        // No write to a1.
        pool_status(&pool, |body| {
            assert_eq!(body["status"]["readyWorkers"], 2, "w-gone is live: {body}");
        }),
    ];
    let action = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert_eq!(
        action.expect("the reconcile succeeds"),
        Action::requeue(super::RESYNC)
    );
}

#[tokio::test]
async fn a_conflict_on_an_actor_write_is_not_retried_with_another_version_and_asks_for_a_reconcile_soon() {
    let pool = ActorPool::test("p").replicas(2);
    // a1 waited for a worker (it has a status, so it gets a status write first); a2 is new.
    let a1 = Actor::test("a1").pending_because("NoWorker").version("31");
    let a2 = Actor::test("a2").version("32");
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: vec![a1.clone(), a2.clone()],
        leases: live_workers(&pool, 2),
        deployments: vec![deployment_of(&pool)],
    });
    let metrics = ctx.metrics.clone();
    let rev = pool.current_revision();
    let script = vec![
        no_core_v1(),
        Stage::interleaved(vec![
            // a1 changed since the cache's copy (a worker wrote, a watch lags): refused, and its
            // label is then not written at all — neither from the refused version nor another.
            vec![
                actor_status(
                    &a1,
                    "placed on w-1",
                    "31",
                    json!({"phase": "Placed", "worker": "w-1", "revision": rev, "epoch": 1}),
                    ("True", "Placed"),
                    "unused",
                )
                .reply(Reply::conflict()),
            ],
            // The other actors' writes go on.
            vec![assignment(&a2, "w-2", 1, "32", "33")],
        ]),
        Expected::event("Normal", "Placed", "p").into(),
        pool_status(&pool, |_| {}),
    ];
    let action = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert_eq!(
        action.expect("a conflict is not an error"),
        Action::requeue(Duration::from_millis(200)),
        "decided again soon, from a fresh copy"
    );
    assert_eq!((metrics.conflicts.get(), metrics.placements.get()), (1, 1));
}

#[tokio::test]
async fn an_actor_whose_stop_its_worker_confirmed_is_assigned_with_where_its_state_waits() {
    let pool = ActorPool::test("p").replicas(2);
    // a1 left w-1 under epoch 1, and w-1 confirmed the stop (Migrating): its state waits there.
    let a1 = Actor::test("a1")
        .epoch(1)
        .phase(ActorPhase::Migrating, Some("w-1"))
        .version("41");
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: vec![a1.clone()],
        leases: live_workers(&pool, 2),
        deployments: vec![deployment_of(&pool)],
    });
    let rev = pool.current_revision();
    let script = vec![
        no_core_v1(),
        actor_status(
            &a1,
            "placed on w-1",
            "41",
            json!({"phase": "Placed", "worker": "w-1", "revision": rev, "epoch": 2}),
            ("True", "Placed"),
            "42",
        )
        .into(),
        assignment_handing_over(&a1, "w-1", 2, Some("w-1/1"), "42", "43").into(),
        Expected::event("Normal", "Placed", "p").into(),
        pool_status(&pool, |_| {}),
    ];
    let action = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert!(action.is_ok(), "{action:?}");
}

#[tokio::test]
async fn an_actor_taken_off_a_live_worker_is_unlabelled_as_released_from_it_in_one_write() {
    // Three actors on w-1, none on w-2 (it just joined): the busiest worker gives one up.
    let pool = ActorPool::test("p").replicas(2);
    let actors = running_on("w-1", &[("a1", "11"), ("a2", "12"), ("a3", "13")]);
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: actors.clone(),
        leases: live_workers(&pool, 2),
        deployments: vec![deployment_of(&pool)],
    });
    let a3 = &actors[2];
    let script = vec![
        no_core_v1(),
        // Its status already names w-1, where it still runs until w-1 confirms the stop (that
        // confirmation writes the move into the status): the label goes, conditional on the
        // version the decision saw, and nothing else is written to the actor. The epoch
        // annotation stays: w-1 confirms the stop under it.
        Expected::merge_patch("the release of a3 from w-1", actor_path("a3"))
            .body(json!({"metadata": {
                "resourceVersion": "13",
                "labels": {labels::WORKER: null, labels::RELEASED_FROM: "w-1"},
                "annotations": {labels::HANDOFF_FROM: null},
            }}))
            .reply(Reply::merged(a3, "15"))
            .into(),
        // One Event on the pool says what moved, none on each actor.
        Expected::event("Normal", "Moving", "p")
            .body_with(|body| {
                let note = body["note"].as_str().unwrap_or_default();
                assert!(note.contains("moving 1 actors (1 off worker w-1)"), "{note}");
            })
            .into(),
        // Not assigned to w-2 in the same reconcile: only once w-1 confirmed the stop.
        pool_status(&pool, |_| {}),
    ];
    let action = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert_eq!(
        action.expect("the reconcile succeeds"),
        Action::requeue(super::RESYNC)
    );
}

#[tokio::test]
async fn the_placed_event_counts_only_the_assignments_that_were_written() {
    let pool = ActorPool::test("p").replicas(2);
    let a1 = Actor::test("a1").version("31");
    let a2 = Actor::test("a2").version("32");
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: vec![a1.clone(), a2.clone()],
        leases: live_workers(&pool, 2),
        deployments: vec![deployment_of(&pool)],
    });
    let script = vec![
        no_core_v1(),
        Stage::interleaved(vec![
            vec![assignment(&a1, "w-1", 1, "31", "unused").reply(Reply::conflict())],
            vec![assignment(&a2, "w-2", 1, "32", "33")],
        ]),
        Expected::event("Normal", "Placed", "p")
            .body_with(|body| {
                let note = body["note"].as_str().unwrap_or_default();
                assert!(
                    note.starts_with("placed 1 actors "),
                    "one assignment was written: {note}"
                );
            })
            .into(),
        pool_status(&pool, |_| {}),
    ];
    run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx))
        .await
        .expect("the reconcile succeeds");
}

/// The Lease cache lags behind a worker's last renewal, which the fresh read brought; then the
/// worker dies. What the cache shows is older than what was read, not a renewal. (Counting every
/// change as a renewal made the cache and the fresh reads alternate, each looking renewed: a dead
/// worker stayed live as long as the watch lagged.)
#[tokio::test]
async fn a_lagging_lease_cache_does_not_count_as_a_renewal_after_a_fresh_read() {
    let (pool, a1, gone, caches) = worker_looking_gone();
    let (ctx, server) = test_context(caches);
    let renewed = gone.clone().renewed_at("2026-01-01T00:00:09.000000Z");
    // The operator saw the cache's renewal long ago, then the newer one in a fresh read a lease
    // ago; the worker died right after that renewal, and the watch still lags.
    last_renewal_seen(&ctx, &gone, Duration::from_secs(40));
    last_renewal_seen(&ctx, &renewed, looks_expired());
    let rev = pool.current_revision();
    let script = vec![
        Expected::get("a fresh read of w-gone's lease", lease_path("w-gone"))
            .reply(Reply::Object(serde_json::to_value(&renewed).expect("json")))
            .into(),
        no_core_v1(),
        actor_status(
            &a1,
            "placed on w-1 under epoch 3",
            "21",
            json!({"phase": "Placed", "worker": "w-1", "revision": rev, "epoch": 3}),
            ("True", "Placed"),
            "22",
        )
        .into(),
        assignment(&a1, "w-1", 3, "22", "23").into(),
        Expected::event("Warning", "FailedOver", "a1").into(),
        pool_status(&pool, |_| {}),
    ];
    run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx))
        .await
        .expect("the reconcile succeeds");
}
