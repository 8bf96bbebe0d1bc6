//! The Helm chart lints, renders, installs our CRDs and runs the operator with least privilege
//! and a restricted security context; its optional parts (monitors, rules, dashboard,
//! NetworkPolicy, admission policies) ship only when asked and point at what the code really
//! serves and exports; its NOTES' example is accepted by the API server; every value is
//! documented. (helm lint --strict, the upstream schemas and checkov run in `make lint`:
//! e2e/tools/chart-check.sh.)

#[path = "../common/mod.rs"]
mod common;

mod console;
mod monitoring;
mod packaging;
mod security;

use std::{path::PathBuf, process::Command};

use serde::Deserialize;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn helm(args: &[&str]) -> String {
    let out = Command::new("helm")
        .args(args)
        .current_dir(root())
        .output()
        .expect("helm on PATH (make tools installs it)");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn render(extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        "troupe",
        "charts/troupe",
        "--namespace",
        "troupe-system",
    ];
    args.extend(extra);
    let text = helm(&args);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The verbs a rule grants on `resource` of `group`, with its resourceNames (empty: any name).
fn grants<'a>(role: &'a Value, group: &str, resource: &str) -> Vec<(Vec<&'a str>, Vec<&'a str>)> {
    let strs = |v: &'a Value| -> Vec<&'a str> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| strs(&r["apiGroups"]).contains(&group) && strs(&r["resources"]).contains(&resource))
        .map(|r| (strs(&r["verbs"]), strs(&r["resourceNames"])))
        .collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, suffix: &str) -> &'a Value {
    of_kind(docs, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {kind} named *{suffix}"))
}

fn operator_args(docs: &[Value]) -> Vec<String> {
    of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

const ALL_ON: &[&str] = &[
    "--set",
    "monitoring.serviceMonitor.enabled=true",
    "--set",
    "monitoring.podMonitor.enabled=true",
    "--set",
    "monitoring.prometheusRule.enabled=true",
    "--set",
    "monitoring.dashboard.enabled=true",
    "--set",
    "networkPolicy.enabled=true",
];

fn pod_labels(docs: &[Value]) -> Value {
    of_kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"].clone()
}

/// Whether `selector` (a LabelSelector's matchLabels) selects objects labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let want = selector["matchLabels"].as_object().expect("matchLabels");
    !want.is_empty() && want.iter().all(|(k, v)| labels[k] == *v)
}
