//! Claims: before an assignment first runs on this worker (and again after any fence), the
//! worker records in the Actor's status that it runs the actor under the assignment's epoch, on
//! condition that the Actor is still at the version the assignment was read at.
//!
//! The claim writes the status the actor will have once started (phase `Running`), so a start
//! costs the worker one status write, not two: the status writer takes the claim as its first
//! write and writes again only what changed since (say the start failed). An actor that must
//! first get its state (handed over by the worker it left, or read from the store) is claimed
//! as `Starting` with the reason it waits for, and written `Running` once started: the API never
//! says Running before the state is in.
//!
//! The condition is what makes a late decision harmless. The operator moves an actor with a
//! write conditional on the version it decided from; the claim is conditional on the version the
//! worker saw. Both are compare-and-swap operations on the same object, so of "the operator moves
//! the actor away" and "the worker starts it" at most one happens from any one version: a worker
//! whose lease came back while the operator was failing it over never starts an actor that the
//! operator has meanwhile given to another worker.

use super::*;

/// The outcome of a claim.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// The status now says this worker runs the actor under the assignment's epoch (the
    /// `running` status of the claim).
    Won,
    /// The assignment is no longer this worker's (moved, deleted, a newer epoch): do not start.
    Lost(String),
    /// The claim could not be written (API unreachable): try again later, do not start.
    Failed(String),
}

/// Writes claims; the worker's is [`crate::status::KubeClaimer`].
#[async_trait::async_trait]
pub trait Claimer: Send + Sync {
    /// Writes `running` (the actor's status once started here under `epoch`) on condition that
    /// the Actor is still at `resource_version` and still assigned here under `epoch`.
    async fn claim(
        &self,
        key: &ActorKey,
        epoch: u64,
        resource_version: Option<&str>,
        running: &RuntimeStatus,
    ) -> Claim;
}

impl Host {
    /// Statuses that claims wrote since the last call, of actors that started as claimed.
    pub fn take_claimed(&self) -> Vec<(ActorKey, RuntimeStatus)> {
        std::mem::take(&mut *self.claim_statuses.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Claims the assignment (once per assignment and after every fence); the actor starts when
    /// the claim comes back won.
    pub(super) fn begin_claim(&self, slot: &Arc<Slot>) {
        let (epoch, version, incarnation, running) = {
            let mut s = slot.lock();
            if s.claiming || s.claimed {
                return;
            }
            s.claiming = true;
            let journaled = self.config.persistence.uses_store();
            let running = match self.recovery(&s) {
                None => snapshot::running_status(slot, &s, Utc::now(), journaled),
                Some(looking_for) => {
                    snapshot::recovering_status(slot, &s, Utc::now(), journaled, looking_for)
                }
            };
            s.claim = Some(running.clone());
            (s.epoch, s.resource_version.clone(), s.incarnation, running)
        };
        self.set_phase(
            slot,
            ActorPhase::Starting,
            "Claiming",
            "recording this worker as the actor's only host",
        );
        let Some(claimer) = self.claimer.read().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        let events = self.events.clone();
        let key = slot.key.clone();
        let in_flight = self.claims_in_flight.clone();
        tokio::spawn(async move {
            let _permit = in_flight.acquire_owned().await;
            let outcome = claimer.claim(&key, epoch, version.as_deref(), &running).await;
            let _ = events.send(HostEvent::Claimed {
                key,
                incarnation,
                outcome,
            });
        });
    }

    /// A claim came back: start on a win; on a loss, the assignment is gone (the watch removes
    /// it); on a failure, try again after a pause.
    pub(super) async fn claimed(&self, key: ActorKey, incarnation: u64, outcome: Claim) {
        let Some(slot) = self.slot(&key) else { return };
        let _turn = slot.turn.lock().await;
        {
            let mut s = slot.lock();
            if s.incarnation != incarnation || !s.claiming {
                return;
            }
            s.claiming = false;
            s.claimed = outcome == Claim::Won;
            if !s.claimed {
                s.claim = None;
            }
            // A claim that said Starting (state to look for first) is published as it is; the
            // start writes Running afterwards.
            if s.claimed && s.claim.as_ref().is_some_and(|c| c.phase != ActorPhase::Running) {
                let claim = s.claim.take().expect("checked");
                self.claim_statuses
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((key.clone(), claim));
            }
        }
        match outcome {
            // The start looks for the state to start from first (`recover`).
            Claim::Won => self.reconcile_in_turn(&slot).await,
            Claim::Lost(why) => {
                tracing::info!(actor = %key, %why, "claim lost: the actor is no longer assigned here");
                self.set_phase(&slot, ActorPhase::Pending, "Reassigned", &why);
            }
            Claim::Failed(why) => {
                tracing::warn!(actor = %key, %why, "claiming the actor failed; retrying");
                self.set_phase(&slot, ActorPhase::Starting, "Claiming", &why);
                let events = self.events.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = events.send(HostEvent::Restart { key, incarnation });
                });
            }
        }
    }
}
