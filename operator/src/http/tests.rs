//! The operator's server on a real socket: the webhook checks the token before it reads a body,
//! reads at most `MAX_PAYLOAD`, and slow clients are cut off.

use std::{net::SocketAddr, time::Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::*;
use crate::fixtures::{Caches, test_context};

const TOKEN: &str = "alert-token";

/// The operator's server on a free port, leading, with `limits`.
async fn start(limits: troupe_net::Limits) -> SocketAddr {
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _api = api;
        troupe_net::serve(listener, app(health, sink), limits, std::future::pending()).await
    });
    addr
}

/// Sends the head of a POST to the webhook announcing `length` bytes, then `sent` bytes of it,
/// and returns what the server answers (without sending the rest).
async fn post_partly(addr: SocketAddr, token: Option<&str>, length: usize, sent: usize) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /v1/alerts HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n{auth}content-length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(&vec![b' '; sent]).await;
    read_answer(&mut s).await
}

async fn read_answer(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

const TEN_MIB: usize = 10 * 1024 * 1024;

#[tokio::test]
async fn an_unauthenticated_ten_mebibyte_body_is_answered_401_before_the_body_is_sent() {
    let addr = start(LIMITS).await;
    let started = Instant::now();
    // 64 KiB of the announced 10 MiB: the answer must come without the rest.
    let answer = post_partly(addr, None, TEN_MIB, 64 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("bearer token"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let wrong = post_partly(addr, Some("guess"), TEN_MIB, 0).await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
}

#[tokio::test]
async fn a_body_over_the_limit_with_the_valid_token_is_answered_413_unread() {
    let addr = start(LIMITS).await;
    let answer = post_partly(addr, Some(TOKEN), TEN_MIB, 0).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_alerts"), "{answer}");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_with_the_valid_token_is_answered_413() {
    let addr = start(LIMITS).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/alerts HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {TOKEN}\r\ntransfer-encoding: chunked\r\n\r\n"
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
    let addr = start(LIMITS).await;
    let body = r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"X"}}]}"#;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /v1/alerts HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {TOKEN}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let answer = read_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_to_the_operator_is_cut_off() {
    let limits = troupe_net::Limits {
        header_read: Duration::from_millis(300),
        ..LIMITS
    };
    let addr = start(limits).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: t\r\nx-slow: ")
        .await
        .unwrap();
    let mut closed = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        let mut probe = [0u8; 16];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "still open after 3 s of slow headers");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
