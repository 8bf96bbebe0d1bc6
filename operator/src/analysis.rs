//! Measuring a revision for analysis: each metric of `spec.analysis` is read from Prometheus (a
//! PromQL query) or from the revision's workers' own `/metrics` and `/readyz`, and judged
//! against its threshold. No value is Inconclusive, never a pass.
//!
//! Worker metrics are rates over the last interval: the operator keeps each worker's previous
//! sample in memory. Without one (a new worker, or the operator restarted) the rate covers the
//! worker's life so far, which for a canary is the rollout so far.
//!
//! Here: thresholds and judging. `analyzer.rs`: a round of measurements; `sample.rs`: a worker's
//! `/metrics` and the built-in metrics; `prometheus.rs`: a PromQL answer.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use k8s_openapi::jiff::Timestamp;
use troupe_crds::{ActorPool, BuiltinMetric, MeasurementOutcome, MetricResult, MetricSpec, Threshold};

use crate::{
    address_allow::{AddressAllowList, NOT_ALLOWED},
    membership::LiveWorker,
    rollout::Round,
};

/// How long one HTTP request of a measurement may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest Prometheus answer read. An instant query judged against a threshold returns a
/// scalar or a few series (about 200 bytes each): 4 MiB is some 20,000 series, far more than
/// any sensible analysis query, and the operator never holds more for one measurement.
const PROMETHEUS_ANSWER_MAX: usize = 4 * 1024 * 1024;
/// The largest worker `/metrics` page read. A worker exposes a few series per behaviour and
/// outcome (about 60 lines for one behaviour); 4 MiB leaves room for hundreds of behaviours
/// while a worker (or whatever a forged Lease points at) cannot make the operator buffer more.
const WORKER_METRICS_MAX: usize = 4 * 1024 * 1024;

/// Why a metric has no value. No data (nothing measured yet, a provider that did not answer)
/// is Inconclusive; a setting or an answer that can never give a value is Failed.
#[derive(Debug, PartialEq)]
enum Unmeasured {
    NoData(String),
    Broken(String),
}

impl From<String> for Unmeasured {
    fn from(why: String) -> Self {
        Unmeasured::NoData(why)
    }
}

impl Unmeasured {
    fn message(&self) -> &str {
        match self {
            Unmeasured::NoData(m) | Unmeasured::Broken(m) => m,
        }
    }
}

/// The usual threshold of a built-in metric.
pub fn default_threshold(m: BuiltinMetric) -> Threshold {
    let max = match m {
        BuiltinMetric::ErrorRate => 0.05,
        BuiltinMetric::LatencyP99 => 0.1,
        BuiltinMetric::RestartRate => 1.0,
        BuiltinMetric::HealthCheckFailures => 0.0,
    };
    Threshold {
        max: Some(max),
        min: None,
    }
}

/// The threshold as text, e.g. `<= 0.05`.
pub fn threshold_text(t: &Threshold) -> String {
    match (t.min, t.max) {
        (Some(min), Some(max)) => format!("between {min} and {max}"),
        (None, Some(max)) => format!("<= {max}"),
        (Some(min), None) => format!(">= {min}"),
        (None, None) => "any".into(),
    }
}

/// Passed or Failed; NaN and infinities are Inconclusive.
pub fn judge(value: f64, t: &Threshold) -> MeasurementOutcome {
    if !value.is_finite() {
        return MeasurementOutcome::Inconclusive;
    }
    let above = t.max.is_some_and(|max| value > max);
    let below = t.min.is_some_and(|min| value < min);
    if above || below {
        MeasurementOutcome::Failed
    } else {
        MeasurementOutcome::Passed
    }
}

/// A revision and its live workers.
#[derive(Clone, Copy)]
pub struct Revision<'a> {
    pub name: &'a str,
    pub workers: &'a [&'a LiveWorker],
}

/// Fails when the canary's value is more than `ratio` times the stable revision's. A stable
/// value of zero (or below) gives no ratio: the threshold alone decides.
pub fn judge_against_baseline(value: f64, baseline: f64, ratio: f64) -> MeasurementOutcome {
    if baseline > 0.0 && value > baseline * ratio {
        MeasurementOutcome::Failed
    } else {
        MeasurementOutcome::Passed
    }
}

/// A metric's threshold: its own, or its built-in template's default.
fn threshold_in_effect(m: &MetricSpec) -> Threshold {
    m.threshold
        .clone()
        .or_else(|| builtin_of(m).map(default_threshold))
        .unwrap_or_default()
}

/// A metric's threshold as text, with its ratio to stable when it has one.
pub fn threshold_of(m: &MetricSpec) -> String {
    let text = threshold_text(&threshold_in_effect(m));
    match m.max_ratio_to_stable {
        Some(r) => format!("{text} and <= {r}x stable"),
        None => text,
    }
}

fn builtin_of(m: &MetricSpec) -> Option<BuiltinMetric> {
    m.template.or_else(|| {
        m.provider
            .as_ref()
            .and_then(|p| p.worker.as_ref())
            .map(|w| w.metric)
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

mod analyzer;
mod prometheus;
mod sample;

pub use analyzer::Analyzer;
pub use prometheus::{prometheus_value, query_refused};
pub use sample::{WorkerSample, quantile, worker_value};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod limits_tests;
