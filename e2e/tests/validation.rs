//! What the schema enforces beyond refusing bad manifests (those are tried in `bad_input.rs`,
//! beside a healthy pool): a pool that cannot change, and good manifests accepted with defaults.

mod common;

use common::{
    TestEnv,
    bad_manifests::{actor, pool},
};

#[tokio::test]
async fn the_pool_of_an_actor_cannot_be_changed() {
    let env = TestEnv::new("validation-immutable-pool").await;
    assert!(env.apply(&actor("  pool: first\n  behavior: echo\n")).0);
    let out = env.kubectl(&[
        "patch",
        "actor",
        "bad",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"pool":"second"}}"#,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.pool is immutable: delete and re-create the Actor to move it to another pool"),
        "{err}"
    );
    assert_eq!(
        env.kubectl_json(&["get", "actor", "bad"])["spec"]["pool"],
        "first"
    );
}

#[tokio::test]
async fn good_manifests_beside_bad_ones_are_accepted_with_defaults_filled_in() {
    let env = TestEnv::new("validation-defaults").await;
    let (ok, out) = env.apply(&pool("  strategy:\n    canary:\n      steps: [{setWeight: 10}, {pause: {}}, {analysis: {}}, {setWeight: 100}]\n"));
    assert!(ok, "{out}");
    let p = env.kubectl_json(&["get", "actorpool", "bad"]);
    assert_eq!(p["spec"]["replicas"], 1);
    assert_eq!(p["spec"]["actorsPerWorker"], 1000);
    assert_eq!(p["spec"]["mailbox"]["whenFull"], "Reject");
    assert_eq!(p["spec"]["strategy"]["canary"]["scaleDownDelay"], "30s");
    let (ok, out) = env.apply(&actor("  pool: bad\n  behavior: echo\n  schedule: every 30s\n"));
    assert!(ok, "{out}");
    let a = env.kubectl_json(&["get", "actor", "bad"]);
    assert_eq!(a["spec"]["restartPolicy"]["policy"], "Always");
    assert_eq!(a["spec"]["restartPolicy"]["backoff"]["max"], "1m");
}
