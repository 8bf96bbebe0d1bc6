//! What every reconcile shares: the client, caches of Actors and Leases, settings, metrics and
//! the event recorder.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease};
use kube::{
    Client,
    runtime::{
        events::{Recorder, Reporter},
        reflector::Store,
    },
};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use troupe_crds::{Actor, ActorPool};

use crate::{
    analysis::Analyzer,
    deployment::WorkerSettings,
    own_writes::{OwnCopies, OwnWrites},
    rollout::AlertHit,
};

/// The operator's field manager for every write.
pub const MANAGER: &str = "troupe-operator";

pub struct Context {
    pub client: Client,
    pub actors: Store<Actor>,
    pub leases: Store<Lease>,
    pub pools: Store<ActorPool>,
    pub deployments: Store<Deployment>,
    pub settings: WorkerSettings,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub analyzer: Analyzer,
    pub worker_access: crate::worker_access::WorkerAccess,
    pub services: crate::service::HeadlessServices,
    /// This replica's proof of leadership: nothing is written without it (see `leader.rs`).
    pub leadership: Arc<troupe_crds::lease_clock::LeaseClock>,
    /// When each worker lease's renewal was last seen changing, on this process's clock.
    pub leases_seen: crate::membership::LeaseObserver,
    /// Pools this process wrote, by uid: the resourceVersion it read before writing.
    written: OwnWrites,
    /// Actors this process wrote, with their copies as written, until the cache shows them.
    pub actor_writes: OwnCopies<Actor>,
    /// The core/v1 resources the API server serves (asked once).
    core_v1: tokio::sync::OnceCell<Vec<String>>,
    /// Firing alerts received by the webhook, by (namespace, pool), for the next reconcile.
    pub alerts: Mutex<HashMap<(String, String), (AlertHit, std::time::Instant)>>,
    /// Analysis rounds in flight or finished, for the next reconcile of their pool.
    pub rounds: crate::pool_controller::measure::Rounds,
    /// The failure last told of each failed actor (see `pool_controller::failures`).
    pub told_failures: crate::pool_controller::failures::ToldFailures,
    /// Asks for a reconcile of one pool (something it waits for arrived).
    poke: tokio::sync::mpsc::UnboundedSender<crate::run::PoolRef>,
}

impl Context {
    pub fn new(
        client: Client,
        stores: (Store<Actor>, Store<Lease>, Store<ActorPool>, Store<Deployment>),
        settings: WorkerSettings,
        instance: String,
        analyzer: Analyzer,
        poke: tokio::sync::mpsc::UnboundedSender<crate::run::PoolRef>,
    ) -> Arc<Self> {
        let reporter = Reporter {
            controller: "troupe-operator".into(),
            instance: Some(instance),
        };
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            actors: stores.0,
            leases: stores.1,
            pools: stores.2,
            deployments: stores.3,
            settings,
            metrics: Metrics::new(),
            analyzer,
            worker_access: Default::default(),
            services: Default::default(),
            leases_seen: Default::default(),
            leadership: Default::default(),
            core_v1: Default::default(),
            written: Default::default(),
            actor_writes: Default::default(),
            alerts: Mutex::new(HashMap::new()),
            rounds: Default::default(),
            told_failures: Default::default(),
            poke,
        })
    }
}

impl Context {
    /// Asks for a reconcile of `pool` soon.
    pub fn poke(&self, pool: crate::run::PoolRef) {
        let _ = self.poke.send(pool);
    }

    /// Records a write to `read` that the server answered with `after`.
    pub fn wrote(&self, read: &ActorPool, after: &ActorPool) {
        use kube::ResourceExt;
        self.written
            .wrote(read.uid(), read.resource_version(), after.resource_version());
    }

    /// Whether this replica may write now: it leads, and has proven it recently enough that no
    /// other replica can have taken over.
    pub fn leading(&self) -> bool {
        self.leadership.is_live()
    }

    /// Whether `pool` is the copy this process read before its last change to it.
    pub fn is_stale(&self, pool: &ActorPool) -> bool {
        use kube::ResourceExt;
        self.written.is_stale(pool.uid(), pool.resource_version())
    }

    /// Whether the API server serves this core/v1 resource (`serviceaccounts`, `services`). The
    /// local control plane, an apiextensions-apiserver, serves no core/v1 at all.
    pub async fn serves_core(&self, resource: &str) -> bool {
        let served = self
            .core_v1
            .get_or_init(|| async {
                match self.client.list_core_api_resources("v1").await {
                    Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "this API server serves no core/v1: no ServiceAccounts or Services are written");
                        Vec::new()
                    }
                }
            })
            .await;
        served.iter().any(|r| r == resource)
    }
}

/// Operator metrics; the `controller` label is one of `pool` or `actor`.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: IntCounterVec,
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    pub placements: IntCounter,
    pub moves: IntCounter,
    pub failovers: IntCounter,
    /// Placement writes refused because the actor changed since the decision was made.
    pub conflicts: IntCounter,
    pub unplaced: IntGauge,
    /// Aborted rollouts and rollbacks of promoted revisions, by kind (analysis, alert,
    /// deadline, manual).
    pub rollbacks: IntCounterVec,
    pub promotions: IntCounter,
    /// From the first failed measurement (or the alert's start) to the abort decision.
    pub time_to_detect: HistogramVec,
    /// From the abort decision to every actor back on the stable revision.
    pub time_to_rollback: HistogramVec,
    /// From the webhook receiving a matching alert to the decision written in status.
    pub alert_to_decision: prometheus::Histogram,
    /// Analysis measurements by outcome (Passed, Failed, Inconclusive).
    pub measurements: IntCounterVec,
    /// Alertmanager webhook deliveries by result (accepted, unauthorized, malformed).
    pub alert_deliveries: IntCounterVec,
    /// Pools waiting to be reconciled (the controller's queue, as last seen by the trigger).
    pub queue_depth: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("troupe_operator_reconciles_total", "Reconciles"),
            &["controller"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "troupe_operator_reconcile_errors_total",
                "Failed reconciles, by step",
            ),
            &["controller", "step"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "troupe_operator_reconcile_duration_seconds",
                "Reconcile durations",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["controller"],
        )
        .expect("valid metric");
        let placements = IntCounter::new("troupe_operator_placements_total", "Actors placed on a worker")
            .expect("valid metric");
        let moves = IntCounter::new("troupe_operator_moves_total", "Actors moved between live workers")
            .expect("valid metric");
        let failovers = IntCounter::new(
            "troupe_operator_failovers_total",
            "Actors re-placed after their worker's lease ended",
        )
        .expect("valid metric");
        let conflicts = IntCounter::new(
            "troupe_operator_placement_conflicts_total",
            "Placement writes refused because the actor changed under the decision (decided again)",
        )
        .expect("valid metric");
        let unplaced = IntGauge::new("troupe_operator_unplaced_actors", "Actors without a worker")
            .expect("valid metric");
        let rollbacks = IntCounterVec::new(
            Opts::new(
                "troupe_operator_rollbacks_total",
                "Rollouts aborted or rolled back, by kind",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let promotions = IntCounter::new("troupe_operator_promotions_total", "Revisions promoted to stable")
            .expect("valid metric");
        let seconds = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];
        let time_to_detect = HistogramVec::new(
            HistogramOpts::new(
                "troupe_operator_rollback_detect_seconds",
                "From the first failed measurement or the alert's start to the abort decision",
            )
            .buckets(seconds.to_vec()),
            &["kind"],
        )
        .expect("valid metric");
        let time_to_rollback = HistogramVec::new(
            HistogramOpts::new(
                "troupe_operator_rollback_duration_seconds",
                "From the abort decision to every actor back on the stable revision",
            )
            .buckets(seconds.to_vec()),
            &["kind"],
        )
        .expect("valid metric");
        let alert_to_decision = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "troupe_operator_alert_decision_seconds",
                "From receiving a matching alert to the decision written to the pool's status",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )
        .expect("valid metric");
        let measurements = IntCounterVec::new(
            Opts::new(
                "troupe_operator_analysis_measurements_total",
                "Analysis measurements, by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let alert_deliveries = IntCounterVec::new(
            Opts::new(
                "troupe_operator_alert_deliveries_total",
                "Alertmanager webhook deliveries, by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let queue_depth = IntGauge::new(
            "troupe_operator_queue_depth",
            "Pools due a reconcile that has not started yet",
        )
        .expect("valid metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rollbacks.clone()),
            Box::new(promotions.clone()),
            Box::new(time_to_detect.clone()),
            Box::new(time_to_rollback.clone()),
            Box::new(alert_to_decision.clone()),
            Box::new(measurements.clone()),
            Box::new(alert_deliveries.clone()),
            Box::new(queue_depth.clone()),
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(placements.clone()),
            Box::new(moves.clone()),
            Box::new(failovers.clone()),
            Box::new(conflicts.clone()),
            Box::new(unplaced.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            reconciles,
            errors,
            duration,
            placements,
            moves,
            failovers,
            conflicts,
            unplaced,
            rollbacks,
            promotions,
            time_to_detect,
            time_to_rollback,
            alert_to_decision,
            measurements,
            alert_deliveries,
            queue_depth,
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
