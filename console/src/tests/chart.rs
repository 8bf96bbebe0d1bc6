//! The analysis charts: the threshold read back from its text, where the points and the line
//! go, the sentence a screen reader hears, and the SVG in the pool page's live region.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use troupe_crds::{
    AnalysisStatus, MEASUREMENT_HISTORY, Measurement,
    MeasurementOutcome::{self, Failed, Inconclusive, Passed},
    MetricResult,
};

use super::*;
use crate::{
    pages::fragment,
    view::chart::{
        BOTTOM, Bounds, Chart, INSET, LEFT, NO_VALUE_LANE, RIGHT, TOP, chart, number, parse_threshold,
    },
};

fn result(name: &str, threshold: &str, history: &[(MeasurementOutcome, Option<f64>)]) -> MetricResult {
    let measurements: Vec<Measurement> = history
        .iter()
        .enumerate()
        .map(|(i, (outcome, value))| Measurement {
            time: Time(at(i as i64 * 10)),
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
        "error-rate: 6 measurements, last 0.12, threshold <= 0.05, 2 failed, 1 inconclusive"
    );
    let no_value = result("latency", "any", &[(Passed, Some(0.1)), (Inconclusive, None)]);
    assert_eq!(
        chart(&no_value, None).unwrap().summary,
        "latency: 2 measurements, last without a value (Inconclusive), threshold any (not drawn), 0 failed, 1 inconclusive"
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
fn a_short_history_fills_from_the_right_with_the_spacing_of_a_full_one() {
    let full: Vec<_> = (0..MEASUREMENT_HISTORY)
        .map(|i| (Passed, Some(i as f64 / 100.0)))
        .collect();
    let c = chart(&result("e", "<= 0.5", &full), None).unwrap();
    assert_eq!(c.points[0].x, LEFT + INSET);
    let two = chart(&result("e", "<= 0.5", &full[..2]), None).unwrap();
    let gap = |c: &Chart| c.points[1].x - c.points[0].x;
    assert!(
        (gap(&two) - gap(&c)).abs() < 1e-9,
        "points keep their spacing as the history grows"
    );
    assert_eq!(two.points[1].x, RIGHT - INSET);
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
    let summary = "error-rate: 6 measurements, last 0.12, threshold &lt;= 0.05, 2 failed, 1 inconclusive";
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
    assert_eq!(
        html.matches(r#"id="chart-legend""#).count(),
        1,
        "one legend for every chart"
    );
    // Every SVG element closed: an unclosed one would swallow the marks after it.
    for tag in ["circle", "path", "line", "rect"] {
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
