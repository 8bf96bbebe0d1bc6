//! Every example manifest users are told to `kubectl apply` reads into the API types.

use std::{fs, path::PathBuf};

use serde::Deserialize;
use troupe_crds::{Actor, ActorPool};

/// A YAML document as the API server would hand it to a client: as JSON (an actor's config is
/// kept as JSON text, which only a JSON parser can provide).
fn from_yaml<T: serde::de::DeserializeOwned>(doc: serde_yaml::Value) -> Result<T, String> {
    let json = serde_json::to_string(&doc).map_err(|e| e.to_string())?;
    serde_json::from_str(&json).map_err(|e| e.to_string())
}

fn examples() -> Vec<(PathBuf, Vec<serde_yaml::Value>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = fs::read_to_string(&path).unwrap();
            let docs = serde_yaml::Deserializer::from_str(&text)
                .map(|d| serde_yaml::Value::deserialize(d).unwrap())
                .filter(|v| !v.is_null())
                .collect();
            out.push((path, docs));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_example_document_deserializes_into_its_kind() {
    let all = examples();
    assert!(
        all.len() >= 3,
        "expected the counter, canary and pipeline examples"
    );
    for (path, docs) in all {
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let result = match kind.as_str() {
                "ActorPool" => from_yaml::<ActorPool>(doc).map(|_| ()),
                "Actor" => from_yaml::<Actor>(doc).map(|_| ()),
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            };
            result.unwrap_or_else(|e| panic!("{}: {kind}: {e}", path.display()));
        }
    }
}

#[test]
fn every_example_actor_names_a_pool_defined_in_the_same_file() {
    for (path, docs) in examples() {
        let pools: Vec<&str> = docs
            .iter()
            .filter(|d| d["kind"] == "ActorPool")
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        for actor in docs.iter().filter(|d| d["kind"] == "Actor") {
            let pool = actor["spec"]["pool"].as_str().unwrap();
            assert!(
                pools.contains(&pool),
                "{}: actor names pool {pool} not in the file",
                path.display()
            );
        }
    }
}

#[test]
fn the_pipeline_hands_each_stage_to_the_next_on_its_schedule() {
    let (_, docs) = examples()
        .into_iter()
        .find(|(p, _)| p.ends_with("pipeline.yaml"))
        .unwrap();
    let actors: Vec<Actor> = docs
        .into_iter()
        .filter(|d| d["kind"] == "Actor")
        .map(|d| from_yaml(d).unwrap())
        .collect();
    let stage = |name: &str| {
        actors
            .iter()
            .find(|a| a.metadata.name.as_deref() == Some(name))
            .unwrap()
    };
    assert_eq!(stage("generate").spec.schedule.as_deref(), Some("0 */2 * * *"));
    assert_eq!(stage("curate").spec.schedule.as_deref(), Some("0 */4 * * *"));
    assert_eq!(stage("post").spec.schedule.as_deref(), Some("@hourly"));
    let next = |name: &str| {
        let config = stage(name).spec.config.as_ref().map(|c| c.parse().unwrap());
        config
            .and_then(|c| c.get("next").cloned())
            .and_then(|n| n.as_str().map(str::to_string))
    };
    assert_eq!(next("generate").as_deref(), Some("curate"));
    assert_eq!(next("curate").as_deref(), Some("post"));
    assert_eq!(next("post").as_deref(), None);
}
