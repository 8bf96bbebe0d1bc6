//! Assembles a worker: host, membership, assignments, status, HTTP API, graceful shutdown.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use troupe_crds::{MailboxFullPolicy, PersistenceMode, WhenDeleted, worker_env::WorkerTimings};

use crate::{
    api::{ApiState, Forwarder, router},
    assignments,
    behavior::Registry,
    cleanup::{CHECK_LEFT_EVERY, Cleanup, SWEEP_EVERY},
    host::{Host, HostConfig},
    lease_clock::LeaseClock,
    leave,
    membership::{self, LeaseConfig},
    metrics::Metrics,
    status::{self, KubeClaimer},
    store::postgres::PgStore,
};

/// Everything a worker needs to know; the operator sets it through the pod's env.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerConfig {
    /// This pod's name (downward API).
    #[arg(long, env = "POD_NAME")]
    pub pod: String,
    /// This pod's namespace, where its Actors and Lease live.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: String,
    /// This pod's uid (downward API): the worker's Lease names the pod as its owner, so that
    /// Kubernetes deletes the Lease with the pod.
    #[arg(long, env = "POD_UID")]
    pub pod_uid: Option<String>,
    /// This pod's IP (downward API); the API listens on it and other workers reach it there.
    #[arg(long, env = "POD_IP", default_value = "127.0.0.1")]
    pub pod_ip: String,
    #[arg(long, env = "TROUPE_PORT", default_value_t = 8080)]
    pub port: u16,
    #[arg(long, env = "TROUPE_POOL")]
    pub pool: String,
    #[arg(long, env = "TROUPE_REVISION", default_value = "unknown")]
    pub revision: String,
    /// The bearer token of the message API. No default: without it the message API is off.
    #[arg(long, env = "TROUPE_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, env = "TROUPE_MAILBOX_CAPACITY", default_value_t = 1000)]
    pub mailbox_capacity: usize,
    /// Reject, DropOldest or Block.
    #[arg(long, env = "TROUPE_MAILBOX_WHEN_FULL", default_value = "Reject", value_parser = parse_policy)]
    pub mailbox_when_full: MailboxFullPolicy,
    #[arg(long, env = "TROUPE_MAILBOX_BLOCK_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub mailbox_block_timeout: Duration,
    #[arg(long, env = "TROUPE_LEASE_DURATION", default_value = "10s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    #[arg(long, env = "TROUPE_LEASE_RENEW", default_value = "2s", value_parser = parse_duration)]
    pub lease_renew: Duration,
    #[arg(long, env = "TROUPE_STATUS_EVERY", default_value = "500ms", value_parser = parse_duration)]
    pub status_every: Duration,
    /// Message counters alone are written at most this often.
    #[arg(long, env = "TROUPE_STATUS_COUNTERS_EVERY", default_value = "10s", value_parser = parse_duration)]
    pub status_counters_every: Duration,
    /// An actor idle this long gives up its Ractor task until its next message or tick (its
    /// state is kept). 0s: never.
    #[arg(long, env = "TROUPE_PASSIVATE_AFTER", default_value = "60s", value_parser = parse_duration)]
    pub passivate_after: Duration,
    /// How long an actor may take to finish its current message when stopped before it is
    /// aborted. Fencing must fit in the lease margin (renew period + 1 s), so keep it short.
    #[arg(long, env = "TROUPE_STOP_DEADLINE", default_value = "500ms", value_parser = parse_duration)]
    pub stop_deadline: Duration,
    /// On SIGTERM, and when an actor leaves this worker on a planned move, how long its mailbox
    /// may drain before it is stopped.
    #[arg(long, env = "TROUPE_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// On SIGTERM, how long the worker waits for the operator to move its actors to the pool's
    /// other workers (each handed over with its state) before it stops the ones still here.
    /// A worker that no other live worker of its pool could relieve (the last worker of a pool
    /// scaled to zero or deleted, a worker run alone) does not wait. 0s: stop the actors at
    /// once (they fail over). Keep `terminationGracePeriodSeconds` above this plus the drain
    /// timeout (the defaults, 15 s + 10 s, fit Kubernetes' 30 s).
    #[arg(long, env = "TROUPE_LEAVE_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub leave_timeout: Duration,
    /// How long a message for an actor that is moving waits at the worker that received it for
    /// the actor's next worker, before it is answered 503.
    #[arg(long, env = "TROUPE_MOVE_WAIT", default_value = "10s", value_parser = parse_duration)]
    pub move_wait: Duration,
    /// How many messages may wait for moving actors at once on this worker (the others are
    /// answered 503 at once).
    #[arg(long, env = "TROUPE_MOVE_BUFFER", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub move_buffer: u32,
    /// The pool's `persistence.mode`: None, OnMove, Interval or EveryMessage.
    #[arg(long, env = "TROUPE_PERSISTENCE", default_value = "OnMove")]
    pub persistence: PersistenceMode,
    /// With Interval: messages and ticks handled between two writes of an actor's state.
    #[arg(long, env = "TROUPE_CHECKPOINT_EVERY", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub checkpoint_every: u32,
    /// The state store's PostgreSQL connection string (from the Secret the pool names). Needed
    /// by Interval and EveryMessage; never logged.
    #[arg(long, env = "TROUPE_STORE_DSN", hide_env_values = true)]
    pub store_dsn: Option<String>,
    /// The CA (PEM) the store's certificate must chain to: the store Secret's `ca.crt`, when it
    /// has one. With it, a connection string that names no sslmode is verify-full.
    #[arg(long, env = "TROUPE_STORE_CA", hide_env_values = true)]
    pub store_ca: Option<String>,
    /// The client certificate (PEM) presented to a store that asks for one: `tls.crt` of the
    /// Secret the pool names in `persistence.storeSecretRef.clientCertSecret`.
    #[arg(long, env = "TROUPE_STORE_CLIENT_CERT", hide_env_values = true)]
    pub store_client_cert: Option<String>,
    /// Its key (PEM, unencrypted): that Secret's `tls.key`. Never logged.
    #[arg(long, env = "TROUPE_STORE_CLIENT_KEY", hide_env_values = true)]
    pub store_client_key: Option<String>,
    /// The pool's `persistence.whenDeleted`: Delete removes a deleted Actor's state and journal
    /// from the store; Retain keeps them.
    #[arg(long, env = "TROUPE_WHEN_DELETED", default_value = "Delete")]
    pub when_deleted: WhenDeleted,
}

impl WorkerConfig {
    /// Refuses settings the worker cannot run with, naming the variable and the allowed range
    /// (the operator checks a template's env against the same ranges before deploying it).
    pub fn check(&self) -> Result<(), String> {
        if self.persistence.uses_store() && self.store_dsn.as_deref().unwrap_or("").is_empty() {
            return Err(format!(
                "TROUPE_PERSISTENCE={} needs TROUPE_STORE_DSN, the state store's connection string",
                self.persistence.as_str()
            ));
        }
        self.timings().check()
    }

    /// The settings that bound the worker's timers and queues.
    pub fn timings(&self) -> WorkerTimings {
        WorkerTimings {
            lease_duration: self.lease_duration,
            lease_renew: self.lease_renew,
            status_every: self.status_every,
            status_counters_every: self.status_counters_every,
            passivate_after: self.passivate_after,
            stop_deadline: self.stop_deadline,
            drain_timeout: self.drain_timeout,
            leave_timeout: self.leave_timeout,
            mailbox_block_timeout: self.mailbox_block_timeout,
            mailbox_capacity: self.mailbox_capacity,
        }
    }
}

/// Reads a duration setting from the pod's env (`500ms`, `10s`, `1m30s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    troupe_crds::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// Reads `TROUPE_MAILBOX_WHEN_FULL` from the pod's env.
pub fn parse_policy(s: &str) -> Result<MailboxFullPolicy, String> {
    match s {
        "Reject" => Ok(MailboxFullPolicy::Reject),
        "DropOldest" => Ok(MailboxFullPolicy::DropOldest),
        "Block" => Ok(MailboxFullPolicy::Block),
        other => Err(format!(
            "unknown mailbox policy {other:?}: Reject, DropOldest or Block"
        )),
    }
}

/// Runs a worker with `registry`'s behaviours until SIGTERM, then shuts down gracefully.
pub async fn run(cfg: WorkerConfig, registry: Registry) -> anyhow::Result<()> {
    cfg.check()
        .map_err(|e| anyhow::anyhow!("invalid worker settings: {e}"))?;
    // Before anything else: TLS settings that cannot work stop the worker with the reason.
    let store = match cfg.persistence.uses_store() {
        true => Some(
            PgStore::with_tls(
                cfg.store_dsn.as_deref().unwrap_or_default(),
                cfg.store_ca.as_deref(),
                (cfg.store_client_cert.as_deref(), cfg.store_client_key.as_deref()),
            )
            .map_err(|e| anyhow::anyhow!("invalid worker settings: {e}"))?,
        ),
        false => None,
    };
    let client = troupe_client::client()
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the Kubernetes API: {e}"))?;
    let host_cfg = HostConfig {
        pod: cfg.pod.clone(),
        pool: cfg.pool.clone(),
        revision: cfg.revision.clone(),
        mailbox_capacity: cfg.mailbox_capacity,
        mailbox_policy: cfg.mailbox_when_full,
        block_timeout: cfg.mailbox_block_timeout,
        batch: 64,
        passivate_after: (!cfg.passivate_after.is_zero()).then_some(cfg.passivate_after),
        lease: Arc::new(LeaseClock::new()),
        stop_deadline: cfg.stop_deadline,
        move_drain: cfg.drain_timeout,
        persistence: cfg.persistence,
        checkpoint_every: cfg.checkpoint_every,
        ..HostConfig::default()
    };
    let host = Host::start(host_cfg, registry, Metrics::new()).await?;
    let otlp = crate::otlp::init(vec![
        opentelemetry::KeyValue::new("k8s.pod.name", cfg.pod.clone()),
        opentelemetry::KeyValue::new("k8s.namespace.name", cfg.namespace.clone()),
        opentelemetry::KeyValue::new("troupe.pool", cfg.pool.clone()),
        opentelemetry::KeyValue::new("troupe.revision", cfg.revision.clone()),
    ])
    .map_err(|e| anyhow::anyhow!("invalid OTLP export settings: {e}"))?;
    let mut cleanup = None;
    if let Some(store) = store {
        let store = Arc::new(store);
        host.set_store(store.clone());
        if cfg.when_deleted == WhenDeleted::Delete {
            cleanup = Some(Cleanup::new(store, &cfg.namespace, &cfg.pool));
        }
    }
    // No actor runs before this worker holds its lease and has read its assignments under it.
    host.fence("starting: the lease is not held yet").await;
    host.set_claimer(Arc::new(KubeClaimer {
        client: client.clone(),
        pod: cfg.pod.clone(),
        revision: cfg.revision.clone(),
    }));
    let forwarder = Arc::new(
        Forwarder::new(Some(client.clone()), cfg.token.clone(), cfg.pod.clone())
            .with_move_buffer(cfg.move_wait, cfg.move_buffer as usize),
    );
    host.set_router(forwarder.clone());
    host.set_handoff_source(forwarder.clone());
    if cfg.token.is_none() {
        tracing::warn!("TROUPE_API_TOKEN is not set: the message API answers 503");
    }

    let listen: SocketAddr = format!("{}:{}", cfg.pod_ip, cfg.port).parse()?;
    let state = Arc::new(ApiState {
        host: host.clone(),
        token: cfg.token.clone(),
        forwarder,
        started: false.into(),
        ready: false.into(),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {listen}: {e}"))?;
    tracing::info!(%listen, pod = %cfg.pod, pool = %cfg.pool, revision = %cfg.revision, "worker API listening");
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(state.clone());
    let limits = crate::api::limits(cfg.mailbox_block_timeout);
    let api = tokio::spawn(troupe_net::serve(listener, app, limits, async {
        let _ = api_stopped.await;
    }));

    let lease_cfg = LeaseConfig {
        namespace: cfg.namespace.clone(),
        pod: cfg.pod.clone(),
        pod_uid: cfg.pod_uid.clone().filter(|u| !u.is_empty()),
        pool: cfg.pool.clone(),
        revision: cfg.revision.clone(),
        address: listen.to_string(),
        duration: cfg.lease_duration,
        renew_every: cfg.lease_renew,
        margin: cfg.lease_renew + Duration::from_secs(1),
    };
    let (leased_tx, mut leased) = tokio::sync::watch::channel(false);
    let (relist_tx, relist_rx) = tokio::sync::watch::channel(0u64);
    let (leaving_tx, leaving_rx) = tokio::sync::watch::channel(None);
    let lease = tokio::spawn(tracing::Instrument::instrument(
        membership::run(
            client.clone(),
            host.clone(),
            lease_cfg.clone(),
            leased_tx,
            relist_tx,
            leaving_rx,
        ),
        tracing::info_span!("lease", pod = %cfg.pod),
    ));
    let watchdog = tokio::spawn(membership::watchdog(host.clone(), cfg.lease_renew));
    let (synced_tx, mut synced) = tokio::sync::watch::channel(false);
    let watch = tokio::spawn(tracing::Instrument::instrument(
        assignments::run(
            client.clone(),
            host.clone(),
            cfg.namespace.clone(),
            cfg.pod.clone(),
            synced_tx,
            relist_rx,
            cleanup.clone(),
        ),
        tracing::info_span!("assignments", pod = %cfg.pod),
    ));
    let sweep = cleanup.map(|cleanup| {
        let actors = kube::Api::namespaced(client.clone(), &cfg.namespace);
        tokio::spawn(tracing::Instrument::instrument(
            cleanup.run(actors, SWEEP_EVERY, CHECK_LEFT_EVERY),
            tracing::info_span!("sweep", pool = %cfg.pool),
        ))
    });
    let (stop_status, status_stopped) = tokio::sync::oneshot::channel();
    let status = tokio::spawn(tracing::Instrument::instrument(
        status::run(
            client.clone(),
            host.clone(),
            cfg.status_every,
            cfg.status_counters_every,
            status_stopped,
        ),
        tracing::info_span!("status"),
    ));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let started = async {
        let _ = leased.wait_for(|v| *v).await;
        let _ = synced.wait_for(|v| *v).await;
    };
    tokio::select! {
        _ = started => {
            state.started.store(true, Ordering::SeqCst);
            state.ready.store(true, Ordering::SeqCst);
            tracing::info!(actors = host.len(), "worker started: lease held, assigned actors loaded");
        }
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    if state.ready.load(Ordering::SeqCst) {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }

    state.ready.store(false, Ordering::SeqCst);
    // Hand the actors over to the pool's other workers first (see `leave`).
    if !cfg.leave_timeout.is_zero() && !host.is_empty() && !host.is_fenced() {
        let actors = host.len();
        tracing::info!(actors, timeout = ?cfg.leave_timeout, "SIGTERM: leaving; the operator moves this worker's actors to the pool's other workers");
        let began = std::time::Instant::now();
        let anyone_to_take = || async {
            match membership::takers(client.clone(), &lease_cfg).await {
                Ok(n) => Some(n > 0),
                Err(e) => {
                    tracing::warn!(error = %e, "could not list the pool's workers: waiting for the moves");
                    None
                }
            }
        };
        match leave::leave(&host, &leaving_tx, cfg.leave_timeout, anyone_to_take).await {
            leave::Left::Empty => {
                tracing::info!(actors, took = ?began.elapsed(), "every actor moved away with its state")
            }
            leave::Left::NobodyToTake { still_here } => tracing::info!(
                still_here,
                "no other worker of the pool could take the actors: they stop here"
            ),
            leave::Left::TimedOut { still_here } => {
                tracing::warn!(
                    still_here,
                    of = actors,
                    "the leave timed out: the actors still here are stopped and fail over"
                )
            }
            leave::Left::Fenced => tracing::warn!("the lease was lost while leaving: the actors fail over"),
        }
    }
    tracing::info!(drain = ?cfg.drain_timeout, "stopping: draining mailboxes, stopping actors, releasing the lease");
    watch.abort();
    if let Some(sweep) = sweep {
        sweep.abort();
    }
    host.shutdown(cfg.drain_timeout).await;
    let _ = stop_status.send(());
    let mut written = status.await.unwrap_or_default();
    status::flush(&client, &host, &mut written, Duration::ZERO).await;
    lease.abort();
    watchdog.abort();
    membership::release(client.clone(), &lease_cfg).await;
    let _ = stop_api.send(());
    let _ = api.await;
    if let Some(provider) = otlp {
        crate::otlp::shutdown(provider, Duration::from_secs(2)).await;
    }
    tracing::info!("worker stopped");
    Ok(())
}

/// Sets up logging: `RUST_LOG` filters; `TROUPE_LOG_JSON=true` for JSON lines.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let json = std::env::var("TROUPE_LOG_JSON").is_ok_and(|v| v == "true" || v == "1");
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().with_current_span(true).init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        worker: WorkerConfig,
    }

    fn config(extra: &[&str]) -> WorkerConfig {
        let base = ["worker", "--pod", "w", "--namespace", "ns", "--pool", "p"];
        Cli::try_parse_from(base.iter().chain(extra)).unwrap().worker
    }

    #[test]
    fn the_default_settings_pass_the_check_and_are_the_ones_the_operator_checks_against() {
        assert_eq!(config(&[]).check(), Ok(()));
        assert_eq!(config(&[]).timings(), WorkerTimings::default());
    }

    #[test]
    fn settings_that_would_panic_or_leave_no_lease_proof_are_refused_by_name() {
        for (args, named) in [
            (&["--lease-renew", "0s"][..], "TROUPE_LEASE_RENEW=0ns"),
            (&["--status-every", "0s"][..], "TROUPE_STATUS_EVERY=0ns"),
            (&["--lease-duration", "0s"][..], "TROUPE_LEASE_DURATION=0ns"),
            (
                &["--lease-duration", "4s", "--lease-renew", "3s"][..],
                "TROUPE_LEASE_RENEW=3s",
            ),
            (&["--mailbox-capacity", "0"][..], "TROUPE_MAILBOX_CAPACITY=0"),
            (&["--stop-deadline", "10s"][..], "TROUPE_STOP_DEADLINE=10s"),
        ] {
            let why = config(args).check().unwrap_err();
            assert!(why.starts_with(named), "{args:?}: {why}");
            assert!(why.contains("must be between"), "{why}");
        }
    }
}
