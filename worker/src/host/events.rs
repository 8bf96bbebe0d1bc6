//! What the host's event loop hears about actors: one stopped by itself or failed (restart per
//! policy, or give up), a claim or a handover answered, the store down or fencing a stale epoch,
//! a restart after its backoff, a circuit that opened; and the host's background loops (events,
//! schedules, passivation).

use super::*;

impl Host {
    /// After an actor stopped by itself or failed: restart per policy, or give up.
    pub(super) async fn handle_stop(&self, slot: &Arc<Slot>, incarnation: u64, failed: bool, why: String) {
        let decision = {
            let mut s = slot.lock();
            if s.incarnation != incarnation {
                return;
            }
            s.actor = None;
            if let Some(t) = s.schedule.take() {
                t.abort();
            }
            if failed {
                s.last_error = Some(why.clone());
            }
            let ran_for = s.started.elapsed();
            match s.tracker.as_mut() {
                Some(t) => t.on_stop(Instant::now(), ran_for, failed),
                None => Decision::GiveUp { reason: why.clone() },
            }
        };
        let behavior = self.behavior_label(&slot.lock().spec.behavior);
        match decision {
            Decision::Restart { after } => {
                slot.lock().restarts += 1;
                self.metrics
                    .restarts
                    .with_label_values(&[&self.config.pool, &self.config.revision, &behavior])
                    .inc();
                self.set_phase(
                    slot,
                    ActorPhase::Starting,
                    "BackOff",
                    &format!("restarting in {after:?} after: {why}"),
                );
                tracing::warn!(actor = %slot.key, %why, ?after, "actor stopped; restarting after backoff");
                // The restart goes through the event loop, after the backoff.
                let events = self.events.clone();
                let key = slot.key.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = events.send(HostEvent::Restart { key, incarnation });
                });
            }
            Decision::GiveUp { reason } => {
                tracing::warn!(actor = %slot.key, %reason, "actor stopped for good");
                slot.lock().last_error = Some(format!("{why}; {reason}"));
                let r = if reason.starts_with("RestartLimitExceeded") {
                    "RestartLimitExceeded"
                } else {
                    "Stopped"
                };
                self.set_phase(slot, ActorPhase::Failed, r, &reason);
            }
        }
    }

    pub(super) async fn on_event(&self, event: HostEvent) {
        match event {
            HostEvent::Stopped { id, failed, why } => {
                let entry = self.by_id.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                if let Some((key, incarnation)) = entry
                    && let Some(slot) = self.slot(&key)
                {
                    self.handle_stop(&slot, incarnation, failed, why).await;
                }
            }
            HostEvent::LeaseExpired => {
                if !self.is_fenced() {
                    self.fence("an actor found the lease proof run out").await;
                }
            }
            HostEvent::Claimed {
                key,
                incarnation,
                outcome,
            } => self.claimed(key, incarnation, outcome).await,
            HostEvent::HandedOver {
                key,
                incarnation,
                state,
                stopped_at,
            } => self.handed_over(key, incarnation, state, stopped_at).await,
            HostEvent::StoreDown {
                key,
                incarnation,
                why,
            } => self.store_down(key, incarnation, why),
            HostEvent::StaleEpoch {
                key,
                incarnation,
                why,
            } => self.stale_epoch(key, incarnation, why).await,
            HostEvent::Restart { key, incarnation } => {
                let Some(slot) = self.slot(&key) else { return };
                let _turn = slot.turn.lock().await;
                let current = {
                    let s = slot.lock();
                    s.incarnation == incarnation && s.actor.is_none()
                };
                if current {
                    self.reconcile_in_turn(&slot).await;
                }
            }
            HostEvent::CircuitOpen {
                key,
                incarnation,
                why,
            } => {
                let Some(slot) = self.slot(&key) else { return };
                let _turn = slot.turn.lock().await;
                {
                    let mut s = slot.lock();
                    if s.incarnation != incarnation {
                        return;
                    }
                    s.circuit_open = Some(why.clone());
                    s.last_error = Some(why.clone());
                }
                let behavior = self.behavior_label(&slot.lock().spec.behavior);
                self.metrics
                    .breaker_trips
                    .with_label_values(&[&self.config.pool, &self.config.revision, &behavior])
                    .inc();
                tracing::warn!(actor = %key, %why, "circuit breaker opened; actor paused");
                self.reconcile_in_turn(&slot).await;
            }
        }
    }
}

/// Hands the host every event, in order, while it lives.
pub(super) async fn events_loop(host: Weak<Host>, mut rx: mpsc::UnboundedReceiver<HostEvent>) {
    while let Some(event) = rx.recv().await {
        let Some(host) = host.upgrade() else { return };
        host.on_event(event).await;
    }
}

/// Delivers ticks on schedule until aborted (through the host, which activates the actor).
pub(super) fn spawn_schedule(
    host: Weak<Host>,
    schedule: Schedule,
    key: ActorKey,
) -> tokio::task::JoinHandle<()> {
    let span = tracing::debug_span!("schedule", actor = %key);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            loop {
                let now = Utc::now();
                let Some(next) = schedule.next_after(now) else {
                    return;
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let Some(host) = host.upgrade() else { return };
                host.tick(&key);
            }
        },
        span,
    ))
}

/// Asks idle actors to passivate, twice per passivation period, while the host lives.
pub(super) async fn passivation_loop(host: Weak<Host>, idle: Duration) {
    let every = (idle / 2).max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(every).await;
        let Some(host) = host.upgrade() else { return };
        host.passivate_idle();
    }
}
