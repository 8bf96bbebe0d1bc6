//! Fencing: no actor runs without the worker's proof of a live lease.

use super::*;

impl Host {
    /// Stops every actor and refuses to start any (the lease could not be renewed), or lifts it.
    pub async fn set_fenced(&self, fenced: bool) {
        if self.fenced.swap(fenced, Ordering::SeqCst) == fenced {
            return;
        }
        if fenced {
            tracing::error!("fencing: stopping every actor before the lease can expire");
        } else {
            tracing::info!("lease renewed again: starting actors");
        }
        let slots = self.all_slots();
        for slot in slots {
            if !fenced && slot.lock().phase == ActorPhase::Pending {
                slot.lock().phase = ActorPhase::Starting;
            }
            self.reconcile(&slot).await;
        }
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// Drains mailboxes for up to `deadline`, then stops every actor (graceful shutdown).
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
        for slot in &slots {
            let left = slot.mailbox.close("the worker is shutting down");
            if left > 0 {
                tracing::warn!(actor = %slot.key, left, "messages not handled before the drain deadline");
            }
        }
        futures::future::join_all(slots.iter().map(|s| self.stop_actor(s, "worker shutting down"))).await;
    }
}
