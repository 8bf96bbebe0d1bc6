//! What a pool's spec says about its rollout, with the defaults: steps, durations, windows, and
//! when an analysis round is due.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use troupe_crds::{ActorPool, CanaryStep, duration::parse_duration};

use super::Rollout;

/// The canary steps in effect: the spec's, or one step moving every actor at once.
pub fn canary_steps(pool: &ActorPool) -> Vec<CanaryStep> {
    match pool.spec.strategy.as_ref().and_then(|s| s.canary.as_ref()) {
        Some(c) => c.steps.clone(),
        None => vec![CanaryStep {
            set_weight: Some(100),
            pause: None,
            analysis: None,
        }],
    }
}

pub(super) fn blue_green(pool: &ActorPool) -> Option<&troupe_crds::BlueGreenStrategy> {
    pool.spec.strategy.as_ref().and_then(|s| s.blue_green.as_ref())
}

pub(super) fn secs(text: Option<&str>, default: u64) -> SignedDuration {
    let d = text
        .and_then(|t| parse_duration(t).ok())
        .unwrap_or(std::time::Duration::from_secs(default));
    SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO)
}

/// How long a replaced or aborted revision's workers stay up.
pub fn scale_down_delay(pool: &ActorPool) -> SignedDuration {
    let s = pool.spec.strategy.as_ref();
    let text = s
        .and_then(|s| s.canary.as_ref().map(|c| c.scale_down_delay.as_str()))
        .or_else(|| s.and_then(|s| s.blue_green.as_ref().map(|b| b.scale_down_delay.as_str())));
    secs(text, 30)
}

pub(super) fn progress_deadline(pool: &ActorPool) -> SignedDuration {
    let text = pool
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.canary.as_ref())
        .map(|c| c.progress_deadline.as_str());
    secs(text, 600)
}

/// The rollback window: how long after a promotion an alert still rolls it back.
pub fn rollback_window(pool: &ActorPool) -> SignedDuration {
    secs(pool.spec.rollback.as_ref().map(|r| r.window.as_str()), 900)
}

/// The analysis interval.
pub fn analysis_interval(pool: &ActorPool) -> SignedDuration {
    secs(pool.spec.analysis.as_ref().map(|a| a.interval.as_str()), 10)
}

pub(super) fn elapsed(since: Option<Timestamp>, now: Timestamp, d: SignedDuration) -> bool {
    since.is_none_or(|s| now.duration_since(s) >= d)
}

/// Canary workers wanted at `weight` percent: the same share of the pool's workers, at least one.
pub fn canary_replicas(replicas: i32, weight: i32) -> i32 {
    ((replicas as i64 * weight.clamp(0, 100) as i64 + 99) / 100).max(1) as i32
}

/// Which revision, if any, is due a round of measurements now.
pub fn analysis_due(
    pool: &ActorPool,
    r: &Rollout,
    target: &str,
    target_workers: usize,
    now: Timestamp,
) -> Option<String> {
    pool.spec.analysis.as_ref()?;
    let judged = if r.in_progress(target) {
        match blue_green(pool) {
            // Pre-promotion: the preview is measured once it is up.
            Some(bg) => (bg.pre_promotion_analysis && r.step == Some(1)).then(|| target.to_string()),
            // Canary: measured throughout, once it has actors or reaches an analysis step.
            None => {
                let steps = canary_steps(pool);
                let at_analysis = r
                    .step
                    .and_then(|i| steps.get(i as usize))
                    .is_some_and(|s| s.analysis.is_some());
                (r.weight.unwrap_or(0) > 0 || at_analysis).then(|| target.to_string())
            }
        }
    } else {
        // Blue-green post-promotion analysis: while the old revision is still up.
        let bg = blue_green(pool)?;
        let promoted = r.promoted_at?;
        (bg.post_promotion_analysis
            && r.previous.is_some()
            && r.stable.as_deref() == Some(target)
            && !elapsed(Some(promoted), now, scale_down_delay(pool)))
        .then(|| target.to_string())
    }?;
    let last = r
        .analysis
        .as_ref()
        .filter(|a| a.revision == judged)
        .and_then(|a| a.measured_at.as_ref().map(|t| t.0));
    // The first round waits for the revision's workers: measured while they start (an image
    // pull, a slow start), it could only be inconclusive, and enough of those abort a good
    // revision. Once measured, it is measured on, so that workers lost later are seen.
    if last.is_none() && target_workers < workers_wanted(pool, r, target) {
        return None;
    }
    elapsed(last, now, analysis_interval(pool)).then_some(judged)
}

/// The live workers the target revision has in the rollout state `r` once it is up: the canary's
/// share of the pool at the current weight, or the whole pool.
pub fn workers_wanted(pool: &ActorPool, r: &Rollout, target: &str) -> usize {
    let replicas = pool.spec.replicas.max(0);
    let canary = r.in_progress(target) && blue_green(pool).is_none() && replicas > 0;
    let wanted = if canary {
        canary_replicas(replicas, r.weight.unwrap_or(0))
    } else {
        replicas
    };
    wanted as usize
}
