//! The operator's server on a real socket: the webhook checks the token before it reads a body,
//! reads at most `MAX_PAYLOAD`, and slow clients are cut off.

use std::{net::SocketAddr, time::Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use troupe_net::testing::{post, slow_headers_cut_off_after};

use super::*;
use crate::fixtures::{Caches, test_context};

const TOKEN: &str = "alert-token";
const ALERTS: &str = "/v1/alerts";
const TEN_MIB: usize = 10 * 1024 * 1024;

/// The operator's server on a free port, leading, with `limits`; and its mock API server.
async fn start(limits: troupe_net::Limits) -> (SocketAddr, crate::fixtures::ApiServer) {
    let (ctx, api) = test_context(Caches::default());
    let health = Arc::new(Health {
        ready: true.into(),
        metrics: ctx.metrics.clone(),
    });
    let sink = Arc::new(AlertSink {
        token: Some(TOKEN.into()),
        ctx,
        leader: Arc::new(true.into()),
    });
    let (addr, _stop) = troupe_net::testing::start(app(health, sink), limits).await;
    (addr, api)
}

#[tokio::test]
async fn an_unauthenticated_ten_mebibyte_body_is_answered_401_before_the_body_is_sent() {
    let (addr, _api) = start(LIMITS).await;
    let started = Instant::now();
    // 64 KiB of the announced 10 MiB: the answer must come without the rest.
    let answer = post(addr, ALERTS, None, TEN_MIB, &[b' '; 64 * 1024]).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("bearer token"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let wrong = post(addr, ALERTS, Some("guess"), TEN_MIB, b"").await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
}

#[tokio::test]
async fn a_body_over_the_limit_with_the_valid_token_is_answered_413_unread() {
    let (addr, _api) = start(LIMITS).await;
    let answer = post(addr, ALERTS, Some(TOKEN), TEN_MIB, b"").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_alerts"), "{answer}");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_with_the_valid_token_is_answered_413() {
    let (addr, _api) = start(LIMITS).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {ALERTS} HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {TOKEN}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = s.into_split();
    // 2 MiB in 64 KiB chunks, no length announced: the server stops after MAX_PAYLOAD.
    let sender = tokio::spawn(async move {
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..32 {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            if write.write_all(&framed).await.is_err() {
                return;
            }
        }
        let _ = write.write_all(b"0\r\n\r\n").await;
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut buf)).await;
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    sender.abort();
}

#[tokio::test]
async fn a_valid_alertmanager_payload_with_the_token_is_accepted() {
    let (addr, _api) = start(LIMITS).await;
    let body = r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"X"}}]}"#;
    let answer = post(addr, ALERTS, Some(TOKEN), body.len(), body.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_to_the_operator_is_cut_off() {
    let limits = troupe_net::Limits {
        header_read: Duration::from_millis(300),
        ..LIMITS
    };
    let (addr, _api) = start(limits).await;
    let cut = slow_headers_cut_off_after(addr, "/metrics").await;
    assert!(cut.is_some_and(|d| d < Duration::from_secs(2)), "{cut:?}");
}
