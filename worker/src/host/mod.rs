//! The Ractor host: runs exactly the actors assigned to this worker.
//!
//! Each Troupe actor is a Ractor actor linked to one supervisor actor. Messages wait in a
//! bounded [`Mailbox`] in front of it; the Ractor actor is only woken. The host applies the
//! desired state (assigned Actors, from the Kubernetes watch), restarts failed actors per their
//! restart policy, opens circuit breakers, delivers ticks, and keeps the runtime status that the
//! status writer publishes.
//!
//! Single activation: nothing runs without the worker's proof of a live lease
//! ([`LeaseClock`], asked at every delivery); an assignment runs only once its claim (a write to
//! the Actor's status conditional on the version the assignment was read at) succeeded; after a
//! fence nothing restarts until the lease is renewed and the assignments are listed afresh
//! ([`Host::lift_fence`]). See docs/architecture.md for the whole protocol.

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
use troupe_crds::{ActorPhase, ActorSpec, JournalSpec, MailboxFullPolicy, PersistenceMode};

mod actor;
mod claim;
mod delivery;
mod departure;
mod events;
mod fence;
mod handoff;
mod lifecycle;
mod persist;
mod snapshot;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_handoff;
#[cfg(test)]
mod tests_persist;
#[cfg(test)]
mod tests_races;

use crate::{
    behavior::{ActorInit, Behavior, Context, Registry, Router},
    lease_clock::LeaseClock,
    mailbox::{Envelope, Mailbox, Pushed, SendError},
    metrics::Metrics,
    schedule::Schedule,
    store::{JournalEntry, JournalWrite, StateRef, StateStore, StoreError},
    supervision::{CircuitBreaker, Decision, RestartTracker},
};
use actor::{HostedActor, HostedArgs, Supervisor};
pub use claim::{Claim, Claimer};
use delivery::HostRouter;
use events::{events_loop, passivation_loop, spawn_schedule};
pub use handoff::{Handoff, HandoffSource, HandoffStore, MAX_STATE_BYTES, PreviousHolder};
use persist::{CommitError, HostedCallbacks, Saver};

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
    /// The proof of a live lease that every delivery asks for. The default never runs out: a
    /// host without membership (tests, embedding) is always live.
    pub lease: Arc<LeaseClock>,
    /// How long an actor may take to stop (finish its current message) before it is aborted.
    /// Fencing must fit in the lease margin, so this is short.
    pub stop_deadline: Duration,
    /// How long an actor leaving this worker on a planned move may take to handle the messages
    /// it had accepted before it stops (and its state is handed over): new ones wait at the
    /// worker that received them until the next worker runs it (`api::deliver`).
    pub move_drain: Duration,
    /// The pool's `persistence.mode`: whether state is handed over on moves (all but None) and
    /// written to the store ([`Host::set_store`]; Interval and EveryMessage).
    pub persistence: PersistenceMode,
    /// With Interval: messages (and ticks) handled between two writes of the state.
    pub checkpoint_every: u32,
    /// With EveryMessage: how long a tell waits for its change to be committed before it is
    /// answered 504 (whether it was committed is then unknown, as with any database timeout).
    pub commit_timeout: Duration,
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
            lease: Arc::new(LeaseClock::unbounded()),
            stop_deadline: Duration::from_millis(500),
            move_drain: Duration::from_secs(10),
            persistence: PersistenceMode::OnMove,
            checkpoint_every: troupe_crds::pool::DEFAULT_CHECKPOINT_EVERY as u32,
            commit_timeout: Duration::from_secs(10),
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
    /// The epoch of the assignment the actor runs under here.
    pub epoch: u64,
    pub restarts: i32,
    pub messages_processed: u64,
    pub last_error: Option<String>,
    pub last_transition: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub observed_generation: Option<i64>,
    pub conditions: Vec<ConditionState>,
    /// The phase the API server last showed for the actor (another writer may have changed it).
    pub published_phase: Option<ActorPhase>,
    /// Whether this worker claimed the assignment. Until it has, it says nothing about the
    /// actor in its status: the claim is its first word (and may find the actor gone).
    pub claimed: bool,
}

impl RuntimeStatus {
    /// Whether the status writer publishes this status: not while the assignment is being
    /// claimed (the claim writes the status; a write of "claiming" before it would be one more
    /// write per start, unconditional, about an assignment that may be gone already).
    pub fn publishable(&self) -> bool {
        self.claimed || !matches!(self.phase, ActorPhase::Starting | ActorPhase::Pending)
    }
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
    /// An actor found the lease proof run out at a delivery: fence now.
    LeaseExpired,
    /// A claim of an assignment came back.
    Claimed {
        key: ActorKey,
        incarnation: u64,
        outcome: Claim,
    },
    /// The state to start from is in: handed over by the previous worker and/or read from the
    /// store (Err: the store refused this activation's epoch).
    HandedOver {
        key: ActorKey,
        incarnation: u64,
        state: Result<Option<Value>, String>,
        /// When the previous worker stopped taking messages for it (a planned move).
        stopped_at: Option<std::time::SystemTime>,
    },
    /// The store did not answer a read or write of the actor's state (Some) or answers again
    /// (None): the actor takes no messages meanwhile.
    StoreDown {
        key: ActorKey,
        incarnation: u64,
        why: Option<String>,
    },
    /// The store refused a write of a running actor's state: a newer activation owns it.
    StaleEpoch {
        key: ActorKey,
        incarnation: u64,
        why: String,
    },
}

/// An actor assigned to this worker, as the watch of its assignments read it.
#[derive(Clone, Debug)]
pub struct Assignment {
    pub spec: ActorSpec,
    pub generation: Option<i64>,
    /// The assignment's epoch (annotation `troupe.dev/epoch`; 0 when there is none).
    pub epoch: u64,
    /// The Actor's resourceVersion when read: the claim's precondition.
    pub resource_version: Option<String>,
    /// Who ran the actor before, when its status says another worker stopped it for a move:
    /// where its state is asked for ([`HandoffSource`]).
    pub previous: Option<PreviousHolder>,
    /// The Actor's uid: its row in the state store (a new object of the same name starts afresh).
    pub uid: Option<String>,
}

impl Assignment {
    /// An assignment without epoch or version (tests, embedding).
    pub fn of(spec: ActorSpec, generation: Option<i64>) -> Self {
        Self {
            spec,
            generation,
            epoch: 0,
            resource_version: None,
            previous: None,
            uid: None,
        }
    }
}

/// An actor that left this worker: stopped, its departure still to be confirmed in its status.
#[derive(Clone, Debug, PartialEq)]
pub struct Departure {
    pub key: ActorKey,
    /// The epoch of the assignment that ended.
    pub epoch: u64,
    /// The Actor's version when this worker saw it leave: the confirmation is written on
    /// condition that nothing changed since (a newer assignment makes it moot).
    pub resource_version: Option<String>,
}

struct SlotState {
    spec: ActorSpec,
    generation: Option<i64>,
    /// The epoch of the assignment, and the Actor's version it was last seen at.
    epoch: u64,
    resource_version: Option<String>,
    /// Whether this worker's claim of the assignment succeeded (reset by a fence: the lease was
    /// lost, so the assignment may have moved and must be claimed again).
    claimed: bool,
    /// A claim is in flight.
    claiming: bool,
    /// The status the claim in flight (or just won) writes; taken by the start it allows.
    claim: Option<RuntimeStatus>,
    /// Who ran the actor before this assignment (its state is asked for after the claim won).
    previous: Option<PreviousHolder>,
    /// The Actor's uid (the state store's row).
    uid: String,
    /// The state handed over by the previous worker or read from the store, put back by the
    /// next start.
    restore: Option<Value>,
    /// The state to start from has been looked for (handoff, store) since the last start: the
    /// next start may go ahead.
    recovered: bool,
    /// When the worker it left stopped taking messages for it, if it arrives by a planned
    /// move: its start observes the gap (`troupe_worker_handoff_seconds`).
    moved_since: Option<std::time::SystemTime>,
    /// Why the state store cannot be used right now: the actor takes no messages meanwhile.
    store_down: Option<String>,
    /// A fetch of the handed-over state is in flight (for the claim of this incarnation): the
    /// actor does not start before its answer.
    handoff_fetch: Option<u64>,
    /// The answer of that fetch, once in (`Some(None)`: nothing was handed over): read by a
    /// departure that comes before the actor started, which passes the state on.
    fetched: Option<Option<Handoff>>,
    /// The behaviour of the run that just stopped, kept for its snapshot when the actor leaves.
    retired: Option<Box<dyn Behavior>>,
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
    /// Writes the state to the store (modes Interval and EveryMessage).
    saver: Option<Saver>,
}

struct Slot {
    key: ActorKey,
    mailbox: Arc<Mailbox>,
    processed: Arc<AtomicU64>,
    /// The host's idle clock (see [`Host::idle_clock`]) when the actor last handled something.
    last_active: AtomicU64,
    state: Mutex<SlotState>,
    /// One change of the actor's life at a time. The watch of assignments and the host's event
    /// loop both act on an actor (an assignment read again while its claim's answer comes in),
    /// on a multi-threaded runtime in parallel; each takes the turn for the whole of a decision
    /// and its effects, so no two starts interleave (one would build the behaviour twice, or
    /// say Starting over an actor that runs). Held across awaits, hence tokio's mutex.
    turn: tokio::sync::Mutex<()>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How many claims a worker sends at once (as many as status writes: see `status::flush`).
const CLAIMS_IN_FLIGHT: usize = 16;

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
    claimer: RwLock<Option<Arc<dyn Claimer>>>,
    /// Where the state of an actor that moved here is fetched from (unset: nowhere).
    handoff_source: RwLock<Option<Arc<dyn HandoffSource>>>,
    /// Where state is persisted in modes Interval and EveryMessage (unset: nowhere).
    store: RwLock<Option<Arc<dyn StateStore>>>,
    /// States of actors that left this worker, waiting for the next one.
    handoff: HandoffStore,
    /// Bounds the claims in flight: hundreds of actors assigned at once (a new pool, a
    /// failover) would otherwise send hundreds of writes at once to an API server that answers
    /// them no sooner, and is slower for everyone meanwhile.
    claims_in_flight: Arc<tokio::sync::Semaphore>,
    fenced: AtomicBool,
    /// Bumped at every fence; a fence is lifted only by a list of assignments made for it.
    fence_generation: AtomicU64,
    /// Actors stopped because they left this worker, whose stop is still to be confirmed in
    /// their status (phase Migrating), so the operator can place them elsewhere.
    departed: Mutex<Vec<Departure>>,
    /// Departures under way: actors already off `slots` that are still handling the messages
    /// they accepted, stopping, or handing their state over. A leaving worker that counted only
    /// `slots` would release its lease before their states were kept for the next workers, and
    /// an actor assigned here again must not start before its departure ended.
    departing: Arc<departure::UnderWay>,
    /// Statuses written by won claims of actors that then started as claimed: the status
    /// writer's record of what is already published.
    claim_statuses: Mutex<Vec<(ActorKey, RuntimeStatus)>>,
    /// The behaviours whose mailbox depth the metrics have reported (reset to 0 when their
    /// actors are gone).
    depth_reported: Mutex<std::collections::HashSet<String>>,
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
            claimer: RwLock::new(None),
            handoff_source: RwLock::new(None),
            store: RwLock::new(None),
            handoff: HandoffStore::default(),
            claims_in_flight: Arc::new(tokio::sync::Semaphore::new(CLAIMS_IN_FLIGHT)),
            fenced: AtomicBool::new(false),
            fence_generation: AtomicU64::new(0),
            idle_clock: Arc::new(AtomicU64::new(0)),
            departed: Mutex::new(Vec::new()),
            departing: Arc::default(),
            depth_reported: Mutex::default(),
            claim_statuses: Mutex::new(Vec::new()),
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

    /// Sets how assignments are claimed before they start (unset: claims always succeed).
    pub fn set_claimer(&self, claimer: Arc<dyn Claimer>) {
        *self.claimer.write().unwrap_or_else(|e| e.into_inner()) = Some(claimer);
    }

    /// Sets where the state of an actor that moved here is fetched from.
    pub fn set_handoff_source(&self, source: Arc<dyn HandoffSource>) {
        *self.handoff_source.write().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// Sets the store the pool's persistence mode writes to (Interval, EveryMessage).
    pub fn set_store(&self, store: Arc<dyn StateStore>) {
        *self.store.write().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// The store, when the pool's mode writes to one.
    fn store(&self) -> Option<Arc<dyn StateStore>> {
        if !self.config.persistence.uses_store() {
            return None;
        }
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The state this worker handed over for `key` when its assignment `epoch` ended here,
    /// once (the handoff endpoint's answer).
    pub fn take_handoff(&self, key: &ActorKey, epoch: u64) -> Option<Handoff> {
        self.handoff.take(key, epoch)
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
}
