//! The hub: changes in, numbered batches of topics out, to every subscriber at once.
//!
//! Batches are gathered over [`WINDOW`] from the first change, so that a burst (a rollout moving
//! a thousand actors) becomes a few page refreshes rather than a thousand. Each batch gets the
//! next sequence number; a page is rendered with the number it is up to date with, and a page
//! that connects after a batch it missed is told at once (see `sse`).

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{broadcast, mpsc};

use super::topics::{ALL, Change, MAX_TOPICS, topics_of};

/// How long changes are gathered into one batch. Short against the 1 s goal from a change in
/// the API to the open page; long enough to fold a burst into one refresh.
pub const WINDOW: Duration = Duration::from_millis(150);
/// Changes waiting for the hub; when full, the batch becomes `*` rather than anything waiting.
const QUEUE: usize = 8192;
/// Batches a slow subscriber may fall behind by before it is told `*`.
const BACKLOG: usize = 64;

/// One broadcast: its number and the topics it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub seq: u64,
    pub topics: Vec<String>,
}

/// The shared hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    changes: mpsc::Sender<Change>,
    batches: broadcast::Sender<Arc<Batch>>,
    seq: Arc<AtomicU64>,
}

impl Hub {
    /// A hub and its task (which ends when every sender of changes is gone).
    pub fn start() -> Hub {
        let (changes, rx) = mpsc::channel(QUEUE);
        let (batches, _) = broadcast::channel(BACKLOG);
        let seq = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(rx, batches.clone(), seq.clone()));
        Hub {
            changes,
            batches,
            seq,
        }
    }

    /// Reports a change; never waits (a full queue turns into a `*` batch).
    pub fn report(&self, change: Change) {
        if self.changes.try_send(change).is_err() {
            let _ = self.changes.try_send(Change::Relisted);
        }
    }

    /// The number of the last batch sent: what a page rendered now is up to date with.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.batches.subscribe()
    }
}

/// Topics of `changes`, deduplicated; `*` alone when there are too many.
pub fn gather(changes: &[Change]) -> Vec<String> {
    let set: BTreeSet<String> = changes.iter().flat_map(topics_of).collect();
    if set.contains(ALL) || set.len() > MAX_TOPICS {
        vec![ALL.into()]
    } else {
        set.into_iter().collect()
    }
}

async fn run(mut rx: mpsc::Receiver<Change>, out: broadcast::Sender<Arc<Batch>>, seq: Arc<AtomicU64>) {
    while let Some(first) = rx.recv().await {
        let mut changes = vec![first];
        let deadline = tokio::time::Instant::now() + WINDOW;
        while let Ok(Some(c)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            changes.push(c);
        }
        let topics = gather(&changes);
        // The number is raised before the send: a page rendered from now on is up to date with
        // this batch at least, so it ignores it; one rendered before saw an older number.
        let n = seq.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = out.send(Arc::new(Batch { seq: n, topics }));
    }
}
