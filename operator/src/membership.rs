//! Live workers, from their Leases, judged on the operator's own clock.
//!
//! A worker is live while the operator has seen its lease's `renewTime` change within the lease
//! duration plus a grace — the time is the operator's monotonic clock at the moment it saw the
//! change, never the worker's wall clock written in the lease — as Kubernetes' node lifecycle
//! controller judges node leases. A worker whose clock is minutes off is judged like any other,
//! and since a renewal can only be seen after the worker sent it, the worker's own proof (which
//! runs from the moment it sent the renewal, minus a margin) always ends first. A lease seen for
//! the first time counts as renewed then: an operator that just started waits a full lease before
//! it fails anything over. A deleted lease (a worker that shut down after stopping its actors)
//! ends at once.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use troupe_crds::labels;

/// The lease annotation where a worker publishes its API address.
pub const ADDRESS_ANNOTATION: &str = "troupe.dev/address";

/// Added to a lease's duration before its worker counts as gone: room for the two clocks to run
/// at slightly different rates and for the watch to bring a renewal.
pub const GRACE: Duration = Duration::from_secs(1);

/// A worker with a live lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveWorker {
    pub name: String,
    pub revision: String,
    /// Live without a lapse for at least two lease durations: actors may be moved onto it to
    /// balance the pool. A worker that just came back (a container restarted in place after its
    /// actors failed over) takes new and homeless actors at once, but is not refilled by moves
    /// until then, so that the actors that just failed over are not moved a second time.
    pub settled: bool,
    /// Where the worker's HTTP API listens (`host:port`, the lease's `troupe.dev/address`).
    pub address: Option<String>,
    /// The worker is leaving (its Lease says `troupe.dev/leaving`): it still runs and hands over
    /// its actors, but takes none; they move to the pool's other workers.
    pub leaving: bool,
    /// How long until the worker counts as gone unless it renews meanwhile: its pool is looked
    /// at again then, so that a failover does not wait for the next periodic look.
    pub lapses_in: Duration,
}

/// A lease not looked at for this long is gone (every live lease is looked at by every
/// reconcile of its pool, every few seconds): its entry is dropped.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// When this operator saw each lease's `renewTime` change, by (namespace, name).
#[derive(Debug, Default)]
pub struct LeaseObserver {
    seen: Mutex<Observed>,
}

#[derive(Debug, Default)]
struct Observed {
    leases: HashMap<(String, String), Seen>,
    /// When entries of deleted leases were last dropped.
    pruned: Option<Instant>,
}

/// How many of a lease's latest (renewTime, holder) values are remembered.
const REMEMBERED: usize = 16;

#[derive(Clone, Debug)]
struct Seen {
    /// The latest values seen, newest last. A renewal is a value not among them: a lagging
    /// cache and a fresh read alternating between an old and a newer value are not renewals
    /// (a dead worker would never fail over), and no value is ever compared by its order (a
    /// worker's wall clock may go backwards).
    recent: std::collections::VecDeque<(Option<String>, Option<String>)>,
    changed_at: Instant,
    looked_at: Instant,
    /// Since when it has been live without a lapse (renewed after it lapsed; long ago for a
    /// lease first seen).
    live_since: Instant,
    /// First seen with a renewTime long past on this operator's wall clock, and not renewed
    /// since: the lease of a worker that died before this operator started. Used only to keep
    /// such leases out of the brake's count, never to fail anything over sooner.
    stale_when_first_seen: bool,
}

/// What this operator has seen of one lease, as of one look at it.
#[derive(Clone, Copy, Debug)]
pub struct Observation {
    /// When its renewal last changed.
    changed_at: Instant,
    /// Since when it has been live without a lapse.
    live_since: Instant,
    /// Dead already when this operator first saw it, and not renewed since.
    stale_when_first_seen: bool,
    /// Held and renewed at least once (a holder and a renewTime).
    held: bool,
    /// Its duration.
    duration: Duration,
}

impl Observation {
    /// How long it stays live (with `extra` patience on top of duration and [`GRACE`]) unless
    /// renewed; zero once it is not.
    pub fn lapses_in(&self, now: Instant, extra: Duration) -> Duration {
        if !self.held {
            return Duration::ZERO;
        }
        (self.duration + GRACE + extra).saturating_sub(now.saturating_duration_since(self.changed_at))
    }

    /// Whether it is live: held, and renewed (as this operator saw it) within its duration plus
    /// [`GRACE`].
    pub fn is_live(&self, now: Instant) -> bool {
        !self.lapses_in(now, Duration::ZERO).is_zero()
    }

    /// Whether it went quiet long ago: more than two durations and the grace since its last
    /// renewal this operator saw, or dead already when this operator first saw it. Such a lease
    /// tells nothing about an outage happening now.
    pub fn long_quiet(&self, now: Instant) -> bool {
        self.stale_when_first_seen
            || now.saturating_duration_since(self.changed_at) >= self.duration * 2 + GRACE
    }

    /// Live without a lapse for at least two durations (see [`LiveWorker::settled`]).
    pub fn settled(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.live_since) >= self.duration * 2
    }
}

impl LeaseObserver {
    /// Records what `lease` shows at `now` and returns what this operator has seen of it.
    pub fn observe(&self, lease: &Lease, now: Instant) -> Observation {
        let key = (lease.namespace().unwrap_or_default(), lease.name_any());
        let spec = lease.spec.as_ref();
        let duration = duration_of(lease);
        let renewed_at = spec.and_then(|s| s.renew_time.as_ref());
        let holder = spec.and_then(|s| s.holder_identity.clone());
        let held = holder.as_deref().is_some_and(|h| !h.is_empty()) && renewed_at.is_some();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen
            .pruned
            .is_none_or(|t| now.saturating_duration_since(t) >= FORGET_AFTER)
        {
            seen.leases
                .retain(|_, s| now.saturating_duration_since(s.looked_at) < FORGET_AFTER);
            seen.pruned = Some(now);
        }
        let value = (renewed_at.map(|t| t.0.to_string()), holder);
        let entry = seen.leases.entry(key).or_insert_with(|| Seen {
            recent: [value.clone()].into(),
            changed_at: now,
            looked_at: now,
            // Only a lease that lapsed and came back is "just back"; one seen for the first time
            // (a new worker, or every worker after an operator restart) counts as settled.
            live_since: now.checked_sub(Duration::from_secs(3600)).unwrap_or(now),
            stale_when_first_seen: renewed_at.is_some_and(|t| long_past(&t.0, duration)),
        });
        entry.looked_at = now;
        if !entry.recent.contains(&value) {
            if entry.recent.len() == REMEMBERED {
                entry.recent.pop_front();
            }
            entry.recent.push_back(value);
            entry.stale_when_first_seen = false;
            if now.saturating_duration_since(entry.changed_at) >= duration + GRACE {
                entry.live_since = now;
            }
            entry.changed_at = now;
        }
        Observation {
            changed_at: entry.changed_at,
            live_since: entry.live_since,
            stale_when_first_seen: entry.stale_when_first_seen,
            held,
            duration,
        }
    }

    /// Whether `lease` is live at `now` (see [`Observation::is_live`]).
    pub fn is_live(&self, lease: &Lease, now: Instant) -> bool {
        self.observe(lease, now).is_live(now)
    }
}

/// How far in the past, beyond its duration, a renewTime must be on this operator's wall clock
/// for a lease first seen to count as long dead (for the brake only). Generous: clocks of
/// workers may be off by minutes, and a worker that is alive renews within a second anyway.
const LONG_PAST: Duration = Duration::from_secs(15 * 60);

/// Whether a renewal at `renewed` (a worker's wall clock) of a lease of `duration` is long past
/// on this operator's wall clock.
fn long_past(renewed: &k8s_openapi::jiff::Timestamp, duration: Duration) -> bool {
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(*renewed);
    age.is_positive() && age.unsigned_abs() > duration + LONG_PAST
}

fn duration_of(lease: &Lease) -> Duration {
    let secs = lease.spec.as_ref().and_then(|s| s.lease_duration_seconds);
    Duration::from_secs(secs.unwrap_or(0).max(0) as u64)
}

/// The pool a lease belongs to, if it is a worker lease.
fn pool_of(lease: &Lease) -> Option<&str> {
    lease.labels().get(labels::POOL).map(String::as_str)
}

/// The live workers of `pool` among `leases` (all of one namespace), judged at `now`.
///
/// A brake on mass failover: when more than half of a pool's held leases look expired at once
/// (counting only leases that were live lately: the lease of a worker that died long ago is not
/// part of an outage happening now),
/// the likelier cause is the control plane or the network (an API server or etcd restart leaves
/// every worker unable to renew), not half the workers dying together; failing them all over
/// would move every actor while each worker is about to renew. Those leases get one more lease
/// duration of patience — later than the protocol needs, so still safe — as the node lifecycle
/// controller stops evicting when a whole zone looks down.
pub fn live_workers<'a>(
    leases: impl IntoIterator<Item = &'a Lease>,
    pool: &str,
    observer: &LeaseObserver,
    now: Instant,
) -> Vec<LiveWorker> {
    let held: Vec<&Lease> = leases
        .into_iter()
        .filter(|l| pool_of(l) == Some(pool))
        .filter(|l| l.metadata.deletion_timestamp.is_none())
        .filter(|l| {
            l.spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                .is_some_and(|h| !h.is_empty())
        })
        .collect();
    // One look at each lease; everything below is judged from it.
    let judged: Vec<(&Lease, Observation)> = held.iter().map(|l| (*l, observer.observe(l, now))).collect();
    // Whether each lease that was live lately is live now (long-quiet leases do not count).
    let lately: Vec<bool> = judged
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o.is_live(now) || !o.long_quiet(now))
        .map(|o| o.is_live(now))
        .collect();
    let expired = lately.iter().filter(|live| !**live).count();
    let braking = lately.len() >= 2 && expired * 2 > lately.len();
    let mut out: Vec<LiveWorker> = judged
        .into_iter()
        .filter_map(|(l, o)| {
            // Braking gives an expired lease one more duration of patience.
            let extra = match (o.is_live(now), braking) {
                (true, _) => Duration::ZERO,
                (false, true) => o.duration,
                (false, false) => return None,
            };
            let lapses_in = o.lapses_in(now, extra);
            (!lapses_in.is_zero()).then(|| LiveWorker {
                lapses_in,
                name: l.name_any(),
                revision: l.labels().get(labels::REVISION).cloned().unwrap_or_default(),
                settled: o.settled(now),
                address: l.annotations().get(ADDRESS_ANNOTATION).cloned(),
                leaving: l.annotations().contains_key(labels::LEAVING),
            })
        })
        .collect();
    if braking && out.len() > lately.len() - expired {
        tracing::warn!(
            %pool,
            expired,
            workers = lately.len(),
            "most of the pool's workers stopped renewing at once: failover held for one more lease duration (a control-plane or network outage looks like this)"
        );
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lease(name: &str, pool: &str, renewed: &str, secs: i32) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"troupe.dev/pool": pool, "troupe.dev/revision": "r1"}},
            "spec": {"holderIdentity": name, "renewTime": renewed, "leaseDurationSeconds": secs}
        }))
        .unwrap()
    }

    /// A renewTime `secs` after the first call in this test binary, on this machine's wall
    /// clock (a lease renewed long before the operator saw it is treated apart).
    fn t(secs: i64) -> String {
        static BASE: std::sync::LazyLock<k8s_openapi::jiff::Timestamp> =
            std::sync::LazyLock::new(k8s_openapi::jiff::Timestamp::now);
        (*BASE + k8s_openapi::jiff::SignedDuration::from_secs(secs)).to_string()
    }

    #[test]
    fn a_worker_is_live_until_the_operator_has_not_seen_a_renewal_for_the_duration_plus_grace() {
        let observer = LeaseObserver::default();
        let start = Instant::now();
        let l = lease("w", "p", &t(0), 10);
        assert!(observer.is_live(&l, start), "first seen: counts as renewed now");
        assert!(observer.is_live(&l, start + Duration::from_secs(10)));
        assert!(!observer.is_live(&l, start + Duration::from_secs(11)));
        // A renewal seen late brings it back from that moment on.
        let renewed = lease("w", "p", &t(1), 10);
        assert!(observer.is_live(&renewed, start + Duration::from_secs(12)));
        assert!(observer.is_live(&renewed, start + Duration::from_secs(22)));
        assert!(!observer.is_live(&renewed, start + Duration::from_secs(23)));
    }

    #[test]
    fn a_live_worker_says_when_it_would_lapse_so_its_pool_is_looked_at_then() {
        let observer = LeaseObserver::default();
        let start = Instant::now();
        let l = lease("w", "p", &t(0), 10);
        let lapse =
            |at: u64| live_workers([&l], "p", &observer, start + Duration::from_secs(at))[0].lapses_in;
        assert_eq!(lapse(0), Duration::from_secs(11));
        assert_eq!(lapse(4), Duration::from_secs(7));
        assert!(live_workers([&l], "p", &observer, start + Duration::from_secs(11)).is_empty());
    }

    #[test]
    fn a_lagging_cache_alternating_with_fresh_reads_does_not_look_like_renewals() {
        let observer = LeaseObserver::default();
        let start = Instant::now();
        let (old, fresh) = (lease("w", "p", &t(0), 10), lease("w", "p", &t(1), 10));
        assert!(observer.is_live(&old, start));
        assert!(observer.is_live(&fresh, start + Duration::from_secs(1)));
        // The worker died after t(1); the cache still shows t(0), a fresh read shows t(1), and so on.
        for s in 2..=11 {
            let seen = if s % 2 == 0 { &old } else { &fresh };
            observer.is_live(seen, start + Duration::from_secs(s));
        }
        assert!(!observer.is_live(&fresh, start + Duration::from_secs(12)));
        assert!(!observer.is_live(&old, start + Duration::from_secs(12)));
    }

    #[test]
    fn a_renewal_whose_wall_clock_went_backwards_still_counts() {
        let observer = LeaseObserver::default();
        let start = Instant::now();
        assert!(observer.is_live(&lease("w", "p", &t(1), 10), start));
        // The worker's clock was set back: an earlier-looking value, never seen, is a renewal.
        let earlier = lease("w", "p", &t(-180), 10);
        assert!(observer.is_live(&earlier, start + Duration::from_secs(9)));
        assert!(observer.is_live(&earlier, start + Duration::from_secs(19)));
    }

    #[test]
    fn when_most_of_a_pool_stops_renewing_at_once_failover_waits_one_more_lease_duration() {
        let observer = LeaseObserver::default();
        let start = Instant::now();
        let (a0, b0, c0) = (
            lease("a", "p", &t(0), 10),
            lease("b", "p", &t(0), 10),
            lease("c", "p", &t(0), 10),
        );
        assert_eq!(live_workers([&a0, &b0, &c0], "p", &observer, start).len(), 3);
        // Only `a` renews; `b` and `c` (two of three) go quiet together, as during an API
        // server outage.
        let names = |at: u64| -> Vec<String> {
            let a = lease("a", "p", &t(at as i64), 10);
            live_workers([&a, &b0, &c0], "p", &observer, start + Duration::from_secs(at))
                .into_iter()
                .map(|w| w.name)
                .collect()
        };
        assert_eq!(names(5), ["a", "b", "c"]);
        assert_eq!(
            names(12),
            ["a", "b", "c"],
            "past duration + grace, but held by the brake"
        );
        assert_eq!(names(21), ["a"], "past one more duration: failed over");
    }

    fn names(live: Vec<LiveWorker>) -> Vec<String> {
        live.into_iter().map(|w| w.name).collect()
    }

    /// A renewTime `ago` before now on this machine's wall clock.
    fn renewed_ago(ago: Duration) -> String {
        (k8s_openapi::jiff::Timestamp::now() - ago).to_string()
    }

    #[test]
    fn leases_of_workers_dead_long_ago_do_not_turn_one_death_into_a_braked_mass_failover() {
        let observer = LeaseObserver::default();
        let start = Instant::now();
        // Three workers crashed long ago, their leases never released; two workers are live.
        let dead: Vec<Lease> = (0..3)
            .map(|i| lease(&format!("dead-{i}"), "p", &t(0), 10))
            .collect();
        let (a0, b0) = (lease("a", "p", &t(0), 10), lease("b", "p", &t(0), 10));
        let at = |s: u64| start + Duration::from_secs(s);
        live_workers(dead.iter().chain([&a0, &b0]), "p", &observer, at(0));
        // The dead ones went quiet for good; `a` and `b` renew.
        let mut s = 1;
        while s <= 40 {
            let renewed = t(s as i64);
            let (a, b) = (lease("a", "p", &renewed, 10), lease("b", "p", &renewed, 10));
            live_workers(dead.iter().chain([&a, &b]), "p", &observer, at(s));
            s += 3;
        }
        // Now `b` dies: one of two live workers, not four of five.
        let a = lease("a", "p", &t(59), 10);
        let b = lease("b", "p", &t(40), 10);
        for s in [45, 50] {
            live_workers(dead.iter().chain([&a, &b]), "p", &observer, at(s));
        }
        let a = lease("a", "p", &t(61), 10);
        assert_eq!(
            names(live_workers(dead.iter().chain([&a, &b]), "p", &observer, at(52))),
            ["a"],
            "failed over at duration + grace, no brake"
        );
    }

    #[test]
    fn after_an_operator_restart_leases_dead_before_it_started_do_not_engage_the_brake() {
        let observer = LeaseObserver::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        // First sight: three leases renewed an hour ago (dead before this operator started),
        // two renewed just now.
        let dead: Vec<Lease> = (0..3)
            .map(|i| {
                lease(
                    &format!("dead-{i}"),
                    "p",
                    &renewed_ago(Duration::from_secs(3600)),
                    10,
                )
            })
            .collect();
        let now = renewed_ago(Duration::ZERO);
        let (a, b) = (lease("a", "p", &now, 10), lease("b", "p", &now, 10));
        assert_eq!(
            names(live_workers(dead.iter().chain([&a, &b]), "p", &observer, at(0))),
            ["a", "b", "dead-0", "dead-1", "dead-2"],
            "a lease seen first counts as renewed then, whatever its renewTime says"
        );
        // `a` renews; `b` and the dead ones never do.
        let a = lease("a", "p", &renewed_ago(Duration::from_millis(1)), 10);
        assert_eq!(
            names(live_workers(dead.iter().chain([&a, &b]), "p", &observer, at(11))),
            ["a"],
            "four of five quiet, but three were dead already: no brake"
        );
    }

    #[test]
    fn a_minority_of_workers_going_quiet_fails_over_at_duration_plus_grace() {
        let observer = LeaseObserver::default();
        let start = Instant::now();
        let (a0, b0, c0) = (
            lease("a", "p", &t(0), 10),
            lease("b", "p", &t(0), 10),
            lease("c", "p", &t(0), 10),
        );
        live_workers([&a0, &b0, &c0], "p", &observer, start);
        let (a1, b1) = (lease("a", "p", &t(1), 10), lease("b", "p", &t(1), 10));
        let live = live_workers([&a1, &b1, &c0], "p", &observer, start + Duration::from_secs(12));
        let names: Vec<_> = live.into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn a_worker_back_from_a_lapse_is_not_settled_for_two_lease_durations_and_a_new_one_is() {
        let observer = LeaseObserver::default();
        let start = Instant::now();
        let settled = |l: &Lease, at: u64| {
            live_workers([l], "p", &observer, start + Duration::from_secs(at))
                .first()
                .map(|w| w.settled)
        };
        assert_eq!(
            settled(&lease("w", "p", &t(0), 10), 0),
            Some(true),
            "first seen: settled"
        );
        assert_eq!(settled(&lease("w", "p", &t(0), 10), 12), None, "lapsed");
        // Renewed after the lapse (a container restarted in place): live, not settled.
        let back = lease("w", "p", &t(1), 10);
        assert_eq!(settled(&back, 13), Some(false));
        for (i, at) in [20u64, 27].into_iter().enumerate() {
            let renewed = lease("w", "p", &t(60 + i as i64), 10);
            assert_eq!(settled(&renewed, at), Some(false));
        }
        let renewed = lease("w", "p", &t(69), 10);
        assert_eq!(
            settled(&renewed, 33),
            Some(true),
            "two lease durations after it came back"
        );
    }

    #[test]
    fn the_workers_wall_clock_does_not_matter() {
        // A renewTime hours in the past or the future is only a value that changes.
        let observer = LeaseObserver::default();
        let start = Instant::now();
        let past = lease("w", "p", "2020-01-01T00:00:00.000000Z", 10);
        let future = lease("v", "p", "2030-01-01T00:00:00.000000Z", 10);
        assert!(observer.is_live(&past, start));
        assert!(observer.is_live(&future, start));
        assert!(!observer.is_live(&future, start + Duration::from_secs(11)));
    }

    #[test]
    fn only_held_leases_of_the_pool_are_live_workers() {
        let observer = LeaseObserver::default();
        let now = Instant::now();
        let mut released = lease("w-released", "p", &t(0), 10);
        released.spec.as_mut().unwrap().holder_identity = None;
        let leases = [
            lease("w-ok", "p", &t(0), 10),
            released,
            lease("w-other-pool", "q", &t(0), 10),
        ];
        let live = live_workers(&leases, "p", &observer, now);
        assert_eq!(
            live,
            vec![LiveWorker {
                lapses_in: Duration::from_secs(11),
                name: "w-ok".into(),
                revision: "r1".into(),
                settled: true,
                address: None,
                leaving: false,
            }]
        );
    }

    #[test]
    fn a_worker_whose_lease_says_it_is_leaving_is_live_and_leaving() {
        let observer = LeaseObserver::default();
        let mut leaving = lease("w-leaving", "p", &t(0), 10);
        leaving
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(labels::LEAVING.into(), t(0));
        let live = live_workers(
            &[leaving, lease("w-ok", "p", &t(0), 10)],
            "p",
            &observer,
            Instant::now(),
        );
        let flags: Vec<_> = live.iter().map(|w| (w.name.as_str(), w.leaving)).collect();
        assert_eq!(flags, [("w-leaving", true), ("w-ok", false)]);
    }
}
