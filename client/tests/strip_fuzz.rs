//! Property tests of the managedFields cut (issue #14): it reads every answer of the API server
//! before anything else does, so it must never panic, never break a well-formed answer, and never
//! change anything but the metadata's `managedFields`. (Malformed text may come out malformed or
//! cut: the parser after it says what is wrong; the API server sends none.)

use proptest::prelude::*;
use serde_json::{Value, json};
use troupe_client::strip_managed_fields;
use troupe_proptest::{config, text_of};

/// Any JSON value a few levels deep, with keys that matter to the cut among others, and strings
/// that look like JSON structure.
fn value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("managedFields".to_string()),
        Just("metadata".to_string()),
        Just("items".to_string()),
        Just("object".to_string()),
        text_of("ab\"\\{}[],: ", 0, 6),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text_of("xy\"\\{}[],: \u{e9}", 0, 8).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// `v` without what the cut removes: `managedFields` in the metadata of the document, of each
/// item of its `items`, and of its `object`.
fn expected(mut v: Value) -> Value {
    fn cut(meta: &mut Value) {
        if let Some(m) = meta.as_object_mut() {
            m.remove("managedFields");
        }
    }
    if let Some(root) = v.as_object_mut() {
        if let Some(meta) = root.get_mut("metadata") {
            cut(meta);
        }
        if let Some(Value::Array(items)) = root.get_mut("items") {
            for item in items {
                if let Some(meta) = item.get_mut("metadata") {
                    cut(meta);
                }
            }
        }
        if let Some(meta) = root.get_mut("object").and_then(|o| o.get_mut("metadata")) {
            cut(meta);
        }
    }
    v
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_document_loses_exactly_its_metadatas_managed_fields_and_stays_json(
        doc in value(),
        meta in value(),
        pretty in any::<bool>(),
    ) {
        // A metadata with managedFields where the API server puts them, beside whatever the
        // generator made (which may hold managedFields elsewhere, to be kept).
        let mut doc = doc;
        if let Some(o) = doc.as_object_mut() {
            let mut m = meta;
            if let Some(mo) = m.as_object_mut() {
                mo.insert("managedFields".into(), json!([{"manager": "m", "fieldsV1": {"f:a": {}}}]));
            }
            o.insert("metadata".into(), m);
        }
        let text = if pretty { serde_json::to_vec_pretty(&doc) } else { serde_json::to_vec(&doc) };
        let text = text.unwrap();
        let out: Value = serde_json::from_slice(&strip_managed_fields(&text)).unwrap();
        prop_assert_eq!(out, expected(doc));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_well_formed_ones_are_cut_as_documents_are(
        bytes in prop::collection::vec(prop_oneof![
            Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b':'), Just(b','),
            Just(b'\\'), Just(b' '), Just(b'1'), any::<u8>(),
        ], 0..64),
        key_at in any::<prop::sample::Index>(),
    ) {
        let mut text = bytes;
        let at = key_at.index(text.len() + 1);
        text.splice(at..at, br#"{"metadata":{"managedFields":"#.iter().copied());
        let out = strip_managed_fields(&text);
        if let Ok(doc) = serde_json::from_slice::<Value>(&text) {
            let cut: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(cut, expected(doc));
        }
    }
}
