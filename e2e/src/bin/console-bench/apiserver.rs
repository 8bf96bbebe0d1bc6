//! The API server's own counters: open watches, requests served.

use super::*;

/// The metric lines of the API server's `/metrics`, as (name{labels}, value).
pub(crate) async fn metrics(admin: &Client) -> anyhow::Result<Vec<(String, f64)>> {
    let text = admin
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

/// The sum of the series of `name` whose labels include every one of `labels`.
pub(crate) fn sum(m: &[(String, f64)], name: &str, labels: &[&str]) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0 // an empty sum is -0
}

/// The kinds the console watches, as the API server names them.
pub(crate) const KINDS: [&str; 4] = ["actorpools", "actors", "leases", "events"];

/// Open WATCH requests by kind, namespace-scoped (the consoles') and cluster-scoped.
pub(crate) fn watches(m: &[(String, f64)], scope: &str) -> Vec<f64> {
    KINDS
        .iter()
        .map(|k| {
            sum(
                m,
                "apiserver_longrunning_requests",
                &[
                    "verb=\"WATCH\"",
                    &format!("resource=\"{k}\""),
                    &format!("scope=\"{scope}\""),
                ],
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Server-sent events and browsers
