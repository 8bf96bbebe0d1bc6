use serde_json::json;
use troupe_crds::{
    ActorConfig, ActorPhase, ActorPoolStatus, AnalysisStep, CanaryStep, CanaryStrategy, PauseStep, PoolPhase,
    RolloutStrategy,
};

use super::*;
use crate::view::{
    actor::{ActorDetail, HIDDEN},
    event::events_about,
    pool::{PoolRow, StepState, Strategy, pool_rows, recent_rollbacks, strategy},
    worker::workers,
};

#[test]
fn a_pool_row_shows_its_revisions_workers_and_only_the_phases_that_have_actors_in_life_order() {
    let mut s = healthy("aaa111");
    s.actors = counts(&[("Running", 3), ("Failed", 1), ("Pending", 0), ("Pending2", 5)]);
    let row = PoolRow::of(&pool("demo", "payments", s));
    assert_eq!(row.stable.as_deref(), Some("aaa111"));
    assert_eq!((row.ready, row.desired), (2, 2));
    assert_eq!(
        row.by_phase,
        vec![("Running".to_string(), 3), ("Failed".to_string(), 1)],
        "zero counts and names that are not phases are left out"
    );
}

#[test]
fn the_overview_lists_pools_by_namespace_then_name_and_the_search_keeps_only_matching_names() {
    let pools = arcs([
        pool("b", "orders", healthy("r1")),
        pool("a", "payments", healthy("r2")),
        pool("a", "orders-eu", healthy("r3")),
    ]);
    let all: Vec<_> = pool_rows(&pools, "")
        .into_iter()
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect();
    assert_eq!(all, ["a/orders-eu", "a/payments", "b/orders"]);
    let found: Vec<_> = pool_rows(&pools, "ORDERS").into_iter().map(|r| r.name).collect();
    assert_eq!(found, ["orders-eu", "orders"]);
}

#[test]
fn recent_rollbacks_are_the_pools_last_aborts_newest_first_with_their_reasons() {
    let mut old = healthy("r1");
    old.abort = Some(abort("bad1", 10, "metric error-rate = 1.0 broke <= 0.05"));
    let mut new = healthy("r2");
    new.phase = Some(PoolPhase::Degraded);
    new.abort = Some(abort("bad2", 20, "alert WorkerDown fired"));
    let pools = arcs([
        pool("a", "old", old),
        pool("a", "quiet", healthy("r3")),
        pool("a", "new", new),
    ]);
    let r = recent_rollbacks(&pools, 10);
    assert_eq!(
        r.iter().map(|r| r.pool.as_str()).collect::<Vec<_>>(),
        ["new", "old"]
    );
    assert_eq!(r[0].abort.message, "alert WorkerDown fired");
    assert_eq!(recent_rollbacks(&pools, 1).len(), 1);
}

fn canary(steps: Vec<CanaryStep>) -> Option<RolloutStrategy> {
    Some(RolloutStrategy {
        canary: Some(CanaryStrategy {
            steps,
            scale_down_delay: "30s".into(),
            progress_deadline: "10m".into(),
        }),
        blue_green: None,
    })
}

fn step(weight: Option<i32>, pause: Option<PauseStep>, analysis: Option<AnalysisStep>) -> CanaryStep {
    CanaryStep {
        set_weight: weight,
        pause,
        analysis,
    }
}

#[test]
fn the_rollout_marks_steps_before_the_current_one_done_and_the_current_one_only_while_a_canary_rolls() {
    let steps = vec![
        step(Some(10), None, None),
        step(
            None,
            None,
            Some(AnalysisStep {
                count: Some(3),
                metrics: vec!["error-rate".into()],
            }),
        ),
        step(None, Some(PauseStep::default()), None),
    ];
    let mut p = pool(
        "a",
        "p",
        ActorPoolStatus {
            canary_revision: Some("c1".into()),
            current_step_index: Some(1),
            ..Default::default()
        },
    );
    p.spec.strategy = canary(steps);
    let Strategy::Canary(v) = strategy(&p) else {
        panic!("a canary")
    };
    assert_eq!(
        v.iter().map(|s| (s.text.as_str(), s.state)).collect::<Vec<_>>(),
        [
            ("setWeight 10", StepState::Done),
            ("analysis ×3 (error-rate)", StepState::Current),
            ("pause until promoted", StepState::Upcoming)
        ]
    );
    p.status.as_mut().unwrap().canary_revision = None;
    let Strategy::Canary(v) = strategy(&p) else {
        panic!("a canary")
    };
    assert!(
        v.iter().all(|s| s.state == StepState::Upcoming),
        "no rollout: no current step"
    );
}

#[test]
fn a_pool_without_a_strategy_shows_the_operators_default_of_one_step_to_100_percent() {
    let Strategy::Canary(v) = strategy(&pool("a", "p", healthy("r"))) else {
        panic!("a canary")
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].text, "setWeight 100");
}

#[test]
fn workers_come_from_their_pools_leases_with_lease_age_liveness_and_the_actors_placed_on_them() {
    let now = at(100);
    let leases = arcs([
        lease("a", "p-w1", "p", "r1", at(95), 15),
        lease("a", "p-w2", "p", "r1", at(50), 15),
        lease("a", "q-w1", "q", "r1", at(99), 15),
        lease("b", "p-w9", "p", "r1", at(99), 15),
    ]);
    let actors = arcs([
        actor("a", "x", "p", ActorPhase::Running, "p-w1", "r1"),
        actor("a", "y", "p", ActorPhase::Running, "p-w1", "r1"),
        actor("a", "z", "p", ActorPhase::Pending, "", ""),
    ]);
    let w = workers(&leases, &actors, &Default::default(), "a", "p", now);
    assert_eq!(
        w.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["p-w1", "p-w2"]
    );
    assert_eq!(
        (w[0].live, w[0].renewed_ago.as_deref(), w[0].actors_placed),
        (true, Some("5s"), 2)
    );
    assert_eq!(
        (w[1].live, w[1].actors_placed),
        (false, 0),
        "renewed 50 s ago with a 15 s lease"
    );
}

#[test]
fn events_about_an_object_are_only_its_own_in_its_namespace_newest_first() {
    let events = arcs([
        event("a", "ActorPool", "p", "Old", at(1)),
        event("a", "ActorPool", "p", "New", at(9)),
        event("a", "Actor", "p", "SameNameOtherKind", at(5)),
        event("b", "ActorPool", "p", "OtherNamespace", at(5)),
    ]);
    let rows = events_about(&events, "ActorPool", "a", "p", 10);
    assert_eq!(
        rows.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        ["New", "Old"]
    );
    assert_eq!(rows[0].count, 1);
}

#[test]
fn an_actors_config_hides_the_values_of_credential_like_keys_at_any_depth_and_keeps_the_rest() {
    let mut a = actor("a", "x", "p", ActorPhase::Running, "w", "r");
    let config = json!({
        "start": 3,
        "dbPassword": "hunter2",
        "nested": {"api-key": "k-123", "AUTH_TOKEN": {"deep": "t-456"}, "list": [{"clientSecret": "s-789"}]},
    });
    a.spec.config = Some(ActorConfig::from_map(config.as_object().unwrap().clone()));
    let shown = ActorDetail::of(&a).config.unwrap().unwrap();
    for secret in ["hunter2", "k-123", "t-456", "s-789"] {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    assert_eq!(shown.matches(HIDDEN).count(), 4, "{shown}");
    assert!(shown.contains("\"start\": 3"), "{shown}");
}

#[test]
fn an_actor_page_tells_whether_its_status_describes_the_current_spec_and_shows_both_epochs() {
    let mut a = actor("a", "x", "p", ActorPhase::Running, "w", "r");
    a.metadata.generation = Some(3);
    a.metadata.annotations = Some([(labels::EPOCH.to_string(), "8".to_string())].into());
    let s = a.status.as_mut().unwrap();
    s.observed_generation = Some(2);
    s.epoch = Some(7);
    s.last_error = Some("boom".into());
    let d = ActorDetail::of(&a);
    assert!(!d.up_to_date);
    assert_eq!((d.epoch, d.assignment_epoch), (Some(7), Some(8)));
    assert_eq!(d.last_error.as_deref(), Some("boom"));
    assert_eq!(d.config, Ok(None));
    assert!(
        d.restart_policy.starts_with("Always, at most 5 restarts in 10m"),
        "{}",
        d.restart_policy
    );
}

#[test]
fn a_lease_older_than_its_duration_counts_as_expired_even_by_one_second() {
    let leases = arcs([lease("a", "w", "p", "r", at(0), 10)]);
    assert!(workers(&leases, &[], &Default::default(), "a", "p", at(0) + secs(10))[0].live);
    assert!(!workers(&leases, &[], &Default::default(), "a", "p", at(0) + secs(11))[0].live);
}
