//! Restart limits, exponential backoff and the circuit breaker, as pure state machines.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use troupe_crds::{RestartPolicy, RestartPolicySpec, duration::parse_duration};

/// What to do after an actor stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this delay.
    Restart { after: Duration },
    /// Leave it stopped, for this reason (phase Failed).
    GiveUp { reason: String },
}

/// Tracks an actor's restarts against its restart policy.
#[derive(Debug)]
pub struct RestartTracker {
    policy: RestartPolicy,
    max_restarts: usize,
    window: Duration,
    initial: Duration,
    max_backoff: Duration,
    recent: VecDeque<Instant>,
    in_a_row: u32,
}

impl RestartTracker {
    /// Reads the spec; the schema already checked its durations, so a parse failure here means
    /// a spec written past the schema, reported to the caller.
    pub fn from_spec(spec: &RestartPolicySpec) -> Result<Self, String> {
        let d = |s: &str| parse_duration(s).map_err(|e| format!("restartPolicy: {e}"));
        Ok(Self {
            policy: spec.policy,
            max_restarts: spec.max_restarts.max(0) as usize,
            window: d(&spec.window)?,
            initial: d(&spec.backoff.initial)?,
            max_backoff: d(&spec.backoff.max)?,
            recent: VecDeque::new(),
            in_a_row: 0,
        })
    }

    /// Restarts counted in the current window.
    pub fn restarts_in_window(&self) -> usize {
        self.recent.len()
    }

    /// Decides what happens after the actor stopped at `now`, having run for `ran_for`;
    /// `failed` is false for a clean stop.
    pub fn on_stop(&mut self, now: Instant, ran_for: Duration, failed: bool) -> Decision {
        match (self.policy, failed) {
            (RestartPolicy::Never, true) => {
                return Decision::GiveUp {
                    reason: "failed; restartPolicy is Never".into(),
                };
            }
            (RestartPolicy::Never, false) | (RestartPolicy::OnFailure, false) => {
                return Decision::GiveUp {
                    reason: "stopped on its own; restartPolicy does not restart a clean stop".into(),
                };
            }
            _ => {}
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max_restarts {
            return Decision::GiveUp {
                reason: format!(
                    "RestartLimitExceeded: {} restarts within {:?} (maxRestarts {})",
                    self.recent.len(),
                    self.window,
                    self.max_restarts
                ),
            };
        }
        // An actor that ran well for longer than the longest backoff starts its backoff over.
        if ran_for > self.max_backoff {
            self.in_a_row = 0;
        }
        let after = self
            .initial
            .saturating_mul(1u32 << self.in_a_row.min(20))
            .min(self.max_backoff);
        self.in_a_row += 1;
        self.recent.push_back(now);
        Decision::Restart { after }
    }
}

/// Opens (pauses the actor) after N consecutive failed messages or ticks.
#[derive(Debug, Default)]
pub struct CircuitBreaker {
    threshold: Option<u32>,
    failures_in_a_row: u32,
}

impl CircuitBreaker {
    pub fn new(threshold: Option<u32>) -> Self {
        Self {
            threshold,
            failures_in_a_row: 0,
        }
    }

    /// Records one outcome; true when this failure opens the circuit.
    pub fn record(&mut self, ok: bool) -> bool {
        if ok {
            self.failures_in_a_row = 0;
            return false;
        }
        self.failures_in_a_row += 1;
        self.threshold.is_some_and(|t| self.failures_in_a_row == t)
    }

    pub fn failures_in_a_row(&self) -> u32 {
        self.failures_in_a_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(policy: RestartPolicy, max: i32) -> RestartTracker {
        let mut spec = RestartPolicySpec {
            policy,
            max_restarts: max,
            window: "1m".into(),
            ..Default::default()
        };
        spec.backoff.initial = "1s".into();
        spec.backoff.max = "8s".into();
        RestartTracker::from_spec(&spec).unwrap()
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut t = tracker(RestartPolicy::Always, 100);
        let now = Instant::now();
        let delays: Vec<_> = (0..6)
            .map(
                |i| match t.on_stop(now + Duration::from_millis(i), Duration::ZERO, true) {
                    Decision::Restart { after } => after.as_secs(),
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn an_actor_that_ran_well_starts_its_backoff_over() {
        let mut t = tracker(RestartPolicy::Always, 100);
        let now = Instant::now();
        t.on_stop(now, Duration::ZERO, true);
        t.on_stop(now, Duration::ZERO, true);
        assert_eq!(
            t.on_stop(now, Duration::from_secs(60), true),
            Decision::Restart {
                after: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn more_restarts_than_allowed_in_the_window_give_up() {
        let mut t = tracker(RestartPolicy::Always, 2);
        let now = Instant::now();
        assert!(matches!(
            t.on_stop(now, Duration::ZERO, true),
            Decision::Restart { .. }
        ));
        assert!(matches!(
            t.on_stop(now, Duration::ZERO, true),
            Decision::Restart { .. }
        ));
        match t.on_stop(now, Duration::ZERO, true) {
            Decision::GiveUp { reason } => assert!(reason.starts_with("RestartLimitExceeded"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let mut t = tracker(RestartPolicy::Always, 1);
        let now = Instant::now();
        assert!(matches!(
            t.on_stop(now, Duration::ZERO, true),
            Decision::Restart { .. }
        ));
        let later = now + Duration::from_secs(61);
        assert!(matches!(
            t.on_stop(later, Duration::ZERO, true),
            Decision::Restart { .. }
        ));
        assert_eq!(t.restarts_in_window(), 1);
    }

    #[test]
    fn policies_decide_which_stops_restart() {
        let now = Instant::now();
        assert!(matches!(
            tracker(RestartPolicy::Never, 5).on_stop(now, Duration::ZERO, true),
            Decision::GiveUp { .. }
        ));
        assert!(matches!(
            tracker(RestartPolicy::OnFailure, 5).on_stop(now, Duration::ZERO, false),
            Decision::GiveUp { .. }
        ));
        assert!(matches!(
            tracker(RestartPolicy::OnFailure, 5).on_stop(now, Duration::ZERO, true),
            Decision::Restart { .. }
        ));
        assert!(matches!(
            tracker(RestartPolicy::Always, 5).on_stop(now, Duration::ZERO, false),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn the_circuit_opens_on_the_nth_failure_in_a_row_only() {
        let mut b = CircuitBreaker::new(Some(3));
        assert!(!b.record(false));
        assert!(!b.record(false));
        assert!(!b.record(true), "a success resets the run");
        assert!(!b.record(false));
        assert!(!b.record(false));
        assert!(b.record(false));
        assert!(!CircuitBreaker::new(None).record(false));
    }
}
