//! Placement: which live worker hosts each actor, and the writes that get it there.
//!
//! `balance` decides where actors should be (pure, balanced, stable under churn); `plan` turns
//! that into steps that never run an actor twice (pure, with epochs); `write` applies the steps
//! with preconditions.

pub mod balance;
pub mod plan;
pub mod write;

pub use balance::{WorkerSlot, moves, place};
pub use plan::{Step, coalesce, confirmed_departure, epoch_of, is_manual, pending_because, plan, worker_of};
pub use write::{actor_status_patch, apply_steps, assignment_patch, merge_params};
