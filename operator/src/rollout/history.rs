//! The recent measurements of each metric (`status.analysis.results[].measurements`), as Argo
//! Rollouts keeps an AnalysisRun's: each round appends its measurement to its metric's history,
//! which keeps the last `MEASUREMENT_HISTORY`, so that the console can draw a trend against the
//! threshold while the pool's status stays bounded. Pure: unit-tested below.

use troupe_crds::{AnalysisStatus, MEASUREMENT_HISTORY, Measurement, MetricResult};

use super::{Round, Time};

/// The round's results, each carrying its metric's recent measurements: those kept in
/// `previous` when it is about the round's revision, then this round's, newest last, at most
/// `MEASUREMENT_HISTORY`. A metric the round left out is not carried (the results are the
/// round's, as before); a new revision starts every history afresh.
pub fn with_history(previous: Option<&AnalysisStatus>, round: &Round) -> Vec<MetricResult> {
    let earlier = previous.filter(|a| a.revision == round.revision);
    round
        .results
        .iter()
        .map(|r| {
            let mut measurements: Vec<Measurement> = earlier
                .and_then(|a| a.results.iter().find(|p| p.name == r.name))
                .map(|p| p.measurements.clone())
                .unwrap_or_default();
            measurements.push(Measurement {
                time: Time(round.time),
                outcome: r.outcome,
                // The status is JSON: a value that is not a number is no value (the analyzer
                // already makes it so; this keeps the history valid whatever the round says).
                value: r.value.filter(|v| v.is_finite()),
            });
            let excess = measurements.len().saturating_sub(MEASUREMENT_HISTORY);
            measurements.drain(..excess);
            MetricResult {
                measurements,
                ..r.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use troupe_crds::MeasurementOutcome::{self, Failed, Inconclusive, Passed};

    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn result(name: &str, outcome: MeasurementOutcome, value: Option<f64>) -> MetricResult {
        MetricResult {
            name: name.into(),
            outcome,
            value,
            threshold: "<= 0.05".into(),
            message: "measured".into(),
            measurements: Vec::new(),
        }
    }

    fn round(revision: &str, at: i64, results: Vec<MetricResult>) -> Round {
        Round {
            revision: revision.into(),
            results,
            time: t(at),
        }
    }

    /// Feeds the rounds in turn, as `account` does, and returns the last analysis.
    fn fold(rounds: &[Round]) -> AnalysisStatus {
        let mut status: Option<AnalysisStatus> = None;
        for r in rounds {
            let results = with_history(status.as_ref(), r);
            status = Some(AnalysisStatus {
                revision: r.revision.clone(),
                results,
                ..Default::default()
            });
        }
        status.unwrap()
    }

    fn values(r: &MetricResult) -> Vec<Option<f64>> {
        r.measurements.iter().map(|m| m.value).collect()
    }

    #[test]
    fn the_history_keeps_the_newest_measurements_last_and_never_more_than_the_bound() {
        let rounds: Vec<Round> = (0..MEASUREMENT_HISTORY as i64 + 5)
            .map(|i| round("new", i * 10, vec![result("errors", Passed, Some(i as f64))]))
            .collect();
        let a = fold(&rounds);
        let m = &a.results[0].measurements;
        assert_eq!(m.len(), MEASUREMENT_HISTORY);
        let expected: Vec<Option<f64>> = (5..MEASUREMENT_HISTORY as i64 + 5)
            .map(|i| Some(i as f64))
            .collect();
        assert_eq!(values(&a.results[0]), expected, "the oldest were dropped");
        assert_eq!(
            m.last().unwrap().time,
            Time(t((MEASUREMENT_HISTORY as i64 + 4) * 10))
        );
        assert!(m.windows(2).all(|w| w[0].time.0 < w[1].time.0), "oldest first");
    }

    #[test]
    fn the_latest_result_is_the_last_measurement_and_keeps_its_own_fields() {
        let a = fold(&[
            round("new", 0, vec![result("errors", Passed, Some(0.01))]),
            round("new", 10, vec![result("errors", Failed, Some(0.2))]),
        ]);
        let r = &a.results[0];
        assert_eq!((r.outcome, r.value), (Failed, Some(0.2)));
        assert_eq!(r.threshold, "<= 0.05");
        let last = r.measurements.last().unwrap();
        assert_eq!((last.outcome, last.value), (r.outcome, r.value));
    }

    #[test]
    fn a_new_revision_starts_every_history_afresh() {
        let a = fold(&[
            round("old-canary", 0, vec![result("errors", Failed, Some(0.9))]),
            round("old-canary", 10, vec![result("errors", Failed, Some(0.8))]),
            round("new", 20, vec![result("errors", Passed, Some(0.01))]),
        ]);
        assert_eq!(a.results[0].measurements.len(), 1);
        assert_eq!(values(&a.results[0]), [Some(0.01)]);
    }

    #[test]
    fn rounds_without_a_value_are_kept_as_inconclusive_or_failed_without_a_value() {
        let a = fold(&[
            round("new", 0, vec![result("errors", Passed, Some(0.01))]),
            round("new", 10, vec![result("errors", Inconclusive, None)]),
            round("new", 20, vec![result("errors", Failed, None)]),
            round("new", 30, vec![result("errors", Inconclusive, Some(f64::NAN))]),
        ]);
        let outcomes: Vec<MeasurementOutcome> = a.results[0].measurements.iter().map(|m| m.outcome).collect();
        assert_eq!(outcomes, [Passed, Inconclusive, Failed, Inconclusive]);
        assert_eq!(values(&a.results[0]), [Some(0.01), None, None, None]);
    }

    #[test]
    fn each_metric_keeps_its_own_history_and_a_metric_left_out_of_a_round_starts_again() {
        let both = |at, e, l| {
            round(
                "new",
                at,
                vec![
                    result("errors", Passed, Some(e)),
                    result("latency", Passed, Some(l)),
                ],
            )
        };
        let a = fold(&[
            both(0, 0.01, 0.1),
            both(10, 0.02, 0.2),
            // An analysis step that measures only `errors`.
            round("new", 20, vec![result("errors", Passed, Some(0.03))]),
            both(30, 0.04, 0.4),
        ]);
        assert_eq!(
            values(&a.results[0]),
            [Some(0.01), Some(0.02), Some(0.03), Some(0.04)]
        );
        assert_eq!(values(&a.results[1]), [Some(0.4)]);
    }
}
