//! Persistence to a store, fenced by epoch (issue 13), with hosts driven directly and the store's
//! rules in memory ([`MemoryStore`]; the PostgreSQL store is tested end to end).

use serde_json::json;

use super::tests::{phase_becomes, spec, status_becomes};
use super::*;
use crate::{builtin, store::memory::MemoryStore};

/// A host named `pod` writing to `store` in `mode`.
async fn host_on(pod: &str, store: &Arc<MemoryStore>, mode: PersistenceMode, every: u32) -> Arc<Host> {
    let config = HostConfig {
        pod: pod.into(),
        persistence: mode,
        checkpoint_every: every,
        commit_timeout: Duration::from_secs(20),
        ..HostConfig::default()
    };
    let host = Host::start(config, builtin::registry(), Metrics::new())
        .await
        .unwrap();
    host.set_store(store.clone());
    host
}

fn counter(epoch: u64) -> Assignment {
    Assignment {
        epoch,
        uid: Some("uid-1".into()),
        ..Assignment::of(spec("counter", json!({"start": 0})), Some(1))
    }
}

/// The counter's assignment under `epoch` after a planned move from worker "a" (epoch 1).
fn moved_from_a(epoch: u64) -> Assignment {
    Assignment {
        previous: Some(PreviousHolder {
            worker: "a".into(),
            epoch: 1,
            pool: "local".into(),
        }),
        ..counter(epoch)
    }
}

async fn count(host: &Host, key: &ActorKey) -> Value {
    host.ask(key, json!(0), Duration::from_secs(2)).await.unwrap()["value"].clone()
}

/// The count in the store's copy of the counter's state.
fn stored_count(store: &MemoryStore, key: &ActorKey) -> Option<Value> {
    store
        .get(key)
        .and_then(|(_, state)| state)
        .map(|s| s["value"].clone())
}

#[tokio::test]
async fn with_every_message_each_answered_tell_is_committed_and_survives_a_crash() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let a = host_on("a", &store, PersistenceMode::EveryMessage, 1).await;
    a.assign(key.clone(), counter(1)).await;
    for n in 1..=7 {
        a.tell(&key, json!(1)).await.unwrap();
        // Answered means committed: the store has it before the next tell.
        assert_eq!(stored_count(&store, &key), Some(json!(n)));
    }
    // A crash: no handoff, the host is gone; the next activation reads the store.
    drop(a);
    let b = host_on("b", &store, PersistenceMode::EveryMessage, 1).await;
    b.assign(key.clone(), counter(2)).await;
    assert_eq!(count(&b, &key).await, json!(7));
    assert_eq!(store.get(&key).unwrap().0, 2, "the new activation took the row");
}

#[tokio::test]
async fn with_interval_a_crash_loses_at_most_the_messages_since_the_last_checkpoint() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let a = host_on("a", &store, PersistenceMode::Interval, 5).await;
    a.assign(key.clone(), counter(1)).await;
    for _ in 0..12 {
        a.tell(&key, json!(1)).await.unwrap();
    }
    assert_eq!(count(&a, &key).await, json!(12));
    drop(a);
    let b = host_on("b", &store, PersistenceMode::Interval, 5).await;
    b.assign(key.clone(), counter(2)).await;
    let recovered = count(&b, &key).await.as_i64().unwrap();
    // A checkpoint follows the batch in which 5 or more were handled since the last one, so
    // fewer than 5 changes are ever unwritten.
    let lost = 12 - recovered;
    assert!(
        (0..5).contains(&lost),
        "lost {lost} messages; the interval allows 4"
    );
    assert!(recovered >= 5, "at least two checkpoints were written");
}

#[tokio::test]
async fn a_stale_activation_cannot_overwrite_the_state_and_fails_with_stale_epoch() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let a = host_on("a", &store, PersistenceMode::EveryMessage, 1).await;
    a.assign(key.clone(), counter(1)).await;
    for _ in 0..3 {
        a.tell(&key, json!(1)).await.unwrap();
    }
    // Worker a is cut off (it still thinks it runs the actor); b takes over under epoch 2.
    let b = host_on("b", &store, PersistenceMode::EveryMessage, 1).await;
    b.assign(key.clone(), counter(2)).await;
    b.tell(&key, json!(10)).await.unwrap();
    assert_eq!(stored_count(&store, &key), Some(json!(13)));

    // a wakes up and handles a message: its write is refused, the tell is not acknowledged.
    let refused = a.tell(&key, json!(100)).await.unwrap_err();
    assert!(
        matches!(&refused, DeliveryError::Unavailable { why, .. } if why.contains("epoch 2")),
        "{refused:?}"
    );
    let failed = phase_becomes(&a, &key, ActorPhase::Failed).await;
    assert_eq!(failed.conditions[0].reason, "StaleEpoch");
    assert_eq!(stored_count(&store, &key), Some(json!(13)), "b's state stands");
    assert_eq!(a.metrics().state_writes.with_label_values(&["stale"]).get(), 1);
    assert_eq!(count(&b, &key).await, json!(13));
}

#[tokio::test]
async fn an_activation_older_than_the_stored_epoch_does_not_start() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let b = host_on("b", &store, PersistenceMode::Interval, 1).await;
    b.assign(key.clone(), counter(5)).await;
    b.tell(&key, json!(2)).await.unwrap();
    let late = host_on("a", &store, PersistenceMode::Interval, 1).await;
    late.assign(key.clone(), counter(4)).await;
    let failed = phase_becomes(&late, &key, ActorPhase::Failed).await;
    assert_eq!(failed.conditions[0].reason, "StaleEpoch");
    assert_eq!(store.get(&key).unwrap().0, 5);
}

#[tokio::test]
async fn an_actor_created_again_under_the_same_name_starts_afresh() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let a = host_on("a", &store, PersistenceMode::EveryMessage, 1).await;
    a.assign(key.clone(), counter(7)).await;
    a.tell(&key, json!(4)).await.unwrap();
    a.remove(&key, None).await;
    // Deleted and created again: a new uid, and epochs start over.
    let again = Assignment {
        uid: Some("uid-2".into()),
        ..counter(1)
    };
    a.assign(key.clone(), again).await;
    assert_eq!(count(&a, &key).await, json!(0));
}

#[tokio::test]
async fn a_store_that_is_down_holds_the_actor_refuses_messages_and_recovers_by_itself() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let a = host_on("a", &store, PersistenceMode::EveryMessage, 1).await;
    a.assign(key.clone(), counter(1)).await;
    a.tell(&key, json!(1)).await.unwrap();

    store.set_down(Some("connection refused"));
    let pending = {
        let a = a.clone();
        let key = key.clone();
        tokio::spawn(async move { a.tell(&key, json!(1)).await })
    };
    let held = status_becomes(&a, &key, ActorPhase::Starting, Some("StoreUnavailable")).await;
    assert!(held.conditions[0].message.contains("connection refused"));
    assert!(
        matches!(
            a.tell(&key, json!(1)).await,
            Err(DeliveryError::Unavailable { .. })
        ),
        "a message is refused while the store is down, not accepted and lost"
    );
    store.set_down(None);
    pending
        .await
        .unwrap()
        .expect("the held tell is committed once the store is back");
    phase_becomes(&a, &key, ActorPhase::Running).await;
    assert_eq!(stored_count(&store, &key), Some(json!(2)));
}

#[tokio::test]
async fn an_actor_whose_store_is_down_at_its_start_starts_when_it_answers() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let a = host_on("a", &store, PersistenceMode::EveryMessage, 1).await;
    a.assign(key.clone(), counter(1)).await;
    a.tell(&key, json!(3)).await.unwrap();
    drop(a);

    store.set_down(Some("connection refused"));
    let b = host_on("b", &store, PersistenceMode::EveryMessage, 1).await;
    b.assign(key.clone(), counter(2)).await;
    status_becomes(&b, &key, ActorPhase::Starting, Some("StoreUnavailable")).await;
    store.set_down(None);
    phase_becomes(&b, &key, ActorPhase::Running).await;
    assert_eq!(count(&b, &key).await, json!(3));
}

#[tokio::test]
async fn a_handed_over_state_is_written_under_the_new_epoch() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let a = host_on("a", &store, PersistenceMode::Interval, 100).await;
    a.assign(key.clone(), counter(1)).await;
    for _ in 0..4 {
        a.tell(&key, json!(1)).await.unwrap();
    }
    assert_eq!(count(&a, &key).await, json!(4));
    assert_eq!(stored_count(&store, &key), None, "no checkpoint yet");
    // A planned move back to the same worker: the state it kept goes to the store at epoch 2.
    a.remove(&key, None).await;
    a.assign(key.clone(), moved_from_a(2)).await;
    assert_eq!(count(&a, &key).await, json!(4));
    assert_eq!(store.get(&key), Some((2, Some(json!({"value": 4})))));
    a.tell(&key, json!(1)).await.unwrap();
}

#[tokio::test]
async fn mode_none_starts_from_the_config_even_after_a_planned_move() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let a = host_on("a", &store, PersistenceMode::None, 1).await;
    a.assign(key.clone(), counter(1)).await;
    a.tell(&key, json!(4)).await.unwrap();
    assert_eq!(count(&a, &key).await, json!(4));
    a.remove(&key, None).await;
    a.assign(key.clone(), moved_from_a(2)).await;
    assert_eq!(count(&a, &key).await, json!(0));
    assert_eq!(store.get(&key), None, "mode None writes nothing");
}

fn journaled(epoch: u64, keep: i32) -> Assignment {
    let mut a = counter(epoch);
    a.spec.journal = Some(troupe_crds::JournalSpec {
        keep: Some(keep),
        keep_for: None,
    });
    a
}

fn condition<'a>(status: &'a RuntimeStatus, type_: &str) -> Option<&'a ConditionState> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[tokio::test]
async fn a_journaled_actor_adds_an_entry_for_every_committed_change_and_keeps_the_newest() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let a = host_on("a", &store, PersistenceMode::EveryMessage, 1).await;
    a.assign(key.clone(), journaled(1, 3)).await;
    for _ in 0..5 {
        a.tell(&key, json!(2)).await.unwrap();
    }
    let entries = a.journal(&key, 100).await.expect("a store").unwrap();
    let seen: Vec<_> = entries
        .iter()
        .map(|e| (e.epoch, e.messages, e.state["value"].clone()))
        .collect();
    assert_eq!(
        seen,
        [(1, 1, json!(10)), (1, 1, json!(8)), (1, 1, json!(6))],
        "the newest 3 of 5 changes, newest first"
    );
    let status = phase_becomes(&a, &key, ActorPhase::Running).await;
    let journal = condition(&status, "Journaled").expect("the Journaled condition");
    assert!(journal.status, "{journal:?}");

    // An actor without spec.journal writes its state and no entry.
    let plain = ActorKey::new("ns", "plain");
    a.assign(plain.clone(), counter(1)).await;
    a.tell(&plain, json!(1)).await.unwrap();
    assert_eq!(stored_count(&store, &plain), Some(json!(1)));
    assert!(a.journal(&plain, 100).await.unwrap().unwrap().is_empty());
    let status = phase_becomes(&a, &plain, ActorPhase::Running).await;
    assert!(condition(&status, "Journaled").is_none());
}

#[tokio::test]
async fn a_journal_asked_for_in_a_pool_without_a_store_says_that_nothing_is_journaled() {
    let store = Arc::new(MemoryStore::default());
    let key = ActorKey::new("ns", "c");
    let a = host_on("a", &store, PersistenceMode::OnMove, 1).await;
    a.assign(key.clone(), journaled(1, 10)).await;
    a.tell(&key, json!(1)).await.unwrap();
    let status = phase_becomes(&a, &key, ActorPhase::Running).await;
    let journal = condition(&status, "Journaled").expect("the Journaled condition");
    assert_eq!((journal.status, journal.reason.as_str()), (false, "NoStateStore"));
    assert!(journal.message.contains("Interval or EveryMessage"));
    assert!(a.journal(&key, 10).await.is_none(), "no store, no journal");
}
