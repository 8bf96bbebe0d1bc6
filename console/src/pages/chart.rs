//! The pool page's analysis charts: each metric's recent measurements as inline SVG against its
//! threshold and across time (laid out from `view::chart`), rendered on the server like the rest
//! of the page, so it needs no script and no asset, and it is inside the live region, so it
//! redraws with it.
//!
//! Colour never carries the outcome alone: a passed measurement is a filled dot, a failed one a
//! cross, an inconclusive one a ring, a round without a value sits on a lane of its own under
//! the plot, and a legend says so in words. The SVG is one image to assistive technology
//! (`role="img"`, its summary as `aria-label` and `<title>`), and the values are in a table
//! under it (`<details>`). No inline style (the Content-Security-Policy forbids it): classes
//! from `console.css`, whose colours follow the dark theme.

use k8s_openapi::jiff::Timestamp;
use maud::{Markup, html};
use troupe_crds::{AnalysisStatus, MeasurementOutcome};

use super::when;
use crate::view::{
    chart::{BOTTOM, Chart, HEIGHT, LEFT, NO_VALUE_LANE, Point, RIGHT, TIME_AXIS, TOP, WIDTH, chart, number},
    time::age,
};

/// A measurement's outcome as a word and a symbol, coloured (the analysis table and the values
/// under each chart).
pub fn outcome_badge(o: MeasurementOutcome) -> Markup {
    let (sym, class) = match o {
        MeasurementOutcome::Passed => ("✔", "ok"),
        MeasurementOutcome::Failed => ("✖", "bad"),
        MeasurementOutcome::Inconclusive => ("?", "wait"),
    };
    html! { span class={ "badge " (class) } { span aria-hidden="true" { (sym) } " " (format!("{o:?}")) } }
}

/// One chart per metric of the analysis, or nothing when there is nothing to draw.
pub fn analysis_charts(a: &AnalysisStatus, now: Timestamp) -> Markup {
    let measured_at = a.measured_at.as_ref().map(|t| t.0);
    let charts: Vec<Chart> = a.results.iter().filter_map(|r| chart(r, measured_at)).collect();
    html! {
        @if !charts.is_empty() {
            p.legend #chart-legend {
                "Recent measurements, placed by when they were measured (oldest on the left): "
                span aria-hidden="true" { "●" } " passed, " span aria-hidden="true" { "✕" } " failed, "
                span aria-hidden="true" { "○" } " inconclusive; marks on the lowest line (“none”) had no value. "
                "Dashed line: the threshold; shaded: its failing side."
            }
            div.charts #analysis-charts {
                @for c in &charts { (figure(c, now)) }
            }
        }
    }
}

fn figure(c: &Chart, now: Timestamp) -> Markup {
    html! {
        figure.chart data-metric=(c.metric) {
            figcaption { (c.metric) " " span.hint { "(threshold " (c.threshold) ")" } }
            (svg(c, now))
            @if c.lines.is_empty() { p.legend { "No threshold line: the threshold could not be read." } }
            details {
                summary { "Values" span.visually-hidden { " of " (c.metric) } }
                table.values {
                    caption.visually-hidden { "Recent measurements of " (c.metric) ", oldest first" }
                    thead { tr { th scope="col" { "Measured" } th scope="col" { "Outcome" } th scope="col" { "Value" } } }
                    tbody {
                        @for p in &c.points {
                            tr {
                                td { (when(Some(p.time), now)) }
                                td { (outcome_badge(p.outcome)) }
                                td.num { @match p.value { Some(v) => (number(v)), None => "—" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A coordinate as an SVG attribute.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

/// Every SVG element is closed explicitly: in HTML, `<circle …>` without its end tag would hold
/// the elements after it as children, which are not drawn.
fn svg(c: &Chart, now: Timestamp) -> Markup {
    let (lo, hi) = c.range;
    let (oldest, newest) = c.times;
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(c.summary)
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width=(WIDTH) height=(HEIGHT) {
            title { (c.summary) }
            @for (top, bottom) in &c.fail_zones {
                rect.fail-zone x=(at(LEFT)) y=(at(*top)) width=(at(RIGHT - LEFT)) height=(at(bottom - top)) {}
            }
            rect.frame x=(at(LEFT)) y=(at(TOP)) width=(at(RIGHT - LEFT)) height=(at(BOTTOM - TOP)) {}
            line.lane x1=(at(LEFT)) y1=(at(NO_VALUE_LANE)) x2=(at(RIGHT)) y2=(at(NO_VALUE_LANE)) {}
            text x=(at(LEFT - 4.0)) y=(at(TOP + 3.0)) text-anchor="end" { (number(hi)) }
            text x=(at(LEFT - 4.0)) y=(at(BOTTOM + 3.0)) text-anchor="end" { (number(lo)) }
            text x=(at(LEFT - 4.0)) y=(at(NO_VALUE_LANE + 3.0)) text-anchor="end" { "none" }
            // The time axis: the ages of its two ends, as everywhere on the page, each with
            // the exact time as its tooltip.
            @if oldest < newest {
                text.time x=(at(LEFT)) y=(at(TIME_AXIS)) text-anchor="start" { title { (oldest) } (age(now, oldest)) " ago" }
                text.time x=(at((LEFT + RIGHT) / 2.0)) y=(at(TIME_AXIS)) text-anchor="middle" { "time →" }
            }
            text.time x=(at(RIGHT)) y=(at(TIME_AXIS)) text-anchor="end" { title { (newest) } (age(now, newest)) " ago" }
            @for (y, _) in &c.lines {
                line.threshold x1=(at(LEFT)) y1=(at(*y)) x2=(at(RIGHT)) y2=(at(*y)) {}
            }
            path.trend d=(trend(&c.points)) {}
            @for p in &c.points { (mark(p)) }
        }
    }
}

/// The line through the values, broken where a round had none.
fn trend(points: &[Point]) -> String {
    let mut d = String::new();
    let mut joined = false;
    for p in points {
        if p.value.is_none() {
            joined = false;
            continue;
        }
        d.push_str(if joined { " L" } else { " M" });
        d.push_str(&format!("{} {}", at(p.x), at(p.y)));
        joined = true;
    }
    d.trim_start().to_string()
}

/// A point's mark, by outcome; its own `<title>` is a tooltip for the mouse.
fn mark(p: &Point) -> Markup {
    let tip = format!(
        "{:?}, {} at {}",
        p.outcome,
        p.value.map_or("no value".to_string(), number),
        p.time
    );
    let (x, y) = (p.x, p.y);
    html! {
        @match p.outcome {
            MeasurementOutcome::Passed => circle.passed cx=(at(x)) cy=(at(y)) r="3.5" { title { (tip) } },
            MeasurementOutcome::Failed => path.failed d=(format!(
                "M{} {} L{} {} M{} {} L{} {}",
                at(x - 4.0), at(y - 4.0), at(x + 4.0), at(y + 4.0), at(x - 4.0), at(y + 4.0), at(x + 4.0), at(y - 4.0)
            )) { title { (tip) } },
            MeasurementOutcome::Inconclusive => circle.inconclusive cx=(at(x)) cy=(at(y)) r="3.5" { title { (tip) } },
        }
    }
}
