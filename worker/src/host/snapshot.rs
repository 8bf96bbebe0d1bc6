//! The runtime status of every hosted actor, for the status writer and the metrics.

use super::*;

impl Host {
    /// The runtime status of every hosted actor.
    pub fn snapshot(&self) -> Vec<(ActorKey, RuntimeStatus)> {
        let slots = self.all_slots();
        let mut depth: HashMap<String, i64> = HashMap::new();
        let mut phases: HashMap<ActorPhase, i64> = ActorPhase::ALL.iter().map(|p| (*p, 0)).collect();
        let out = slots
            .iter()
            .map(|slot| {
                let s = slot.lock();
                *depth.entry(self.behavior_label(&s.spec.behavior)).or_default() += slot.mailbox.len() as i64;
                *phases.entry(s.phase).or_default() += 1;
                (
                    slot.key.clone(),
                    runtime_status(slot, &s, self.config.persistence.uses_store()),
                )
            })
            .collect();
        // A behaviour whose actors all left reads 0, not the depth it had at its last snapshot.
        {
            let mut reported = self.depth_reported.lock().unwrap_or_else(|e| e.into_inner());
            for behavior in reported.iter() {
                depth.entry(behavior.clone()).or_insert(0);
            }
            reported.extend(depth.keys().cloned());
        }
        for (behavior, d) in depth {
            self.metrics
                .mailbox_depth
                .with_label_values(&[&self.config.pool, &self.config.revision, &behavior])
                .set(d);
        }
        for (phase, n) in phases {
            self.metrics
                .actors
                .with_label_values(&[&self.config.pool, &self.config.revision, &format!("{phase:?}")])
                .set(n);
        }
        out
    }
}

/// The runtime status of one actor as its slot says (`journaled`: the pool keeps a store, where
/// an actor's journal is written).
pub(super) fn runtime_status(slot: &Slot, s: &SlotState, journaled: bool) -> RuntimeStatus {
    let mut conditions = vec![ConditionState {
        type_: "Ready",
        status: s.phase == ActorPhase::Running,
        reason: s.ready_reason.0.clone(),
        message: s.ready_reason.1.clone(),
    }];
    if s.spec.circuit_breaker.is_some() {
        conditions.push(ConditionState {
            type_: "CircuitOpen",
            status: s.circuit_open.is_some(),
            reason: if s.circuit_open.is_some() {
                "TooManyFailures"
            } else {
                "Closed"
            }
            .into(),
            message: s
                .circuit_open
                .clone()
                .unwrap_or_else(|| "the circuit is closed".into()),
        });
    }
    if s.spec.journal.is_some() {
        conditions.push(ConditionState {
            type_: "Journaled",
            status: journaled,
            reason: if journaled { "Journaling" } else { "NoStateStore" }.into(),
            message: if journaled {
                "every write of the actor's state adds an entry to its journal (kubectl troupe journal)"
            } else {
                "spec.journal needs the pool's persistence mode Interval or EveryMessage: nothing is journaled"
            }
            .into(),
        });
    }
    RuntimeStatus {
        phase: s.phase,
        epoch: s.epoch,
        restarts: s.restarts,
        messages_processed: slot.processed.load(Ordering::Relaxed),
        last_error: s.last_error.clone(),
        last_transition: s.since,
        started_at: s.started_at,
        observed_generation: s.generation,
        conditions,
        published_phase: s.published_phase,
        claimed: s.claimed,
    }
}

/// The status an actor will have once started at `at`: what its claim writes.
pub(super) fn running_status(
    slot: &Slot,
    s: &SlotState,
    at: DateTime<Utc>,
    journaled: bool,
) -> RuntimeStatus {
    let mut status = runtime_status(slot, s, journaled);
    status.phase = ActorPhase::Running;
    status.last_transition = at;
    status.started_at = Some(at);
    status.claimed = true;
    status.conditions[0] = ConditionState {
        type_: "Ready",
        status: true,
        reason: RUNNING.0.into(),
        message: RUNNING.1.into(),
    };
    status
}

/// The status of an actor claimed at `at` that first looks for its state (`looking_for`: the
/// Starting reason and message, see [`Host::recovery`]): what its claim writes.
pub(super) fn recovering_status(
    slot: &Slot,
    s: &SlotState,
    at: DateTime<Utc>,
    journaled: bool,
    looking_for: (&str, String),
) -> RuntimeStatus {
    let mut status = runtime_status(slot, s, journaled);
    status.phase = ActorPhase::Starting;
    status.last_transition = at;
    status.started_at = None;
    status.claimed = true;
    status.conditions[0] = ConditionState {
        type_: "Ready",
        status: false,
        reason: looking_for.0.into(),
        message: looking_for.1,
    };
    status
}

/// The Ready reason and message of a running actor.
pub(super) const RUNNING: (&str, &str) = ("Running", "the actor is running");
