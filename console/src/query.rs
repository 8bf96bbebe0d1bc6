//! The actors table's query: filters from the URL (a plain GET form), and pagination. Pure, so
//! that the rules are tested here and the page stays fast: one pass over the store, a sort of
//! what matched, one page cut out.

use std::sync::Arc;

use serde::Deserialize;
use troupe_crds::{Actor, ActorPhase};

use crate::view::{actor::ActorRow, matches, phase::actor_phase_named};

/// Actors shown per page.
pub const PAGE_SIZE: usize = 100;

/// The filters of `/actors`, as query parameters. Empty means "any".
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ActorQuery {
    /// Part of the actor's name.
    pub name: String,
    /// Part of the behaviour's name.
    pub behavior: String,
    /// A phase (exact, any case).
    pub phase: String,
    /// Part of the worker pod's name.
    pub worker: String,
    /// The start of the revision (revisions are hashes: people type a prefix).
    pub revision: String,
    /// The namespace (exact).
    pub namespace: String,
    /// The pool (exact).
    pub pool: String,
    /// The page, from 1.
    pub page: Option<usize>,
}

impl ActorQuery {
    /// Whether actor `a` passes every filter set.
    pub fn accepts(&self, a: &Actor) -> bool {
        self.filter().accepts(a)
    }

    /// The filters made ready for a pass over the whole store: trimmed, the phase parsed, once
    /// per request rather than once per actor.
    fn filter(&self) -> Filter<'_> {
        let phase = (!self.phase.trim().is_empty()).then(|| actor_phase_named(&self.phase));
        let f = Filter {
            name: self.name.trim(),
            behavior: self.behavior.trim(),
            worker: self.worker.trim(),
            revision: self.revision.trim(),
            namespace: self.namespace.trim(),
            pool: self.pool.trim(),
            phase,
            everything: false,
        };
        let everything = f.phase.is_none()
            && [f.name, f.behavior, f.worker, f.revision, f.namespace, f.pool]
                .iter()
                .all(|v| v.is_empty());
        Filter { everything, ..f }
    }

    /// This query at another page, as a URL query string (for the page links).
    pub fn at_page(&self, page: usize) -> String {
        let mut pairs = form_pairs(self);
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        encode(&pairs)
    }
}

/// An [`ActorQuery`]'s filters, trimmed. Borrows every field it compares: a request walks the
/// whole store through [`Filter::accepts`].
struct Filter<'q> {
    name: &'q str,
    behavior: &'q str,
    worker: &'q str,
    revision: &'q str,
    namespace: &'q str,
    pool: &'q str,
    /// `None`: any phase; `Some(None)`: a name that is no phase, which no actor has.
    phase: Option<Option<ActorPhase>>,
    /// No filter set.
    everything: bool,
}

impl Filter<'_> {
    fn accepts(&self, a: &Actor) -> bool {
        if self.everything {
            return true;
        }
        let status = a.status.as_ref();
        let phase_ok = self
            .phase
            .is_none_or(|want| want == Some(status.and_then(|s| s.phase).unwrap_or_default()));
        phase_ok
            && matches(a.metadata.name.as_deref().unwrap_or(""), self.name)
            && matches(&a.spec.behavior, self.behavior)
            && matches(
                status.and_then(|s| s.worker.as_deref()).unwrap_or(""),
                self.worker,
            )
            && status
                .and_then(|s| s.revision.as_deref())
                .unwrap_or("")
                .starts_with(self.revision)
            && (self.namespace.is_empty() || a.metadata.namespace.as_deref() == Some(self.namespace))
            && (self.pool.is_empty() || a.spec.pool == self.pool)
    }
}

fn form_pairs(q: &ActorQuery) -> Vec<(&'static str, String)> {
    [
        ("name", &q.name),
        ("behavior", &q.behavior),
        ("phase", &q.phase),
        ("worker", &q.worker),
        ("revision", &q.revision),
        ("namespace", &q.namespace),
        ("pool", &q.pool),
    ]
    .into_iter()
    .filter(|(_, v)| !v.trim().is_empty())
    .map(|(k, v)| (k, v.trim().to_string()))
    .collect()
}

/// `k=v&…`, percent-encoded (every byte but unreserved ones).
fn encode(pairs: &[(&str, String)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One page of matching actors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorPage {
    pub rows: Vec<ActorRow>,
    /// Actors that matched, over every page.
    pub matched: usize,
    /// The page shown (from 1; past the last page, the last page).
    pub page: usize,
    pub pages: usize,
}

impl ActorPage {
    /// The position of the first row shown, from 1 (0 when nothing matched).
    pub fn first(&self) -> usize {
        if self.rows.is_empty() {
            0
        } else {
            (self.page - 1) * PAGE_SIZE + 1
        }
    }
}

/// The page `query.page` of the actors matching `query`, by namespace then name.
pub fn actor_page(actors: &[Arc<Actor>], query: &ActorQuery) -> ActorPage {
    let filter = query.filter();
    // Only the keys are compared: names are borrowed, nothing is cloned before the cut.
    let mut hits: Vec<(&str, &str, &Arc<Actor>)> = actors
        .iter()
        .filter(|a| filter.accepts(a))
        .map(|a| {
            let m = &a.metadata;
            (
                m.namespace.as_deref().unwrap_or(""),
                m.name.as_deref().unwrap_or(""),
                a,
            )
        })
        .collect();
    let matched = hits.len();
    let pages = matched.div_ceil(PAGE_SIZE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    // Only the page shown is sorted: the actors before it and after it are partitioned around
    // it (linear), not put in order. Names are unique in a namespace, so no two keys are equal.
    let (lo, hi) = ((page - 1) * PAGE_SIZE, (page * PAGE_SIZE).min(matched));
    let by_key = |a: &(&str, &str, &Arc<Actor>), b: &(&str, &str, &Arc<Actor>)| (a.0, a.1).cmp(&(b.0, b.1));
    if lo > 0 {
        hits.select_nth_unstable_by(lo, by_key);
    }
    let rest = &mut hits[lo..];
    if hi - lo < rest.len() {
        rest.select_nth_unstable_by(hi - lo, by_key);
    }
    let shown = &mut rest[..hi - lo];
    shown.sort_unstable_by(by_key);
    let rows = shown.iter().map(|(_, _, a)| ActorRow::of(a)).collect();
    ActorPage {
        rows,
        matched,
        page,
        pages,
    }
}
