//! `troupe-testpod`: a tiny HTTP server that the node agent's tests run as a pod
//! (image `troupe/testpod`). It binds `$POD_IP:$PORT` and answers:
//! - `/healthz` 200, or 500 while a file `unhealthy` exists in its working directory;
//! - `/readyz` 200, or 503 while a file `unready` exists;
//! - `/env` the downward-API env it was given, as JSON.
//!
//! `EXIT_AFTER_MS` makes it exit with code 3 after that long (a crash); `IGNORE_SIGTERM=1` makes
//! it ignore SIGTERM (to prove the grace period ends in SIGKILL).

use std::{path::Path, time::Duration};

use axum::{Json, Router, http::StatusCode, routing::get};

fn file_flag(name: &str) -> bool {
    Path::new(name).exists()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let ip = std::env::var("POD_IP").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async {
                if file_flag("unhealthy") {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }),
        )
        .route(
            "/readyz",
            get(|| async {
                if file_flag("unready") {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }),
        )
        .route(
            "/env",
            get(|| async {
                let vars: std::collections::BTreeMap<String, String> = std::env::vars()
                    .filter(|(k, _)| k.starts_with("POD_") || k == "HOSTNAME" || k.starts_with("TEST_"))
                    .collect();
                Json(vars)
            }),
        );
    let listener = tokio::net::TcpListener::bind(format!("{ip}:{port}")).await?;
    println!("testpod listening on {ip}:{port} (pid {})", std::process::id());
    if let Some(ms) = std::env::var("EXIT_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            println!("exiting with code 3 as EXIT_AFTER_MS asked");
            std::process::exit(3);
        });
    }
    let ignore_term = std::env::var("IGNORE_SIGTERM").is_ok_and(|v| v == "1");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        loop {
            term.recv().await;
            if ignore_term {
                println!("SIGTERM received and ignored");
            } else {
                println!("SIGTERM received; exiting");
                break;
            }
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
