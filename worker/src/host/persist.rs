//! An actor's state across activations: looked for before every start (handed over by the
//! previous worker on a planned move, read from the store in modes Interval and EveryMessage),
//! and written to the store while the actor runs ([`Saver`]).
//!
//! Every start of an actor first takes its row in the store under the assignment's epoch, so from
//! then on the store refuses writes of any older activation (`StoreError::Stale`). A running
//! actor whose write is refused so becomes `Failed` with reason `StaleEpoch` and stops. A store
//! that does not answer holds the actor: it takes no messages (503) until the store answers
//! again, which is retried with backoff. See docs/durability.md.

use super::*;

/// How long between attempts when the store does not answer: from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Writes one running actor's state to the store under its activation's epoch.
pub(super) struct Saver {
    store: Arc<dyn StateStore>,
    actor: StateRef,
    epoch: u64,
    /// Handled messages and ticks between writes (1: every one).
    every: u32,
    write_through: bool,
    /// Handled since the last write.
    unsaved: u32,
    /// The Actor's `spec.journal`: every write also appends an entry.
    journal: Option<JournalSpec>,
}

/// Why a state change was not committed.
#[derive(Debug)]
pub(super) enum CommitError {
    /// A newer activation owns the actor: this one must stop.
    Stale(String),
    /// Given up (the lease cannot be proven, or the behaviour could not snapshot).
    Abandoned(String),
}

impl Saver {
    pub(super) fn new(
        store: Arc<dyn StateStore>,
        actor: StateRef,
        epoch: u64,
        config: &HostConfig,
        journal: Option<&JournalSpec>,
    ) -> Saver {
        let write_through = config.persistence == PersistenceMode::EveryMessage;
        Saver {
            store,
            actor,
            epoch,
            every: if write_through {
                1
            } else {
                config.checkpoint_every.max(1)
            },
            write_through,
            unsaved: 0,
            journal: journal.cloned(),
        }
    }

    /// Whether each message is acknowledged only once its change is committed.
    pub(super) fn write_through(&self) -> bool {
        self.write_through
    }

    /// Counts one handled message or tick.
    pub(super) fn handled(&mut self) {
        self.unsaved = self.unsaved.saturating_add(1);
    }

    /// Whether enough was handled since the last write for the next one.
    pub(super) fn due(&self) -> bool {
        self.unsaved >= self.every
    }

    /// Writes `snapshot` (the behaviour's, taken when [`Saver::due`]). While the store does not
    /// answer, retries with backoff (telling the host, which refuses messages meanwhile), as
    /// long as the worker can prove its lease.
    pub(super) async fn commit(
        &mut self,
        snapshot: Result<Option<Value>, crate::behavior::ActorError>,
        host: &HostedCallbacks<'_>,
    ) -> Result<(), CommitError> {
        let state = match snapshot {
            Ok(Some(state)) => state,
            // A behaviour that keeps no state has nothing to write.
            Ok(None) => {
                self.unsaved = 0;
                return Ok(());
            }
            Err(e) => return Err(CommitError::Abandoned(format!("the snapshot failed: {}", e.0))),
        };
        let journal = self.journal.as_ref().map(|j| JournalWrite {
            messages: self.unsaved,
            keep: j.keep(),
            keep_for: j.keep_for(),
        });
        let mut wait = RETRY_FIRST;
        let mut down = false;
        loop {
            let outcome = self
                .store
                .save(&self.actor, self.epoch, &state, journal.as_ref())
                .await;
            let label = match &outcome {
                Ok(()) => "ok",
                Err(StoreError::Stale { .. }) => "stale",
                Err(StoreError::Unavailable(_)) => "unavailable",
            };
            host.metrics.state_writes.with_label_values(&[label]).inc();
            match outcome {
                Ok(()) => {
                    self.unsaved = 0;
                    if down {
                        host.report_store(None);
                    }
                    return Ok(());
                }
                Err(e @ StoreError::Stale { .. }) => return Err(CommitError::Stale(e.to_string())),
                Err(StoreError::Unavailable(why)) => {
                    if !down {
                        tracing::warn!(actor = %self.actor.key, %why, "writing the actor's state failed; retrying");
                        host.report_store(Some(why));
                        down = true;
                    }
                    if !host.lease.is_live() {
                        return Err(CommitError::Abandoned(
                            "the state store did not answer and the worker lost its lease".into(),
                        ));
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// What a saver tells the host from inside a running actor.
pub(super) struct HostedCallbacks<'a> {
    pub(super) events: &'a mpsc::UnboundedSender<HostEvent>,
    pub(super) key: &'a ActorKey,
    pub(super) incarnation: u64,
    pub(super) metrics: &'a Metrics,
    pub(super) lease: &'a LeaseClock,
}

impl HostedCallbacks<'_> {
    fn report_store(&self, why: Option<String>) {
        let _ = self.events.send(HostEvent::StoreDown {
            key: self.key.clone(),
            incarnation: self.incarnation,
            why,
        });
    }
}

impl Host {
    /// What a start of this actor will first look for (the Starting reason and message), or
    /// None when it can start at once: its claim says Starting rather than Running when there is
    /// something to look for, so that the API never shows Running before the state is in.
    pub(super) fn recovery(&self, s: &SlotState) -> Option<(&'static str, String)> {
        if s.recovered {
            return None;
        }
        let previous = s
            .previous
            .as_ref()
            .filter(|_| self.config.persistence != PersistenceMode::None);
        match previous {
            Some(p) => Some((
                "HandingOver",
                format!("asking {} for the state it handed over", p.worker),
            )),
            None if self.store().is_some() => Some((
                "Recovering",
                "reading the actor's state from the store".to_string(),
            )),
            None => None,
        }
    }

    /// The newest entries (at most `limit`) of an actor's journal, from the pool's store: any
    /// worker of the pool answers for every actor of it. None: the pool keeps no store.
    pub async fn journal(&self, key: &ActorKey, limit: u32) -> Option<Result<Vec<JournalEntry>, StoreError>> {
        let store = self.store()?;
        Some(store.journal(key, limit).await)
    }

    /// Before a start: looks, in the background, for the state to start from, and starts the
    /// actor when it is in ([`HostEvent::HandedOver`]). After a planned move, the worker it left
    /// is asked for the state it handed over; in a store mode the store is then told of the
    /// activation's epoch (which fences every older one) and gives the stored state when nothing
    /// was handed over. With nothing to look for (mode None or OnMove and no planned move) the
    /// start goes ahead at once.
    pub(super) fn recover(&self, slot: &Arc<Slot>) {
        let store = self.store();
        let (previous, epoch, uid, incarnation, (reason, message)) = {
            let mut s = slot.lock();
            let Some(looking_for) = self.recovery(&s) else {
                s.recovered = true;
                s.previous = None;
                return;
            };
            let previous = s
                .previous
                .take()
                .filter(|_| self.config.persistence != PersistenceMode::None);
            s.handoff_fetch = Some(s.incarnation);
            (previous, s.epoch, s.uid.clone(), s.incarnation, looking_for)
        };
        self.set_phase(slot, ActorPhase::Starting, reason, &message);
        let key = slot.key.clone();
        let events = self.events.clone();
        let host = self.me.clone();
        let waiting = Arc::downgrade(slot);
        let pool = self.config.pool.clone();
        tokio::spawn(async move {
            let handed = match (previous, host.upgrade()) {
                (Some(previous), Some(me)) => me.fetch_handoff(&key, &previous).await,
                _ => None,
            };
            // Taken from the worker it left: if the actor leaves here before it starts, the
            // departure passes this state on (`pass_on_unstarted`).
            if let Some(slot) = waiting.upgrade() {
                slot.lock().fetched = Some(handed.clone());
            }
            let stopped_at = handed.as_ref().and_then(|h| h.stopped_at);
            let handed = handed.map(|h| h.state);
            let state = match store {
                None => Ok(handed),
                Some(store) => {
                    let actor = StateRef {
                        key: key.clone(),
                        uid,
                        pool,
                    };
                    activate(&*store, &actor, epoch, handed, &events, incarnation, &host).await
                }
            };
            let _ = events.send(HostEvent::HandedOver {
                key,
                incarnation,
                state,
                stopped_at,
            });
        });
    }

    /// The state to start from is in: the actor starts with it, or fails when the store refused
    /// its epoch.
    pub(super) async fn handed_over(
        &self,
        key: ActorKey,
        incarnation: u64,
        state: Result<Option<Value>, String>,
        stopped_at: Option<std::time::SystemTime>,
    ) {
        let Some(slot) = self.slot(&key) else { return };
        let _turn = slot.turn.lock().await;
        {
            let mut s = slot.lock();
            if s.handoff_fetch != Some(incarnation) {
                return;
            }
            s.handoff_fetch = None;
            s.fetched = None;
            s.store_down = None;
            if s.incarnation != incarnation {
                return;
            }
            match state {
                Ok(state) => {
                    s.restore = state;
                    s.recovered = true;
                    s.moved_since = stopped_at;
                }
                Err(why) => {
                    s.last_error = Some(why.clone());
                    drop(s);
                    tracing::warn!(actor = %key, %why, "the store refused this activation");
                    self.set_phase(&slot, ActorPhase::Failed, "StaleEpoch", &why);
                    return;
                }
            }
        }
        self.reconcile_in_turn(&slot).await;
    }

    /// The store stopped (Some) or started (None) answering for a running or starting actor.
    pub(super) fn store_down(&self, key: ActorKey, incarnation: u64, why: Option<String>) {
        let Some(slot) = self.slot(&key) else { return };
        let running = {
            let mut s = slot.lock();
            if s.incarnation != incarnation {
                return;
            }
            s.store_down = why.clone();
            s.actor.is_some() || s.parked.is_some()
        };
        match why {
            Some(why) => self.set_phase(
                &slot,
                ActorPhase::Starting,
                "StoreUnavailable",
                &format!("waiting for the state store ({why}); messages are refused until it answers"),
            ),
            None if running => self.set_phase(
                &slot,
                ActorPhase::Running,
                snapshot::RUNNING.0,
                snapshot::RUNNING.1,
            ),
            None => {}
        }
    }

    /// A running actor's write was refused by epoch: a newer activation owns it. It stops here
    /// and stays Failed (reason StaleEpoch).
    pub(super) async fn stale_epoch(&self, key: ActorKey, incarnation: u64, why: String) {
        let Some(slot) = self.slot(&key) else { return };
        let _turn = slot.turn.lock().await;
        if slot.lock().incarnation != incarnation {
            return;
        }
        tracing::warn!(actor = %key, %why, "the store refused the actor's state: a newer activation owns it; stopping");
        self.stop_actor(&slot, "stale epoch").await;
        slot.lock().last_error = Some(why.clone());
        self.set_phase(&slot, ActorPhase::Failed, "StaleEpoch", &why);
    }
}

/// Takes the actor's row for `epoch`, retrying while the store does not answer and the start is
/// still wanted. Err: the store refused the epoch (a newer activation exists).
async fn activate(
    store: &dyn StateStore,
    actor: &StateRef,
    epoch: u64,
    handed: Option<Value>,
    events: &mpsc::UnboundedSender<HostEvent>,
    incarnation: u64,
    host: &Weak<Host>,
) -> Result<Option<Value>, String> {
    let mut wait = RETRY_FIRST;
    loop {
        match store.activate(actor, epoch, handed.as_ref()).await {
            Ok(stored) => return Ok(handed.or(stored)),
            Err(e @ StoreError::Stale { .. }) => return Err(e.to_string()),
            Err(StoreError::Unavailable(why)) => {
                let _ = events.send(HostEvent::StoreDown {
                    key: actor.key.clone(),
                    incarnation,
                    why: Some(why),
                });
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
                let wanted = host
                    .upgrade()
                    .and_then(|h| h.slot(&actor.key))
                    .is_some_and(|slot| slot.lock().handoff_fetch == Some(incarnation));
                if !wanted {
                    return Ok(None);
                }
            }
        }
    }
}
