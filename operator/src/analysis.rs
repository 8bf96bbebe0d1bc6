//! Measuring a revision for analysis: each metric of `spec.analysis` is read from Prometheus (a
//! PromQL query) or from the revision's workers' own `/metrics` and `/readyz`, and judged
//! against its threshold. No value is Inconclusive, never a pass.
//!
//! Worker metrics are rates over the last interval: the operator keeps each worker's previous
//! sample in memory. Without one (a new worker, or the operator restarted) the rate covers the
//! worker's life so far, which for a canary is the rollout so far.

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

/// One worker's counters, as read from its `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerSample {
    pub ok: f64,
    pub errors: f64,
    pub restarts: f64,
    /// Cumulative latency buckets: (upper bound, count), ascending.
    pub buckets: Vec<(f64, f64)>,
    pub started_at: f64,
    /// When the sample was taken (Unix seconds).
    pub taken_at: f64,
}

impl WorkerSample {
    /// Parses the Prometheus text exposition of a Troupe worker.
    pub fn parse(text: &str, taken_at: f64) -> Self {
        let mut s = WorkerSample {
            taken_at,
            ..Default::default()
        };
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, labels, value)) = split_sample(line) else {
                continue;
            };
            // These are counters and a start time: finite and never negative. Anything else is
            // not a worker's sample (a negative error count would pass any threshold).
            let Some(value) = value.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0) else {
                continue;
            };
            let label = |key: &str| label_value(labels, key);
            match name {
                "troupe_worker_messages_total" => match label("outcome") {
                    Some("ok") => s.ok += value,
                    Some("error") => s.errors += value,
                    _ => {}
                },
                "troupe_worker_actor_restarts_total" => s.restarts += value,
                "troupe_worker_start_time_seconds" => s.started_at = value,
                "troupe_worker_message_duration_seconds_bucket" => {
                    let bound = match label("le") {
                        Some("+Inf") => f64::INFINITY,
                        Some(le) => match le.parse::<f64>() {
                            Ok(b) if !b.is_nan() => b,
                            _ => continue,
                        },
                        None => continue,
                    };
                    buckets.push((bound, value));
                }
                _ => {}
            }
        }
        // One count per bound, summed over behaviours (`0.1` and `0.10` are one bound).
        buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
        for (bound, count) in buckets {
            match s.buckets.last_mut() {
                Some(last) if last.0 == bound => last.1 += count,
                _ => s.buckets.push((bound, count)),
            }
        }
        s
    }

    /// What happened between `before` and `self` (everything since start without `before`, or
    /// when the counters went backwards: the worker restarted).
    pub fn since(&self, before: Option<&WorkerSample>) -> WorkerSample {
        let fresh = WorkerSample {
            taken_at: self.taken_at,
            started_at: self.started_at,
            ..self.clone()
        };
        let Some(b) = before.filter(|b| b.started_at == self.started_at && b.ok <= self.ok) else {
            // Over the worker's life: from its start.
            return WorkerSample {
                taken_at: self.taken_at - self.started_at,
                ..fresh
            };
        };
        WorkerSample {
            ok: self.ok - b.ok,
            errors: (self.errors - b.errors).max(0.0),
            restarts: (self.restarts - b.restarts).max(0.0),
            buckets: self
                .buckets
                .iter()
                .map(|(le, c)| {
                    let prev = b.buckets.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1);
                    (*le, (c - prev).max(0.0))
                })
                .collect(),
            started_at: self.started_at,
            // The length of the window, in seconds.
            taken_at: self.taken_at - b.taken_at,
        }
    }
}

/// A sample line's name, label text (between the braces) and value; a timestamp after the value
/// is left out. Braces and spaces inside quoted label values do not end the labels.
fn split_sample(line: &str) -> Option<(&str, &str, &str)> {
    let end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, rest) = line.split_at(end);
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => {
            let close = closing_brace(inner)?;
            (&inner[..close], &inner[close + 1..])
        }
        None => ("", rest),
    };
    Some((name, labels, rest.split_whitespace().next()?))
}

/// The value of label `key` in `a="x",b="y"` (escapes kept), matched by its whole name: a
/// label `my_outcome` is not `outcome`.
fn label_value<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = labels;
    loop {
        let (name, after) = rest.split_once('=')?;
        let value = after.trim_start().strip_prefix('"')?;
        let end = closing_quote(value)?;
        if name.trim_matches(|c: char| c == ',' || c.is_whitespace()) == key {
            return Some(&value[..end]);
        }
        rest = &value[end + 1..];
    }
}

/// The index of the quote that ends a quoted string opened just before `text` (`\"` escapes).
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// The index of the first `}` outside quoted strings.
fn closing_brace(text: &str) -> Option<usize> {
    let mut at = 0;
    loop {
        let i = at + text[at..].find(['}', '"'])?;
        if text.as_bytes()[i] == b'}' {
            return Some(i);
        }
        at = i + 1 + closing_quote(&text[i + 1..])? + 1;
    }
}

/// Sums deltas of several workers: `taken_at` of each delta is its window length.
fn sum(deltas: &[WorkerSample]) -> (WorkerSample, f64) {
    let mut total = WorkerSample::default();
    let mut window: f64 = 0.0;
    for d in deltas {
        total.ok += d.ok;
        total.errors += d.errors;
        total.restarts += d.restarts;
        window = window.max(d.taken_at);
        for (le, c) in &d.buckets {
            match total.buckets.iter_mut().find(|(l, _)| l == le) {
                Some(x) => x.1 += c,
                None => total.buckets.push((*le, *c)),
            }
        }
    }
    total.buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
    (total, window)
}

/// The `q` quantile of cumulative buckets, interpolated as Prometheus' `histogram_quantile`.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let span = count - prev.1;
            let frac = if span > 0.0 { (rank - prev.1) / span } else { 1.0 };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, count);
    }
    Some(prev.0)
}

/// A built-in metric's value from the workers' deltas, or why there is none.
pub fn worker_value(m: BuiltinMetric, deltas: &[WorkerSample]) -> Result<f64, String> {
    let (d, window) = sum(deltas);
    let handled = d.ok + d.errors;
    match m {
        BuiltinMetric::ErrorRate if handled > 0.0 => Ok(d.errors / handled),
        BuiltinMetric::ErrorRate | BuiltinMetric::LatencyP99 if handled == 0.0 => Err(format!(
            "no messages handled by the {} worker(s) since the last measurement",
            deltas.len()
        )),
        BuiltinMetric::LatencyP99 => quantile(0.99, &d.buckets).ok_or_else(|| "no latency samples".into()),
        BuiltinMetric::RestartRate if window > 0.0 => Ok(d.restarts / window * 60.0),
        BuiltinMetric::RestartRate => Err("no time has passed since the last measurement".into()),
        _ => Err("not a worker counter".into()),
    }
}

/// The operator's measuring state: an HTTP client and the last sample of each worker.
pub struct Analyzer {
    http: reqwest::Client,
    prometheus_url: Option<String>,
    /// The addresses a pool may name (the operator's own `--prometheus-url` is always allowed).
    allow: AddressAllowList,
    samples: Mutex<HashMap<String, WorkerSample>>,
}

impl Analyzer {
    pub fn new(prometheus_url: Option<String>, allow: AddressAllowList) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                // A redirect could lead anywhere the allow-list does not.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            prometheus_url,
            allow,
            samples: Mutex::new(HashMap::new()),
        }
    }

    /// Measures every metric of the pool's analysis (or those named in `only`) on `revision`,
    /// whose live workers are `workers`.
    pub async fn measure(
        &self,
        pool: &ActorPool,
        judged: Revision<'_>,
        baseline: Option<Revision<'_>>,
        only: &[String],
    ) -> Round {
        let time = Timestamp::now();
        let revision = judged.name;
        let Some(spec) = pool.spec.analysis.as_ref() else {
            return Round {
                revision: revision.into(),
                results: Vec::new(),
                time,
            };
        };
        let metrics: Vec<&MetricSpec> = spec
            .metrics
            .iter()
            .filter(|m| only.is_empty() || only.contains(&m.name))
            .collect();
        let needs_scrape = metrics.iter().any(|m| {
            let b = builtin_of(m);
            b.is_some() && b != Some(BuiltinMetric::HealthCheckFailures)
        });
        let compares = metrics.iter().any(|m| m.max_ratio_to_stable.is_some());
        let deltas = if needs_scrape {
            self.scrape(judged.workers).await
        } else {
            Vec::new()
        };
        let baseline_deltas = match baseline {
            Some(b) if needs_scrape && compares => self.scrape(b.workers).await,
            _ => Vec::new(),
        };
        let mut results = Vec::new();
        for m in metrics {
            let threshold = threshold_in_effect(m);
            let value = self.value_of(pool, m, judged, &deltas, &threshold).await;
            let (mut outcome, value, mut message) = match value {
                Ok(v) => {
                    let outcome = judge(v, &threshold);
                    let message = if outcome == MeasurementOutcome::Inconclusive {
                        "the value is not a number (no data)".into()
                    } else {
                        format!("measured on revision {revision}")
                    };
                    (outcome, v.is_finite().then_some(v), message)
                }
                Err(Unmeasured::NoData(why)) => (MeasurementOutcome::Inconclusive, None, why),
                Err(Unmeasured::Broken(why)) => (MeasurementOutcome::Failed, None, why),
            };
            if let (Some(ratio), Some(b), Some(v), MeasurementOutcome::Passed) =
                (m.max_ratio_to_stable, baseline, value, outcome)
            {
                match self.value_of(pool, m, b, &baseline_deltas, &threshold).await {
                    Ok(base) => {
                        outcome = judge_against_baseline(v, base, ratio);
                        message = format!(
                            "measured on revision {revision}; stable revision {}: {base:.4} (at most {ratio}x allowed)",
                            b.name
                        );
                    }
                    Err(why) => {
                        message = format!(
                            "{message}; no stable baseline ({}), threshold only",
                            why.message()
                        )
                    }
                }
            }
            results.push(MetricResult {
                name: m.name.clone(),
                outcome,
                value,
                threshold: threshold_of(m),
                // Into the pool's status and Events: no configured credentials.
                message: troupe_net::redact_urls_in(&message),
            });
        }
        Round {
            revision: revision.into(),
            results,
            time,
        }
    }

    /// One metric's value on one revision.
    async fn value_of(
        &self,
        pool: &ActorPool,
        m: &MetricSpec,
        rev: Revision<'_>,
        deltas: &[WorkerSample],
        threshold: &Threshold,
    ) -> Result<f64, Unmeasured> {
        match (
            builtin_of(m),
            m.provider.as_ref().and_then(|p| p.prometheus.as_ref()),
        ) {
            (Some(BuiltinMetric::HealthCheckFailures), _) => Ok(self.health(rev.workers).await?),
            (Some(b), _) if deltas.is_empty() => {
                Err(format!("no live worker of revision {} could be read for {b:?}", rev.name).into())
            }
            (Some(b), _) => Ok(worker_value(b, deltas)?),
            (None, Some(p)) => {
                let query = p
                    .query
                    .replace("{{revision}}", rev.name)
                    .replace("{{pool}}", &pool.metadata.name.clone().unwrap_or_default())
                    .replace(
                        "{{namespace}}",
                        &pool.metadata.namespace.clone().unwrap_or_default(),
                    );
                match (p.address.as_deref(), self.prometheus_url.as_deref()) {
                    (Some(addr), _) if !self.allow.allows(addr) => Err(Unmeasured::Broken(format!(
                        "Prometheus at {}: {NOT_ALLOWED}",
                        troupe_net::redact_url(addr)
                    ))),
                    (Some(addr), _) | (None, Some(addr)) => self.prometheus(addr, &query, threshold).await,
                    (None, None) => Err(
                        "no Prometheus address: set provider.prometheus.address or the operator's --prometheus-url"
                            .to_string()
                            .into(),
                    ),
                }
            }
            (None, None) => Err("the metric has neither a template nor a provider"
                .to_string()
                .into()),
        }
    }

    async fn scrape(&self, workers: &[&LiveWorker]) -> Vec<WorkerSample> {
        let reads = workers.iter().map(|w| async move {
            let addr = w.address.as_deref()?;
            let resp = self
                .http
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .ok()?
                .error_for_status()
                .ok()?;
            let body = troupe_net::read_response_body(resp, WORKER_METRICS_MAX)
                .await
                .ok()?;
            let text = String::from_utf8_lossy(&body);
            Some((w.name.clone(), WorkerSample::parse(&text, unix_now())))
        });
        let samples: Vec<_> = futures::future::join_all(reads)
            .await
            .into_iter()
            .flatten()
            .collect();
        let mut last = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples
            .into_iter()
            .map(|(name, s)| {
                let delta = s.since(last.get(&name));
                last.insert(name, s);
                delta
            })
            .collect()
    }

    async fn health(&self, workers: &[&LiveWorker]) -> Result<f64, String> {
        if workers.is_empty() {
            return Err("the revision has no live worker".into());
        }
        let checks = workers.iter().map(|w| async move {
            let Some(addr) = w.address.as_deref() else {
                return false;
            };
            matches!(self.http.get(format!("http://{addr}/readyz")).send().await, Ok(r) if r.status().is_success())
        });
        let ok = futures::future::join_all(checks).await;
        let failing = ok.iter().filter(|ok| !**ok).count();
        Ok(failing as f64 / ok.len() as f64)
    }

    /// Errors name the address without credentials or query (they reach the pool's status).
    async fn prometheus(&self, addr: &str, query: &str, threshold: &Threshold) -> Result<f64, Unmeasured> {
        let shown = troupe_net::redact_url(addr);
        let url = format!("{}/api/v1/query", addr.trim_end_matches('/'));
        let resp = self
            .http
            .get(&url)
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| format!("Prometheus at {shown} could not be reached: {}", e.without_url()))?;
        let status = resp.status();
        let body = match troupe_net::read_response_body(resp, PROMETHEUS_ANSWER_MAX).await {
            Ok(b) => b,
            Err(e @ troupe_net::BodyError::TooLarge { .. }) => {
                return Err(Unmeasured::Broken(format!(
                    "Prometheus at {shown} answered with a body {e}: the query must return a scalar or a few series"
                )));
            }
            Err(e) => return Err(format!("reading the answer of Prometheus at {shown}: {e}").into()),
        };
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("Prometheus at {shown} answered {status} with no JSON: {e}"))?;
        if let Some(why) = query_refused(&json) {
            return Err(Unmeasured::Broken(why));
        }
        Ok(prometheus_value(&json, threshold)?)
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

/// Prometheus' message when it refused the query itself (a syntax error, `bad_data`; or a query
/// that cannot be evaluated, `execution`): asking again gives the same answer, so the measurement
/// is Failed with that message, never a pass and never mere missing data. A timeout or an
/// unavailable Prometheus is not the query's fault and stays missing data.
pub fn query_refused(answer: &serde_json::Value) -> Option<String> {
    let kind = answer["errorType"].as_str()?;
    (answer["status"] == "error" && matches!(kind, "bad_data" | "execution")).then(|| {
        format!(
            "Prometheus refused the query ({kind}): {}",
            answer["error"].as_str().unwrap_or("no reason given")
        )
    })
}

/// The value of a Prometheus instant-query answer. Several series: the one closest to breaking
/// the threshold counts. None: no data.
pub fn prometheus_value(answer: &serde_json::Value, threshold: &Threshold) -> Result<f64, String> {
    if answer["status"] != "success" {
        return Err(format!(
            "Prometheus refused the query: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let data = &answer["data"];
    let parse = |v: &serde_json::Value| v[1].as_str().and_then(|s| s.parse::<f64>().ok());
    let values: Vec<f64> = match data["resultType"].as_str() {
        Some("scalar") => parse(&data["result"]).into_iter().collect(),
        Some("vector") => data["result"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| parse(&s["value"])).collect())
            .unwrap_or_default(),
        other => {
            return Err(format!(
                "the query must return a scalar or an instant vector, not {other:?}"
            ));
        }
    };
    let finite: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return Err("the query returned no data".into());
    }
    let worst = if threshold.max.is_some() {
        finite.iter().cloned().fold(f64::MIN, f64::max)
    } else {
        finite.iter().cloned().fold(f64::MAX, f64::min)
    };
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SCRAPE: &str = r#"# HELP troupe_worker_messages_total Messages
# TYPE troupe_worker_messages_total counter
troupe_worker_messages_total{behavior="flaky",outcome="error",pool="p",revision="r2"} 30
troupe_worker_messages_total{behavior="flaky",outcome="ok",pool="p",revision="r2"} 70
troupe_worker_messages_total{behavior="echo",outcome="rejected",pool="p",revision="r2"} 5
troupe_worker_actor_restarts_total{behavior="flaky",pool="p",revision="r2"} 2
troupe_worker_start_time_seconds 1000
troupe_worker_message_duration_seconds_bucket{behavior="flaky",pool="p",revision="r2",le="0.01"} 50
troupe_worker_message_duration_seconds_bucket{behavior="flaky",pool="p",revision="r2",le="0.1"} 90
troupe_worker_message_duration_seconds_bucket{behavior="flaky",pool="p",revision="r2",le="+Inf"} 100
"#;

    #[test]
    fn a_workers_scrape_gives_its_error_rate_latency_and_restarts_over_its_life() {
        let s = WorkerSample::parse(SCRAPE, 1060.0);
        assert_eq!(
            (s.ok, s.errors, s.restarts, s.started_at),
            (70.0, 30.0, 2.0, 1000.0)
        );
        let life = s.since(None);
        assert_eq!(
            worker_value(BuiltinMetric::ErrorRate, std::slice::from_ref(&life)),
            Ok(0.3)
        );
        assert_eq!(
            worker_value(BuiltinMetric::RestartRate, std::slice::from_ref(&life)),
            Ok(2.0)
        );
        let p99 = worker_value(BuiltinMetric::LatencyP99, &[life]).unwrap();
        assert!((0.1..=0.1 + 1e-9).contains(&p99) || p99 == 0.1, "{p99}");
    }

    #[test]
    fn rates_cover_only_the_time_since_the_previous_sample() {
        let before = WorkerSample::parse(SCRAPE, 1060.0);
        let later = SCRAPE.replace("} 70", "} 170");
        let after = WorkerSample::parse(&later, 1070.0);
        let d = after.since(Some(&before));
        assert_eq!((d.ok, d.errors, d.taken_at), (100.0, 0.0, 10.0));
        assert_eq!(worker_value(BuiltinMetric::ErrorRate, &[d]), Ok(0.0));
    }

    #[test]
    fn a_timestamp_after_a_samples_value_is_not_read_as_its_value() {
        let s = WorkerSample::parse(
            "troupe_worker_messages_total{outcome=\"ok\"} 7 1700000000000\n\
             troupe_worker_messages_total{behavior=\"a b}\",outcome=\"error\"} 3 1700000000000\n",
            0.0,
        );
        assert_eq!((s.ok, s.errors), (7.0, 3.0));
    }

    #[test]
    fn negative_or_non_finite_counters_are_not_samples() {
        let s = WorkerSample::parse(
            "troupe_worker_messages_total{outcome=\"ok\"} 10\n\
             troupe_worker_messages_total{outcome=\"error\"} -1000\n\
             troupe_worker_messages_total{outcome=\"error\"} NaN\n\
             troupe_worker_actor_restarts_total -5\n\
             troupe_worker_start_time_seconds +Inf\n\
             troupe_worker_message_duration_seconds_bucket{le=\"NaN\"} 5\n",
            0.0,
        );
        assert_eq!((s.ok, s.errors, s.restarts, s.started_at), (10.0, 0.0, 0.0, 0.0));
        assert!(s.buckets.is_empty());
        assert_eq!(worker_value(BuiltinMetric::ErrorRate, &[s.since(None)]), Ok(0.0));
    }

    #[test]
    fn a_label_is_matched_by_its_whole_name_and_equal_bounds_are_one_bucket() {
        let s = WorkerSample::parse(
            "troupe_worker_messages_total{my_outcome=\"ok\",outcome=\"error\"} 4\n\
             troupe_worker_message_duration_seconds_bucket{xle=\"9\",le=\"0.1\"} 1\n\
             troupe_worker_message_duration_seconds_bucket{le=\"0.10\"} 2\n",
            0.0,
        );
        assert_eq!((s.ok, s.errors), (0.0, 4.0));
        assert_eq!(s.buckets, vec![(0.1, 3.0)]);
    }

    #[test]
    fn no_messages_is_no_data_not_a_pass() {
        let s = WorkerSample::parse("troupe_worker_start_time_seconds 5\n", 10.0);
        assert!(worker_value(BuiltinMetric::ErrorRate, &[s.since(None)]).is_err());
        assert!(worker_value(BuiltinMetric::ErrorRate, &[]).is_err());
    }

    #[test]
    fn the_p99_interpolates_inside_its_bucket_like_histogram_quantile() {
        let b = [(0.1, 0.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        let q = quantile(0.99, &b).unwrap();
        assert!((q - 0.199).abs() < 1e-9, "{q}");
        assert_eq!(quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn a_canary_much_worse_than_stable_fails_even_within_the_threshold() {
        assert_eq!(
            judge_against_baseline(0.04, 0.01, 2.0),
            MeasurementOutcome::Failed
        );
        assert_eq!(
            judge_against_baseline(0.015, 0.01, 2.0),
            MeasurementOutcome::Passed
        );
        assert_eq!(
            judge_against_baseline(0.04, 0.0, 2.0),
            MeasurementOutcome::Passed,
            "no ratio to a zero baseline"
        );
    }

    #[test]
    fn thresholds_fail_outside_their_bounds_and_nan_is_inconclusive() {
        let max = default_threshold(BuiltinMetric::ErrorRate);
        assert_eq!(judge(0.05, &max), MeasurementOutcome::Passed);
        assert_eq!(judge(0.051, &max), MeasurementOutcome::Failed);
        assert_eq!(judge(f64::NAN, &max), MeasurementOutcome::Inconclusive);
        let min = Threshold {
            min: Some(10.0),
            max: None,
        };
        assert_eq!(judge(9.0, &min), MeasurementOutcome::Failed);
        assert_eq!(threshold_text(&max), "<= 0.05");
    }

    #[test]
    fn prometheus_answers_are_read_as_their_worst_series_and_empty_is_no_data() {
        let max = default_threshold(BuiltinMetric::ErrorRate);
        let vector = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"revision": "a"}, "value": [1, "0.01"]},
            {"metric": {"revision": "b"}, "value": [1, "0.2"]}]}});
        assert_eq!(prometheus_value(&vector, &max), Ok(0.2));
        let scalar = json!({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}});
        assert_eq!(prometheus_value(&scalar, &max), Ok(3.0));
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert!(prometheus_value(&empty, &max).unwrap_err().contains("no data"));
        let nan = json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}});
        assert!(prometheus_value(&nan, &max).is_err());
        let bad = json!({"status": "error", "error": "parse error at char 3"});
        assert!(prometheus_value(&bad, &max).unwrap_err().contains("parse error"));
    }

    #[test]
    fn a_query_prometheus_cannot_parse_or_run_is_refused_and_a_timeout_is_not() {
        let answer = |kind: &str| json!({"status": "error", "errorType": kind, "error": "1:5: parse error: unexpected \")\""});
        let refused = query_refused(&answer("bad_data")).unwrap();
        assert!(
            refused.contains("bad_data") && refused.contains("parse error: unexpected"),
            "{refused}"
        );
        assert!(query_refused(&answer("execution")).is_some());
        assert_eq!(query_refused(&answer("timeout")), None);
        assert_eq!(query_refused(&answer("unavailable")), None);
        assert_eq!(
            query_refused(
                &json!({"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}})
            ),
            None
        );
    }
}

#[cfg(test)]
mod limits_tests;
