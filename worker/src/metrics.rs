//! The worker's Prometheus metrics. Labels are bounded: pool and revision are one value per
//! worker, behaviour is one of the registered names (or `unknown`), outcome and phase are enums.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Messages and ticks by outcome: ok, error, rejected, dropped.
    pub messages: IntCounterVec,
    pub latency: HistogramVec,
    pub mailbox_depth: IntGaugeVec,
    pub actors: IntGaugeVec,
    pub restarts: IntCounterVec,
    pub breaker_trips: IntCounterVec,
    pub lease_renewals: IntCounterVec,
    /// Times the worker fenced (stopped every actor for want of a proven lease).
    pub fences: prometheus::IntCounter,
    /// Planned moves: from the previous worker no longer taking messages for an actor to its
    /// start here with the state handed over.
    pub handoff_seconds: prometheus::Histogram,
    /// Messages that waited at this worker for their moving actor's next worker.
    pub move_waits: prometheus::IntCounter,
    /// Deliveries refused because the lease proof had run out, by kind (message, tick).
    pub stale_deliveries: IntCounterVec,
    pub status_writes: IntCounterVec,
    /// Writes of actors' state to the store, by outcome (ok, stale, unavailable).
    pub state_writes: IntCounterVec,
    /// When this worker process started (Unix seconds): rates over its whole life need it.
    pub start_time: prometheus::Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let labels = ["pool", "revision", "behavior"];
        let messages = IntCounterVec::new(
            Opts::new(
                "troupe_worker_messages_total",
                "Messages and ticks handled, by outcome (ok, error, rejected, dropped)",
            ),
            &["pool", "revision", "behavior", "outcome"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "troupe_worker_message_duration_seconds",
                "Time from enqueue to handled, per message",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &labels,
        )
        .expect("valid metric");
        let mailbox_depth = IntGaugeVec::new(
            Opts::new(
                "troupe_worker_mailbox_depth",
                "Messages waiting, summed over the behaviour's actors",
            ),
            &labels,
        )
        .expect("valid metric");
        let actors = IntGaugeVec::new(
            Opts::new("troupe_worker_actors", "Actors hosted by this worker, by phase"),
            &["pool", "revision", "phase"],
        )
        .expect("valid metric");
        let restarts = IntCounterVec::new(
            Opts::new("troupe_worker_actor_restarts_total", "Actor restarts"),
            &labels,
        )
        .expect("valid metric");
        let breaker_trips = IntCounterVec::new(
            Opts::new(
                "troupe_worker_circuit_breaker_trips_total",
                "Actors paused by their circuit breaker",
            ),
            &labels,
        )
        .expect("valid metric");
        let lease_renewals = IntCounterVec::new(
            Opts::new(
                "troupe_worker_lease_renewals_total",
                "Membership lease renewals, by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let fences = prometheus::IntCounter::new(
            "troupe_worker_fences_total",
            "Times the worker stopped every actor because it could not prove its lease",
        )
        .expect("valid metric");
        let handoff_seconds = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "troupe_worker_handoff_seconds",
                "Planned moves of actors to this worker: from the previous worker no longer taking messages for the actor to its start here with its state (wall clocks of the two workers)",
            )
            .buckets(prometheus::exponential_buckets(0.001, 1.5, 30).expect("valid buckets")),
        )
        .expect("valid metric");
        let move_waits = prometheus::IntCounter::new(
            "troupe_worker_move_waits_total",
            "Messages that waited at this worker while their actor moved to its next worker",
        )
        .expect("valid metric");
        let stale_deliveries = IntCounterVec::new(
            Opts::new(
                "troupe_worker_stale_deliveries_refused_total",
                "Messages and ticks not delivered because the lease proof had run out",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let status_writes = IntCounterVec::new(
            Opts::new(
                "troupe_worker_status_writes_total",
                "Actor status patches, by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let state_writes = IntCounterVec::new(
            Opts::new(
                "troupe_worker_state_writes_total",
                "Writes of actors' state to the state store, by outcome (ok, stale: refused by epoch, unavailable)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let start_time = prometheus::Gauge::new(
            "troupe_worker_start_time_seconds",
            "When this worker process started, in Unix seconds",
        )
        .expect("valid metric");
        start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        for c in [
            Box::new(messages.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(start_time.clone()),
            Box::new(latency.clone()),
            Box::new(mailbox_depth.clone()),
            Box::new(actors.clone()),
            Box::new(restarts.clone()),
            Box::new(breaker_trips.clone()),
            Box::new(lease_renewals.clone()),
            Box::new(fences.clone()),
            Box::new(move_waits.clone()),
            Box::new(handoff_seconds.clone()),
            Box::new(stale_deliveries.clone()),
            Box::new(status_writes.clone()),
            Box::new(state_writes.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            messages,
            latency,
            mailbox_depth,
            actors,
            restarts,
            breaker_trips,
            lease_renewals,
            fences,
            move_waits,
            handoff_seconds,
            stale_deliveries,
            status_writes,
            state_writes,
            start_time,
        }
    }

    /// The text exposition format, for `/metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
