//! The Troupe operator: turns ActorPools into worker Deployments, places every Actor on exactly
//! one live worker (membership by Lease), fails actors over when a worker's lease ends, and
//! writes pool and actor status. Rollouts (canary, blue-green, analysis, alerts) build on this.

pub mod address_allow;
pub mod alerts;
pub mod analysis;
pub mod console;
pub mod context;
pub mod deployment;
#[cfg(test)]
pub mod fixtures;
pub mod http;
pub mod leader;
pub mod membership;
pub mod orphans;
pub mod own_writes;
#[cfg(test)]
mod parsers_fuzz;
pub mod placement;
pub mod pool_controller;
pub mod revision;
pub mod revisions;
pub mod rollout;
pub mod run;
pub mod service;
pub mod worker_access;
