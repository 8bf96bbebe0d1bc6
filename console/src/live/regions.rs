//! One render of a live region per batch, shared by every open page that asks for it.
//!
//! A batch naming a topic makes every open page that shows it fetch its live region at once. With
//! 25 browsers on the actors table of 10,000 actors, that was 25 renders of the same region, each
//! walking every actor, and the last browser waited for the 24 renders before its own
//! (docs/benchmarks.md, "Console with 10,000 actors"). Here the first request for a region
//! renders it; requests for the same region that arrive while it renders wait for that render,
//! and those that come later get the same bytes while they are fresh.
//!
//! Two requests ask for the same region when they name the same URL (path and query: the
//! filters, the page number), are served alike (`Served`: what the request may do changes the
//! notices and links), and the hub's number is the same for both (they are up to date with the
//! same batch). The bytes are reused for at most [`FRESH`] after their render began:
//!
//! - a change that reached the stores after that render began is in a later batch, which every
//!   page showing it refreshes for, exactly as after a render of its own made a moment earlier;
//! - regions show ages (`42s ago`), which must not go stale: a second is the unit they count in.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::body::Bytes;
use http::StatusCode;
use tokio::sync::OnceCell;

use crate::pages::Served;

/// How long after its render began a region's bytes are handed out again.
pub const FRESH: Duration = Duration::from_secs(1);
/// Regions kept at most. Past this, stale ones are dropped, and if every one is fresh (a client
/// asking for thousands of different URLs within a second), all of them: a region dropped is
/// rendered again, never served wrong.
pub const KEPT: usize = 256;

/// Which region: the URL asked for and how the request is served.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub uri: String,
    pub served: Served,
}

/// A rendered region: the response's status and body, and how long the render took.
#[derive(Clone, Debug)]
pub struct Region {
    pub status: StatusCode,
    pub body: Bytes,
    pub took: Duration,
}

/// What a request got: a render of its own, or one made for another request of the same batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Got {
    Rendered,
    Shared,
}

struct Entry {
    seq: u64,
    began: Instant,
    /// Filled once by the first request; the others wait on it. Should the first request be
    /// dropped mid-render (its browser went away), the next waiter renders instead.
    region: Arc<OnceCell<Region>>,
}

/// The regions rendered lately, by key.
#[derive(Default)]
pub struct Regions {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Regions {
    /// The region `key` up to date with batch `seq`: rendered by `render` unless a render for
    /// the same key and batch began less than [`FRESH`] ago.
    pub async fn get(&self, key: Key, seq: u64, render: impl FnOnce() -> Region) -> (Region, Got) {
        self.get_at(key, seq, Instant::now(), render).await
    }

    /// [`Regions::get`] as if it were `now` (for tests of freshness).
    pub async fn get_at(
        &self,
        key: Key,
        seq: u64,
        now: Instant,
        render: impl FnOnce() -> Region,
    ) -> (Region, Got) {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            match entries.get(&key) {
                Some(e) if e.seq == seq && now.saturating_duration_since(e.began) < FRESH => e.region.clone(),
                _ => {
                    if entries.len() >= KEPT {
                        entries.retain(|_, e| now.saturating_duration_since(e.began) < FRESH);
                        if entries.len() >= KEPT {
                            entries.clear();
                        }
                    }
                    let cell = Arc::new(OnceCell::new());
                    entries.insert(
                        key,
                        Entry {
                            seq,
                            began: now,
                            region: cell.clone(),
                        },
                    );
                    cell
                }
            }
        };
        // The lock is not held across the render: other regions are served meanwhile.
        let mut rendered = false;
        let region = cell
            .get_or_init(|| async {
                rendered = true;
                render()
            })
            .await
            .clone();
        (region, if rendered { Got::Rendered } else { Got::Shared })
    }

    /// Regions kept now (for tests).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
