//! `move-bench`: figures of durable actors' moves on the local control plane (issue 13;
//! `make bench-moves`, results in docs/benchmarks.md).
//!
//! 1. **Planned moves, at once.** `--actors` counters (persistence OnMove) on one worker, each
//!    told a known number of times; the pool is scaled to two workers, so about half of them
//!    move at once. Printed: how long the whole move took (from the first counter released to
//!    the last one Running on the new worker), the per-actor gap of each move from the new
//!    worker's `troupe_worker_handoff_seconds` (from the old worker no longer taking its messages
//!    to its start with the state), and whether every counter kept its exact count.
//! 2. **Recovery after a crash** (with `--store-dsn-file`): the same counters with persistence
//!    EveryMessage on two workers; the worker with the most is killed with SIGKILL. Printed: from
//!    the kill to the last of its counters Running elsewhere, the part of it that is the lease
//!    running out, and whether every counter kept its exact count (read back from the store).
//!
//! Percentiles from a histogram are interpolated within its buckets (as PromQL's
//! `histogram_quantile`); the buckets grow by 1.5×.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Config, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::{Value, json};
use troupe_crds::{Actor, ActorPhase, ActorPool};
use troupe_e2e::chaos::faults::NodeAgent;

#[derive(Parser)]
struct Cli {
    /// Kubeconfig of the local control plane (the front).
    #[arg(long, env = "TROUPE_KUBECONFIG")]
    kubeconfig: std::path::PathBuf,
    /// The node agent (pods, their addresses and processes).
    #[arg(long, env = "TROUPE_NODE_URL")]
    node_url: String,
    /// A file holding the control plane's PostgreSQL DSN: runs the crash scenario too.
    #[arg(long)]
    store_dsn_file: Option<std::path::PathBuf>,
    /// Counters in each scenario.
    #[arg(long, default_value_t = 2000)]
    actors: usize,
    /// Run only the crash scenario.
    #[arg(long)]
    only_crash: bool,
}

const TOKEN: &str = "move-bench-token";
/// The lease duration of workers on the local control plane (the operator's default).
const LEASE: Duration = Duration::from_secs(6);

/// One actor's status, as the bench reads it.
struct Seen {
    phase: Option<ActorPhase>,
    worker: String,
    epoch: i64,
    started: i64,
}

struct Bench {
    ns: String,
    client: Client,
    node: NodeAgent,
    http: reqwest::Client,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The `q` quantile of a Prometheus histogram given as (upper bound, cumulative count).
fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return f64::NAN;
    };
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return prev.0;
            }
            let within = (rank - prev.1) / (count - prev.1).max(f64::MIN_POSITIVE);
            return prev.0 + (le - prev.0) * within;
        }
        prev = (le, count);
    }
    f64::NAN
}

impl Bench {
    async fn new(cli: &Cli, what: &str) -> anyhow::Result<Bench> {
        let ns = format!("bench-{what}-{}", std::process::id());
        let mut c = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&cli.kubeconfig)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        c.default_namespace = ns.clone();
        let client = Client::try_from(c)?;
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let _ = namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await;
        let b = Bench {
            ns,
            client,
            node: NodeAgent::new(cli.node_url.clone()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        b.secret("troupe-worker-token", "token", TOKEN).await?;
        Ok(b)
    }

    async fn secret(&self, name: &str, key: &str, value: &str) -> anyhow::Result<()> {
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": name}, "stringData": {key: value}
        }))?;
        Api::<Secret>::default_namespaced(self.client.clone())
            .create(&PostParams::default(), &s)
            .await?;
        Ok(())
    }

    fn pools(&self) -> Api<ActorPool> {
        Api::default_namespaced(self.client.clone())
    }

    fn actors(&self) -> Api<Actor> {
        Api::default_namespaced(self.client.clone())
    }

    /// The pool `p` (`replicas` workers, `persistence`) and `n` counters c00000….
    async fn create(&self, n: usize, replicas: i32, persistence: Value) -> anyhow::Result<()> {
        let pool: ActorPool = serde_json::from_value(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool", "metadata": {"name": "p"},
            "spec": {"replicas": replicas, "actorsPerWorker": n, "persistence": persistence,
                     "template": {"spec": {"containers": [{"name": "worker", "image": "troupe/worker:0.1.0"}]}}}
        }))?;
        self.pools().create(&PostParams::default(), &pool).await?;
        let actors = self.actors();
        let failed = futures::stream::iter(0..n)
            .map(|i| {
                let actors = actors.clone();
                async move {
                    let a: Actor = serde_json::from_value(json!({
                        "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
                        "metadata": {"name": format!("c{i:05}")},
                        "spec": {"pool": "p", "behavior": "counter"}
                    }))
                    .expect("valid actor");
                    actors.create(&PostParams::default(), &a).await.is_err()
                }
            })
            .buffer_unordered(32)
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await;
        anyhow::ensure!(failed == 0, "{failed} actors could not be created");
        Ok(())
    }

    /// What every actor's status says: name → (phase, worker, epoch, startedAt in Unix seconds).
    async fn seen(&self) -> anyhow::Result<BTreeMap<String, Seen>> {
        Ok(self
            .actors()
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|a| {
                let name = a.name_any();
                let s = a.status.unwrap_or_default();
                let started = s.started_at.map(|t| t.0.as_second()).unwrap_or(0);
                let seen = Seen {
                    phase: s.phase,
                    worker: s.worker.unwrap_or_default(),
                    epoch: s.epoch.unwrap_or(0),
                    started,
                };
                (name, seen)
            })
            .collect())
    }

    /// name → (phase, worker) of every actor.
    async fn placement(&self) -> anyhow::Result<BTreeMap<String, (Option<ActorPhase>, String)>> {
        Ok(self
            .seen()
            .await?
            .into_iter()
            .map(|(n, s)| (n, (s.phase, s.worker)))
            .collect())
    }

    /// name → (epoch, startedAt) of every actor.
    async fn epochs(&self) -> anyhow::Result<BTreeMap<String, (i64, i64)>> {
        Ok(self
            .seen()
            .await?
            .into_iter()
            .map(|(n, s)| (n, (s.epoch, s.started)))
            .collect())
    }

    /// Waits until every actor is Running on one of `workers` distinct workers.
    async fn all_running(&self, n: usize, workers: usize) -> anyhow::Result<()> {
        let t = Instant::now();
        loop {
            let p = self.placement().await?;
            let on: BTreeSet<&String> = p.values().map(|(_, w)| w).collect();
            if p.len() == n
                && on.len() == workers
                && p.values().all(|(ph, _)| *ph == Some(ActorPhase::Running))
            {
                return Ok(());
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(300),
                "not all Running after 300 s"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// This namespace's pods from the node agent: name → (ip, pid of the worker process).
    async fn pods(&self) -> anyhow::Result<BTreeMap<String, (String, Option<i64>)>> {
        Ok(self
            .node
            .pods(&self.ns)
            .await?
            .into_iter()
            .filter_map(|p| Some((p.name, (p.ip?, p.pid.map(i64::from)))))
            .collect())
    }

    async fn send(&self, ip: &str, name: &str, verb: &str, body: Value) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .http
            .post(format!(
                "http://{ip}:8080/v1/namespaces/{}/actors/{name}/{verb}",
                self.ns
            ))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?)
    }

    /// Tells counter i `i % 10 + 1` times `1` (each answered 202); returns what each must keep.
    async fn count_up(&self, ip: &str, n: usize) -> anyhow::Result<BTreeMap<String, i64>> {
        let results: Vec<anyhow::Result<(String, i64)>> = futures::stream::iter(0..n)
            .map(|i| async move {
                let name = format!("c{i:05}");
                let times = (i % 10 + 1) as i64;
                for _ in 0..times {
                    let r = self.send(ip, &name, "tell", json!(1)).await?;
                    anyhow::ensure!(r.status() == 202, "{name}: {}", r.status());
                }
                Ok((name, times))
            })
            .buffer_unordered(32)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// The counters that answer another count than the one they must have kept (name, count),
    /// and how many did not answer within 60 s (asked again while moving or starting).
    async fn counts_wrong(&self, ip: &str, expected: &BTreeMap<String, i64>) -> (Vec<(String, i64)>, usize) {
        let answers: Vec<(String, i64, Option<i64>)> = futures::stream::iter(expected.iter())
            .map(|(name, want)| async move {
                let until = Instant::now() + Duration::from_secs(60);
                loop {
                    if let Ok(r) = self.send(ip, name, "ask", json!(0)).await
                        && r.status() == 200
                        && let Some(v) = r.json::<Value>().await.ok().and_then(|v| v["value"].as_i64())
                    {
                        return (name.clone(), *want, Some(v));
                    }
                    if Instant::now() > until {
                        return (name.clone(), *want, None);
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let wrong = answers
            .iter()
            .filter_map(|(n, want, got)| got.filter(|g| g != want).map(|g| (n.clone(), g - want)))
            .collect();
        (wrong, answers.iter().filter(|a| a.2.is_none()).count())
    }

    /// The buckets of `troupe_worker_handoff_seconds` summed over this namespace's workers.
    async fn handoff_buckets(&self) -> anyhow::Result<Vec<(f64, f64)>> {
        let mut sum: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for (ip, _) in self.pods().await?.values() {
            let text = self
                .http
                .get(format!("http://{ip}:8080/metrics"))
                .send()
                .await?
                .text()
                .await?;
            for line in text
                .lines()
                .filter(|l| l.starts_with("troupe_worker_handoff_seconds_bucket"))
            {
                let le = line
                    .split("le=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("+Inf");
                let le: f64 = if le == "+Inf" { f64::INFINITY } else { le.parse()? };
                let count: f64 = line.rsplit(' ').next().unwrap_or("0").parse()?;
                let e = sum.entry(le.to_bits()).or_insert((le, 0.0));
                e.1 += count;
            }
        }
        let mut v: Vec<(f64, f64)> = sum.into_values().collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(v)
    }

    async fn clean_up(&self) {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let _ = self.pools().delete("p", &Default::default()).await;
        let _ = self
            .actors()
            .delete_collection(&Default::default(), &ListParams::default())
            .await;
        let _ = namespaces.delete(&self.ns, &Default::default()).await;
    }
}

async fn planned_moves(cli: &Cli) -> anyhow::Result<()> {
    let b = Bench::new(cli, "moves").await?;
    let n = cli.actors;
    b.create(n, 1, json!({"mode": "OnMove"})).await?;
    b.all_running(n, 1).await?;
    let pods = b.pods().await?;
    let (first, (ip, _)) = pods.iter().next().expect("one worker");
    let (first, ip) = (first.clone(), ip.clone());
    let expected = b.count_up(&ip, n).await?;
    println!(
        "planned moves: {n} counters (OnMove) on 1 worker, told {} times in all",
        expected.values().sum::<i64>()
    );

    let scaled = Instant::now();
    b.pools()
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await?;
    // Every actor leaving the first worker: when first seen not Running there, and when Running
    // on the other.
    let mut left: BTreeMap<String, Instant> = BTreeMap::new();
    let mut arrived: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        let p = b.placement().await?;
        let now = Instant::now();
        for (name, (phase, worker)) in &p {
            let running = *phase == Some(ActorPhase::Running);
            if !(running && *worker == first) {
                left.entry(name.clone()).or_insert(now);
            }
            if running && *worker != first && !worker.is_empty() {
                arrived.entry(name.clone()).or_insert(now);
            }
        }
        let on_first = p.values().filter(|(_, w)| *w == first).count();
        let settled = p.values().all(|(ph, _)| *ph == Some(ActorPhase::Running))
            && on_first.abs_diff(n - on_first) <= 1;
        if settled {
            break;
        }
        anyhow::ensure!(
            scaled.elapsed() < Duration::from_secs(300),
            "the rebalance did not end in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_left = left.values().min().copied().unwrap_or(scaled);
    let last_arrived = arrived.values().max().copied().unwrap_or(scaled);
    println!(
        "  {} counters moved at once: {:.2} s from the first released to the last Running on the new worker ({:.2} s after the scale, the new worker's start included)",
        arrived.len(),
        last_arrived.duration_since(first_left).as_secs_f64(),
        last_arrived.duration_since(scaled).as_secs_f64()
    );
    let buckets = b.handoff_buckets().await?;
    println!(
        "  per actor (troupe_worker_handoff_seconds, {} moves): p50 {:.3} s, p99 {:.3} s",
        buckets.last().map(|b| b.1).unwrap_or(0.0),
        histogram_quantile(&buckets, 0.5),
        histogram_quantile(&buckets, 0.99)
    );
    let (wrong, silent) = b.counts_wrong(&ip, &expected).await;
    println!(
        "  counters with a wrong count after the moves: {} of {n} {wrong:?} (unanswered: {silent})",
        wrong.len()
    );
    b.clean_up().await;
    Ok(())
}

async fn crash_recovery(cli: &Cli, dsn_file: &std::path::Path) -> anyhow::Result<()> {
    let b = Bench::new(cli, "crash").await?;
    let n = cli.actors;
    b.secret("state-store", "dsn", std::fs::read_to_string(dsn_file)?.trim())
        .await?;
    b.create(
        n,
        2,
        json!({"mode": "EveryMessage", "storeSecretRef": {"name": "state-store"}}),
    )
    .await?;
    b.all_running(n, 2).await?;
    let pods = b.pods().await?;
    let ip = pods.values().next().expect("a worker").0.clone();
    let expected = b.count_up(&ip, n).await?;
    let p = b.placement().await?;
    let epochs_before = b.epochs().await?;
    let mut per: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (name, (_, w)) in &p {
        per.entry(w).or_default().push(name);
    }
    let (victim, its) = per.into_iter().max_by_key(|(_, v)| v.len()).expect("a worker");
    let (victim, its): (String, BTreeSet<String>) = (victim.clone(), its.into_iter().cloned().collect());
    let (survivor_ip, _) = pods
        .iter()
        .find(|(name, _)| **name != victim)
        .map(|(_, v)| v.clone())
        .expect("two workers");
    let pid = pods[&victim].1.expect("the worker's pid");
    println!(
        "crash recovery: {n} counters (EveryMessage) on 2 workers; SIGKILL of the worker with {}",
        its.len()
    );
    let killed = Instant::now();
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    anyhow::ensure!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?
            .success(),
        "kill -9 {pid}"
    );
    // Back: Running under a newer epoch (failed over to the other worker) or started since the
    // kill (restarted on the killed one's pod: the node agent restarts its container, as a
    // kubelet would, and the new process claims the same assignment).
    let mut back: BTreeMap<String, Instant> = BTreeMap::new();
    let mut elsewhere = 0;
    while back.len() < its.len() {
        let now = Instant::now();
        let epochs = b.epochs().await?;
        for (name, (phase, worker)) in b.placement().await? {
            // A newer epoch, or started in a later second than the kill (restarted in place,
            // same assignment; startedAt has seconds).
            let (now_epoch, started) = epochs.get(&name).copied().unwrap_or_default();
            let newer = now_epoch > epochs_before.get(&name).map(|e| e.0).unwrap_or(0) || started > killed_at;
            if its.contains(&name) && phase == Some(ActorPhase::Running) && newer && !back.contains_key(&name)
            {
                back.insert(name, now);
                elsewhere += usize::from(worker != victim);
            }
        }
        if killed.elapsed() > Duration::from_secs(300) {
            // What the ones not back show, by phase and reason.
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for a in b.actors().list(&ListParams::default()).await?.items {
                if its.contains(&a.name_any()) && !back.contains_key(&a.name_any()) {
                    let s = a.status.unwrap_or_default();
                    let ready = s
                        .conditions
                        .iter()
                        .find(|c| c.type_ == "Ready")
                        .map(|c| c.reason.clone());
                    let on_victim = s.worker.as_deref() == Some(victim.as_str());
                    *seen
                        .entry(format!(
                            "{:?} {ready:?} on the killed worker: {on_victim}",
                            s.phase
                        ))
                        .or_default() += 1;
                }
            }
            anyhow::bail!(
                "{} of {} not recovered in 300 s: {seen:?}",
                its.len() - back.len(),
                its.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut after: Vec<f64> = back
        .values()
        .map(|t| t.duration_since(killed).as_secs_f64())
        .collect();
    after.sort_by(f64::total_cmp);
    let last = pct(&after, 1.0);
    println!(
        "  {} counters Running again ({elsewhere} on the other worker, the others on the killed one's restarted container): first {:.2} s, p50 {:.2} s, last {:.2} s after the kill; of it the lease running out ≤ {:.0} s, so about {:.2} s for the {} after it",
        its.len(),
        pct(&after, 0.0),
        pct(&after, 0.5),
        last,
        LEASE.as_secs_f64(),
        (last - LEASE.as_secs_f64()).max(0.0),
        its.len()
    );
    let (wrong, silent) = b.counts_wrong(&survivor_ip, &expected).await;
    println!(
        "  counters with a wrong count after the crash: {} of {n} {wrong:?} (name, kept − acknowledged; unanswered: {silent})",
        wrong.len()
    );
    b.clean_up().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !cli.only_crash {
        planned_moves(&cli).await?;
    }
    if let Some(dsn) = &cli.store_dsn_file {
        crash_recovery(&cli, dsn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_interpolate_within_the_bucket() {
        // 10 observations ≤ 1, 10 more ≤ 2: the median is the top of the first bucket, p75
        // halfway through the second.
        let b = [(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(histogram_quantile(&b, 0.5), 1.0);
        assert_eq!(histogram_quantile(&b, 0.75), 1.5);
        assert!(histogram_quantile(&[], 0.5).is_nan());
    }
}
