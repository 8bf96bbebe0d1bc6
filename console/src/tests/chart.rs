//! The analysis charts: the threshold read back from its text, where the points (by time and
//! value) and the line go, the sentence a screen reader hears, and the SVG in the pool page's
//! live region with its time axis.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use troupe_crds::{
    AnalysisStatus, Measurement,
    MeasurementOutcome::{self, Failed, Inconclusive, Passed},
    MetricResult,
};

use super::*;
use crate::{
    pages::fragment,
    view::chart::{BOTTOM, Bounds, INSET, LEFT, NO_VALUE_LANE, RIGHT, TOP, chart, number, parse_threshold},
};

/// A result whose rounds were 10 s apart, the first at `at(0)`.
fn result(name: &str, threshold: &str, history: &[(MeasurementOutcome, Option<f64>)]) -> MetricResult {
    let timed: Vec<_> = history
        .iter()
        .enumerate()
        .map(|(i, (outcome, value))| (i as i64 * 10, *outcome, *value))
        .collect();
    result_at(name, threshold, &timed)
}

/// A result with its rounds at `at(seconds)`.
fn result_at(
    name: &str,
    threshold: &str,
    history: &[(i64, MeasurementOutcome, Option<f64>)],
) -> MetricResult {
    let measurements: Vec<Measurement> = history
        .iter()
        .map(|(secs, outcome, value)| Measurement {
            time: Time(at(*secs)),
            outcome: *outcome,
            value: *value,
        })
        .collect();
    let last = measurements.last().cloned();
    MetricResult {
        name: name.into(),
        outcome: last.as_ref().map_or(Passed, |m| m.outcome),
        value: last.and_then(|m| m.value),
        threshold: threshold.into(),
        message: "measured on revision bad".into(),
        measurements,
    }
}

/// Six rounds of error-rate, two of them failed, one without data.
fn error_rate() -> MetricResult {
    result(
        "error-rate",
        "<= 0.05",
        &[
            (Passed, Some(0.01)),
            (Inconclusive, None),
            (Passed, Some(0.02)),
            (Failed, Some(0.3)),
            (Passed, Some(0.04)),
            (Failed, Some(0.12)),
        ],
    )
}

#[test]
fn a_threshold_is_read_back_from_its_text_and_text_it_cannot_read_draws_no_line() {
    let max = |v| {
        Some(Bounds {
            min: None,
            max: Some(v),
        })
    };
    let min = |v| {
        Some(Bounds {
            min: Some(v),
            max: None,
        })
    };
    assert_eq!(parse_threshold("<= 0.05"), max(0.05));
    assert_eq!(parse_threshold(" < 3 "), max(3.0));
    assert_eq!(parse_threshold(">= 1"), min(1.0));
    assert_eq!(parse_threshold("> 0.5"), min(0.5));
    assert_eq!(
        parse_threshold("between 0.1 and 0.5"),
        Some(Bounds {
            min: Some(0.1),
            max: Some(0.5)
        })
    );
    assert_eq!(
        parse_threshold("<= 0.05 and <= 2x stable"),
        max(0.05),
        "the ratio to stable is not drawn"
    );
    assert_eq!(
        parse_threshold("between 0.1 and 0.5 and <= 2x stable").and_then(|b| b.max),
        Some(0.5)
    );
    for text in [
        "any",
        "",
        "<= lots",
        "<= NaN",
        "<= inf",
        "between 5 and 1",
        "about 0.05",
        "== 1",
    ] {
        assert_eq!(parse_threshold(text), None, "{text:?}");
    }
}

#[test]
fn the_summary_says_how_many_measurements_the_last_value_the_threshold_and_how_many_failed() {
    let c = chart(&error_rate(), None).unwrap();
    assert_eq!(
        c.summary,
        "error-rate: 6 measurements over 50s, last 0.12, threshold <= 0.05, 2 failed, 1 inconclusive"
    );
    let no_value = result("latency", "any", &[(Passed, Some(0.1)), (Inconclusive, None)]);
    assert_eq!(
        chart(&no_value, None).unwrap().summary,
        "latency: 2 measurements over 10s, last without a value (Inconclusive), threshold any (not drawn), 0 failed, 1 inconclusive"
    );
}

#[test]
fn points_run_oldest_to_newest_at_the_right_edge_and_a_failed_value_is_on_the_failing_side_of_the_line() {
    let c = chart(&error_rate(), None).unwrap();
    assert!(c.points.windows(2).all(|w| w[0].x < w[1].x));
    assert_eq!(c.points.last().unwrap().x, RIGHT - INSET);
    assert_eq!(c.lines.len(), 1);
    let (line, bound) = c.lines[0];
    assert_eq!(bound, 0.05);
    assert!(TOP < line && line < BOTTOM);
    for p in &c.points {
        match (p.outcome, p.value) {
            (Failed, Some(_)) => assert!(p.y < line, "above an upper bound: {p:?}"),
            (Passed, Some(_)) => assert!(p.y > line && p.y <= BOTTOM, "{p:?}"),
            (_, None) => assert_eq!(p.y, NO_VALUE_LANE, "a round without a value is off the plot"),
            _ => {}
        }
    }
    assert_eq!(c.fail_zones, [(TOP, line)], "shaded above the bound");
    assert!(
        c.range.0 == 0.0 && c.range.1 > 0.3,
        "from zero to above the highest value: {:?}",
        c.range
    );
}

#[test]
fn a_lower_bound_shades_below_its_line_and_an_unreadable_threshold_draws_none() {
    let c = chart(
        &result(
            "throughput",
            ">= 10",
            &[(Passed, Some(12.0)), (Failed, Some(4.0))],
        ),
        None,
    )
    .unwrap();
    let (line, _) = c.lines[0];
    assert_eq!(c.fail_zones, [(line, BOTTOM)]);
    assert!(c.points[1].y > line, "below a lower bound");
    let c = chart(&result("custom", "any", &[(Passed, Some(1.0))]), None).unwrap();
    assert!(c.lines.is_empty() && c.fail_zones.is_empty());
}

#[test]
fn points_are_spaced_by_when_they_were_measured_from_the_oldest_at_the_left_to_the_newest_at_the_right() {
    // Rounds 10 s apart, then a 30 s pause (a rollout held, an operator restarted), then 5 s.
    let c = chart(
        &result_at(
            "e",
            "<= 0.5",
            &[
                (0, Passed, Some(0.1)),
                (10, Passed, Some(0.1)),
                (40, Inconclusive, None),
                (45, Failed, Some(0.9)),
            ],
        ),
        None,
    )
    .unwrap();
    let x: Vec<f64> = c.points.iter().map(|p| p.x).collect();
    assert_eq!((x[0], x[3]), (LEFT + INSET, RIGHT - INSET));
    let per_second = (RIGHT - LEFT - 2.0 * INSET) / 45.0;
    for (i, secs) in [(1, 10.0), (2, 40.0)] {
        assert!(
            (x[i] - (LEFT + INSET + secs * per_second)).abs() < 1e-9,
            "point {i} at {secs} s: {x:?}"
        );
    }
    assert!(
        x[2] - x[1] > 5.0 * (x[3] - x[2]),
        "the pause shows as a gap: {x:?}"
    );
    assert_eq!(
        c.times,
        (at(0), at(45)),
        "the time axis runs from the oldest to the newest"
    );
}

#[test]
fn one_measurement_or_several_of_one_time_sit_at_the_right_edge() {
    let one = chart(&result_at("e", "<= 0.5", &[(7, Passed, Some(0.1))]), None).unwrap();
    assert_eq!(one.points[0].x, RIGHT - INSET);
    assert_eq!(one.times, (at(7), at(7)));
    let same = result_at("e", "<= 0.5", &[(7, Passed, Some(0.1)), (7, Failed, Some(0.9))]);
    let c = chart(&same, None).unwrap();
    assert!(c.points.iter().all(|p| p.x == RIGHT - INSET), "{:?}", c.points);
    assert!(
        c.summary.starts_with("e: 2 measurements, last"),
        "no time span to tell: {}",
        c.summary
    );
}

#[test]
fn a_result_from_before_the_history_is_its_own_single_point_and_without_a_time_there_is_no_chart() {
    let mut r = result("error-rate", "<= 0.05", &[]);
    r.outcome = Failed;
    r.value = Some(0.2);
    let c = chart(&r, Some(at(5))).unwrap();
    assert_eq!(c.points.len(), 1);
    assert_eq!((c.points[0].outcome, c.points[0].value), (Failed, Some(0.2)));
    assert!(chart(&r, None).is_none());
}

#[test]
fn values_are_shown_without_trailing_zeros_and_tiny_ones_not_as_zero() {
    assert_eq!(number(0.12), "0.12");
    assert_eq!(number(1.0), "1");
    assert_eq!(number(0.0), "0");
    assert_eq!(number(12.34567), "12.3457");
    assert_eq!(number(0.00002), "2.00e-5");
}

fn pool_with_analysis(results: Vec<MetricResult>) -> String {
    let mut s = healthy("r1");
    s.canary_revision = Some("bad".into());
    s.analysis = Some(AnalysisStatus {
        revision: "bad".into(),
        measured_at: Some(Time(at(50))),
        failures: 2,
        results,
        ..Default::default()
    });
    fragment(&pool_page_alone(s), &frame()).into_string()
}

#[test]
fn the_pool_pages_live_region_draws_each_metric_as_an_image_with_its_summary_marks_and_values() {
    let html = pool_with_analysis(vec![
        error_rate(),
        result("latency", "<= 0.1", &[(Passed, Some(0.05))]),
    ]);
    assert!(
        html.starts_with(r#"<div id="live""#),
        "in the region the live updates replace"
    );
    let summary =
        "error-rate: 6 measurements over 50s, last 0.12, threshold &lt;= 0.05, 2 failed, 1 inconclusive";
    assert!(
        html.contains(&format!(r#"role="img" aria-label="{summary}""#)),
        "{html}"
    );
    assert!(html.contains(&format!("<title>{summary}</title>")));
    assert_eq!(html.matches(r#"<figure class="chart""#).count(), 2);
    assert!(html.contains(r#"data-metric="error-rate""#));
    // Shapes, not colour: two crosses, three dots and a ring for error-rate, one dot for latency.
    assert_eq!(html.matches(r#"<path class="failed""#).count(), 2);
    assert_eq!(html.matches(r#"<circle class="passed""#).count(), 4);
    assert_eq!(html.matches(r#"<circle class="inconclusive""#).count(), 1);
    assert_eq!(html.matches(r#"<line class="threshold""#).count(), 2);
    assert!(html.contains("✕</span> failed"), "the legend says it in words");
    assert!(html.contains("placed by when they were measured"));
    // The time axis of error-rate (at(0) to at(50), the page at at(100)): the ages of its ends,
    // each with the exact time; latency's one measurement has only its right end.
    let axis = |secs: i64, age: &str| format!("<title>{}</title>{age} ago</text>", at(secs));
    assert!(html.contains(&axis(0, "100s")), "{html}");
    assert!(html.contains(&axis(50, "50s")));
    assert_eq!(html.matches("time →").count(), 1);
    assert_eq!(html.matches(r#"<text class="time""#).count(), 3 + 1);
    assert_eq!(
        html.matches(r#"id="chart-legend""#).count(),
        1,
        "one legend for every chart"
    );
    // Every SVG element closed: an unclosed one would swallow the marks after it.
    for tag in ["circle", "path", "line", "rect", "text"] {
        assert_eq!(
            html.matches(&format!("<{tag} ")).count(),
            html.matches(&format!("</{tag}>")).count(),
            "{tag}"
        );
    }
    // The values for screen readers, oldest first.
    let table = html.split(r#"<table class="values">"#).nth(1).unwrap();
    let table = table.split("</table>").next().unwrap();
    assert_eq!(table.matches("<tr>").count(), 7, "a head and six rows");
    assert!(table.find("0.01").unwrap() < table.find("0.12").unwrap());
    assert!(!html.contains("style="), "no inline style: the CSP forbids it");
    assert!(!html.contains("<script"));
}

#[test]
fn a_threshold_the_console_cannot_read_is_said_and_no_line_is_drawn() {
    let html = pool_with_analysis(vec![result("custom", "whatever", &[(Passed, Some(1.0))])]);
    assert!(!html.contains(r#"class="threshold""#), "{html}");
    assert!(html.contains("threshold whatever (not drawn)"));
    assert!(html.contains("No threshold line: the threshold could not be read."));
}

#[test]
fn metric_names_in_the_chart_are_escaped() {
    let html = pool_with_analysis(vec![result("<b>x</b>", "<= 1", &[(Failed, Some(2.0))])]);
    assert!(!html.contains("<b>x</b>"), "{html}");
    assert!(html.contains("&lt;b&gt;x&lt;/b&gt;: 1 measurement, last 2"));
}
