//! The host's behaviour, driven directly (no Kubernetes).

use serde_json::json;
use troupe_crds::{CircuitBreakerSpec, RestartPolicy, RestartPolicySpec};

use super::*;
use crate::{builtin, lease_clock::BootInstant};

pub(super) fn spec(behavior: &str, config: Value) -> ActorSpec {
    ActorSpec {
        pool: "p".into(),
        behavior: behavior.into(),
        config: config
            .as_object()
            .cloned()
            .map(troupe_crds::ActorConfig::from_map),
        schedule: None,
        paused: false,
        trigger: None,
        restart_policy: RestartPolicySpec::default(),
        circuit_breaker: None,
        journal: None,
    }
}

pub(super) async fn host() -> Arc<Host> {
    Host::start(HostConfig::default(), builtin::registry(), Metrics::new())
        .await
        .unwrap()
}

pub(super) async fn phase_becomes(host: &Host, key: &ActorKey, phase: ActorPhase) -> RuntimeStatus {
    status_becomes(host, key, phase, None).await
}

/// Waits for the actor's phase, and the Ready condition's reason when given.
pub(super) async fn status_becomes(
    host: &Host,
    key: &ActorKey,
    phase: ActorPhase,
    reason: Option<&str>,
) -> RuntimeStatus {
    for _ in 0..300 {
        if let Some((_, s)) = host.snapshot().into_iter().find(|(k, _)| k == key)
            && s.phase == phase
            && reason.is_none_or(|r| s.conditions[0].reason == r)
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{key} never became {phase:?} ({reason:?}): {:?}", host.snapshot());
}

#[tokio::test]
async fn an_assigned_actor_runs_and_answers_asks_with_its_state() {
    let host = host().await;
    let key = ActorKey::new("ns", "c");
    host.upsert(key.clone(), spec("counter", json!({"start": 40})), Some(1))
        .await;
    host.tell(&key, json!(1)).await.unwrap();
    let v = host.ask(&key, json!(1), Duration::from_secs(1)).await.unwrap();
    assert_eq!(v, json!({"value": 42}));
    let s = phase_becomes(&host, &key, ActorPhase::Running).await;
    assert_eq!(s.messages_processed, 2);
    assert_eq!(s.observed_generation, Some(1));
}

#[tokio::test]
async fn a_config_nested_too_deep_fails_that_actor_alone_with_the_reason() {
    let host = host().await;
    let deep = format!("{}1{}", "{\"a\":".repeat(500), "}".repeat(500));
    let mut bad = spec("echo", json!({}));
    bad.config = Some(serde_json::from_str(&deep).unwrap());
    let (bad_key, good_key) = (ActorKey::new("ns", "deep"), ActorKey::new("ns", "fine"));
    host.upsert(bad_key.clone(), bad, Some(1)).await;
    host.upsert(good_key.clone(), spec("counter", json!({"start": 1})), Some(1))
        .await;
    let s = phase_becomes(&host, &bad_key, ActorPhase::Failed).await;
    assert_eq!(s.conditions[0].reason, "InvalidConfig");
    assert!(s.last_error.unwrap().contains("500 levels deep"));
    phase_becomes(&host, &good_key, ActorPhase::Running).await;
}

#[tokio::test]
async fn an_unknown_behavior_fails_with_a_clear_reason() {
    let host = host().await;
    let key = ActorKey::new("ns", "x");
    host.upsert(key.clone(), spec("nope", json!({})), Some(1)).await;
    let s = phase_becomes(&host, &key, ActorPhase::Failed).await;
    assert_eq!(s.conditions[0].reason, "UnknownBehavior");
    assert!(s.last_error.unwrap().contains("this worker knows"));
    assert!(matches!(
        host.tell(&key, json!(1)).await,
        Err(DeliveryError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn a_crashing_actor_is_restarted_until_its_restart_limit() {
    let host = host().await;
    let key = ActorKey::new("ns", "crash");
    let mut s = spec("flaky", json!({"panicRate": 1.0}));
    s.restart_policy = RestartPolicySpec {
        policy: RestartPolicy::OnFailure,
        max_restarts: 2,
        window: "1m".into(),
        ..Default::default()
    };
    s.restart_policy.backoff.initial = "10ms".into();
    s.restart_policy.backoff.max = "20ms".into();
    host.upsert(key.clone(), s, Some(1)).await;
    for _ in 0..3 {
        let _ = host.tell(&key, json!(1)).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let st = phase_becomes(&host, &key, ActorPhase::Failed).await;
    assert_eq!(st.restarts, 2);
    assert_eq!(st.conditions[0].reason, "RestartLimitExceeded");
    assert!(st.last_error.unwrap().contains("crashed"));
}

#[tokio::test]
async fn the_circuit_breaker_pauses_the_actor_and_an_edit_closes_it() {
    let host = host().await;
    let key = ActorKey::new("ns", "cb");
    let mut s = spec("flaky", json!({"failureRate": 1.0}));
    s.circuit_breaker = Some(CircuitBreakerSpec {
        consecutive_failures: 3,
    });
    host.upsert(key.clone(), s.clone(), Some(1)).await;
    for _ in 0..3 {
        let _ = host.ask(&key, json!(1), Duration::from_secs(1)).await;
    }
    let st = phase_becomes(&host, &key, ActorPhase::Paused).await;
    let circuit = st.conditions.iter().find(|c| c.type_ == "CircuitOpen").unwrap();
    assert!(circuit.status);
    assert!(matches!(
        host.tell(&key, json!(1)).await,
        Err(DeliveryError::Paused(_))
    ));
    s.config = json!({"failureRate": 0.0})
        .as_object()
        .cloned()
        .map(troupe_crds::ActorConfig::from_map);
    host.upsert(key.clone(), s, Some(2)).await;
    phase_becomes(&host, &key, ActorPhase::Running).await;
    assert_eq!(
        host.ask(&key, json!("ok"), Duration::from_secs(1)).await.unwrap(),
        json!("ok")
    );
}

#[tokio::test]
async fn the_mailbox_depth_of_a_behaviour_whose_actors_all_left_reads_zero() {
    let host = host().await;
    let key = ActorKey::new("ns", "slow");
    host.upsert(key.clone(), spec("counter", json!({"latencyMs": 100})), Some(1))
        .await;
    host.tell(&key, json!(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    for _ in 0..3 {
        host.tell(&key, json!(1)).await.unwrap();
    }
    let depth = || {
        let labels = ["local", "dev", "counter"];
        host.metrics().mailbox_depth.with_label_values(&labels).get()
    };
    host.snapshot();
    assert_eq!(depth(), 3, "three wait while the first is handled");
    host.remove(&key, None).await;
    host.snapshot();
    assert_eq!(depth(), 0, "nothing waits on this worker any more");
}

#[tokio::test]
async fn pausing_stops_the_actor_and_refuses_messages_until_resumed() {
    let host = host().await;
    let key = ActorKey::new("ns", "p");
    let mut s = spec("counter", json!({}));
    host.upsert(key.clone(), s.clone(), Some(1)).await;
    s.paused = true;
    host.upsert(key.clone(), s.clone(), Some(2)).await;
    phase_becomes(&host, &key, ActorPhase::Paused).await;
    assert!(matches!(
        host.tell(&key, json!(1)).await,
        Err(DeliveryError::Paused(_))
    ));
    s.paused = false;
    host.upsert(key.clone(), s, Some(3)).await;
    phase_becomes(&host, &key, ActorPhase::Running).await;
    assert!(host.tell(&key, json!(1)).await.is_ok());
}

#[tokio::test]
async fn schedules_and_triggers_deliver_ticks() {
    let host = host().await;
    let key = ActorKey::new("ns", "s");
    let mut s = spec("scheduled", json!({}));
    s.schedule = Some("every 50ms".into());
    host.upsert(key.clone(), s.clone(), Some(1)).await;
    tokio::time::sleep(Duration::from_millis(280)).await;
    let ticks = host.ask(&key, json!({}), Duration::from_secs(1)).await.unwrap()["ticks"]
        .as_u64()
        .unwrap();
    assert!((3..=7).contains(&ticks), "{ticks} ticks in 280 ms at 50 ms");

    let key = ActorKey::new("ns", "t");
    let mut s = spec("scheduled", json!({}));
    host.upsert(key.clone(), s.clone(), Some(1)).await;
    s.trigger = Some("first".into());
    host.upsert(key.clone(), s.clone(), Some(2)).await;
    host.upsert(key.clone(), s.clone(), Some(2)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let v = host.ask(&key, json!({}), Duration::from_secs(1)).await.unwrap();
    assert_eq!(v["ticks"], 1, "one trigger change, one tick");
}

#[tokio::test]
async fn a_full_mailbox_rejects_with_mailbox_full() {
    let config = HostConfig {
        mailbox_capacity: 2,
        ..Default::default()
    };
    let host = Host::start(config, builtin::registry(), Metrics::new())
        .await
        .unwrap();
    let key = ActorKey::new("ns", "slow");
    host.upsert(key.clone(), spec("flaky", json!({"latencyMs": 200})), Some(1))
        .await;
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(host.tell(&key, json!(1)).await);
    }
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(DeliveryError::Full { .. }))),
        "{results:?}"
    );
}

#[tokio::test]
async fn fencing_stops_every_actor_and_only_a_list_made_for_that_fence_lifts_it() {
    let host = host().await;
    let key = ActorKey::new("ns", "f");
    host.upsert(key.clone(), spec("echo", json!({})), Some(1)).await;
    phase_becomes(&host, &key, ActorPhase::Running).await;
    host.fence("test").await;
    let s = phase_becomes(&host, &key, ActorPhase::Pending).await;
    assert_eq!(s.conditions[0].reason, "LeaseLost");
    assert!(host.tell(&key, json!(1)).await.is_err());
    let first = host.fence_generation();
    host.fence("again").await;
    assert_eq!(
        host.fence_generation(),
        first,
        "fencing a fenced host changes nothing"
    );
    assert!(
        !host.lift_fence(first - 1).await,
        "a list made for an older fence"
    );
    assert!(host.is_fenced());
    assert!(host.lift_fence(first).await);
    phase_becomes(&host, &key, ActorPhase::Running).await;
    assert_eq!(
        host.ask(&key, json!(7), Duration::from_secs(1)).await.unwrap(),
        json!(7)
    );
}

/// A behaviour that records every tick and message with the moment it ran.
struct Recorder(Arc<Mutex<Vec<BootInstant>>>);

#[async_trait::async_trait]
impl Behavior for Recorder {
    async fn handle(&mut self, _: &Context, _: Value) -> Result<Value, crate::behavior::ActorError> {
        self.0.lock().unwrap().push(BootInstant::now());
        Ok(json!("ok"))
    }

    async fn tick(&mut self, _: &Context) -> Result<(), crate::behavior::ActorError> {
        self.0.lock().unwrap().push(BootInstant::now());
        Ok(())
    }
}

async fn recording_host(lease: Arc<LeaseClock>) -> (Arc<Host>, Arc<Mutex<Vec<BootInstant>>>) {
    let runs = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    let r = runs.clone();
    registry.register("recorder", move |_| Ok(Box::new(Recorder(r.clone()))));
    let config = HostConfig {
        lease,
        ..Default::default()
    };
    let host = Host::start(config, registry, Metrics::new()).await.unwrap();
    (host, runs)
}

#[tokio::test]
async fn nothing_runs_once_the_lease_proof_has_run_out_not_even_before_the_fence() {
    let lease = Arc::new(LeaseClock::new());
    let renewed = BootInstant::now();
    lease.renewed(renewed, Duration::from_millis(400), Duration::ZERO);
    let until = renewed.saturating_add(Duration::from_millis(400));
    let (host, runs) = recording_host(lease).await;
    let key = ActorKey::new("ns", "ticker");
    let mut s = spec("recorder", json!({}));
    s.schedule = Some("every 10ms".into());
    host.upsert(key.clone(), s, Some(1)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let runs = runs.lock().unwrap().clone();
    assert!(
        runs.len() >= 5,
        "it ticked while the lease was proven: {}",
        runs.len()
    );
    assert!(
        runs.iter().all(|t| *t < until),
        "a tick ran {:?} after the proof ran out",
        runs.iter().map(|t| t.duration_since(until)).max()
    );
    assert!(host.is_fenced(), "the first refused delivery fenced the host");
    assert!(
        host.tell(&key, json!(1)).await.is_err(),
        "no message is accepted without a proof"
    );
    assert!(
        host.metrics()
            .render()
            .contains("troupe_worker_stale_deliveries_refused_total"),
        "refusals are counted"
    );
}

/// Claims decided by the test; counts how many were asked.
struct ScriptedClaims {
    outcome: Mutex<Claim>,
    asked: AtomicU64,
}

#[async_trait::async_trait]
impl Claimer for ScriptedClaims {
    async fn claim(&self, _: &ActorKey, _: u64, _: Option<&str>, _: &RuntimeStatus) -> Claim {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.outcome.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn an_assignment_starts_only_once_its_claim_is_won_and_is_claimed_again_after_a_fence() {
    let (host, runs) = recording_host(Arc::new(LeaseClock::unbounded())).await;
    let claims = Arc::new(ScriptedClaims {
        outcome: Mutex::new(Claim::Lost("moved to w2".into())),
        asked: AtomicU64::new(0),
    });
    host.set_claimer(claims.clone());
    let key = ActorKey::new("ns", "claimed");
    let mut s = spec("recorder", json!({}));
    s.schedule = Some("every 10ms".into());
    host.assign(
        key.clone(),
        Assignment {
            spec: s.clone(),
            generation: Some(1),
            epoch: 4,
            resource_version: Some("10".into()),
            previous: None,
            uid: None,
        },
    )
    .await;
    let st = phase_becomes(&host, &key, ActorPhase::Pending).await;
    assert_eq!(st.conditions[0].reason, "Reassigned");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(runs.lock().unwrap().is_empty(), "a lost claim never runs");

    // Reassigned here under a new epoch: claimed again, won, started.
    *claims.outcome.lock().unwrap() = Claim::Won;
    host.assign(
        key.clone(),
        Assignment {
            spec: s,
            generation: Some(1),
            epoch: 5,
            resource_version: Some("11".into()),
            previous: None,
            uid: None,
        },
    )
    .await;
    let st = phase_becomes(&host, &key, ActorPhase::Running).await;
    assert_eq!(st.epoch, 5);
    let asked = claims.asked.load(Ordering::SeqCst);
    assert_eq!(asked, 2);

    host.fence("test").await;
    assert!(host.lift_fence(host.fence_generation()).await);
    phase_becomes(&host, &key, ActorPhase::Running).await;
    assert_eq!(
        claims.asked.load(Ordering::SeqCst),
        3,
        "a fence forgets the claim"
    );
}

#[tokio::test]
async fn a_won_claim_is_the_starts_status_write_so_nothing_is_written_after_it() {
    let (host, _runs) = recording_host(Arc::new(LeaseClock::unbounded())).await;
    host.set_claimer(Arc::new(ScriptedClaims {
        outcome: Mutex::new(Claim::Won),
        asked: AtomicU64::new(0),
    }));
    let key = ActorKey::new("ns", "one-write");
    let assignment = Assignment {
        spec: spec("recorder", json!({})),
        generation: Some(3),
        epoch: 9,
        resource_version: Some("10".into()),
        previous: None,
        uid: None,
    };
    host.assign(key.clone(), assignment).await;
    let running = phase_becomes(&host, &key, ActorPhase::Running).await;
    let claimed = host.take_claimed();
    assert_eq!(claimed.len(), 1, "the start reports the status its claim wrote");
    let (claimed_key, written) = &claimed[0];
    assert_eq!(claimed_key, &key);
    assert_eq!((written.phase, written.epoch), (ActorPhase::Running, 9));
    assert!(
        !crate::status::needs_write(
            Some(&(written.clone(), std::time::Instant::now())),
            &running,
            Duration::from_secs(10)
        ),
        "the running status is the claimed one: {written:?} vs {running:?}"
    );
}

/// Answers after `0` whatever happens: a handler that does not finish in time.
struct Slow(Duration);

#[async_trait::async_trait]
impl Behavior for Slow {
    async fn handle(&mut self, _: &Context, _: Value) -> Result<Value, crate::behavior::ActorError> {
        tokio::time::sleep(self.0).await;
        Ok(json!("late"))
    }
}

#[tokio::test]
async fn an_actor_that_does_not_stop_in_time_is_aborted_and_only_then_its_departure_confirmed() {
    let mut registry = Registry::new();
    registry.register("slow", |_| Ok(Box::new(Slow(Duration::from_secs(30)))));
    // A planned move waits for the current message up to the drain, then aborts.
    let config = HostConfig {
        stop_deadline: Duration::from_millis(100),
        move_drain: Duration::from_secs(1),
        ..Default::default()
    };
    let host = Host::start(config, registry, Metrics::new()).await.unwrap();
    let key = ActorKey::new("ns", "slow");
    host.assign(
        key.clone(),
        Assignment {
            spec: spec("slow", json!({})),
            generation: Some(1),
            epoch: 9,
            resource_version: Some("5".into()),
            previous: None,
            uid: None,
        },
    )
    .await;
    phase_becomes(&host, &key, ActorPhase::Running).await;
    host.tell(&key, json!(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    host.remove(&key, Some("6".into())).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the stop waited for the 30 s handler: {:?}",
        started.elapsed()
    );
    assert_eq!(
        host.take_departed(),
        vec![Departure {
            key,
            epoch: 9,
            resource_version: Some("6".into())
        }]
    );
}

#[tokio::test]
async fn a_graceful_shutdown_leaves_no_actor_said_to_be_running() {
    let host = host().await;
    let key = ActorKey::new("ns", "s");
    host.upsert(key.clone(), spec("counter", json!({})), Some(1))
        .await;
    phase_becomes(&host, &key, ActorPhase::Running).await;
    host.shutdown(Duration::from_millis(100)).await;
    let st = phase_becomes(&host, &key, ActorPhase::Pending).await;
    assert_eq!(st.conditions[0].reason, "WorkerStopped");
}

pub(super) async fn passivating_host(after: Duration) -> Arc<Host> {
    let config = HostConfig {
        passivate_after: Some(after),
        ..Default::default()
    };
    Host::start(config, builtin::registry(), Metrics::new())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_assigned_actor_gets_its_ractor_task_only_with_its_first_message() {
    let host = host().await;
    let key = ActorKey::new("ns", "lazy");
    host.upsert(key.clone(), spec("counter", json!({})), Some(1))
        .await;
    phase_becomes(&host, &key, ActorPhase::Running).await;
    assert!(!host.is_active(&key));
    host.tell(&key, json!(1)).await.unwrap();
    assert!(host.is_active(&key));
}

#[tokio::test]
async fn an_idle_actor_is_passivated_and_keeps_its_state() {
    let host = passivating_host(Duration::from_millis(40)).await;
    let key = ActorKey::new("ns", "idle");
    host.upsert(key.clone(), spec("counter", json!({})), Some(1))
        .await;
    host.tell(&key, json!(5)).await.unwrap();
    assert!(host.is_active(&key));
    for _ in 0..100 {
        if !host.is_active(&key) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!host.is_active(&key), "idle for 1 s with a 40 ms limit");
    let v = host.ask(&key, json!(1), Duration::from_secs(1)).await.unwrap();
    assert_eq!(v, json!({"value": 6}), "state survives passivation");
}

#[tokio::test]
async fn no_message_is_lost_or_doubled_while_actors_passivate_and_reactivate() {
    let host = passivating_host(Duration::from_millis(2)).await;
    let keys: Vec<_> = (0..4).map(|i| ActorKey::new("ns", format!("c{i}"))).collect();
    for k in &keys {
        host.upsert(k.clone(), spec("counter", json!({})), Some(1)).await;
    }
    let mut senders = Vec::new();
    for k in keys.clone() {
        let host = host.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..2000 {
                host.tell(&k, json!(1)).await.unwrap();
                if i % 97 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    for k in &keys {
        let v = host.ask(k, json!("get"), Duration::from_secs(5)).await.unwrap();
        assert_eq!(v, json!({"value": 2000}), "{k}");
    }
}

#[tokio::test]
async fn removing_an_actor_stops_it_and_forgets_it() {
    let host = host().await;
    let key = ActorKey::new("ns", "r");
    host.upsert(key.clone(), spec("echo", json!({})), Some(1)).await;
    host.remove(&key, None).await;
    assert!(!host.is_hosted(&key));
    assert!(matches!(
        host.tell(&key, json!(1)).await,
        Err(DeliveryError::NotHere(_))
    ));
}
