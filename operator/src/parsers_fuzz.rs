//! Property tests of the operator's parsers of outside input (issue #14): Alertmanager's webhook
//! (driven whole through the operator's router, as Alertmanager or anyone else could call it),
//! the Prometheus text exposition of workers' `/metrics`, and Prometheus' answers to instant
//! queries. Each runs on arbitrary input and on near-valid input (the grammar with mutations),
//! and checks a cheap property of the result beyond the absence of a panic. In the crate, not in
//! `tests/`, for the fixtures' mock API server behind the webhook's context.

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{Request, StatusCode},
};
use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::{Map, Value, json};
use tower::ServiceExt;
use troupe_crds::{ActorPool, Threshold, lease_clock::BootInstant};
use troupe_proptest::{any_text, config, text_of};

use crate::{
    alerts::{AlertSink, MAX_PAYLOAD},
    analysis::{WorkerSample, prometheus_value},
    fixtures::{Caches, test_context},
    http::{Health, app},
};

/// Numbers as text the way exporters, Prometheus and attackers write them.
fn number_text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        4 => (0u32..100_000).prop_map(|n| n.to_string()),
        2 => any::<f64>().prop_map(|f| f.to_string()),
        1 => prop::sample::select(vec![
            "NaN", "+Inf", "-Inf", "Inf", "inf", "-0", "1e309", "-1e309", "1e-400", "0x10", "1_000",
            "", " ", "1.", ".5", "+5", "-5", "18446744073709551616", "١", "1e", "e1", "--1",
        ])
        .prop_map(str::to_string),
    ]
}

// ---------------------------------------------------------------------------------------------
// Worker /metrics (Prometheus text exposition)

const NAMES: &[&str] = &[
    "troupe_worker_messages_total",
    "troupe_worker_actor_restarts_total",
    "troupe_worker_start_time_seconds",
    "troupe_worker_message_duration_seconds_bucket",
    "troupe_worker_messages_total_x",
    "troupe_worker_message_duration_seconds_sum",
    "# HELP troupe_worker_messages_total",
    "",
];

/// One line of a near-valid exposition: a known or near-miss name, labels among which the
/// ones the parser reads (possibly duplicated, inside other values, or unquoted), a value, and
/// maybe a timestamp.
fn exposition_line() -> impl Strategy<Value = String> {
    let label_value = prop_oneof![
        prop::sample::select(vec![
            "ok", "error", "rejected", "0.1", "+Inf", "NaN", "-1", "1e309", ""
        ])
        .prop_map(str::to_string),
        text_of("ab \\\"{},=le", 0, 8),
    ];
    let label = (
        prop::sample::select(vec!["outcome", "le", "behavior", "my_outcome", "xle", "pool"]),
        label_value,
        prop::sample::select(vec!["\"", "", "'"]),
    )
        .prop_map(|(k, v, q)| format!("{k}={q}{v}{q}"));
    (
        prop::sample::select(NAMES),
        prop::option::weighted(0.8, prop::collection::vec(label, 0..5)),
        number_text(),
        prop::option::weighted(0.1, any::<i64>()),
        prop::sample::select(vec![" ", "  ", "\t"]),
    )
        .prop_map(|(name, labels, value, ts, sep)| {
            let labels = labels.map_or(String::new(), |l| format!("{{{}}}", l.join(",")));
            let ts = ts.map_or(String::new(), |t| format!(" {t}"));
            format!("{name}{labels}{sep}{value}{ts}")
        })
}

fn exposition() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (
            prop::collection::vec(exposition_line(), 0..12),
            prop::sample::select(vec!["\n", "\r\n", "\n\n"]),
        )
            .prop_map(|(lines, nl)| lines.join(nl)),
        1 => any_text(200),
        1 => (1usize..2_000).prop_map(|n| format!("troupe_worker_messages_total{{outcome=\"ok\"}} {}", "9".repeat(n))),
    ]
}

/// A worker's counters as the worker library renders them, in any label order, with other
/// labels (any text, escaped) and maybe timestamps.
#[derive(Debug, Clone)]
struct Counters {
    ok: u32,
    errors: u32,
    restarts: u32,
    started_at: u32,
    /// (upper bound in thousandths, cumulative count); the +Inf bucket is `ok + errors`.
    buckets: Vec<(u32, u32)>,
}

fn counters() -> impl Strategy<Value = (Counters, String)> {
    let escaped = any_text(6).prop_map(|s| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"));
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        prop::collection::btree_map(1u32..100_000, any::<u32>(), 0..6),
        escaped,
        any::<bool>(),
        prop::option::weighted(0.3, any::<u32>()),
    )
        .prop_map(|(ok, errors, restarts, started_at, bounds, behavior, outcome_first, ts)| {
            let mut cumulative = 0u64;
            let buckets: Vec<(u32, u32)> = bounds
                .into_iter()
                .map(|(le, n)| {
                    cumulative = cumulative.max(u64::from(n));
                    (le, cumulative as u32)
                })
                .collect();
            let c = Counters { ok, errors, restarts, started_at, buckets };
            let ts = ts.map_or(String::new(), |t| format!(" {t}"));
            let labels = |outcome: &str| {
                let b = format!("behavior=\"{behavior}\"");
                let o = format!("outcome=\"{outcome}\"");
                if outcome_first { format!("{o},{b}") } else { format!("{b},{o}") }
            };
            let mut text = String::from("# HELP troupe_worker_messages_total Messages\n");
            text += &format!("troupe_worker_messages_total{{{}}} {}{ts}\n", labels("ok"), c.ok);
            text += &format!("troupe_worker_messages_total{{{}}} {}{ts}\n", labels("error"), c.errors);
            text += &format!("troupe_worker_actor_restarts_total{{behavior=\"{behavior}\"}} {}{ts}\n", c.restarts);
            text += &format!("troupe_worker_start_time_seconds {}{ts}\n", c.started_at);
            for (le, n) in &c.buckets {
                text += &format!(
                    "troupe_worker_message_duration_seconds_bucket{{behavior=\"{behavior}\",le=\"{}\"}} {n}{ts}\n",
                    f64::from(*le) / 1000.0
                );
            }
            (c, text)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn worker_metrics_parser_never_panics_and_keeps_counters_non_negative_numbers(
        text in exposition(),
        taken_at in 0.0f64..4e9,
    ) {
        let s = WorkerSample::parse(&text, taken_at);
        for (what, v) in [("ok", s.ok), ("errors", s.errors), ("restarts", s.restarts)] {
            prop_assert!(v >= 0.0, "{} = {} from {:?}", what, v, text);
        }
        prop_assert!(s.started_at.is_finite(), "started_at = {} from {:?}", s.started_at, text);
        prop_assert!(s.buckets.iter().all(|(le, c)| !le.is_nan() && *c >= 0.0), "{:?}", s.buckets);
        prop_assert!(s.buckets.windows(2).all(|w| w[0].0 < w[1].0), "unsorted {:?}", s.buckets);
        // Deltas against any earlier sample stay non-negative too.
        let d = s.since(Some(&WorkerSample::parse(&text, taken_at - 1.0)));
        prop_assert!(d.ok >= 0.0 && d.errors >= 0.0 && d.restarts >= 0.0, "{:?}", d);
    }

    #[test]
    fn a_rendered_worker_scrape_parses_back_to_its_counters((c, text) in counters()) {
        let s = WorkerSample::parse(&text, 0.0);
        prop_assert_eq!(
            (s.ok, s.errors, s.restarts, s.started_at),
            (f64::from(c.ok), f64::from(c.errors), f64::from(c.restarts), f64::from(c.started_at)),
            "{}", text
        );
        let expected: Vec<(f64, f64)> = c.buckets.iter().map(|(le, n)| (f64::from(*le) / 1000.0, f64::from(*n))).collect();
        prop_assert_eq!(s.buckets, expected, "{}", text);
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus instant-query answers

/// One series' `[time, "value"]` pair, well formed or not; the value it holds when well formed.
fn sample_pair() -> impl Strategy<Value = (Value, Option<f64>)> {
    prop_oneof![
        6 => (any::<u32>(), number_text()).prop_map(|(t, v)| {
            let parsed = v.parse::<f64>().ok();
            (json!([t, v]), parsed)
        }),
        1 => (any::<f64>()).prop_map(|f| (json!([1, f]), None)),
        1 => prop::sample::select(vec![
            json!([]), json!([1]), json!("1"), json!(null), json!({"1": "2"}), json!([1, "2", 3]),
            json!([[1, "2"]]),
        ])
        .prop_map(|v| {
            // [1, "2", 3] still has its value at index 1.
            let parsed = (v == json!([1, "2", 3])).then_some(2.0);
            (v, parsed)
        }),
    ]
}

/// An answer of /api/v1/query: a status, a result type and a result, each right or wrong; with
/// the finite values the parser must see.
fn prometheus_answer() -> impl Strategy<Value = (Value, Option<Vec<f64>>)> {
    let series = (
        sample_pair(),
        prop::collection::btree_map(any_text(4), any_text(4), 0..3),
    )
        .prop_map(|((value, parsed), metric)| (json!({"metric": metric, "value": value}), parsed));
    (
        prop::sample::select(vec!["success", "success", "success", "error", "", "Success"]),
        prop::sample::select(vec![
            "vector", "vector", "scalar", "matrix", "string", "", "VECTOR",
        ]),
        prop::collection::vec(series, 0..5),
        sample_pair(),
        any::<bool>(),
    )
        .prop_map(|(status, kind, series, scalar, drop_data)| {
            let (result, values): (Value, Vec<Option<f64>>) = match kind {
                "scalar" => (scalar.0, vec![scalar.1]),
                _ => {
                    let values = series.iter().map(|(_, p)| *p).collect();
                    (Value::Array(series.into_iter().map(|(s, _)| s).collect()), values)
                }
            };
            let mut answer = json!({"status": status, "data": {"resultType": kind, "result": result}});
            if drop_data {
                answer["data"] = Value::Null;
            }
            let readable = status == "success" && !drop_data && (kind == "vector" || kind == "scalar");
            let finite = readable.then(|| values.into_iter().flatten().filter(|v| v.is_finite()).collect());
            (answer, finite)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_prometheus_answer_gives_its_worst_finite_value_or_says_why_not(
        (answer, finite) in prometheus_answer(),
        above in any::<bool>(),
    ) {
        let threshold = if above {
            Threshold { max: Some(0.5), min: None }
        } else {
            Threshold { max: None, min: Some(0.5) }
        };
        let got = prometheus_value(&answer, &threshold);
        match finite {
            Some(values) if !values.is_empty() => {
                let worst = if above {
                    values.iter().cloned().fold(f64::MIN, f64::max)
                } else {
                    values.iter().cloned().fold(f64::MAX, f64::min)
                };
                prop_assert_eq!(got, Ok(worst), "{}", answer);
            }
            _ => prop_assert!(got.is_err(), "{} gave {:?}", answer, got),
        }
    }

    #[test]
    fn prometheus_answer_bytes_never_panic_the_reader(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            prometheus_answer().prop_map(|(a, _)| serde_json::to_vec(&a).unwrap()),
            (prometheus_answer(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|((a, _), at, b)| {
                let mut v = serde_json::to_vec(&a).unwrap();
                let i = at.index(v.len());
                v[i] = b;
                v
            }),
            (1usize..300).prop_map(|n| format!("{}\"success\"{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        ],
    ) {
        // As the operator reads it: JSON first, then the answer's shape.
        if let Ok(json) = serde_json::from_slice::<Value>(&bytes)
            && let Ok(v) = prometheus_value(&json, &Threshold { max: Some(1.0), min: None })
        {
            prop_assert!(v.is_finite());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Alertmanager's webhook

const TOKEN: &str = "alert-token";

fn label_map() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        4 => prop::sample::select(vec!["namespace", "pool", "severity", "alertname", "Namespace", ""])
            .prop_map(str::to_string),
        1 => any_text(6),
    ];
    let value = prop_oneof![
        4 => prop::sample::select(vec!["ns", "p", "critical", "warning", "q", ""]).prop_map(Value::from),
        1 => any_text(6).prop_map(Value::from),
        1 => prop::sample::select(vec![json!(1), json!(null), json!(["ns"]), json!({"a": 1})]),
    ];
    prop::collection::vec((key, value), 0..6).prop_map(Map::from_iter)
}

fn starts_at() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (1900i64..2200, 1u32..13, 1u32..29, 0u32..24, 0u32..60, 0u32..61, prop::sample::select(vec!["Z", "+05:30", "-00:00", "", "+99:99"]))
            .prop_map(|(y, mo, d, h, mi, s, z)| Value::from(format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.123456789{z}"))),
        1 => prop::sample::select(vec![
            "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "99999-01-01T00:00:00Z", "-0001-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z", "2026-11-22T08:09:15.1234567890123Z", "2026-11-22T24:00:00Z", "", "now",
        ])
        .prop_map(Value::from),
        1 => any_text(30).prop_map(Value::from),
        1 => Just(json!(12)),
    ]
}

fn alert() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["firing", "firing", "resolved", "", "FIRING"]),
        label_map(),
        label_map(),
        prop::option::of(starts_at()),
    )
        .prop_map(|(status, labels, annotations, starts_at)| {
            let mut a = json!({"status": status, "labels": labels, "annotations": annotations});
            if let Some(s) = starts_at {
                a["startsAt"] = s;
            }
            a
        })
}

/// A webhook body: a payload (version 4 or not) of alerts, damaged or with fields of the wrong
/// type, or arbitrary bytes; and whether it is a version-4 payload the operator can read.
fn webhook_body() -> impl Strategy<Value = (Bytes, bool)> {
    let payload = (
        prop::sample::select(vec![json!("4"), json!("4"), json!("3"), json!(4), json!(null)]),
        prop::collection::vec(alert(), 0..5),
    )
        .prop_map(|(version, alerts)| json!({"version": version, "groupKey": "{}", "alerts": alerts}));
    prop_oneof![
        10 => payload.prop_map(|p| {
            // Readable: version "4" and every alert has a status, labels and annotations of strings.
            let readable = p["version"] == "4"
                && p["alerts"].as_array().unwrap().iter().all(|a| {
                    ["labels", "annotations"].iter().all(|k| a[*k].as_object().unwrap().values().all(Value::is_string))
                        && (a.get("startsAt").is_none() || a["startsAt"].is_string())
                });
            (Bytes::from(serde_json::to_vec(&p).unwrap()), readable)
        }),
        3 => (alert(), any::<prop::sample::Index>(), 0usize..3).prop_map(|(a, at, how)| {
            let mut v = serde_json::to_vec(&json!({"version": "4", "alerts": [a]})).unwrap();
            let i = at.index(v.len());
            match how {
                0 => v.truncate(i),
                1 => v.insert(i, b'"'),
                _ => v[i] = 0xC3,
            }
            (Bytes::from(v), false)
        }),
        2 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| (Bytes::from(b), false)),
        1 => prop::sample::select(vec![
            r#"{"version":"4","alerts":[{"status":"firing","labels":{"pool":"p","pool":"q","namespace":"ns"}}]}"#,
            r#"{"version":"4","alerts":null}"#,
            r#"{"version":"4"}"#,
            r#"{"version":"4","alerts":[{"labels":{}}]}"#,
            r#"[]"#,
        ])
        .prop_map(|s| (Bytes::from_static(s.as_bytes()), false)),
        1 => (100usize..300).prop_map(|n| {
            (Bytes::from(format!("{{\"version\":\"4\",\"alerts\":[{}]}}", "[".repeat(n))), false)
        }),
    ]
}

#[derive(Debug)]
struct Call {
    auth: Option<&'static str>,
    body: Bytes,
    readable: bool,
}

fn call() -> impl Strategy<Value = Call> {
    (
        prop::sample::select(vec![
            Some("Bearer alert-token"),
            Some("Bearer alert-token"),
            Some("Bearer alert-token "),
            Some("Bearer alert-toke"),
            Some("bearer alert-token"),
            None,
        ]),
        webhook_body(),
    )
        .prop_map(|(auth, (body, readable))| Call { auth, body, readable })
}

#[test]
fn alert_webhook_never_panics_and_takes_only_firing_alerts_that_name_a_pool_taking_them() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pool: ActorPool = serde_json::from_value(json!({
        "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "i"}]}},
                 "rollback": {"matchLabels": {"severity": "critical"}}}
    }))
    .unwrap();
    let (ctx, _api) = rt.block_on(async {
        test_context(Caches {
            pools: vec![pool],
            ..Default::default()
        })
    });
    // Leading for the whole run, however long it takes.
    ctx.leadership
        .renewed(BootInstant::now(), Duration::from_secs(86_400), Duration::ZERO);
    let health = Arc::new(Health {
        ready: true.into(),
        metrics: ctx.metrics.clone(),
    });
    let sink = Arc::new(AlertSink {
        token: Some(TOKEN.into()),
        ctx: ctx.clone(),
        leader: Arc::new(true.into()),
    });
    let router = app(health, sink);
    let mut runner = TestRunner::new(config());
    let result = runner.run(&call(), |call| {
        ctx.alerts.lock().unwrap().clear();
        let mut req = Request::post("/v1/alerts").header("content-type", "application/json");
        if let Some(a) = call.auth {
            req = req.header("authorization", a);
        }
        let req = req.body(Body::from(call.body.clone())).unwrap();
        let (status, answer) = rt.block_on(async {
            let resp = router.clone().oneshot(req).await.expect("infallible");
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), MAX_PAYLOAD).await.unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).expect("a JSON answer"),
            )
        });
        // The token is compared after trimming the bearer value (Alertmanager's files may end
        // in a newline).
        let authorized = matches!(
            call.auth,
            Some("Bearer alert-token") | Some("Bearer alert-token ")
        );
        let expected = match (authorized, call.readable) {
            (false, _) => StatusCode::UNAUTHORIZED,
            (true, true) => StatusCode::OK,
            (true, false) => StatusCode::BAD_REQUEST,
        };
        // Hand-made bodies may still be readable payloads (a damaged one that stays valid).
        if !(expected == StatusCode::BAD_REQUEST && status == StatusCode::OK) {
            prop_assert_eq!(status, expected, "{:?} answered {}", call, answer);
        }
        prop_assert!(answer["message"].is_string(), "{}", answer);
        let taken = ctx.alerts.lock().unwrap().keys().cloned().collect::<Vec<_>>();
        if status != StatusCode::OK {
            prop_assert!(taken.is_empty());
            return Ok(());
        }
        let payload: Value = serde_json::from_slice(&call.body).unwrap();
        let alerts = payload["alerts"].as_array().cloned().unwrap_or_default();
        prop_assert_eq!(&answer["alerts"], &json!(alerts.len()));
        let names_the_pool = alerts.iter().any(|a| {
            a["status"] == "firing"
                && a["labels"]["namespace"] == "ns"
                && a["labels"]["pool"] == "p"
                && a["labels"]["severity"] == "critical"
        });
        let expected: Vec<(String, String)> = if names_the_pool {
            vec![("ns".into(), "p".into())]
        } else {
            vec![]
        };
        prop_assert_eq!(taken, expected, "{}", payload);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
