//! kubectl works against the local control plane as it does against a cluster.

mod common;

use std::{io::BufRead, process::Stdio, time::Duration};

use common::{TestEnv, eventually};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/examples");

#[tokio::test]
async fn applying_the_examples_creates_pools_and_actors_that_kubectl_lists() {
    let env = TestEnv::new("kubectl-examples").await;
    for file in ["counter.yaml", "canary.yaml", "pipeline.yaml"] {
        env.kubectl_ok(&["apply", "-f", &format!("{EXAMPLES}/{file}")]);
    }
    let actors = env.kubectl_ok(&["get", "actors"]);
    let header: Vec<&str> = actors.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "POOL", "BEHAVIOR", "PHASE", "WORKER", "REVISION", "RESTARTS", "AGE"
        ]
    );
    let visits = actors
        .lines()
        .find(|l| l.starts_with("visits "))
        .expect("visits listed");
    assert!(
        visits.contains("counters") && visits.contains("counter"),
        "{visits}"
    );
    assert_eq!(actors.lines().count(), 1 + 3 + 2 + 3);

    let pools = env.kubectl_ok(&["get", "actorpools"]);
    let header: Vec<&str> = pools.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "WORKERS", "READY", "ACTORS", "PHASE", "STABLE", "CANARY", "WEIGHT", "AGE"
        ]
    );

    // The category lists both kinds; short names work.
    let troupe = env.kubectl_ok(&["get", "troupe", "-o", "name"]);
    assert!(troupe.contains("actorpool.troupe.dev/payments") && troupe.contains("actor.troupe.dev/generate"));
    assert_eq!(env.kubectl_ok(&["get", "act", "-o", "name"]).lines().count(), 8);
    assert_eq!(env.kubectl_ok(&["get", "pool", "-o", "name"]).lines().count(), 3);
}

#[tokio::test]
async fn explain_shows_the_field_documentation() {
    let env = TestEnv::new("kubectl-explain").await;
    let out = env.kubectl_ok(&["explain", "actor.spec.pool"]);
    assert!(out.contains("cannot be changed once set"), "{out}");
    let out = env.kubectl_ok(&["explain", "actorpool.spec.strategy.canary.steps"]);
    assert!(out.contains("setWeight"), "{out}");
}

#[tokio::test]
async fn patch_scale_describe_and_delete_round_trip() {
    let env = TestEnv::new("kubectl-roundtrip").await;
    env.kubectl_ok(&["apply", "-f", &format!("{EXAMPLES}/counter.yaml")]);

    env.kubectl_ok(&[
        "patch",
        "actor",
        "visits",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ]);
    let visits = env.kubectl_json(&["get", "actor", "visits"]);
    assert_eq!(visits["spec"]["paused"], true);

    env.kubectl_ok(&["scale", "actorpool", "counters", "--replicas", "5"]);
    assert_eq!(
        env.kubectl_json(&["get", "actorpool", "counters"])["spec"]["replicas"],
        5
    );

    // Server-side apply under a named field manager records who owns what.
    let ssa = "apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {name: ssa}\nspec: {pool: counters, behavior: echo}\n";
    let out = env.kubectl_stdin(
        &["apply", "--server-side", "--field-manager", "e2e", "-f", "-"],
        Some(ssa),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let managers = env.kubectl_json(&["get", "actor", "ssa", "--show-managed-fields"]);
    assert!(
        managers["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["manager"] == "e2e")
    );

    let described = env.kubectl_ok(&["describe", "actor", "visits"]);
    assert!(
        described.contains("Pool:") && described.contains("counters"),
        "{described}"
    );

    env.kubectl_ok(&["delete", "actor", "visits"]);
    let out = env.kubectl(&["get", "actor", "visits"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

#[tokio::test]
async fn describe_shows_events_recorded_through_events_k8s_io() {
    let env = TestEnv::new("kubectl-describe-events").await;
    env.kubectl_ok(&["apply", "-f", &format!("{EXAMPLES}/counter.yaml")]);
    let actor = env.kubectl_json(&["get", "actor", "greeter"]);
    let uid = actor["metadata"]["uid"].as_str().unwrap();
    let event = format!(
        r#"apiVersion: events.k8s.io/v1
kind: Event
metadata: {{name: greeter.e2e}}
eventTime: "2026-01-01T00:00:00.000000Z"
reason: Placed
note: placed on worker counters-abc
type: Normal
action: Place
reportingController: troupe.dev/operator
reportingInstance: e2e
regarding: {{apiVersion: troupe.dev/v1alpha1, kind: Actor, name: greeter, namespace: {ns}, uid: {uid}}}
"#,
        ns = env.namespace
    );
    let (ok, out) = env.apply(&event);
    assert!(ok, "{out}");
    let described = env.kubectl_ok(&["describe", "actor", "greeter"]);
    assert!(
        described.contains("Placed") && described.contains("placed on worker counters-abc"),
        "{described}"
    );
    let listed = env.kubectl_ok(&["get", "events"]);
    assert!(listed.contains("placed on worker counters-abc"), "{listed}");
}

#[tokio::test]
async fn a_watch_sees_create_update_and_delete() {
    let env = TestEnv::new("kubectl-watch").await;
    let mut child = std::process::Command::new("kubectl")
        .env("KUBECONFIG", std::env::var("TROUPE_KUBECONFIG").unwrap())
        .args([
            "get",
            "actors",
            "-w",
            "--output-watch-events",
            "-o",
            "custom-columns=EVENT:.type,NAME:.object.metadata.name,PAUSED:.object.spec.paused",
        ])
        .args(["--namespace", &env.namespace])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let actor = "apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {name: watched}\nspec: {pool: p, behavior: echo}\n";
    assert!(env.apply(actor).0);
    env.kubectl_ok(&[
        "patch",
        "actor",
        "watched",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ]);
    env.kubectl_ok(&["delete", "actor", "watched"]);
    let mut seen = Vec::new();
    eventually(
        "ADDED, MODIFIED (paused) and DELETED watch events",
        Duration::from_secs(15),
        || {
            while let Ok(line) = rx.try_recv() {
                seen.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            let done = seen.iter().any(|l| l == "DELETED watched true");
            std::future::ready(done.then_some(()))
        },
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains(&"ADDED watched false".to_string()), "{seen:?}");
    assert!(seen.contains(&"MODIFIED watched true".to_string()), "{seen:?}");
}

/// `kubectl troupe ARGS`, its stdout; panics with its stderr on failure.
fn troupe_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = env.kubectl_troupe(args);
    assert!(
        out.status.success(),
        "kubectl troupe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn the_plugin_pauses_resumes_triggers_and_tells_and_asks_an_actor_through_a_worker() {
    let env = TestEnv::new("kubectl-plugin-actor").await;
    env.secret("troupe-worker-token", &[("token", "kubectl-plugin-token")]);
    env.kubectl_ok(&["apply", "-f", &format!("{EXAMPLES}/counter.yaml")]);
    let wait = Duration::from_secs(90);
    let phase = |name: &str| env.kubectl_json(&["get", "actor", name])["status"]["phase"].clone();
    eventually("visits Running", wait, || {
        std::future::ready((phase("visits") == "Running").then_some(()))
    })
    .await;

    // Ask answers on stdout as the worker wrote it; tell is accepted; the count adds up.
    let asked = std::time::Instant::now();
    let answer = troupe_ok(&env, &["ask", "visits", r#"{"add": 2}"#]);
    eprintln!(
        "kubectl troupe ask round trip (process included): {:?}",
        asked.elapsed()
    );
    assert_eq!(answer.trim(), r#"{"value":2}"#);
    assert!(troupe_ok(&env, &["tell", "visits", "3"]).contains("message accepted (HTTP 202)"));
    eventually("the told 3 counted", wait, || {
        let a = troupe_ok(&env, &["ask", "visits", "null"]);
        std::future::ready((a.trim() == r#"{"value":5}"#).then_some(()))
    })
    .await;

    // Not JSON: refused before anything is sent.
    let out = env.kubectl_troupe(&["ask", "visits", "{add: 1}"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));

    // Pause sets spec.paused; the worker then refuses messages, and the plugin says why.
    assert!(troupe_ok(&env, &["pause", "visits"]).contains("actor.troupe.dev/visits paused"));
    assert_eq!(
        env.kubectl_json(&["get", "actor", "visits"])["spec"]["paused"],
        true
    );
    eventually("visits Paused", wait, || {
        std::future::ready((phase("visits") == "Paused").then_some(()))
    })
    .await;
    let out = env.kubectl_troupe(&["ask", "visits", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("answered 409"), "{err}");
    assert!(
        !err.contains("kubectl-plugin-token"),
        "the token is never printed: {err}"
    );

    troupe_ok(&env, &["resume", "visits"]);
    assert_eq!(
        env.kubectl_json(&["get", "actor", "visits"])["spec"]["paused"],
        false
    );
    eventually("visits Running again", wait, || {
        std::future::ready((phase("visits") == "Running").then_some(()))
    })
    .await;

    assert!(troupe_ok(&env, &["trigger", "visits"]).contains("triggered"));
    let trigger = env.kubectl_json(&["get", "actor", "visits"])["spec"]["trigger"].clone();
    assert!(trigger.is_string(), "spec.trigger set: {trigger}");

    // An actor that does not exist: the API server's words.
    let out = env.kubectl_troupe(&["pause", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}
