//! The Ractor host: runs exactly the actors assigned to this worker.
//!
//! Each Troupe actor is a Ractor actor linked to one supervisor actor. Messages wait in a
//! bounded [`Mailbox`] in front of it; the Ractor actor is only woken. The host applies the
//! desired state (assigned Actors, from the Kubernetes watch), restarts failed actors per their
//! restart policy, opens circuit breakers, delivers ticks, and keeps the runtime status that the
//! status writer publishes.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use ractor::{Actor as RactorActor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use troupe_crds::{ActorPhase, ActorSpec, MailboxFullPolicy};

use crate::{
    behavior::{ActorInit, Behavior, Context, Registry, Router},
    mailbox::{Envelope, Mailbox, Pushed, SendError},
    metrics::Metrics,
    schedule::Schedule,
    supervision::{CircuitBreaker, Decision, RestartTracker},
};

/// An actor's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorKey {
    pub namespace: String,
    pub name: String,
}

impl ActorKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ActorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How the host runs actors: the pool's mailbox settings and this worker's identity.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// This worker's pod name: where its actors run, as their status says.
    pub pod: String,
    pub pool: String,
    pub revision: String,
    pub mailbox_capacity: usize,
    pub mailbox_policy: MailboxFullPolicy,
    pub block_timeout: Duration,
    /// Messages an actor handles before yielding to others.
    pub batch: usize,
    /// An actor idle this long is passivated: its Ractor actor stops and its behaviour (with its
    /// state) waits in the host until the next message or tick. `None`: never.
    pub passivate_after: Option<Duration>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            pod: "local".into(),
            pool: "local".into(),
            revision: "dev".into(),
            mailbox_capacity: 1000,
            mailbox_policy: MailboxFullPolicy::Reject,
            block_timeout: Duration::from_secs(1),
            batch: 64,
            passivate_after: Some(Duration::from_secs(60)),
        }
    }
}

/// Why a message could not be delivered; each maps to an HTTP status in the API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    #[error("actor {0} is not hosted by this worker")]
    NotHere(ActorKey),
    #[error("actor {0} is paused")]
    Paused(ActorKey),
    #[error("actor {key} cannot take messages: {why}")]
    Unavailable { key: ActorKey, why: String },
    #[error("actor {key}: {source}")]
    Full { key: ActorKey, source: SendError },
    #[error("actor {0} did not answer in time")]
    Timeout(ActorKey),
    #[error("actor {key} failed to answer: {why}")]
    Failed { key: ActorKey, why: String },
}

/// A condition the worker reports on an actor (type, status, reason, message).
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionState {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// The runtime fields the worker owns in an Actor's status.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeStatus {
    pub phase: ActorPhase,
    pub restarts: i32,
    pub messages_processed: u64,
    pub last_error: Option<String>,
    pub last_transition: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub observed_generation: Option<i64>,
    pub conditions: Vec<ConditionState>,
    /// The phase the API server last showed for the actor (another writer may have changed it).
    pub published_phase: Option<ActorPhase>,
}

/// A hosted actor, resolved once: sends skip the lookup by name. Valid while the actor stays on
/// this worker; after it left, sends fail with `Unavailable` (its mailbox is closed).
#[derive(Clone)]
pub struct ActorHandle {
    slot: Arc<Slot>,
    host: Arc<Host>,
}

impl ActorHandle {
    pub async fn tell(&self, body: Value) -> Result<(), DeliveryError> {
        self.host.check(&self.slot)?;
        self.host.tell_slot(&self.slot, body).await
    }

    pub async fn ask(&self, body: Value, timeout: Duration) -> Result<Value, DeliveryError> {
        self.host.check(&self.slot)?;
        self.host.ask_slot(&self.slot, body, timeout).await
    }
}

/// Messages of the Ractor actor behind each Troupe actor.
pub enum HostedMsg {
    /// The mailbox has messages.
    Wake,
    /// A scheduled or triggered tick.
    Tick,
    /// The host saw the actor idle: passivate if it still is.
    IdleCheck,
}

/// What the supervisor and the actors tell the host.
enum HostEvent {
    Stopped {
        id: ActorId,
        failed: bool,
        why: String,
    },
    CircuitOpen {
        key: ActorKey,
        incarnation: u64,
        why: String,
    },
    /// A backoff is over: start the actor again if nothing happened to it meanwhile.
    Restart {
        key: ActorKey,
        incarnation: u64,
    },
}

struct SlotState {
    spec: ActorSpec,
    generation: Option<i64>,
    phase: ActorPhase,
    since: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    started: Instant,
    actor: Option<ActorRef<HostedMsg>>,
    /// The behaviour of a running actor with no Ractor actor at the moment (not yet activated, or
    /// passivated while idle). `actor` and `parked` are never both set.
    parked: Option<Parked>,
    /// Bumped on every start and stop, so late events of an earlier run are ignored.
    incarnation: u64,
    restarts: i32,
    last_error: Option<String>,
    ready_reason: (String, String),
    circuit_open: Option<String>,
    tracker: Option<RestartTracker>,
    schedule: Option<tokio::task::JoinHandle<()>>,
    last_trigger: Option<String>,
    published_phase: Option<ActorPhase>,
}

/// A behaviour waiting for its next activation, with its circuit breaker's count.
struct Parked {
    behavior: Box<dyn Behavior>,
    breaker: CircuitBreaker,
}

struct Slot {
    key: ActorKey,
    mailbox: Arc<Mailbox>,
    processed: Arc<AtomicU64>,
    /// The host's idle clock (see [`Host::idle_clock`]) when the actor last handled something.
    last_active: AtomicU64,
    state: Mutex<SlotState>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The host of one worker.
pub struct Host {
    config: HostConfig,
    registry: Registry,
    metrics: Metrics,
    slots: RwLock<HashMap<ActorKey, Arc<Slot>>>,
    by_id: Mutex<HashMap<ActorId, (ActorKey, u64)>>,
    events: mpsc::UnboundedSender<HostEvent>,
    supervisor: ActorCell,
    router: RwLock<Option<Arc<dyn Router>>>,
    fenced: AtomicBool,
    /// Actors stopped because they left this worker, whose stop is still to be confirmed in
    /// their status (phase Migrating), so the operator can place them elsewhere.
    departed: Mutex<Vec<ActorKey>>,
    /// Ticks once per passivation period: a coarse clock that actors copy without reading time.
    idle_clock: Arc<AtomicU64>,
    me: Weak<Host>,
}

impl Host {
    /// Starts the host and its supervisor actor.
    pub async fn start(
        config: HostConfig,
        registry: Registry,
        metrics: Metrics,
    ) -> anyhow::Result<Arc<Host>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (supervisor, _) = RactorActor::spawn(None, Supervisor, tx.clone())
            .await
            .map_err(|e| anyhow::anyhow!("starting the supervisor actor: {e}"))?;
        let host = Arc::new_cyclic(|me| Host {
            config,
            registry,
            metrics,
            slots: RwLock::new(HashMap::new()),
            by_id: Mutex::new(HashMap::new()),
            events: tx,
            supervisor: supervisor.get_cell(),
            router: RwLock::new(None),
            fenced: AtomicBool::new(false),
            idle_clock: Arc::new(AtomicU64::new(0)),
            departed: Mutex::new(Vec::new()),
            me: me.clone(),
        });
        if let Some(idle) = host.config.passivate_after {
            tokio::spawn(tracing::Instrument::instrument(
                passivation_loop(Arc::downgrade(&host), idle),
                tracing::info_span!("passivation"),
            ));
        }
        tokio::spawn(tracing::Instrument::instrument(
            events_loop(Arc::downgrade(&host), rx),
            tracing::info_span!("host-events"),
        ));
        Ok(host)
    }

    /// Sets where actors' `ctx.tell` goes for actors not hosted here.
    pub fn set_router(&self, router: Arc<dyn Router>) {
        *self.router.write().unwrap_or_else(|e| e.into_inner()) = Some(router);
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn slot(&self, key: &ActorKey) -> Option<Arc<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    fn all_slots(&self) -> Vec<Arc<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn is_hosted(&self, key: &ActorKey) -> bool {
        self.slot(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn keys(&self) -> Vec<ActorKey> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn behavior_label(&self, behavior: &str) -> String {
        if self.registry.contains(behavior) {
            behavior.to_string()
        } else {
            "unknown".into()
        }
    }

    /// Applies an assigned actor's spec: starts it, restarts it with a changed spec, pauses or
    /// resumes it, reschedules it, or delivers a tick when `trigger` changed.
    pub async fn upsert(&self, key: ActorKey, spec: ActorSpec, generation: Option<i64>) {
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
                state: Mutex::new(SlotState {
                    last_trigger: spec.trigger.clone(),
                    published_phase: None,
                    spec,
                    generation,
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
            // Any edit closes an open circuit: the user has looked at the actor.
            if edited && s.circuit_open.is_some() {
                s.circuit_open = None;
            }
            (runtime_changed, trigger)
        };
        if needs_restart {
            self.stop_actor(&slot, "spec changed").await;
        }
        self.reconcile(&slot).await;
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

    /// Stops and forgets an actor that is no longer assigned here.
    pub async fn remove(&self, key: &ActorKey) {
        let slot = self.slots.write().unwrap_or_else(|e| e.into_inner()).remove(key);
        if let Some(slot) = slot {
            self.stop_actor(&slot, "unassigned").await;
            slot.mailbox.close("the actor left this worker");
            self.departed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(key.clone());
        }
    }

    /// Actors that left this worker since the last call: stopped, confirmation not yet written.
    pub fn take_departed(&self) -> Vec<ActorKey> {
        std::mem::take(&mut *self.departed.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Brings an actor to what its spec and the host's state say: running, paused or fenced.
    async fn reconcile(&self, slot: &Arc<Slot>) {
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
            self.start_actor(slot).await;
        } else if !running && slot.lock().phase == ActorPhase::Failed {
            // A failed actor stays failed until its spec changes (handled by upsert).
        }
    }

    fn set_phase(&self, slot: &Slot, phase: ActorPhase, reason: &str, message: &str) {
        let mut s = slot.lock();
        if s.phase != phase {
            s.phase = phase;
            s.since = Utc::now();
        }
        s.ready_reason = (reason.to_string(), message.to_string());
    }

    async fn start_actor(&self, slot: &Arc<Slot>) {
        let (spec, key) = {
            let s = slot.lock();
            (s.spec.clone(), slot.key.clone())
        };
        let config = spec.config.clone().unwrap_or_default();
        let behavior = match self.registry.build(
            &spec.behavior,
            &ActorInit {
                namespace: &key.namespace,
                name: &key.name,
                epoch: 0,
                config: &config,
            },
        ) {
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
        });
        s.started = Instant::now();
        s.started_at = Some(Utc::now());
        if let Some(schedule) = schedule {
            s.schedule = Some(spawn_schedule(self.me.clone(), schedule, key.clone()));
        }
        slot.mailbox.reopen();
        // Activated now only if messages wait; otherwise on the first message or tick.
        if !slot.mailbox.is_empty() {
            self.activate(slot, &mut s);
        }
        drop(s);
        self.set_phase(slot, ActorPhase::Running, "Running", "the actor is running");
        tracing::debug!(actor = %key, behavior = %spec.behavior, "actor started");
    }

    /// Gives a parked behaviour a Ractor actor again and wakes it. Called with the slot locked.
    fn activate(&self, slot: &Arc<Slot>, s: &mut SlotState) -> Option<ActorRef<HostedMsg>> {
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
                epoch: 0,
                router: Arc::new(HostRouter {
                    host: self.me.clone(),
                }),
            },
            mailbox: slot.mailbox.clone(),
            processed: slot.processed.clone(),
            breaker: parked.breaker,
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
    async fn stop_actor(&self, slot: &Slot, why: &str) {
        let (actor, schedule) = {
            let mut s = slot.lock();
            s.incarnation += 1;
            s.parked = None;
            (s.actor.take(), s.schedule.take())
        };
        if let Some(t) = schedule {
            t.abort();
        }
        if let Some(actor) = actor {
            self.by_id
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&actor.get_id());
            let _ = actor
                .get_cell()
                .stop_and_wait(Some(why.to_string()), Some(Duration::from_secs(10)))
                .await;
            tracing::info!(actor = %slot.key, %why, "actor stopped");
        }
    }

    /// After an actor stopped by itself or failed: restart per policy, or give up.
    async fn handle_stop(&self, slot: &Arc<Slot>, incarnation: u64, failed: bool, why: String) {
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

    async fn on_event(&self, event: HostEvent) {
        match event {
            HostEvent::Stopped { id, failed, why } => {
                let entry = self.by_id.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                if let Some((key, incarnation)) = entry
                    && let Some(slot) = self.slot(&key)
                {
                    self.handle_stop(&slot, incarnation, failed, why).await;
                }
            }
            HostEvent::Restart { key, incarnation } => {
                let Some(slot) = self.slot(&key) else { return };
                let current = {
                    let s = slot.lock();
                    s.incarnation == incarnation && s.actor.is_none()
                };
                if current {
                    self.reconcile(&slot).await;
                }
            }
            HostEvent::CircuitOpen {
                key,
                incarnation,
                why,
            } => {
                let Some(slot) = self.slot(&key) else { return };
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
                self.reconcile(&slot).await;
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
    fn passivate_idle(&self) {
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

    fn admit(&self, key: &ActorKey) -> Result<Arc<Slot>, DeliveryError> {
        let slot = self
            .slot(key)
            .ok_or_else(|| DeliveryError::NotHere(key.clone()))?;
        let s = slot.lock();
        match s.phase {
            ActorPhase::Paused => return Err(DeliveryError::Paused(key.clone())),
            ActorPhase::Failed | ActorPhase::Pending => {
                return Err(DeliveryError::Unavailable {
                    key: key.clone(),
                    why: format!("{:?}: {}", s.phase, s.ready_reason.1),
                });
            }
            _ => {}
        }
        drop(s);
        Ok(slot)
    }

    fn wake(&self, slot: &Arc<Slot>, pushed: Pushed) {
        if pushed.dropped_oldest {
            let behavior = self.behavior_label(&slot.lock().spec.behavior);
            self.metrics
                .messages
                .with_label_values(&[&self.config.pool, &self.config.revision, &behavior, "dropped"])
                .inc();
        }
        if pushed.wake {
            let mut s = slot.lock();
            match s.actor.clone() {
                Some(actor) => {
                    let _ = actor.cast(HostedMsg::Wake);
                }
                None if s.parked.is_some() => {
                    self.activate(slot, &mut s);
                }
                // Restarting: the next start finds the messages waiting.
                None => {}
            }
        }
    }

    fn rejected(&self, slot: &Slot, e: SendError) -> DeliveryError {
        let behavior = self.behavior_label(&slot.lock().spec.behavior);
        self.metrics
            .messages
            .with_label_values(&[&self.config.pool, &self.config.revision, &behavior, "rejected"])
            .inc();
        match e {
            SendError::Closed => DeliveryError::Unavailable {
                key: slot.key.clone(),
                why: e.to_string(),
            },
            full => DeliveryError::Full {
                key: slot.key.clone(),
                source: full,
            },
        }
    }

    /// A handle on a hosted actor, for senders that send it many messages (no lookup per send).
    pub fn handle(&self, key: &ActorKey) -> Option<ActorHandle> {
        Some(ActorHandle {
            slot: self.slot(key)?,
            host: self.me.upgrade()?,
        })
    }

    /// Sends a message without waiting for an answer.
    pub async fn tell(&self, key: &ActorKey, body: Value) -> Result<(), DeliveryError> {
        let slot = self.admit(key)?;
        self.tell_slot(&slot, body).await
    }

    fn check(&self, slot: &Slot) -> Result<(), DeliveryError> {
        let s = slot.lock();
        match s.phase {
            ActorPhase::Paused => Err(DeliveryError::Paused(slot.key.clone())),
            ActorPhase::Failed | ActorPhase::Pending => Err(DeliveryError::Unavailable {
                key: slot.key.clone(),
                why: format!("{:?}: {}", s.phase, s.ready_reason.1),
            }),
            _ => Ok(()),
        }
    }

    async fn tell_slot(&self, slot: &Arc<Slot>, body: Value) -> Result<(), DeliveryError> {
        let env = Envelope {
            body,
            reply: None,
            enqueued: Instant::now(),
        };
        match slot.mailbox.push(env).await {
            Ok(p) => {
                self.wake(slot, p);
                Ok(())
            }
            Err(e) => Err(self.rejected(slot, e)),
        }
    }

    /// Sends a message and waits for the answer, up to `timeout`.
    pub async fn ask(&self, key: &ActorKey, body: Value, timeout: Duration) -> Result<Value, DeliveryError> {
        let slot = self.admit(key)?;
        self.ask_slot(&slot, body, timeout).await
    }

    async fn ask_slot(
        &self,
        slot: &Arc<Slot>,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, DeliveryError> {
        let key = &slot.key;
        let (tx, rx) = oneshot::channel();
        let env = Envelope {
            body,
            reply: Some(tx),
            enqueued: Instant::now(),
        };
        match slot.mailbox.push(env).await {
            Ok(p) => self.wake(slot, p),
            Err(e) => return Err(self.rejected(slot, e)),
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(DeliveryError::Timeout(key.clone())),
            Ok(Err(_)) => Err(DeliveryError::Failed {
                key: key.clone(),
                why: "the actor stopped before answering".into(),
            }),
            Ok(Ok(Err(why))) => Err(DeliveryError::Failed {
                key: key.clone(),
                why,
            }),
            Ok(Ok(Ok(v))) => Ok(v),
        }
    }

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
                let status = RuntimeStatus {
                    phase: s.phase,
                    restarts: s.restarts,
                    messages_processed: slot.processed.load(Ordering::Relaxed),
                    last_error: s.last_error.clone(),
                    last_transition: s.since,
                    started_at: s.started_at,
                    observed_generation: s.generation,
                    conditions,
                    published_phase: s.published_phase,
                };
                (slot.key.clone(), status)
            })
            .collect();
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

async fn events_loop(host: Weak<Host>, mut rx: mpsc::UnboundedReceiver<HostEvent>) {
    while let Some(event) = rx.recv().await {
        let Some(host) = host.upgrade() else { return };
        host.on_event(event).await;
    }
}

/// Delivers ticks on schedule until aborted (through the host, which activates the actor).
fn spawn_schedule(host: Weak<Host>, schedule: Schedule, key: ActorKey) -> tokio::task::JoinHandle<()> {
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

async fn passivation_loop(host: Weak<Host>, idle: Duration) {
    let every = (idle / 2).max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(every).await;
        let Some(host) = host.upgrade() else { return };
        host.passivate_idle();
    }
}

/// `ctx.tell` of actors: local actors directly, others through the worker's router.
struct HostRouter {
    host: Weak<Host>,
}

#[async_trait::async_trait]
impl Router for HostRouter {
    async fn tell(
        &self,
        namespace: &str,
        actor: &str,
        msg: Value,
    ) -> Result<(), crate::behavior::ActorError> {
        let host = self
            .host
            .upgrade()
            .ok_or_else(|| crate::behavior::ActorError::new("the worker is shutting down"))?;
        let key = ActorKey::new(namespace, actor);
        if host.is_hosted(&key) {
            return host
                .tell(&key, msg)
                .await
                .map_err(|e| crate::behavior::ActorError::new(e.to_string()));
        }
        let router = host.router.read().unwrap_or_else(|e| e.into_inner()).clone();
        match router {
            Some(r) => r.tell(namespace, actor, msg).await,
            None => Err(crate::behavior::ActorError::new(format!(
                "actor {key} is not hosted here and this worker has no route to other workers"
            ))),
        }
    }
}

/// The supervisor of every hosted actor: reports failures and stops to the host.
struct Supervisor;

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
struct Passivated;

#[async_trait::async_trait]
impl Behavior for Passivated {
    async fn handle(&mut self, _: &Context, _: Value) -> Result<Value, crate::behavior::ActorError> {
        Err(crate::behavior::ActorError::new("passivated"))
    }
}

/// The Ractor actor behind one Troupe actor.
struct HostedActor;

struct HostedArgs {
    behavior: Box<dyn Behavior>,
    ctx: Context,
    mailbox: Arc<Mailbox>,
    processed: Arc<AtomicU64>,
    breaker: CircuitBreaker,
    batch: usize,
    labels: [String; 3],
    metrics: Metrics,
    events: mpsc::UnboundedSender<HostEvent>,
    key: ActorKey,
    incarnation: u64,
    /// Strong: the Ractor task's state does not own anything that owns it back.
    slot: Arc<Slot>,
    idle_clock: Arc<AtomicU64>,
    host: Weak<Host>,
}

struct HostedState {
    args: HostedArgs,
    /// Set once the behaviour went back to the host: this Ractor actor only winds down.
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
        s.parked = Some(Parked { behavior, breaker });
        s.actor = None;
        host.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&myself.get_id());
        drop(s);
        self.passivated = true;
        myself.stop(Some("passivated".into()));
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
                let r = state.args.behavior.tick(&state.args.ctx).await.map_err(|e| e.0);
                if let Err(e) = &r {
                    tracing::warn!(actor = %state.args.key, error = %e, "tick failed");
                }
                state.record(&r);
            }
            HostedMsg::Wake => {
                let mut batch = std::mem::take(&mut state.batch_buf);
                state.args.mailbox.take_batch(state.args.batch, &mut batch);
                let mut opened = false;
                for env in batch.drain(..) {
                    if opened {
                        if let Some(reply) = env.reply {
                            let _ = reply.send(Err("the actor's circuit breaker opened".into()));
                        }
                        continue;
                    }
                    let result = state.args.behavior.handle(&state.args.ctx, env.body).await;
                    state.latency.observe(env.enqueued.elapsed().as_secs_f64());
                    let outcome = result.as_ref().map(|_| ()).map_err(|e| e.0.clone());
                    if let Some(reply) = env.reply {
                        let _ = reply.send(result.map_err(|e| e.0));
                    }
                    opened = state.record(&outcome);
                }
                state.batch_buf = batch;
                if !opened && !state.args.mailbox.is_empty() {
                    myself.cast(HostedMsg::Wake)?;
                }
            }
        }
        let now = state.args.idle_clock.load(Ordering::Relaxed);
        state.args.slot.last_active.store(now, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use troupe_crds::{CircuitBreakerSpec, RestartPolicy, RestartPolicySpec};

    use super::*;
    use crate::builtin;

    fn spec(behavior: &str, config: Value) -> ActorSpec {
        ActorSpec {
            pool: "p".into(),
            behavior: behavior.into(),
            config: config.as_object().cloned(),
            schedule: None,
            paused: false,
            trigger: None,
            restart_policy: RestartPolicySpec::default(),
            circuit_breaker: None,
        }
    }

    async fn host() -> Arc<Host> {
        Host::start(HostConfig::default(), builtin::registry(), Metrics::new())
            .await
            .unwrap()
    }

    async fn phase_becomes(host: &Host, key: &ActorKey, phase: ActorPhase) -> RuntimeStatus {
        for _ in 0..300 {
            if let Some((_, s)) = host.snapshot().into_iter().find(|(k, _)| k == key)
                && s.phase == phase
            {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{key} never became {phase:?}: {:?}", host.snapshot());
    }

    #[tokio::test]
    async fn an_assigned_actor_runs_and_answers_asks_with_its_state() {
        let host = host().await;
        let key = ActorKey::new("ns", "c");
        host.upsert(key.clone(), spec("counter", json!({"start": 40})), Some(1))
            .await;
        host.tell(&key, json!(1)).await.unwrap();
        let v = host.ask(&key, json!(1), Duration::from_secs(1)).await.unwrap();
        assert_eq!(v, json!({"value": 42}));
        let s = phase_becomes(&host, &key, ActorPhase::Running).await;
        assert_eq!(s.messages_processed, 2);
        assert_eq!(s.observed_generation, Some(1));
    }

    #[tokio::test]
    async fn an_unknown_behavior_fails_with_a_clear_reason() {
        let host = host().await;
        let key = ActorKey::new("ns", "x");
        host.upsert(key.clone(), spec("nope", json!({})), Some(1)).await;
        let s = phase_becomes(&host, &key, ActorPhase::Failed).await;
        assert_eq!(s.conditions[0].reason, "UnknownBehavior");
        assert!(s.last_error.unwrap().contains("this worker knows"));
        assert!(matches!(
            host.tell(&key, json!(1)).await,
            Err(DeliveryError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn a_crashing_actor_is_restarted_until_its_restart_limit() {
        let host = host().await;
        let key = ActorKey::new("ns", "crash");
        let mut s = spec("flaky", json!({"panicRate": 1.0}));
        s.restart_policy = RestartPolicySpec {
            policy: RestartPolicy::OnFailure,
            max_restarts: 2,
            window: "1m".into(),
            ..Default::default()
        };
        s.restart_policy.backoff.initial = "10ms".into();
        s.restart_policy.backoff.max = "20ms".into();
        host.upsert(key.clone(), s, Some(1)).await;
        for _ in 0..3 {
            let _ = host.tell(&key, json!(1)).await;
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        let st = phase_becomes(&host, &key, ActorPhase::Failed).await;
        assert_eq!(st.restarts, 2);
        assert_eq!(st.conditions[0].reason, "RestartLimitExceeded");
        assert!(st.last_error.unwrap().contains("crashed"));
    }

    #[tokio::test]
    async fn the_circuit_breaker_pauses_the_actor_and_an_edit_closes_it() {
        let host = host().await;
        let key = ActorKey::new("ns", "cb");
        let mut s = spec("flaky", json!({"failureRate": 1.0}));
        s.circuit_breaker = Some(CircuitBreakerSpec {
            consecutive_failures: 3,
        });
        host.upsert(key.clone(), s.clone(), Some(1)).await;
        for _ in 0..3 {
            let _ = host.ask(&key, json!(1), Duration::from_secs(1)).await;
        }
        let st = phase_becomes(&host, &key, ActorPhase::Paused).await;
        let circuit = st.conditions.iter().find(|c| c.type_ == "CircuitOpen").unwrap();
        assert!(circuit.status);
        assert!(matches!(
            host.tell(&key, json!(1)).await,
            Err(DeliveryError::Paused(_))
        ));
        s.config = json!({"failureRate": 0.0}).as_object().cloned();
        host.upsert(key.clone(), s, Some(2)).await;
        phase_becomes(&host, &key, ActorPhase::Running).await;
        assert_eq!(
            host.ask(&key, json!("ok"), Duration::from_secs(1)).await.unwrap(),
            json!("ok")
        );
    }

    #[tokio::test]
    async fn pausing_stops_the_actor_and_refuses_messages_until_resumed() {
        let host = host().await;
        let key = ActorKey::new("ns", "p");
        let mut s = spec("counter", json!({}));
        host.upsert(key.clone(), s.clone(), Some(1)).await;
        s.paused = true;
        host.upsert(key.clone(), s.clone(), Some(2)).await;
        phase_becomes(&host, &key, ActorPhase::Paused).await;
        assert!(matches!(
            host.tell(&key, json!(1)).await,
            Err(DeliveryError::Paused(_))
        ));
        s.paused = false;
        host.upsert(key.clone(), s, Some(3)).await;
        phase_becomes(&host, &key, ActorPhase::Running).await;
        assert!(host.tell(&key, json!(1)).await.is_ok());
    }

    #[tokio::test]
    async fn schedules_and_triggers_deliver_ticks() {
        let host = host().await;
        let key = ActorKey::new("ns", "s");
        let mut s = spec("scheduled", json!({}));
        s.schedule = Some("every 50ms".into());
        host.upsert(key.clone(), s.clone(), Some(1)).await;
        tokio::time::sleep(Duration::from_millis(280)).await;
        let ticks = host.ask(&key, json!({}), Duration::from_secs(1)).await.unwrap()["ticks"]
            .as_u64()
            .unwrap();
        assert!((3..=7).contains(&ticks), "{ticks} ticks in 280 ms at 50 ms");

        let key = ActorKey::new("ns", "t");
        let mut s = spec("scheduled", json!({}));
        host.upsert(key.clone(), s.clone(), Some(1)).await;
        s.trigger = Some("first".into());
        host.upsert(key.clone(), s.clone(), Some(2)).await;
        host.upsert(key.clone(), s.clone(), Some(2)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let v = host.ask(&key, json!({}), Duration::from_secs(1)).await.unwrap();
        assert_eq!(v["ticks"], 1, "one trigger change, one tick");
    }

    #[tokio::test]
    async fn a_full_mailbox_rejects_with_mailbox_full() {
        let config = HostConfig {
            mailbox_capacity: 2,
            ..Default::default()
        };
        let host = Host::start(config, builtin::registry(), Metrics::new())
            .await
            .unwrap();
        let key = ActorKey::new("ns", "slow");
        host.upsert(key.clone(), spec("flaky", json!({"latencyMs": 200})), Some(1))
            .await;
        let mut results = Vec::new();
        for _ in 0..5 {
            results.push(host.tell(&key, json!(1)).await);
        }
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(DeliveryError::Full { .. }))),
            "{results:?}"
        );
    }

    #[tokio::test]
    async fn fencing_stops_every_actor_and_lifting_it_starts_them_again() {
        let host = host().await;
        let key = ActorKey::new("ns", "f");
        host.upsert(key.clone(), spec("echo", json!({})), Some(1)).await;
        host.set_fenced(true).await;
        let s = phase_becomes(&host, &key, ActorPhase::Pending).await;
        assert_eq!(s.conditions[0].reason, "LeaseLost");
        assert!(host.tell(&key, json!(1)).await.is_err());
        host.set_fenced(false).await;
        phase_becomes(&host, &key, ActorPhase::Running).await;
        assert_eq!(
            host.ask(&key, json!(7), Duration::from_secs(1)).await.unwrap(),
            json!(7)
        );
    }

    async fn passivating_host(after: Duration) -> Arc<Host> {
        let config = HostConfig {
            passivate_after: Some(after),
            ..Default::default()
        };
        Host::start(config, builtin::registry(), Metrics::new())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_assigned_actor_gets_its_ractor_task_only_with_its_first_message() {
        let host = host().await;
        let key = ActorKey::new("ns", "lazy");
        host.upsert(key.clone(), spec("counter", json!({})), Some(1))
            .await;
        phase_becomes(&host, &key, ActorPhase::Running).await;
        assert!(!host.is_active(&key));
        host.tell(&key, json!(1)).await.unwrap();
        assert!(host.is_active(&key));
    }

    #[tokio::test]
    async fn an_idle_actor_is_passivated_and_keeps_its_state() {
        let host = passivating_host(Duration::from_millis(40)).await;
        let key = ActorKey::new("ns", "idle");
        host.upsert(key.clone(), spec("counter", json!({})), Some(1))
            .await;
        host.tell(&key, json!(5)).await.unwrap();
        assert!(host.is_active(&key));
        for _ in 0..100 {
            if !host.is_active(&key) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!host.is_active(&key), "idle for 1 s with a 40 ms limit");
        let v = host.ask(&key, json!(1), Duration::from_secs(1)).await.unwrap();
        assert_eq!(v, json!({"value": 6}), "state survives passivation");
    }

    #[tokio::test]
    async fn no_message_is_lost_or_doubled_while_actors_passivate_and_reactivate() {
        let host = passivating_host(Duration::from_millis(2)).await;
        let keys: Vec<_> = (0..4).map(|i| ActorKey::new("ns", format!("c{i}"))).collect();
        for k in &keys {
            host.upsert(k.clone(), spec("counter", json!({})), Some(1)).await;
        }
        let mut senders = Vec::new();
        for k in keys.clone() {
            let host = host.clone();
            senders.push(tokio::spawn(async move {
                for i in 0..2000 {
                    host.tell(&k, json!(1)).await.unwrap();
                    if i % 97 == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }));
        }
        for s in senders {
            s.await.unwrap();
        }
        for k in &keys {
            let v = host.ask(k, json!("get"), Duration::from_secs(5)).await.unwrap();
            assert_eq!(v, json!({"value": 2000}), "{k}");
        }
    }

    #[tokio::test]
    async fn removing_an_actor_stops_it_and_forgets_it() {
        let host = host().await;
        let key = ActorKey::new("ns", "r");
        host.upsert(key.clone(), spec("echo", json!({})), Some(1)).await;
        host.remove(&key).await;
        assert!(!host.is_hosted(&key));
        assert!(matches!(
            host.tell(&key, json!(1)).await,
            Err(DeliveryError::NotHere(_))
        ));
    }
}
