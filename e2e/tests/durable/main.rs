//! Durable actors (issue 13), against the local control plane with real worker processes and a
//! real PostgreSQL: an actor's state goes with it on a planned move, survives a crash as its
//! persistence mode promises, waits out a store that stopped, and is never overwritten by a worker
//! that was frozen past its lease; it is handed over, not stopped, when its worker leaves on a
//! scale-in; its journal reads as kubectl troupe journal prints it; it is kept in a store that
//! serves TLS only, reached with the CA of the store's Secret; it goes from the store with its
//! Actor unless the pool retains it.

#[path = "../common/mod.rs"]
mod common;
mod deleted;
mod faults;
mod journal;
mod scale_in;
mod tls;

use std::{collections::BTreeMap, time::Duration};

use common::{TestEnv, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "durable-e2e-token";
const ACTORS: usize = 8;

/// The pool `counters` (`replicas` workers, `extra` YAML lines under `spec:`) and its counters.
fn manifests(replicas: usize, extra: &str) -> String {
    let mut out = format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {{name: counters}}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers: [{{name: worker, image: troupe/worker:0.1.0, env: [{{name: GENERATION, value: \"1\"}}]}}]\n{extra}",
    );
    for i in 0..ACTORS {
        out.push_str(&format!(
            "---\napiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {{name: c{i}}}\nspec: {{pool: counters, behavior: counter}}\n"
        ));
    }
    out
}

/// name → (phase, worker, epoch, revision) of every actor.
fn actors(env: &TestEnv) -> BTreeMap<String, (String, String, i64, String)> {
    env.kubectl_json(&["get", "actors"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (
                s(&a["metadata"]["name"]),
                (
                    s(&a["status"]["phase"]),
                    s(&a["status"]["worker"]),
                    a["status"]["epoch"].as_i64().unwrap_or(0),
                    s(&a["status"]["revision"]),
                ),
            )
        })
        .collect()
}

type Placement = BTreeMap<String, (String, String, i64, String)>;

/// Waits until every counter is Running and `placed` says the placement is the awaited one.
async fn running(env: &TestEnv, what: &str, placed: impl Fn(&Placement) -> bool) -> Placement {
    eventually(what, WAIT, || {
        let a = actors(env);
        let ok = a.len() == ACTORS && a.values().all(|(p, ..)| p == "Running") && placed(&a);
        std::future::ready(ok.then_some(a))
    })
    .await
}

/// Every counter Running, spread evenly over `workers` workers (the rebalance is over).
async fn running_balanced(env: &TestEnv, workers: usize) -> Placement {
    running(
        env,
        &format!("{ACTORS} counters balanced over {workers} workers"),
        |a| {
            let mut per: BTreeMap<&String, usize> = BTreeMap::new();
            for (_, w, ..) in a.values() {
                *per.entry(w).or_default() += 1;
            }
            per.len() == workers && per.values().max().unwrap() - per.values().min().unwrap() <= 1
        },
    )
    .await
}

async fn running_on(env: &TestEnv, workers: usize) -> Placement {
    running(
        env,
        &format!("{ACTORS} counters Running on {workers} workers"),
        |a| {
            a.values()
                .map(|(_, w, ..)| w)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                == workers
        },
    )
    .await
}

/// Tells counter c{i} `1`, i + 3 times (each answered 202), through the worker at `ip`; returns
/// the count each must keep.
async fn count_up(env: &TestEnv, ip: &str) -> BTreeMap<String, usize> {
    let mut expected = BTreeMap::new();
    for i in 0..ACTORS {
        let name = format!("c{i}");
        for _ in 0..i + 3 {
            assert_eq!(send(env, ip, &name, "tell", json!(1)).await.status(), 202);
        }
        let now = send(env, ip, &name, "ask", json!(0))
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(now, json!({"value": i + 3}), "{name} before any move");
        expected.insert(name, i + 3);
    }
    expected
}

/// What each named counter answers now (retried while it cannot answer: moving, starting).
async fn counts_now<'a>(
    env: &TestEnv,
    ip: &str,
    names: impl IntoIterator<Item = &'a String>,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        let answer = eventually(&format!("{name} answers"), WAIT, || async {
            let r = send(env, ip, name, "ask", json!(0)).await;
            if r.status() == 200 {
                r.json::<Value>().await.ok()
            } else {
                None
            }
        })
        .await;
        let value = answer["value"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} answered {answer}"));
        counts.insert(name.clone(), value as usize);
    }
    counts
}

/// Every counter answers with the count it must have kept.
async fn counts_kept(
    env: &TestEnv,
    ip: &str,
    expected: &BTreeMap<String, usize>,
    moved: &[&String],
    when: &str,
) {
    let now = counts_now(env, ip, expected.keys()).await;
    for (name, count) in expected {
        let how = if moved.contains(&name) {
            "moved"
        } else {
            "not moved"
        };
        assert_eq!(now[name], *count, "{name} ({how}) keeps its count {when}");
    }
}

fn moved_between<'a>(before: &Placement, after: &'a Placement) -> Vec<&'a String> {
    after
        .iter()
        .filter(|(n, (_, w, epoch, _))| before[*n].1 != *w && *epoch > before[*n].2)
        .map(|(n, _)| n)
        .collect()
}

/// Senders that tell every counter `1`, one tell at a time each, without pause, through the
/// first of some workers, until stopped. A worker that refuses the connection (it is gone) was
/// sent nothing, so the sender goes on through the next one.
struct Senders {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(String, usize, Vec<String>)>>,
}

impl Senders {
    /// `per_counter` senders for each counter, through the workers at `ips`.
    fn start(env: &TestEnv, ips: &[String], per_counter: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..ACTORS * per_counter)
            .map(|i| {
                let i = i % ACTORS;
                let (stop, ns) = (stop.clone(), env.namespace.clone());
                let urls: Vec<String> = ips
                    .iter()
                    .map(|ip| format!("http://{ip}:8080/v1/namespaces/{ns}/actors/c{i}/tell"))
                    .collect();
                tokio::spawn(async move {
                    // A connection per tell: a pooled keep-alive connection that a stopping worker
                    // closes fails the next tell sent on it, which then never reached a worker.
                    let http = reqwest::Client::builder()
                        .pool_max_idle_per_host(0)
                        .build()
                        .unwrap();
                    let (mut accepted, mut refused, mut at) = (0usize, Vec::new(), 0);
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let sent = http
                            .post(&urls[at])
                            .bearer_auth(TOKEN)
                            .json(&json!(1))
                            .send()
                            .await;
                        let r = match sent {
                            Ok(r) => r,
                            // The worker is gone or going (its API stopped, or closed this
                            // connection before reading the tell): go on through the next.
                            // Had a worker handled a tell it did not answer, its count would
                            // exceed its 202s and `counts_kept` would say so.
                            Err(_) if at + 1 < urls.len() => {
                                at += 1;
                                continue;
                            }
                            Err(e) => {
                                refused.push(format!("not answered: {e}"));
                                continue;
                            }
                        };
                        match r.status().as_u16() {
                            202 => accepted += 1,
                            code => refused.push(format!("{code} {}", r.text().await.unwrap_or_default())),
                        }
                    }
                    (format!("c{i}"), accepted, refused)
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops them: the tells each counter had answered 202, and every refusal with its counter.
    async fn stop(self) -> (BTreeMap<String, usize>, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut expected = BTreeMap::new();
        let mut refused = Vec::new();
        for t in self.tasks {
            let (name, accepted, no) = t.await.unwrap();
            refused.extend(no.into_iter().map(|r| format!("{name}: {r}")));
            *expected.entry(name).or_default() += accepted;
        }
        (expected, refused)
    }
}

/// The Ready condition of an actor: (phase, reason, message).
fn ready(env: &TestEnv, name: &str) -> (String, String, String) {
    let a = env.kubectl_json(&["get", "actor", name]);
    let ready = a["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap_or_default();
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (
        s(&a["status"]["phase"]),
        s(&ready["reason"]),
        s(&ready["message"]),
    )
}

/// Sends `verb` with `body` to actor `name` through the worker at `ip` (which forwards it).
async fn send(env: &TestEnv, ip: &str, name: &str, verb: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "http://{ip}:8080/v1/namespaces/{}/actors/{name}/{verb}",
            env.namespace
        ))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn counters_moved_by_a_rebalance_keep_their_exact_count() {
    let env = TestEnv::new("durable-move").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    assert!(env.apply(&manifests(1, "")).0);
    let before = running_on(&env, 1).await;
    let pods = env.pods().await;
    let ip = pods[0]["ip"].as_str().unwrap().to_string();
    let expected = count_up(&env, &ip).await;

    env.kubectl_ok(&["scale", "actorpool", "counters", "--replicas", "3"]);
    let after = running_on(&env, 3).await;
    let moved = moved_between(&before, &after);
    assert!(
        moved.len() >= 2,
        "a rebalance over 3 workers moves some counters: {after:?}"
    );
    counts_kept(&env, &ip, &expected, &moved, "after the rebalance").await;
}

#[tokio::test]
async fn tells_sent_while_counters_move_are_each_accepted_and_handled_exactly_once() {
    let env = TestEnv::new("durable-busy-move").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    // 5 ms a message and three senders each: a backlog waits in every mailbox when it moves.
    let slow = manifests(1, "").replace("behavior: counter}", "behavior: counter, config: {latencyMs: 5}}");
    assert!(env.apply(&slow).0);
    let before = running_on(&env, 1).await;
    let pods = env.pods().await;
    let ip = pods[0]["ip"].as_str().unwrap().to_string();

    // Every counter told without pause by three senders, one tell at a time each, through the first worker,
    // while the pool grows to 3 workers and counters move.
    let senders = Senders::start(&env, std::slice::from_ref(&ip), 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.kubectl_ok(&["scale", "actorpool", "counters", "--replicas", "3"]);
    let after = running_balanced(&env, 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (expected, refused) = senders.stop().await;
    let moved = moved_between(&before, &after);
    assert!(
        moved.len() >= ACTORS / 2,
        "the rebalance moved counters: {after:?}"
    );
    eprintln!(
        "told while {} of {ACTORS} counters moved: {} tells accepted, {} refused",
        moved.len(),
        expected.values().sum::<usize>(),
        refused.len()
    );
    assert!(
        refused.is_empty(),
        "no tell refused during the moves: {refused:?}"
    );
    // Exactly: none lost (handled before the state was handed over, or waited for the next
    // worker) and none handled twice.
    counts_kept(&env, &ip, &expected, &moved, "after moving while told").await;
}

#[tokio::test]
async fn counters_keep_their_exact_count_through_a_canary_step_and_its_rollback() {
    let env = TestEnv::new("durable-canary").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    let strategy = "  strategy:\n    canary:\n      scaleDownDelay: 5s\n      steps: [{setWeight: 50}, {pause: {}}, {setWeight: 100}]\n";
    assert!(env.apply(&manifests(2, strategy)).0);
    let stable = running_on(&env, 2).await;
    let old = stable.values().next().unwrap().3.clone();
    let pods = env.pods().await;
    let ip = pods[0]["ip"].as_str().unwrap().to_string();
    let expected = count_up(&env, &ip).await;

    // A new revision: half the counters move to its canary workers.
    env.kubectl_ok(&[
        "patch",
        "actorpool",
        "counters",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/env/0/value","value":"2"}]"#,
    ]);
    let canary = running(&env, "half the counters Running on the canary", |a| {
        a.values().filter(|(.., r)| *r != old).count() == ACTORS / 2
    })
    .await;
    let moved = moved_between(&stable, &canary);
    counts_kept(&env, &ip, &expected, &moved, "on the canary step").await;

    // Rolled back by hand: every counter goes back to the stable revision.
    env.kubectl_ok(&["annotate", "actorpool", "counters", "troupe.dev/abort=now"]);
    let back = running(&env, "every counter back on the stable revision", |a| {
        a.values().all(|(.., r)| *r == old)
    })
    .await;
    let moved_back = moved_between(&canary, &back);
    assert!(!moved_back.is_empty(), "the rollback moved counters: {back:?}");
    counts_kept(&env, &ip, &expected, &moved_back, "after the rollback").await;
}

/// Sends `sig` (`-9`, `-STOP`, `-CONT`) to a pod's worker process.
fn signal(pod: &Value, sig: &str) {
    let pid = pod["containers"][0]["pid"].as_i64().expect("the worker's pid");
    let sent = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {sig} {pid}");
}
