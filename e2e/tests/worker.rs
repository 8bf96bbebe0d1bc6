//! The worker binary, run as pods by the node agent, hosts the Actors assigned to it by hand
//! (the `troupe.dev/worker` label), holds its lease and serves its API.

mod common;
#[path = "worker/traces.rs"]
mod traces;

use std::time::Duration;

use common::{TestEnv, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(40);
const TOKEN: &str = "e2e-token-5f1c";

/// A Deployment of `replicas` default workers for pool `pool`, with the API token from a secret
/// and `extra_env` (lines of the env list, indented as the others).
fn workers(env: &TestEnv, pool: &str, replicas: i32, extra_env: &str) -> String {
    env.secret("troupe-api", &[("token", TOKEN)]);
    let kubeconfig = std::env::var("TROUPE_KUBECONFIG").unwrap();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {pool}-workers}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{troupe.dev/pool: {pool}}}}}
  template:
    metadata: {{labels: {{troupe.dev/pool: {pool}}}}}
    spec:
      terminationGracePeriodSeconds: 15
      containers:
        - name: worker
          image: troupe/worker:0.1.0
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe: {{httpGet: {{path: /readyz, port: http}}, periodSeconds: 1}}
          livenessProbe: {{httpGet: {{path: /livez, port: http}}, periodSeconds: 2}}
          env:
            - {{name: TROUPE_POOL, value: {pool}}}
            - {{name: TROUPE_REVISION, value: r1}}
            - {{name: KUBECONFIG, value: "{kubeconfig}"}}
            - {{name: TROUPE_LEASE_DURATION, value: 6s}}
            - {{name: TROUPE_LEASE_RENEW, value: 1s}}
            - {{name: TROUPE_STATUS_COUNTERS_EVERY, value: 1s}}
            - {{name: TROUPE_MAILBOX_CAPACITY, value: "50"}}
            - name: TROUPE_API_TOKEN
              valueFrom: {{secretKeyRef: {{name: troupe-api, key: token}}}}
{extra_env}"#
    )
}

fn actor(name: &str, worker: &str, behavior: &str, extra: &str) -> String {
    format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata:\n  name: {name}\n  labels: {{troupe.dev/worker: {worker}}}\n  annotations: {{troupe.dev/placement: manual}}\nspec:\n  pool: p\n  behavior: {behavior}\n{extra}"
    )
}

/// Starts `replicas` workers and waits until each is ready; returns (pod name, address) pairs.
async fn start_workers(env: &TestEnv, replicas: i32) -> Vec<(String, String)> {
    start_workers_with(env, replicas, "").await
}

/// [`start_workers`] with more env lines in the workers' template.
async fn start_workers_with(env: &TestEnv, replicas: i32, extra_env: &str) -> Vec<(String, String)> {
    assert!(env.apply(&workers(env, "p", replicas, extra_env)).0);
    eventually("every worker ready", WAIT, || async {
        let pods: Vec<Value> = env.pods().await;
        let ready: Vec<(String, String)> = pods
            .iter()
            .filter(|p| p["ready"] == true && p["terminating"] == false)
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    format!("{}:8080", p["ip"].as_str().unwrap()),
                )
            })
            .collect();
        (ready.len() == replicas as usize).then_some(ready)
    })
    .await
}

fn actor_status(env: &TestEnv, name: &str) -> Value {
    env.kubectl_json(&["get", "actor", name])["status"].clone()
}

async fn phase_is(env: &TestEnv, name: &str, phase: &str) -> Value {
    eventually(&format!("actor {name} {phase}"), WAIT, || {
        let s = actor_status(env, name);
        std::future::ready((s["phase"] == phase).then_some(s))
    })
    .await
}

async fn post(addr: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

fn path(env: &TestEnv, actor: &str, verb: &str) -> String {
    format!("/v1/namespaces/{}/actors/{actor}/{verb}", env.namespace)
}

#[tokio::test]
async fn a_worker_holds_a_lease_naming_its_pool_revision_and_address() {
    let env = TestEnv::new("worker-lease").await;
    let workers = start_workers(&env, 1).await;
    let (pod, addr) = &workers[0];
    let lease = env.kubectl_json(&["get", "lease", pod]);
    assert_eq!(lease["metadata"]["labels"]["troupe.dev/pool"], "p");
    assert_eq!(lease["metadata"]["labels"]["troupe.dev/revision"], "r1");
    assert_eq!(
        lease["metadata"]["annotations"]["troupe.dev/address"],
        addr.as_str()
    );
    assert_eq!(lease["spec"]["holderIdentity"], pod.as_str());
    let renewed = lease["spec"]["renewTime"].clone();
    eventually("the lease to be renewed", WAIT, || {
        let l = env.kubectl_json(&["get", "lease", pod]);
        std::future::ready((l["spec"]["renewTime"] != renewed).then_some(()))
    })
    .await;

    // Graceful shutdown releases the lease at once.
    env.kubectl_ok(&["scale", "deployment", "p-workers", "--replicas", "0"]);
    eventually("the lease to be released", WAIT, || {
        std::future::ready((!env.kubectl(&["get", "lease", pod]).status.success()).then_some(()))
    })
    .await;
}

#[tokio::test]
async fn assigned_actors_run_answer_over_http_and_report_their_status() {
    let env = TestEnv::new("worker-actors").await;
    let workers = start_workers(&env, 1).await;
    let (pod, addr) = &workers[0];
    assert!(
        env.apply(&actor("visits", pod, "counter", "  config: {start: 40}\n"))
            .0
    );
    let status = phase_is(&env, "visits", "Running").await;
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "True");

    assert_eq!(
        post(addr, &path(&env, "visits", "tell"), Some(TOKEN), "1")
            .await
            .0,
        202
    );
    let (code, answer) = post(addr, &path(&env, "visits", "ask"), Some(TOKEN), "1").await;
    assert_eq!((code, answer), (200, json!({"value": 42})));
    eventually("messagesProcessed to reach 2 in status", WAIT, || {
        std::future::ready((actor_status(&env, "visits")["messagesProcessed"] == 2).then_some(()))
    })
    .await;

    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"troupe_worker_messages_total{behavior="counter",outcome="ok",pool="p",revision="r1"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_api_refuses_bad_requests_with_the_documented_statuses() {
    let env = TestEnv::new("worker-api-errors").await;
    let workers = start_workers(&env, 1).await;
    let (pod, addr) = &workers[0];
    assert!(env.apply(&actor("e", pod, "echo", "")).0);
    assert!(env.apply(&actor("sleepy", pod, "echo", "  paused: true\n")).0);
    phase_is(&env, "e", "Running").await;
    phase_is(&env, "sleepy", "Paused").await;
    assert_eq!(post(addr, &path(&env, "e", "ask"), None, "1").await.0, 401);
    assert_eq!(
        post(addr, &path(&env, "e", "ask"), Some("nope"), "1").await.0,
        401
    );
    let (code, body) = post(addr, &path(&env, "e", "ask"), Some(TOKEN), "{oops").await;
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("JSON"));
    assert_eq!(
        post(addr, &path(&env, "nobody", "tell"), Some(TOKEN), "1")
            .await
            .0,
        404
    );
    assert_eq!(
        post(addr, &path(&env, "sleepy", "tell"), Some(TOKEN), "1")
            .await
            .0,
        409
    );
}

#[tokio::test]
async fn an_unknown_behavior_is_failed_with_a_reason_and_others_run() {
    let env = TestEnv::new("worker-unknown-behavior").await;
    let workers = start_workers(&env, 1).await;
    let pod = &workers[0].0;
    assert!(env.apply(&actor("mystery", pod, "teleporter", "")).0);
    assert!(env.apply(&actor("fine", pod, "echo", "")).0);
    let s = phase_is(&env, "mystery", "Failed").await;
    let ready = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["reason"], "UnknownBehavior");
    assert!(s["lastError"].as_str().unwrap().contains("teleporter"));
    phase_is(&env, "fine", "Running").await;
}

#[tokio::test]
async fn pausing_resuming_unassigning_and_deleting_an_actor_take_effect_on_its_worker() {
    let env = TestEnv::new("worker-lifecycle").await;
    let workers = start_workers(&env, 1).await;
    let (pod, addr) = &workers[0];
    assert!(env.apply(&actor("c", pod, "counter", "")).0);
    phase_is(&env, "c", "Running").await;

    env.kubectl_ok(&[
        "patch",
        "actor",
        "c",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ]);
    phase_is(&env, "c", "Paused").await;
    assert_eq!(
        post(addr, &path(&env, "c", "tell"), Some(TOKEN), "1").await.0,
        409
    );
    env.kubectl_ok(&[
        "patch",
        "actor",
        "c",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":false}}"#,
    ]);
    phase_is(&env, "c", "Running").await;
    assert_eq!(
        post(addr, &path(&env, "c", "tell"), Some(TOKEN), "1").await.0,
        202
    );

    // Taking the label away unassigns it: the worker stops it and no longer answers for it.
    env.kubectl_ok(&["label", "actor", "c", "troupe.dev/worker-"]);
    eventually(
        "the unassigned actor to be gone from its worker",
        WAIT,
        || async {
            let (code, _) = post(addr, &path(&env, "c", "ask"), Some(TOKEN), "1").await;
            (code == 503).then_some(())
        },
    )
    .await;

    assert!(env.apply(&actor("d", pod, "echo", "")).0);
    phase_is(&env, "d", "Running").await;
    env.kubectl_ok(&["delete", "actor", "d"]);
    eventually("the deleted actor to be stopped", WAIT, || async {
        let (code, _) = post(addr, &path(&env, "d", "ask"), Some(TOKEN), "1").await;
        (code == 404).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_message_for_an_actor_on_another_worker_is_forwarded_to_it() {
    let env = TestEnv::new("worker-forwarding").await;
    let workers = start_workers(&env, 2).await;
    let (a, _) = &workers[0];
    let (_, b_addr) = &workers[1];
    assert!(env.apply(&actor("far", a, "counter", "  config: {start: 7}\n")).0);
    phase_is(&env, "far", "Running").await;
    let (code, answer) = post(b_addr, &path(&env, "far", "ask"), Some(TOKEN), "{}").await;
    assert_eq!((code, answer), (200, json!({"value": 7})));
}

#[tokio::test]
async fn the_content_pipeline_hands_work_from_stage_to_stage() {
    let env = TestEnv::new("worker-pipeline").await;
    let workers = start_workers(&env, 2).await;
    let (a, addr) = &workers[0];
    let (b, _) = &workers[1];
    // Stages on different workers: hand-offs cross the network.
    assert!(
        env.apply(&actor(
            "generate",
            a,
            "pipeline-stage",
            "  config: {stage: generate, next: curate, batch: 5}\n"
        ))
        .0
    );
    assert!(
        env.apply(&actor(
            "curate",
            b,
            "pipeline-stage",
            "  config: {stage: curate, next: post, keep: 2}\n"
        ))
        .0
    );
    assert!(
        env.apply(&actor("post", a, "pipeline-stage", "  config: {stage: post}\n"))
            .0
    );
    for stage in ["generate", "curate", "post"] {
        phase_is(&env, stage, "Running").await;
    }
    let trigger = |name: &str, value: &str| {
        env.kubectl_ok(&[
            "patch",
            "actor",
            name,
            "--type",
            "merge",
            "-p",
            &format!(r#"{{"spec":{{"trigger":"{value}"}}}}"#),
        ]);
    };
    trigger("generate", "1");
    eventually("curate to hold the 5 drafts", WAIT, || async {
        let (_, v) = post(addr, &path(&env, "curate", "ask"), Some(TOKEN), "{}").await;
        (v["buffered"] == 5).then_some(())
    })
    .await;
    trigger("curate", "1");
    eventually("post to hold the 2 best drafts", WAIT, || async {
        let (_, v) = post(addr, &path(&env, "post", "ask"), Some(TOKEN), "{}").await;
        (v["buffered"] == 2).then_some(())
    })
    .await;
    trigger("post", "1");
    eventually("post to publish them", WAIT, || async {
        let (_, v) = post(addr, &path(&env, "post", "ask"), Some(TOKEN), "{}").await;
        (v["published"] == 2).then_some(())
    })
    .await;
}

/// A TCP proxy to the API server that the test can cut, as a network partition would.
struct Partition {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Partition {
    async fn start(upstream: String) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_rx = cut_rx.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if *cut_rx.borrow() {
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Partition { port, cut }
    }
}

#[tokio::test]
async fn a_worker_cut_off_from_the_api_server_stops_its_actors_before_its_lease_expires() {
    let env = TestEnv::new("worker-fencing").await;
    // The worker reaches the API server only through a proxy the test can cut.
    let front = std::fs::read_to_string(std::env::var("TROUPE_KUBECONFIG").unwrap()).unwrap();
    let server = front
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: http://"))
        .unwrap()
        .to_string();
    let partition = Partition::start(server.clone()).await;
    let kubeconfig = std::env::temp_dir().join(format!("{}-partitioned.kubeconfig", env.namespace));
    std::fs::write(
        &kubeconfig,
        front.replace(&server, &format!("127.0.0.1:{}", partition.port)),
    )
    .unwrap();
    let manifest = workers(&env, "p", 1, "").replace(
        &std::env::var("TROUPE_KUBECONFIG").unwrap(),
        kubeconfig.to_str().unwrap(),
    );
    assert!(env.apply(&manifest).0);
    let workers_ready = eventually("the worker ready", WAIT, || async {
        let pods = env.pods().await;
        let p = pods.iter().find(|p| p["ready"] == true)?;
        Some((
            p["name"].as_str().unwrap().to_string(),
            format!("{}:8080", p["ip"].as_str().unwrap()),
        ))
    })
    .await;
    let (pod, addr) = workers_ready;
    assert!(env.apply(&actor("c", &pod, "counter", "")).0);
    phase_is(&env, "c", "Running").await;
    assert_eq!(
        post(&addr, &path(&env, "c", "ask"), Some(TOKEN), "1").await.0,
        200
    );

    let cut_at = std::time::Instant::now();
    partition.cut.send_replace(true);
    // Lease 6 s, renewed every 1 s: the worker must fence within 6 s - (1 s + 1 s margin).
    let fenced_after = eventually("the worker to stop its actor", WAIT, || async {
        let (code, _) = post(&addr, &path(&env, "c", "ask"), Some(TOKEN), "1").await;
        (code == 503).then(|| cut_at.elapsed())
    })
    .await;
    assert!(
        fenced_after < Duration::from_secs(6),
        "fenced after {fenced_after:?}, not before the 6 s lease expired"
    );
    let ready = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(ready, 503, "a fenced worker is not ready");

    // Reconnected: it renews its lease and runs the actor again.
    partition.cut.send_replace(false);
    eventually("the actor to answer again", WAIT, || async {
        let (code, _) = post(&addr, &path(&env, "c", "ask"), Some(TOKEN), "1").await;
        (code == 200).then_some(())
    })
    .await;
}
