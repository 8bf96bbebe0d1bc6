//! Fencing: no actor runs without the worker's proof of a live lease.
//!
//! The proof itself is asked at every delivery (see `actor.rs`); fencing is what follows when it
//! runs out: every actor is stopped at once (each within the stop deadline, then aborted), every
//! claim is forgotten, and nothing starts again until [`Host::lift_fence`] is called with a list
//! of assignments made after the lease was renewed — so an actor that moved away while this
//! worker was paused or cut off is never started here again.

use super::*;

impl Host {
    /// Stops every actor and refuses to start any until the fence is lifted. Idempotent.
    pub async fn fence(&self, why: &str) {
        if self.fenced.swap(true, Ordering::SeqCst) {
            return;
        }
        let generation = self.fence_generation.fetch_add(1, Ordering::SeqCst) + 1;
        let slots = self.all_slots();
        if slots.is_empty() {
            tracing::info!(generation, %why, "fenced: no actor runs until the lease is renewed");
        } else {
            tracing::warn!(generation, %why, actors = slots.len(), "fencing: stopping every actor");
        }
        self.metrics.fences.inc();
        futures::future::join_all(slots.iter().map(|slot| async move {
            self.stop_actor(slot, "lease lost").await;
            slot.lock().claimed = false;
            self.set_phase(
                slot,
                ActorPhase::Pending,
                "LeaseLost",
                "the worker could not prove its lease; waiting to renew it and re-read its assignments",
            );
        }))
        .await;
    }

    /// The current fence's generation (bumped by every fence).
    pub fn fence_generation(&self) -> u64 {
        self.fence_generation.load(Ordering::SeqCst)
    }

    /// Lifts fence `generation` — called once the assignments were listed afresh after a
    /// successful renewal — if no newer fence came meanwhile and the lease is proven. Actors of
    /// the fresh list are claimed again and started; the list already removed the others.
    /// Returns whether the fence was lifted.
    pub async fn lift_fence(&self, generation: u64) -> bool {
        if !self.is_fenced() || self.fence_generation() != generation || !self.config.lease.is_live() {
            return false;
        }
        self.fenced.store(false, Ordering::SeqCst);
        let slots = self.all_slots();
        tracing::info!(
            generation,
            actors = slots.len(),
            "lease proven and assignments re-read: starting actors"
        );
        for slot in slots {
            if slot.lock().phase == ActorPhase::Pending {
                slot.lock().phase = ActorPhase::Starting;
            }
            self.reconcile(&slot).await;
        }
        true
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// Drains mailboxes for up to `deadline`, then stops every actor (graceful shutdown). Every
    /// actor ends Pending (reason WorkerStopped): the final status write says the truth.
    pub async fn shutdown(&self, deadline: Duration) {
        let slots = self.all_slots();
        let until = Instant::now() + deadline;
        while Instant::now() < until
            && slots
                .iter()
                .any(|s| !s.mailbox.is_empty() && s.lock().actor.is_some())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // No new start from here on (a restart after a backoff, a late claim).
        self.fenced.store(true, Ordering::SeqCst);
        for slot in &slots {
            let left = slot.mailbox.close("the worker is shutting down");
            if left > 0 {
                tracing::warn!(actor = %slot.key, left, "messages not handled before the drain deadline");
            }
        }
        futures::future::join_all(slots.iter().map(|slot| async move {
            self.stop_actor(slot, "worker shutting down").await;
            self.set_phase(
                slot,
                ActorPhase::Pending,
                "WorkerStopped",
                "the worker shut down; the actor moves to another worker",
            );
        }))
        .await;
    }
}
