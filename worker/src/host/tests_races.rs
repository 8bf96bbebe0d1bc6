//! The host under concurrency: the watch of assignments and the host's event loop act on the
//! same actor at the same time (on a multi-threaded runtime, truly in parallel).

use std::collections::HashMap;

use serde_json::json;

use super::tests::{spec, status_becomes};
use super::*;

/// Answers every claim with a win, after a short and varying pause (a real claim is a round
/// trip to the API server), so that wins land at every point of a concurrent re-read.
struct SlowWins(AtomicU64);

#[async_trait::async_trait]
impl Claimer for SlowWins {
    async fn claim(&self, _: &ActorKey, _: u64, _: Option<&str>, _: &RuntimeStatus) -> Claim {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_micros(50 * (n % 7))).await;
        Claim::Won
    }
}

/// A behaviour that does nothing; what counts is how often it is built.
struct Idle;

#[async_trait::async_trait]
impl Behavior for Idle {
    async fn handle(&mut self, _: &Context, v: Value) -> Result<Value, crate::behavior::ActorError> {
        Ok(v)
    }
}

/// A host whose "idle" behaviour counts its builds per actor; a build takes a moment (as a
/// real behaviour reading its config may), which widens any window between two starts.
async fn counting_host() -> (Arc<Host>, Arc<Mutex<HashMap<String, u32>>>) {
    let builds = Arc::new(Mutex::new(HashMap::new()));
    let mut registry = Registry::new();
    let b = builds.clone();
    registry.register("idle", move |init| {
        *b.lock().unwrap().entry(init.name.to_string()).or_insert(0) += 1;
        std::thread::sleep(Duration::from_micros(300));
        Ok(Box::new(Idle))
    });
    let host = Host::start(HostConfig::default(), registry, Metrics::new())
        .await
        .unwrap();
    host.set_claimer(Arc::new(SlowWins(AtomicU64::new(0))));
    (host, builds)
}

fn assignment(resource_version: u32) -> Assignment {
    Assignment {
        spec: spec("idle", json!({})),
        generation: Some(1),
        epoch: 1,
        resource_version: Some(resource_version.to_string()),
        previous: None,
        uid: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_whose_assignment_is_read_again_while_its_claim_lands_starts_once_and_says_running() {
    let (host, builds) = counting_host().await;
    let keys: Vec<_> = (0..150).map(|i| ActorKey::new("ns", format!("a{i}"))).collect();
    // The watch sees each claim's own write (and others'): the same assignment at newer
    // versions, again and again, while the event loop handles the claims' answers.
    let rereads = {
        let (host, keys) = (host.clone(), keys.clone());
        tokio::spawn(async move {
            for rv in 2..40 {
                for key in &keys {
                    host.assign(key.clone(), assignment(rv)).await;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    for key in &keys {
        host.assign(key.clone(), assignment(1)).await;
    }
    rereads.await.unwrap();
    for key in &keys {
        let st = status_becomes(&host, key, ActorPhase::Running, Some("Running")).await;
        assert!(st.claimed, "{key} runs claimed");
    }
    // Anything still settling would show now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stuck: Vec<_> = host
        .snapshot()
        .into_iter()
        .filter(|(_, s)| s.phase != ActorPhase::Running || s.conditions[0].reason != "Running")
        .map(|(k, s)| format!("{k}: {:?} {:?}", s.phase, s.conditions[0]))
        .collect();
    assert!(stuck.is_empty(), "actors that run but do not say so: {stuck:?}");
    let twice: Vec<_> = builds
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, n)| **n != 1)
        .map(|(k, n)| format!("{k}: built {n} times"))
        .collect();
    assert!(twice.is_empty(), "one start per claim: {twice:?}");
}
