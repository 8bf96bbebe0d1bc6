//! `troupe-testpod`: a tiny HTTP server that the node agent's tests run as a pod
//! (image `troupe/testpod`). It binds `$POD_IP:$PORT` and answers:
//! - `/healthz` 200, or 500 while a file `unhealthy` exists in its working directory;
//! - `/readyz` 200, or 503 while a file `unready` exists;
//! - `/env` the downward-API env it was given, as JSON;
//! - `/self` what it runs as (uid, gid, groups, effective capabilities) and whether it can write
//!   to `/` (the container tests check the security context from inside);
//! - `/file?path=P` the content of a file (a mounted Secret), 404 if it cannot be read.
//!
//! `ALLOC_MB` makes it allocate and touch that many MiB at start (to meet a memory limit: OOMKilled).
//! `READY_AFTER_MS` keeps `/readyz` at 503 for that long after start (a readiness probe gates).
//! `EXIT_AFTER_MS` makes it exit with code 3 after that long (a crash); `IGNORE_SIGTERM=1` makes
//! it ignore SIGTERM (to prove the grace period ends in SIGKILL).

use std::{path::Path, time::Duration};

use axum::{Json, Router, http::StatusCode, routing::get};

fn file_flag(name: &str) -> bool {
    Path::new(name).exists()
}

/// What the process runs as and may do, from inside (its container).
fn about_self() -> serde_json::Value {
    // SAFETY: getuid/getgid/getgroups only read the process's credentials.
    let (uid, gid, groups) = unsafe {
        let mut groups = [0 as libc::gid_t; 64];
        let n = libc::getgroups(groups.len() as i32, groups.as_mut_ptr());
        (
            libc::getuid(),
            libc::getgid(),
            groups[..n.max(0) as usize].to_vec(),
        )
    };
    let cap_eff = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
    });
    let probe = "/.troupe-write-check";
    let root_write = match std::fs::write(probe, "x") {
        Ok(()) => {
            let _ = std::fs::remove_file(probe);
            "ok".to_string()
        }
        Err(e) => e.to_string(),
    };
    serde_json::json!({"uid": uid, "gid": gid, "groups": groups, "capEff": cap_eff, "rootWrite": root_write})
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let alloc_mb: usize = std::env::var("ALLOC_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    for _ in 0..alloc_mb {
        hoard.push(vec![1u8; 1 << 20]);
    }
    if alloc_mb > 0 {
        println!("allocated {} MiB", hoard.len());
    }
    let ready_after = Duration::from_millis(
        std::env::var("READY_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
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
            get(move || async move {
                if file_flag("unready") || started.elapsed() < ready_after {
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
        )
        .route("/self", get(|| async { Json(about_self()) }))
        .route(
            "/file",
            get(
                |q: axum::extract::Query<std::collections::BTreeMap<String, String>>| async move {
                    let path = q.get("path").cloned().unwrap_or_default();
                    match std::fs::read_to_string(&path) {
                        Ok(text) => (StatusCode::OK, text),
                        Err(e) => (StatusCode::NOT_FOUND, format!("{path}: {e}")),
                    }
                },
            ),
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
    drop(hoard);
    Ok(())
}
