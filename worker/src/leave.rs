//! Leaving: a worker told to stop (SIGTERM: a scale-in, a rollout, a node drain) first gives
//! its actors away, as an Akka node hands its shards off before it leaves the cluster.
//!
//! It says on its Lease that it is leaving ([`troupe_crds::labels::LEAVING`]) and keeps working:
//! its actors keep taking messages, the operator moves them to the pool's other workers with
//! planned moves (each drains what it accepted, stops between two messages and hands its state
//! over), and this worker keeps serving the handed-over states until the next workers took them.
//! Only what is still here when the leave timeout runs out is stopped the old way (and fails
//! over, from its stored state if the pool keeps one).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::host::Host;

/// How a leave ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Left {
    /// Every actor moved away and everything owed to them (confirmations, states) is done.
    Empty,
    /// No other worker of the pool could take the actors (the last worker of a pool scaled to
    /// zero or deleted, a worker run alone): waiting would change nothing. They stop the old
    /// way, with these many still here.
    NobodyToTake { still_here: usize },
    /// The timeout ran out with these many actors still here.
    TimedOut { still_here: usize },
    /// The lease was lost meanwhile: the operator fails the actors over; nothing more to do.
    Fenced,
}

/// How often a leaving worker asks whether another worker could take its actors.
const LOOK_FOR_TAKERS_EVERY: Duration = Duration::from_secs(1);

/// Says the worker leaves (`leaving` carries since when, for the Lease) and waits, up to
/// `timeout`, until it hosts no actor and owes nothing to those that left. `anyone_to_take`
/// says whether another worker of the pool could take actors (`None`: cannot tell, keep
/// waiting); asked at once and then every second while actors are still here.
pub async fn leave<F, Fut>(
    host: &Arc<Host>,
    leaving: &tokio::sync::watch::Sender<Option<String>>,
    timeout: Duration,
    mut anyone_to_take: F,
) -> Left
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<bool>>,
{
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    leaving.send_replace(Some(since));
    let until = Instant::now() + timeout;
    let mut next_look = Instant::now();
    loop {
        if host.is_fenced() || !host.config().lease.is_live() {
            return Left::Fenced;
        }
        if host.is_empty() && host.departures_settled() {
            return Left::Empty;
        }
        if !host.is_empty() && Instant::now() >= next_look {
            next_look = Instant::now() + LOOK_FOR_TAKERS_EVERY;
            if anyone_to_take().await == Some(false) {
                return Left::NobodyToTake {
                    still_here: host.len(),
                };
            }
        }
        if Instant::now() >= until {
            return Left::TimedOut {
                still_here: host.len(),
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        builtin,
        host::{ActorKey, Assignment, HostConfig},
        metrics::Metrics,
    };

    /// Another worker of the pool could take the actors.
    async fn someone() -> Option<bool> {
        Some(true)
    }

    async fn host_with_counters(n: usize) -> (Arc<Host>, Vec<ActorKey>) {
        host_with_counters_configured(n, None).await
    }

    async fn host_with_counters_configured(
        n: usize,
        config: Option<troupe_crds::ActorConfig>,
    ) -> (Arc<Host>, Vec<ActorKey>) {
        let host = Host::start(HostConfig::default(), builtin::registry(), Metrics::new())
            .await
            .unwrap();
        let mut keys = Vec::new();
        for i in 0..n {
            let key = ActorKey::new("ns", format!("c{i}"));
            let spec = troupe_crds::ActorSpec {
                pool: "p".into(),
                behavior: "counter".into(),
                config: config.clone(),
                schedule: None,
                paused: false,
                trigger: None,
                restart_policy: Default::default(),
                circuit_breaker: None,
                journal: None,
            };
            let mut a = Assignment::of(spec, Some(1));
            a.epoch = 1;
            host.assign(key.clone(), a).await;
            host.tell(&key, json!(3)).await.unwrap();
            keys.push(key);
        }
        (host, keys)
    }

    #[tokio::test]
    async fn a_leaving_worker_says_so_and_is_done_once_its_actors_left_and_their_states_were_taken() {
        let (host, keys) = host_with_counters(3).await;
        let (leaving, told) = tokio::sync::watch::channel(None);
        let left = tokio::spawn({
            let host = host.clone();
            async move { leave(&host, &leaving, Duration::from_secs(30), someone).await }
        });
        // The operator moves the actors away: the watch removes them, the status writer takes
        // the departures, the next workers take the states.
        let mut told = told;
        told.changed().await.unwrap();
        assert!(told.borrow().is_some(), "the lease says since when");
        for key in &keys {
            host.remove(key, None).await;
        }
        assert_eq!(host.take_departed().len(), 3);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !left.is_finished(),
            "not done while states wait for the next workers"
        );
        for key in &keys {
            let handed = host.take_handoff(key, 1).expect("each state was handed over");
            assert_eq!(handed.state, json!({"value": 3}), "the count goes with it");
        }
        let outcome = tokio::time::timeout(Duration::from_secs(5), left)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcome, Left::Empty);
    }

    #[tokio::test]
    async fn a_leave_that_times_out_says_how_many_actors_are_still_here() {
        let (host, _keys) = host_with_counters(2).await;
        let (leaving, _told) = tokio::sync::watch::channel(None);
        let outcome = leave(&host, &leaving, Duration::from_millis(100), someone).await;
        assert_eq!(outcome, Left::TimedOut { still_here: 2 });
    }

    #[tokio::test]
    async fn the_last_worker_of_a_pool_stops_at_once_instead_of_waiting_for_a_move_nobody_makes() {
        let (host, _keys) = host_with_counters(2).await;
        let (leaving, _told) = tokio::sync::watch::channel(None);
        let began = Instant::now();
        let outcome = leave(&host, &leaving, Duration::from_secs(30), || async { Some(false) }).await;
        assert_eq!(outcome, Left::NobodyToTake { still_here: 2 });
        assert!(began.elapsed() < Duration::from_secs(5), "{:?}", began.elapsed());
    }

    #[tokio::test]
    async fn a_worker_that_cannot_tell_whether_anyone_takes_its_actors_waits_for_them() {
        let (host, _keys) = host_with_counters(1).await;
        let (leaving, _told) = tokio::sync::watch::channel(None);
        let outcome = leave(&host, &leaving, Duration::from_millis(1500), || async { None }).await;
        assert_eq!(outcome, Left::TimedOut { still_here: 1 });
    }

    fn latency_ms(ms: u64) -> troupe_crds::ActorConfig {
        let config = json!({"latencyMs": ms});
        troupe_crds::ActorConfig::from_map(config.as_object().unwrap().clone())
    }

    #[tokio::test]
    async fn a_leave_is_not_done_while_an_actor_that_left_still_handles_its_last_messages() {
        // Each message takes 100 ms: the actor is off the worker's map at once, but its state
        // is handed over only once the messages it accepted are handled. A leave that counted
        // only the actors still mapped would end here, release the lease and leave the actor's
        // state behind (the operator then fails it over from zero).
        let (host, keys) = host_with_counters_configured(1, Some(latency_ms(100))).await;
        for _ in 0..4 {
            host.tell(&keys[0], json!(1)).await.unwrap();
        }
        let (leaving, _told) = tokio::sync::watch::channel(None);
        let left = tokio::spawn({
            let host = host.clone();
            async move { leave(&host, &leaving, Duration::from_secs(30), someone).await }
        });
        let removal = tokio::spawn({
            let (host, key) = (host.clone(), keys[0].clone());
            async move { host.remove(&key, None).await }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(host.is_empty(), "the actor is off the map while it drains");
        assert!(!removal.is_finished(), "and still handles its last messages");
        assert!(!left.is_finished(), "the leave waits for the departure under way");
        removal.await.unwrap();
        assert_eq!(host.take_departed().len(), 1);
        let handed = host.take_handoff(&keys[0], 1).expect("its state was handed over");
        assert_eq!(
            handed.state,
            json!({"value": 7}),
            "with every message it accepted"
        );
        let outcome = tokio::time::timeout(Duration::from_secs(5), left)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcome, Left::Empty);
    }
}
