//! What changed, and which pages that concerns. A topic is a short string: `pools` (any pool),
//! `actors` (any actor), `pool:NS/NAME` (that pool, its workers, its actors, its Events),
//! `actor:NS/NAME` (that actor and its Events), or `*` (anything: after a re-list, or when a
//! batch would be too long to be worth reading).

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Pool {
        namespace: String,
        name: String,
    },
    Actor {
        namespace: String,
        name: String,
        pool: String,
    },
    /// A worker's Lease (labelled with its pool).
    Lease {
        namespace: String,
        pool: String,
    },
    /// An Event about the `kind` object `namespace/name`.
    Event {
        namespace: String,
        kind: String,
        name: String,
    },
    /// A watch (re)listed: anything may have changed.
    Relisted,
}

/// Every topic: a batch naming it concerns every page.
pub const ALL: &str = "*";
/// Batches with more distinct topics than this are sent as [`ALL`]: every page reloads its
/// region once, which is cheaper than every browser reading thousands of names.
pub const MAX_TOPICS: usize = 256;

pub fn pool_topic(namespace: &str, name: &str) -> String {
    format!("pool:{namespace}/{name}")
}

pub fn actor_topic(namespace: &str, name: &str) -> String {
    format!("actor:{namespace}/{name}")
}

/// The topics `change` concerns.
pub fn topics_of(change: &Change) -> Vec<String> {
    match change {
        Change::Pool { namespace, name } => vec!["pools".into(), pool_topic(namespace, name)],
        Change::Actor {
            namespace,
            name,
            pool,
        } => vec![
            "actors".into(),
            actor_topic(namespace, name),
            pool_topic(namespace, pool),
        ],
        Change::Lease { namespace, pool } => vec![pool_topic(namespace, pool)],
        Change::Event {
            namespace,
            kind,
            name,
        } => match kind.as_str() {
            "ActorPool" => vec![pool_topic(namespace, name)],
            "Actor" => vec![actor_topic(namespace, name)],
            _ => vec![],
        },
        Change::Relisted => vec![ALL.into()],
    }
}

/// Whether a batch of `changed` topics concerns a page showing `shown`.
pub fn concerns(changed: &[String], shown: &[String]) -> bool {
    changed.iter().any(|c| c == ALL || shown.contains(c))
}
