//! The shared server against real sockets on 127.0.0.1: slow clients are cut off, the excess
//! over each cap is answered 503 at once, slow handlers answer 408.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use tokio::{net::TcpStream, sync::Notify};
use troupe_net::{
    Limits,
    testing::{answer, slow_headers_cut_off_after, start, status_of},
};

const LIMITS: Limits = Limits {
    header_read: Duration::from_millis(300),
    request: Duration::from_secs(5),
    connections: 8,
    in_flight: 2,
    drain: Duration::from_secs(1),
};

fn app() -> Router {
    Router::new().route("/ok", get(|| async { "ok" }))
}

/// `app` with a route that sleeps `for_` before answering.
fn with_sleep(path: &str, for_: Duration) -> Router {
    app().route(
        path,
        get(move || async move {
            tokio::time::sleep(for_).await;
            "done"
        }),
    )
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off_after_the_header_timeout() {
    let (addr, _stop) = start(app(), LIMITS).await;
    let cut = slow_headers_cut_off_after(addr, "/ok").await;
    assert!(cut.is_some_and(|d| d < Duration::from_secs(2)), "{cut:?}");
    assert_eq!(status_of(addr, "/ok").await, 200, "other clients are served");
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let (addr, _stop) = start(app(), LIMITS).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    assert_eq!(answer(&mut s).await, "", "closed without a word");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn requests_over_the_in_flight_limit_are_answered_503_at_once() {
    let release = Arc::new(Notify::new());
    let held = release.clone();
    let app = app().route(
        "/slow",
        get(move || {
            let held = held.clone();
            async move {
                held.notified().await;
                "done"
            }
        }),
    );
    let (addr, _stop) = start(app, LIMITS).await;
    let slow: Vec<_> = (0..LIMITS.in_flight)
        .map(|_| tokio::spawn(status_of(addr, "/slow")))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(status_of(addr, "/ok").await, 503);
    }
    assert!(started.elapsed() < Duration::from_secs(1), "503 without waiting");
    release.notify_waiters();
    for s in slow {
        assert_eq!(s.await.unwrap(), 200);
    }
    assert_eq!(
        status_of(addr, "/ok").await,
        200,
        "served again once they finished"
    );
}

#[tokio::test]
async fn connections_over_the_cap_are_answered_503_and_closed() {
    let limits = Limits {
        connections: 2,
        header_read: Duration::from_secs(5),
        ..LIMITS
    };
    let (addr, _stop) = start(app(), limits).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let said = answer(&mut third).await;
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(said.contains("too many connections"), "{said}");
    drop(open);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status_of(addr, "/ok").await, 200);
}

#[tokio::test]
async fn a_request_that_takes_longer_than_the_request_timeout_is_answered_408() {
    let limits = Limits {
        request: Duration::from_millis(200),
        ..LIMITS
    };
    let (addr, _stop) = start(with_sleep("/stuck", Duration::from_secs(60)), limits).await;
    let started = Instant::now();
    assert_eq!(status_of(addr, "/stuck").await, 408);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn on_shutdown_a_request_in_flight_finishes_and_new_connections_are_refused() {
    let (addr, stop) = start(with_sleep("/short", Duration::from_millis(300)), LIMITS).await;
    let inflight = tokio::spawn(status_of(addr, "/short"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.notify_one();
    assert_eq!(inflight.await.unwrap(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
}
