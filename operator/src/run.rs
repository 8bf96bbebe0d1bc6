//! Assembles the operator: caches, the pool controller, the orphan sweep, the HTTP server.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::{apps::v1::Deployment, coordination::v1::Lease},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, WatchStreamExt, reflector, reflector::ObjectRef, watcher},
};
use troupe_crds::{Actor, ActorPool, labels};

use crate::{
    alerts::AlertSink,
    context::Context,
    deployment::WorkerSettings,
    http::{Health, serve},
    leader::Election,
    orphans, pool_controller,
};

#[derive(Clone, Debug, clap::Args)]
pub struct OperatorConfig {
    /// Health and metrics.
    #[arg(long, env = "TROUPE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// The Secret, in each pool's namespace, with the workers' API token under key `token`.
    #[arg(
        long,
        env = "TROUPE_WORKER_TOKEN_SECRET",
        default_value = "troupe-worker-token"
    )]
    pub worker_token_secret: String,
    /// Extra env for every worker pod, `NAME=value` (repeatable).
    #[arg(long = "worker-env", value_parser = parse_env)]
    pub worker_env: Vec<(String, String)>,
    /// This replica's name, for events and leader election.
    #[arg(long, env = "POD_NAME", default_value = "troupe-operator")]
    pub instance: String,
    /// Where the leader-election Lease lives.
    #[arg(long, env = "POD_NAMESPACE", default_value = "troupe-system")]
    pub namespace: String,
    #[arg(long, env = "TROUPE_LEADER_LEASE", default_value = "troupe-operator")]
    pub leader_lease: String,
    /// The ClusterRole bound, in each pool's namespace, to the pool's worker ServiceAccount (which
    /// the operator creates). Empty: workers run with the template's service account.
    #[arg(long, env = "TROUPE_WORKER_CLUSTER_ROLE", default_value = "troupe-worker")]
    pub worker_cluster_role: String,
    /// Let a pool's template run its workers under a ServiceAccount of its own choosing. Off:
    /// such a pool is not deployed, and says why in its WorkersDeployed condition.
    #[arg(long, env = "TROUPE_ALLOW_CUSTOM_WORKER_SERVICE_ACCOUNT")]
    pub allow_custom_worker_service_account: bool,
    /// The Prometheus server for analysis metrics whose provider names no address.
    #[arg(long, env = "TROUPE_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// The Prometheus addresses a pool's analysis may name (repeatable; the env var takes a
    /// comma-separated list): `host`, `host:port`, `*.domain` or a URL prefix. Unset: any
    /// address (a tenant who may write a pool can then make the operator fetch any URL its
    /// network reaches). An address not allowed is never fetched: its measurement is Failed.
    #[arg(
        long = "analysis-address-allow",
        env = "TROUPE_ANALYSIS_ADDRESS_ALLOW",
        value_delimiter = ','
    )]
    pub analysis_address_allow: Vec<String>,
    /// A file holding the bearer token Alertmanager must send to `POST /v1/alerts`. Unset: the
    /// webhook answers 503 (there is no default token).
    #[arg(long, env = "TROUPE_ALERT_TOKEN_FILE")]
    pub alert_token_file: Option<std::path::PathBuf>,
    /// The console served in the cluster (console.rs).
    #[command(flatten)]
    pub console: crate::console::ConsoleConfig,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected NAME=value")?;
    Ok((k.to_string(), v.to_string()))
}

/// Fails with instructions when the CRDs are not installed.
async fn check_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in ["actorpools.troupe.dev", "actors.troupe.dev"] {
        if api.get_opt(name).await?.is_none() {
            anyhow::bail!(
                "the CRD {name} is not installed: run `kubectl apply -f manifests/crds/` (or install the Helm chart) and start the operator again"
            );
        }
    }
    Ok(())
}

/// A reference to the pool a change concerns.
pub type PoolRef = ObjectRef<ActorPool>;

/// The pool an object names: an Actor its `spec.pool`, a Lease or Deployment its pool label.
fn pool_of_actor(a: &Actor) -> Option<PoolRef> {
    Some(ObjectRef::new(&a.spec.pool).within(&a.namespace()?))
}

fn pool_of_labelled<K: kube::Resource>(o: &K) -> Option<PoolRef> {
    let pool = o.labels().get(labels::POOL)?;
    Some(ObjectRef::new(pool).within(&o.namespace()?))
}

/// A cache of `K` kept by a watch; every change (deletions included) is reported as the pool it
/// concerns (`pool_of`), so that only that pool is reconciled.
fn cache<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: tokio::sync::mpsc::UnboundedSender<PoolRef>,
    pool_of: fn(&K) -> Option<PoolRef>,
) -> reflector::Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(r) = stream.next().await {
            match r {
                Ok(o) => {
                    if let Some(pool) = pool_of(&o) {
                        let _ = changed.send(pool);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "watch error; retrying"),
            }
        }
    });
    store
}

/// Turns reported changes into reconcile requests: the pools changed within 100 ms, each once.
fn debounce(
    mut changed: tokio::sync::mpsc::UnboundedReceiver<PoolRef>,
    queue: prometheus::IntGauge,
) -> impl futures::Stream<Item = PoolRef> + Send + 'static {
    let (due_tx, mut due_rx) = tokio::sync::mpsc::channel::<PoolRef>(1024);
    tokio::spawn(async move {
        while let Some(first) = changed.recv().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut due = std::collections::HashSet::from([first]);
            while let Ok(more) = changed.try_recv() {
                due.insert(more);
            }
            // Each reconcile that starts takes one off.
            queue.add(due.len() as i64);
            for pool in due {
                if due_tx.send(pool).await.is_err() {
                    return;
                }
            }
        }
    });
    futures::stream::poll_fn(move |cx| due_rx.poll_recv(cx))
}

pub async fn run(cfg: OperatorConfig) -> anyhow::Result<()> {
    let client = troupe_client::client()
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the Kubernetes API: {e}"))?;
    check_crds(&client).await?;

    let alert_token = match &cfg.alert_token_file {
        Some(path) => {
            let t = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading the alert token file {}: {e}", path.display()))?;
            anyhow::ensure!(
                !t.trim().is_empty(),
                "the alert token file {} is empty",
                path.display()
            );
            Some(t.trim().to_string())
        }
        None => None,
    };
    let analysis_allow = crate::address_allow::AddressAllowList::new(&cfg.analysis_address_allow)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Checked before anything else starts: a console asked for with actions and no token
    // stops the operator here, saying why.
    cfg.console.access()?;
    let (changed_tx, changed_rx) = tokio::sync::mpsc::unbounded_channel();
    let poke = changed_tx.clone();
    let actors = cache(
        Api::<Actor>::all(client.clone()),
        watcher::Config::default(),
        changed_tx.clone(),
        pool_of_actor,
    );
    let leases = cache(
        Api::<Lease>::all(client.clone()),
        watcher::Config::default().labels(labels::POOL),
        changed_tx.clone(),
        pool_of_labelled,
    );
    // The controller watches pools itself; this cache serves the orphan sweep and the alerts.
    let pools = cache(
        Api::<ActorPool>::all(client.clone()),
        watcher::Config::default(),
        changed_tx.clone(),
        |_| None,
    );
    let deployments = cache(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER)),
        changed_tx,
        pool_of_labelled,
    );
    let settings = WorkerSettings {
        token_secret: cfg.worker_token_secret.clone(),
        extra_env: cfg.worker_env.clone(),
        worker_cluster_role: cfg.worker_cluster_role.clone(),
        allow_custom_service_account: cfg.allow_custom_worker_service_account,
    };
    let ctx = Context::new(
        client.clone(),
        (actors.clone(), leases.clone(), pools.clone(), deployments.clone()),
        settings,
        cfg.instance.clone(),
        crate::analysis::Analyzer::new(cfg.prometheus_url.clone(), analysis_allow),
        poke,
    );
    let health = Arc::new(Health {
        ready: false.into(),
        metrics: ctx.metrics.clone(),
    });
    let leader = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sink = Arc::new(AlertSink {
        token: alert_token,
        ctx: ctx.clone(),
        leader: leader.clone(),
    });
    tokio::spawn(serve(cfg.listen, health.clone(), sink));
    // Every replica serves it, leader or not: it reads with its own watches and acts with
    // writes any replica may make (annotations and spec patches the leader acts on).
    crate::console::start(&client, &cfg.console).await?;

    for (what, ready) in [
        ("actors", actors.wait_until_ready().await.is_ok()),
        ("leases", leases.wait_until_ready().await.is_ok()),
        ("pools", pools.wait_until_ready().await.is_ok()),
        ("deployments", deployments.wait_until_ready().await.is_ok()),
    ] {
        anyhow::ensure!(ready, "the {what} cache never synced");
    }
    health.ready.store(true, std::sync::atomic::Ordering::SeqCst);

    // Only the leader reconciles; a follower waits here with warm caches.
    let election = Election::new(
        cfg.namespace.clone(),
        cfg.leader_lease.clone(),
        cfg.instance.clone(),
        (Duration::from_secs(15), Duration::from_secs(2)),
        ctx.leadership.clone(),
    );
    // SIGTERM is heard while following too: a follower is PID 1 of its container, where a
    // signal without a handler is ignored, and it would wait out the whole grace period.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = election.acquire(&client) => {}
        _ = term.recv() => return stop_following(&election, &client).await,
        _ = tokio::signal::ctrl_c() => return stop_following(&election, &client).await,
    }
    leader.store(true, std::sync::atomic::Ordering::SeqCst);
    // Leadership lost (its proof ran out: an API server outage, a pause) is not the end: every
    // write already waits for the proof, so this replica keeps its warm caches and campaigns
    // again as a follower instead of exiting and listing everything anew.
    {
        let (election, client, leader) = (election.clone(), client.clone(), leader.clone());
        tokio::spawn(async move {
            loop {
                election.hold(&client).await;
                leader.store(false, std::sync::atomic::Ordering::SeqCst);
                tracing::warn!("lost leadership (its proof ran out); campaigning again");
                election.acquire(&client).await;
                leader.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    tracing::info!("caches synced; reconciling");

    // A change to an actor, lease or Deployment reconciles its pool (at most every 100 ms);
    // every pool is also looked at every RESYNC (a lease expiring is a non-event).
    let trigger = debounce(changed_rx, ctx.metrics.queue_depth.clone());
    tokio::spawn(orphans::run(ctx.clone(), Duration::from_secs(1)));

    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    Controller::new(Api::<ActorPool>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Deployment>::all(client.clone()), watcher::Config::default())
        .reconcile_on(trigger)
        .graceful_shutdown_on(shutdown)
        .run(pool_controller::reconcile, pool_controller::error_policy, ctx)
        .for_each(|_| async {})
        .await;
    election.release(&client).await;
    tracing::info!("operator stopped");
    Ok(())
}

/// A follower told to stop: it never led, but a campaign interrupted just after its write
/// landed may hold the Lease, which is then handed back (release checks the holder).
async fn stop_following(election: &Election, client: &kube::Client) -> anyhow::Result<()> {
    tracing::info!("stopping while following");
    election.release(client).await;
    tracing::info!("operator stopped");
    Ok(())
}

/// `RUST_LOG` filters; `TROUPE_LOG_JSON=true` for JSON lines.
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
