//! The template of a user's own worker (worker/examples/my-worker, docs/your-own-worker.md),
//! built and run as a pool's worker on the local control plane: the operator deploys it like the
//! default worker, an Actor of its own `rate-limiter` behaviour runs on it and answers asks, a
//! built-in behaviour runs beside it, and a bad config is refused by the behaviour's factory.

mod common;

use std::{path::PathBuf, process::Command, time::Duration};

use common::{TestEnv, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "my-worker-e2e-token";

/// Builds the example's binary (a no-op after `make build`, which builds the whole workspace)
/// and puts it where the node agent's process runtime looks for the image `troupe/my-worker`:
/// `<bin dir>/troupe-my-worker`, the bin dir being the one e2e/cluster.sh gives the node agent.
fn install_my_worker() {
    let repo = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join("target"));
    let out = Command::new("cargo")
        .args(["build", "-q", "-p", "my-worker", "--bin", "my-worker"])
        .current_dir(&repo)
        .output()
        .expect("cargo on PATH");
    assert!(
        out.status.success(),
        "cargo build -p my-worker failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin_dir = std::env::var("TROUPE_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target.join("debug"));
    // Copied to a temporary name and renamed: a pod starting meanwhile never runs half a file.
    let tmp = bin_dir.join(format!(".troupe-my-worker.{}", std::process::id()));
    std::fs::copy(target.join("debug/my-worker"), &tmp).expect("copy my-worker");
    std::fs::rename(&tmp, bin_dir.join("troupe-my-worker")).expect("place troupe-my-worker");
}

fn manifests() -> String {
    let actor = |name: &str, behavior: &str, config: &str| {
        format!(
            "---\napiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {{name: {name}}}\nspec: {{pool: limits, behavior: {behavior}, config: {config}}}\n"
        )
    };
    format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {{name: limits}}\nspec:\n  replicas: 1\n  template:\n    spec:\n      terminationGracePeriodSeconds: 5\n      containers: [{{name: worker, image: troupe/my-worker:0.1.0}}]\n{}{}{}",
        // A fixed allowance (no refill), so that the answers do not depend on timing.
        actor("api-quota", "rate-limiter", "{capacity: 2, refillPerSecond: 0}"),
        actor("hello", "echo", "{}"),
        actor("broken-quota", "rate-limiter", "{capacity: 0}"),
    )
}

#[tokio::test]
async fn a_worker_of_your_own_runs_its_behaviour_beside_the_built_ins_and_answers_asks() {
    let env = TestEnv::new("my-worker").await;
    install_my_worker();
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    let (ok, out) = env.apply(&manifests());
    assert!(ok, "{out}");

    let phases = eventually("api-quota and hello Running, broken-quota Failed", WAIT, || {
        let actors = env.kubectl_json(&["get", "actors"]);
        let phase = |name: &str| {
            actors["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["metadata"]["name"] == name)
                .map(|a| a["status"].clone())
                .unwrap_or(Value::Null)
        };
        let (quota, hello, broken) = (phase("api-quota"), phase("hello"), phase("broken-quota"));
        std::future::ready(
            (quota["phase"] == "Running" && hello["phase"] == "Running" && broken["phase"] == "Failed")
                .then_some((quota, broken)),
        )
    })
    .await;
    let (quota, broken) = phases;
    // The factory's refusal reaches the Actor's status word for word.
    let why = broken["lastError"].as_str().unwrap_or_default();
    assert!(
        why.contains("rate-limiter: config.capacity must be between 1 and 1e9"),
        "{broken}"
    );
    // kubectl shows the custom behaviour like any other.
    let table = env.kubectl_ok(&["get", "actors"]);
    let row = table.lines().find(|l| l.starts_with("api-quota")).unwrap();
    assert!(row.contains("rate-limiter") && row.contains("Running"), "{table}");

    let worker = quota["worker"].as_str().unwrap().to_string();
    let pods = env.pods().await;
    let ip = pods.iter().find(|p| p["name"] == worker.as_str()).unwrap()["ip"]
        .as_str()
        .unwrap()
        .to_string();
    let ask = |actor: &'static str, msg: Value| {
        let url = format!(
            "http://{ip}:8080/v1/namespaces/{}/actors/{actor}/ask",
            env.namespace
        );
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(TOKEN)
                .json(&msg)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    // Capacity 2: two takes allowed, the third refused — the bucket is the actor's own state.
    assert_eq!(
        ask("api-quota", json!({"take": 1})).await,
        (200, json!({"allowed": true, "tokens": 1.0}))
    );
    assert_eq!(
        ask("api-quota", json!({})).await,
        (200, json!({"allowed": true, "tokens": 0.0}))
    );
    assert_eq!(
        ask("api-quota", json!({})).await,
        (200, json!({"allowed": false, "tokens": 0.0}))
    );
    // The built-in echo, registered by the same binary, answers too.
    assert_eq!(ask("hello", json!("hi")).await, (200, json!("hi")));
}
