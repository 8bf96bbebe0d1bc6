//! Placement: which live worker hosts each actor.
//!
//! Deterministic, balanced by capacity, and stable under churn: an actor stays where it is while
//! its worker lives and has room; orphans and new actors go to the least-loaded workers; then
//! only the excess of over-loaded workers moves, so adding a worker moves about 1/(n+1) of the
//! actors and removing one moves only its own.

use std::collections::BTreeMap;

/// A live worker and how many actors it may host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerSlot {
    pub name: String,
    pub capacity: usize,
    /// Actors may be moved onto it to balance the pool (see `LiveWorker::settled`); homeless
    /// actors are placed on it either way.
    pub settled: bool,
}

/// The placement of every actor: `None` when no live worker has room.
pub type Placement = BTreeMap<String, Option<String>>;

/// Places `actors` (name → current worker, if any) on `workers`.
pub fn place(actors: &BTreeMap<String, Option<String>>, workers: &[WorkerSlot]) -> Placement {
    place_by_age(actors, workers, &BTreeMap::new())
}

/// As [`place`], with when each actor last started (Unix seconds; absent: not started yet): to
/// balance, the actors started most recently move first. They have the least to lose (an actor
/// that just failed over was restarted anyway, its in-memory state already gone), and a worker's
/// death then disrupts only its own actors, even when the pod that replaces it joins after they
/// failed over elsewhere: they are the ones moved on to it, not the survivors' long-running ones.
pub fn place_by_age(
    actors: &BTreeMap<String, Option<String>>,
    workers: &[WorkerSlot],
    started: &BTreeMap<String, i64>,
) -> Placement {
    let mut load: BTreeMap<&str, usize> = workers.iter().map(|w| (w.name.as_str(), 0)).collect();
    let cap: BTreeMap<&str, usize> = workers.iter().map(|w| (w.name.as_str(), w.capacity)).collect();
    let mut out: Placement = BTreeMap::new();
    let mut homeless = Vec::new();
    for (actor, current) in actors {
        match current
            .as_deref()
            .filter(|w| load.get(w).is_some_and(|n| *n < cap[w]))
        {
            Some(w) => {
                *load.get_mut(w).expect("live worker") += 1;
                out.insert(actor.clone(), Some(w.to_string()));
            }
            None => homeless.push(actor.clone()),
        }
    }
    let least_loaded = |load: &BTreeMap<&str, usize>| -> Option<String> {
        load.iter()
            .filter(|(w, n)| **n < cap[**w])
            .min_by_key(|(w, n)| (**n * 1_000_000 / cap[**w].max(1), **w))
            .map(|(w, _)| w.to_string())
    };
    for actor in homeless {
        let target = least_loaded(&load);
        if let Some(w) = &target {
            *load.get_mut(w.as_str()).expect("live worker") += 1;
        }
        out.insert(actor, target);
    }
    // Rebalance: move the excess of the most loaded worker to the least loaded until no worker
    // holds more than one actor above another (by share of capacity for unequal capacities).
    let total: usize = load.values().sum();
    if workers.len() > 1 && total > 0 {
        while let Some((max_w, max_n)) = load
            .iter()
            .max_by_key(|(w, n)| (**n * 1_000_000 / cap[**w].max(1), std::cmp::Reverse(**w)))
            .map(|(w, n)| (w.to_string(), *n))
        {
            let Some(min_w) = least_loaded(&load) else { break };
            let min_n = load[min_w.as_str()];
            if max_n <= min_n + 1 || max_w == min_w {
                break;
            }
            // Of the busiest worker's actors, the one started last moves (the last by name among
            // equals): deterministic.
            let Some(actor) = out
                .iter()
                .filter(|(_, w)| w.as_deref() == Some(max_w.as_str()))
                .max_by_key(|(a, _)| (started.get(*a).copied().unwrap_or(i64::MAX), a.as_str()))
                .map(|(a, _)| a.clone())
            else {
                break;
            };
            out.insert(actor, Some(min_w.clone()));
            *load.get_mut(max_w.as_str()).expect("live worker") -= 1;
            *load.get_mut(min_w.as_str()).expect("live worker") += 1;
        }
    }
    out
}

/// How many actors change worker between two placements (newly placed ones do not count).
pub fn moves(before: &BTreeMap<String, Option<String>>, after: &Placement) -> usize {
    after
        .iter()
        .filter(|(a, w)| matches!(before.get(*a), Some(Some(old)) if w.as_deref() != Some(old.as_str())))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers(names: &[&str], capacity: usize) -> Vec<WorkerSlot> {
        names
            .iter()
            .map(|n| WorkerSlot {
                name: n.to_string(),
                capacity,
                settled: true,
            })
            .collect()
    }

    fn actors(n: usize) -> BTreeMap<String, Option<String>> {
        (0..n).map(|i| (format!("a{i:04}"), None)).collect()
    }

    fn loads(p: &Placement) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for w in p.values().flatten() {
            *m.entry(w.clone()).or_default() += 1;
        }
        m
    }

    fn as_current(p: &Placement) -> BTreeMap<String, Option<String>> {
        p.clone()
    }

    #[test]
    fn new_actors_spread_evenly_and_every_actor_has_one_worker() {
        let p = place(&actors(100), &workers(&["w1", "w2", "w3"], 1000));
        assert!(p.values().all(Option::is_some));
        let l = loads(&p);
        assert!(
            l.values().max().unwrap() - l.values().min().unwrap() <= 1,
            "{l:?}"
        );
    }

    #[test]
    fn placement_is_deterministic() {
        let w = workers(&["w1", "w2"], 10);
        assert_eq!(place(&actors(7), &w), place(&actors(7), &w));
    }

    #[test]
    fn a_settled_placement_does_not_move() {
        let w = workers(&["w1", "w2", "w3"], 1000);
        let first = place(&actors(90), &w);
        let again = place(&as_current(&first), &w);
        assert_eq!(moves(&first, &again), 0);
    }

    #[test]
    fn adding_a_worker_moves_only_its_fair_share() {
        let first = place(&actors(90), &workers(&["w1", "w2", "w3"], 1000));
        let after = place(&as_current(&first), &workers(&["w1", "w2", "w3", "w4"], 1000));
        let l = loads(&after);
        assert!(
            l.values().max().unwrap() - l.values().min().unwrap() <= 1,
            "{l:?}"
        );
        assert!(
            moves(&first, &after) <= 23,
            "moved {} of 90 (fair share 22.5)",
            moves(&first, &after)
        );
    }

    #[test]
    fn losing_a_worker_moves_only_its_actors() {
        let first = place(&actors(90), &workers(&["w1", "w2", "w3"], 1000));
        let on_w2 = first.values().filter(|w| w.as_deref() == Some("w2")).count();
        let after = place(&as_current(&first), &workers(&["w1", "w3"], 1000));
        assert_eq!(moves(&first, &after), on_w2);
        assert!(after.values().all(|w| w.as_deref() != Some("w2")));
    }

    #[test]
    fn balancing_moves_the_actors_started_last_so_a_dead_workers_death_moves_only_its_own() {
        let w = workers(&["w1", "w2"], 1000);
        // w1 hosts its own a1 and a2 (running for an hour) and a3 and a4, which just failed
        // over onto it; w2 is the pod that replaced the dead worker.
        let on_w1: BTreeMap<String, Option<String>> = ["a1", "a2", "a3", "a4"]
            .iter()
            .map(|a| (a.to_string(), Some("w1".to_string())))
            .collect();
        let started: BTreeMap<String, i64> = [("a1", 1_000), ("a2", 1_000), ("a3", 4_600), ("a4", 4_601)]
            .iter()
            .map(|(a, t)| (a.to_string(), *t))
            .collect();
        let p = place_by_age(&on_w1, &w, &started);
        assert_eq!(moves(&on_w1, &p), 2);
        assert_eq!(
            (p["a1"].as_deref(), p["a2"].as_deref()),
            (Some("w1"), Some("w1")),
            "the long-running actors stay"
        );
        assert_eq!((p["a3"].as_deref(), p["a4"].as_deref()), (Some("w2"), Some("w2")));
    }

    #[test]
    fn actors_beyond_capacity_stay_unplaced() {
        let p = place(&actors(5), &workers(&["w1", "w2"], 2));
        assert_eq!(p.values().filter(|w| w.is_none()).count(), 1);
        let p = place(&actors(3), &[]);
        assert!(p.values().all(Option::is_none));
    }
}
