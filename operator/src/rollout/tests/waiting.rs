//! What a rollout waits for before it judges or promotes a revision: workers that are up before
//! the first measurement, a passing round before promotion, one step per promote.

use super::*;

fn passing(at: i64) -> Round {
    round(MeasurementOutcome::Passed, Some(0.0), at)
}

#[test]
fn a_canary_is_first_measured_once_its_workers_are_up_and_then_whatever_happens_to_them() {
    // 4 replicas at 50%: 2 canary workers.
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"pause": {}}])),
        Some(error_rate_analysis(0)),
        None,
    ));
    s.step_with(0, |o| o.target_workers = 0);
    for starting in [0, 1] {
        assert_eq!(
            analysis_due(&s.pool, &s.r, "new", starting, t(s.now + 60)),
            None,
            "{starting} of 2 workers up: a round could only be inconclusive"
        );
    }
    assert_eq!(
        analysis_due(&s.pool, &s.r, "new", 2, t(s.now)),
        Some("new".into())
    );
    s.step_with(10, |o| o.round = Some(passing(10)));
    assert_eq!(
        analysis_due(&s.pool, &s.r, "new", 1, t(s.now + 10)),
        Some("new".into()),
        "once measured, a worker lost later does not stop the analysis"
    );
}

#[test]
fn a_slow_start_is_not_counted_as_inconclusive_rounds_and_aborts_only_at_the_deadline() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 25}, {"setWeight": 100}])),
        Some(error_rate_analysis(0)),
        None,
    ));
    // Ten minutes without a canary worker: no round was due, so none was inconclusive.
    for _ in 0..59 {
        let d = s.step_with(10, |o| o.target_workers = 0);
        assert!(analysis_due(&s.pool, &s.r, "new", 0, t(s.now)).is_none());
        assert_eq!(d.aborted, None);
        assert!(
            d.progressing
                .2
                .contains("waiting for moving 25% of the actors to ready canary workers"),
            "{}",
            d.progressing.2
        );
    }
    let d = s.step_with(20, |o| o.target_workers = 0);
    assert_eq!(d.aborted.map(|a| a.0), Some(AbortKind::Deadline));
}

#[test]
fn a_canary_with_analysis_metrics_is_not_promoted_before_a_round_of_it_passes() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 50}, {"setWeight": 100}])),
        Some(error_rate_analysis(0)),
        None,
    ));
    s.step(0);
    s.step(1);
    let d = s.step(1);
    assert!(!d.promoted, "every step done, but never measured");
    assert_eq!(d.next.step, Some(2));
    assert!(
        d.progressing
            .2
            .ends_with("waiting for a passing analysis round before promotion"),
        "{}",
        d.progressing.2
    );
    let d = s.step_with(10, |o| {
        o.round = Some(round(MeasurementOutcome::Inconclusive, None, 11))
    });
    assert!(!d.promoted, "no data is not a pass");
    let d = s.step_with(10, |o| o.round = Some(passing(21)));
    assert!(d.promoted);
}

#[test]
fn a_canary_never_measured_is_aborted_at_the_progress_deadline_saying_what_it_waited_for() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 100}])),
        Some(error_rate_analysis(0)),
        None,
    ));
    s.step(0);
    assert!(!s.step(1).promoted);
    let d = s.step(601);
    assert_eq!(d.aborted.map(|a| a.0), Some(AbortKind::Deadline));
    let reason = d.next.abort.unwrap().message;
    assert!(
        reason.contains("a passing analysis round before promotion"),
        "{reason}"
    );
}

#[test]
fn a_promote_by_hand_promotes_an_unmeasured_canary_and_a_pool_without_metrics_needs_none() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 100}])),
        Some(error_rate_analysis(0)),
        None,
    ));
    s.step(0);
    assert!(!s.step(1).promoted);
    let d = s.step_with(1, |o| o.command = Some(Command::Promote));
    assert!(d.promoted && d.command_done);

    let mut s = Sim::new(pool(canary(json!([{"setWeight": 100}])), None, None));
    s.step(0);
    assert!(s.step(1).promoted);
}

#[test]
fn one_promote_goes_past_one_pause_not_every_pause_that_follows() {
    let mut s = Sim::new(pool(
        canary(json!([{"setWeight": 25}, {"pause": {}}, {"pause": {}}, {"setWeight": 100}])),
        None,
        None,
    ));
    s.step(0);
    let d = s.step(1);
    assert_eq!((d.next.step, d.phase), (Some(1), PoolPhase::Paused));
    let d = s.step_with(1, |o| o.command = Some(Command::Promote));
    assert_eq!(
        (d.next.step, d.phase),
        (Some(2), PoolPhase::Paused),
        "the second pause waits for a second promote"
    );
}
