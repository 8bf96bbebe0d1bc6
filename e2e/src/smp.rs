//! Strategic merge patch, for the stand-in kinds.
//!
//! kubectl knows apps/v1 Deployments as built-in types and patches them (`apply`, `set env`,
//! `patch`) with strategic merge patches, which the API server accepts only for built-in types,
//! not for CRDs. The front applies such a patch itself and writes the result with an update.
//! Lists of objects merge by their usual key (`name`, or `containerPort`, `mountPath`, …), as
//! the built-in types' patch strategies say; lists of scalars are replaced.

use serde_json::{Map, Value};

/// Keys by which elements of object lists are matched, in order of preference.
const MERGE_KEYS: [&str; 6] = [
    "name",
    "containerPort",
    "mountPath",
    "devicePath",
    "ip",
    "topologyKey",
];

fn merge_key(items: &[Value]) -> Option<&'static str> {
    MERGE_KEYS
        .into_iter()
        .find(|k| !items.is_empty() && items.iter().all(|i| i.get(k).is_some()))
}

fn without_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), without_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_directives).collect()),
        other => other.clone(),
    }
}

/// Applies a strategic merge patch to `target`.
pub fn apply(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = without_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (key, value) in p {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(existing)), Value::Array(gone)) = (t.get_mut(field), value) {
                existing.retain(|v| !gone.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                t.remove(key);
            }
            Value::Object(_) => apply(t.entry(key.clone()).or_insert(Value::Null), value),
            Value::Array(items) => {
                let existing = t.get_mut(key).and_then(Value::as_array_mut);
                match (existing, merge_key(items)) {
                    (Some(existing), Some(k)) if merge_key(existing).is_some_and(|ek| ek == k) => {
                        merge_list(existing, items, k)
                    }
                    _ => {
                        let kept: Vec<Value> = items
                            .iter()
                            .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                            .map(without_directives)
                            .collect();
                        t.insert(key.clone(), Value::Array(kept));
                    }
                }
            }
            scalar => {
                t.insert(key.clone(), scalar.clone());
            }
        }
    }
    if let Some(Value::Array(retain)) = p.get("$retainKeys") {
        t.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
}

fn merge_list(existing: &mut Vec<Value>, patch: &[Value], key: &str) {
    for item in patch {
        let id = &item[key];
        let pos = existing.iter().position(|e| &e[key] == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (Some(i), false) => apply(&mut existing[i], item),
            (None, true) => {}
            (None, false) => existing.push(without_directives(item)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_keep_fields_the_patch_does_not_name() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "s:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
            "containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]
        }}}});
        apply(&mut d, &patch);
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["image"], "a:1");
        assert_eq!(
            c[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(c[1]["name"], "side");
    }

    #[test]
    fn null_removes_a_field_and_patch_delete_removes_a_list_element() {
        let mut d = json!({"a": 1, "b": 2, "env": [{"name": "A"}, {"name": "B"}]});
        apply(
            &mut d,
            &json!({"a": null, "env": [{"name": "A", "$patch": "delete"}]}),
        );
        assert_eq!(d, json!({"b": 2, "env": [{"name": "B"}]}));
    }

    #[test]
    fn scalar_lists_are_replaced_unless_values_are_deleted_from_them() {
        let mut d = json!({"args": ["a", "b"], "finalizers": ["x", "y"]});
        apply(
            &mut d,
            &json!({"args": ["c"], "$deleteFromPrimitiveList/finalizers": ["x"]}),
        );
        assert_eq!(d, json!({"args": ["c"], "finalizers": ["y"]}));
    }

    #[test]
    fn patch_replace_replaces_the_whole_object() {
        let mut d = json!({"selector": {"matchLabels": {"a": "1"}, "extra": true}});
        apply(
            &mut d,
            &json!({"selector": {"$patch": "replace", "matchLabels": {"b": "2"}}}),
        );
        assert_eq!(d, json!({"selector": {"matchLabels": {"b": "2"}}}));
    }
}
