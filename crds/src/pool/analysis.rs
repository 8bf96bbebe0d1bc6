//! How a new revision is judged: metrics, their providers and thresholds, and rollback on
//! Prometheus alerts.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rollout::default_true;
use crate::common::DURATION_PATTERN;

/// How a new revision is judged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// How often each metric is measured: from 1s to 24h. (A shorter interval would judge a
    /// revision on a window with no data in it.)
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "!self.matches('^([0-9]+(ms|s|m|h))+$') || (duration(self) >= duration('1s') && duration(self) <= duration('24h'))",
         "message": "analysis interval must be between 1s and 24h"}
    ]))]
    pub interval: String,
    /// Failed measurements tolerated; one more aborts the rollout.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub failure_limit: i32,
    /// Measurements without data tolerated in a row; one more aborts the rollout. No data is
    /// never counted as a pass.
    #[serde(default = "default_inconclusive_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub inconclusive_limit: i32,
    /// The metrics; every one must pass.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(m, self.exists_one(n, n.name == m.name))", "message": "analysis metric names must be unique"}
    ]))]
    pub metrics: Vec<MetricSpec>,
}

fn default_interval() -> String {
    "10s".into()
}
fn default_inconclusive_limit() -> i32 {
    3
}

/// One metric and its threshold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.template) != has(self.provider)",
     "message": "a metric sets exactly one of template (a built-in metric) or provider"},
    {"rule": "has(self.template) || has(self.threshold)",
     "message": "a metric with a provider needs a threshold"}
]))]
pub struct MetricSpec {
    /// The metric's name, shown in status and in the abort reason.
    #[schemars(
        length(min = 1, max = 63),
        pattern(r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$")
    )]
    pub name: String,
    /// A built-in metric with its usual threshold (which `threshold` may override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<BuiltinMetric>,
    /// Where the value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<MetricProvider>,
    /// The bounds a passing value stays within.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    /// Also compare with the stable revision, measured the same way in the same round: the
    /// canary fails when its value is more than this many times the stable one (1.5: at most
    /// 50 % worse). For metrics where larger is worse. A stable value of 0, or no stable data,
    /// leaves the threshold alone to decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 1000.0))]
    pub max_ratio_to_stable: Option<f64>,
}

/// Built-in metrics for the usual rollback triggers, measured on the canary revision's workers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BuiltinMetric {
    /// Share of failed messages, fails above 0.05 (5 %).
    ErrorRate,
    /// 99th percentile message latency in seconds, fails above 0.1 (100 ms).
    LatencyP99,
    /// Actor restarts per minute, fails above 1.
    RestartRate,
    /// Share of failing worker health checks, fails above 0.
    HealthCheckFailures,
}

/// Where a metric's value comes from: exactly one provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.prometheus) != has(self.worker)",
     "message": "a metric provider sets exactly one of prometheus or worker"}
]))]
pub struct MetricProvider {
    /// A PromQL query returning one value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    /// A metric the operator reads directly from the canary workers' /metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerMetricProvider>,
}

/// A PromQL query.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusProvider {
    /// The Prometheus server, e.g. `http://prometheus.monitoring:9090`. Unset: the operator's
    /// `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://"))]
    pub address: Option<String>,
    /// The query. `{{revision}}`, `{{pool}}` and `{{namespace}}` are replaced by the canary's
    /// revision, the pool's name and namespace.
    #[schemars(length(min = 1, max = 8192))]
    pub query: String,
}

/// A metric read from the workers' own /metrics.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerMetricProvider {
    /// Which of the workers' metrics.
    pub metric: BuiltinMetric,
}

/// Bounds a passing value stays within; at least one of min or max.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.min) || has(self.max)", "message": "a threshold sets min, max or both"},
    {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max", "message": "threshold.min must not exceed threshold.max"}
]))]
pub struct Threshold {
    /// Fails when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Fails when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
}

/// Automated rollback on Prometheus alerts routed to the operator by Alertmanager.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRollbackSpec {
    /// Act on firing alerts whose `namespace` and `pool` labels name this pool.
    #[serde(default = "default_true")]
    pub on_alerts: bool,
    /// Further labels an alert must carry to count (e.g. `severity: critical`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// A revision promoted less than this long ago is rolled back by a matching alert; after it,
    /// alerts only abort rollouts in progress.
    #[serde(default = "default_rollback_window")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub window: String,
}

fn default_rollback_window() -> String {
    "15m".into()
}
