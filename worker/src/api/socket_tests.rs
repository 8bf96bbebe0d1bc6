//! The worker's API on a real socket: the token is checked before the body is read, bodies and
//! forwarded answers are bounded, and the token is never sent to an address that is not plain.

use std::{
    net::SocketAddr,
    sync::atomic::AtomicUsize,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use troupe_net::testing::post;

use super::*;
use crate::{builtin, host::HostConfig, metrics::Metrics};

pub(super) const TOKEN: &str = "pool-token";

/// The API of a started worker whose host is `host`, on a free port, with the pool's token.
pub(super) async fn serve(host: Arc<Host>, forwarder: Arc<Forwarder>) -> SocketAddr {
    let state = Arc::new(ApiState {
        host,
        token: Some(TOKEN.into()),
        forwarder,
        started: AtomicBool::new(true),
        ready: AtomicBool::new(true),
    });
    let limits = limits(Duration::from_secs(1));
    troupe_net::testing::start(router(state), limits).await.0
}

/// The worker's API on a free port, with `routes` for actors hosted elsewhere.
async fn start(routes: HashMap<ActorKey, String>) -> SocketAddr {
    let host = Host::start(HostConfig::default(), builtin::registry(), Metrics::new())
        .await
        .unwrap();
    serve(
        host,
        Arc::new(Forwarder::with_static_routes(Some(TOKEN.into()), routes)),
    )
    .await
}

/// A server that counts its connections and answers each with a JSON body of `size` bytes.
async fn peer_answering(size: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = [0u8; 8192];
                let _ = s.read(&mut head).await;
                let body = format!("\"{}\"", "x".repeat(size.saturating_sub(2)));
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

const TELL: &str = "/v1/namespaces/ns/actors/e/tell";

#[tokio::test]
async fn an_unauthenticated_ten_mebibyte_message_is_answered_401_before_the_body_is_sent() {
    let addr = start(HashMap::new()).await;
    let started = Instant::now();
    let answer = post(addr, TELL, None, 10 * 1024 * 1024, &[b' '; 64 * 1024]).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_message_over_the_limit_with_the_valid_token_is_answered_413_unread() {
    let addr = start(HashMap::new()).await;
    let answer = post(addr, TELL, Some(TOKEN), MAX_BODY + 1, b"").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than"), "{answer}");
}

#[tokio::test]
async fn a_forwarded_answer_larger_than_the_limit_is_refused_not_relayed() {
    let (peer, seen) = peer_answering(FORWARDED_ANSWER_MAX + 10).await;
    let key = ActorKey::new("ns", "far");
    let addr = start(HashMap::from([(key, peer.to_string())])).await;
    let answer = post(addr, "/v1/namespaces/ns/actors/far/ask", Some(TOKEN), 1, b"1").await;
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("larger than the limit"), "{answer}");
}

#[tokio::test]
async fn a_forwarded_answer_within_the_limit_is_relayed() {
    let (peer, _) = peer_answering(100).await;
    let key = ActorKey::new("ns", "far");
    let addr = start(HashMap::from([(key, peer.to_string())])).await;
    let answer = post(addr, "/v1/namespaces/ns/actors/far/ask", Some(TOKEN), 1, b"1").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn the_token_is_never_sent_to_an_address_with_credentials_or_a_path() {
    let (peer, seen) = peer_answering(10).await;
    let routes = HashMap::from([
        (ActorKey::new("ns", "a"), format!("evil@{peer}")),
        (ActorKey::new("ns", "b"), format!("{peer}/admin")),
        (ActorKey::new("ns", "c"), format!("http://{peer}")),
        (ActorKey::new("ns", "d"), format!("{peer}#@10.0.0.1:80")),
    ]);
    let addr = start(routes).await;
    for name in ["a", "b", "c", "d"] {
        let path = format!("/v1/namespaces/ns/actors/{name}/tell");
        let answer = post(addr, &path, Some(TOKEN), 1, b"1").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{name}: {answer}");
        assert!(answer.contains("not a worker address"), "{name}: {answer}");
    }
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the peer was contacted");
}

#[tokio::test]
async fn a_hostile_actor_name_is_never_forwarded() {
    let (peer, seen) = peer_answering(10).await;
    let routes = HashMap::from([(ActorKey::new("ns", "../x"), peer.to_string())]);
    let addr = start(routes).await;
    for path in [
        "/v1/namespaces/ns/actors/..%2Fx/tell",
        "/v1/namespaces/ns/actors/%2E%2E/tell",
        "/v1/namespaces/ns/actors/a%3Fb/tell",
        "/v1/namespaces/ns/actors/%C3%BC/tell",
    ] {
        let answer = post(addr, path, Some(TOKEN), 1, b"1").await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
    }
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the peer was contacted");
}

/// A worker API on a free port whose host the test drives, routing `routes` elsewhere.
async fn start_with_host(routes: HashMap<ActorKey, String>, wait: Duration) -> (SocketAddr, Arc<Host>) {
    let host = Host::start(HostConfig::default(), builtin::registry(), Metrics::new())
        .await
        .unwrap();
    let forwarder = Forwarder::with_static_routes(Some(TOKEN.into()), routes).with_move_buffer(wait, 2);
    (serve(host.clone(), Arc::new(forwarder)).await, host)
}

fn counter() -> crate::host::Assignment {
    crate::host::Assignment::of(
        serde_json::from_value(serde_json::json!({"pool": "p", "behavior": "counter"})).unwrap(),
        Some(1),
    )
}

#[tokio::test]
async fn a_tell_for_a_moving_actor_waits_for_its_next_worker_and_is_accepted_there_once() {
    let key = ActorKey::new("ns", "e");
    // B is the actor's next worker; it has not started it yet.
    let (b, next) = start_with_host(HashMap::new(), Duration::from_secs(5)).await;
    let (a, entry) = start_with_host([(key.clone(), b.to_string())].into(), Duration::from_secs(5)).await;
    let arrives = tokio::spawn({
        let next = next.clone();
        let key = key.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            next.assign(key, counter()).await;
        }
    });
    let answer = post(a, TELL, Some(TOKEN), 1, b"5").await;
    assert!(
        answer.starts_with("HTTP/1.1 202"),
        "accepted once B ran it: {answer}"
    );
    arrives.await.unwrap();
    let value = next
        .ask(&key, serde_json::json!(0), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(value["value"], 5, "handled once, on B");
    assert!(
        entry
            .metrics()
            .render()
            .contains("troupe_worker_move_waits_total 1")
    );
}

#[tokio::test]
async fn a_tell_for_an_actor_that_never_arrives_gets_503_after_the_wait_and_the_buffer_is_bounded() {
    let key = ActorKey::new("ns", "e");
    let (b, _next) = start_with_host(HashMap::new(), Duration::from_secs(5)).await;
    let (a, _) = start_with_host([(key.clone(), b.to_string())].into(), Duration::from_millis(600)).await;
    let started = Instant::now();
    // Three at once on a buffer of two: one is answered at once, two after the wait.
    let answers = futures::future::join_all((0..3).map(|_| post(a, TELL, Some(TOKEN), 1, b"1"))).await;
    let mut full = 0;
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        full += usize::from(answer.contains("already wait for moving actors"));
    }
    assert_eq!(full, 1, "{answers:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the others waited: {:?} {answers:?}",
        started.elapsed()
    );
}
