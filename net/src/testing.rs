//! Raw-socket clients for tests of the servers (feature `testing`): what a slow, large or
//! unauthenticated client sees, byte for byte.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::Router;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
};

use crate::{Limits, serve};

/// How long a test waits for an answer before taking what it has.
const PATIENCE: Duration = Duration::from_secs(5);

/// Serves `app` under `limits` on a free port of 127.0.0.1; the server stops when the returned
/// `Notify` is notified.
pub async fn start(app: Router, limits: Limits) -> (SocketAddr, Arc<Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("a bound address");
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

/// Everything the server sends until it closes the connection (or [`PATIENCE`] passes).
pub async fn answer(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The status code of `GET path` (0: no answer).
pub async fn status_of(addr: SocketAddr, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let text = answer(&mut s).await;
    text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A POST to `path` announcing `length` bytes of JSON, of which only `body` is sent; with a
/// bearer `token` if given. Returns the answer, which must come without the rest of the body.
pub async fn post(addr: SocketAddr, path: &str, token: Option<&str>, length: usize, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n{auth}content-length: {length}\r\nconnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("send the head");
    let _ = s.write_all(body).await;
    answer(&mut s).await
}

/// Sends the start of a GET of `path`, then one header byte every 100 ms, and returns how long
/// the server took to close the connection (`None`: still open after 5 s).
pub async fn slow_headers_cut_off_after(addr: SocketAddr, path: &str) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    let head = format!("GET {path} HTTP/1.1\r\nhost: t\r\nx-slow: ");
    s.write_all(head.as_bytes()).await.expect("send the start");
    while started.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(b"a").await.is_err() {
            return Some(started.elapsed());
        }
        let mut probe = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await {
            return Some(started.elapsed());
        }
    }
    None
}
