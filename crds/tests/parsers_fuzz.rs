//! Property tests of the crate's parsers of outside input (issue #14): durations as manifests
//! write them, and an actor's config as the API server sends it. Each property runs on arbitrary
//! text and on near-valid text (the grammar with mutations), which is where bugs hide; where a
//! cheap model exists the answer is checked against it, not only for the absence of a panic.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Map, Value};
use troupe_crds::{
    ActorConfig,
    config::MAX_DEPTH,
    duration::{DurationError, parse_duration},
};
use troupe_proptest::{any_text, config, text_of};

// ---------------------------------------------------------------------------------------------
// Durations

/// Valid units with their length in milliseconds, and near misses (no length).
const UNITS: &[(&str, Option<u128>)] = &[
    ("ms", Some(1)),
    ("s", Some(1_000)),
    ("m", Some(60_000)),
    ("h", Some(3_600_000)),
    ("d", None),
    ("us", None),
    ("µs", None),
    ("M", None),
    ("S", None),
    ("", None),
    (" s", None),
    ("s ", None),
    (".5s", None),
    ("e3s", None),
];

/// Digits as people and attackers write them: small, leading zeros, around u64::MAX, or longer.
fn digits() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        (text_of("0", 1, 5), text_of("0123456789", 1, 4)).prop_map(|(a, b)| a + &b),
        (u64::MAX / 3_600_000 - 2..=u64::MAX / 3_600_000 + 2).prop_map(|n| n.to_string()),
        (u64::MAX - 5..=u64::MAX).prop_map(|n| n.to_string()),
        text_of("0123456789", 15, 30),
        Just("-1".to_string()),
        Just("+1".to_string()),
        Just("NaN".to_string()),
        Just("1.5".to_string()),
        Just("١٢".to_string()), // Arabic-Indic digits: numeric to Unicode, not to the schema.
    ]
}

/// A duration text built from pairs, and the total in milliseconds the grammar gives it (None
/// when some pair is not `<ascii digits><unit>`).
fn near_valid_duration() -> impl Strategy<Value = (String, Option<u128>)> {
    prop::collection::vec((digits(), prop::sample::select(UNITS)), 1..6).prop_map(|pairs| {
        let text: String = pairs.iter().map(|(d, (u, _))| format!("{d}{u}")).collect();
        let total = pairs.iter().try_fold(0u128, |acc, (d, (_, unit_ms))| {
            let n: u128 =
                (d.bytes().all(|b| b.is_ascii_digit()) && !d.is_empty()).then(|| d.parse().ok())??;
            Some(acc + n * (*unit_ms)?)
        });
        (text, total)
    })
}

/// `d` as compound units, e.g. `1h1m1s1ms` (`0ms` for zero).
fn render(d: Duration) -> String {
    let ms = d.as_millis();
    let parts = [
        (ms / 3_600_000, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1_000 % 60, "s"),
        (ms % 1_000, "ms"),
    ];
    let out: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if out.is_empty() { "0ms".into() } else { out }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn duration_parser_never_panics_on_arbitrary_text(text in prop_oneof![
        any_text(64),
        text_of("0123456789smhd-+. µ", 0, 40),
    ]) {
        if let Ok(d) = parse_duration(&text) {
            // Whatever is accepted is the schema's language and reads back the same.
            prop_assert!(text.bytes().all(|b| b.is_ascii_digit() || b"msh".contains(&b)), "{text:?}");
            prop_assert_eq!(parse_duration(&format!("{}ms", d.as_millis())), Ok(d));
        }
    }

    #[test]
    fn duration_parser_agrees_with_the_grammar_on_near_valid_text(
        (text, total) in near_valid_duration()
    ) {
        let got = parse_duration(&text);
        match total {
            Some(ms) if ms <= u128::from(u64::MAX) => {
                prop_assert_eq!(got, Ok(Duration::from_millis(ms as u64)), "{:?}", text)
            }
            Some(_) => prop_assert_eq!(got, Err(DurationError::Overflow(text))),
            // A mutated pair can still spell valid text (`1m` + `s` is `1ms`): only a refusal
            // or a value that reads back the same is allowed.
            None => if let Ok(d) = got {
                prop_assert_eq!(parse_duration(&format!("{}ms", d.as_millis())), Ok(d));
            },
        }
    }

    #[test]
    fn a_rendered_duration_parses_back_to_the_same_value(ms in prop_oneof![
        any::<u64>(),
        0u64..10_000_000,
    ]) {
        let d = Duration::from_millis(ms);
        prop_assert_eq!(parse_duration(&render(d)), Ok(d), "{}", render(d));
    }
}

// ---------------------------------------------------------------------------------------------
// Actor config

/// Strings that trouble a bracket counter: brackets, quotes and backslashes (escaped in JSON),
/// and any unicode.
fn tricky_string() -> impl Strategy<Value = String> {
    // Drawn char by char: regex and whole-string strategies cost more than the parse tested.
    let tricky = prop::sample::select(vec![
        '[', ']', '{', '}', '"', '\\', ':', ',', ' ', 'a', 'é', '\u{0}',
    ]);
    prop::collection::vec(prop_oneof![3 => tricky, 1 => any::<char>()], 0..6)
        .prop_map(|c| c.into_iter().collect())
}

/// Scalars whose JSON text reads back exactly (dyadic floats), so values can be compared.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
        tricky_string().prop_map(Value::from),
        Just(Value::Object(Map::new())),
        Just(Value::Array(Vec::new())),
    ]
}

/// The nesting of `v` as the config's depth limit counts it (a scalar: 0; `{}`: 1).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A document around a spine of up to 100 containers (the limit is 64), with siblings at some
/// levels, and a top level that is usually an object. Each level is one random byte picking its
/// kind, key and siblings from small pools: drawing every level's parts separately made a case
/// cost milliseconds in a debug build.
fn nested_document() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(any::<u8>(), 0..100),
        prop::collection::vec(tricky_string(), 1..5),
        prop::collection::vec(scalar(), 1..5),
        scalar(),
        prop::bool::weighted(0.75),
    )
        .prop_map(|(levels, keys, scalars, leaf, wrap)| {
            let key = |i: usize| keys[i % keys.len()].clone();
            let mut v = leaf;
            for b in levels.into_iter().rev().map(usize::from) {
                let siblings =
                    (0..(b >> 5) % 3).map(|i| (key(b + i + 1), scalars[(b >> 2) % scalars.len()].clone()));
                v = if b & 1 == 1 {
                    let mut m: Map<String, Value> = siblings.collect();
                    m.insert(key(b >> 1), v);
                    Value::Object(m)
                } else {
                    let mut a: Vec<Value> = siblings.map(|(_, s)| s).collect();
                    a.push(v);
                    Value::Array(a)
                };
            }
            if wrap {
                Value::Object(Map::from_iter([("config".to_string(), v)]))
            } else {
                v
            }
        })
}

/// A JSON text damaged in one place: cut short, a byte range dropped, or a structural
/// character inserted.
fn damaged(text: String, at: usize, len: usize, ch: char) -> String {
    let cut = |i: usize| {
        let mut i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let (a, b) = (cut(at), cut(at + len));
    match len % 3 {
        0 => text[..a].to_string(),
        1 => format!("{}{}", &text[..a], &text[b..]),
        _ => format!("{}{ch}{}", &text[..a], &text[a..]),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn actor_config_is_read_back_or_refused_for_its_depth_or_kind(
        doc in nested_document(),
        // Pretty text indents by depth (quadratic whitespace): a few cases suffice.
        pretty in prop::bool::weighted(0.05),
    ) {
        let text = if pretty {
            serde_json::to_string_pretty(&doc).unwrap()
        } else {
            serde_json::to_string(&doc).unwrap()
        };
        // Any valid JSON is kept as text, however deep.
        let config: ActorConfig = serde_json::from_str(&text).expect("valid JSON is accepted as text");
        let d = depth(&doc);
        match (config.parse(), &doc) {
            (Ok(map), Value::Object(expected)) => {
                prop_assert!(d <= MAX_DEPTH, "depth {} accepted", d);
                prop_assert_eq!(&map, expected);
            }
            (Err(why), _) if d > MAX_DEPTH => {
                prop_assert!(why.contains(&format!("nested {d} levels deep")), "{}", why)
            }
            (Err(why), v) if !v.is_object() => prop_assert!(why.contains("must be an object"), "{}", why),
            (got, _) => prop_assert!(false, "depth {}: {:?}", d, got),
        }
    }

    #[test]
    fn actor_config_never_panics_on_damaged_or_arbitrary_text(
        doc in nested_document(),
        at in any::<usize>(),
        len in 0usize..16,
        ch in prop::sample::select(vec!['{', '}', '[', ']', '"', '\\', ',', ':', '\u{0}', 'é']),
        arbitrary in prop::option::weighted(0.2, any_text(64)),
    ) {
        let text = if let Some(arbitrary) = arbitrary {
            arbitrary
        } else {
            let text = serde_json::to_string(&doc).unwrap();
            let at = at % (text.len() + 1);
            damaged(text, at, len, ch)
        };
        if let Ok(config) = serde_json::from_str::<ActorConfig>(&text)
            && config.parse().is_ok()
        {
            prop_assert!(text.trim_start().starts_with('{'), "{:?}", text);
        }
    }

    #[test]
    fn a_config_nested_past_the_limit_is_refused_by_depth_without_parsing(
        open in prop::sample::select(vec!["[", "{\"a\":", "{\"\\\"[\":"]),
        // Deeper ones are in the unit tests: here each case would cost a millisecond.
        n in 1usize..400,
    ) {
        let close = if open == "[" { "]" } else { "}" };
        let text = format!("{{\"c\":{}0{}}}", open.repeat(n), close.repeat(n));
        let config: ActorConfig = serde_json::from_str(&text).expect("deep JSON is kept as text");
        match config.parse() {
            Ok(map) => prop_assert!(n < MAX_DEPTH && map.contains_key("c")),
            Err(why) => prop_assert!(
                n >= MAX_DEPTH && why.contains(&format!("nested {} levels", n + 1)),
                "{}: {}", n, why
            ),
        }
    }
}
