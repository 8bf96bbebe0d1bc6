//! The shared server against real sockets on 127.0.0.1: slow clients are cut off, the excess
//! over each cap is answered 503 at once, slow handlers answer 408.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use troupe_net::{Limits, serve};

const LIMITS: Limits = Limits {
    header_read: Duration::from_millis(300),
    request: Duration::from_secs(5),
    connections: 8,
    in_flight: 2,
    drain: Duration::from_secs(1),
};

/// Serves `app` under `limits` on a free port; the server stops when `stop` is notified.
async fn start(app: Router, limits: Limits) -> (SocketAddr, Arc<Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(Notify::new());
    let stopped = stop.clone();
    tokio::spawn(serve(
        listener,
        app,
        limits,
        async move { stopped.notified().await },
    ));
    (addr, stop)
}

/// Everything the server sends until it closes the connection (or `within` passes).
async fn read_all(stream: &mut TcpStream, within: Duration) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

async fn status_of(addr: SocketAddr, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let text = read_all(&mut s, Duration::from_secs(10)).await;
    text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn app() -> Router {
    Router::new().route("/ok", get(|| async { "ok" }))
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off_after_the_header_timeout() {
    let (addr, _stop) = start(app(), LIMITS).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"GET /ok HTTP/1.1\r\nhost: t\r\n").await.unwrap();
    // One header byte every 100 ms: never a whole request within the 300 ms timeout.
    let mut cut = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(b"x").await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "the connection was still open after 5 s of slow headers");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut after {:?}",
        started.elapsed()
    );
    assert_eq!(status_of(addr, "/ok").await, 200, "other clients are served");
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let (addr, _stop) = start(app(), LIMITS).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let said = read_all(&mut s, Duration::from_secs(5)).await;
    assert_eq!(said, "", "closed without a word");
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
    let said = read_all(&mut third, Duration::from_secs(2)).await;
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(said.contains("too many connections"), "{said}");
    drop(open);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status_of(addr, "/ok").await, 200);
}

#[tokio::test]
async fn a_request_that_takes_longer_than_the_request_timeout_is_answered_408() {
    let app = app().route(
        "/stuck",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        }),
    );
    let limits = Limits {
        request: Duration::from_millis(200),
        ..LIMITS
    };
    let (addr, _stop) = start(app, limits).await;
    let started = Instant::now();
    assert_eq!(status_of(addr, "/stuck").await, 408);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn on_shutdown_a_request_in_flight_finishes_and_new_connections_are_refused() {
    let app = app().route(
        "/short",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "done"
        }),
    );
    let (addr, stop) = start(app, LIMITS).await;
    let inflight = tokio::spawn(status_of(addr, "/short"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.notify_one();
    assert_eq!(inflight.await.unwrap(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
}
