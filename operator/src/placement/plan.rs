//! Which step brings each actor of a pool toward its placement: pure, from one snapshot of the
//! pool's actors and live workers.
//!
//! The protocol (see docs/architecture.md): an actor leaves a live worker in two steps (release;
//! assign once that worker confirmed the stop under the assignment's epoch), leaves a dead worker
//! only once its lease has ended on the operator's clock, and every assignment raises its epoch.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use troupe_crds::{Actor, ActorPhase, labels};

use super::balance::{WorkerSlot, place_by_age};

/// Whether the actor already says it is Pending with condition Placed=False for `reason`.
pub fn pending_because(a: &Actor, reason: &str) -> bool {
    a.status.as_ref().is_some_and(|s| {
        s.phase == Some(ActorPhase::Pending)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Placed" && c.reason == reason)
    })
}

/// Placed by hand (`troupe.dev/placement: manual`): the operator does not move it.
pub fn is_manual(a: &Actor) -> bool {
    a.annotations().get(labels::PLACEMENT).map(String::as_str) == Some("manual")
}

/// The worker an actor is assigned to (its label).
pub fn worker_of(a: &Actor) -> Option<String> {
    a.labels().get(labels::WORKER).cloned()
}

/// The highest epoch the actor has had: its annotation, or its status if that is higher (an
/// annotation lost to a hand edit must not make an epoch count twice).
pub fn epoch_of(a: &Actor) -> u64 {
    let annotated = a.assignment_epoch().unwrap_or(0);
    annotated.max(a.reported_epoch().unwrap_or(0))
}

/// When the actor started on the worker it is assigned to (Unix seconds), if it runs there. An
/// assignment rewrites the phase but not `startedAt`, which is the worker's: until the new
/// worker claims it, an actor that just failed over still shows when it started on the dead
/// one — as old as the survivors' actors, so that balancing would move the survivors' instead.
pub fn started_here(a: &Actor) -> Option<i64> {
    let status = a.status.as_ref()?;
    let running_here =
        status.phase == Some(ActorPhase::Running) && status.worker.is_some() && status.worker == worker_of(a);
    running_here.then(|| status.started_at.as_ref().map(|t| t.0.as_second()))?
}

/// Whether the worker the actor was released from has confirmed that it stopped it: phase
/// Migrating written by that worker (status.worker) under the epoch of the assignment that ended
/// (the annotation, which a release keeps). A confirmation of an older assignment, or one that
/// names no epoch while the assignment had one, does not count.
pub fn confirmed_departure(a: &Actor) -> bool {
    let Some(status) = a.status.as_ref() else {
        return false;
    };
    if status.phase != Some(ActorPhase::Migrating) {
        return false;
    }
    match a.assignment_epoch() {
        Some(assigned) => a.reported_epoch() == Some(assigned),
        // Placed before epochs existed.
        None => true,
    }
}

/// An assignment of the operator's own whose label write did not land: the operator stopped (or
/// lost a race) between the status write (`Placed`, worker, new epoch) and the label write. The
/// status then names a newer epoch than the annotation and no worker holds the label. That
/// decision was only made once the previous assignment had ended, so the actor is free to place
/// again (under an epoch above both); waiting for a confirmation would wait forever.
pub fn assignment_unwritten(a: &Actor) -> bool {
    let annotated = a.assignment_epoch().unwrap_or(0);
    a.status
        .as_ref()
        .is_some_and(|s| s.phase == Some(ActorPhase::Placed))
        && a.reported_epoch().unwrap_or(0) > annotated
}

/// One move the placement asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Label the actor with its worker (it has none), under a new epoch.
    Assign {
        actor: String,
        worker: String,
        failover: bool,
        /// The new assignment's epoch: one above every epoch the actor ever had.
        epoch: u64,
    },
    /// Take the actor from a live worker; it is assigned once that worker confirmed the stop.
    Release { actor: String, from: String },
    /// Take the actor from a dead worker (its lease ended): nothing runs it any more.
    Orphan { actor: String, from: String },
    /// No live worker has room.
    Unplaceable { actor: String },
}

/// Decides the steps that bring the pool's actors toward a placement on `live` workers.
///
/// Never two activations: an actor leaves a live worker in two steps (release, then assign once
/// the old worker confirmed with phase Migrating), and leaves a dead worker only once its lease
/// has ended. Every assignment carries a new epoch. Actors placed by hand are left alone.
pub fn plan(actors: &[&Actor], live: &BTreeSet<String>, eligible: &[WorkerSlot]) -> Vec<Step> {
    let actors: Vec<&Actor> = actors.iter().copied().filter(|a| !is_manual(a)).collect();
    let epochs: BTreeMap<String, u64> = actors.iter().map(|a| (a.name_any(), epoch_of(a))).collect();
    // An actor counts as on its worker while labelled; a released actor not yet confirmed
    // stays "in transit" and is left alone.
    let mut current: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut in_transit = BTreeSet::new();
    let mut lost_in_transit = BTreeSet::new();
    let mut steps = Vec::new();
    for a in &actors {
        let name = a.name_any();
        match worker_of(a) {
            Some(w) if live.contains(&w) => {
                current.insert(name, Some(w));
            }
            Some(w) => {
                steps.push(Step::Orphan {
                    actor: name.clone(),
                    from: w,
                });
                current.insert(name, None);
            }
            None => {
                let status = a.status.as_ref();
                let previous = status.and_then(|s| s.worker.clone());
                let confirmed = confirmed_departure(a) || assignment_unwritten(a);
                match previous {
                    Some(p) if live.contains(&p) && !confirmed => {
                        in_transit.insert(name.clone());
                    }
                    // Released from a worker that died before confirming: a failover.
                    Some(_) if !confirmed => {
                        lost_in_transit.insert(name.clone());
                    }
                    _ => {}
                }
                // Counted as homeless either way, so the placement reserves a worker for it and
                // does not release more actors to fill that worker.
                current.insert(name, None);
            }
        }
    }
    let started: BTreeMap<String, i64> = actors
        .iter()
        .filter_map(|a| Some((a.name_any(), started_here(a)?)))
        .collect();
    let placement = place_by_age(&current, eligible, &started);
    let orphaned: BTreeSet<String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Orphan { actor, .. } => Some(actor.clone()),
            _ => None,
        })
        .collect();
    // A move only to balance (from a worker of this group to one just back from a lapse) waits
    // until that worker settled: the actors that just failed over are not moved twice in a row.
    let unsettled: BTreeSet<&str> = eligible
        .iter()
        .filter(|w| !w.settled)
        .map(|w| w.name.as_str())
        .collect();
    let in_group: BTreeSet<&str> = eligible.iter().map(|w| w.name.as_str()).collect();
    for (actor, target) in placement {
        let now = current.get(&actor).cloned().flatten();
        match (now, target) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) if unsettled.contains(b.as_str()) && in_group.contains(a.as_str()) => {}
            (Some(a), Some(_)) => steps.push(Step::Release { actor, from: a }),
            (Some(a), None) => steps.push(Step::Release { actor, from: a }),
            // Released but its old worker has not confirmed the stop yet: assigned next time.
            (None, Some(_)) if in_transit.contains(&actor) => {}
            (None, Some(b)) => {
                let failover = orphaned.contains(&actor) || lost_in_transit.contains(&actor);
                let epoch = epochs.get(&actor).copied().unwrap_or(0) + 1;
                steps.push(Step::Assign {
                    actor,
                    worker: b,
                    failover,
                    epoch,
                });
            }
            (None, None) if in_transit.contains(&actor) => {}
            (None, None) => steps.push(Step::Unplaceable { actor }),
        }
    }
    steps
}

/// One actor's steps with what the last one overwrites dropped: an orphan assigned in the same
/// pass needs no separate "worker lost" write (the assignment rewrites status and label, and the
/// dead worker's lease has ended), which halves the writes of a failover.
pub fn coalesce(mut steps: Vec<Step>) -> Vec<Step> {
    if let [Step::Orphan { .. }, Step::Assign { .. }] = steps.as_slice() {
        steps.remove(0);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn actor(name: &str, worker: Option<&str>, status: Value) -> Actor {
        let mut a: Actor = serde_json::from_value(json!({
            "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"pool": "p", "behavior": "echo"},
            "status": status
        }))
        .unwrap();
        if let Some(w) = worker {
            a.metadata.labels = Some([(labels::WORKER.to_string(), w.to_string())].into());
        }
        a
    }

    fn slots(names: &[&str]) -> Vec<WorkerSlot> {
        names
            .iter()
            .map(|n| WorkerSlot {
                name: n.to_string(),
                capacity: 100,
                settled: true,
            })
            .collect()
    }

    fn live(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn new_actors_are_assigned_to_live_workers() {
        let a = actor("a", None, json!({}));
        let steps = plan(&[&a], &live(&["w1"]), &slots(&["w1"]));
        assert_eq!(
            steps,
            vec![Step::Assign {
                actor: "a".into(),
                worker: "w1".into(),
                failover: false,
                epoch: 1
            }]
        );
    }

    #[test]
    fn actors_of_a_dead_worker_are_orphaned_and_failed_over_in_one_pass() {
        let a = actor("a", Some("dead"), json!({"worker": "dead", "phase": "Running"}));
        let steps = plan(&[&a], &live(&["w1"]), &slots(&["w1"]));
        assert_eq!(
            steps,
            vec![
                Step::Orphan {
                    actor: "a".into(),
                    from: "dead".into()
                },
                Step::Assign {
                    actor: "a".into(),
                    worker: "w1".into(),
                    failover: true,
                    epoch: 1
                }
            ]
        );
    }

    #[test]
    fn an_orphan_assigned_in_the_same_pass_costs_only_the_assignment() {
        let a = actor("a", Some("dead"), json!({"worker": "dead", "phase": "Running"}));
        let steps = coalesce(plan(&[&a], &live(&["w1"]), &slots(&["w1"])));
        assert_eq!(
            steps,
            vec![Step::Assign {
                actor: "a".into(),
                worker: "w1".into(),
                failover: true,
                epoch: 1
            }]
        );
        // Without room elsewhere the orphan is still taken off its dead worker.
        let steps = coalesce(plan(&[&a], &live(&[]), &[]));
        assert!(matches!(steps[0], Step::Orphan { .. }));
    }

    #[test]
    fn a_new_worker_takes_the_actors_that_just_failed_over_not_the_survivors_long_running_ones() {
        // All four started together on two workers; "dead" died and a0, a1 were assigned to
        // "survivor" (phase Placed, not claimed yet: startedAt still the dead worker's). Then
        // the replacement joins: the two that failed over move, whatever their names.
        let started = "2026-11-23T10:00:00Z";
        let failed_over = |n| {
            actor(
                n,
                Some("survivor"),
                json!({"worker": "survivor", "phase": "Placed", "startedAt": started}),
            )
        };
        let long_running = |n| {
            actor(
                n,
                Some("survivor"),
                json!({"worker": "survivor", "phase": "Running", "startedAt": started}),
            )
        };
        let (a0, a1) = (failed_over("a0"), failed_over("a1"));
        let (a2, a3) = (long_running("a2"), long_running("a3"));
        let workers = ["survivor", "replacement"];
        let steps = plan(&[&a0, &a1, &a2, &a3], &live(&workers), &slots(&workers));
        let released: Vec<&str> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Release { actor, .. } => Some(actor.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(released, vec!["a0", "a1"]);
    }

    #[test]
    fn a_move_between_live_workers_waits_for_the_old_worker_to_confirm() {
        // Two actors on w1, w2 joins: one must move, and first it is only released.
        let a = actor("a", Some("w1"), json!({"worker": "w1", "phase": "Running"}));
        let b = actor("b", Some("w1"), json!({"worker": "w1", "phase": "Running"}));
        let steps = plan(&[&a, &b], &live(&["w1", "w2"]), &slots(&["w1", "w2"]));
        assert_eq!(
            steps,
            vec![Step::Release {
                actor: "b".into(),
                from: "w1".into()
            }]
        );
        // Released, not yet confirmed: left alone.
        let b = actor("b", None, json!({"worker": "w1", "phase": "Migrating"}));
        let b_waiting = actor("b", None, json!({"worker": "w1", "phase": "Pending"}));
        assert_eq!(
            plan(&[&a, &b_waiting], &live(&["w1", "w2"]), &slots(&["w1", "w2"])),
            vec![]
        );
        // Confirmed (the old worker wrote Migrating): assigned to the new worker.
        let steps = plan(&[&a, &b], &live(&["w1", "w2"]), &slots(&["w1", "w2"]));
        assert_eq!(
            steps,
            vec![Step::Assign {
                actor: "b".into(),
                worker: "w2".into(),
                failover: false,
                epoch: 1
            }]
        );
    }

    #[test]
    fn an_assignment_whose_label_write_never_landed_is_placed_again_under_a_newer_epoch() {
        // The operator wrote Placed on w2 under epoch 5 and was killed before the label write;
        // the annotation still says 4 (whose departure w1 had confirmed).
        let mut a = actor("a", None, json!({"worker": "w2", "phase": "Placed", "epoch": 5}));
        a.metadata.annotations = Some([(labels::EPOCH.to_string(), "4".to_string())].into());
        let steps = plan(&[&a], &live(&["w1", "w2"]), &slots(&["w1", "w2"]));
        assert!(
            matches!(
                steps.as_slice(),
                [Step::Assign {
                    epoch: 6,
                    failover: false,
                    ..
                }]
            ),
            "{steps:?}"
        );
        // A release in progress (Pending, old worker named, epoch not newer) still waits.
        let mut waiting = actor("a", None, json!({"worker": "w1", "phase": "Pending", "epoch": 4}));
        waiting.metadata.annotations = Some([(labels::EPOCH.to_string(), "4".to_string())].into());
        assert_eq!(
            plan(&[&waiting], &live(&["w1", "w2"]), &slots(&["w1", "w2"])),
            vec![]
        );
    }

    #[test]
    fn no_actor_is_moved_onto_a_worker_just_back_from_a_lapse_but_homeless_ones_are_placed_on_it() {
        let a = actor("a", Some("w1"), json!({"worker": "w1", "phase": "Running"}));
        let b = actor("b", Some("w1"), json!({"worker": "w1", "phase": "Running"}));
        let homeless = actor("c", None, json!({}));
        let mut eligible = slots(&["w1", "w2"]);
        eligible[1].settled = false;
        let steps = plan(&[&a, &b, &homeless], &live(&["w1", "w2"]), &eligible);
        assert!(
            steps.iter().all(|s| !matches!(s, Step::Release { .. })),
            "no balancing move onto w2 yet: {steps:?}"
        );
        assert!(
            steps
                .iter()
                .any(|s| matches!(s, Step::Assign { actor, worker, .. } if actor == "c" && worker == "w2"))
        );
        // Once settled, the pool is balanced as usual.
        eligible[1].settled = true;
        let steps = plan(&[&a, &b], &live(&["w1", "w2"]), &eligible);
        assert!(matches!(steps.as_slice(), [Step::Release { .. }]), "{steps:?}");
    }

    #[test]
    fn actors_in_transit_reserve_their_place_so_no_extra_actor_is_released() {
        // 4 on w1 and 4 on w2, w3 joined; two were released from each and are not confirmed yet.
        let mut all = Vec::new();
        for i in 0..4 {
            all.push(actor(
                &format!("a{i}"),
                Some("w1"),
                json!({"worker": "w1", "phase": "Running"}),
            ));
            all.push(actor(
                &format!("b{i}"),
                Some("w2"),
                json!({"worker": "w2", "phase": "Running"}),
            ));
        }
        for (n, w) in [("a8", "w1"), ("a9", "w1"), ("b8", "w2"), ("b9", "w2")] {
            all.push(actor(n, None, json!({"worker": w, "phase": "Pending"})));
        }
        let refs: Vec<&Actor> = all.iter().collect();
        assert!(plan(&refs, &live(&["w1", "w2", "w3"]), &slots(&["w1", "w2", "w3"])).is_empty());
    }

    #[test]
    fn an_actor_released_by_a_worker_that_then_died_is_failed_over() {
        let a = actor("a", None, json!({"worker": "dead", "phase": "Pending"}));
        let steps = plan(&[&a], &live(&["w1"]), &slots(&["w1"]));
        assert_eq!(
            steps,
            vec![Step::Assign {
                actor: "a".into(),
                worker: "w1".into(),
                failover: true,
                epoch: 1
            }]
        );
    }

    #[test]
    fn without_workers_actors_are_unplaceable_not_lost() {
        let a = actor("a", None, json!({}));
        assert_eq!(
            plan(&[&a], &live(&[]), &[]),
            vec![Step::Unplaceable { actor: "a".into() }]
        );
    }

    #[test]
    fn a_settled_pool_needs_no_step() {
        let a = actor("a", Some("w1"), json!({"worker": "w1", "phase": "Running"}));
        let b = actor("b", Some("w2"), json!({"worker": "w2", "phase": "Running"}));
        assert!(plan(&[&a, &b], &live(&["w1", "w2"]), &slots(&["w1", "w2"])).is_empty());
    }

    fn with_epoch(mut a: Actor, epoch: u64) -> Actor {
        a.metadata.annotations = Some([(labels::EPOCH.to_string(), epoch.to_string())].into());
        a
    }

    #[test]
    fn every_assignment_raises_the_epoch_above_any_the_actor_had() {
        let a = with_epoch(actor("a", Some("dead"), json!({"worker": "dead", "epoch": 7})), 7);
        let steps = coalesce(plan(&[&a], &live(&["w1"]), &slots(&["w1"])));
        assert!(matches!(steps[..], [Step::Assign { epoch: 8, .. }]), "{steps:?}");
        // The status says more than the annotation (a hand edit lost it): still above both.
        let b = with_epoch(
            actor(
                "b",
                None,
                json!({"worker": "dead", "epoch": 9, "phase": "Migrating"}),
            ),
            3,
        );
        assert_eq!(epoch_of(&b), 9);
    }

    #[test]
    fn a_departure_counts_only_when_confirmed_under_the_epoch_of_the_assignment_it_ends() {
        let a = actor(
            "a",
            Some("w1"),
            json!({"worker": "w1", "phase": "Running", "epoch": 4}),
        );
        let all = live(&["w1", "w2"]);
        let two = slots(&["w1", "w2"]);
        // b was released from w1 (assignment epoch 5); a stale confirmation of epoch 4 arrives.
        let stale = with_epoch(
            actor(
                "b",
                None,
                json!({"worker": "w1", "phase": "Migrating", "epoch": 4}),
            ),
            5,
        );
        assert!(!confirmed_departure(&stale));
        assert_eq!(plan(&[&a, &stale], &all, &two), vec![], "still in transit");
        let confirmed = with_epoch(
            actor(
                "b",
                None,
                json!({"worker": "w1", "phase": "Migrating", "epoch": 5}),
            ),
            5,
        );
        assert_eq!(
            plan(&[&a, &confirmed], &all, &two),
            vec![Step::Assign {
                actor: "b".into(),
                worker: "w2".into(),
                failover: false,
                epoch: 6
            }]
        );
    }

    #[test]
    fn an_actor_placed_by_hand_is_never_moved_orphaned_or_released() {
        let mut a = actor("a", Some("dead"), json!({"worker": "dead", "phase": "Running"}));
        a.metadata.annotations = Some([(labels::PLACEMENT.to_string(), "manual".to_string())].into());
        assert_eq!(plan(&[&a], &live(&["w1"]), &slots(&["w1"])), vec![]);
    }
}
