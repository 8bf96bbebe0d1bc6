//! A worker's own counters, read from its Prometheus text exposition (`/metrics`), and the
//! built-in metrics computed from them: error rate, latency quantile, restart rate.

use super::*;

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
