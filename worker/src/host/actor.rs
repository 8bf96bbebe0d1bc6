//! The Ractor glue: the actor behind each Troupe actor (draining its mailbox in batches,
//! ticks, passivation) and the supervisor that reports their stops to the host.

use super::*;

/// The supervisor of every hosted actor: reports failures and stops to the host.
pub(super) struct Supervisor;

impl RactorActor for Supervisor {
    type Msg = ();
    type State = mpsc::UnboundedSender<HostEvent>;
    type Arguments = mpsc::UnboundedSender<HostEvent>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        events: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(events)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        events: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let _ = events.send(HostEvent::Stopped {
                    id: cell.get_id(),
                    failed: true,
                    why: format!("crashed: {err}"),
                });
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let _ = events.send(HostEvent::Stopped {
                    id: cell.get_id(),
                    failed: false,
                    why: reason.unwrap_or_else(|| "stopped".into()),
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// Stands in for a behaviour that went back to the host; never called.
pub(super) struct Passivated;

#[async_trait::async_trait]
impl Behavior for Passivated {
    async fn handle(&mut self, _: &Context, _: Value) -> Result<Value, crate::behavior::ActorError> {
        Err(crate::behavior::ActorError::new("passivated"))
    }
}

/// The Ractor actor behind one Troupe actor.
pub(super) struct HostedActor;

pub(super) struct HostedArgs {
    pub(super) behavior: Box<dyn Behavior>,
    pub(super) ctx: Context,
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) processed: Arc<AtomicU64>,
    pub(super) breaker: CircuitBreaker,
    /// Writes the state to the store (modes Interval and EveryMessage).
    pub(super) saver: Option<Saver>,
    pub(super) batch: usize,
    pub(super) labels: [String; 3],
    pub(super) metrics: Metrics,
    pub(super) events: mpsc::UnboundedSender<HostEvent>,
    pub(super) key: ActorKey,
    pub(super) incarnation: u64,
    /// Strong: the Ractor task's state does not own anything that owns it back.
    pub(super) slot: Arc<Slot>,
    pub(super) idle_clock: Arc<AtomicU64>,
    pub(super) host: Weak<Host>,
    /// Asked before every message and tick: nothing runs without a proven lease.
    pub(super) lease: Arc<LeaseClock>,
}

pub(super) struct HostedState {
    args: HostedArgs,
    /// Set once the behaviour went back to the host, or the store refused its epoch: this
    /// Ractor actor only winds down.
    passivated: bool,
    batch_buf: Vec<Envelope>,
    ok: prometheus::IntCounter,
    errors: prometheus::IntCounter,
    latency: prometheus::Histogram,
}

impl HostedState {
    /// Hands the behaviour back to the host if the actor is still idle, then stops. Decided under
    /// the slot's lock, so a sender either sees this actor (and its Wake is handled first, which
    /// makes the mailbox non-idle) or sees the parked behaviour and activates a new one.
    fn passivate(&mut self, myself: &ActorRef<HostedMsg>) {
        let Some(host) = self.args.host.upgrade() else {
            return;
        };
        let slot = self.args.slot.clone();
        let mut s = slot.lock();
        let mine = s.actor.as_ref().is_some_and(|a| a.get_id() == myself.get_id());
        if !mine || s.incarnation != self.args.incarnation || !self.args.mailbox.is_idle() {
            return;
        }
        let behavior = std::mem::replace(&mut self.args.behavior, Box::new(Passivated));
        let breaker = std::mem::take(&mut self.args.breaker);
        let saver = self.args.saver.take();
        s.parked = Some(Parked {
            behavior,
            breaker,
            saver,
        });
        s.actor = None;
        host.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&myself.get_id());
        drop(s);
        self.passivated = true;
        myself.stop(Some("passivated".into()));
    }

    /// Whether the lease is still proven; if not, counts the refused delivery and asks the host
    /// to fence. A worker thawed after a pause takes this path before anything else runs.
    fn lease_proven(&self, kind: &str) -> bool {
        if self.args.lease.is_live() {
            return true;
        }
        self.args
            .metrics
            .stale_deliveries
            .with_label_values(&[kind])
            .inc();
        let _ = self.args.events.send(HostEvent::LeaseExpired);
        false
    }

    /// Writes the state if it is due (see [`Saver::checkpoint`]). On a refusal by epoch, tells
    /// the host (which stops the actor) and handles nothing more. Err: why the changes since
    /// the last write are not committed.
    async fn checkpoint(&mut self) -> Result<(), String> {
        let Some(saver) = self.args.saver.as_mut() else {
            return Ok(());
        };
        if !saver.due() {
            return Ok(());
        }
        let snapshot = self.args.behavior.snapshot();
        let callbacks = HostedCallbacks {
            events: &self.args.events,
            key: &self.args.key,
            incarnation: self.args.incarnation,
            metrics: &self.args.metrics,
            lease: &self.args.lease,
        };
        match saver.commit(snapshot, &callbacks).await {
            Ok(()) => Ok(()),
            Err(CommitError::Stale(why)) => {
                self.passivated = true;
                let _ = self.args.events.send(HostEvent::StaleEpoch {
                    key: self.args.key.clone(),
                    incarnation: self.args.incarnation,
                    why: why.clone(),
                });
                Err(format!("the state change was not committed: {why}"))
            }
            Err(CommitError::Abandoned(why)) => Err(format!("the state change was not committed: {why}")),
        }
    }

    fn record(&mut self, result: &Result<(), String>) -> bool {
        let ok = result.is_ok();
        if ok {
            self.ok.inc()
        } else {
            self.errors.inc()
        }
        self.args.processed.fetch_add(1, Ordering::Relaxed);
        if self.args.breaker.record(ok) {
            let why = format!(
                "circuit breaker opened after {} failures in a row; last: {}",
                self.args.breaker.failures_in_a_row(),
                result.as_ref().err().cloned().unwrap_or_default()
            );
            let _ = self.args.events.send(HostEvent::CircuitOpen {
                key: self.args.key.clone(),
                incarnation: self.args.incarnation,
                why,
            });
            return true;
        }
        false
    }
}

impl RactorActor for HostedActor {
    type Msg = HostedMsg;
    type State = HostedState;
    type Arguments = HostedArgs;

    async fn pre_start(
        &self,
        _: ActorRef<HostedMsg>,
        args: HostedArgs,
    ) -> Result<HostedState, ActorProcessingErr> {
        let labels: Vec<&str> = args.labels.iter().map(String::as_str).collect();
        let [pool, revision, behavior] = [labels[0], labels[1], labels[2]];
        Ok(HostedState {
            ok: args
                .metrics
                .messages
                .with_label_values(&[pool, revision, behavior, "ok"]),
            errors: args
                .metrics
                .messages
                .with_label_values(&[pool, revision, behavior, "error"]),
            latency: args
                .metrics
                .latency
                .with_label_values(&[pool, revision, behavior]),
            // Grown on first use: idle actors keep no buffer.
            batch_buf: Vec::new(),
            passivated: false,
            args,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<HostedMsg>,
        msg: HostedMsg,
        state: &mut HostedState,
    ) -> Result<(), ActorProcessingErr> {
        if state.passivated {
            return Ok(());
        }
        match msg {
            HostedMsg::IdleCheck => {
                state.passivate(&myself);
                return Ok(());
            }
            HostedMsg::Tick => {
                if !state.lease_proven("tick") {
                    return Ok(());
                }
                let r = state.args.behavior.tick(&state.args.ctx).await.map_err(|e| e.0);
                if let Err(e) = &r {
                    tracing::warn!(actor = %state.args.key, error = %e, "tick failed");
                }
                state.record(&r);
                if let Some(saver) = state.args.saver.as_mut() {
                    saver.handled();
                }
                if let Err(why) = state.checkpoint().await {
                    tracing::warn!(actor = %state.args.key, %why, "after a tick");
                }
            }
            HostedMsg::Wake => {
                let mut batch = std::mem::take(&mut state.batch_buf);
                state.args.mailbox.take_batch(state.args.batch, &mut batch);
                let mut opened = false;
                let mut stale = false;
                let write_through = state.args.saver.as_ref().is_some_and(Saver::write_through);
                // Write-through: answers wait for the batch's state to be committed (one write
                // per batch, as a group commit).
                let mut held: Vec<(oneshot::Sender<crate::mailbox::Reply>, crate::mailbox::Reply)> =
                    Vec::new();
                for env in batch.drain(..) {
                    if !stale && !state.lease_proven("message") {
                        stale = true;
                    }
                    if stale {
                        if let Some(reply) = env.reply {
                            let _ = reply.send(Err(
                                "the worker could not prove its lease; the message was not handled".into(),
                            ));
                        }
                        continue;
                    }
                    if opened {
                        if let Some(reply) = env.reply {
                            let _ = reply.send(Err("the actor's circuit breaker opened".into()));
                        }
                        continue;
                    }
                    let ctx = &state.args.ctx;
                    let handled = state.args.behavior.handle(ctx, env.body);
                    // A traced message is handled in a span of its own: its logs show the trace
                    // id, and the actors it tells inherit the trace (`ctx.tell`).
                    let result = match env.trace {
                        None => handled.await,
                        Some(parent) => {
                            let (actor, hop) = (&state.args.key, crate::trace::Hop::Message);
                            crate::trace::within(Some(parent.into()), hop, actor, handled).await
                        }
                    };
                    state.latency.observe(env.enqueued.elapsed().as_secs_f64());
                    let outcome = result.as_ref().map(|_| ()).map_err(|e| e.0.clone());
                    // A tell waiting for its commit is answered "committed", whatever the
                    // behaviour said (a tell's sender never sees the behaviour's answer).
                    let answer = if env.ack {
                        Ok(Value::Null)
                    } else {
                        result.map_err(|e| e.0)
                    };
                    if let Some(reply) = env.reply {
                        if write_through {
                            held.push((reply, answer));
                        } else {
                            let _ = reply.send(answer);
                        }
                    }
                    opened = state.record(&outcome);
                    if let Some(saver) = state.args.saver.as_mut() {
                        saver.handled();
                    }
                }
                let committed = state.checkpoint().await;
                for (reply, answer) in held {
                    let _ = reply.send(match &committed {
                        Ok(()) => answer,
                        Err(why) => Err(why.clone()),
                    });
                }
                if let Err(why) = &committed
                    && !write_through
                {
                    tracing::warn!(actor = %state.args.key, %why, "checkpoint");
                }
                state.batch_buf = batch;
                if state.passivated {
                    return Ok(());
                }
                if !opened && !stale && !state.args.mailbox.is_empty() {
                    myself.cast(HostedMsg::Wake)?;
                }
            }
        }
        let now = state.args.idle_clock.load(Ordering::Relaxed);
        state.args.slot.last_active.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// The behaviour goes back to the host with its last state, for its snapshot if the actor
    /// is leaving this worker (a planned move). Not after a passivation: the host has it then.
    async fn post_stop(
        &self,
        _: ActorRef<HostedMsg>,
        state: &mut HostedState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.passivated {
            let behavior = std::mem::replace(&mut state.args.behavior, Box::new(Passivated));
            state.args.slot.lock().retired = Some(behavior);
        }
        Ok(())
    }
}
