//! The chaos suite's library: fault classes and a seeded plan of them ([`plan`]), the
//! single-activation [`checker`], the means to inject each fault ([`faults`]), and the figures a
//! run reports (recovery times by kind, [`Tally`]). The test itself is `e2e/tests/chaos.rs`;
//! what it proves and how to run it is in `docs/reliability.md`.

pub mod checker;
pub mod faults;

use std::{collections::BTreeMap, fmt, str::FromStr, time::Duration};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

/// The fault classes of issue #10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A worker's container SIGKILLed; it restarts in place (same pod, new process).
    ContainerCrash,
    /// A worker pod deleted with no grace (node loss): a new pod with a new name replaces it.
    PodDeletion,
    /// A worker process SIGSTOPped for 8–15 s (longer than its 6 s lease), then SIGCONTed, as a
    /// VM suspension or a stalled container would.
    ProcessPause,
    /// One worker cut off from the API server (its connections stall, as packets dropped by a
    /// partition do), then healed.
    Partition,
    /// The operator `kill -9`ed while it moves actors (right after a worker's node loss), then
    /// started again.
    OperatorKill,
    /// The leading operator SIGSTOPped longer than its leader lease while a second replica runs,
    /// then SIGCONTed.
    HungLeader,
    /// The API server stopped and started again.
    ApiServerRestart,
    /// etcd stopped and started again.
    EtcdRestart,
    /// A worker's wall clock set minutes off (libfaketime), then back.
    ClockSkew,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::ContainerCrash,
        FaultKind::PodDeletion,
        FaultKind::ProcessPause,
        FaultKind::Partition,
        FaultKind::OperatorKill,
        FaultKind::HungLeader,
        FaultKind::ApiServerRestart,
        FaultKind::EtcdRestart,
        FaultKind::ClockSkew,
    ];

    /// Faults of one worker only: they disturb nothing outside the test's namespace, so they
    /// can run beside other tests.
    pub const WORKER_ONLY: [FaultKind; 5] = [
        FaultKind::ContainerCrash,
        FaultKind::PodDeletion,
        FaultKind::ProcessPause,
        FaultKind::Partition,
        FaultKind::ClockSkew,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ContainerCrash => "container-crash",
            FaultKind::PodDeletion => "pod-deletion",
            FaultKind::ProcessPause => "process-pause",
            FaultKind::Partition => "partition",
            FaultKind::OperatorKill => "operator-kill",
            FaultKind::HungLeader => "hung-leader",
            FaultKind::ApiServerRestart => "apiserver-restart",
            FaultKind::EtcdRestart => "etcd-restart",
            FaultKind::ClockSkew => "clock-skew",
        }
    }

    /// Whether the fault targets one worker (chosen by the plan).
    pub fn targets_a_worker(self) -> bool {
        matches!(
            self,
            FaultKind::ContainerCrash
                | FaultKind::PodDeletion
                | FaultKind::ProcessPause
                | FaultKind::Partition
                | FaultKind::OperatorKill
                | FaultKind::ClockSkew
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault kind {s:?}; known: {}", names.join(", "))
            })
    }
}

/// One fault of a run, fully decided by the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFault {
    pub kind: FaultKind,
    /// Which worker, as an index into the workers sorted by name when the fault starts (taken
    /// modulo their number).
    pub target: usize,
    /// How long the fault lasts before it is healed (pause, partition, hung leader, skew).
    pub hold: Duration,
    /// Clock offset in minutes for a clock skew (never 0).
    pub skew_minutes: i64,
}

/// `count` faults drawn from `kinds` by `seed`: every kind at least once when `count` allows it,
/// the rest drawn at random, in a shuffled order. The same seed gives the same plan.
pub fn plan(seed: u64, kinds: &[FaultKind], count: usize) -> Vec<PlannedFault> {
    let mut rng = StdRng::seed_from_u64(seed);
    if kinds.is_empty() {
        return Vec::new();
    }
    let mut chosen: Vec<FaultKind> = kinds.iter().copied().take(count).collect();
    while chosen.len() < count {
        chosen.push(kinds[rng.random_range(0..kinds.len())]);
    }
    chosen.shuffle(&mut rng);
    chosen
        .into_iter()
        .map(|kind| {
            let hold_secs = match kind {
                FaultKind::ProcessPause => rng.random_range(8..=15),
                FaultKind::Partition => rng.random_range(10..=20),
                // Longer than the operator's 15 s leader lease, so that the follower takes over.
                FaultKind::HungLeader => rng.random_range(20..=25),
                FaultKind::ClockSkew => rng.random_range(15..=25),
                _ => 0,
            };
            let minutes = rng.random_range(2..=10);
            PlannedFault {
                kind,
                target: rng.random_range(0..1000),
                hold: Duration::from_secs(hold_secs),
                skew_minutes: if rng.random_bool(0.5) { minutes } else { -minutes },
            }
        })
        .collect()
}

/// The `p`th percentile (0–100) by nearest rank; None for no values.
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1])
}

/// What happened around one fault.
#[derive(Debug, Clone)]
pub struct FaultOutcome {
    pub kind: FaultKind,
    /// Fault injected → every actor Running on a live worker again; None if that never happened
    /// within the run's recovery bound.
    pub recovery: Option<Duration>,
    /// Stale executions the checker found since the previous fault.
    pub stale_executions: usize,
    /// Actors with at least one of those.
    pub doubled_actors: usize,
    /// Other violations (epoch regressions, malformed lines) since the previous fault.
    pub other_violations: usize,
    /// Actors not Running `lease + grace` after the fault ended.
    pub slow_actors: usize,
    /// Actors not Running on a live worker when the recovery bound ran out.
    pub lost_actors: usize,
    /// Why the fault could not be injected (e.g. libfaketime missing); it counts for nothing.
    pub skipped: Option<String>,
}

/// Outcomes by kind, and the table a run prints.
#[derive(Debug, Default)]
pub struct Tally {
    pub outcomes: Vec<FaultOutcome>,
}

impl Tally {
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|o| {
            o.skipped.is_none()
                && (o.stale_executions > 0
                    || o.other_violations > 0
                    || o.lost_actors > 0
                    || o.slow_actors > 0
                    || o.recovery.is_none())
        })
    }

    /// A Markdown table: faults by kind, stale executions, doubled actors, other violations,
    /// actors slow or lost, recovery p50/p99.
    pub fn table(&self) -> String {
        let mut by_kind: BTreeMap<FaultKind, Vec<&FaultOutcome>> = BTreeMap::new();
        for o in &self.outcomes {
            by_kind.entry(o.kind).or_default().push(o);
        }
        let secs = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
        let mut out = String::from(
            "| fault | injected | skipped | stale executions | actors doubled | other violations | actors slow | actors lost | recovery p50 | recovery p99 |\n|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for (kind, os) in &by_kind {
            let ran: Vec<_> = os.iter().filter(|o| o.skipped.is_none()).collect();
            let rec: Vec<Duration> = ran.iter().filter_map(|o| o.recovery).collect();
            let unrecovered = ran.iter().filter(|o| o.recovery.is_none()).count();
            out.push_str(&format!(
                "| {kind} | {} | {} | {} | {} | {} | {} | {} | {}{} | {} |\n",
                ran.len(),
                os.len() - ran.len(),
                ran.iter().map(|o| o.stale_executions).sum::<usize>(),
                ran.iter().map(|o| o.doubled_actors).sum::<usize>(),
                ran.iter().map(|o| o.other_violations).sum::<usize>(),
                ran.iter().map(|o| o.slow_actors).sum::<usize>(),
                ran.iter().map(|o| o.lost_actors).sum::<usize>(),
                secs(percentile(&rec, 50.0)),
                if unrecovered > 0 {
                    format!(" ({unrecovered} never)")
                } else {
                    String::new()
                },
                secs(percentile(&rec, 99.0)),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        let a = plan(42, &FaultKind::ALL, 20);
        assert_eq!(a, plan(42, &FaultKind::ALL, 20));
        assert_ne!(a, plan(43, &FaultKind::ALL, 20));
    }

    #[test]
    fn a_plan_long_enough_holds_every_kind_and_pauses_outlast_the_lease() {
        let p = plan(7, &FaultKind::ALL, 12);
        assert_eq!(p.len(), 12);
        for kind in FaultKind::ALL {
            assert!(p.iter().any(|f| f.kind == kind), "{kind} missing from {p:?}");
        }
        for f in p.iter().filter(|f| f.kind == FaultKind::ProcessPause) {
            assert!((8..=15).contains(&f.hold.as_secs()), "{f:?}");
        }
        assert!(p.iter().all(|f| f.skew_minutes != 0));
    }

    #[test]
    fn a_short_plan_takes_the_kinds_in_the_order_given() {
        let p = plan(1, &[FaultKind::ProcessPause, FaultKind::ContainerCrash], 1);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, FaultKind::ProcessPause);
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.name().parse::<FaultKind>(), Ok(kind));
        }
        assert!(
            "meteor"
                .parse::<FaultKind>()
                .unwrap_err()
                .contains("known: container-crash")
        );
    }

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_secs).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_secs(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_secs(99)));
        assert_eq!(percentile(&v[..1], 99.0), Some(Duration::from_secs(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    fn outcome(kind: FaultKind, stale: usize, recovery: Option<u64>) -> FaultOutcome {
        FaultOutcome {
            kind,
            recovery: recovery.map(Duration::from_secs),
            stale_executions: stale,
            doubled_actors: stale.min(1),
            other_violations: 0,
            slow_actors: 0,
            lost_actors: 0,
            skipped: None,
        }
    }

    #[test]
    fn a_stale_execution_or_an_unrecovered_fault_fails_the_run_and_a_skipped_one_does_not() {
        let clean = Tally {
            outcomes: vec![outcome(FaultKind::ContainerCrash, 0, Some(9))],
        };
        assert!(!clean.failed());
        let doubled = Tally {
            outcomes: vec![outcome(FaultKind::ProcessPause, 3, Some(12))],
        };
        assert!(doubled.failed());
        let stuck = Tally {
            outcomes: vec![outcome(FaultKind::Partition, 0, None)],
        };
        assert!(stuck.failed());
        let mut skipped = outcome(FaultKind::ClockSkew, 0, None);
        skipped.skipped = Some("libfaketime is not installed".into());
        assert!(
            !Tally {
                outcomes: vec![skipped]
            }
            .failed()
        );
    }

    #[test]
    fn the_table_has_a_row_per_kind_with_its_figures() {
        let t = Tally {
            outcomes: vec![
                outcome(FaultKind::ProcessPause, 5, Some(10)),
                outcome(FaultKind::ProcessPause, 2, Some(20)),
                outcome(FaultKind::ContainerCrash, 0, None),
            ],
        }
        .table();
        assert!(
            t.contains("| process-pause | 2 | 0 | 7 | 2 | 0 | 0 | 0 | 10.0 s | 20.0 s |"),
            "{t}"
        );
        assert!(
            t.contains("| container-crash | 1 | 0 | 0 | 0 | 0 | 0 | 0 | - (1 never) | - |"),
            "{t}"
        );
    }
}
