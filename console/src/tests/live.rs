use crate::live::{
    Change, Hub,
    hub::gather,
    topics::{ALL, MAX_TOPICS, concerns, topics_of},
};

fn actor_change(i: usize) -> Change {
    Change::Actor {
        namespace: "a".into(),
        name: format!("x{i}"),
        pool: "p".into(),
    }
}

#[test]
fn an_actors_change_concerns_the_actors_table_its_own_page_and_its_pools_page() {
    let t = topics_of(&actor_change(1));
    assert_eq!(t, ["actors", "actor:a/x1", "pool:a/p"]);
    assert!(concerns(&t, &["pool:a/p".into()]));
    assert!(!concerns(&t, &["pool:a/q".into()]));
    assert!(
        !concerns(&t, &["pools".into()]),
        "the overview counts come from the pool's status"
    );
}

#[test]
fn a_lease_or_an_event_concerns_the_page_of_the_object_it_is_about_and_nothing_else() {
    assert_eq!(
        topics_of(&Change::Lease {
            namespace: "a".into(),
            pool: "p".into()
        }),
        ["pool:a/p"]
    );
    let ev = |kind: &str| Change::Event {
        namespace: "a".into(),
        kind: kind.into(),
        name: "n".into(),
    };
    assert_eq!(topics_of(&ev("ActorPool")), ["pool:a/n"]);
    assert_eq!(topics_of(&ev("Actor")), ["actor:a/n"]);
    assert!(topics_of(&ev("Deployment")).is_empty());
}

#[test]
fn a_batch_is_deduplicated_and_becomes_everything_when_too_long_or_after_a_relist() {
    assert_eq!(gather(&[actor_change(1), actor_change(1)]).len(), 3);
    let burst: Vec<Change> = (0..MAX_TOPICS).map(actor_change).collect();
    assert_eq!(gather(&burst), [ALL]);
    assert_eq!(gather(&[actor_change(1), Change::Relisted]), [ALL]);
    assert!(concerns(&[ALL.to_string()], &["actor:z/z".into()]));
}

#[tokio::test]
async fn changes_within_the_window_reach_every_subscriber_as_one_numbered_batch() {
    let hub = Hub::start();
    let (mut one, mut two) = (hub.subscribe(), hub.subscribe());
    for i in 0..5 {
        hub.report(actor_change(i));
    }
    let batch = one.recv().await.unwrap();
    assert_eq!(batch, two.recv().await.unwrap(), "one broadcast, shared");
    assert_eq!(batch.seq, 1);
    assert_eq!(batch.topics.len(), 5 + 1 + 1, "five actors, the table, one pool");
    assert_eq!(hub.seq(), 1, "a page rendered now is up to date with it");
    hub.report(actor_change(9));
    assert_eq!(one.recv().await.unwrap().seq, 2);
}
