use std::time::Instant;

use troupe_crds::ActorPhase;

use super::*;
use crate::query::{ActorQuery, PAGE_SIZE, actor_page};

fn many(n: usize) -> Vec<Arc<Actor>> {
    let phases = ActorPhase::ALL;
    arcs((0..n).map(|i| {
        actor(
            if i % 2 == 0 { "even" } else { "odd" },
            &format!("actor-{i:05}"),
            if i % 3 == 0 { "p3" } else { "p" },
            phases[i % phases.len()],
            &format!("w-{}", i % 4),
            if i % 5 == 0 { "abc123" } else { "def456" },
        )
    }))
}

#[test]
fn each_filter_keeps_only_the_actors_that_match_it_and_filters_combine() {
    let actors = many(100);
    let count = |q: ActorQuery| actor_page(&actors, &q).matched;
    assert_eq!(count(ActorQuery::default()), 100);
    assert_eq!(
        count(ActorQuery {
            name: "ACTOR-0001".into(),
            ..Default::default()
        }),
        10,
        "substring, any case"
    );
    assert_eq!(
        count(ActorQuery {
            namespace: "even".into(),
            ..Default::default()
        }),
        50
    );
    assert_eq!(
        count(ActorQuery {
            namespace: "eve".into(),
            ..Default::default()
        }),
        0,
        "namespace is exact"
    );
    assert_eq!(
        count(ActorQuery {
            phase: "running".into(),
            ..Default::default()
        }),
        14
    );
    assert_eq!(
        count(ActorQuery {
            revision: "abc".into(),
            ..Default::default()
        }),
        20,
        "revision by prefix"
    );
    assert_eq!(
        count(ActorQuery {
            revision: "123".into(),
            ..Default::default()
        }),
        0,
        "not by suffix"
    );
    assert_eq!(
        count(ActorQuery {
            worker: "w-1".into(),
            ..Default::default()
        }),
        25
    );
    assert_eq!(
        count(ActorQuery {
            pool: "p3".into(),
            ..Default::default()
        }),
        34
    );
    assert_eq!(
        count(ActorQuery {
            behavior: "count".into(),
            ..Default::default()
        }),
        100
    );
    assert_eq!(
        count(ActorQuery {
            namespace: "even".into(),
            worker: "w-0".into(),
            ..Default::default()
        }),
        25
    );
}

#[test]
fn a_phase_that_does_not_exist_matches_no_actor_and_an_actor_without_status_counts_as_pending() {
    let mut fresh = actor("a", "new", "p", ActorPhase::Running, "", "");
    fresh.status = None;
    let actors = arcs([fresh]);
    assert_eq!(
        actor_page(
            &actors,
            &ActorQuery {
                phase: "Pending".into(),
                ..Default::default()
            }
        )
        .matched,
        1
    );
    assert_eq!(
        actor_page(
            &actors,
            &ActorQuery {
                phase: "Sleeping".into(),
                ..Default::default()
            }
        )
        .matched,
        0
    );
}

#[test]
fn pages_hold_a_hundred_actors_in_name_order_and_a_page_past_the_end_shows_the_last() {
    let actors = many(250);
    let first = actor_page(
        &actors,
        &ActorQuery {
            namespace: "even".into(),
            ..Default::default()
        },
    );
    assert_eq!(
        (first.matched, first.pages, first.page, first.rows.len()),
        (125, 2, 1, PAGE_SIZE)
    );
    assert_eq!(first.rows[0].name, "actor-00000");
    assert_eq!(first.rows[1].name, "actor-00002");
    assert_eq!(first.first(), 1);
    let last = actor_page(
        &actors,
        &ActorQuery {
            namespace: "even".into(),
            page: Some(9),
            ..Default::default()
        },
    );
    assert_eq!((last.page, last.rows.len(), last.first()), (2, 25, 101));
    let none = actor_page(
        &actors,
        &ActorQuery {
            name: "nobody".into(),
            ..Default::default()
        },
    );
    assert_eq!((none.matched, none.pages, none.first()), (0, 1, 0));
}

#[test]
fn every_page_of_actors_in_any_store_order_is_the_matching_slice_of_the_name_order() {
    // The store's order is a hash map's: shuffled here (7919 is prime to 1,050), so that cutting a
    // page out without sorting everything is checked against a full sort, page by page.
    let mut actors = many(1050);
    actors.sort_by_key(|a| {
        let n: usize = a.metadata.name.as_deref().unwrap()[6..].parse().unwrap();
        (n * 7919) % 1050
    });
    let mut all: Vec<(String, String)> = actors
        .iter()
        .map(|a| {
            (
                a.metadata.namespace.clone().unwrap(),
                a.metadata.name.clone().unwrap(),
            )
        })
        .collect();
    all.sort();
    for page in 1..=11 {
        let got = actor_page(
            &actors,
            &ActorQuery {
                page: Some(page),
                ..Default::default()
            },
        );
        let names: Vec<(String, String)> = got
            .rows
            .iter()
            .map(|r| (r.namespace.clone(), r.name.clone()))
            .collect();
        let from = (page - 1) * PAGE_SIZE;
        assert_eq!(names, all[from..(from + PAGE_SIZE).min(all.len())], "page {page}");
    }
    // Filtered, on a middle page: the same against the filtered order.
    let q = ActorQuery {
        namespace: "odd".into(),
        name: "ACTOR-00".into(),
        page: Some(3),
        ..Default::default()
    };
    let want: Vec<&(String, String)> = all
        .iter()
        .filter(|(ns, name)| ns == "odd" && name.starts_with("actor-00"))
        .skip(200)
        .take(PAGE_SIZE)
        .collect();
    let got = actor_page(&actors, &q);
    assert_eq!(got.matched, 500);
    assert_eq!(
        got.rows
            .iter()
            .map(|r| (r.namespace.clone(), r.name.clone()))
            .collect::<Vec<_>>(),
        want.into_iter().cloned().collect::<Vec<_>>()
    );
}

#[test]
fn a_page_link_keeps_the_filters_encoded_and_leaves_out_empty_ones_and_page_one() {
    let q = ActorQuery {
        name: "a b&c".into(),
        phase: "Running".into(),
        ..Default::default()
    };
    assert_eq!(q.at_page(1), "name=a%20b%26c&phase=Running");
    assert_eq!(q.at_page(3), "name=a%20b%26c&phase=Running&page=3");
}

#[test]
fn a_page_of_ten_thousand_actors_is_cut_filtered_and_rendered_in_well_under_a_second() {
    let actors = many(10_000);
    let started = Instant::now();
    let page = crate::pages::actors::page(
        &actors,
        &ActorQuery {
            page: Some(50),
            ..Default::default()
        },
    );
    let html = maud::html! { (page.live) }.into_string();
    let all = started.elapsed();
    let started = Instant::now();
    let _ = crate::pages::actors::page(
        &actors,
        &ActorQuery {
            phase: "Failed".into(),
            worker: "w-2".into(),
            ..Default::default()
        },
    );
    let filtered = started.elapsed();
    eprintln!("10,000 actors: page 50 built in {all:?}, a filtered page in {filtered:?} (unoptimised build)");
    assert!(
        html.contains("Showing 4901–5000 of 10000 actors"),
        "{}",
        &html[..200.min(html.len())]
    );
    assert!(all.as_millis() < 1000 && filtered.as_millis() < 1000);
}
