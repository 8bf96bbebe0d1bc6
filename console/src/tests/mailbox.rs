//! Workers' mailbox depth on the pool page: read from a worker's own metrics (a stand-in worker
//! serving `/metrics` here), only for live workers of pools someone looks at; a depth that
//! changes refreshes the open page; where the worker cannot be reached, the page says so and why.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;
use troupe_client::messages::ADDRESS_ANNOTATION;

use super::*;
use crate::{
    live::Hub,
    mailbox::{Mailbox, Mailboxes, NOT_READ_YET, client, depth},
    pages::fragment,
    watch::Stores,
};

/// What a worker's `/metrics` says with `waiting` messages for two behaviours.
fn metrics(waiting: (i64, i64)) -> String {
    format!(
        "# HELP troupe_worker_mailbox_depth Messages waiting, summed over the behaviour's actors\n\
         # TYPE troupe_worker_mailbox_depth gauge\n\
         troupe_worker_mailbox_depth{{behavior=\"counter\",pool=\"p\",revision=\"r1\"}} {}\n\
         troupe_worker_mailbox_depth{{behavior=\"odd }} name\",pool=\"p\",revision=\"r1\"}} {}\n\
         troupe_worker_actors{{phase=\"Running\",pool=\"p\",revision=\"r1\"}} 2\n",
        waiting.0, waiting.1
    )
}

#[test]
fn the_depth_is_the_mailbox_gauge_summed_over_behaviours_and_zero_for_a_worker_without_actors() {
    assert_eq!(depth(&metrics((3, 4))), Some(7));
    assert_eq!(
        depth("troupe_worker_actors{phase=\"Running\"} 0\ntroupe_worker_fences_total 0\n"),
        Some(0),
        "a worker that hosts no actor has no mailbox series"
    );
    assert_eq!(
        depth("process_cpu_seconds_total 1\n"),
        None,
        "not a Troupe worker"
    );
    assert_eq!(
        depth("troupe_worker_mailbox_depth_other 5\ntroupe_worker_x 1\n"),
        Some(0)
    );
}

/// A stand-in worker serving `/metrics` with the depth in `waiting`; its address.
async fn worker(waiting: Arc<AtomicI64>) -> String {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let w = waiting.load(Ordering::SeqCst);
            async move { metrics((w, 1)) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// An address where nothing listens.
async fn nobody() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn at_address(
    mut l: k8s_openapi::api::coordination::v1::Lease,
    addr: &str,
) -> k8s_openapi::api::coordination::v1::Lease {
    l.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ADDRESS_ANNOTATION.into(), addr.into());
    l
}

#[tokio::test]
async fn live_workers_of_a_pool_looked_at_are_read_and_a_change_of_depth_refreshes_its_page() {
    let waiting = Arc::new(AtomicI64::new(6));
    let (up, down) = (worker(waiting.clone()).await, nobody().await);
    let now = Timestamp::now();
    let leases = vec![
        at_address(lease("a", "p-w1", "p", "r1", now, 15), &up),
        at_address(lease("a", "p-w2", "p", "r1", now, 15), &down),
        // Expired, and of a pool nobody looks at: neither is read.
        at_address(lease("a", "p-old", "p", "r0", now - secs(60), 15), &up),
        at_address(lease("a", "q-w1", "q", "r1", now, 15), &up),
    ];
    let (stores, _) = Stores::with(vec![], leases);
    let (hub, mailboxes, http) = (Hub::start(), Mailboxes::default(), client());
    let mut batches = hub.subscribe();

    assert!(
        mailboxes.looked_at("a", "p").is_empty(),
        "nothing known before the first reading"
    );
    mailboxes.poll(&stores, &hub, &http).await;
    let read = mailboxes.looked_at("a", "p");
    assert!(
        matches!(read.get("p-w1"), Some(Mailbox::Known { messages: 7, .. })),
        "{read:?}"
    );
    match read.get("p-w2") {
        Some(Mailbox::Unknown(why)) => assert!(
            why.contains(&down) && why.contains("could not be reached") && why.contains("pod network"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        read.len(),
        2,
        "neither the expired worker nor another pool's: {read:?}"
    );
    let batch = batches.recv().await.unwrap();
    assert_eq!(batch.topics, ["pool:a/p"], "the open pool page refreshes");

    // The same depth again is no change; another is.
    mailboxes.poll(&stores, &hub, &http).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(400), batches.recv())
            .await
            .is_err(),
        "no refresh for the same reading"
    );
    waiting.store(0, Ordering::SeqCst);
    mailboxes.poll(&stores, &hub, &http).await;
    assert_eq!(batches.recv().await.unwrap().topics, ["pool:a/p"]);
    assert!(matches!(
        mailboxes.looked_at("a", "p").get("p-w1"),
        Some(Mailbox::Known { messages: 1, .. })
    ));
}

/// The pool page's workers table with `mailboxes`, at `at(100)`.
fn workers_table(mailboxes: BTreeMap<String, Mailbox>) -> String {
    let pools = arcs([pool("a", "p", healthy("r1"))]);
    let leases = arcs([
        lease("a", "p-w1", "p", "r1", at(98), 15),
        lease("a", "p-w2", "p", "r1", at(98), 15),
        lease("a", "p-w3", "p", "r1", at(98), 15),
        lease("a", "p-old", "p", "r1", at(0), 15),
    ]);
    let src = crate::pages::pool::Sources {
        pool: Some(pools[0].clone()),
        actors: &[],
        leases: &leases,
        events: &[],
        mailboxes: &mailboxes,
    };
    let html = fragment(&crate::pages::pool::page("a", "p", src, at(100)), &frame()).into_string();
    let table = html.split(r#"<table id="workers">"#).nth(1).unwrap();
    table.split("</table>").next().unwrap().to_string()
}

/// The mailbox cell of `worker`'s row.
fn cell(table: &str, worker: &str) -> String {
    let row = table
        .split(&format!("<th scope=\"row\">{worker}</th>"))
        .nth(1)
        .unwrap();
    let row = row.split("</tr>").next().unwrap();
    let cell = row.split(r#"<td class="num mailbox">"#).nth(1).unwrap();
    cell.split("</td>").next().unwrap().to_string()
}

#[test]
fn the_workers_table_shows_each_workers_mailbox_depth_where_known_and_says_why_where_not() {
    let mailboxes = BTreeMap::from([
        (
            "p-w1".to_string(),
            Mailbox::Known {
                messages: 12,
                read_at: at(97),
            },
        ),
        (
            "p-w2".to_string(),
            Mailbox::Unknown(
                "its metrics at 10.1.2.3:8080 could not be reached: outside the pod network".into(),
            ),
        ),
        // A reading of a worker whose Lease has since expired is not shown.
        (
            "p-old".to_string(),
            Mailbox::Known {
                messages: 5,
                read_at: at(0),
            },
        ),
    ]);
    let table = workers_table(mailboxes);
    assert!(table.contains(r#"<th scope="col">Mailboxes</th>"#), "{table}");
    let known = cell(&table, "p-w1");
    assert!(known.contains(">12</span>"), "{known}");
    assert!(
        known.contains("troupe_worker_mailbox_depth") && known.contains("read 3s ago"),
        "{known}"
    );
    let unreachable = cell(&table, "p-w2");
    assert!(
        unreachable.contains(r#"<span aria-hidden="true">—</span>"#),
        "a dash, not a number: {unreachable}"
    );
    assert!(
        unreachable.contains(r#"title="Not known: its metrics at 10.1.2.3:8080 could not be reached"#),
        "why, as a tooltip: {unreachable}"
    );
    assert!(
        unreachable.contains(r#"<span class="visually-hidden">not known: its metrics at 10.1.2.3:8080"#),
        "why, in words for a screen reader: {unreachable}"
    );
    assert!(cell(&table, "p-w3").contains(NOT_READ_YET), "not read yet");
    let old = cell(&table, "p-old");
    assert!(!old.contains('5') && old.contains("expired"), "{old}");
}
