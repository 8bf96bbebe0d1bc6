use serde_json::{Value, json};
use troupe_crds::{AbortKind, MeasurementOutcome, MetricResult, PoolPhase};

use super::*;

mod waiting;

/// A pool with 4 replicas and the given strategy (and analysis, when given).
fn pool(strategy: Value, analysis: Option<Value>, rollback: Option<Value>) -> ActorPool {
    let mut spec = json!({
        "replicas": 4,
        "template": {"spec": {"containers": [{"name": "w", "image": "troupe/worker:1"}]}},
        "strategy": strategy,
    });
    if let Some(a) = analysis {
        spec["analysis"] = a;
    }
    if let Some(r) = rollback {
        spec["rollback"] = r;
    }
    serde_json::from_value(json!({
        "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": spec,
    }))
    .unwrap()
}

fn canary(steps: Value) -> Value {
    json!({"canary": {"steps": steps, "scaleDownDelay": "30s", "progressDeadline": "10m"}})
}

fn error_rate_analysis(failure_limit: i32) -> Value {
    json!({"interval": "10s", "failureLimit": failure_limit, "inconclusiveLimit": 1,
           "metrics": [{"name": "errors", "template": "ErrorRate"}]})
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

struct Sim {
    pool: ActorPool,
    r: Rollout,
    now: i64,
}

impl Sim {
    fn new(pool: ActorPool) -> Self {
        let r = Rollout {
            stable: Some("old".into()),
            ..Default::default()
        };
        Self { pool, r, now: 0 }
    }

    fn step_with(&mut self, secs: i64, f: impl FnOnce(&mut Observed)) -> Decision {
        self.now += secs;
        let mut obs = Observed {
            target: "new",
            now: t(self.now),
            target_workers: 4,
            settled: true,
            round: None,
            command: None,
            alert: None,
        };
        f(&mut obs);
        let d = advance(&self.pool, &self.r, &obs);
        self.r = d.next.clone();
        d
    }

    fn step(&mut self, secs: i64) -> Decision {
        self.step_with(secs, |_| {})
    }
}

fn round(outcome: MeasurementOutcome, value: Option<f64>, at: i64) -> Round {
    Round {
        revision: "new".into(),
        results: vec![MetricResult {
            name: "errors".into(),
            outcome,
            value,
            threshold: "<= 0.05".into(),
            message: "measured on 1 worker".into(),
            measurements: Vec::new(),
        }],
        time: t(at),
    }
}

#[test]
fn the_first_revision_a_pool_runs_is_stable_at_once() {
    let p = pool(canary(json!([{"setWeight": 100}])), None, None);
    let obs = Observed {
        target: "r1",
        now: t(0),
        target_workers: 0,
        settled: false,
        round: None,
        command: None,
        alert: None,
    };
    let d = advance(&p, &Rollout::default(), &obs);
    assert_eq!(d.next.stable.as_deref(), Some("r1"));
    assert_eq!(d.next.canary, None);
    assert_eq!(d.phase, PoolPhase::Healthy);
}

#[test]
fn a_canary_moves_through_its_weights_only_when_actors_settled_and_then_is_promoted() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 25}, {"setWeight": 100}])),
        None,
        None,
    ));
    let d = s.step(0);
    assert_eq!(d.notes[0].reason, "RolloutStarted");
    assert_eq!(
        (d.next.canary.as_deref(), d.next.weight, d.next.step),
        (Some("new"), Some(25), Some(0))
    );
    assert_eq!(d.phase, PoolPhase::Progressing);
    // Actors not yet on their workers: the step waits.
    let d = s.step_with(1, |o| o.settled = false);
    assert_eq!((d.next.weight, d.next.step), (Some(25), Some(0)));
    // Settled at 25 %: on to 100 %.
    let d = s.step(1);
    assert_eq!((d.next.weight, d.next.step), (Some(100), Some(1)));
    let d = s.step(1);
    assert!(d.promoted);
    assert_eq!(d.next.stable.as_deref(), Some("new"));
    assert_eq!(d.next.previous.as_deref(), Some("old"));
    assert_eq!((d.next.canary.as_deref(), d.next.weight), (None, None));
    assert_eq!(d.phase, PoolPhase::Healthy);
}

#[test]
fn a_set_weight_step_waits_for_enough_canary_workers() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"pause": {}}])),
        None,
        None,
    ));
    s.step(0);
    // 50 % of 4 workers is 2 canary workers; with one up the step waits.
    let d = s.step_with(1, |o| o.target_workers = 1);
    assert_eq!(d.next.step, Some(0));
    let d = s.step_with(1, |o| o.target_workers = 2);
    assert_eq!(d.next.step, Some(1));
    assert_eq!(canary_replicas(4, 50), 2);
    assert_eq!(canary_replicas(4, 10), 1);
    assert_eq!(canary_replicas(3, 50), 2);
}

#[test]
fn a_timed_pause_waits_its_duration_and_an_open_pause_waits_for_promote() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 10}, {"pause": {"duration": "30s"}}, {"pause": {}}, {"setWeight": 100}])),
        None,
        None,
    ));
    s.step(0);
    let d = s.step(1);
    assert_eq!(d.next.step, Some(1));
    assert_eq!(s.step(29).next.step, Some(1));
    let d = s.step(1);
    assert_eq!(d.next.step, Some(2));
    assert_eq!(d.phase, PoolPhase::Paused);
    let d = s.step(3600);
    assert_eq!((d.next.step, d.phase), (Some(2), PoolPhase::Paused));
    let d = s.step_with(1, |o| o.command = Some(Command::Promote));
    assert!(d.command_done);
    assert_eq!((d.next.step, d.next.weight), (Some(3), Some(100)));
}

#[test]
fn a_failed_analysis_beyond_the_failure_limit_aborts_with_metric_value_threshold_and_times() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"analysis": {"count": 3}}, {"setWeight": 100}])),
        Some(error_rate_analysis(1)),
        None,
    ));
    s.step(0);
    s.step(1);
    assert_eq!(
        analysis_due(&s.pool, &s.r, "new", 2, t(s.now)),
        Some("new".into())
    );
    // One failure is within failureLimit 1.
    let d = s.step_with(1, |o| {
        o.round = Some(round(MeasurementOutcome::Failed, Some(0.5), 2))
    });
    assert_eq!(d.aborted, None);
    assert_eq!(d.next.analysis.as_ref().unwrap().failures, 1);
    assert_eq!(
        analysis_due(&s.pool, &s.r, "new", 2, t(s.now + 5)),
        None,
        "not before the interval"
    );
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Failed, Some(0.7), 12))
    });
    let (kind, detect) = d.aborted.unwrap();
    assert_eq!(kind, AbortKind::Analysis);
    assert_eq!(
        detect,
        Some(10.0),
        "from the first failed measurement to the decision"
    );
    let a = d.next.abort.clone().unwrap();
    assert_eq!(a.metric.as_deref(), Some("errors"));
    assert_eq!(a.value, Some(0.7));
    assert_eq!(a.threshold.as_deref(), Some("<= 0.05"));
    assert!(a.message.contains("errors = 0.7000"), "{}", a.message);
    assert_eq!((d.next.canary.as_deref(), d.next.weight), (None, None));
    assert_eq!(d.phase, PoolPhase::RollingBack);
    assert_eq!(d.notes.last().unwrap().reason, "RolloutAborted");
    // Every actor back on stable: Degraded, and the rollback time is known.
    let d = s.step(3);
    assert_eq!(d.rollback_completed, Some(3.0));
    assert_eq!(d.phase, PoolPhase::Degraded);
    // The template is unchanged: the revision stays aborted.
    let d = s.step(60);
    assert_eq!((d.phase, d.next.canary.as_deref()), (PoolPhase::Degraded, None));
}

#[test]
fn an_analysis_step_passes_after_count_passing_rounds_and_inconclusive_rounds_never_pass() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"analysis": {"count": 2}}, {"setWeight": 100}])),
        Some(error_rate_analysis(0)),
        None,
    ));
    s.step(0);
    s.step(1);
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Inconclusive, None, 11))
    });
    assert_eq!(d.next.step, Some(1));
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Passed, Some(0.0), 21))
    });
    assert_eq!(d.next.step, Some(1), "one pass of two");
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Passed, Some(0.01), 31))
    });
    assert_eq!((d.next.step, d.next.weight), (Some(2), Some(100)));
}

#[test]
fn too_many_inconclusive_rounds_in_a_row_abort() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"analysis": {}}])),
        Some(error_rate_analysis(0)),
        None,
    ));
    s.step(0);
    s.step(1);
    s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Inconclusive, None, 11))
    });
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Inconclusive, None, 21))
    });
    assert!(d.next.abort.unwrap().message.contains("no data for 2 rounds"));
}

#[test]
fn an_alert_aborts_a_rollout_in_progress_and_a_repeat_changes_nothing() {
    let rollback = json!({"onAlerts": true, "window": "15m"});
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"pause": {}}])),
        None,
        Some(rollback),
    ));
    s.step(0);
    let alert = AlertHit {
        name: "TroupeErrorRateHigh".into(),
        starts_at: Some(t(0)),
        summary: "errors".into(),
    };
    let d = s.step_with(2, |o| o.alert = Some(alert.clone()));
    assert_eq!(d.aborted.map(|a| a.0), Some(AbortKind::Alert));
    assert_eq!(
        d.next.abort.as_ref().unwrap().alert.as_deref(),
        Some("TroupeErrorRateHigh")
    );
    let before = d.next.clone();
    let d = s.step_with(1, |o| o.alert = Some(alert));
    assert_eq!(d.aborted, None);
    assert_eq!(
        d.next.abort,
        before.abort.map(|mut a| {
            a.completed_at = d.next.abort.as_ref().unwrap().completed_at.clone();
            a
        })
    );
}

#[test]
fn an_alert_rolls_back_a_revision_promoted_within_the_window_but_not_after_it() {
    let rollback = json!({"onAlerts": true, "window": "5m"});
    let p = pool(canary(json!([{"setWeight": 100}])), None, Some(rollback));
    let alert = AlertHit {
        name: "TroupeErrorRateHigh".into(),
        starts_at: None,
        summary: "errors".into(),
    };
    let mut s = Sim::new(p.clone());
    s.step(0);
    assert!(s.step(1).promoted);
    let d = s.step_with(60, |o| o.alert = Some(alert.clone()));
    assert_eq!(d.notes[0].reason, "RolledBack");
    assert_eq!(d.next.stable.as_deref(), Some("old"));
    assert_eq!(d.next.abort.as_ref().unwrap().revision, "new");
    assert_eq!(d.phase, PoolPhase::RollingBack);
    // It does not start rolling out again by itself.
    let d = s.step(5);
    assert_eq!((d.phase, d.next.canary.as_deref()), (PoolPhase::Degraded, None));

    let mut s = Sim::new(p);
    s.step(0);
    s.step(1);
    let d = s.step_with(301, |o| o.alert = Some(alert));
    assert_eq!(d.aborted, None);
    assert_eq!(d.next.stable.as_deref(), Some("new"));
    assert_eq!(
        d.next.previous, None,
        "the previous revision is forgotten after the window"
    );
}

#[test]
fn retry_rolls_an_aborted_revision_out_again_and_abort_by_hand_stops_it() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"pause": {}}])),
        None,
        None,
    ));
    s.step(0);
    let d = s.step_with(1, |o| o.command = Some(Command::Abort));
    assert!(d.command_done);
    assert_eq!(d.next.abort.as_ref().unwrap().kind, AbortKind::Manual);
    let d = s.step_with(1, |o| o.command = Some(Command::Retry));
    assert!(d.command_done);
    assert_eq!(d.next.abort, None);
    assert_eq!((d.next.canary.as_deref(), d.next.step), (Some("new"), Some(0)));
}

#[test]
fn the_progress_deadline_aborts_a_stuck_rollout() {
    let mut s = Sim::new(pool(canary(json!([{"setWeight": 50}])), None, None));
    s.step(0);
    let d = s.step_with(599, |o| o.target_workers = 0);
    assert_eq!(d.aborted, None);
    let d = s.step_with(1, |o| o.target_workers = 0);
    assert_eq!(d.aborted.map(|a| a.0), Some(AbortKind::Deadline));
}

#[test]
fn a_template_change_during_a_rollout_restarts_it_with_the_new_revision() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"pause": {}}])),
        None,
        None,
    ));
    s.step(0);
    s.step(1);
    assert_eq!(s.r.step, Some(1));
    let obs = Observed {
        target: "newer",
        now: t(10),
        target_workers: 0,
        settled: true,
        round: None,
        command: None,
        alert: None,
    };
    let d = advance(&s.pool, &s.r, &obs);
    assert_eq!(d.notes[0].reason, "RolloutRestarted");
    assert_eq!(
        (d.next.canary.as_deref(), d.next.step, d.next.weight),
        (Some("newer"), Some(0), Some(50))
    );
}

#[test]
fn blue_green_brings_the_new_revision_up_in_full_then_switches_and_keeps_the_old_one() {
    let bg = json!({"blueGreen": {"autoPromotion": true, "scaleDownDelay": "30s"}});
    let mut s = Sim::new(pool(bg, None, None));
    let d = s.step_with(0, |o| o.target_workers = 2);
    assert_eq!(
        (d.next.step, d.next.weight),
        (Some(0), Some(0)),
        "waits for all 4 workers"
    );
    let d = s.step_with(1, |o| o.target_workers = 4);
    assert_eq!((d.next.step, d.next.weight), (Some(2), Some(100)));
    let d = s.step_with(1, |o| o.settled = false);
    assert!(!d.promoted);
    let d = s.step(1);
    assert!(d.promoted);
    assert_eq!(d.next.previous.as_deref(), Some("old"));
}

#[test]
fn blue_green_without_auto_promotion_waits_paused_for_promote() {
    let bg = json!({"blueGreen": {"autoPromotion": false}});
    let mut s = Sim::new(pool(bg, None, None));
    let d = s.step(0);
    assert_eq!((d.next.step, d.phase), (Some(1), PoolPhase::Paused));
    let d = s.step_with(1, |o| o.command = Some(Command::Promote));
    assert_eq!((d.next.step, d.next.weight), (Some(2), Some(100)));
}

#[test]
fn blue_green_post_promotion_analysis_failure_switches_back_to_the_old_revision() {
    let bg = json!({"blueGreen": {"postPromotionAnalysis": true, "scaleDownDelay": "60s"}});
    let mut s = Sim::new(pool(bg, Some(error_rate_analysis(0)), None));
    s.step(0);
    assert!(s.step(1).promoted);
    assert_eq!(
        analysis_due(&s.pool, &s.r, "new", 4, t(s.now)),
        Some("new".into())
    );
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Failed, Some(0.9), 12))
    });
    assert_eq!(d.notes[0].reason, "RolledBack");
    assert_eq!(d.next.stable.as_deref(), Some("old"));
    // After the scale-down delay, post-promotion analysis stops.
    let mut s = Sim::new(s.pool.clone());
    s.step(0);
    s.step(1);
    assert_eq!(analysis_due(&s.pool, &s.r, "new", 4, t(s.now + 61)), None);
}

#[test]
fn blue_green_pre_promotion_analysis_holds_the_switch_until_a_round_passes() {
    let bg = json!({"blueGreen": {"prePromotionAnalysis": true}});
    let mut s = Sim::new(pool(bg, Some(error_rate_analysis(0)), None));
    let d = s.step(0);
    assert_eq!(
        (d.next.step, d.next.weight),
        (Some(1), Some(0)),
        "preview up, not switched"
    );
    assert_eq!(
        analysis_due(&s.pool, &s.r, "new", 4, t(s.now)),
        Some("new".into())
    );
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Inconclusive, None, 10))
    });
    assert_eq!(d.next.weight, Some(0), "no data is not a pass");
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Passed, Some(0.0), 20))
    });
    assert_eq!((d.next.step, d.next.weight), (Some(2), Some(100)));
    // A failed preview never takes an actor.
    let mut s = Sim::new(s.pool.clone());
    s.step(0);
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Failed, Some(0.5), 10))
    });
    assert_eq!(d.aborted.map(|a| a.0), Some(AbortKind::Analysis));
    assert_eq!(d.next.weight, None);
}

#[test]
fn a_promote_with_no_rollout_in_progress_is_acted_on_as_a_no_op_and_does_not_skip_the_next_pause() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}])),
        None,
        None,
    ));
    // The template's revision is the stable one: nothing to promote.
    let obs = Observed {
        target: "old",
        now: t(0),
        target_workers: 4,
        settled: true,
        round: None,
        command: Some(Command::Promote),
        alert: None,
    };
    let d = advance(&s.pool, &s.r, &obs);
    assert!(d.command_done, "the promote must be consumed, not left to linger");
    assert!(d.notes.iter().any(|n| n.reason == "PromoteIgnored"));
    assert_eq!(d.next, s.r, "a no-op promote changes nothing");
    // The next rollout then stops at its pause as usual.
    s.step(0);
    s.step(1);
    let d = s.step(1);
    assert_eq!((d.next.step, d.phase), (Some(1), PoolPhase::Paused));
}

#[test]
fn each_round_adds_to_its_metrics_history_across_steps_and_the_aborting_round_stays_to_be_seen() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"analysis": {"count": 1}}, {"setWeight": 100}, {"pause": {}}])),
        Some(error_rate_analysis(0)),
        None,
    ));
    s.step(0);
    s.step(1);
    s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Inconclusive, None, 11))
    });
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Passed, Some(0.01), 21))
    });
    assert_eq!(
        d.next.step,
        Some(2),
        "the analysis step passed: the history goes on"
    );
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Failed, Some(0.5), 31))
    });
    assert!(d.aborted.is_some());
    let kept: Vec<_> = d.next.analysis.as_ref().unwrap().results[0]
        .measurements
        .iter()
        .map(|m| (m.outcome, m.value, m.time.0))
        .collect();
    assert_eq!(
        kept,
        [
            (MeasurementOutcome::Inconclusive, None, t(11)),
            (MeasurementOutcome::Passed, Some(0.01), t(21)),
            (MeasurementOutcome::Failed, Some(0.5), t(31)),
        ]
    );
}
