//! The Troupe worker: the Ractor host that runs in worker pods.
//!
//! Use it as a library to build your own worker binary with your own actor types (implement
//! [`behavior::Behavior`], register it in a [`behavior::Registry`], call [`run::run`]), or run the
//! default `troupe-worker` binary, whose built-in behaviours ([`builtin`]) serve the examples
//! and tests.

pub mod api;
pub mod assignments;
pub mod behavior;
pub mod builtin;
pub mod cleanup;
pub mod host;
pub mod leave;
/// The proof of a live lease (shared with the operator's leadership).
pub use troupe_crds::lease_clock;
pub mod mailbox;
pub mod membership;
pub mod metrics;
pub mod otlp;
pub mod peer;
pub mod run;
pub mod schedule;
pub mod status;
pub mod store;
pub mod supervision;
pub mod tls_identity;
pub mod tls_refusal;
pub mod tls_roots;
pub mod trace;
pub mod witness;
