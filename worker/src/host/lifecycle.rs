//! An actor's life on this worker: assigned, started (lazily activated), restarted per its
//! policy, paused, stopped (departures: `departure.rs`).

use super::*;

impl Host {
    /// Applies an assigned actor's spec (without epoch or version: tests and embedding).
    pub async fn upsert(&self, key: ActorKey, spec: ActorSpec, generation: Option<i64>) {
        self.assign(key, Assignment::of(spec, generation)).await
    }

    /// Applies an assignment: claims and starts the actor, restarts it with a changed spec or a
    /// new epoch, pauses or resumes it, reschedules it, or delivers a tick when `trigger` changed.
    pub async fn assign(&self, key: ActorKey, assignment: Assignment) {
        let Assignment {
            spec,
            generation,
            epoch,
            resource_version,
            previous,
            uid,
        } = assignment;
        // Back before it finished leaving (released and assigned here again at once): it starts
        // from the state it leaves with, once that is handed over.
        self.departure_ended(&key).await;
        let existing = self.slot(&key);
        let Some(slot) = existing else {
            let slot = Arc::new(Slot {
                key: key.clone(),
                mailbox: Arc::new(Mailbox::new(
                    self.config.mailbox_capacity,
                    self.config.mailbox_policy,
                    self.config.block_timeout,
                )),
                processed: Arc::new(AtomicU64::new(0)),
                last_active: AtomicU64::new(0),
                turn: tokio::sync::Mutex::new(()),
                state: Mutex::new(SlotState {
                    last_trigger: spec.trigger.clone(),
                    published_phase: None,
                    spec,
                    generation,
                    epoch,
                    resource_version,
                    claimed: false,
                    claiming: false,
                    claim: None,
                    previous,
                    uid: uid.unwrap_or_default(),
                    restore: None,
                    recovered: false,
                    moved_since: None,
                    store_down: None,
                    handoff_fetch: None,
                    fetched: None,
                    retired: None,
                    phase: ActorPhase::Starting,
                    since: Utc::now(),
                    started_at: None,
                    started: Instant::now(),
                    actor: None,
                    parked: None,
                    incarnation: 0,
                    restarts: 0,
                    last_error: None,
                    ready_reason: ("Starting".into(), "starting".into()),
                    circuit_open: None,
                    tracker: None,
                    schedule: None,
                }),
            });
            self.slots
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), slot.clone());
            self.reconcile(&slot).await;
            return;
        };
        let _turn = slot.turn.lock().await;
        let (needs_restart, trigger) = {
            let mut s = slot.lock();
            let old = s.spec.clone();
            let runtime_changed = old.behavior != spec.behavior
                || old.config != spec.config
                || old.restart_policy != spec.restart_policy
                || old.circuit_breaker != spec.circuit_breaker
                || old.schedule != spec.schedule;
            let trigger = spec.trigger.is_some() && spec.trigger != s.last_trigger;
            s.last_trigger = spec.trigger.clone();
            let edited = generation != s.generation;
            s.spec = spec;
            s.generation = generation;
            s.resource_version = resource_version;
            // A new epoch is a new assignment (the actor left and came back, perhaps unseen):
            // it must be claimed again, and runs under the new epoch.
            let reassigned = epoch != s.epoch;
            if reassigned {
                s.epoch = epoch;
                s.claimed = false;
                s.claiming = false;
                s.claim = None;
                s.previous = previous;
                s.restore = None;
                s.recovered = false;
                s.store_down = None;
                s.handoff_fetch = None;
                s.phase = ActorPhase::Starting;
            }
            let runtime_changed = runtime_changed || reassigned;
            // Any edit closes an open circuit: the user has looked at the actor.
            if edited && s.circuit_open.is_some() {
                s.circuit_open = None;
            }
            (runtime_changed, trigger)
        };
        if needs_restart {
            self.stop_actor(&slot, "spec changed").await;
        }
        self.reconcile_in_turn(&slot).await;
        if trigger {
            self.tick(&key);
        }
    }

    /// Records the phase the API server shows for a hosted actor, so that the status writer
    /// puts its own back when another writer changed it.
    pub fn observe_published(&self, key: &ActorKey, phase: Option<ActorPhase>) {
        if let Some(slot) = self.slot(key) {
            slot.lock().published_phase = phase;
        }
    }

    /// Brings an actor to what its spec and the host's state say: running, paused or fenced
    /// (once it is the actor's turn).
    pub(super) async fn reconcile(&self, slot: &Arc<Slot>) {
        let _turn = slot.turn.lock().await;
        self.reconcile_in_turn(slot).await
    }

    /// Whether `slot` is still this worker's slot of its actor (not removed meanwhile).
    pub(super) fn is_current(&self, slot: &Arc<Slot>) -> bool {
        self.slot(&slot.key).is_some_and(|s| Arc::ptr_eq(&s, slot))
    }

    /// [`Host::reconcile`], for a caller that holds the actor's turn.
    pub(super) async fn reconcile_in_turn(&self, slot: &Arc<Slot>) {
        // Removed while waiting for the turn: it is not this worker's to start any more.
        if !self.is_current(slot) {
            return;
        }
        let (paused, circuit, running) = {
            let s = slot.lock();
            (
                s.spec.paused,
                s.circuit_open.clone(),
                s.actor.is_some() || s.parked.is_some(),
            )
        };
        if self.fenced.load(Ordering::SeqCst) {
            self.stop_actor(slot, "lease lost").await;
            self.set_phase(
                slot,
                ActorPhase::Pending,
                "LeaseLost",
                "the worker could not renew its lease",
            );
            return;
        }
        if paused {
            self.stop_actor(slot, "paused").await;
            self.set_phase(slot, ActorPhase::Paused, "Paused", "spec.paused is true");
            return;
        }
        if let Some(why) = circuit {
            self.stop_actor(slot, "circuit open").await;
            self.set_phase(slot, ActorPhase::Paused, "CircuitOpen", &why);
            return;
        }
        if !running && slot.lock().phase != ActorPhase::Failed {
            if slot.lock().handoff_fetch.is_some() {
                // Started when the previous worker's state is in (`handed_over`).
                return;
            }
            if !slot.lock().claimed {
                // Without a claimer (tests, embedding) there is nobody to claim from.
                if self.claimer.read().unwrap_or_else(|e| e.into_inner()).is_some() {
                    self.begin_claim(slot);
                    return;
                }
                // As if a claim were won at once.
                slot.lock().claimed = true;
            }
            // Every start first looks for the state to start from (handed over, or stored).
            if !slot.lock().recovered {
                self.recover(slot);
                if slot.lock().handoff_fetch.is_some() {
                    return;
                }
            }
            self.start_actor(slot).await;
        } else if !running && slot.lock().phase == ActorPhase::Failed {
            // A failed actor stays failed until its spec changes (handled by upsert).
        }
    }

    pub(super) fn set_phase(&self, slot: &Slot, phase: ActorPhase, reason: &str, message: &str) {
        let mut s = slot.lock();
        if s.phase != phase {
            s.phase = phase;
            s.since = Utc::now();
        }
        s.ready_reason = (reason.to_string(), message.to_string());
    }

    pub(super) async fn start_actor(&self, slot: &Arc<Slot>) {
        // Building a behaviour may have effects of its own: not without a live lease.
        if !self.config.lease.is_live() {
            let _ = self.events.send(HostEvent::LeaseExpired);
            return;
        }
        let (spec, key, epoch, claim, restore, uid) = {
            let mut s = slot.lock();
            s.retired = None;
            s.recovered = false;
            (
                s.spec.clone(),
                slot.key.clone(),
                s.epoch,
                s.claim.take(),
                s.restore.take(),
                s.uid.clone(),
            )
        };
        // Read here, not when the Actor was listed: a config no one can read fails this actor
        // alone (see `troupe_crds::config`).
        let config = spec
            .config
            .as_ref()
            .map(troupe_crds::ActorConfig::parse)
            .transpose()
            .map(Option::unwrap_or_default)
            .map_err(crate::behavior::BuildError::InvalidConfig);
        let built = config.and_then(|config| {
            self.registry.build(
                &spec.behavior,
                &ActorInit {
                    namespace: &key.namespace,
                    name: &key.name,
                    epoch,
                    config: &config,
                },
            )
        });
        // The state the previous worker handed over, put back before the first message.
        let built = built.and_then(|mut b| match restore {
            None => Ok(b),
            Some(state) => b
                .restore(state)
                .map(|()| b)
                .map_err(|e| crate::behavior::BuildError::Restore(e.0)),
        });
        let behavior = match built {
            Ok(b) => b,
            Err(e) => {
                let mut s = slot.lock();
                s.last_error = Some(e.to_string());
                drop(s);
                self.set_phase(slot, ActorPhase::Failed, e.reason(), &e.to_string());
                return;
            }
        };
        let tracker = match RestartTracker::from_spec(&spec.restart_policy) {
            Ok(t) => t,
            Err(e) => {
                self.set_phase(slot, ActorPhase::Failed, "InvalidRestartPolicy", &e);
                return;
            }
        };
        let schedule = match spec.schedule.as_deref().map(str::parse::<Schedule>) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                slot.lock().last_error = Some(e.clone());
                self.set_phase(slot, ActorPhase::Failed, "InvalidSchedule", &e);
                return;
            }
        };
        let mut s = slot.lock();
        // A fence does not wait for the turn (it must stop actors at once): one that came while
        // the behaviour was built finds nothing to stop, so this start must not go on. Checked
        // under the slot's lock, which the fence's stop takes too.
        if self.is_fenced() {
            drop(s);
            self.set_phase(
                slot,
                ActorPhase::Pending,
                "LeaseLost",
                "the worker could not prove its lease",
            );
            return;
        }
        s.incarnation += 1;
        if s.tracker.is_none() {
            s.tracker = Some(tracker);
        }
        s.parked = Some(Parked {
            behavior,
            breaker: CircuitBreaker::new(
                spec.circuit_breaker
                    .as_ref()
                    .map(|c| c.consecutive_failures.max(1) as u32),
            ),
            saver: self.store().map(|store| {
                Saver::new(
                    store,
                    StateRef {
                        key: key.clone(),
                        uid,
                        pool: self.config.pool.clone(),
                    },
                    epoch,
                    &self.config,
                    spec.journal.as_ref(),
                )
            }),
        });
        s.started = Instant::now();
        s.started_at = Some(Utc::now());

        // Started as claimed: the claim's times are the start's, so the status the claim wrote
        // is the one published and the status writer need not write it again.
        if let Some(c) = &claim {
            s.started_at = c.started_at;
        }
        if let Some(schedule) = schedule {
            s.schedule = Some(spawn_schedule(self.me.clone(), schedule, key.clone()));
        }
        slot.mailbox.reopen();
        // Activated now only if messages wait; otherwise on the first message or tick.
        if !slot.mailbox.is_empty() {
            self.activate(slot, &mut s);
        }
        drop(s);
        self.set_phase(
            slot,
            ActorPhase::Running,
            snapshot::RUNNING.0,
            snapshot::RUNNING.1,
        );
        if let Some(since) = slot.lock().moved_since.take() {
            // Wall clocks of two workers: a negative gap (clock difference) counts as none.
            let gap = since.elapsed().unwrap_or_default();
            self.metrics.handoff_seconds.observe(gap.as_secs_f64());
        }
        if let Some(c) = claim {
            slot.lock().since = c.last_transition;
            self.claim_statuses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((key.clone(), c));
        }
        tracing::debug!(actor = %key, behavior = %spec.behavior, "actor started");
    }

    /// Gives a parked behaviour a Ractor actor again and wakes it. Called with the slot locked.
    pub(super) fn activate(&self, slot: &Arc<Slot>, s: &mut SlotState) -> Option<ActorRef<HostedMsg>> {
        if let Some(actor) = &s.actor {
            return Some(actor.clone());
        }
        let parked = s.parked.take()?;
        let key = slot.key.clone();
        let args = HostedArgs {
            behavior: parked.behavior,
            ctx: Context {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                pool: self.config.pool.clone(),
                revision: self.config.revision.clone(),
                epoch: s.epoch,
                router: Arc::new(HostRouter {
                    host: self.me.clone(),
                }),
            },
            mailbox: slot.mailbox.clone(),
            processed: slot.processed.clone(),
            breaker: parked.breaker,
            saver: parked.saver,
            batch: self.config.batch,
            labels: [
                self.config.pool.clone(),
                self.config.revision.clone(),
                self.behavior_label(&s.spec.behavior),
            ],
            metrics: self.metrics.clone(),
            events: self.events.clone(),
            key: key.clone(),
            incarnation: s.incarnation,
            slot: slot.clone(),
            idle_clock: self.idle_clock.clone(),
            host: self.me.clone(),
            lease: self.config.lease.clone(),
        };
        // Instant spawn: the actor takes messages at once while its (infallible) pre_start runs,
        // instead of the caller waiting for a cross-thread hand-off per activation.
        match ractor::ActorRuntime::spawn_linked_instant(None, HostedActor, args, self.supervisor.clone()) {
            Ok((actor, _)) => {
                self.by_id
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(actor.get_id(), (key, s.incarnation));
                s.actor = Some(actor.clone());
                let _ = actor.cast(HostedMsg::Wake);
                Some(actor)
            }
            Err(e) => {
                // Only a name clash fails a spawn, and hosted actors have no names.
                tracing::error!(actor = %slot.key, error = %e, "activation failed");
                s.last_error = Some(format!("activation failed: {e}"));
                None
            }
        }
    }

    /// Stops the actor's Ractor actor (if running), letting its current message finish.
    /// Stops the actor: its current message may finish within the stop deadline, then it is
    /// aborted. Returns whether it really ended (false only for a behaviour that blocks its
    /// thread and so cannot be aborted).
    pub(super) async fn stop_actor(&self, slot: &Slot, why: &str) -> bool {
        self.stop_actor_within(slot, why, self.config.stop_deadline).await
    }

    /// As [`Host::stop_actor`], waiting up to `deadline` for the current message to end.
    pub(super) async fn stop_actor_within(&self, slot: &Slot, why: &str, deadline: Duration) -> bool {
        let (actor, schedule) = {
            let mut s = slot.lock();
            s.incarnation += 1;
            // A passivated actor's behaviour is its last state; a running one hands its own
            // back when it has stopped (HostedActor::post_stop); an actor stopped before (paused,
            // fenced) keeps the one it retired then.
            if let Some(parked) = s.parked.take() {
                s.retired = Some(parked.behavior);
            }
            s.claiming = false;
            s.claim = None;
            (s.actor.take(), s.schedule.take())
        };
        if let Some(t) = schedule {
            t.abort();
        }
        let Some(actor) = actor else { return true };
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&actor.get_id());
        let cell = actor.get_cell();
        if cell
            .stop_and_wait(Some(why.to_string()), Some(deadline))
            .await
            .is_ok()
        {
            tracing::debug!(actor = %slot.key, %why, "actor stopped");
            return true;
        }
        tracing::warn!(actor = %slot.key, %why, ?deadline, "the actor did not stop in time; aborting it");
        match cell.kill_and_wait(Some(deadline)).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(actor = %slot.key, error = %e, "the actor could not be aborted");
                false
            }
        }
    }

    /// Delivers a tick now (a manual trigger).
    pub fn tick(&self, key: &ActorKey) {
        let Some(slot) = self.slot(key) else { return };
        let mut s = slot.lock();
        if let Some(actor) = self.activate(&slot, &mut s) {
            let _ = actor.cast(HostedMsg::Tick);
        }
    }

    /// Advances the idle clock and asks actors idle for two of its ticks (one to two passivation
    /// periods) to passivate.
    pub(super) fn passivate_idle(&self) {
        let now = self.idle_clock.fetch_add(1, Ordering::Relaxed) + 1;
        let slots = self.all_slots();
        for slot in slots {
            if now.saturating_sub(slot.last_active.load(Ordering::Relaxed)) < 2 || !slot.mailbox.is_empty() {
                continue;
            }
            if let Some(actor) = slot.lock().actor.clone() {
                let _ = actor.cast(HostedMsg::IdleCheck);
            }
        }
    }

    /// Whether the actor has a Ractor actor right now (false while parked or stopped).
    pub fn is_active(&self, key: &ActorKey) -> bool {
        self.slot(key).is_some_and(|s| s.lock().actor.is_some())
    }
}
