//! Manifests the API server must refuse, each with the words its refusal must contain: the
//! schema's and CEL's answers, checked by `tests/bad_input.rs`.

/// An ActorPool named `bad` with one worker container and `spec_extra` (YAML lines under `spec:`).
pub fn pool(spec_extra: &str) -> String {
    format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {{name: bad}}\nspec:\n  template:\n    spec:\n      containers: [{{name: worker, image: troupe/worker:0.1.0}}]\n{spec_extra}"
    )
}

/// An Actor named `bad` with `spec` (YAML lines under `spec:`).
pub fn actor(spec: &str) -> String {
    format!("apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {{name: bad}}\nspec:\n{spec}")
}

/// (what is wrong, manifest, words the refusal must contain)
pub fn bad_manifests() -> Vec<(&'static str, String, &'static str)> {
    let many_keys: String = (0..65).map(|i| format!("k{i}: 1, ")).collect();
    vec![
        (
            "negative replicas",
            pool("  replicas: -1\n"),
            "spec.replicas in body should be greater than or equal to 0",
        ),
        (
            "falling canary weights",
            pool("  strategy:\n    canary:\n      steps: [{setWeight: 50}, {setWeight: 10}]\n"),
            "canary setWeight steps must not decrease",
        ),
        (
            "a weight above 100",
            pool("  strategy:\n    canary:\n      steps: [{setWeight: 120}]\n"),
            "should be less than or equal to 100",
        ),
        (
            "a step with two actions",
            pool("  strategy:\n    canary:\n      steps: [{setWeight: 10, pause: {}}]\n"),
            "each canary step sets exactly one of setWeight, pause or analysis",
        ),
        (
            "both canary and blue-green",
            pool("  strategy:\n    canary: {steps: [{setWeight: 10}]}\n    blueGreen: {}\n"),
            "set exactly one of canary or blueGreen",
        ),
        (
            "a malformed duration",
            pool("  strategy:\n    canary:\n      steps: [{pause: {duration: 'ten minutes'}}]\n"),
            "should match '^([0-9]+(ms|s|m|h))+$'",
        ),
        (
            "a pod template without containers",
            pool("").replace(
                "containers: [{name: worker, image: troupe/worker:0.1.0}]",
                "containers: []",
            ),
            "should have at least 1 items",
        ),
        (
            "a container without an image",
            pool("").replace(", image: troupe/worker:0.1.0", ""),
            "spec.template.spec.containers[0].image: Required value",
        ),
        (
            "a threshold with min above max",
            pool(
                "  analysis:\n    metrics: [{name: e, provider: {worker: {metric: ErrorRate}}, threshold: {min: 2, max: 1}}]\n",
            ),
            "threshold.min must not exceed threshold.max",
        ),
        (
            "two metrics with one name",
            pool(
                "  analysis:\n    metrics: [{name: e, template: ErrorRate}, {name: e, template: LatencyP99}]\n",
            ),
            "analysis metric names must be unique",
        ),
        (
            "a mailbox block timeout of days",
            pool("  mailbox: {whenFull: Block, blockTimeout: 72h}\n"),
            "mailbox.blockTimeout must be at most 10m",
        ),
        (
            "an analysis interval of zero",
            pool("  analysis:\n    interval: 0s\n    metrics: [{name: e, template: ErrorRate}]\n"),
            "analysis interval must be between 1s and 24h",
        ),
        (
            "an analysis interval below a second",
            pool("  analysis:\n    interval: 500ms\n    metrics: [{name: e, template: ErrorRate}]\n"),
            "analysis interval must be between 1s and 24h",
        ),
        (
            "an analysis interval of centuries",
            pool("  analysis:\n    interval: 1000000h\n    metrics: [{name: e, template: ErrorRate}]\n"),
            "analysis interval must be between 1s and 24h",
        ),
        (
            "an analysis step naming an undefined metric",
            pool(
                "  strategy:\n    canary:\n      steps: [{setWeight: 10}, {analysis: {metrics: [latency]}}]\n  analysis:\n    metrics: [{name: errors, template: ErrorRate}]\n",
            ),
            "every metric a canary analysis step names must be defined in spec.analysis.metrics",
        ),
        (
            "a block timeout without the Block policy",
            pool("  mailbox: {capacity: 10, whenFull: Reject, blockTimeout: 1s}\n"),
            "mailbox.blockTimeout only applies when mailbox.whenFull is Block",
        ),
        (
            "an unknown mailbox policy",
            pool("  mailbox: {whenFull: Explode}\n"),
            "Unsupported value: \"Explode\"",
        ),
        (
            "a malformed schedule",
            actor("  pool: p\n  behavior: echo\n  schedule: every tuesday\n"),
            "schedule must be 'every <n><unit>'",
        ),
        (
            "a cron expression with too few fields",
            actor("  pool: p\n  behavior: echo\n  schedule: '*/5 * *'\n"),
            "schedule must be 'every <n><unit>'",
        ),
        (
            "a missing behavior",
            actor("  pool: p\n"),
            "spec.behavior: Required value",
        ),
        (
            "a pool name that is not a DNS label",
            actor("  pool: My_Pool\n  behavior: echo\n"),
            "spec.pool in body should match",
        ),
        (
            "a config with too many keys",
            actor(&format!(
                "  pool: p\n  behavior: echo\n  config: {{{many_keys}}}\n"
            )),
            "must have at most 64 items",
        ),
        (
            "a restart backoff whose initial delay exceeds its maximum",
            actor("  pool: p\n  behavior: echo\n  restartPolicy: {backoff: {initial: 2m, max: 1m}}\n"),
            "restartPolicy.backoff.initial must not exceed restartPolicy.backoff.max",
        ),
        (
            "an unknown field",
            actor("  pool: p\n  behavior: echo\n  behaviour: echo\n"),
            "unknown field \"spec.behaviour\"",
        ),
        (
            "a zero circuit-breaker threshold",
            actor("  pool: p\n  behavior: echo\n  circuitBreaker: {consecutiveFailures: 0}\n"),
            "should be greater than or equal to 1",
        ),
        (
            "a schedule every millisecond",
            actor("  pool: p\n  behavior: echo\n  schedule: every 1ms\n"),
            "an 'every' schedule must be from 100ms to 366d",
        ),
        (
            "a schedule of centuries",
            actor("  pool: p\n  behavior: echo\n  schedule: every 40000d\n"),
            "an 'every' schedule must be from 100ms to 366d",
        ),
        (
            "a schedule whose number overflows",
            actor("  pool: p\n  behavior: echo\n  schedule: every 99999999999999999999s\n"),
            "schedule must be 'every <n><unit>'",
        ),
        (
            "a restart window of zero",
            actor("  pool: p\n  behavior: echo\n  restartPolicy: {window: 0s}\n"),
            "restartPolicy.window must be from 1s to 24h",
        ),
        (
            "a restart backoff of zero",
            actor("  pool: p\n  behavior: echo\n  restartPolicy: {backoff: {initial: 0s, max: 1s}}\n"),
            "restartPolicy.backoff.initial must be from 10ms to 1h",
        ),
        (
            "a restart backoff of a week",
            actor("  pool: p\n  behavior: echo\n  restartPolicy: {backoff: {initial: 1s, max: 168h}}\n"),
            "restartPolicy.backoff.max must be at most 1h",
        ),
        (
            "an analysis interval too large for a duration",
            pool(
                "  analysis:\n    interval: 99999999999999h\n    metrics: [{name: e, template: ErrorRate}]\n",
            ),
            "spec.analysis.interval",
        ),
    ]
}
