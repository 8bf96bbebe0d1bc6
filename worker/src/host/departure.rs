//! Departures: an actor unassigned from this worker (a planned move, or its Actor deleted)
//! stops taking messages, handles the ones it accepted, stops, hands its state over to the next
//! worker, and is confirmed gone (phase Migrating) by the status writer.

use std::time::SystemTime;

use tokio::sync::watch;

use super::*;

/// How long a departure waits for a fetch of the state under way (the fetch itself times out
/// after 5 s).
const FETCH_WAIT: Duration = Duration::from_secs(10);

/// The departures under way, each until it ended (whichever way it returns): one per actor at
/// most, as an actor assigned here again waits for its departure before it gets a slot.
#[derive(Default)]
pub(super) struct UnderWay {
    /// Per actor, a channel whose sender lives as long as its departure: waiting for the
    /// departure is waiting for the channel to close.
    by_actor: Mutex<HashMap<ActorKey, watch::Receiver<()>>>,
}

/// One departure under way, counted from the moment its actor left the map.
pub(super) struct Departing {
    under_way: Arc<UnderWay>,
    key: ActorKey,
    slot: Arc<Slot>,
    _ends: watch::Sender<()>,
    ended: watch::Receiver<()>,
}

impl Drop for Departing {
    fn drop(&mut self) {
        let mut by_actor = self.under_way.by_actor.lock().unwrap_or_else(|e| e.into_inner());
        if by_actor
            .get(&self.key)
            .is_some_and(|r| r.same_channel(&self.ended))
        {
            by_actor.remove(&self.key);
        }
    }
}

impl Host {
    /// Starts the departure of an actor no longer assigned here and returns at once: the actor
    /// is off the map (new messages for it wait for the next worker) and the departure is
    /// counted before this returns; handling the messages it accepted, stopping and handing
    /// its state over go on in a task of their own, so a worker that many actors leave at once
    /// (a scale-in, a rollout's step) stops them side by side rather than one after another.
    /// `then` runs once the actor has stopped here (at once if it is not hosted).
    pub fn depart(
        &self,
        key: &ActorKey,
        resource_version: Option<String>,
        then: impl FnOnce() + Send + 'static,
    ) {
        let Some(host) = self.me.upgrade() else { return };
        match self.begin_departure(key) {
            Some(departing) => {
                tokio::spawn(async move {
                    if host.finish_departure(departing, resource_version).await {
                        then();
                    }
                });
            }
            // Not hosted: nothing to stop.
            None => then(),
        }
    }

    /// Stops and forgets an actor that is no longer assigned here, as [`Host::depart`] does,
    /// and returns once it has left.
    pub async fn remove(&self, key: &ActorKey, resource_version: Option<String>) {
        if let Some(departing) = self.begin_departure(key) {
            self.finish_departure(departing, resource_version).await;
        }
    }

    /// Takes the actor off the map and counts its departure (nothing if it is not hosted).
    fn begin_departure(&self, key: &ActorKey) -> Option<Departing> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let slot = slots.remove(key)?;
        let (ends, ended) = watch::channel(());
        // Counted before the map lock is let go: a leave that finds the actor off the map
        // finds its departure.
        self.departing
            .by_actor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), ended.clone());
        drop(slots);
        Some(Departing {
            under_way: self.departing.clone(),
            key: key.clone(),
            slot,
            _ends: ends,
            ended,
        })
    }

    /// Waits until the departure of `key` under way, if any, has ended: an actor assigned
    /// here again starts only once the state it left with is handed over.
    pub(super) async fn departure_ended(&self, key: &ActorKey) {
        let under_way = self
            .departing
            .by_actor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned();
        if let Some(mut ended) = under_way {
            // Only ever closed (the sender is dropped when the departure ends).
            while ended.changed().await.is_ok() {}
        }
    }

    /// The departure itself: the actor's confirmation is queued only once it really stopped.
    /// Whether it did.
    async fn finish_departure(&self, departing: Departing, resource_version: Option<String>) -> bool {
        let (slot, key) = (&departing.slot, &departing.key);
        // A start under way finishes first; one waiting for its turn finds the actor gone.
        let asked = Instant::now();
        let _turn = slot.turn.lock().await;
        let turn = asked.elapsed();
        // New messages go to the next worker (they wait at the worker that received them
        // until it runs the actor); the ones accepted here are handled here first, so the
        // state handed over includes them.
        slot.mailbox.seal();
        let stopped_taking = std::time::SystemTime::now();
        let began = Instant::now();
        let until = began + self.config.move_drain;
        self.drain_before_leaving(slot, until).await;
        let drained = began.elapsed();
        // Not a fence: the lease is held, so the current message may end within what is
        // left of the drain (a busy worker can take longer than the fencing deadline to get
        // to it; an aborted actor's state could not be handed over).
        let deadline = until
            .saturating_duration_since(Instant::now())
            .max(self.config.stop_deadline);
        let stopped = self.stop_actor_within(slot, "unassigned", deadline).await;
        tracing::debug!(actor = %key, ?turn, ?drained, took = ?began.elapsed(), "departure: drained and stopped");
        let left = slot
            .mailbox
            .close("the actor left this worker before handling the message");
        if left > 0 {
            let behavior = self.behavior_label(&slot.lock().spec.behavior);
            self.metrics
                .messages
                .with_label_values(&[
                    &self.config.pool,
                    &self.config.revision,
                    &behavior,
                    "unhandled_on_move",
                ])
                .inc_by(left as u64);
            tracing::warn!(actor = %key, left, drain = ?self.config.move_drain, "messages not handled before the actor left");
        }
        if !stopped {
            // A behaviour that never yields cannot be aborted: the actor may still be
            // running, so its departure is not confirmed and it is not placed elsewhere.
            tracing::error!(actor = %key, "the actor did not stop; its departure stays unconfirmed");
            return false;
        }
        let (epoch, retired) = {
            let mut s = slot.lock();
            (s.epoch, s.retired.take())
        };
        // Mode None starts every activation from its config: nobody would come for it.
        if self.config.persistence != PersistenceMode::None {
            match retired {
                Some(behavior) => self.hand_over(key, epoch, behavior.as_ref(), stopped_taking),
                None => self.pass_on_unstarted(slot, key, epoch, stopped_taking).await,
            }
        }
        self.departed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Departure {
                key: key.clone(),
                epoch,
                resource_version,
            });
        true
    }

    /// Waits, up to `until`, until an actor that is leaving has handled every message it
    /// accepted. Only an actor that runs (or is parked and wakes for them) can; a paused, failed
    /// or starting one keeps its messages unhandled.
    async fn drain_before_leaving(&self, slot: &Slot, until: Instant) {
        loop {
            let can_run = {
                let s = slot.lock();
                s.actor.is_some() || s.parked.is_some()
            };
            if !can_run || slot.mailbox.is_idle() || Instant::now() >= until {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Passes on the state of an actor that leaves before it ever ran here under this assignment:
    /// released again while its claim or the fetch of its state was under way (a scale-in
    /// stopping two workers places the first one's actors on the second). The state it was
    /// handed is the one the next worker must continue from, and that worker asks this one for
    /// it (the confirmation names this worker and this epoch): it is fetched now if it was not
    /// yet, awaited if the fetch is under way, and kept here under this epoch.
    async fn pass_on_unstarted(&self, slot: &Slot, key: &ActorKey, epoch: u64, stopped_taking: SystemTime) {
        let (restore, previous, in_flight) = {
            let mut s = slot.lock();
            (s.restore.take(), s.previous.take(), s.handoff_fetch.is_some())
        };
        let handed = if let Some(state) = restore {
            Some(Handoff {
                state,
                stopped_at: None,
            })
        } else if let Some(previous) = previous {
            self.fetch_handoff(key, &previous).await
        } else if in_flight {
            self.await_fetch(slot).await
        } else {
            None
        };
        let Some(handed) = handed else { return };
        let stopped_at = handed.stopped_at.unwrap_or(stopped_taking);
        match self.handoff.put(key.clone(), epoch, handed.state, stopped_at) {
            Ok(()) => {
                tracing::debug!(actor = %key, epoch, "state passed on for the next worker; the actor never started here")
            }
            Err(why) => {
                tracing::warn!(actor = %key, epoch, %why, "the actor's state is not handed over; it starts from its config on the next worker")
            }
        }
    }

    /// The state `previous` handed over for `key`: kept here if it left this worker (and came
    /// back), else asked from the worker it left.
    pub(super) async fn fetch_handoff(&self, key: &ActorKey, previous: &PreviousHolder) -> Option<Handoff> {
        if previous.worker == self.config.pod {
            return self.handoff.take(key, previous.epoch);
        }
        let source = self
            .handoff_source
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        source.fetch(key, previous).await
    }

    /// The answer of the fetch under way for `slot` (it has its own timeout; this waits at most
    /// [`FETCH_WAIT`] in case it never reports).
    async fn await_fetch(&self, slot: &Slot) -> Option<Handoff> {
        let until = Instant::now() + FETCH_WAIT;
        while Instant::now() < until {
            if let Some(answer) = slot.lock().fetched.take() {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::warn!(actor = %slot.key, "the fetch of the actor's state did not answer; it is not passed on");
        None
    }

    /// Keeps the state of an actor that left (after its last message) for the next worker.
    fn hand_over(
        &self,
        key: &ActorKey,
        epoch: u64,
        behavior: &dyn Behavior,
        stopped_taking: std::time::SystemTime,
    ) {
        let outcome = match behavior.snapshot() {
            Ok(None) => return,
            Ok(Some(state)) => self.handoff.put(key.clone(), epoch, state, stopped_taking),
            Err(e) => Err(format!("the snapshot failed: {}", e.0)),
        };
        match outcome {
            Ok(()) => tracing::debug!(actor = %key, epoch, "state kept for the next worker"),
            Err(why) => {
                tracing::warn!(actor = %key, epoch, %why, "the actor's state is not handed over; it starts from its config on the next worker")
            }
        }
    }

    /// Whether a worker that is leaving owes nothing more to the actors that left it: no
    /// departure under way (an actor still handling its last messages), every departure taken by the status writer (a batch under way confirms it before the writer
    /// stops) and every state handed over taken by the next worker.
    pub fn departures_settled(&self) -> bool {
        self.departing
            .by_actor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
            && self.departed.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
            && self.handoff.is_empty()
    }

    /// Actors that left this worker since the last call: stopped, confirmation not yet written.
    pub fn take_departed(&self) -> Vec<Departure> {
        std::mem::take(&mut *self.departed.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A departure whose confirmation is still owed — its write failed, or the actor was
    /// released from this pod while another process ran it here — written with the next batch,
    /// unless the actor is hosted here (it came back meanwhile).
    pub fn retry_departure(&self, departure: Departure) {
        if !self.is_hosted(&departure.key) {
            self.departed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(departure);
        }
    }
}
