//! Reading a Prometheus instant-query answer: its worst finite value, or why there is none, and
//! whether Prometheus refused the query itself.

use super::*;

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
