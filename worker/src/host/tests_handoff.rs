//! Planned moves hand an actor's state from the worker it leaves to the next one (issue 13),
//! with two hosts driven directly (no Kubernetes, no HTTP).

use serde_json::json;

use super::tests::{host, passivating_host, phase_becomes, spec};
use super::*;

/// The next worker's source: the previous host's handoff store, as its endpoint would answer.
struct FromHost(Arc<Host>);

#[async_trait::async_trait]
impl HandoffSource for FromHost {
    async fn fetch(&self, key: &ActorKey, previous: &PreviousHolder) -> Option<Handoff> {
        self.0.take_handoff(key, previous.epoch)
    }
}

/// A source that answers the same every time (a lost worker: None; a broken one: garbage).
struct Answers(Option<Value>);

#[async_trait::async_trait]
impl HandoffSource for Answers {
    async fn fetch(&self, _: &ActorKey, _: &PreviousHolder) -> Option<Handoff> {
        self.0.clone().map(|state| Handoff {
            state,
            stopped_at: None,
        })
    }
}

fn assignment(epoch: u64, previous: Option<(&str, u64)>) -> Assignment {
    Assignment {
        spec: spec("counter", json!({"start": 0})),
        generation: Some(1),
        epoch,
        resource_version: None,
        previous: previous.map(|(worker, epoch)| PreviousHolder {
            worker: worker.into(),
            epoch,
            pool: "p".into(),
        }),
        uid: Some("uid-1".into()),
    }
}

async fn count(host: &Host, key: &ActorKey) -> Value {
    host.ask(key, json!(0), Duration::from_secs(1)).await.unwrap()["value"].clone()
}

/// Moves the counter `key` from `from` (epoch 1) to a new host named "b" (epoch 2).
async fn moved(from: &Arc<Host>, key: &ActorKey) -> Arc<Host> {
    from.remove(key, None).await;
    let to = host().await;
    to.set_handoff_source(Arc::new(FromHost(from.clone())));
    to.assign(key.clone(), assignment(2, Some(("local-a", 1)))).await;
    to
}

#[tokio::test]
async fn a_counter_moved_to_another_worker_keeps_its_exact_count() {
    let a = host().await;
    let key = ActorKey::new("ns", "c");
    a.assign(key.clone(), assignment(1, None)).await;
    for _ in 0..5 {
        a.tell(&key, json!(1)).await.unwrap();
    }
    assert_eq!(count(&a, &key).await, json!(5));
    let b = moved(&a, &key).await;
    assert_eq!(count(&b, &key).await, json!(5), "the count went with the actor");
    b.tell(&key, json!(1)).await.unwrap();
    assert_eq!(count(&b, &key).await, json!(6));
    assert_eq!(a.take_handoff(&key, 1), None, "a state is handed over once");
    assert_eq!(
        b.metrics().handoff_seconds.get_sample_count(),
        1,
        "the move's gap is observed where the actor started"
    );
    assert!(b.metrics().handoff_seconds.get_sample_sum() < 5.0);
}

/// The previous worker's handoff store, answered after a delay (a loaded worker or network).
struct Slowly(Arc<Host>, Duration);

#[async_trait::async_trait]
impl HandoffSource for Slowly {
    async fn fetch(&self, key: &ActorKey, previous: &PreviousHolder) -> Option<Handoff> {
        tokio::time::sleep(self.1).await;
        self.0.take_handoff(key, previous.epoch)
    }
}

#[tokio::test]
async fn an_actor_released_again_before_its_state_arrived_passes_that_state_to_the_next_worker() {
    // A scale-in stopping two workers: the counter moves a → b, and b leaves before it started
    // the actor (the fetch from a still under way). c asks b, as the operator's assignment says.
    let a = host().await;
    let key = ActorKey::new("ns", "c");
    a.assign(key.clone(), assignment(1, None)).await;
    for _ in 0..7 {
        a.tell(&key, json!(1)).await.unwrap();
    }
    assert_eq!(count(&a, &key).await, json!(7));
    a.remove(&key, None).await;
    let b = host().await;
    b.set_handoff_source(Arc::new(Slowly(a.clone(), Duration::from_millis(300))));
    b.assign(key.clone(), assignment(2, Some(("worker-a", 1)))).await;
    assert!(
        b.slot(&key).unwrap().lock().handoff_fetch.is_some(),
        "b still waits for the state"
    );
    b.remove(&key, None).await;
    let c = host().await;
    c.set_handoff_source(Arc::new(FromHost(b.clone())));
    c.assign(key.clone(), assignment(3, Some(("worker-b", 2)))).await;
    assert_eq!(
        count(&c, &key).await,
        json!(7),
        "the count went on through the worker that never ran it"
    );
    assert_eq!(a.take_handoff(&key, 1), None, "handed over once");
}

#[tokio::test]
async fn a_passivated_actor_hands_over_the_state_it_was_parked_with() {
    let a = passivating_host(Duration::from_millis(20)).await;
    let key = ActorKey::new("ns", "idle");
    a.assign(key.clone(), assignment(1, None)).await;
    for _ in 0..3 {
        a.tell(&key, json!(1)).await.unwrap();
    }
    assert_eq!(count(&a, &key).await, json!(3));
    for _ in 0..100 {
        if a.slot(&key).unwrap().lock().parked.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        a.slot(&key).unwrap().lock().parked.is_some(),
        "the actor passivated"
    );
    let b = moved(&a, &key).await;
    assert_eq!(count(&b, &key).await, json!(3));
}

#[tokio::test]
async fn without_an_answer_the_actor_starts_from_its_config() {
    let b = host().await;
    b.set_handoff_source(Arc::new(Answers(None)));
    let key = ActorKey::new("ns", "lost");
    b.assign(key.clone(), assignment(2, Some(("gone", 1)))).await;
    assert_eq!(count(&b, &key).await, json!(0));
}

#[tokio::test]
async fn a_state_the_behaviour_cannot_take_fails_the_actor_with_restore_failed() {
    let b = host().await;
    b.set_handoff_source(Arc::new(Answers(Some(json!({"value": "seven"})))));
    let key = ActorKey::new("ns", "bad");
    b.assign(key.clone(), assignment(2, Some(("other", 1)))).await;
    let s = phase_becomes(&b, &key, ActorPhase::Failed).await;
    assert_eq!(s.conditions[0].reason, "RestoreFailed");
    assert!(s.last_error.unwrap().contains("without an integer value"));
}

#[tokio::test]
async fn an_actor_that_never_ran_elsewhere_asks_nobody() {
    let b = host().await;
    b.set_handoff_source(Arc::new(Answers(Some(json!({"value": 99})))));
    let key = ActorKey::new("ns", "new");
    b.assign(key.clone(), assignment(1, None)).await;
    assert_eq!(count(&b, &key).await, json!(0));
}

#[tokio::test]
async fn a_paused_actor_moved_away_hands_over_the_state_it_paused_with() {
    let a = host().await;
    let key = ActorKey::new("ns", "paused");
    a.assign(key.clone(), assignment(1, None)).await;
    for _ in 0..4 {
        a.tell(&key, json!(1)).await.unwrap();
    }
    assert_eq!(count(&a, &key).await, json!(4));
    let mut paused = assignment(1, None);
    paused.spec.paused = true;
    a.assign(key.clone(), paused).await;
    phase_becomes(&a, &key, ActorPhase::Paused).await;
    let b = moved(&a, &key).await;
    assert_eq!(count(&b, &key).await, json!(4));
}

/// Wins every claim and keeps the status each one wrote.
#[derive(Default)]
struct RecordedClaims(std::sync::Mutex<Vec<RuntimeStatus>>);

#[async_trait::async_trait]
impl Claimer for RecordedClaims {
    async fn claim(&self, _: &ActorKey, _: u64, _: Option<&str>, running: &RuntimeStatus) -> Claim {
        self.0.lock().unwrap().push(running.clone());
        Claim::Won
    }
}

#[tokio::test]
async fn a_moved_actor_is_claimed_as_starting_and_shows_running_only_once_its_state_is_in() {
    let a = host().await;
    let key = ActorKey::new("ns", "c");
    let claims_a = Arc::new(RecordedClaims::default());
    a.set_claimer(claims_a.clone());
    a.assign(key.clone(), assignment(1, None)).await;
    a.tell(&key, json!(3)).await.unwrap();
    assert_eq!(count(&a, &key).await, json!(3));
    let first = claims_a.0.lock().unwrap()[0].clone();
    assert_eq!(
        (first.phase, first.conditions[0].reason.as_str()),
        (ActorPhase::Running, "Running"),
        "nothing to look for: the claim is the start's status"
    );

    a.remove(&key, None).await;
    let b = host().await;
    let claims_b = Arc::new(RecordedClaims::default());
    b.set_claimer(claims_b.clone());
    b.set_handoff_source(Arc::new(FromHost(a.clone())));
    b.assign(key.clone(), assignment(2, Some(("local-a", 1)))).await;
    assert_eq!(count(&b, &key).await, json!(3));
    let claim = claims_b.0.lock().unwrap()[0].clone();
    assert_eq!(
        (
            claim.phase,
            claim.conditions[0].reason.as_str(),
            claim.conditions[0].status
        ),
        (ActorPhase::Starting, "HandingOver", false),
        "the claim of a moved actor does not say Running before its state is in"
    );
    let published: Vec<_> = b.take_claimed().into_iter().map(|(_, s)| s.phase).collect();
    assert_eq!(
        published,
        vec![ActorPhase::Starting],
        "the status writer knows what the claim wrote"
    );
    let now = b.snapshot().into_iter().find(|(k, _)| *k == key).unwrap().1;
    assert_eq!(
        now.phase,
        ActorPhase::Running,
        "then written Running, as it differs"
    );
}

#[tokio::test]
async fn an_actor_leaving_handles_the_tells_it_accepted_and_hands_over_their_effect() {
    let a = host().await;
    let key = ActorKey::new("ns", "slow");
    let mut slow = assignment(1, None);
    slow.spec = spec("counter", json!({"start": 0, "latencyMs": 20}));
    a.assign(key.clone(), slow).await;
    // Ten tells accepted (202 each), most still queued when the actor is told to leave.
    for _ in 0..10 {
        a.tell(&key, json!(1)).await.unwrap();
    }
    let b = moved(&a, &key).await;
    assert_eq!(
        count(&b, &key).await,
        json!(10),
        "every accepted tell was handled before the state was handed over"
    );
    assert!(
        !a.metrics().render().contains("unhandled_on_move"),
        "none was dropped"
    );
}

#[tokio::test]
async fn a_message_for_an_actor_that_just_left_is_not_here_not_refused() {
    let a = host().await;
    let key = ActorKey::new("ns", "gone");
    a.assign(key.clone(), assignment(1, None)).await;
    assert_eq!(count(&a, &key).await, json!(0));
    a.remove(&key, None).await;
    assert!(
        matches!(a.tell(&key, json!(1)).await, Err(DeliveryError::NotHere(_))),
        "the sender looks for its next worker"
    );
}

fn slow_counter(epoch: u64, latency_ms: u64) -> Assignment {
    let mut slow = assignment(epoch, None);
    slow.spec = spec("counter", json!({"start": 0, "latencyMs": latency_ms}));
    slow
}

#[tokio::test]
async fn an_actor_assigned_back_while_it_still_leaves_starts_from_every_message_it_accepted() {
    // Released and assigned to the same worker again at once (the operator undid a move): the
    // new activation asks this worker for the state, which exists only once the departure
    // handled the ten tells it accepted. Starting any sooner would start it from zero.
    let a = host().await;
    a.set_handoff_source(Arc::new(FromHost(a.clone())));
    let key = ActorKey::new("ns", "back");
    a.assign(key.clone(), slow_counter(1, 20)).await;
    for _ in 0..10 {
        a.tell(&key, json!(1)).await.unwrap();
    }
    a.depart(&key, None, || ());
    assert!(!a.departures_settled(), "the departure is counted at once");
    a.assign(key.clone(), assignment(2, Some(("local", 1)))).await;
    assert_eq!(count(&a, &key).await, json!(10));
    assert_eq!(a.take_departed().len(), 1, "the stop under epoch 1 is confirmed");
}
