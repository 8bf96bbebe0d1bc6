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
        query_refused(&json!({"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}})),
        None
    );
}
