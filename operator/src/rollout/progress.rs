//! Progress of a rollout in progress: the canary's steps, and blue-green's preview and switch.

use super::*;

impl Machine<'_> {
    /// Returns whether the rollout waits for a person.
    pub(super) fn canary_progress(&mut self) -> bool {
        let steps = canary_steps(self.pool);
        let replicas = self.pool.spec.replicas;
        // Instant steps chain in one reconcile; each step at most once.
        for _ in 0..=steps.len() {
            let i = self.r.step.unwrap_or(0).max(0) as usize;
            let Some(step) = steps.get(i) else {
                if self.unmeasured() && !self.take_promote() {
                    self.wait_or_abort("a passing analysis round before promotion");
                    return false;
                }
                self.promote();
                return false;
            };
            if let Some(w) = step.set_weight {
                let moved = self.r.weight == Some(w);
                self.r.weight = Some(w);
                let ready = w == 0 || self.obs.target_workers >= canary_replicas(replicas, w) as usize;
                if moved && ready && self.obs.settled {
                    self.next_step();
                    continue;
                }
                self.wait_or_abort(&format!("moving {w}% of the actors to ready canary workers"));
                return false;
            }
            if let Some(p) = &step.pause {
                if self.take_promote() {
                    self.next_step();
                    continue;
                }
                match p.duration.as_deref() {
                    Some(d) if elapsed(self.r.step_started_at, self.obs.now, secs(Some(d), 0)) => {
                        self.next_step();
                        continue;
                    }
                    Some(_) => return false,
                    None => return true,
                }
            }
            if let Some(a) = &step.analysis {
                if self.take_promote() || self.pool.spec.analysis.is_none() {
                    self.next_step();
                    continue;
                }
                let count = a.count.unwrap_or(1);
                let passed = self
                    .r
                    .analysis
                    .as_ref()
                    .filter(|s| Some(&s.revision) == self.r.canary.as_ref())
                    .is_some_and(|s| s.successes >= count);
                if passed {
                    self.next_step();
                    continue;
                }
                self.wait_or_abort(&format!("{count} passing analysis rounds"));
                return false;
            }
            // A step with nothing set cannot pass the schema; skip it rather than stall.
            self.next_step();
        }
        false
    }

    /// Blue-green: 0 = the new revision comes up in full; 1 = pre-promotion analysis and the
    /// promotion wait; 2 = every actor switching. Returns whether it waits for a person.
    pub(super) fn blue_green_progress(&mut self, bg: &troupe_crds::BlueGreenStrategy) -> bool {
        let replicas = self.pool.spec.replicas.max(1) as usize;
        if self.r.step == Some(0) {
            if self.obs.target_workers < replicas {
                self.r.weight = Some(0);
                self.wait_or_abort(&format!("{replicas} ready workers of the new revision"));
                return false;
            }
            self.next_step();
        }
        if self.r.step == Some(1) {
            let promote_now = self.take_promote();
            let analysed = !bg.pre_promotion_analysis
                || self.pool.spec.analysis.is_none()
                || self
                    .r
                    .analysis
                    .as_ref()
                    .is_some_and(|a| Some(&a.revision) == self.r.canary.as_ref() && a.successes >= 1);
            let delay = secs(bg.auto_promotion_delay.as_deref(), 0);
            let due = bg.auto_promotion && elapsed(self.r.step_started_at, self.obs.now, delay);
            if promote_now || (analysed && due) {
                self.next_step();
                self.r.weight = Some(100);
                // "Settled" was about the old weight: the switch is judged next time.
                return false;
            } else {
                if !analysed {
                    self.wait_or_abort("a passing pre-promotion analysis");
                }
                return !bg.auto_promotion && analysed;
            }
        }
        if self.r.step == Some(2) {
            self.r.weight = Some(100);
            if self.obs.settled {
                self.promote();
            } else {
                self.wait_or_abort("switching every actor to the new revision");
            }
        }
        false
    }

    /// The pool defines analysis metrics, and the canary's latest round did not pass (or none was
    /// taken): it is not promoted unmeasured. A query that cannot run, a metric that has no data,
    /// is then said in the status and the abort, instead of the revision passing in silence.
    fn unmeasured(&self) -> bool {
        let defined = self
            .pool
            .spec
            .analysis
            .as_ref()
            .is_some_and(|a| !a.metrics.is_empty());
        let passed = self.r.analysis.as_ref().is_some_and(|a| {
            Some(&a.revision) == self.r.canary.as_ref()
                && a.measured_at.is_some()
                && !a.results.is_empty()
                && a.results.iter().all(|m| m.outcome == MeasurementOutcome::Passed)
        });
        defined && !passed
    }
}
