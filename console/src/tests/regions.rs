//! Live regions rendered once per batch: browsers that fetch the same region after the same
//! batch share one render of it (the same bytes); a new batch, another URL, another way of being
//! served, or a second gone by renders afresh; whole pages are never shared.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use axum::{
    body::{Body, Bytes},
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use kube::runtime::watcher::Event as WatchEvent;
use tower::ServiceExt;
use troupe_crds::ActorPhase;

use super::*;
use crate::{
    access::{Access, Acts},
    csrf::Csrf,
    live::{
        Change,
        regions::{FRESH, Got, KEPT, Key, Region, Regions},
    },
    pages::Served,
    server::{App, router},
    watch::Stores,
};

fn key(uri: &str) -> Key {
    Key {
        uri: uri.into(),
        served: Served::Local,
    }
}

fn region(text: &'static str) -> Region {
    Region {
        status: StatusCode::OK,
        body: Bytes::from_static(text.as_bytes()),
        took: Default::default(),
    }
}

#[tokio::test]
async fn a_region_is_rendered_once_for_every_request_of_its_batch_and_again_when_anything_differs() {
    let regions = Regions::default();
    let renders = AtomicUsize::new(0);
    let render = |text: &'static str| {
        let renders = &renders;
        move || {
            renders.fetch_add(1, Ordering::SeqCst);
            region(text)
        }
    };
    let t0 = Instant::now();
    let (first, got) = regions.get_at(key("/actors"), 3, t0, render("one")).await;
    assert_eq!((first.body.as_ref(), got), (&b"one"[..], Got::Rendered));
    let (again, got) = regions
        .get_at(key("/actors"), 3, t0 + FRESH / 2, render("two"))
        .await;
    assert_eq!(
        (again.body.as_ref(), got),
        (&b"one"[..], Got::Shared),
        "the same bytes, not rendered again"
    );
    assert_eq!(renders.load(Ordering::SeqCst), 1);

    let at = t0 + FRESH / 2;
    for (k, seq, when, why) in [
        (key("/actors"), 4, at, "a newer batch"),
        (key("/actors?page=2"), 4, at, "another URL"),
        (
            Key {
                uri: "/actors".into(),
                served: Served::InCluster(Acts::Off),
            },
            4,
            at,
            "served otherwise (other forms and notices)",
        ),
        (
            key("/actors"),
            4,
            t0 + FRESH * 2,
            "no longer fresh (ages shown would be stale)",
        ),
    ] {
        let before = renders.load(Ordering::SeqCst);
        let (_, got) = regions.get_at(k, seq, when, render("fresh")).await;
        assert_eq!(got, Got::Rendered, "{why}");
        assert_eq!(renders.load(Ordering::SeqCst), before + 1, "{why}");
    }
}

#[tokio::test]
async fn requests_that_arrive_while_a_region_renders_wait_for_that_render() {
    let regions = Arc::new(Regions::default());
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    // The first render blocks its thread until told to finish, as a long render would.
    let first = {
        let regions = regions.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(regions.get(key("/"), 1, || {
                    started_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    region("slow")
                }))
        })
    };
    started_rx.recv().unwrap();
    let waiter = {
        let regions = regions.clone();
        tokio::spawn(async move { regions.get(key("/"), 1, || region("second")).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "it waits for the render under way");
    go_tx.send(()).unwrap();
    let (r, got) = waiter.await.unwrap();
    assert_eq!((r.body.as_ref(), got), (&b"slow"[..], Got::Shared));
    assert_eq!(first.join().unwrap().1, Got::Rendered);
}

#[tokio::test]
async fn regions_kept_are_bounded() {
    let regions = Regions::default();
    let now = Instant::now();
    for i in 0..KEPT * 3 {
        let uri: &'static str = format!("/actors?name={i}").leak();
        regions.get_at(key(uri), 1, now, || region("x")).await;
        assert!(regions.len() <= KEPT);
    }
}

/// A console on `actors`, its hub, and the writer of its actors' store.
fn console(
    actors: Vec<troupe_crds::Actor>,
) -> (
    axum::Router,
    Arc<App>,
    kube::runtime::reflector::store::Writer<troupe_crds::Actor>,
) {
    let api = tower::service_fn(|_req: Request<kube::client::Body>| async {
        Err::<http::Response<http_body_util::Full<Bytes>>, tower::BoxError>("no API server here".into())
    });
    let client = kube::Client::new(api, "default");
    let (stores, writer) = Stores::with(actors, vec![]);
    let app = super::actions::test_app(stores, client, Access::Local, Csrf::fixed("t"));
    (router(app.clone()), app, writer)
}

/// GET `path` (its live region alone when `fragment`): the Server-Timing entry's name and the
/// body.
async fn fetch(app: &axum::Router, path: &str, fragment: bool) -> (String, String) {
    let mut req = Request::get(path).header("host", "127.0.0.1:8080");
    if fragment {
        req = req.header("x-troupe-fragment", "live");
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let timing = resp.headers()["server-timing"].to_str().unwrap();
    let name = timing.split(';').next().unwrap().to_string();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (name, String::from_utf8(body.to_vec()).unwrap())
}

fn many_actors(n: usize) -> Vec<troupe_crds::Actor> {
    (0..n)
        .map(|i| actor("a", &format!("x{i:05}"), "p", ActorPhase::Running, "w1", "r1"))
        .collect()
}

#[tokio::test]
async fn twenty_five_browsers_fetching_the_actors_table_after_one_batch_cost_one_render_and_a_new_batch_shows_the_change()
 {
    let (router, app, mut writer) = console(many_actors(2_000));
    let fetches: Vec<_> = (0..25)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move { fetch(&router, "/actors", true).await })
        })
        .collect();
    let mut got = Vec::new();
    for f in fetches {
        got.push(f.await.unwrap());
    }
    let rendered = got.iter().filter(|(t, _)| t == "render").count();
    let shared = got.iter().filter(|(t, _)| t == "shared").count();
    assert_eq!((rendered, shared), (1, 24), "one render for the 25 requests");
    assert!(
        got.iter().all(|(_, body)| body == &got[0].1),
        "the same bytes to each"
    );
    assert!(got[0].1.contains("x00000") && got[0].1.contains("data-seq=\"0\""));

    // A change: in the store, then as the watch reports it, a batch.
    let mut changed = actor("a", "x00000", "p", ActorPhase::Failed, "w1", "r1");
    changed.spec.behavior = "renamed-behaviour".into();
    writer.apply_watcher_event(&WatchEvent::Apply(changed));
    let mut batches = app.hub.subscribe();
    app.hub.report(Change::Actor {
        namespace: "a".into(),
        name: "x00000".into(),
        pool: "p".into(),
    });
    assert_eq!(batches.recv().await.unwrap().seq, 1);
    let (timing, body) = fetch(&router, "/actors", true).await;
    assert_eq!(timing, "render", "a new batch is rendered afresh");
    assert!(
        body.contains("renamed-behaviour") && body.contains("data-seq=\"1\""),
        "{body}"
    );
    assert_eq!(fetch(&router, "/actors", true).await.0, "shared");
}

#[tokio::test]
async fn whole_pages_are_rendered_for_each_request() {
    let (router, _, _) = console(many_actors(3));
    for _ in 0..2 {
        let (timing, body) = fetch(&router, "/actors", false).await;
        assert_eq!(timing, "render");
        assert!(body.starts_with("<!DOCTYPE html>"));
    }
}
