//! Removing `metadata.managedFields` from the API server's JSON without parsing it into values.
//!
//! Every stored object carries `managedFields`, whose `fieldsV1` mirror the shape of everything
//! written to it. An Actor whose `config` is nested 300 levels deep (the API server accepts
//! 10,000) therefore has a `fieldsV1` 300 levels deep too, and serde_json, which refuses more
//! than 128 levels on purpose, then fails the whole list or watch event that holds it: one
//! tenant's object would blind the operator, the workers and the plugin to the whole namespace.
//! Troupe never reads `managedFields`, so they are cut out of the bytes before anything parses
//! them. The scan is iterative (no recursion, whatever the depth) and only touches the metadata
//! of the object itself, of each list item, and of a watch event's object: a user's config that
//! happens to contain a `managedFields` key is left alone.

use std::borrow::Cow;

/// What a container is, by where it sits in the document.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    /// The document itself: an object, a list, or a watch event.
    Root,
    /// `items` of a list.
    Items,
    /// An object the API returns: a list item or a watch event's `object`.
    Item,
    /// The `metadata` of the root or of an item.
    Metadata,
    /// Anything else, such as an actor's config.
    Other,
}

/// The last key read in an object, as far as placing its value matters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Key {
    None,
    Metadata,
    Items,
    Object,
    Other,
}

struct Frame {
    place: Place,
    is_object: bool,
    last_key: Key,
}

/// `json` without `managedFields` in the metadata of the object, list items or watch event
/// object. Borrowed when there is nothing to remove, or when the text is not well-formed JSON
/// (the parser that reads it next then says what is wrong).
pub fn strip_managed_fields(json: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memmem::find(json, b"\"managedFields\"").is_none() {
        return Cow::Borrowed(json);
    }
    match strip(json) {
        Some(out) => Cow::Owned(out),
        None => Cow::Borrowed(json),
    }
}

fn strip(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let end = string_end(b, i)?;
                if expect_key {
                    let key = &b[i + 1..end - 1];
                    let top = stack.last_mut()?;
                    if key == b"managedFields" && top.place == Place::Metadata {
                        i = skip_member(b, end, &mut out)?;
                        continue;
                    }
                    top.last_key = match key {
                        b"metadata" => Key::Metadata,
                        b"items" => Key::Items,
                        b"object" => Key::Object,
                        _ => Key::Other,
                    };
                    expect_key = false;
                }
                out.extend_from_slice(&b[i..end]);
                i = end;
                continue;
            }
            open @ (b'{' | b'[') => {
                let is_object = open == b'{';
                let place = place_of(stack.last(), is_object);
                stack.push(Frame {
                    place,
                    is_object,
                    last_key: Key::None,
                });
                expect_key = is_object;
            }
            b'}' | b']' => {
                stack.pop()?;
                expect_key = false;
            }
            b',' => expect_key = stack.last().is_some_and(|f| f.is_object),
            b':' => expect_key = false,
            _ => {}
        }
        out.push(b[i]);
        i += 1;
    }
    stack.is_empty().then_some(out)
}

/// Where a container opened inside `parent` sits.
fn place_of(parent: Option<&Frame>, is_object: bool) -> Place {
    let Some(parent) = parent else {
        return if is_object { Place::Root } else { Place::Other };
    };
    match (parent.place, parent.last_key, is_object) {
        (Place::Root | Place::Item, Key::Metadata, true) => Place::Metadata,
        (Place::Root, Key::Items, false) => Place::Items,
        (Place::Root, Key::Object, true) => Place::Item,
        (Place::Items, _, true) => Place::Item,
        _ => Place::Other,
    }
}

/// Skips the rest of a `"managedFields": value` member whose key ends at `after_key`, and the
/// comma that joined it to its neighbours, so that what remains is well-formed. Returns where to
/// go on reading.
fn skip_member(b: &[u8], after_key: usize, out: &mut Vec<u8>) -> Option<usize> {
    let colon = skip_ws(b, after_key);
    (b.get(colon) == Some(&b':')).then_some(())?;
    let mut next = skip_value(b, skip_ws(b, colon + 1))?;
    let before = out.iter().rposition(|c| !c.is_ascii_whitespace())?;
    if out[before] == b',' {
        // `…, "managedFields": […]` : the comma before it goes with it.
        out.truncate(before);
    } else {
        // `{"managedFields": […], …` : the comma after it goes with it.
        let after = skip_ws(b, next);
        if b.get(after) == Some(&b',') {
            next = after + 1;
        }
    }
    Some(next)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The index just past the string that starts at `start` (a `"`).
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The index just past the JSON value that starts at `start`, however deep, without recursion.
fn skip_value(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = string_end(b, i)?;
                if depth == 0 {
                    return Some(i);
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b',' if depth == 0 => return Some(i),
            c if depth == 0 && c.is_ascii_whitespace() => return Some(i),
            _ => {}
        }
        i += 1;
    }
    (depth == 0).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn stripped(v: &Value) -> Value {
        let text = serde_json::to_vec(v).unwrap();
        serde_json::from_slice(&strip_managed_fields(&text)).unwrap()
    }

    fn managed() -> Value {
        json!([{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:config": {".": {}}}}}])
    }

    #[test]
    fn managed_fields_leave_an_object_a_list_and_a_watch_event() {
        let object = json!({"kind": "Actor", "metadata": {"name": "a", "managedFields": managed(), "uid": "u"}, "spec": {}});
        assert_eq!(
            stripped(&object),
            json!({"kind": "Actor", "metadata": {"name": "a", "uid": "u"}, "spec": {}})
        );
        let list = json!({"kind": "ActorList", "metadata": {"resourceVersion": "7"}, "items": [object.clone(), object.clone()]});
        let items = stripped(&list)["items"].clone();
        assert_eq!(items[0]["metadata"], json!({"name": "a", "uid": "u"}));
        assert_eq!(items[1]["metadata"], json!({"name": "a", "uid": "u"}));
        let event = json!({"type": "ADDED", "object": object});
        assert_eq!(
            stripped(&event)["object"]["metadata"],
            json!({"name": "a", "uid": "u"})
        );
    }

    #[test]
    fn managed_fields_first_last_or_alone_leave_well_formed_json() {
        for meta in [
            json!({"managedFields": managed(), "name": "a"}),
            json!({"name": "a", "managedFields": managed()}),
            json!({"managedFields": managed()}),
        ] {
            let doc = json!({"metadata": meta});
            let out = stripped(&doc);
            assert!(out["metadata"].get("managedFields").is_none(), "{out}");
        }
        // With the API server's own spacing.
        let pretty = br#"{ "metadata" : { "name" : "a" ,
            "managedFields" : [ { "manager" : "m" } ] } }"#;
        let out: Value = serde_json::from_slice(&strip_managed_fields(pretty)).unwrap();
        assert_eq!(out, json!({"metadata": {"name": "a"}}));
    }

    #[test]
    fn a_users_config_keeps_its_own_managed_fields_key() {
        let doc = json!({
            "metadata": {"name": "a"},
            "spec": {"config": {"managedFields": 1, "metadata": {"managedFields": 2}}}
        });
        assert_eq!(stripped(&doc), doc);
    }

    #[test]
    fn strings_that_look_like_structure_do_not_confuse_the_scan() {
        let doc = json!({"metadata": {"name": "a\",\"managedFields\":[{]", "managedFields": managed(), "x": "}\\"}});
        assert_eq!(
            stripped(&doc),
            json!({"metadata": {"name": "a\",\"managedFields\":[{]", "x": "}\\"}})
        );
    }

    #[test]
    fn managed_fields_thousands_of_levels_deep_are_removed_without_recursion() {
        let deep = format!("{}1{}", r#"{"f:a":"#.repeat(20_000), "}".repeat(20_000));
        let doc = format!(
            r#"{{"metadata":{{"name":"deep","managedFields":[{{"fieldsV1":{deep}}}]}},"spec":{{}}}}"#
        );
        let out: Value = serde_json::from_slice(&strip_managed_fields(doc.as_bytes())).unwrap();
        assert_eq!(out, json!({"metadata": {"name": "deep"}, "spec": {}}));
    }

    #[test]
    fn text_that_is_not_json_is_passed_on_unchanged() {
        for bad in [
            &br#"{"metadata":{"managedFields":[1,2"#[..],
            br#"{"metadata":{"managedFields" 1}}"#,
            br#"{"metadata":{"name":"a"}}}, "managedFields""#,
        ] {
            assert_eq!(&*strip_managed_fields(bad), bad);
        }
    }
}
