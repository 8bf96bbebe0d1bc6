//! The PostgreSQL state store's rules, against the local control plane's real PostgreSQL: the
//! epoch fence, a new Actor under an old name, the handed-over state, the journal, a store
//! that is down, and the removal of a deleted Actor's state.
//! (The host's use of them is tested with the same rules in memory: worker/src/host/tests_persist.rs.)

mod common;

use common::store::store_dsn as dsn;
use serde_json::json;
use troupe_worker::{
    host::ActorKey,
    store::{JournalWrite, StateRef, StateStore, StoreError, postgres::PgStore},
};

/// An actor of a namespace no other test run uses.
fn actor(name: &str, uid: &str) -> StateRef {
    let ns = format!("store-{}-{}", std::process::id(), rand_suffix());
    StateRef {
        key: ActorKey::new(ns, name),
        uid: uid.into(),
        pool: "p".into(),
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn a_newer_epoch_fences_every_older_writer_at_the_store() {
    let store = PgStore::new(&dsn()).unwrap();
    let a = actor("c", "uid-1");
    assert_eq!(
        store.activate(&a, 1, None).await.unwrap(),
        None,
        "nothing stored yet"
    );
    store.save(&a, 1, &json!({"value": 3}), None).await.unwrap();

    // A new activation reads what the old one wrote, and takes the row.
    assert_eq!(
        store.activate(&a, 2, None).await.unwrap(),
        Some(json!({"value": 3}))
    );
    // The old one, woken up, is refused, and told which epoch owns the row.
    let refused = store.save(&a, 1, &json!({"value": 99}), None).await.unwrap_err();
    assert_eq!(refused, StoreError::Stale { mine: 1, stored: 2 });
    // So is an activation older than the row.
    assert!(matches!(
        store.activate(&a, 1, None).await,
        Err(StoreError::Stale { .. })
    ));
    store.save(&a, 2, &json!({"value": 4}), None).await.unwrap();
    assert_eq!(
        store.activate(&a, 3, None).await.unwrap(),
        Some(json!({"value": 4}))
    );
}

#[tokio::test]
async fn a_handed_over_state_replaces_the_checkpoint_and_a_new_actor_of_the_same_name_starts_afresh() {
    let store = PgStore::new(&dsn()).unwrap();
    let a = actor("c", "uid-1");
    store.activate(&a, 1, None).await.unwrap();
    store.save(&a, 1, &json!({"value": 5}), None).await.unwrap();
    let handed = json!({"value": 8});
    assert_eq!(
        store.activate(&a, 2, Some(&handed)).await.unwrap(),
        Some(handed.clone())
    );
    assert_eq!(store.activate(&a, 2, None).await.unwrap(), Some(handed));

    // Deleted and created again: a new uid, epochs from 1 again, no state.
    let again = StateRef {
        uid: "uid-2".into(),
        ..a.clone()
    };
    assert_eq!(store.activate(&again, 1, None).await.unwrap(), None);
    // The deleted object's writer is refused.
    assert!(matches!(
        store.save(&a, 2, &json!({"value": 1}), None).await,
        Err(StoreError::Stale { .. })
    ));
}

#[tokio::test]
async fn a_store_that_does_not_answer_is_unavailable_within_the_call_timeout_and_names_no_password() {
    // A port nothing listens on, and a password that must not be repeated.
    let store = PgStore::new("postgres://troupe:s3cret-pw@127.0.0.1:9/postgres").unwrap();
    let started = std::time::Instant::now();
    let err = store.activate(&actor("c", "u"), 1, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret-pw"), "{err}");
    eprintln!("unavailable after {:?}: {err}", started.elapsed());

    let bad = PgStore::new("postgres://troupe:s3cret-pw@[bad").err().unwrap();
    assert!(!bad.contains("s3cret-pw"), "{bad}");
}

#[tokio::test]
async fn the_journal_keeps_every_write_that_landed_fenced_by_epoch_and_as_many_as_its_policy_says() {
    let store = PgStore::new(&dsn()).unwrap();
    let a = actor("j", "uid-1");
    let values = |entries: &[troupe_worker::store::JournalEntry]| {
        entries
            .iter()
            .map(|e| (e.epoch, e.state["value"].as_i64().unwrap()))
            .collect::<Vec<_>>()
    };
    store.activate(&a, 1, None).await.unwrap();
    let keep_3 = JournalWrite {
        messages: 2,
        keep: 3,
        keep_for: None,
    };
    for v in 1..=5 {
        store
            .save(&a, 1, &json!({"value": v}), Some(&keep_3))
            .await
            .unwrap();
    }
    let entries = store.journal(&a.key, 100).await.unwrap();
    assert_eq!(
        values(&entries),
        [(1, 5), (1, 4), (1, 3)],
        "the newest 3, newest first"
    );
    assert!(
        entries
            .windows(2)
            .all(|w| w[0].seq > w[1].seq && w[0].at >= w[1].at)
    );
    assert!(entries.iter().all(|e| e.messages == 2 && e.uid == "uid-1"));

    // A newer activation: the old one's journaled write is refused and adds no entry.
    store.activate(&a, 2, None).await.unwrap();
    assert!(matches!(
        store.save(&a, 1, &json!({"value": 99}), Some(&keep_3)).await,
        Err(StoreError::Stale { mine: 1, stored: 2 })
    ));
    store
        .save(&a, 2, &json!({"value": 6}), Some(&keep_3))
        .await
        .unwrap();
    // A write without a journal adds none.
    store.save(&a, 2, &json!({"value": 7}), None).await.unwrap();
    assert_eq!(
        values(&store.journal(&a.key, 100).await.unwrap()),
        [(2, 6), (1, 5), (1, 4)]
    );
    assert_eq!(
        values(&store.journal(&a.key, 1).await.unwrap()),
        [(2, 6)],
        "a limit"
    );

    // By age: entries older than keepFor go at the next write.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let keep_1s = JournalWrite {
        messages: 1,
        keep: 100,
        keep_for: Some(std::time::Duration::from_secs(1)),
    };
    store
        .save(&a, 2, &json!({"value": 8}), Some(&keep_1s))
        .await
        .unwrap();
    assert_eq!(values(&store.journal(&a.key, 100).await.unwrap()), [(2, 8)]);
}

#[tokio::test]
async fn forgetting_a_deleted_actor_removes_its_row_and_journal_and_nothing_of_a_newer_actor_of_its_name() {
    let store = PgStore::new(&dsn()).unwrap();
    let journal = JournalWrite {
        messages: 1,
        keep: 10,
        keep_for: None,
    };
    let old = actor("c", "uid-old");
    let ns = old.key.namespace.clone();
    store.activate(&old, 1, None).await.unwrap();
    store.save(&old, 1, &json!(1), Some(&journal)).await.unwrap();
    store.save(&old, 1, &json!(2), Some(&journal)).await.unwrap();
    // Created again under the same name: the row is the new Actor's; the old journal stays.
    let new = StateRef {
        uid: "uid-new".into(),
        ..old.clone()
    };
    store.activate(&new, 1, None).await.unwrap();
    store.save(&new, 1, &json!(7), Some(&journal)).await.unwrap();
    let mut other_pool = actor("d", "uid-d");
    other_pool.key.namespace = ns.clone();
    other_pool.pool = "other".into();
    store.activate(&other_pool, 1, None).await.unwrap();

    let mut stored = store.stored(&ns, "p").await.unwrap();
    stored.sort_by(|a, b| a.uid.cmp(&b.uid));
    assert_eq!(
        stored.iter().map(|s| s.uid.as_str()).collect::<Vec<_>>(),
        ["uid-new", "uid-old"],
        "the pool's Actors with a row or journal entries, and only the pool's"
    );

    let gone = store.forget(&old).await.unwrap();
    assert_eq!(
        (gone.rows, gone.journal_entries),
        (0, 2),
        "its 2 entries, not the new row"
    );
    assert_eq!(
        store.activate(&new, 2, None).await.unwrap(),
        Some(json!(7)),
        "the new Actor keeps its state"
    );
    let left = store.journal(&new.key, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|e| e.uid.as_str()).collect::<Vec<_>>(),
        ["uid-new"]
    );
    let gone = store.forget(&new).await.unwrap();
    assert_eq!((gone.rows, gone.journal_entries), (1, 1));
    assert!(store.stored(&ns, "p").await.unwrap().is_empty());
    assert_eq!(store.stored(&ns, "other").await.unwrap().len(), 1);
}
