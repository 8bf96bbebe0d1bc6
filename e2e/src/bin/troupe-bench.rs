//! `troupe-bench`: end-to-end figures of the operator on the local control plane (`make bench`).
//!
//! For N actors in a fresh namespace: time from creation to Running for each actor (p50, p99,
//! max), failover time after a worker is killed (lease duration included), operator RSS, and
//! the writes to actors, pools and deployments during a quiet 20 s at steady state (goal: none).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use clap::Parser;
use futures::StreamExt;
use kube::{
    Api, Client, Config, ResourceExt,
    api::{ListParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use troupe_crds::{Actor, ActorPhase, ActorPool};

#[derive(Parser)]
struct Cli {
    /// Kubeconfig of the local control plane (the front).
    #[arg(long, env = "TROUPE_KUBECONFIG")]
    kubeconfig: std::path::PathBuf,
    /// Admin kubeconfig, to read the API server's request counters.
    #[arg(long, env = "TROUPE_ADMIN_KUBECONFIG")]
    admin_kubeconfig: std::path::PathBuf,
    #[arg(long, env = "TROUPE_NODE_URL")]
    node_url: String,
    /// Pid file of the operator process (for its RSS).
    #[arg(long)]
    operator_pid_file: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 1000)]
    actors: usize,
    #[arg(long, default_value_t = 4)]
    workers: i32,
}

async fn client(path: &std::path::Path, ns: &str) -> anyhow::Result<Client> {
    let mut c =
        Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &KubeConfigOptions::default()).await?;
    c.default_namespace = ns.to_string();
    Ok(Client::try_from(c)?)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Writes to Troupe's own kinds and Deployments, and all requests of any kind, from the API
/// server's request counters.
async fn writes(admin: &Client) -> anyhow::Result<(f64, f64)> {
    let text = admin
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    let mut total = 0.0;
    let mut all = 0.0;
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        all += line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        let write = [
            "verb=\"PATCH\"",
            "verb=\"PUT\"",
            "verb=\"POST\"",
            "verb=\"DELETE\"",
            "verb=\"APPLY\"",
        ]
        .iter()
        .any(|v| line.contains(v));
        let kind = [
            "resource=\"actors\"",
            "resource=\"actorpools\"",
            "resource=\"deployments\"",
        ]
        .iter()
        .any(|r| line.contains(r));
        if write && kind {
            total += line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    Ok((total, all))
}

fn rss_mib(pid_file: &Option<std::path::PathBuf>) -> Option<f64> {
    let pid = std::fs::read_to_string(pid_file.as_ref()?).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ns = format!("bench-{}-{}", cli.actors, std::process::id());
    let c = client(&cli.kubeconfig, &ns).await?;
    let admin = client(&cli.admin_kubeconfig, &ns).await?;
    let pools: Api<ActorPool> = Api::default_namespaced(c.clone());
    let actors: Api<Actor> = Api::default_namespaced(c.clone());
    println!(
        "troupe-bench: {} actors, {} workers, namespace {ns}",
        cli.actors, cli.workers
    );

    let pool: ActorPool = serde_json::from_value(serde_json::json!({
        "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool", "metadata": {"name": "bench"},
        "spec": {"replicas": cli.workers, "actorsPerWorker": cli.actors,
                 "template": {"spec": {"containers": [{"name": "worker", "image": "troupe/worker:0.1.0"}]}}}
    }))?;
    pools.create(&PostParams::default(), &pool).await?;
    // Workers first: the figure is placement and activation, not process start-up.
    let t = Instant::now();
    loop {
        let p = pools.get("bench").await?;
        if p.status.as_ref().is_some_and(|s| s.ready_workers == cli.workers) {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "workers not ready after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("workers ready after {:.1} s", t.elapsed().as_secs_f64());

    let created_at: BTreeMap<String, Instant> = futures::stream::iter(0..cli.actors)
        .map(|i| {
            let actors = actors.clone();
            async move {
                let name = format!("a{i:05}");
                let a: Actor = serde_json::from_value(serde_json::json!({
                    "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor", "metadata": {"name": name},
                    "spec": {"pool": "bench", "behavior": "echo"}
                }))
                .expect("valid actor");
                let r = actors.create(&PostParams::default(), &a).await;
                (name, Instant::now(), r.is_ok())
            }
        })
        .buffer_unordered(32)
        .filter_map(|(n, t, ok)| async move { ok.then_some((n, t)) })
        .collect()
        .await;
    // Listing every actor costs the API server too: poll less often for many actors.
    let poll = Duration::from_millis((cli.actors as u64 / 10).max(100));
    let start = Instant::now();
    let mut running_at: BTreeMap<String, Instant> = BTreeMap::new();
    // When each actor was first seen assigned (labelled with a worker): the operator's share.
    let mut placed_at: BTreeMap<String, Instant> = BTreeMap::new();
    while running_at.len() < created_at.len() && start.elapsed() < Duration::from_secs(600) {
        for a in actors.list(&ListParams::default()).await?.items {
            if a.labels().contains_key(troupe_crds::labels::WORKER) {
                placed_at.entry(a.name_any()).or_insert_with(Instant::now);
            }
            if a.status.as_ref().and_then(|s| s.phase) == Some(ActorPhase::Running) {
                running_at.entry(a.name_any()).or_insert_with(Instant::now);
            }
        }
        tokio::time::sleep(poll).await;
    }
    let mut lat: Vec<f64> = created_at
        .iter()
        .filter_map(|(n, c)| running_at.get(n).map(|r| r.duration_since(*c).as_secs_f64()))
        .collect();
    lat.sort_by(f64::total_cmp);
    println!(
        "apply → Running: {}/{} actors; p50 {:.2} s, p99 {:.2} s, max {:.2} s (polled every {} ms)",
        lat.len(),
        created_at.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        poll.as_millis()
    );
    // Where the time went: the operator's placement, then the worker's start (its claim).
    let split = |from: &BTreeMap<String, Instant>, to: &BTreeMap<String, Instant>| {
        let mut d: Vec<f64> = from
            .iter()
            .filter_map(|(n, f)| to.get(n).map(|t| t.saturating_duration_since(*f).as_secs_f64()))
            .collect();
        d.sort_by(f64::total_cmp);
        d
    };
    let (to_placed, to_running) = (split(&created_at, &placed_at), split(&placed_at, &running_at));
    println!(
        "  of which apply → placed p50 {:.2} s, p99 {:.2} s; placed → Running p50 {:.2} s, p99 {:.2} s",
        pct(&to_placed, 0.5),
        pct(&to_placed, 0.99),
        pct(&to_running, 0.5),
        pct(&to_running, 0.99)
    );
    if let Some(rss) = rss_mib(&cli.operator_pid_file) {
        println!("operator RSS with {} actors: {rss:.1} MiB", cli.actors);
    }

    // Steady state: nothing changes, so nothing should be written.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = writes(&admin).await?;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after = writes(&admin).await?;
    println!(
        "writes to actors, pools and deployments in 20 s of steady state: {}",
        after.0 - before.0
    );
    println!(
        "API requests of every kind at steady state: {:.1} per second (lease renewals of the workers and the operator included)",
        (after.1 - before.1) / 20.0
    );

    // Failover: kill the worker with the most actors (its lease is left to expire).
    let list = actors.list(&ListParams::default()).await?.items;
    let mut per: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in &list {
        if let Some(w) = a.status.as_ref().and_then(|s| s.worker.clone()) {
            per.entry(w).or_default().insert(a.name_any());
        }
    }
    if let Some((victim, its)) = per.into_iter().max_by_key(|(_, v)| v.len()) {
        let t = Instant::now();
        reqwest::Client::new()
            .delete(format!("{}/pods/{ns}/{victim}?grace=0", cli.node_url))
            .send()
            .await?;
        loop {
            let moved = actors
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|a| its.contains(&a.name_any()))
                .all(|a| {
                    let s = a.status.as_ref();
                    s.and_then(|s| s.phase) == Some(ActorPhase::Running)
                        && s.and_then(|s| s.worker.as_deref()) != Some(victim.as_str())
                });
            if moved || t.elapsed() > Duration::from_secs(120) {
                println!(
                    "failover of {} actors after killing a worker: {:.2} s (lease duration 6 s on the local control plane)",
                    its.len(),
                    t.elapsed().as_secs_f64()
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    pools.delete("bench", &Default::default()).await?;
    let _ = actors
        .delete_collection(&Default::default(), &ListParams::default())
        .await;
    Ok(())
}
