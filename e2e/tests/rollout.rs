//! Rollouts on the local control plane, with real workers, a real Prometheus scraping them and a
//! real Alertmanager evaluating Troupe's alert rules: canary promotion, rollback by analysis and
//! by alert, blue-green, an operator restart mid-rollout, manual control and the webhook's
//! answers to bad requests. Each test prints the timings it measured.

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use common::{TestEnv, alert_token, eventually, operator_url, restart_operator};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "rollout-e2e-token";

/// A pool of 2 workers whose template carries `env` (`NAME=value` pairs) and the given rollout
/// settings (YAML lines under `spec:`).
fn pool(name: &str, env: &[(&str, &str)], spec: &str) -> String {
    format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {{name: {name}}}\nspec:\n  replicas: 2\n  template:\n    spec:\n      terminationGracePeriodSeconds: 5\n      containers:\n        - name: worker\n          image: troupe/worker:0.1.0\n          env: {}\n{spec}",
        env_json(env)
    )
}

fn env_json(env: &[(&str, &str)]) -> Value {
    Value::Array(env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect())
}

/// Six `flaky` actors ticking every 100 ms: their ticks are the traffic analysis measures.
fn flaky_actors(pool: &str) -> String {
    (0..6)
        .map(|i| {
            format!(
                "apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {{name: a{i}}}\nspec: {{pool: {pool}, behavior: flaky, schedule: every 100ms}}\n---\n"
            )
        })
        .collect()
}

fn setup(env: &TestEnv) {
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
}

fn status(env: &TestEnv, pool: &str) -> Value {
    env.kubectl_json(&["get", "actorpool", pool])["status"].clone()
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// name → revision of every actor Running on a worker that its label and status agree on.
fn running_on(env: &TestEnv) -> BTreeMap<String, String> {
    env.kubectl_json(&["get", "actors"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["status"]["phase"] == "Running"
                && a["status"]["worker"] == a["metadata"]["labels"]["troupe.dev/worker"]
        })
        .map(|a| (s(&a["metadata"]["name"]), s(&a["status"]["revision"])))
        .collect()
}

/// Worker pod name of every actor.
fn workers_of_actors(env: &TestEnv) -> BTreeMap<String, String> {
    env.kubectl_json(&["get", "actors"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (s(&a["metadata"]["name"]), s(&a["status"]["worker"])))
        .collect()
}

async fn all_on(env: &TestEnv, revision: &str) {
    eventually(
        &format!("all 6 actors Running on revision {revision}"),
        WAIT,
        || {
            let r = running_on(env);
            std::future::ready((r.len() == 6 && r.values().all(|v| v == revision)).then_some(()))
        },
    )
    .await;
}

async fn stable_after_start(env: &TestEnv, pool_name: &str) -> String {
    let stable = eventually("the first revision is stable", WAIT, || {
        let st = status(env, pool_name);
        std::future::ready(st["stableRevision"].as_str().map(str::to_string))
    })
    .await;
    all_on(env, &stable).await;
    stable
}

fn deployment_replicas(env: &TestEnv, pool: &str, revision: &str) -> Option<i64> {
    let d = env.kubectl(&["get", "deployment", &format!("{pool}-{revision}"), "-o", "json"]);
    if !d.status.success() {
        return None;
    }
    serde_json::from_slice::<Value>(&d.stdout).ok()?["spec"]["replicas"].as_i64()
}

fn pool_events(env: &TestEnv) -> Vec<String> {
    env.kubectl_json(&["get", "events"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["involvedObject"]["kind"] == "ActorPool")
        .map(|e| s(&e["reason"]))
        .collect()
}

fn secs_between(a: &Value, b: &Value) -> f64 {
    let t = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    (t(b) - t(a)).num_milliseconds() as f64 / 1000.0
}

const GOOD: &[(&str, &str)] = &[("TROUPE_FLAKY_FAILURE_RATE", "0")];

#[tokio::test]
async fn a_good_canary_is_promoted_through_all_its_steps_judged_by_prometheus() {
    let env = TestEnv::new("ro-good").await;
    setup(&env);
    let spec = r#"  strategy:
    canary:
      scaleDownDelay: 5s
      steps: [{setWeight: 50}, {pause: {duration: 4s}}, {analysis: {count: 2}}, {setWeight: 100}]
  analysis:
    interval: 2s
    failureLimit: 0
    inconclusiveLimit: 10
    metrics:
      - name: worker-errors
        template: ErrorRate
      - name: prometheus-errors
        provider:
          prometheus:
            query: (sum(rate(troupe_worker_messages_total{namespace="{{namespace}}",pool="{{pool}}",revision="{{revision}}",outcome="error"}[5s])) or vector(0)) / sum(rate(troupe_worker_messages_total{namespace="{{namespace}}",pool="{{pool}}",revision="{{revision}}"}[5s]))
        threshold: {max: 0.05}
"#;
    assert!(env.apply(&pool("p", GOOD, spec)).0);
    assert!(env.apply(&flaky_actors("p")).0);
    let old = stable_after_start(&env, "p").await;

    env.set_worker_env("p", &[("TROUPE_FLAKY_FAILURE_RATE", "0.0")]);
    let new = eventually("a canary revision", WAIT, || {
        std::future::ready(status(&env, "p")["canaryRevision"].as_str().map(str::to_string))
    })
    .await;
    assert_ne!(new, old);
    // At weight 50, half the actors run on the canary: the split is by placement.
    eventually(
        "3 actors on the canary and 3 on stable at weight 50",
        WAIT,
        || {
            let st = status(&env, "p");
            let r = running_on(&env);
            let on_new = r.values().filter(|v| **v == new).count();
            let on_old = r.values().filter(|v| **v == old).count();
            std::future::ready((st["canaryWeight"] == 50 && on_new == 3 && on_old == 3).then_some(()))
        },
    )
    .await;
    let st = eventually("promotion", WAIT, || {
        let st = status(&env, "p");
        std::future::ready((st["stableRevision"] == new.as_str()).then_some(st))
    })
    .await;
    assert_eq!(st["previousRevision"], old.as_str());
    assert!(st["canaryRevision"].is_null());
    assert!(st["abort"].is_null());
    all_on(&env, &new).await;
    eventually("phase Healthy", WAIT, || {
        std::future::ready((status(&env, "p")["phase"] == "Healthy").then_some(()))
    })
    .await;
    let events = pool_events(&env);
    for reason in ["RolloutStarted", "Promoted"] {
        assert!(
            events.iter().any(|e| e == reason),
            "no {reason} Event in {events:?}"
        );
    }
    // The old revision's workers go after the scale-down delay; its Deployment stays (at zero)
    // for the rollback window.
    eventually("the old revision scaled to zero", WAIT, || {
        std::future::ready((deployment_replicas(&env, "p", &old) == Some(0)).then_some(()))
    })
    .await;
}

#[tokio::test]
async fn a_bad_canary_is_rolled_back_by_prometheus_analysis_without_anyone_touching_it() {
    let env = TestEnv::new("ro-bad").await;
    setup(&env);
    // TROUPE_E2E_ANALYSIS_INTERVAL=10s reproduces the benchmark figure in docs/benchmarks.md.
    let interval = std::env::var("TROUPE_E2E_ANALYSIS_INTERVAL").unwrap_or_else(|_| "2s".into());
    let spec = format!(
        r#"  strategy:
    canary:
      scaleDownDelay: 5s
      steps: [{{setWeight: 50}}, {{analysis: {{count: 3}}}}, {{setWeight: 100}}]
  analysis:
    interval: {interval}
    failureLimit: 0
    inconclusiveLimit: 10
    metrics:
      - name: prometheus-error-rate
        provider:
          prometheus:
            query: (sum(rate(troupe_worker_messages_total{{namespace="{{{{namespace}}}}",pool="{{{{pool}}}}",revision="{{{{revision}}}}",outcome="error"}}[5s])) or vector(0)) / sum(rate(troupe_worker_messages_total{{namespace="{{{{namespace}}}}",pool="{{{{pool}}}}",revision="{{{{revision}}}}"}}[5s]))
        threshold: {{max: 0.05}}
"#
    );
    assert!(env.apply(&pool("p", GOOD, &spec)).0);
    assert!(env.apply(&flaky_actors("p")).0);
    let old = stable_after_start(&env, "p").await;

    env.set_worker_env("p", &[("TROUPE_FLAKY_FAILURE_RATE", "1")]);
    // The breach starts when the first actor runs on the bad revision.
    // (On a slow machine the abort may come before a poll sees that: then it counts from now.)
    let breach = eventually("an actor running on the canary", WAIT, || {
        let r = running_on(&env);
        let aborted = status(&env, "p")["abort"].is_object();
        std::future::ready((aborted || r.values().any(|v| *v != old)).then(Instant::now))
    })
    .await;
    let st = eventually("the rollout aborted by analysis", WAIT, || {
        let st = status(&env, "p");
        std::future::ready((st["abort"]["kind"] == "Analysis").then_some(st))
    })
    .await;
    let decided = Instant::now();
    let bad = s(&st["abort"]["revision"]);
    assert_ne!(bad, old);
    assert_eq!(st["abort"]["metric"], "prometheus-error-rate");
    assert!(st["abort"]["value"].as_f64().unwrap() > 0.05, "{}", st["abort"]);
    assert_eq!(st["stableRevision"], old.as_str());
    all_on(&env, &old).await;
    let (back, moved) = (breach.elapsed().as_secs_f64(), decided.elapsed().as_secs_f64());
    let st = eventually("phase Degraded with the reason", WAIT, || {
        let st = status(&env, "p");
        std::future::ready((st["phase"] == "Degraded").then_some(st))
    })
    .await;
    let progressing = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap();
    assert_eq!(
        (progressing["status"].as_str(), progressing["reason"].as_str()),
        (Some("False"), Some("RolloutAborted"))
    );
    assert!(s(&progressing["message"]).contains("prometheus-error-rate"));
    assert!(pool_events(&env).iter().any(|e| e == "RolloutAborted"));
    eventually("the bad revision scaled to zero after the delay", WAIT, || {
        std::future::ready((deployment_replicas(&env, "p", &bad) == Some(0)).then_some(()))
    })
    .await;
    // It stays rolled back: the template did not change.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(running_on(&env).values().all(|v| *v == old));
    assert_eq!(status(&env, "p")["phase"], "Degraded");
    eprintln!(
        "FIGURE rollback-by-analysis interval={interval}: breach to every actor on stable {back:.1}s (abort seen to all moved {moved:.1}s); first failed measurement to decision {:.0}s",
        secs_between(&st["abort"]["detectedAt"], &st["abort"]["time"]),
    );
}

async fn operator_metrics(http: &reqwest::Client) -> String {
    let url = format!("{}/metrics", operator_url());
    http.get(url).send().await.unwrap().text().await.unwrap()
}

fn operator_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_alertmanager_alert_rolls_back_a_revision_promoted_within_the_window() {
    let env = TestEnv::new("ro-alert").await;
    setup(&env);
    let spec = r#"  strategy:
    canary:
      scaleDownDelay: 2m
      steps: [{setWeight: 100}]
  rollback:
    onAlerts: true
    matchLabels: {severity: critical}
    window: 5m
"#;
    assert!(env.apply(&pool("p", GOOD, spec)).0);
    assert!(env.apply(&flaky_actors("p")).0);
    let old = stable_after_start(&env, "p").await;
    let http = reqwest::Client::new();
    let metrics_before = operator_metrics(&http).await;

    // The new revision behaves for 10 s, long enough to be promoted, then fails everything.
    env.set_worker_env(
        "p",
        &[
            ("TROUPE_FLAKY_FAILURE_RATE", "1"),
            ("TROUPE_FLAKY_FAIL_AFTER", "10s"),
        ],
    );
    let new = eventually("the new revision promoted", WAIT, || {
        let st = status(&env, "p");
        let stable = s(&st["stableRevision"]);
        std::future::ready((stable != old && !stable.is_empty()).then_some(stable))
    })
    .await;
    assert!(status(&env, "p")["abort"].is_null(), "promoted before the alert");
    // Prometheus sees the errors, Alertmanager sends TroupeErrorRateHigh to the operator.
    let st = eventually("a rollback by alert", WAIT, || {
        let st = status(&env, "p");
        std::future::ready((st["abort"]["kind"] == "Alert").then_some(st))
    })
    .await;
    let decided = Instant::now();
    assert_eq!(st["abort"]["alert"], "TroupeErrorRateHigh");
    assert_eq!(st["abort"]["revision"], new.as_str());
    assert_eq!(st["stableRevision"], old.as_str());
    all_on(&env, &old).await;
    let moved = decided.elapsed().as_secs_f64();
    eventually("the rollback recorded as complete", WAIT, || {
        let st = status(&env, "p");
        std::future::ready(st["abort"]["completedAt"].is_string().then_some(st))
    })
    .await;
    assert!(pool_events(&env).iter().any(|e| e == "RolledBack"));
    let metrics = operator_metrics(&http).await;
    let (sum, count) = (
        operator_metric(&metrics, "troupe_operator_alert_decision_seconds_sum")
            - operator_metric(&metrics_before, "troupe_operator_alert_decision_seconds_sum"),
        operator_metric(&metrics, "troupe_operator_alert_decision_seconds_count")
            - operator_metric(&metrics_before, "troupe_operator_alert_decision_seconds_count"),
    );
    assert!(count >= 1.0, "the decision was timed");
    eprintln!(
        "FIGURE rollback-by-alert: alert receipt to decision {:.3}s (mean of {count}); decision seen to every actor moved {moved:.1}s",
        sum / count,
    );
}

#[tokio::test]
async fn blue_green_switches_every_actor_and_rolls_back_instantly_to_the_workers_kept_up() {
    let env = TestEnv::new("ro-bluegreen").await;
    setup(&env);
    let spec = r#"  strategy:
    blueGreen:
      autoPromotion: true
      scaleDownDelay: 2m
      postPromotionAnalysis: true
  analysis:
    interval: 2s
    failureLimit: 0
    inconclusiveLimit: 10
    metrics:
      - name: errors
        template: ErrorRate
"#;
    assert!(env.apply(&pool("p", GOOD, spec)).0);
    assert!(env.apply(&flaky_actors("p")).0);
    let old = stable_after_start(&env, "p").await;
    // Both workers of the first revision: the actors may all start on the first one up and
    // spread when the second comes (a rollback may then use either).
    let old_workers = eventually("the actors spread over both first workers", WAIT, || {
        let w = workers_of_actors(&env);
        let distinct: std::collections::BTreeSet<&String> = w.values().collect();
        std::future::ready((distinct.len() == 2).then_some(w.clone()))
    })
    .await;

    env.set_worker_env("p", &[("TROUPE_FLAKY_FAILURE_RATE", "1")]);
    // The new revision comes up in full before a single actor moves.
    let new = eventually("the preview revision", WAIT, || {
        std::future::ready(status(&env, "p")["canaryRevision"].as_str().map(str::to_string))
    })
    .await;
    // It is promoted, then post-promotion analysis fails (the errors start with the switch), and
    // every actor goes back to the old workers, which stayed up. Promotion and rollback can come
    // within a second of each other, so the promotion is checked in the Events afterwards.
    let st = eventually("rolled back by post-promotion analysis", WAIT, || {
        let st = status(&env, "p");
        std::future::ready(
            (st["abort"]["kind"] == "Analysis" && st["stableRevision"] == old.as_str()).then_some(st),
        )
    })
    .await;
    let decided = Instant::now();
    assert_eq!(st["abort"]["revision"], new.as_str());
    all_on(&env, &old).await;
    let moved = decided.elapsed().as_secs_f64();
    let events = pool_events(&env);
    for reason in ["Promoted", "RolledBack"] {
        assert!(
            events.iter().any(|e| e == reason),
            "no {reason} Event in {events:?}"
        );
    }
    assert_eq!(
        deployment_replicas(&env, "p", &new),
        Some(2),
        "the new revision ran in full"
    );
    eventually("the rollback complete", WAIT, || {
        let st = status(&env, "p");
        std::future::ready(st["abort"]["completedAt"].is_string().then_some(st))
    })
    .await;
    let back: std::collections::BTreeSet<String> = workers_of_actors(&env).into_values().collect();
    let before: std::collections::BTreeSet<String> = old_workers.into_values().collect();
    assert!(
        back.is_subset(&before),
        "rolled back onto the same, kept worker pods: {back:?} vs {before:?}"
    );
    eprintln!(
        "FIGURE blue-green rollback: decision seen to every actor back on the kept workers {moved:.1}s"
    );
}

#[tokio::test]
async fn a_rollout_survives_an_operator_restart_and_obeys_abort_retry_and_promote() {
    let env = TestEnv::new("ro-restart").await;
    setup(&env);
    let spec = r#"  strategy:
    canary:
      scaleDownDelay: 5s
      steps: [{setWeight: 50}, {pause: {}}, {setWeight: 100}]
"#;
    assert!(env.apply(&pool("p", GOOD, spec)).0);
    assert!(env.apply(&flaky_actors("p")).0);
    let old = stable_after_start(&env, "p").await;
    env.set_worker_env("p", &[("TROUPE_FLAKY_FAILURE_RATE", "0.0")]);
    let paused = || async {
        eventually("paused at step 1 with 3 actors on the canary", WAIT, || {
            let st = status(&env, "p");
            let r = running_on(&env);
            let on_old = r.values().filter(|v| **v == old).count();
            let ok = st["phase"] == "Paused" && st["currentStepIndex"] == 1 && r.len() == 6 && on_old == 3;
            std::future::ready(ok.then_some(st))
        })
        .await
    };
    let st = paused().await;
    let new = s(&st["canaryRevision"]);
    let before = workers_of_actors(&env);

    restart_operator();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let st = status(&env, "p");
    assert_eq!(
        (st["phase"].as_str(), st["currentStepIndex"].as_i64()),
        (Some("Paused"), Some(1))
    );
    assert_eq!(
        workers_of_actors(&env),
        before,
        "no actor moved across the restart"
    );

    // Abort by annotation, as plain kubectl does it.
    env.kubectl_ok(&["annotate", "actorpool", "p", "troupe.dev/abort=now"]);
    all_on(&env, &old).await;
    let st = status(&env, "p");
    assert_eq!(
        (st["abort"]["kind"].as_str(), st["abort"]["revision"].as_str()),
        (Some("Manual"), Some(new.as_str()))
    );
    eventually("the abort annotation removed once acted on", WAIT, || {
        let p = env.kubectl_json(&["get", "actorpool", "p"]);
        std::future::ready(
            p["metadata"]["annotations"]["troupe.dev/abort"]
                .is_null()
                .then_some(()),
        )
    })
    .await;

    // Retry and promote with the kubectl plugin.
    let plugin = |verb: &str| {
        let out = env.kubectl_troupe(&[verb, "p"]);
        assert!(
            out.status.success(),
            "kubectl troupe {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(plugin("retry").contains("retry requested"));
    paused().await;
    let shown = plugin("status");
    assert!(
        shown.contains("Phase:     Paused") && shown.contains("▶ 1: pause (until promoted)"),
        "{shown}"
    );
    plugin("promote");
    eventually("promoted", WAIT, || {
        std::future::ready((status(&env, "p")["stableRevision"] == new.as_str()).then_some(()))
    })
    .await;
    all_on(&env, &new).await;
}

#[tokio::test]
async fn the_alert_webhook_wants_its_token_and_a_version_4_payload() {
    let url = format!("{}/v1/alerts", operator_url());
    let http = reqwest::Client::new();
    let post = |body: String, token: Option<String>| {
        let mut r = http
            .post(&url)
            .body(body)
            .header("content-type", "application/json");
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.send()
    };
    let resolved = json!({"version": "4", "status": "resolved", "alerts": [
        {"status": "resolved", "labels": {"alertname": "TroupeErrorRateHigh", "namespace": "nowhere", "pool": "p"}}
    ]})
    .to_string();
    assert_eq!(post(resolved.clone(), None).await.unwrap().status(), 401);
    assert_eq!(
        post(resolved.clone(), Some("wrong".into()))
            .await
            .unwrap()
            .status(),
        401
    );
    let bad = post("{not json".into(), Some(alert_token())).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("not an Alertmanager webhook payload")
    );
    let v3 = post(
        json!({"version": "3", "alerts": []}).to_string(),
        Some(alert_token()),
    )
    .await
    .unwrap();
    assert_eq!(v3.status(), 400);
    assert_eq!(post(resolved, Some(alert_token())).await.unwrap().status(), 200);
}
