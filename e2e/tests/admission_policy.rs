//! The chart's optional worker admission policy (admissionPolicy.enabled), judged by the upstream
//! ValidatingAdmissionPolicy plugin: `troupe-vapcheck` (e2e/vap/main.go, built by `make tools`
//! from Debian's k8s.io/apiserver 0.36 sources) loads the rendered policies and bindings,
//! type-checks them against the Lease and Actor schemas as the API server does, and answers each
//! request of e2e/vap/cases.yaml. The local control plane cannot enforce such a policy (its API
//! server runs without admission plugins and serves no admissionregistration API), so this is
//! where its CEL is tested. No cluster needed.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The checker, from PATH (the Makefile puts ~/.cache/troupe/bin first) or the cache.
fn vapcheck() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("troupe-vapcheck"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let cache = std::env::var_os("TROUPE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/troupe")))
        .map(|c| c.join("bin/troupe-vapcheck"));
    on_path
        .into_iter()
        .chain(cache)
        .find(|p| p.is_file())
        .expect("troupe-vapcheck is not built: run `make tools` (or e2e/tools/install.sh vapcheck)")
}

/// The chart with the policy on, and the CRDs (the Actor schema the policy is type-checked against).
fn rendered() -> Vec<Value> {
    let out = Command::new("helm")
        .args([
            "template",
            "troupe",
            "charts/troupe",
            "--namespace",
            "troupe-system",
            "--include-crds",
            "--set",
            "admissionPolicy.enabled=true",
        ])
        .current_dir(root())
        .output()
        .expect("helm on PATH (make tools installs it)");
    assert!(
        out.status.success(),
        "helm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::Deserializer::from_str(&String::from_utf8_lossy(&out.stdout))
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Runs the checker on `docs` against the committed cases: (all as expected, its report).
fn check(docs: &[Value]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("rendered.yaml");
    let text: Vec<String> = docs.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect();
    std::fs::write(&policy, text.join("---\n")).unwrap();
    let out = Command::new(vapcheck())
        .arg("-policy")
        .arg(&policy)
        .arg("-cases")
        .arg(root().join("e2e/vap/cases.yaml"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "troupe-vapcheck could not judge the cases ({:?}): {stderr}\n{report}",
        out.status
    );
    (out.status.success(), report)
}

/// Removes from the named policy the one validation whose expression contains `key`.
fn without_validation(docs: &[Value], policy: &str, key: &str) -> Vec<Value> {
    let mut docs = docs.to_vec();
    let p = docs
        .iter_mut()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicy" && d["metadata"]["name"] == policy)
        .unwrap_or_else(|| panic!("no policy {policy}"));
    let validations = p["spec"]["validations"].as_sequence_mut().unwrap();
    let before = validations.len();
    validations.retain(|v| !v["expression"].as_str().unwrap().contains(key));
    assert_eq!(
        validations.len(),
        before - 1,
        "exactly one validation of {policy} must hold `{key}` (was the policy rewritten? update this test)"
    );
    docs
}

fn cases_path() -> PathBuf {
    root().join("e2e/vap/cases.yaml")
}

fn count_cases(path: &Path) -> usize {
    let cases: Vec<Value> = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    cases.len()
}

#[test]
fn every_worker_request_gets_the_answer_the_policy_promises() {
    let docs = rendered();
    let policies = docs
        .iter()
        .filter(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .count();
    assert_eq!(policies, 2, "one policy for Leases, one for Actors");
    let (ok, report) = check(&docs);
    println!("{report}");
    assert!(ok, "the policy gave another answer than expected:\n{report}");
    let n = count_cases(&cases_path());
    assert!(n >= 10, "at least 10 cases, {n} found");
    assert!(
        report.contains(&format!("{n} cases, {n} as expected")),
        "{report}"
    );
    for kind in ["allowed", "denied"] {
        assert!(
            report.contains(&format!("ok    {kind}")),
            "no case is {kind}:\n{report}"
        );
    }
}

#[test]
fn without_its_lease_name_check_the_policy_lets_a_worker_write_a_peers_lease() {
    let planted = without_validation(
        &rendered(),
        "troupe-worker-leases",
        "request.name == variables.pod",
    );
    let (ok, report) = check(&planted);
    assert!(!ok, "the cases did not notice the missing check:\n{report}");
    for case in [
        "WRONG allowed  a worker renews a peer's Lease",
        "WRONG allowed  a worker deletes a peer's Lease",
    ] {
        assert!(report.contains(case), "expected `{case}` in:\n{report}");
    }
}

#[test]
fn without_its_placement_check_the_policy_lets_a_worker_write_a_peers_actor() {
    let planted = without_validation(
        &rendered(),
        "troupe-worker-actors",
        "variables.placedHere || variables.releasedHere",
    );
    let (ok, report) = check(&planted);
    assert!(!ok, "the cases did not notice the missing check:\n{report}");
    assert!(
        report.contains("WRONG allowed  a worker confirms the departure of an actor placed on a peer"),
        "{report}"
    );
}

#[test]
fn the_policy_type_checks_against_the_schemas_and_a_misspelt_field_is_caught() {
    // A typo the API server would only warn about in status.typeChecking (and that would then
    // deny every worker write at run time): the checker refuses the policy outright.
    let mut docs = rendered();
    let p = docs
        .iter_mut()
        .find(|d| d["metadata"]["name"] == "troupe-worker-leases" && d["kind"] == "ValidatingAdmissionPolicy")
        .unwrap();
    for v in p["spec"]["validations"].as_sequence_mut().unwrap() {
        if let Some(e) = v["expression"].as_str().map(str::to_string) {
            v["expression"] = Value::from(e.replace("holderIdentity", "holderIdentiy"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("rendered.yaml");
    let text: Vec<String> = docs.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect();
    std::fs::write(&policy, text.join("---\n")).unwrap();
    let out = Command::new(vapcheck())
        .arg("-policy")
        .arg(&policy)
        .arg("-cases")
        .arg(cases_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("undefined field 'holderIdentiy'"), "{stderr}");
}
