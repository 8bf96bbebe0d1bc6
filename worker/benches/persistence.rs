//! Tell throughput by persistence mode, side by side in one run on a real PostgreSQL: OnMove (no
//! store), Interval (every 100) and EveryMessage (each tell answered after its commit). The
//! machine is shared and noisy: compare the ratios, not the absolute figures.
//!
//! `make bench-persistence` (starts the dev control plane's PostgreSQL), or with any store:
//! `TROUPE_STORE_DSN=postgres://… cargo bench -p troupe-worker --bench persistence`. Sizes:
//! TROUPE_BENCH_TELLS (default 20,000), TROUPE_BENCH_ACTORS (16), TROUPE_BENCH_SENDERS (64).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use troupe_crds::{ActorSpec, PersistenceMode};
use troupe_worker::{
    builtin,
    host::{ActorKey, Assignment, Host, HostConfig},
    metrics::Metrics,
    store::postgres::PgStore,
};

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spec() -> ActorSpec {
    serde_json::from_value(json!({"pool": "bench", "behavior": "counter"})).unwrap()
}

/// Tells per second with `senders` concurrent senders spread over `actors` counters, and the
/// p50/p99 of one tell's answer time.
async fn run(
    mode: PersistenceMode,
    dsn: &str,
    run_id: &str,
    tells: usize,
    actors: usize,
    senders: usize,
) -> (f64, Duration, Duration) {
    let config = HostConfig {
        persistence: mode,
        checkpoint_every: 100,
        mailbox_capacity: 100_000,
        ..HostConfig::default()
    };
    let host = Host::start(config, builtin::registry(), Metrics::new())
        .await
        .unwrap();
    host.set_store(Arc::new(PgStore::new(dsn).unwrap()));
    let keys: Vec<ActorKey> = (0..actors)
        .map(|i| ActorKey::new(format!("bench-{run_id}"), format!("{}-{i}", mode.as_str())))
        .collect();
    for key in &keys {
        let assignment = Assignment {
            epoch: 1,
            uid: Some(format!("{run_id}-{}", key.name)),
            ..Assignment::of(spec(), Some(1))
        };
        host.assign(key.clone(), assignment).await;
    }
    // Every counter answers before the clock starts (its activation at the store included).
    for key in &keys {
        while host.ask(key, json!(0), Duration::from_secs(5)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let started = Instant::now();
    let per_sender = tells / senders;
    let tasks: Vec<_> = (0..senders)
        .map(|s| {
            let host = host.clone();
            let key = keys[s % keys.len()].clone();
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(per_sender);
                for _ in 0..per_sender {
                    let t = Instant::now();
                    host.tell(&key, json!(1)).await.expect("tell");
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    (
        (per_sender * senders) as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
    )
}

#[tokio::main]
async fn main() {
    let Ok(dsn) = std::env::var("TROUPE_STORE_DSN") else {
        eprintln!(
            "TROUPE_STORE_DSN is not set: this benchmark needs a PostgreSQL (make bench-persistence starts one)"
        );
        return;
    };
    let tells = size("TROUPE_BENCH_TELLS", 20_000);
    let actors = size("TROUPE_BENCH_ACTORS", 16);
    let senders = size("TROUPE_BENCH_SENDERS", 64);
    let run_id = format!("{}", std::process::id());
    println!(
        "tells by persistence mode: {tells} tells, {actors} counters, {senders} concurrent senders, one process"
    );
    let mut base = 0.0;
    for mode in [
        PersistenceMode::OnMove,
        PersistenceMode::Interval,
        PersistenceMode::EveryMessage,
    ] {
        let (rate, p50, p99) = run(mode, dsn.trim(), &run_id, tells, actors, senders).await;
        if mode == PersistenceMode::OnMove {
            base = rate;
        }
        println!(
            "  {:<12} {:>9.0} tells/s   answer p50 {:>8.2?}  p99 {:>8.2?}   {:.3}× OnMove",
            mode.as_str(),
            rate,
            p50,
            p99,
            rate / base
        );
    }
}
