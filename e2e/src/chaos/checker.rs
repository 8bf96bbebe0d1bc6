//! The single-activation checker: reads the witness file (one JSON line per `start`, `tick`,
//! `msg` and `stop` of a `witness` actor, see `troupe_worker::witness`) and reports every
//! execution that could only happen if an actor was active in two places at once.
//!
//! The checker trusts the ORDER of lines in the file, never the wall times in them: every line
//! is one `O_APPEND` write, so file order is a true global order of events across processes,
//! while one of the chaos faults skews a worker's wall clock by minutes.
//!
//! Rules:
//! - **stale execution**: a `tick` or `msg` by activation X of actor A at a point in the file
//!   where another activation Y of A, whose `start` comes after X's `start`, is open (started and
//!   not yet stopped). A process killed with SIGKILL never writes `stop`; that is fine, because
//!   it never executes again: only executions count.
//! - **epoch regression** (switchable, for before the operator writes epochs): an activation of
//!   A starting in one process with an epoch lower than or equal to the epoch of an earlier
//!   activation of A in another process. Restarts within one process under the same epoch are
//!   fine; epoch 0 means "unknown" and is never compared.
//!
//! It is fed incrementally ([`Checker::feed`]) so that a long run can check after every fault
//! without reading the whole file again.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use serde::Deserialize;

/// `namespace/name` of an actor.
pub type ActorKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Start,
    Tick,
    Msg,
    Stop,
}

/// One witness line, as written by the worker.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub event: Kind,
    pub namespace: String,
    pub actor: String,
    #[serde(default)]
    pub pod: String,
    pub pid: u32,
    pub activation: String,
    #[serde(default)]
    pub epoch: u64,
}

/// A line of the file: its 1-based number and text, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub text: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.number, self.text)
    }
}

/// An activation of an actor: where it runs and where it started in the file.
#[derive(Debug, Clone)]
pub struct Activation {
    pub id: String,
    pub pod: String,
    pub pid: u32,
    pub epoch: u64,
    pub start: Line,
    /// Position among the actor's starts (file order).
    seq: u64,
}

#[derive(Debug, Clone)]
pub enum Violation {
    /// `execution` by `stale` while `newer`, started after `stale`, was open.
    StaleExecution {
        actor: ActorKey,
        execution: Line,
        stale: Activation,
        newer: Activation,
    },
    /// `activation` started with an epoch not above that of `earlier`, in another process.
    EpochRegression {
        actor: ActorKey,
        activation: Activation,
        earlier: Activation,
    },
    /// A line that is not a witness event (a checker or witness bug; never ignored).
    Malformed { line: Line, error: String },
}

impl Violation {
    pub fn is_stale_execution(&self) -> bool {
        matches!(self, Violation::StaleExecution { .. })
    }

    pub fn actor(&self) -> Option<&ActorKey> {
        match self {
            Violation::StaleExecution { actor, .. } | Violation::EpochRegression { actor, .. } => Some(actor),
            Violation::Malformed { .. } => None,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::StaleExecution {
                actor,
                execution,
                stale,
                newer,
            } => write!(
                f,
                "stale execution of {}/{}: activation {} (pod {}, pid {}, epoch {}) executed while the newer activation {} (pod {}, pid {}, epoch {}) was open\n  {execution}\n  stale started  {}\n  newer started  {}",
                actor.0,
                actor.1,
                stale.id,
                stale.pod,
                stale.pid,
                stale.epoch,
                newer.id,
                newer.pod,
                newer.pid,
                newer.epoch,
                stale.start,
                newer.start
            ),
            Violation::EpochRegression {
                actor,
                activation,
                earlier,
            } => write!(
                f,
                "epoch regression of {}/{}: activation {} (pod {}) started with epoch {}, not above epoch {} of the earlier activation {} (pod {})\n  {}\n  earlier {}",
                actor.0,
                actor.1,
                activation.id,
                activation.pod,
                activation.epoch,
                earlier.epoch,
                earlier.id,
                earlier.pod,
                activation.start,
                earlier.start
            ),
            Violation::Malformed { line, error } => write!(f, "malformed witness line ({error})\n  {line}"),
        }
    }
}

/// What the checker knows of one actor.
#[derive(Debug, Clone, Default)]
pub struct ActorSummary {
    /// Activations started (every `start` line).
    pub activations: usize,
    /// Ticks and messages executed.
    pub executions: usize,
    /// Activations with no `stop` yet, in start order. Includes those of processes that were
    /// killed (they never write `stop`): compare with the live processes.
    pub open: Vec<Activation>,
    /// Stale executions of this actor.
    pub stale_executions: usize,
    next_seq: u64,
    /// The highest-epoch start per process `(pod, pid)`, for the epoch rule.
    epochs: BTreeMap<(String, u32), Activation>,
}

impl ActorSummary {
    /// The open activations whose process is in `live_pids`: a true single activation has
    /// exactly one.
    pub fn open_in(&self, live_pids: &BTreeSet<u32>) -> Vec<&Activation> {
        self.open.iter().filter(|a| live_pids.contains(&a.pid)).collect()
    }
}

/// Checker settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Apply the epoch rule (off until the operator writes epochs).
    pub check_epochs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { check_epochs: true }
    }
}

/// The checker's state over the lines fed so far.
#[derive(Debug, Default)]
pub struct Checker {
    options: Options,
    lines: usize,
    pub actors: BTreeMap<ActorKey, ActorSummary>,
    pub violations: Vec<Violation>,
}

impl Checker {
    pub fn new(options: Options) -> Checker {
        Checker {
            options,
            ..Default::default()
        }
    }

    /// Checks a whole history at once.
    pub fn check(text: &str, options: Options) -> Checker {
        let mut c = Checker::new(options);
        c.feed(text);
        c
    }

    /// Lines read so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Feeds complete lines (text ending in a newline, or a whole final line).
    pub fn feed(&mut self, text: &str) {
        for raw in text.lines() {
            self.feed_line(raw);
        }
    }

    pub fn feed_line(&mut self, raw: &str) {
        self.lines += 1;
        let line = Line {
            number: self.lines,
            text: raw.to_string(),
        };
        if raw.trim().is_empty() {
            return;
        }
        let event: Event = match serde_json::from_str(raw) {
            Ok(e) => e,
            Err(e) => {
                self.violations.push(Violation::Malformed {
                    line,
                    error: e.to_string(),
                });
                return;
            }
        };
        let key = (event.namespace.clone(), event.actor.clone());
        let actor = self.actors.entry(key.clone()).or_default();
        match event.event {
            Kind::Start => {
                let activation = Activation {
                    id: event.activation.clone(),
                    pod: event.pod.clone(),
                    pid: event.pid,
                    epoch: event.epoch,
                    start: line,
                    seq: actor.next_seq,
                };
                actor.next_seq += 1;
                actor.activations += 1;
                if self.options.check_epochs && event.epoch > 0 {
                    let process = (event.pod.clone(), event.pid);
                    let earlier = actor
                        .epochs
                        .iter()
                        .filter(|(p, _)| **p != process)
                        .map(|(_, a)| a)
                        .max_by_key(|a| a.epoch);
                    if let Some(earlier) = earlier.filter(|e| e.epoch >= event.epoch) {
                        self.violations.push(Violation::EpochRegression {
                            actor: key.clone(),
                            activation: activation.clone(),
                            earlier: earlier.clone(),
                        });
                    }
                    let best = actor.epochs.entry(process).or_insert_with(|| activation.clone());
                    if best.epoch < event.epoch {
                        *best = activation.clone();
                    }
                }
                // The same id twice would be a witness bug; the newest start wins.
                actor.open.retain(|a| a.id != event.activation);
                actor.open.push(activation);
            }
            Kind::Tick | Kind::Msg => {
                actor.executions += 1;
                let stale = match actor.open.iter().find(|a| a.id == event.activation) {
                    Some(a) => a.clone(),
                    None => {
                        // An execution without a start in the file (it began before the file
                        // did, or its stop came first): count it as an activation started here.
                        let a = Activation {
                            id: event.activation.clone(),
                            pod: event.pod.clone(),
                            pid: event.pid,
                            epoch: event.epoch,
                            start: line.clone(),
                            seq: actor.next_seq,
                        };
                        actor.next_seq += 1;
                        actor.activations += 1;
                        actor.open.push(a.clone());
                        a
                    }
                };
                let newer = actor
                    .open
                    .iter()
                    .filter(|a| a.id != stale.id && a.seq > stale.seq)
                    .max_by_key(|a| a.seq);
                if let Some(newer) = newer {
                    actor.stale_executions += 1;
                    self.violations.push(Violation::StaleExecution {
                        actor: key,
                        execution: line,
                        stale,
                        newer: newer.clone(),
                    });
                }
            }
            Kind::Stop => actor.open.retain(|a| a.id != event.activation),
        }
    }

    pub fn stale_executions(&self) -> usize {
        self.violations.iter().filter(|v| v.is_stale_execution()).count()
    }

    /// Actors that executed stale at least once.
    pub fn doubled_actors(&self) -> BTreeSet<ActorKey> {
        self.violations
            .iter()
            .filter(|v| v.is_stale_execution())
            .filter_map(|v| v.actor().cloned())
            .collect()
    }

    /// A readable report: counts, then up to `max` violations with their lines.
    pub fn report(&self, max: usize) -> String {
        let activations: usize = self.actors.values().map(|a| a.activations).sum();
        let executions: usize = self.actors.values().map(|a| a.executions).sum();
        let mut out = format!(
            "witness: {} lines, {} actors, {} activations, {} executions; {} violations ({} stale executions in {} actors)\n",
            self.lines,
            self.actors.len(),
            activations,
            executions,
            self.violations.len(),
            self.stale_executions(),
            self.doubled_actors().len()
        );
        for v in self.violations.iter().take(max) {
            out.push_str(&format!("{v}\n"));
        }
        if self.violations.len() > max {
            out.push_str(&format!("… and {} more\n", self.violations.len() - max));
        }
        out
    }
}

/// Follows a witness file that grows: each [`WitnessFile::read_new`] feeds the complete lines
/// appended since the last call.
pub struct WitnessFile {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl WitnessFile {
    pub fn new(path: impl Into<PathBuf>) -> WitnessFile {
        WitnessFile {
            path: path.into(),
            offset: 0,
            partial: String::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Feeds the new complete lines to `checker`; a file that does not exist yet is empty.
    pub fn read_new(&mut self, checker: &mut Checker) -> std::io::Result<()> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        if let Some(end) = self.partial.rfind('\n') {
            let complete: String = self.partial.drain(..=end).collect();
            checker.feed(&complete);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history builder: `h.start("a", "p1", 10, "10-1", 1)` appends a line.
    #[derive(Default)]
    struct History(String);

    impl History {
        fn ev(mut self, event: &str, actor: &str, pod: &str, pid: u32, activation: &str, epoch: u64) -> Self {
            self.0.push_str(
                &serde_json::json!({
                    "event": event, "namespace": "ns", "actor": actor, "pod": pod, "pid": pid,
                    "activation": activation, "epoch": epoch, "wallMs": 0
                })
                .to_string(),
            );
            self.0.push('\n');
            self
        }
        fn start(self, actor: &str, pod: &str, pid: u32, act: &str, epoch: u64) -> Self {
            self.ev("start", actor, pod, pid, act, epoch)
        }
        fn tick(self, actor: &str, pod: &str, pid: u32, act: &str, epoch: u64) -> Self {
            self.ev("tick", actor, pod, pid, act, epoch)
        }
        fn msg(self, actor: &str, pod: &str, pid: u32, act: &str, epoch: u64) -> Self {
            self.ev("msg", actor, pod, pid, act, epoch)
        }
        fn stop(self, actor: &str, pod: &str, pid: u32, act: &str, epoch: u64) -> Self {
            self.ev("stop", actor, pod, pid, act, epoch)
        }
        fn check(&self) -> Checker {
            Checker::check(&self.0, Options::default())
        }
    }

    fn key(a: &str) -> ActorKey {
        ("ns".into(), a.into())
    }

    #[test]
    fn a_tick_by_the_old_activation_while_a_newer_one_is_open_is_a_stale_execution() {
        // The planted overlap: worker p1 was paused, the actor started on p2, p1 thawed and ticked.
        let c = History::default()
            .start("a", "p1", 10, "10-1", 1)
            .tick("a", "p1", 10, "10-1", 1)
            .start("a", "p2", 20, "20-1", 2)
            .tick("a", "p2", 20, "20-1", 2)
            .tick("a", "p1", 10, "10-1", 1)
            .stop("a", "p1", 10, "10-1", 1)
            .check();
        assert_eq!(c.stale_executions(), 1, "{}", c.report(10));
        match &c.violations[0] {
            Violation::StaleExecution {
                actor,
                execution,
                stale,
                newer,
            } => {
                assert_eq!(actor, &key("a"));
                assert_eq!(execution.number, 5);
                assert_eq!((stale.id.as_str(), stale.start.number), ("10-1", 1));
                assert_eq!((newer.id.as_str(), newer.start.number), ("20-1", 3));
            }
            v => panic!("unexpected {v}"),
        }
        assert!(
            c.report(10).contains(r#""pod":"p1""#),
            "the report quotes the lines"
        );
        assert_eq!(c.doubled_actors(), BTreeSet::from([key("a")]));
    }

    #[test]
    fn a_message_handled_by_the_old_activation_is_a_stale_execution_too() {
        let c = History::default()
            .start("a", "p1", 10, "10-1", 0)
            .start("a", "p2", 20, "20-1", 0)
            .msg("a", "p1", 10, "10-1", 0)
            .check();
        assert_eq!(c.stale_executions(), 1);
    }

    #[test]
    fn a_stale_execution_within_one_process_is_caught() {
        // Two activations in one process at once are as wrong as in two.
        let c = History::default()
            .start("a", "p1", 10, "10-1", 0)
            .start("a", "p1", 10, "10-2", 0)
            .tick("a", "p1", 10, "10-1", 0)
            .check();
        assert_eq!(c.stale_executions(), 1);
    }

    #[test]
    fn a_worker_killed_without_a_stop_and_replaced_elsewhere_is_clean() {
        let c = History::default()
            .start("a", "p1", 10, "10-1", 1)
            .tick("a", "p1", 10, "10-1", 1)
            .start("a", "p2", 20, "20-1", 2)
            .tick("a", "p2", 20, "20-1", 2)
            .tick("a", "p2", 20, "20-1", 2)
            .check();
        assert!(c.violations.is_empty(), "{}", c.report(10));
        // The killed activation stays open in the file: the live-process filter removes it.
        let a = &c.actors[&key("a")];
        assert_eq!(a.open.len(), 2);
        let live = a.open_in(&BTreeSet::from([20]));
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].pod, "p2");
        assert_eq!((a.activations, a.executions), (2, 3));
    }

    #[test]
    fn an_orderly_move_stop_then_start_is_clean_and_leaves_one_open_activation() {
        let c = History::default()
            .start("a", "p1", 10, "10-1", 1)
            .start("b", "p1", 10, "10-2", 1)
            .tick("a", "p1", 10, "10-1", 1)
            .stop("a", "p1", 10, "10-1", 1)
            .tick("b", "p1", 10, "10-2", 1)
            .start("a", "p2", 20, "20-1", 2)
            .tick("a", "p2", 20, "20-1", 2)
            .check();
        assert!(c.violations.is_empty(), "{}", c.report(10));
        let open: Vec<_> = c.actors[&key("a")].open.iter().map(|a| a.pod.as_str()).collect();
        assert_eq!(open, ["p2"]);
    }

    #[test]
    fn an_old_activation_ticking_before_the_new_one_starts_is_clean() {
        // Overlap in wall time does not matter; only file order does.
        let c = History::default()
            .start("a", "p1", 10, "10-1", 1)
            .tick("a", "p1", 10, "10-1", 1)
            .tick("a", "p1", 10, "10-1", 1)
            .start("a", "p2", 20, "20-1", 2)
            .check();
        assert!(c.violations.is_empty());
    }

    #[test]
    fn restarts_in_one_process_under_the_same_epoch_are_clean() {
        let c = History::default()
            .start("a", "p1", 10, "10-1", 4)
            .tick("a", "p1", 10, "10-1", 4)
            .stop("a", "p1", 10, "10-1", 4)
            .start("a", "p1", 10, "10-2", 4)
            .tick("a", "p1", 10, "10-2", 4)
            .check();
        assert!(c.violations.is_empty(), "{}", c.report(10));
    }

    #[test]
    fn a_start_elsewhere_with_an_epoch_not_above_an_earlier_one_is_an_epoch_regression() {
        let h = History::default()
            .start("a", "p1", 10, "10-1", 5)
            .stop("a", "p1", 10, "10-1", 5)
            .start("a", "p2", 20, "20-1", 5);
        let c = h.check();
        assert_eq!(c.violations.len(), 1, "{}", c.report(10));
        assert!(matches!(c.violations[0], Violation::EpochRegression { .. }));
        // Switched off, the same history passes (for before the operator writes epochs).
        let off = Checker::check(&h.0, Options { check_epochs: false });
        assert!(off.violations.is_empty());
    }

    #[test]
    fn a_thawed_process_restarting_an_actor_with_its_old_epoch_is_an_epoch_regression() {
        let c = History::default()
            .start("a", "p1", 10, "10-1", 5)
            .start("a", "p2", 20, "20-1", 6)
            .stop("a", "p1", 10, "10-1", 5)
            .start("a", "p1", 10, "10-2", 5)
            .check();
        assert!(
            c.violations
                .iter()
                .any(|v| matches!(v, Violation::EpochRegression { .. })),
            "{}",
            c.report(10)
        );
    }

    #[test]
    fn unknown_epochs_are_not_compared_and_rising_epochs_are_clean() {
        let c = History::default()
            .start("a", "p1", 10, "10-1", 0)
            .stop("a", "p1", 10, "10-1", 0)
            .start("a", "p2", 20, "20-1", 0)
            .stop("a", "p2", 20, "20-1", 0)
            .start("a", "p3", 30, "30-1", 3)
            .stop("a", "p3", 30, "30-1", 3)
            .start("a", "p1", 10, "10-2", 4)
            .check();
        assert!(c.violations.is_empty(), "{}", c.report(10));
    }

    #[test]
    fn actors_are_checked_independently() {
        let c = History::default()
            .start("a", "p1", 10, "10-1", 0)
            .start("b", "p2", 20, "20-1", 0)
            .tick("a", "p1", 10, "10-1", 0)
            .tick("b", "p2", 20, "20-1", 0)
            .check();
        assert!(c.violations.is_empty());
    }

    #[test]
    fn a_malformed_line_is_reported_not_skipped() {
        let c = Checker::check("{\"event\":\"tick\",\"namesp\n", Options::default());
        assert!(matches!(c.violations[0], Violation::Malformed { .. }));
    }

    #[test]
    fn a_growing_file_is_fed_line_by_line_whatever_the_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.jsonl");
        let h = History::default()
            .start("a", "p1", 10, "10-1", 0)
            .start("a", "p2", 20, "20-1", 0)
            .tick("a", "p1", 10, "10-1", 0);
        let (first, rest) = h.0.split_at(h.0.len() / 2 + 7);
        let mut file = WitnessFile::new(&path);
        let mut c = Checker::new(Options::default());
        file.read_new(&mut c).unwrap();
        assert_eq!(c.lines(), 0, "a missing file is empty");
        std::fs::write(&path, first).unwrap();
        file.read_new(&mut c).unwrap();
        assert!(c.violations.is_empty(), "half a line is not read");
        std::fs::write(&path, &h.0).unwrap();
        file.read_new(&mut c).unwrap();
        assert_eq!((c.lines(), c.stale_executions()), (3, 1), "{rest}");
    }
}
