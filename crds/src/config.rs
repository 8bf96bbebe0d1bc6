//! An actor's free-form config, kept as the JSON text the API server sent.
//!
//! Every Rust client (operator, workers, plugin) parses API answers with serde_json, which
//! refuses a document nested deeper than 128 levels; the API server accepts up to 10,000. Parsed
//! into values, one Actor with a deeper config fails every read that includes it. Kept as text,
//! the config is skipped over without that limit, and parsed only by the worker that starts the
//! actor, where a config it cannot read fails that actor alone, with the reason.
//!
//! The other half is in `troupe-client`: every stored Actor carries `managedFields` whose
//! `fieldsV1` mirror the config's nesting, and the client every Troupe process uses cuts them out
//! of the API server's answers before anything parses them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, value::RawValue};

/// The most levels of nesting a config may have: deeper ones cannot be read (the actor is
/// Failed with reason InvalidConfig).
pub const MAX_DEPTH: usize = 64;

/// An actor's config as JSON text (always an object). It deserializes from JSON (serde_json:
/// the API's format, including `serde_json::Value`); convert other formats to JSON first.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActorConfig(Box<RawValue>);

impl ActorConfig {
    /// A config holding `map` (tests, tools).
    pub fn from_map(map: Map<String, Value>) -> Self {
        let text = serde_json::to_string(&map).expect("a JSON map serializes");
        Self(RawValue::from_string(text).expect("serialized JSON is valid JSON"))
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The config's values; an error that says why when it is nested deeper than [`MAX_DEPTH`]
    /// or is not an object.
    pub fn parse(&self) -> Result<Map<String, Value>, String> {
        let depth = depth_of(self.text());
        if depth > MAX_DEPTH {
            return Err(format!(
                "config is nested {depth} levels deep; at most {MAX_DEPTH} are allowed"
            ));
        }
        match serde_json::from_str::<Value>(self.text()) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(format!("config must be an object, not {}", kind_of(&other))),
            Err(e) => Err(format!("config cannot be read: {e}")),
        }
    }
}

/// The deepest nesting of arrays and objects in JSON `text` (strings skipped), counted without
/// parsing, so that any depth can be measured.
fn depth_of(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl PartialEq for ActorConfig {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl fmt::Debug for ActorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels))
    }

    #[test]
    fn a_config_nested_deeper_than_json_parsers_allow_still_deserializes_as_text() {
        let text = format!(r#"{{"spec": {{"config": {}}}}}"#, nested(5000));
        #[derive(Deserialize)]
        struct Spec {
            config: ActorConfig,
        }
        #[derive(Deserialize)]
        struct Doc {
            spec: Spec,
        }
        let doc: Doc = serde_json::from_str(&text).expect("parsed without the recursion limit");
        let why = doc.spec.config.parse().unwrap_err();
        assert!(why.contains("5000 levels"), "{why}");
    }

    #[test]
    fn a_plain_config_reads_back_its_values() {
        let c: ActorConfig = serde_json::from_str(r#"{"start": 3, "s": "{[\"}"}"#).unwrap();
        let map = c.parse().unwrap();
        assert_eq!(map["start"], 3);
        assert_eq!(depth_of(c.text()), 1, "brackets inside strings do not count");
        assert_eq!(ActorConfig::from_map(map.clone()).parse().unwrap(), map);
    }

    #[test]
    fn a_config_that_is_not_an_object_says_what_it_is() {
        let c: ActorConfig = serde_json::from_str("[1, 2]").unwrap();
        assert_eq!(c.parse().unwrap_err(), "config must be an object, not an array");
    }
}
