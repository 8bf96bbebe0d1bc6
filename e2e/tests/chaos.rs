//! The chaos suite: proves or disproves from the outside that every actor is active on exactly
//! one worker at a time, through the faults of issue #10.
//!
//! A pool of default workers runs `witness` actors ticking every 200 ms; each records every
//! activation, tick, message and stop in one shared append-only file, and the checker
//! (`troupe_e2e::chaos::checker`) reads it in file order. Faults are drawn from a seed; after
//! each one the test waits until every actor is Running on exactly one live worker whose process
//! really runs it (the checker's single open activation in a live process) and whose status
//! names it, and records how long that took. How each fault is injected and healed is in
//! `chaos/inject.rs`.
//!
//! - `single_activation_holds_through_worker_faults` (in `make e2e`): 60 actors, 3 workers, one
//!   fault each of pause, partition, crash and pod deletion; faults of one worker only, so it
//!   can run beside the other tests.
//! - `chaos_long_every_fault_class` (`make chaos`, ignored otherwise): 300 actors, 5 workers,
//!   every fault class, on a control plane of its own (it restarts the API server, etcd and the
//!   operator).
//!
//! Env: `TROUPE_CHAOS_SEED` (default random, printed), `TROUPE_CHAOS_ACTORS`,
//! `TROUPE_CHAOS_WORKERS`, `TROUPE_CHAOS_FAULTS` (how many), `TROUPE_CHAOS_KINDS` (a comma list
//! of fault names), `TROUPE_CHAOS_CHECK_EPOCHS=0` (skip the epoch rule),
//! `TROUPE_CHAOS_WORKER_BIN` (the worker binary; default this build's). See docs/reliability.md.

mod common;
#[path = "chaos/inject.rs"]
mod inject;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use common::TestEnv;
use kube::{Api, ResourceExt, api::ListParams};
use serde_json::json;
use troupe_crds::{Actor, ActorPhase};
use troupe_e2e::chaos::{
    FaultKind, FaultOutcome, PlannedFault, Tally,
    checker::{Checker, Options, WitnessFile},
    faults::{self, ControlPlane, NodeAgent, PodView, ProxyHub},
    plan,
};

/// The workers' lease on the local control plane (`--worker-env` in cluster.sh).
const LEASE: Duration = Duration::from_secs(6);
/// "A few seconds" past the lease within which every actor must be Running again.
const GRACE: Duration = Duration::from_secs(10);
/// How long after a fault ends the test waits for recovery before it counts actors as lost.
const RECOVERY_BOUND: Duration = Duration::from_secs(120);
/// Time for stale executions of a thawed or healed worker to show in the file after recovery.
const SETTLE: Duration = Duration::from_secs(3);

struct Settings {
    seed: u64,
    actors: usize,
    workers: usize,
    faults: usize,
    kinds: Vec<FaultKind>,
    check_epochs: bool,
}

impl Settings {
    fn from_env(actors: usize, workers: usize, faults: usize, kinds: &[FaultKind]) -> Settings {
        let num = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
                .unwrap_or(default)
        };
        let kinds = match std::env::var("TROUPE_CHAOS_KINDS") {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(|k| k.parse().unwrap_or_else(|e| panic!("TROUPE_CHAOS_KINDS: {e}")))
                .collect(),
            _ => kinds.to_vec(),
        };
        Settings {
            seed: std::env::var("TROUPE_CHAOS_SEED")
                .ok()
                .map(|v| v.parse().expect("TROUPE_CHAOS_SEED: a number"))
                .unwrap_or_else(rand::random),
            actors: num("TROUPE_CHAOS_ACTORS", actors),
            workers: num("TROUPE_CHAOS_WORKERS", workers),
            faults: num("TROUPE_CHAOS_FAULTS", faults),
            kinds,
            check_epochs: std::env::var("TROUPE_CHAOS_CHECK_EPOCHS").map_or(true, |v| v != "0"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_activation_holds_through_worker_faults() {
    let s = Settings::from_env(
        60,
        3,
        4,
        &[
            FaultKind::ProcessPause,
            FaultKind::Partition,
            FaultKind::ContainerCrash,
            FaultKind::PodDeletion,
        ],
    );
    run("chaos-short", s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the long chaos run restarts the operator, API server and etcd: `make chaos` runs it on a control plane of its own"]
async fn chaos_long_every_fault_class() {
    let s = Settings::from_env(300, 5, 18, &FaultKind::ALL);
    run("chaos-long", s).await;
}

/// Everything a run touches.
struct Run {
    env: TestEnv,
    s: Settings,
    cp: ControlPlane,
    node: NodeAgent,
    hub: ProxyHub,
    actors: Api<Actor>,
    chaos_dir: PathBuf,
    witness: WitnessFile,
    checker: Checker,
    faketime: Option<PathBuf>,
}

/// One look at the world: actor name → (phase, status.worker), and the namespace's pods.
struct Snapshot {
    actors: BTreeMap<String, (Option<ActorPhase>, String)>,
    pods: Vec<PodView>,
}

impl Run {
    async fn snapshot(&self) -> Option<Snapshot> {
        let list = self.actors.list(&ListParams::default()).await.ok()?;
        let pods = self.node.pods(&self.env.namespace).await.ok()?;
        let actors = list
            .items
            .iter()
            .map(|a| {
                let st = a.status.clone().unwrap_or_default();
                (a.name_any(), (st.phase, st.worker.unwrap_or_default()))
            })
            .collect();
        Some(Snapshot { actors, pods })
    }

    fn feed(&mut self) {
        self.witness
            .read_new(&mut self.checker)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.witness.path().display()));
    }

    /// What keeps the world from being right: every actor Running on exactly one live worker
    /// whose process runs it (one open activation among live processes, in that pod) and whose
    /// status names it. Empty when all is well.
    fn problems(&self, snap: &Snapshot) -> Vec<String> {
        let live: BTreeMap<&str, u32> = snap
            .pods
            .iter()
            .filter(|p| !p.terminating)
            .filter_map(|p| {
                p.pid
                    .filter(|pid| faults::alive(*pid))
                    .map(|pid| (p.name.as_str(), pid))
            })
            .collect();
        let live_pids: BTreeSet<u32> = live.values().copied().collect();
        let mut out = Vec::new();
        if snap.actors.len() != self.s.actors {
            out.push(format!(
                "{} actors listed, {} expected",
                snap.actors.len(),
                self.s.actors
            ));
        }
        for (name, (phase, worker)) in &snap.actors {
            if *phase != Some(ActorPhase::Running) {
                out.push(format!("{name}: phase {phase:?} (worker {worker:?})"));
                continue;
            }
            if !live.contains_key(worker.as_str()) {
                out.push(format!(
                    "{name}: Running on {worker:?}, which is not a live worker"
                ));
                continue;
            }
            let key = (self.env.namespace.clone(), name.clone());
            let open: Vec<String> = self
                .checker
                .actors
                .get(&key)
                .map(|a| {
                    a.open_in(&live_pids)
                        .iter()
                        .map(|o| format!("{}@{}", o.id, o.pod))
                        .collect()
                })
                .unwrap_or_default();
            let runs_it = open.len() == 1 && open[0].ends_with(&format!("@{worker}"));
            if !runs_it {
                out.push(format!(
                    "{name}: status says {worker}, open activations in live processes: {open:?}"
                ));
            }
        }
        out
    }

    /// Waits until there are no problems; returns when that happened, or the last problems,
    /// and how many actors were not right for longer than the limit in `slow` in one stretch (the
    /// "nothing Pending for longer than the lease plus a few seconds" rule). A stretch starts at
    /// the first snapshot that shows the actor not right — at `from` (the fault healed: the
    /// outage itself is the fault) for those already wrong in the first one — and ends at the first that shows it right again; a
    /// planned move of a second after a rebalance is not a slow actor, an actor left Pending is.
    async fn wait_recovered(
        &mut self,
        bound: Instant,
        slow: Option<(Instant, Duration)>,
    ) -> (Result<Instant, Vec<String>>, BTreeMap<String, String>) {
        let mut wrong_since: BTreeMap<String, Instant> = BTreeMap::new();
        // Slow actor → what was wrong with it when its stretch passed the limit.
        let mut slow_actors: BTreeMap<String, String> = BTreeMap::new();
        let mut first = true;
        let mut last = vec!["no snapshot yet".to_string()];
        loop {
            self.feed();
            if let Some(snap) = self.snapshot().await {
                let now = Instant::now();
                last = self.problems(&snap);
                let wrong: BTreeSet<String> = last
                    .iter()
                    .filter_map(|p| p.split(':').next())
                    .map(str::to_string)
                    .collect();
                if let Some((from, _)) = slow {
                    let start = if first { from } else { now };
                    for a in &wrong {
                        wrong_since.entry(a.clone()).or_insert(start);
                    }
                }
                first = false;
                // Stretches that ended, or are still open, past the limit.
                if let Some((_, limit)) = slow {
                    wrong_since.retain(|a, since| {
                        let stretch = now.duration_since(*since);
                        if stretch > limit && !slow_actors.contains_key(a) {
                            let why = last.iter().find(|p| p.split(':').next() == Some(a.as_str()));
                            let why = why.cloned().unwrap_or_else(|| format!("{a}: right again"));
                            slow_actors.insert(a.clone(), format!("{why} ({:.1} s)", stretch.as_secs_f64()));
                        }
                        wrong.contains(a)
                    });
                }
                if last.is_empty() {
                    return (Ok(now), slow_actors);
                }
            }
            if Instant::now() >= bound {
                return (Err(last), slow_actors);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn live_workers(&self) -> Vec<String> {
        let mut pods: Vec<String> = self
            .node
            .pods(&self.env.namespace)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.terminating && p.pid.is_some())
            .map(|p| p.name)
            .collect();
        pods.sort();
        pods
    }

    /// Sleeps while reading the witness file, so that no history is lost between checks.
    async fn idle(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.feed();
            tokio::time::sleep((end - Instant::now()).min(Duration::from_millis(500))).await;
        }
    }
}

fn pool_manifest(run: &Run, worker_bin: &str) -> String {
    let mut env = vec![
        json!({"name": "TROUPE_WITNESS_FILE", "value": run.witness.path().display().to_string()}),
        json!({"name": "CHAOS_CONTROL", "value": run.hub.control.to_string()}),
        json!({"name": "CHAOS_KUBECONFIG", "value": run.cp.admin_kubeconfig().display().to_string()}),
        json!({"name": "CHAOS_DIR", "value": run.chaos_dir.display().to_string()}),
        json!({"name": "CHAOS_WORKER_BIN", "value": worker_bin}),
    ];
    if let Some(lib) = &run.faketime {
        env.push(json!({"name": "CHAOS_FAKETIME_LIB", "value": lib.display().to_string()}));
    }
    json!({
        "apiVersion": "troupe.dev/v1alpha1",
        "kind": "ActorPool",
        "metadata": {"name": "chaos"},
        "spec": {
            "replicas": run.s.workers,
            "template": {"spec": {
                "terminationGracePeriodSeconds": 10,
                "containers": [{
                    "name": "worker",
                    "image": "troupe/worker:0.1.0",
                    "command": ["/bin/sh", "-c", faults::worker_wrapper()],
                    "env": env,
                }],
            }},
        },
    })
    .to_string()
}

fn actors_manifest(n: usize) -> String {
    let items: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "apiVersion": "troupe.dev/v1alpha1",
                "kind": "Actor",
                "metadata": {"name": format!("w{i:03}")},
                "spec": {"pool": "chaos", "behavior": "witness", "schedule": "every 200ms"},
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

async fn run(test: &str, s: Settings) {
    let env = TestEnv::new(test).await;
    let cluster_dir =
        PathBuf::from(std::env::var("TROUPE_CLUSTER_DIR").expect("TROUPE_CLUSTER_DIR (make e2e sets it)"));
    let cp = ControlPlane::new(&cluster_dir);
    let chaos_dir = cluster_dir.join("chaos").join(&env.namespace);
    std::fs::create_dir_all(&chaos_dir).unwrap();
    let hub = ProxyHub::start(cp.apiserver().unwrap()).await.unwrap();
    let worker_bin = std::env::var("TROUPE_CHAOS_WORKER_BIN").unwrap_or_else(|_| {
        let exe = std::env::current_exe().unwrap();
        let bin_dir = exe.parent().and_then(|d| d.parent()).unwrap();
        bin_dir.join("troupe-worker").display().to_string()
    });
    let faketime = faults::faketime_lib();
    let plan = plan(s.seed, &s.kinds, s.faults);
    eprintln!(
        "[chaos] seed {} (TROUPE_CHAOS_SEED={} reproduces the plan): {} actors, {} workers, {} faults: {}",
        s.seed,
        s.seed,
        s.actors,
        s.workers,
        plan.len(),
        plan.iter().map(|f| f.kind.name()).collect::<Vec<_>>().join(", ")
    );
    if faketime.is_none() && s.kinds.contains(&FaultKind::ClockSkew) {
        eprintln!(
            "[chaos] !!!!! libfaketime is NOT installed: every clock-skew fault is SKIPPED (apt-get install libfaketime) !!!!!"
        );
    }
    let mut run = Run {
        actors: Api::namespaced(env.client.clone(), &env.namespace),
        witness: WitnessFile::new(chaos_dir.join("witness.jsonl")),
        checker: Checker::new(Options {
            check_epochs: s.check_epochs,
        }),
        env,
        s,
        cp,
        node: NodeAgent::new(std::env::var("TROUPE_NODE_URL").unwrap()),
        hub,
        chaos_dir,
        faketime,
    };
    eprintln!("[chaos] witness file: {}", run.witness.path().display());

    let started = Instant::now();
    let (ok, out) = run.env.apply(&pool_manifest(&run, &worker_bin));
    assert!(ok, "{out}");
    let (ok, out) = run.env.apply(&actors_manifest(run.s.actors));
    assert!(ok, "{out}");
    let (ready, _) = run
        .wait_recovered(Instant::now() + Duration::from_secs(180), None)
        .await;
    if let Err(problems) = ready {
        panic!(
            "the actors never all ran before any fault ({} problems): {:#?}",
            problems.len(),
            &problems[..problems.len().min(20)]
        );
    }
    eprintln!(
        "[chaos] {} actors Running on {} workers after {:.1} s",
        run.s.actors,
        run.s.workers,
        started.elapsed().as_secs_f64()
    );
    assert!(
        run.checker.violations.is_empty(),
        "violations before any fault:\n{}",
        run.checker.report(20)
    );

    let mut tally = Tally::default();
    let mut seen = 0;
    for (i, f) in plan.iter().enumerate() {
        let outcome = match run.inject(f).await {
            Err(why) => {
                eprintln!("[chaos] #{i} {} SKIPPED: {why}", f.kind);
                FaultOutcome {
                    kind: f.kind,
                    recovery: None,
                    stale_executions: 0,
                    doubled_actors: 0,
                    other_violations: 0,
                    slow_actors: 0,
                    lost_actors: 0,
                    skipped: Some(why),
                }
            }
            Ok((injected, healed, target)) => {
                let (recovered, slow_ones) = run
                    .wait_recovered(healed + RECOVERY_BOUND, Some((healed, LEASE + GRACE)))
                    .await;
                let slow = slow_ones.len();
                if slow > 0 {
                    let samples: Vec<&String> = slow_ones.values().take(5).collect();
                    eprintln!("[chaos] #{i} {}: slow actors, for example: {samples:#?}", f.kind);
                }
                run.idle(SETTLE).await;
                let new = &run.checker.violations[seen..];
                seen = run.checker.violations.len();
                let stale = new.iter().filter(|v| v.is_stale_execution()).count();
                let doubled: BTreeSet<_> = new
                    .iter()
                    .filter(|v| v.is_stale_execution())
                    .filter_map(|v| v.actor())
                    .collect();
                let (recovery, lost) = match &recovered {
                    Ok(at) => (Some(*at - injected), 0),
                    Err(problems) => {
                        eprintln!(
                            "[chaos] #{i} {} not recovered {} s after it ended: {:#?}",
                            f.kind,
                            RECOVERY_BOUND.as_secs(),
                            &problems[..problems.len().min(20)]
                        );
                        let actors: BTreeSet<&str> =
                            problems.iter().filter_map(|p| p.split(':').next()).collect();
                        (None, actors.len())
                    }
                };
                eprintln!(
                    "[chaos] #{i} {} on {} (hold {} s): recovered in {}; {} stale executions in {} actors, {} other violations, {} actors slow",
                    f.kind,
                    if target.is_empty() { "-" } else { &target },
                    f.hold.as_secs(),
                    recovery.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64())),
                    stale,
                    doubled.len(),
                    new.len() - stale,
                    slow
                );
                FaultOutcome {
                    kind: f.kind,
                    recovery,
                    stale_executions: stale,
                    doubled_actors: doubled.len(),
                    other_violations: new.len() - stale,
                    slow_actors: slow,
                    lost_actors: lost,
                    skipped: None,
                }
            }
        };
        tally.outcomes.push(outcome);
    }
    run.feed();
    let doubled_overall = run.checker.doubled_actors().len();
    eprintln!(
        "[chaos] seed {}: {} actors, {} workers; {} of {} actors ran stale at least once\n{}\n{}",
        run.s.seed,
        run.s.actors,
        run.s.workers,
        doubled_overall,
        run.s.actors,
        tally.table(),
        run.checker.report(0)
    );
    if tally.failed() || !run.checker.violations.is_empty() {
        panic!(
            "single activation did not hold (seed {}):\n{}\n{}",
            run.s.seed,
            tally.table(),
            run.checker.report(20)
        );
    }
}
