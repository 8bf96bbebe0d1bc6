//! The objects measured: pools and actors created, and waited for until the operator wrote them.

use super::*;

pub(crate) async fn create_objects(
    client: &Client,
    ns: &str,
    actors: usize,
    in_flight: usize,
) -> anyhow::Result<Duration> {
    let pools: Api<ActorPool> = Api::namespaced(client.clone(), ns);
    let api: Api<Actor> = Api::namespaced(client.clone(), ns);
    let pool: ActorPool = serde_json::from_value(serde_json::json!({
        "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool", "metadata": {"name": "bench"},
        "spec": {"replicas": 0,
                 "template": {"spec": {"containers": [{"name": "worker", "image": "troupe/worker:0.1.0"}]}}}
    }))?;
    pools.create(&PostParams::default(), &pool).await?;
    let t = Instant::now();
    let failed: Vec<String> = futures::stream::iter(0..actors)
        .map(|i| {
            let api = api.clone();
            async move {
                let a: Actor = serde_json::from_value(serde_json::json!({
                    "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
                    "metadata": {"name": format!("a{i:05}")},
                    "spec": {"pool": "bench", "behavior": "echo"}
                }))
                .expect("a valid actor");
                // A loaded API server times a write out now and then: try again (a create that
                // did land answers 409 the second time).
                let mut tries = 0;
                loop {
                    tries += 1;
                    match api.create(&PostParams::default(), &a).await {
                        Ok(_) => break None,
                        Err(kube::Error::Api(e)) if e.code == 409 && tries > 1 => break None,
                        Err(e) if tries < 5 => {
                            eprintln!("creating an actor failed ({e}); again");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Err(e) => break Some(e.to_string()),
                    }
                }
            }
        })
        .buffer_unordered(in_flight)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    anyhow::ensure!(
        failed.is_empty(),
        "{} creates failed, the first: {}",
        failed.len(),
        failed[0]
    );
    Ok(t.elapsed())
}

/// Waits for the operator's one status write per actor (Pending, NoWorker). Gives up after 30 s
/// if no actor has a status (no operator runs), or after 10 minutes.
pub(crate) async fn settle(client: &Client, namespaces: &[(&str, usize)]) -> anyhow::Result<String> {
    let t = Instant::now();
    let total: usize = namespaces.iter().map(|(_, n)| n).sum();
    loop {
        match with_status(client, namespaces).await {
            Ok(with) if with == total => {
                return Ok(format!(
                    "every actor Pending (NoWorker) after {:.0} s",
                    t.elapsed().as_secs_f64()
                ));
            }
            Ok(with)
                if (with == 0 && t.elapsed() > Duration::from_secs(30))
                    || t.elapsed() > Duration::from_secs(600) =>
            {
                return Ok(format!(
                    "{with} of {total} actors have a status after {:.0} s (is an operator running?); measuring anyway",
                    t.elapsed().as_secs_f64()
                ));
            }
            Ok(_) => {}
            // A loaded API server times a list out now and then (60 s): ask again.
            Err(e) if t.elapsed() < Duration::from_secs(600) => {
                eprintln!("listing the actors failed ({e}); again")
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// Actors with a phase in their status, listed 500 at a time.
pub(crate) async fn with_status(client: &Client, namespaces: &[(&str, usize)]) -> anyhow::Result<usize> {
    let mut with = 0;
    for (ns, _) in namespaces {
        let api: Api<Actor> = Api::namespaced(client.clone(), ns);
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await?;
            with += page
                .items
                .iter()
                .filter(|a| a.status.as_ref().is_some_and(|s| s.phase.is_some()))
                .count();
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => params = params.continue_token(&next),
                None => break,
            }
        }
    }
    Ok(with)
}

// ---------------------------------------------------------------------------------------------
