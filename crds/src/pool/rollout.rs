//! How new revisions of a pool roll out: canary steps or blue-green.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::DURATION_PATTERN;

/// Exactly one of `canary` or `blueGreen`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.canary) != has(self.blueGreen)",
     "message": "strategy: set exactly one of canary or blueGreen"}
]))]
pub struct RolloutStrategy {
    /// Move a growing share of the pool's actors to the new revision, step by step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// Bring the new revision up in full, then switch every actor at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// A canary rollout: the weight is the share of the pool's actors placed on canary workers, so
/// work is split through placement, with no service mesh.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// The steps, in order. After the last one the canary is promoted to stable.
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",
         "message": "canary setWeight steps must not decrease (e.g. 10, 25, 50, 100)"}
    ]))]
    pub steps: Vec<CanaryStep>,
    /// How long the old revision's workers stay up after promotion or abort, for an instant rollback.
    #[serde(default = "default_scale_down_delay")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub scale_down_delay: String,
    /// A step that should make progress by itself (a setWeight waiting for canary workers and
    /// actors, an analysis step waiting for passing rounds) and has not finished in this long
    /// aborts the rollout, which rolls back. Pauses do not count.
    #[serde(default = "default_progress_deadline")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub progress_deadline: String,
}

fn default_scale_down_delay() -> String {
    "30s".into()
}
fn default_progress_deadline() -> String {
    "10m".into()
}

/// One canary step: exactly one of setWeight, pause or analysis.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0) + (has(self.analysis) ? 1 : 0) == 1",
     "message": "each canary step sets exactly one of setWeight, pause or analysis"}
]))]
pub struct CanaryStep {
    /// Move this percentage of the pool's actors to the canary revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub set_weight: Option<i32>,
    /// Wait: for a duration, or until promoted by hand when no duration is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    /// Run the pool's analysis now; the step passes when it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStep>,
}

/// A pause: timed, or indefinite (until `kubectl troupe promote`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait. Unset: wait until promoted by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub duration: Option<String>,
}

/// An analysis step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStep {
    /// How many intervals of the pool's analysis this step runs (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub count: Option<i32>,
    /// Only these metrics of `spec.analysis.metrics`, by name. Unset: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub metrics: Vec<String>,
}

/// A blue-green rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Switch the actors to the new revision by itself once it is ready (and pre-promotion
    /// analysis passed). False: wait for `kubectl troupe promote`.
    #[serde(default = "default_true")]
    pub auto_promotion: bool,
    /// With auto-promotion, how long the new revision must have been ready before the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub auto_promotion_delay: Option<String>,
    /// How long the old revision stays up after the switch, so that a rollback is instant.
    #[serde(default = "default_scale_down_delay")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub scale_down_delay: String,
    /// Run the pool's analysis against the new revision before the switch.
    #[serde(default)]
    pub pre_promotion_analysis: bool,
    /// Run the pool's analysis after the switch; a failure switches back to the old revision.
    #[serde(default)]
    pub post_promotion_analysis: bool,
}

pub(super) fn default_true() -> bool {
    true
}
