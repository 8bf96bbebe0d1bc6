//! A metric's recent measurements (`status.analysis.results[].measurements`) as a small chart
//! against its threshold: where each point goes (across by when it was measured, up by its
//! value), which shape it gets, where the threshold line is, and the sentence that says all of
//! it to a screen reader. Pure; `pages::chart` draws it as inline SVG.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use troupe_crds::{Measurement, MeasurementOutcome, MetricResult};

use super::time::short;

/// The drawing's size (SVG user units, also its size in CSS pixels).
pub const WIDTH: f64 = 300.0;
pub const HEIGHT: f64 = 106.0;
/// The plot's frame: values between `TOP` and `BOTTOM`, from `LEFT` to `RIGHT`; the axis labels
/// sit left of it.
pub const LEFT: f64 = 40.0;
pub const RIGHT: f64 = 292.0;
pub const TOP: f64 = 8.0;
pub const BOTTOM: f64 = 72.0;
/// Points stay this far inside the frame, so that a mark at either end is drawn whole.
pub const INSET: f64 = 7.0;
/// Rounds without a value are marked in a lane of their own under the plot, never on it: a
/// point on the plot is always a value.
pub const NO_VALUE_LANE: f64 = 84.0;
/// The baseline of the time axis' labels, under the lane.
pub const TIME_AXIS: f64 = 101.0;

/// The threshold a result states as text (`analysis::threshold_text` in the operator), read
/// back: the bounds a value must stay within.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Reads `<= 0.05`, `< 0.05`, `>= 1`, `> 1` and `between 0.1 and 0.5`, with or without the
/// ratio to stable the operator appends (`… and <= 2x stable`, which depends on the stable
/// revision's value and is not drawn). Anything else (`any`, text from a newer operator) is
/// `None`: no threshold line rather than a wrong one.
pub fn parse_threshold(text: &str) -> Option<Bounds> {
    let text = text.trim();
    let text = match text.rfind(" and ") {
        Some(i) if text.ends_with("x stable") => text[..i].trim(),
        _ => text,
    };
    let number = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    if let Some(rest) = text.strip_prefix("between ") {
        let (lo, hi) = rest.split_once(" and ")?;
        let (min, max) = (number(lo)?, number(hi)?);
        return (min <= max).then_some(Bounds {
            min: Some(min),
            max: Some(max),
        });
    }
    // Two-character comparators first: `<=` also starts with `<`.
    for (op, upper) in [("<=", true), (">=", false), ("<", true), (">", false)] {
        if let Some(rest) = text.strip_prefix(op) {
            let v = number(rest)?;
            return Some(if upper {
                Bounds {
                    min: None,
                    max: Some(v),
                }
            } else {
                Bounds {
                    min: Some(v),
                    max: None,
                }
            });
        }
    }
    None
}

/// One measurement placed on the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    /// On the plot for a value; in the no-value lane without one.
    pub y: f64,
    pub time: Timestamp,
    pub outcome: MeasurementOutcome,
    pub value: Option<f64>,
}

/// A metric's chart, ready to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub metric: String,
    /// The threshold as the status says it.
    pub threshold: String,
    /// Oldest first.
    pub points: Vec<Point>,
    /// The threshold's lines, where it could be read: (y, the bound's value).
    pub lines: Vec<(f64, f64)>,
    /// The failing side of each line: (top, bottom) of the shaded band.
    pub fail_zones: Vec<(f64, f64)>,
    /// The values at the plot's top and bottom, for its axis labels.
    pub range: (f64, f64),
    /// The times at the plot's left and right edges: the oldest and the newest measurement.
    pub times: (Timestamp, Timestamp),
    /// What the chart shows, in one sentence (its accessible name).
    pub summary: String,
}

/// The chart of one metric result. Its measurements are the history; a result without any (kept
/// by an operator from before the history) is its own single measurement at `measured_at`, and
/// without that there is nothing to draw.
pub fn chart(result: &MetricResult, measured_at: Option<Timestamp>) -> Option<Chart> {
    let own;
    let history: &[Measurement] = if result.measurements.is_empty() {
        own = [Measurement {
            time: Time(measured_at?),
            outcome: result.outcome,
            value: result.value,
        }];
        &own
    } else {
        &result.measurements
    };
    let bounds = parse_threshold(&result.threshold);
    let limits: Vec<f64> = bounds.iter().flat_map(|b| [b.min, b.max]).flatten().collect();
    let values = history.iter().filter_map(|m| m.value).filter(|v| v.is_finite());
    // From zero (or below, for negative values) so that heights compare honestly, to a tenth
    // above the highest value or bound so that neither sits on the frame.
    let lo = values.clone().chain(limits.iter().copied()).fold(0.0, f64::min);
    let top = values.chain(limits.iter().copied()).fold(lo, f64::max);
    let span = if top > lo { (top - lo) * 1.1 } else { 1.0 };
    let hi = lo + span;
    let y_of = |v: f64| BOTTOM - (v - lo) / span * (BOTTOM - TOP);
    // Placed by time, from the oldest measurement at the left edge to the newest at the right:
    // rounds are not evenly spaced (a rollout held at a pause, an operator restarted, a round
    // that waited for its query), and evenly spaced points would hide that. Measurements all of
    // one time (or just one) sit at the right edge, where the newest always is.
    let oldest = history.iter().map(|m| m.time.0).min()?;
    let newest = history.iter().map(|m| m.time.0).max()?;
    let elapsed = newest.duration_since(oldest);
    let seconds = elapsed.as_secs_f64();
    let x_of = |t: Timestamp| {
        let share = if seconds > 0.0 {
            t.duration_since(oldest).as_secs_f64() / seconds
        } else {
            1.0
        };
        LEFT + INSET + share * (RIGHT - LEFT - 2.0 * INSET)
    };
    let points = history
        .iter()
        .map(|m| {
            let value = m.value.filter(|v| v.is_finite());
            Point {
                x: x_of(m.time.0),
                y: value.map_or(NO_VALUE_LANE, y_of),
                time: m.time.0,
                outcome: m.outcome,
                value,
            }
        })
        .collect::<Vec<_>>();
    let mut lines = Vec::new();
    let mut fail_zones = Vec::new();
    if let Some(b) = bounds {
        if let Some(max) = b.max {
            lines.push((y_of(max), max));
            fail_zones.push((TOP, y_of(max)));
        }
        if let Some(min) = b.min {
            lines.push((y_of(min), min));
            fail_zones.push((y_of(min), BOTTOM));
        }
    }
    let over = (seconds > 0.0).then(|| short(elapsed));
    let summary = summary(
        &result.name,
        &points,
        over.as_deref(),
        &result.threshold,
        bounds.is_some(),
    );
    Some(Chart {
        metric: result.name.clone(),
        threshold: result.threshold.clone(),
        points,
        lines,
        fail_zones,
        range: (lo, hi),
        times: (oldest, newest),
        summary,
    })
}

/// E.g. `error-rate: 6 measurements over 50s, last 0.12, threshold <= 0.05, 2 failed, 1
/// inconclusive` (`over`: the time from the oldest to the newest, when they differ).
fn summary(metric: &str, points: &[Point], over: Option<&str>, threshold: &str, drawn: bool) -> String {
    let count = |o: MeasurementOutcome| points.iter().filter(|p| p.outcome == o).count();
    let n = points.len();
    let mut s = format!("{metric}: {n} measurement{}", if n == 1 { "" } else { "s" });
    if let Some(over) = over {
        s.push_str(&format!(" over {over}"));
    }
    s.push_str(", last ");
    match points.last() {
        Some(Point { value: Some(v), .. }) => s.push_str(&number(*v)),
        Some(p) => s.push_str(&format!("without a value ({:?})", p.outcome)),
        None => s.push_str("none"),
    }
    s.push_str(&format!(", threshold {threshold}"));
    if !drawn {
        s.push_str(" (not drawn)");
    }
    s.push_str(&format!(", {} failed", count(MeasurementOutcome::Failed)));
    let inconclusive = count(MeasurementOutcome::Inconclusive);
    if inconclusive > 0 {
        s.push_str(&format!(", {inconclusive} inconclusive"));
    }
    s
}

/// A value as the console shows it: at most four decimals, without trailing zeros; tiny values
/// in scientific notation rather than as a misleading `0`.
pub fn number(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.001 {
        return format!("{v:.2e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}
