//! Claims: before an assignment first runs on this worker (and again after any fence), the
//! worker records in the Actor's status that it runs the actor under the assignment's epoch, on
//! condition that the Actor is still at the version the assignment was read at.
//!
//! The claim writes the status the actor will have once started (phase `Running`), so a start
//! costs the worker one status write, not two: the status writer takes the claim as its first
//! write and writes again only what changed since (say the start failed).
//!
//! The condition is what makes a late decision harmless. The operator moves an actor with a
//! write conditional on the version it decided from; the claim is conditional on the version the
//! worker saw. Both are compare-and-swap operations on the same object, so of "the operator moves
//! the actor away" and "the worker starts it" at most one happens from any one version: a worker
//! whose lease came back while the operator was failing it over never starts an actor that the
//! operator has meanwhile given to another worker.

use super::{ActorKey, RuntimeStatus};

/// The outcome of a claim.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// The status now says this worker runs the actor under the assignment's epoch (the
    /// `running` status of the claim).
    Won,
    /// The assignment is no longer this worker's (moved, deleted, a newer epoch): do not start.
    Lost(String),
    /// The claim could not be written (API unreachable): try again later, do not start.
    Failed(String),
}

/// Writes claims; the worker's is [`crate::status::KubeClaimer`].
#[async_trait::async_trait]
pub trait Claimer: Send + Sync {
    /// Writes `running` (the actor's status once started here under `epoch`) on condition that
    /// the Actor is still at `resource_version` and still assigned here under `epoch`.
    async fn claim(
        &self,
        key: &ActorKey,
        epoch: u64,
        resource_version: Option<&str>,
        running: &RuntimeStatus,
    ) -> Claim;
}
