//! Monitoring: the alert rules, dashboard, ServiceMonitor and PodMonitor ship only when asked
//! and name only what the code really serves and exports.

use super::*;

#[test]
fn alert_rules_and_a_dashboard_ship_when_asked_and_not_by_default() {
    let plain = render(&[]);
    assert!(of_kind(&plain, "PrometheusRule").is_empty() && of_kind(&plain, "ConfigMap").is_empty());
    let docs = render(&[
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "monitoring.dashboard.enabled=true",
    ]);
    let rule = of_kind(&docs, "PrometheusRule")[0];
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["TroupeErrorRateHigh", "TroupeLatencyHigh", "TroupeActorRestarts"]
    );
    for r in rules {
        // The operator finds the pool from these two labels.
        let expr = r["expr"].as_str().unwrap();
        assert!(expr.contains("namespace, pool"), "{expr}");
    }
    let cm = of_kind(&docs, "ConfigMap")[0];
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value = serde_json::from_str(cm["data"]["troupe.json"].as_str().unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            assert!(t["expr"].as_str().unwrap().contains("troupe_"), "{}", p["title"]);
        }
    }
}

#[test]
fn service_and_pod_monitors_ship_only_when_asked_and_scrape_the_operator_and_every_worker() {
    let plain = render(&[]);
    for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule", "NetworkPolicy"] {
        assert!(of_kind(&plain, kind).is_empty(), "{kind} by default");
    }
    let docs = render(ALL_ON);
    let sm = of_kind(&docs, "ServiceMonitor");
    assert_eq!(sm.len(), 1);
    assert_eq!(sm[0]["apiVersion"], "monitoring.coreos.com/v1");
    let service = of_kind(&docs, "Service")[0];
    assert!(
        selects(&sm[0]["spec"]["selector"], &service["metadata"]["labels"]),
        "the ServiceMonitor selects the operator's Service"
    );
    assert_eq!(
        sm[0]["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!(["troupe-system"])
    );
    let port = sm[0]["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port),
        "the Service has port {port}"
    );
    assert_eq!(sm[0]["spec"]["endpoints"][0]["path"], "/metrics");

    let pm = of_kind(&docs, "PodMonitor");
    assert_eq!(pm.len(), 1);
    // The operator labels every worker pod with troupe.dev/pool and names its port http
    // (operator/src/deployment.rs).
    assert_eq!(
        pm[0]["spec"]["selector"]["matchExpressions"],
        serde_json::json!([{"key": "troupe.dev/pool", "operator": "Exists"}])
    );
    assert_eq!(
        pm[0]["spec"]["namespaceSelector"],
        serde_json::json!({"any": true})
    );
    let ep = &pm[0]["spec"]["podMetricsEndpoints"][0];
    assert_eq!(
        (ep["port"].as_str(), ep["path"].as_str()),
        (Some("http"), Some("/metrics"))
    );
    let deployment = std::fs::read_to_string(root().join("operator/src/deployment.rs")).unwrap();
    assert!(deployment.contains(r#"name: Some("http".into())"#) && deployment.contains("labels::POOL"));

    let scoped = render(&[
        "--set",
        "monitoring.podMonitor.enabled=true",
        "--set",
        "monitoring.podMonitor.namespaceSelector.any=false",
        "--set",
        "monitoring.podMonitor.namespaceSelector.matchNames={pools}",
        "--set",
        "monitoring.podMonitor.labels.release=prom",
        "--set",
        "monitoring.podMonitor.interval=",
    ]);
    let pm = of_kind(&scoped, "PodMonitor")[0];
    assert_eq!(
        pm["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!(["pools"])
    );
    assert_eq!(pm["metadata"]["labels"]["release"], "prom");
    assert!(
        pm["spec"]["podMetricsEndpoints"][0]["interval"].is_null(),
        "empty: Prometheus' default"
    );
}

/// The metric names `text` uses (`troupe_…`), without a histogram's _bucket/_sum/_count.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("troupe_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.push(base.to_string());
        rest = &tail[end..];
    }
    names
}

/// Every metric the operator and the workers register (their names as string literals).
fn exported_metrics() -> Vec<String> {
    ["operator/src/context.rs", "worker/src/metrics.rs"]
        .iter()
        .flat_map(|f| {
            let src = std::fs::read_to_string(root().join(f)).unwrap();
            src.split('"')
                .skip(1)
                .step_by(2)
                .filter(|s| {
                    s.starts_with("troupe_") && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_rules_and_the_dashboard_name_only_metrics_the_code_exports_and_cover_what_matters() {
    let exported = exported_metrics();
    assert!(exported.len() >= 25, "{exported:?}");
    let docs = render(ALL_ON);
    let cm = of_kind(&docs, "ConfigMap")[0];
    let dashboard: Value = serde_json::from_str(cm["data"]["troupe.json"].as_str().unwrap()).unwrap();
    let mut used = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{}: {expr}", p["title"]);
            for n in names {
                assert!(
                    exported.contains(&n),
                    "panel {}: {n} is no metric of the code",
                    p["title"]
                );
                used.push(n);
            }
        }
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        for n in metric_names(v["query"].as_str().unwrap_or_default()) {
            assert!(exported.contains(&n), "variable {}: {n}", v["name"]);
        }
    }
    for wanted in [
        "troupe_operator_reconciles_total",
        "troupe_operator_placements_total",
        "troupe_operator_failovers_total",
        "troupe_operator_rollbacks_total",
        "troupe_operator_analysis_measurements_total",
        "troupe_worker_messages_total",
        "troupe_worker_message_duration_seconds",
        "troupe_worker_mailbox_depth",
        "troupe_worker_actor_restarts_total",
    ] {
        assert!(used.iter().any(|u| u == wanted), "no panel shows {wanted}");
    }
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("outcome") && e.contains("troupe_worker_messages_total"))
    );
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("histogram_quantile(0.99") && e.contains("troupe_worker_message_duration"))
    );
    let rule = of_kind(&docs, "PrometheusRule")[0];
    for r in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        for n in metric_names(r["expr"].as_str().unwrap()) {
            assert!(
                exported.contains(&n),
                "rule {}: {n} is no metric of the code",
                r["alert"]
            );
        }
    }
}

fn rules_file() -> Value {
    let text = std::fs::read_to_string(root().join("charts/troupe/files/troupe-rules.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn the_prometheus_rule_is_the_rules_file_the_local_prometheus_loads() {
    let docs = render(&["--set", "monitoring.prometheusRule.enabled=true"]);
    let rule = of_kind(&docs, "PrometheusRule")[0];
    assert_eq!(
        rule["spec"],
        rules_file(),
        "the PrometheusRule's spec is files/troupe-rules.yaml"
    );
    // e2e/cluster.sh gives the local Prometheus the same file with shorter windows.
    let cluster = std::fs::read_to_string(root().join("e2e/cluster.sh")).unwrap();
    assert!(cluster.contains(r#""$REPO/charts/troupe/files/troupe-rules.yaml" >"$m/rules.yaml""#));
    let Ok(dir) = std::env::var("TROUPE_CLUSTER_DIR") else {
        return;
    };
    let loaded = PathBuf::from(dir).join("monitoring/rules.yaml");
    let Ok(text) = std::fs::read_to_string(&loaded) else {
        eprintln!(
            "no {} (Prometheus not installed): compared with the file only",
            loaded.display()
        );
        return;
    };
    // What cluster.sh changes, and nothing else: 1m windows become 5s, `for: 1m` becomes 0s.
    let restored = text.replace("[5s]", "[1m]").replace("for: 0s", "for: 1m");
    let loaded: Value = serde_yaml::from_str(&restored).unwrap();
    assert_eq!(
        loaded,
        rules_file(),
        "the local Prometheus evaluates the chart's rules"
    );
}
