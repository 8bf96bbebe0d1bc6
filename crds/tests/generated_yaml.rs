//! The committed CRD YAML is what the types generate, and it says what users rely on.

use std::{fs, path::PathBuf};

use troupe_crds::generate::{crds, expected_files};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn committed_crd_yaml_matches_the_types() {
    let root = workspace_root();
    let mut drifted = Vec::new();
    for (path, expected) in expected_files() {
        let committed = fs::read_to_string(root.join(&path)).unwrap_or_default();
        if committed != expected {
            drifted.push(path);
        }
    }
    assert!(
        drifted.is_empty(),
        "the committed CRD YAML differs from what the types generate: {drifted:?}\nrun `make crds` and commit the result"
    );
}

fn version(name: &str) -> serde_json::Value {
    let (_, crd) = crds()
        .into_iter()
        .find(|(file, _)| file.starts_with(name))
        .unwrap();
    serde_json::to_value(&crd.spec.versions[0]).unwrap()
}

fn columns(name: &str) -> Vec<String> {
    version(name)["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_uppercase())
        .collect()
}

#[test]
fn kubectl_get_actors_shows_pool_behavior_phase_worker_revision_restarts_age() {
    assert_eq!(
        columns("actors"),
        [
            "POOL", "BEHAVIOR", "PHASE", "WORKER", "REVISION", "RESTARTS", "AGE"
        ]
    );
}

#[test]
fn kubectl_get_actorpools_shows_workers_ready_actors_phase_revisions_weight_age() {
    assert_eq!(
        columns("actorpools"),
        [
            "WORKERS", "READY", "ACTORS", "PHASE", "STABLE", "CANARY", "WEIGHT", "AGE"
        ]
    );
}

#[test]
fn both_kinds_are_in_the_troupe_category_with_short_names() {
    for (_, crd) in crds() {
        let names = &crd.spec.names;
        assert_eq!(names.categories.as_deref(), Some(&["troupe".to_string()][..]));
        assert!(!names.short_names.clone().unwrap_or_default().is_empty());
    }
}

#[test]
fn pools_have_status_and_scale_subresources_for_kubectl_scale_and_hpa() {
    let v = version("actorpools");
    assert_eq!(v["subresources"]["scale"]["specReplicasPath"], ".spec.replicas");
    assert_eq!(
        v["subresources"]["scale"]["statusReplicasPath"],
        ".status.replicas"
    );
    assert_eq!(
        v["subresources"]["scale"]["labelSelectorPath"],
        ".status.selector"
    );
    assert!(version("actors")["subresources"]["status"].is_object());
}

/// The status keeps a bounded history of each metric, and the API server enforces the bound too.
#[test]
fn a_metrics_recent_measurements_are_bounded_in_the_schema_by_the_operators_constant() {
    let status = &version("actorpools")["schema"]["openAPIV3Schema"]["properties"]["status"];
    let result = &status["properties"]["analysis"]["properties"]["results"]["items"];
    let measurements = &result["properties"]["measurements"];
    assert_eq!(
        measurements["maxItems"].as_u64(),
        Some(troupe_crds::MEASUREMENT_HISTORY as u64)
    );
    let fields = measurements["items"]["properties"].as_object().unwrap();
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["outcome", "time", "value"]);
}

/// Every field a user can set carries prose, because it becomes `kubectl explain` text.
#[test]
fn every_spec_field_is_documented() {
    fn undocumented(path: &str, schema: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(props) = schema["properties"].as_object() {
            for (name, sub) in props {
                let p = format!("{path}.{name}");
                if sub["description"].as_str().unwrap_or("").trim().is_empty() {
                    out.push(p.clone());
                }
                undocumented(&p, sub, out);
            }
        }
        if schema["items"].is_object() {
            undocumented(&format!("{path}[]"), &schema["items"], out);
        }
    }
    for name in ["actors", "actorpools"] {
        let schema = &version(name)["schema"]["openAPIV3Schema"]["properties"];
        let mut missing = Vec::new();
        undocumented(&format!("{name}.spec"), &schema["spec"], &mut missing);
        undocumented(&format!("{name}.status"), &schema["status"], &mut missing);
        // Inside embedded Kubernetes types (pod template internals, metav1.Condition) the
        // upstream descriptions apply; only Troupe's own fields are checked.
        missing.retain(|p| !p.contains(".template.") && !p.contains(".conditions[]"));
        assert!(missing.is_empty(), "fields without a description: {missing:#?}");
    }
}
