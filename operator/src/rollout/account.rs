//! Counting analysis rounds: failures, inconclusive rounds and successes against the pool's
//! limits, and the abort (or rollback of a promoted revision) when a limit is passed.

use super::*;

impl Machine<'_> {
    pub(super) fn account(&mut self, round: &Round) {
        let Some(spec) = self.pool.spec.analysis.as_ref() else {
            return;
        };
        let mut a = self
            .r
            .analysis
            .take()
            .filter(|a| a.revision == round.revision)
            .unwrap_or_else(|| AnalysisStatus {
                revision: round.revision.clone(),
                ..Default::default()
            });
        a.measured_at = Some(Time(round.time));
        a.results = history::with_history(Some(&a), round);
        let outcome = round.outcome();
        match outcome {
            MeasurementOutcome::Passed => {
                a.successes += 1;
                a.inconclusive = 0;
            }
            MeasurementOutcome::Failed => {
                a.failures += 1;
                a.inconclusive = 0;
                a.first_failure_at.get_or_insert(Time(round.time));
            }
            MeasurementOutcome::Inconclusive => a.inconclusive += 1,
        }
        let failed = a.failures > spec.failure_limit;
        let no_data = a.inconclusive > spec.inconclusive_limit;
        let first_failure = a.first_failure_at.clone();
        let inconclusive = a.inconclusive;
        self.r.analysis = Some(a);
        if !failed && !no_data {
            return;
        }
        let mut reason = self.abort_reason(AbortKind::Analysis, &round.revision, String::new());
        if failed {
            let bad = round
                .results
                .iter()
                .find(|r| r.outcome == MeasurementOutcome::Failed);
            if let Some(bad) = bad {
                reason.metric = Some(bad.name.clone());
                reason.value = bad.value;
                reason.threshold = Some(bad.threshold.clone());
                let failures = self.r.analysis.as_ref().map(|a| a.failures).unwrap_or(0);
                let how = match bad.value {
                    Some(v) => format!("= {v:.4} broke its threshold {}", bad.threshold),
                    // A query refused, an address not allowed: no value, and none will come.
                    None => "could not be measured".to_string(),
                };
                reason.message = format!(
                    "metric {} {how} ({failures} failed measurements, failureLimit {}): {}",
                    bad.name, spec.failure_limit, bad.message
                );
            }
            reason.detected_at = first_failure;
        } else {
            let why: Vec<String> = round
                .results
                .iter()
                .filter(|r| r.outcome == MeasurementOutcome::Inconclusive)
                .map(|r| format!("{}: {}", r.name, r.message))
                .collect();
            reason.message = format!(
                "no data for {inconclusive} rounds in a row (inconclusiveLimit {}): {}",
                spec.inconclusive_limit,
                why.join("; ")
            );
        }
        if self.r.in_progress(&round.revision) {
            self.abort(reason);
        } else if self.r.stable.as_deref() == Some(&round.revision) {
            self.roll_back_promoted(reason);
        }
    }
}
