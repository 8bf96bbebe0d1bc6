//! Bad input of every kind, tried as a new user (or a hostile client) would, beside a healthy
//! pool and actor in the same namespace. Each case is refused with a readable message, or ends
//! in a False condition with a reason and an Event; meanwhile the healthy actor keeps running on
//! the same worker with its state, and `kubectl troupe` keeps reading the namespace.
//!
//! The cases are tallied, not asserted one by one, so that one run reports every case that
//! failed; docs/reliability.md lists them by kind.

mod common;

use std::{fmt::Display, time::Duration};

use common::{TestEnv, alert_token, bad_manifests::bad_manifests, eventually, operator_url};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "bad-input-e2e-token";

/// Every case tried with what it got, and the ones whose answer was not the expected one.
#[derive(Default)]
struct Tally {
    tried: Vec<(String, String)>,
    wrong: Vec<String>,
}

impl Tally {
    fn case(&mut self, what: &str, ok: bool, saw: impl Display) {
        let saw = saw.to_string();
        if !ok {
            self.wrong.push(format!("{what}: got {saw}"));
        }
        self.tried.push((what.to_string(), saw));
    }

    /// The cases and their answers as a Markdown table, kept as a test artefact
    /// (`target/tmp/bad-input-cases.md`) for docs/reliability.md.
    fn write_table(&self) {
        let mut table = String::from("| case | answer |\n| --- | --- |\n");
        for (what, saw) in &self.tried {
            let saw: String = saw
                .replace('|', "\\|")
                .replace('\n', " ")
                .chars()
                .take(160)
                .collect();
            table.push_str(&format!("| {what} | {saw} |\n"));
        }
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad-input-cases.md");
        std::fs::write(&path, table).unwrap();
    }
}

fn setup_token(env: &TestEnv) {
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
}

/// A pool of one worker; `container_extra` goes into the worker container (YAML flow-map
/// entries), `pod_extra` and `spec_extra` into the pod spec and the pool spec (YAML lines).
fn pool(name: &str, container_extra: &str, pod_extra: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  template:\n    spec:\n      terminationGracePeriodSeconds: 5\n{pod_extra}      containers: [{{name: worker, image: troupe/worker:0.1.0{container_extra}}}]\n{spec_extra}"
    )
}

/// An actor as JSON (a config of any depth survives JSON, not every YAML parser).
fn actor(name: &str, pool: &str, behavior: &str, extra: Value) -> String {
    let mut spec = json!({"pool": pool, "behavior": behavior});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    json!({"apiVersion": "troupe.dev/v1alpha1", "kind": "Actor", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

async fn http(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Answer {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(resp) => {
            let code = resp.status().as_u16();
            (code, resp.text().await.unwrap_or_default())
        }
        // A server may answer and close before the whole body is sent (401, 413 unread).
        Err(e) => (0, e.to_string()),
    }
}

/// An HTTP status (0: the connection closed before the answer) and body.
type Answer = (u16, String);

async fn post(url: &str, token: Option<&str>, body: impl Into<reqwest::Body>) -> Answer {
    http(reqwest::Method::POST, url, token, body).await
}

/// What a False condition case must show: the object, its condition, reason and Event.
struct Judged {
    what: &'static str,
    kind: &'static str,
    name: &'static str,
    condition: &'static str,
    reason: &'static str,
    /// Words the condition's message (or the actor's lastError) must contain.
    words: &'static str,
}

fn judged_cases() -> Vec<Judged> {
    let actor_case = |what, name, reason, words| Judged {
        what,
        kind: "actor",
        name,
        condition: "Ready",
        reason,
        words,
    };
    vec![
        actor_case(
            "a behaviour no worker knows",
            "teleporter",
            "UnknownBehavior",
            "teleporter",
        ),
        actor_case(
            "a config 300 levels deep",
            "deep",
            "InvalidConfig",
            "300 levels deep",
        ),
        actor_case(
            "a counter start that is not a number",
            "counter-ten",
            "InvalidConfig",
            "config.start must be an integer",
        ),
        actor_case(
            "a pipeline batch of a trillion items",
            "huge-batch",
            "InvalidConfig",
            "must be an integer from 0 to 10000",
        ),
        actor_case(
            "a flaky latency of 1e300 ms",
            "forever",
            "InvalidConfig",
            "latencyMs must be a number within",
        ),
        Judged {
            what: "an actor of a pool that does not exist",
            kind: "actor",
            name: "orphan",
            condition: "Placed",
            reason: "PoolNotFound",
            words: "nowhere",
        },
        Judged {
            what: "a template running workers under another ServiceAccount",
            kind: "actorpool",
            name: "borrowed-identity",
            condition: "WorkersDeployed",
            reason: "ServiceAccountNotAllowed",
            words: "\"cluster-admin\"",
        },
        Judged {
            what: "a template whose env sets a zero lease renew period",
            kind: "actorpool",
            name: "zero-renew",
            condition: "WorkersDeployed",
            reason: "InvalidWorkerSettings",
            words: "TROUPE_LEASE_RENEW=0ns is out of range",
        },
    ]
}

#[tokio::test]
async fn bad_input_of_every_kind_fails_alone_and_a_healthy_pool_beside_it_keeps_running() {
    let env = TestEnv::new("bad-input").await;
    setup_token(&env);
    let mut tally = Tally::default();

    // A healthy pool and actor, with state: a counter at 5.
    assert!(env.apply(&pool("good", "", "", "")).0);
    for a in [
        actor("steady", "good", "counter", json!({})),
        actor("sleepy", "good", "echo", json!({"paused": true})),
        actor("brim", "good", "counter", json!({"config": {"start": i64::MAX}})),
    ] {
        assert!(env.apply(&a).0);
    }
    let (worker, addr) = eventually("steady Running on a worker with an address", WAIT, || async {
        let s = env.kubectl_json(&["get", "actor", "steady"])["status"].clone();
        let worker = s["worker"]
            .as_str()
            .filter(|_| s["phase"] == "Running")?
            .to_string();
        let pods = env.pods().await;
        let ip = pods.iter().find(|p| p["name"] == worker.as_str())?["ip"]
            .as_str()?
            .to_string();
        Some((worker, format!("{ip}:8080")))
    })
    .await;
    let actor_url = |name: &str, verb: &str| {
        format!(
            "http://{addr}/v1/namespaces/{}/actors/{name}/{verb}",
            env.namespace
        )
    };
    let (code, answer) = post(&actor_url("steady", "ask"), Some(TOKEN), "5").await;
    assert_eq!((code, answer.as_str()), (200, r#"{"value":5}"#));
    let epoch_before = env.kubectl_json(&["get", "actor", "steady"])["status"]["epoch"].clone();

    // 1. Manifests the API server refuses, with its message; nothing stored.
    for (what, manifest, words) in bad_manifests() {
        let (applied, out) = env.apply(&manifest);
        tally.case(
            what,
            !applied && out.contains(words),
            format!("applied={applied}: {out}"),
        );
    }
    let stored = env.kubectl_ok(&["get", "actors,actorpools", "-o", "name"]);
    tally.case(
        "refused manifests store nothing",
        !stored.lines().any(|l| l.ends_with("/bad")),
        &stored,
    );

    // 2. Objects the schema cannot judge: accepted, then each False with a reason and an Event.
    // Built as text: serde_json itself refuses to parse more than 128 levels.
    let deep = format!(
        r#"{{"apiVersion":"troupe.dev/v1alpha1","kind":"Actor","metadata":{{"name":"deep"}},"spec":{{"pool":"good","behavior":"echo","config":{}1{}}}}}"#,
        r#"{"a":"#.repeat(300),
        "}".repeat(300)
    );
    for manifest in [
        actor("teleporter", "good", "teleporter", json!({})),
        deep,
        actor(
            "counter-ten",
            "good",
            "counter",
            json!({"config": {"start": "ten"}}),
        ),
        actor(
            "huge-batch",
            "good",
            "pipeline-stage",
            json!({"config": {"stage": "generate", "batch": 1_000_000_000_000u64}}),
        ),
        actor(
            "forever",
            "good",
            "flaky",
            json!({"config": {"latencyMs": 1e300}}),
        ),
        actor("orphan", "nowhere", "echo", json!({})),
        pool(
            "borrowed-identity",
            "",
            "      serviceAccountName: cluster-admin\n",
            "",
        ),
        pool(
            "zero-renew",
            ", env: [{name: TROUPE_LEASE_RENEW, value: 0s}]",
            "",
            "",
        ),
    ] {
        let (applied, out) = env.apply(&manifest);
        assert!(applied, "{out}");
    }
    // A Prometheus query with a syntax error, in a pool without analysis steps: its first
    // rollout must not pass unmeasured, but fail with Prometheus' own message.
    let broken_query = "  strategy:\n    canary: {steps: [{setWeight: 100}]}\n  analysis:\n    interval: 1s\n    failureLimit: 0\n    metrics:\n      - name: errors\n        provider: {prometheus: {query: 'rate(troupe_worker_messages_total[5s]'}}\n        threshold: {max: 0.05}\n";
    assert!(env.apply(&pool("broken-query", "", "", broken_query)).0);
    eventually("broken-query's first revision stable", WAIT, || {
        let s = env.kubectl_json(&["get", "actorpool", "broken-query"])["status"].clone();
        std::future::ready(s["stableRevision"].as_str().map(|_| ()))
    })
    .await;
    env.kubectl_ok(&[
        "patch",
        "actorpool",
        "broken-query",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"worker","image":"troupe/worker:0.1.0","env":[{"name":"REVISION","value":"2"}]}]}}}}"#,
    ]);

    let judged = judged_cases();
    let settled = eventually("every accepted bad object judged", WAIT, || {
        let all: Vec<(Value, Value)> = judged
            .iter()
            .map(|j| {
                let status = env.kubectl_json(&["get", j.kind, j.name])["status"].clone();
                let c = condition(&status, j.condition);
                (status, c)
            })
            .collect();
        let pool = env.kubectl_json(&["get", "actorpool", "broken-query"])["status"].clone();
        let reasons: Vec<String> = env
            .events()
            .into_iter()
            .map(|(n, r)| format!("{n}/{r}"))
            .collect();
        let done = judged.iter().zip(&all).all(|(j, (_, c))| {
            c["reason"] == j.reason && reasons.contains(&format!("{}/{}", j.name, j.reason))
        }) && pool["abort"].is_object()
            && reasons.contains(&"broken-query/RolloutAborted".to_string());
        std::future::ready(done.then_some((all, pool)))
    })
    .await;
    let (all, broken) = settled;
    for (j, (status, c)) in judged.iter().zip(&all) {
        let text = format!(
            "{} {}",
            c["message"].as_str().unwrap_or_default(),
            status["lastError"].as_str().unwrap_or_default()
        );
        tally.case(
            j.what,
            c["status"] == "False" && c["reason"] == j.reason && text.contains(j.words),
            format!("{c} lastError={}", status["lastError"]),
        );
    }
    let abort = broken["abort"]["message"].as_str().unwrap_or_default();
    tally.case(
        "a Prometheus query with a syntax error",
        broken["phase"] != "Healthy" && abort.contains("bad_data") && abort.contains("parse error"),
        &broken,
    );

    // 3. The worker API: refused with the documented status, before any body is trusted.
    let too_big = vec![b' '; 2 * 1024 * 1024];
    let worker_cases: Vec<(&str, Answer, &[u16], &str)> = vec![
        (
            "no token",
            post(&actor_url("steady", "ask"), None, "1").await,
            &[401],
            "",
        ),
        (
            "a wrong token",
            post(&actor_url("steady", "ask"), Some("nope"), "1").await,
            &[401],
            "",
        ),
        (
            "a body that is not JSON",
            post(&actor_url("steady", "ask"), Some(TOKEN), "{oops").await,
            &[400],
            "JSON",
        ),
        (
            "a body of 2 MiB",
            post(&actor_url("steady", "tell"), Some(TOKEN), too_big.clone()).await,
            &[413, 0],
            "",
        ),
        (
            "2 MiB without a token",
            post(&actor_url("steady", "tell"), None, too_big.clone()).await,
            &[401, 0],
            "",
        ),
        (
            "an actor that does not exist",
            post(&actor_url("nobody", "tell"), Some(TOKEN), "1").await,
            &[404],
            "nobody",
        ),
        (
            "a name that climbs out of its path",
            post(&actor_url("..%2Fsteady", "tell"), Some(TOKEN), "1").await,
            &[404],
            "",
        ),
        (
            "a paused actor",
            post(&actor_url("sleepy", "tell"), Some(TOKEN), "1").await,
            &[409],
            "",
        ),
        (
            "a failed actor",
            post(&actor_url("teleporter", "ask"), Some(TOKEN), "1").await,
            &[409, 503],
            "",
        ),
        (
            "a counter pushed past i64::MAX",
            post(&actor_url("brim", "ask"), Some(TOKEN), "1").await,
            &[500],
            "counter overflow",
        ),
        (
            "an ask with a timeout that is not a duration",
            post(
                &format!("{}?timeout=forever", actor_url("steady", "ask")),
                Some(TOKEN),
                "1",
            )
            .await,
            &[400],
            "timeout",
        ),
        (
            "a verb the API does not have",
            post(&actor_url("steady", "explode"), Some(TOKEN), "1").await,
            &[404, 405],
            "",
        ),
    ];
    for (what, (code, body), codes, words) in worker_cases {
        tally.case(
            &format!("worker API: {what}"),
            codes.contains(&code) && body.contains(words),
            format!("{code} {body:.200}"),
        );
    }

    // 4. The Alertmanager webhook.
    let hook = format!("{}/v1/alerts", operator_url());
    let token = alert_token();
    let v4 = json!({"version": "4", "status": "firing", "alerts": []}).to_string();
    let hook_cases: Vec<(&str, Answer, &[u16])> = vec![
        ("webhook: no token", post(&hook, None, v4.clone()).await, &[401]),
        (
            "webhook: a wrong token",
            post(&hook, Some("nope"), v4.clone()).await,
            &[401],
        ),
        (
            "webhook: a body that is not JSON",
            post(&hook, Some(&token), "{oops").await,
            &[400],
        ),
        (
            "webhook: a version 3 payload",
            post(
                &hook,
                Some(&token),
                json!({"version": "3", "alerts": []}).to_string(),
            )
            .await,
            &[400],
        ),
        (
            "webhook: 2 MiB without a token",
            post(&hook, None, too_big.clone()).await,
            &[401, 0],
        ),
        (
            "webhook: 2 MiB with the token",
            post(&hook, Some(&token), too_big).await,
            &[413, 0],
        ),
    ];
    for (what, (code, body), codes) in hook_cases {
        tally.case(what, codes.contains(&code), format!("{code} {body:.200}"));
    }

    // Meanwhile: the healthy actor never moved or restarted, and still has its state.
    let steady = env.kubectl_json(&["get", "actor", "steady"])["status"].clone();
    tally.case(
        "the healthy actor stays Running on its worker, same epoch",
        steady["phase"] == "Running"
            && steady["worker"] == worker.as_str()
            && steady["epoch"] == epoch_before,
        &steady,
    );
    let (code, answer) = post(&actor_url("steady", "ask"), Some(TOKEN), r#""get""#).await;
    tally.case(
        "the healthy actor keeps its state",
        code == 200 && answer == r#"{"value":5}"#,
        format!("{code} {answer}"),
    );
    let good = env.kubectl_json(&["get", "actorpool", "good"])["status"].clone();
    tally.case(
        "the healthy pool stays Available",
        condition(&good, "Available")["status"] == "True" && good["phase"] == "Healthy",
        &good,
    );
    let plugin = env.kubectl_troupe(&["status", "good"]);
    tally.case(
        "kubectl troupe status reads the namespace",
        plugin.status.success(),
        String::from_utf8_lossy(&plugin.stderr),
    );
    let listed = env.kubectl(&["get", "actors"]);
    tally.case(
        "kubectl get actors lists every actor",
        listed.status.success() && String::from_utf8_lossy(&listed.stdout).contains("deep"),
        String::from_utf8_lossy(&listed.stderr),
    );

    tally.write_table();
    println!("{} bad-input cases tried", tally.tried.len());
    assert!(
        tally.wrong.is_empty(),
        "{} of {} cases answered wrong:\n{}",
        tally.wrong.len(),
        tally.tried.len(),
        tally.wrong.join("\n\n")
    );
    assert!(tally.tried.len() >= 40, "only {} cases", tally.tried.len());
}
