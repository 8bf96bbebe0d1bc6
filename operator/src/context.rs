//! What every reconcile shares: the client, caches of Actors and Leases, settings, metrics and
//! the event recorder.

use std::sync::Arc;

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

use crate::deployment::WorkerSettings;

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
}

impl Context {
    pub fn new(
        client: Client,
        stores: (Store<Actor>, Store<Lease>, Store<ActorPool>, Store<Deployment>),
        settings: WorkerSettings,
        instance: String,
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
        })
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
    pub unplaced: IntGauge,
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
        let unplaced = IntGauge::new("troupe_operator_unplaced_actors", "Actors without a worker")
            .expect("valid metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(placements.clone()),
            Box::new(moves.clone()),
            Box::new(failovers.clone()),
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
            unplaced,
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
