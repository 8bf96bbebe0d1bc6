//! Worker benchmarks, each printed beside a bare tokio baseline measured in the same run
//! (the machine is shared and noisy: compare ratios, not absolute figures).
//!
//! `make bench` (or `cargo bench -p troupe-worker --bench host`). Sizes can be set with
//! TROUPE_BENCH_MESSAGES (default 1,000,000), TROUPE_BENCH_ASKS (100,000),
//! TROUPE_BENCH_ACTIVATIONS (20,000), TROUPE_BENCH_IDLE (100,000), TROUPE_BENCH_HTTP (5,000);
//! TROUPE_BENCH_HTTP_ADDR (127.0.0.1:39101) is where the HTTP benchmark's first worker listens,
//! the second on the next port.

use std::{
    collections::HashMap,
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tracing::instrument::WithSubscriber;
use troupe_crds::ActorSpec;
use troupe_worker::{
    api::{ApiState, Forwarder, router},
    behavior::{ActorError, Behavior, Context, Registry},
    host::{ActorKey, Host, HostConfig},
    metrics::Metrics,
    trace::{self, Hop},
};

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Counts what it receives; answers with nothing much.
struct Sink(Arc<AtomicU64>);

#[async_trait::async_trait]
impl Behavior for Sink {
    async fn handle(&mut self, _: &Context, _: Value) -> Result<Value, ActorError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Value::Null)
    }
}

fn spec(behavior: &str) -> ActorSpec {
    serde_json::from_value(json!({"pool": "bench", "behavior": behavior})).unwrap()
}

async fn host(counter: Arc<AtomicU64>, capacity: usize) -> Arc<Host> {
    let mut registry = Registry::new();
    registry.register("sink", move |_| Ok(Box::new(Sink(counter.clone()))));
    registry.register("idle", |_| Ok(Box::new(Sink(Arc::default()))));
    let config = HostConfig {
        mailbox_capacity: capacity,
        ..Default::default()
    };
    Host::start(config, registry, Metrics::new()).await.unwrap()
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// ns per message of a bare tokio unbounded mpsc send + recv (one sender, one receiver task).
async fn bare_channel_ns(n: usize) -> f64 {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let recv = tokio::spawn(async move {
        let mut got = 0usize;
        while let Some(v) = rx.recv().await {
            black_box(v);
            got += 1;
            if got == n {
                break;
            }
        }
    });
    let t = Instant::now();
    for _ in 0..n {
        tx.send(Value::Null).unwrap();
    }
    recv.await.unwrap();
    t.elapsed().as_nanos() as f64 / n as f64
}

/// ns per request-response over a bare mpsc + oneshot.
async fn bare_round_trip_ns(n: usize) -> f64 {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Value, tokio::sync::oneshot::Sender<Value>)>();
    tokio::spawn(async move {
        while let Some((v, reply)) = rx.recv().await {
            let _ = reply.send(v);
        }
    });
    let t = Instant::now();
    for _ in 0..n {
        let (rtx, rrx) = tokio::sync::oneshot::channel();
        tx.send((Value::Null, rtx)).unwrap();
        black_box(rrx.await.unwrap());
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

fn row(name: &str, ns: f64, baseline: f64, goal: &str) {
    println!(
        "{name:<44} {:>10.0} ns  {:>12.0}/s   {:>6.2}x bare   goal: {goal}",
        ns,
        1e9 / ns,
        ns / baseline
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages = size("TROUPE_BENCH_MESSAGES", 1_000_000);
    let asks = size("TROUPE_BENCH_ASKS", 100_000);
    let activations = size("TROUPE_BENCH_ACTIVATIONS", 20_000);
    let idle = size("TROUPE_BENCH_IDLE", 100_000);
    let http = size("TROUPE_BENCH_HTTP", 5_000);
    println!(
        "troupe-worker benchmarks ({} cores)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    // Warm up allocator and runtime.
    bare_channel_ns(100_000).await;
    let bare = bare_channel_ns(messages).await;
    let bare_rt = bare_round_trip_ns(asks).await;
    println!(
        "{:<44} {:>10.0} ns  {:>12.0}/s",
        "baseline: tokio mpsc send+recv",
        bare,
        1e9 / bare
    );
    println!(
        "{:<44} {:>10.0} ns  {:>12.0}/s",
        "baseline: tokio mpsc+oneshot round trip",
        bare_rt,
        1e9 / bare_rt
    );

    // Tell throughput: one actor, messages sent back to back (mailbox large enough for all).
    let counter = Arc::new(AtomicU64::new(0));
    let h = host(counter.clone(), messages + 1).await;
    let key = ActorKey::new("bench", "sink");
    h.upsert(key.clone(), spec("sink"), Some(1)).await;
    let t = Instant::now();
    for _ in 0..messages {
        h.tell(&key, Value::Null).await.unwrap();
    }
    while counter.load(Ordering::Relaxed) < messages as u64 {
        tokio::task::yield_now().await;
    }
    row(
        "tell throughput by name (in process)",
        t.elapsed().as_nanos() as f64 / messages as f64,
        bare,
        "<= 2x bare",
    );
    let handle = h.handle(&key).unwrap();
    counter.store(0, Ordering::Relaxed);
    let t = Instant::now();
    for _ in 0..messages {
        handle.tell(Value::Null).await.unwrap();
    }
    while counter.load(Ordering::Relaxed) < messages as u64 {
        tokio::task::yield_now().await;
    }
    row(
        "tell throughput by handle (in process)",
        t.elapsed().as_nanos() as f64 / messages as f64,
        bare,
        "<= 2x bare",
    );

    // Ask round trip, sequential.
    let t = Instant::now();
    for _ in 0..asks {
        black_box(handle.ask(Value::Null, Duration::from_secs(5)).await.unwrap());
    }
    row(
        "ask round trip (in process)",
        t.elapsed().as_nanos() as f64 / asks as f64,
        bare_rt,
        "<= 5 us",
    );

    // Assignment: build the behaviour and host it (its Ractor task waits for the first message).
    let t = Instant::now();
    for i in 0..activations {
        h.upsert(ActorKey::new("bench", format!("a{i}")), spec("idle"), Some(1))
            .await;
    }
    let assign = t.elapsed().as_nanos() as f64 / activations as f64;
    row("actor assignment (build + host, lazy)", assign, bare, "-");
    // Activation: Ractor spawn + start, with the first message.
    let t = Instant::now();
    for i in 0..activations {
        h.tell(&ActorKey::new("bench", format!("a{i}")), Value::Null)
            .await
            .unwrap();
    }
    let act = t.elapsed().as_nanos() as f64 / activations as f64;
    row(
        "actor activation (spawn + start + 1st tell)",
        act,
        bare,
        "<= 10 us",
    );
    drop(h);

    // Idle actors' memory in a fresh host: assigned, then all active, then passivated.
    let before = rss_bytes();
    let config = HostConfig {
        mailbox_capacity: 1000,
        passivate_after: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    let mut registry = Registry::new();
    registry.register("idle", |_| Ok(Box::new(Sink(Arc::default()))));
    let h = Host::start(config, registry, Metrics::new()).await.unwrap();
    for i in 0..idle {
        h.upsert(ActorKey::new("bench", format!("idle{i}")), spec("idle"), Some(1))
            .await;
    }
    let assigned = rss_bytes();
    for i in 0..idle {
        h.tell(&ActorKey::new("bench", format!("idle{i}")), Value::Null)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let active = rss_bytes();
    let keys: Vec<_> = (0..idle)
        .map(|i| ActorKey::new("bench", format!("idle{i}")))
        .collect();
    let t = Instant::now();
    while keys.iter().any(|k| h.is_active(k)) && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let passivated = rss_bytes();
    let mib = |b: u64| b as f64 / 1048576.0;
    let per = |b: u64| b.saturating_sub(before) as f64 / idle as f64;
    println!(
        "{:<44} {:>8.1} MiB RSS  {:>6.0} B/actor   goal: 100k under 500 MB",
        format!("{idle} idle actors, assigned (never activated)"),
        mib(assigned),
        per(assigned)
    );
    println!(
        "{:<44} {:>8.1} MiB RSS  {:>6.0} B/actor",
        format!("{idle} actors, all active (Ractor task each)"),
        mib(active),
        per(active)
    );
    println!(
        "{:<44} {:>8.1} MiB RSS  {:>6.0} B/actor   (allocator keeps freed pages)",
        format!("{idle} actors, passivated after 500 ms idle"),
        mib(passivated),
        per(passivated)
    );
    drop(h);

    // HTTP: a tell to the hosting worker, and one forwarded by a second worker.
    let counter = Arc::new(AtomicU64::new(0));
    let target = host(counter.clone(), http + 1).await;
    let key = ActorKey::new("bench", "sink");
    target.upsert(key.clone(), spec("sink"), Some(1)).await;
    let serve = |h: Arc<Host>, forwarder: Forwarder, addr: &'static str| async move {
        let state = Arc::new(ApiState {
            host: h,
            token: Some("bench".into()),
            forwarder: Arc::new(forwarder),
            started: AtomicBool::new(true),
            ready: AtomicBool::new(true),
        });
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
    };
    let first: std::net::SocketAddr = std::env::var("TROUPE_BENCH_HTTP_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:39101".into())
        .parse()
        .expect("TROUPE_BENCH_HTTP_ADDR: ip:port");
    let second = std::net::SocketAddr::new(first.ip(), first.port() + 1);
    let (direct_addr, forwarding_addr): (&'static str, &'static str) =
        (first.to_string().leak(), second.to_string().leak());
    serve(
        target,
        Forwarder::with_static_routes(None, HashMap::new()),
        direct_addr,
    )
    .await;
    let routes = HashMap::from([(key.clone(), direct_addr.to_string())]);
    serve(
        host(Arc::default(), 10).await,
        Forwarder::with_static_routes(Some("bench".into()), routes),
        forwarding_addr,
    )
    .await;
    let client = reqwest::Client::new();
    let tell = |addr: &'static str| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("http://{addr}/v1/namespaces/bench/actors/sink/tell"))
                .bearer_auth("bench")
                .json(&Value::Null)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 202);
        }
    };
    for addr in [direct_addr, forwarding_addr] {
        tell(addr).await;
    }
    let t = Instant::now();
    for _ in 0..http {
        tell(direct_addr).await;
    }
    let direct = t.elapsed().as_nanos() as f64 / http as f64;
    row("tell over HTTP (to the hosting worker)", direct, bare, "-");
    let t = Instant::now();
    for _ in 0..http {
        tell(forwarding_addr).await;
    }
    let forwarded = t.elapsed().as_nanos() as f64 / http as f64;
    row("tell over HTTP, forwarded between workers", forwarded, bare, "-");

    // Traces: what a tell or ask taken over HTTP pays for its trace, now that one without a
    // traceparent starts a trace of its own (ids, the sampler, the request's span with the
    // traceresponse header, the message's span). Without a log subscriber (spans disabled), then
    // with the worker's log format at info writing to a sink (spans created, fields formatted).
    let key = ActorKey::new("bench", "sink");
    let t = Instant::now();
    for _ in 0..messages {
        black_box((trace::new_trace_id(), trace::new_span_id()));
    }
    let ids = t.elapsed().as_nanos() as f64 / messages as f64;
    row("trace: a new trace id and span id", ids, bare, "-");
    let hops = |n: usize| {
        let key = key.clone();
        async move {
            let t = Instant::now();
            for _ in 0..n {
                let request = Hop::Request { verb: "tell" };
                let root = trace::within(None, request, &key, async { trace::current() }).await;
                let header = axum::http::HeaderValue::try_from(root.unwrap().to_string());
                black_box(header.unwrap());
                trace::within(root, Hop::Message, &key, async {}).await;
            }
            t.elapsed().as_nanos() as f64 / n as f64
        }
    };
    let quiet = hops(messages).await;
    row("trace: new root + message hop, no logs", quiet, bare, "-");
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_env_filter("info")
        .finish();
    let logged = hops(messages / 10).with_subscriber(logs).await;
    row("trace: the same, logs at info (text)", logged, bare, "-");
    let json = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_env_filter("info")
        .json()
        .with_current_span(true)
        .finish();
    let logged = hops(messages / 10).with_subscriber(json).await;
    row("trace: the same, logs at info (JSON)", logged, bare, "-");
}
