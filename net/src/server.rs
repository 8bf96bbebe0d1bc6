//! One way to serve HTTP, with every limit in force. `axum::serve` sets no timer, so a client
//! that sends its headers slowly (or opens connections and says nothing) holds them for ever;
//! this server reads each request's headers within [`Limits::header_read`] (idle keep-alive
//! connections included: hyper's header timer runs while it waits for the next request),
//! bounds each request's handling (its body included) by [`Limits::request`], and caps the
//! connections open and the requests in flight, answering 503 to the excess at once rather than
//! queueing it.

use std::{future::Future, io, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};
use tower_http::timeout::TimeoutLayer;

/// What one server allows. Each server states its values as named constants (with why).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request's headers (and, on a kept-alive connection, the wait for the next request)
    /// must arrive within this; the connection is closed otherwise.
    pub header_read: Duration,
    /// From the headers to the response: reading the body and the handler. 408 when exceeded.
    pub request: Duration,
    /// Connections open at once; one more is answered 503 and closed.
    pub connections: usize,
    /// Requests being handled at once; one more is answered 503.
    pub in_flight: usize,
    /// On shutdown, how long requests in flight may take to finish.
    pub drain: Duration,
}

/// How long a refused connection may take to receive its 503.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// After an accept error (out of file descriptors), the pause before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

fn busy(what: &str) -> String {
    format!("the server is busy ({what}); retry shortly")
}

/// The 503 a connection over the cap gets before it is closed.
fn refusal() -> Vec<u8> {
    let body = serde_json::json!({ "error": busy("too many connections") }).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(&refusal()).await?;
        stream.shutdown().await
    })
    .await;
}

async fn shed(State(slots): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    let Ok(_slot) = slots.try_acquire_owned() else {
        let mut r = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "error": busy("too many requests in flight") })),
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return r;
    };
    next.run(req).await
}

/// `app` with the request timeout and the cap on requests in flight (the cap outermost, so a
/// refused request costs nothing).
pub fn with_limits(app: Router, limits: &Limits) -> Router {
    app.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request,
    ))
    .layer(middleware::from_fn_with_state(
        Arc::new(Semaphore::new(limits.in_flight)),
        shed,
    ))
}

/// Serves `app` on `listener` under `limits` until `shutdown` completes; then stops accepting,
/// lets the requests in flight finish (at most [`Limits::drain`]) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let app = with_limits(app, &limits);
    let connections = Arc::new(Semaphore::new(limits.connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = async { stop.wait_for(|stop| *stop).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.drain, connections.acquire_many(all)).await;
    Ok(())
}
