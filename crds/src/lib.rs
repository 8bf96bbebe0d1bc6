//! The Troupe API, group `troupe.dev`, version `v1alpha1`.
//!
//! Two kinds: [`ActorPool`], a fleet of worker pods of one worker image, and [`Actor`], one
//! long-lived actor hosted by exactly one worker of its pool. The types here are the single
//! source of truth: the CRD YAML in `manifests/crds/` and `charts/troupe/crds/` is generated from
//! them (`make crds`, the `crdgen` binary), and a test fails when the committed YAML drifts.
//!
//! Validation lives in the schema wherever the API server can check it (OpenAPI bounds and
//! patterns, CEL `x-kubernetes-validations`), so a bad manifest is refused at `kubectl apply` time
//! with a readable message. What the schema cannot check is reported by the controllers as a
//! `False` condition.

// kube's derive takes one `printcolumn(...)` per column; clippy reads the repeated keys inside
// them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod actor;
pub mod common;
pub mod config;
pub mod duration;
pub mod generate;
pub mod lease_clock;
pub mod pool;
pub mod worker_env;

pub use actor::{
    Actor, ActorPhase, ActorSpec, ActorStatus, CircuitBreakerSpec, JournalSpec, RestartBackoff,
    RestartPolicy, RestartPolicySpec,
};
pub use common::{GROUP, VERSION, labels};
pub use config::ActorConfig;
pub use pool::{
    AbortKind, AbortReason, ActorCounts, ActorPool, ActorPoolSpec, ActorPoolStatus, AlertRollbackSpec,
    AnalysisSpec, AnalysisStatus, AnalysisStep, BlueGreenStrategy, BuiltinMetric, CanaryStep, CanaryStrategy,
    HandledCommand, MEASUREMENT_HISTORY, MailboxFullPolicy, MailboxSpec, Measurement, MeasurementOutcome,
    MetricProvider, MetricResult, MetricSpec, PauseStep, PersistenceMode, PersistenceSpec, PoolPhase,
    PrometheusProvider, RolloutStrategy, Threshold, WhenDeleted, WorkerMetricProvider,
};
