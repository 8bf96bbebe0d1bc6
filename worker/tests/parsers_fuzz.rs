//! Property tests of the worker's parsers of outside input (issue #14): schedules, the settings
//! a pod's env can set, and the HTTP API driven whole (`tower::ServiceExt::oneshot` on the real
//! router, arbitrary methods, paths, headers and bodies). Each runs on arbitrary input and on
//! near-valid input (the grammar with mutations), and checks a cheap property of the answer
//! beyond the absence of a panic.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{Request, StatusCode},
};
use chrono::{DateTime, TimeZone, Utc};
use clap::{CommandFactory, FromArgMatches, Parser};
use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::{Map, Value, json};
use tower::ServiceExt;
use troupe_proptest::{any_text, config, text_of};
use troupe_worker::{
    api::{ApiState, Forwarder, MAX_BODY, router},
    builtin,
    host::{ActorKey, Host, HostConfig},
    metrics::Metrics,
    run::{WorkerConfig, parse_duration, parse_policy},
    schedule::Schedule,
};

// ---------------------------------------------------------------------------------------------
// Schedules

/// A moment a worker could be running at (2000 to 2200).
fn now() -> impl Strategy<Value = DateTime<Utc>> {
    (946_684_800i64..7_258_118_400, 0u32..1_000_000_000).prop_map(|(s, ns)| Utc.timestamp_opt(s, ns).unwrap())
}

const EVERY_UNITS: &[(&str, Option<u128>)] = &[
    ("ms", Some(1)),
    ("s", Some(1_000)),
    ("m", Some(60_000)),
    ("h", Some(3_600_000)),
    ("d", Some(86_400_000)),
    ("", None),
    ("y", None),
    ("w", None),
    ("S", None),
    ("sec", None),
    ("µs", None),
    (" s", None),
    ("s s", None),
    ("1s", Some(1_000)), // digits then unit: `every 51s` is `every 51s`.
];

/// `every <n><unit>` with numbers from zero to far past any clock, and near-miss units.
fn near_valid_every() -> impl Strategy<Value = (String, Option<u128>)> {
    let number = prop_oneof![
        (0u64..1_000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (1u64..=20).prop_map(|k| "9".repeat(k as usize)),
        (text_of("0", 1, 4), text_of("123456789", 1, 1)).prop_map(|(a, b)| a + &b),
        text_of("0123456789", 20, 25),
        Just("-1".to_string()),
        Just("+5".to_string()),
        Just("".to_string()),
        Just("٣".to_string()),
    ];
    let spaces = prop::sample::select(vec!["", " ", "  ", "\t"]);
    (spaces.clone(), number, prop::sample::select(EVERY_UNITS), spaces).prop_map(
        |(lead, n, (unit, unit_ms), trail)| {
            let text = format!("{lead}every {n}{unit}{trail}");
            // `1s` as a unit appends a digit: the number is then `n1`.
            let digits = if unit == "1s" { format!("{n}1") } else { n.clone() };
            let ms = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<u128>().ok())
                .flatten()
                .zip(unit_ms)
                .map(|(n, u)| n * u);
            (text, ms)
        },
    )
}

/// Cron fields: numbers in and out of range, steps (zero, huge), ranges (reversed), lists,
/// names, and the special characters croner knows.
fn cron_field() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("*".to_string()),
        Just("?".to_string()),
        (0u32..70).prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        text_of("0123456789", 10, 22),
        (0u32..70, 0u32..70).prop_map(|(a, b)| format!("{a}-{b}")),
        (0u32..100).prop_map(|s| format!("*/{s}")),
        any::<u64>().prop_map(|s| format!("*/{s}")),
        (0u32..70, 0u32..70).prop_map(|(a, s)| format!("{a}/{s}")),
        prop::sample::select(vec![
            "L", "W", "LW", "5L", "15W", "L-3", "5#3", "5#9", "MON", "mon-fri", "SUN#2", "JAN", "dec",
            "FRI-MON", "-", "/", ",", "#", "*/", "1-", "-1",
        ])
        .prop_map(str::to_string),
    ];
    prop::collection::vec(atom, 1..4).prop_map(|a| a.join(","))
}

fn near_valid_cron() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(cron_field(), 3..9).prop_map(|f| f.join(" ")),
        prop::sample::select(vec![
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "@midnight",
            "@reboot",
            "@",
            "@every 5s",
            "@HOURLY",
        ])
        .prop_map(str::to_string),
    ]
}

/// The schedule's next tick after `now` is strictly later, finite, and an interval ticks
/// exactly one interval on; the tick after that is later again.
fn ticks_forward(schedule: &Schedule, now: DateTime<Utc>) -> Result<(), TestCaseError> {
    let Some(next) = schedule.next_after(now) else {
        return Ok(());
    };
    prop_assert!(next > now, "{next} is not after {now}");
    if let Schedule::Every(d) = schedule {
        prop_assert_eq!((next - now).to_std().ok(), Some(*d));
    }
    if let Some(after) = schedule.next_after(next) {
        prop_assert!(after > next, "{after} is not after {next}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn schedule_parser_never_panics_and_next_tick_is_finite_and_later(
        text in prop_oneof![
            any_text(64),
            (any::<bool>(), text_of("0123456789abcdefghijklmnopqrstuvwxyz*/,?#@ -", 0, 30))
                .prop_map(|(every, t)| if every { format!("every {t}") } else { t }),
            near_valid_cron(),
        ],
        now in now(),
    ) {
        if let Ok(s) = text.parse::<Schedule>() {
            ticks_forward(&s, now)?;
        }
    }

    #[test]
    fn every_intervals_are_read_as_the_grammar_says_and_tick_without_overflow(
        (text, ms) in near_valid_every(),
        now in now(),
    ) {
        let got = text.parse::<Schedule>();
        match ms {
            Some(ms) if ms > 0 && ms <= u128::from(u64::MAX) => match &got {
                Ok(Schedule::Every(d)) => prop_assert_eq!(d.as_millis(), ms),
                other => prop_assert!(false, "{:?} read as {:?}", text, other),
            },
            _ => prop_assert!(got.is_err(), "{:?} read as {:?}", text, got),
        }
        if let Ok(s) = got {
            ticks_forward(&s, now)?;
        }
    }

    #[test]
    fn cron_schedules_near_the_grammar_never_panic_and_tick_forward(
        text in near_valid_cron(),
        now in now(),
    ) {
        if let Ok(s) = text.parse::<Schedule>() {
            prop_assert!(matches!(s, Schedule::Cron(_)));
            ticks_forward(&s, now)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Worker settings (the pod's env)

/// The worker's settings as clap reads them from flags (the same parsers as env).
#[derive(Parser)]
struct Settings {
    #[command(flatten)]
    cfg: WorkerConfig,
}

thread_local! {
    /// Built once: building clap's command for every case cost more than the case.
    static COMMAND: std::cell::RefCell<clap::Command> = std::cell::RefCell::new(Settings::command());
}

/// Duration-ish text: valid, zero, overflowing, negative, fractional, unicode.
fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..700_000, prop::sample::select(vec!["ms", "s", "m", "h"])).prop_map(|(n, u)| format!("{n}{u}")),
        (0u64..700, 0u64..1000).prop_map(|(s, ms)| format!("{s}s{ms}ms")),
        Just("0s".to_string()),
        Just("99999999999999999999h".to_string()),
        Just("5124095576030431h".to_string()), // just past u64::MAX milliseconds
        Just("-1s".to_string()),
        Just("1.5s".to_string()),
        Just("".to_string()),
        Just("1d".to_string()),
        any_text(12),
    ]
}

fn policy_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Reject",
            "DropOldest",
            "Block",
            "reject",
            "BLOCK",
            "",
            " Block"
        ])
        .prop_map(str::to_string),
        any_text(12),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn worker_duration_settings_read_what_the_crd_parser_reads(text in duration_text()) {
        let worker = parse_duration(&text);
        let crds = troupe_crds::duration::parse_duration(&text);
        prop_assert_eq!(worker.as_ref().ok(), crds.as_ref().ok());
        if let Err(why) = worker {
            prop_assert!(why.contains(&format!("{text:?}")) || text.is_empty(), "{}", why);
        }
    }

    #[test]
    fn mailbox_policy_setting_accepts_exactly_the_three_names(text in policy_text()) {
        let known = ["Reject", "DropOldest", "Block"].contains(&text.as_str());
        prop_assert_eq!(parse_policy(&text).is_ok(), known, "{:?}", text);
    }

    #[test]
    fn worker_settings_from_env_never_panic_and_checked_ones_are_in_range(
        // Mostly valid durations around the ranges, so that many cases reach the range check.
        durations in prop::collection::vec(prop_oneof![
            3 => (0u64..700_000).prop_map(|ms| format!("{ms}ms")),
            1 => duration_text(),
        ], 8),
        policy in policy_text(),
        capacity in prop_oneof![
            (0u64..2_000_000).prop_map(|n| n.to_string()),
            Just("-1".to_string()),
            Just("18446744073709551616".to_string()),
            any_text(6),
        ],
    ) {
        let flags = [
            "--mailbox-block-timeout", "--lease-duration", "--lease-renew", "--status-every",
            "--status-counters-every", "--passivate-after", "--stop-deadline", "--drain-timeout",
        ];
        let mut args = vec![
            "worker".to_string(), "--pod=p".into(), "--namespace=n".into(), "--pool=q".into(),
        ];
        for (flag, value) in flags.iter().zip(&durations) {
            args.push(format!("{flag}={value}"));
        }
        args.push(format!("--mailbox-when-full={policy}"));
        args.push(format!("--mailbox-capacity={capacity}"));
        let Some(c) = COMMAND.with_borrow_mut(|cmd| {
            let matches = cmd.try_get_matches_from_mut(&args).ok()?;
            Settings::from_arg_matches(&matches).ok().map(|s| s.cfg)
        }) else {
            return Ok(());
        };
        if c.check().is_ok() {
            // What the timers and the lease proof rely on.
            prop_assert!(c.lease_renew >= Duration::from_millis(100));
            prop_assert!(c.lease_renew < c.lease_duration);
            prop_assert!(!c.status_every.is_zero() && !c.stop_deadline.is_zero());
            prop_assert!((1..=1_000_000).contains(&c.mailbox_capacity));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP API

const TOKEN: &str = "t0k3n";

/// A path segment: the actors the host has, near misses, and arbitrary text, percent-encoded
/// byte by byte so that any bytes (invalid UTF-8 included) reach the router.
fn segment() -> impl Strategy<Value = String> {
    let raw = prop_oneof![
        4 => prop::sample::select(vec!["ns", "echo", "paused", "nobody", "", "..", "."])
            .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ];
    let encoded = (raw, any::<bool>()).prop_map(|(bytes, encode_all)| {
        let mut out = String::new();
        for b in bytes {
            if !encode_all && b.is_ascii_alphanumeric() || b == b'.' {
                out.push(b as char);
            } else {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
        }
        out
    });
    // Long names (past Kubernetes' 253) are built whole: byte by byte they cost more than the
    // request.
    prop_oneof![9 => encoded, 1 => (1usize..3000).prop_map(|n| "a".repeat(n))]
}

fn path_and_query() -> impl Strategy<Value = String> {
    let verb = prop::sample::select(vec!["tell", "ask", "ask", "trigger", "", "tell/", "ASK"]);
    let query = prop_oneof![
        Just(String::new()),
        duration_text().prop_map(|t| {
            let enc: String = t.bytes().map(|b| format!("%{b:02X}")).collect();
            format!("?timeout={enc}")
        }),
        Just("?timeout=%FF%FE".to_string()),
        Just("?timeout=1s&timeout=2s".to_string()),
        Just("?timeout".to_string()),
        Just("?&&=&".to_string()),
    ];
    prop_oneof![
        8 => (segment(), segment(), verb, query)
            .prop_map(|(ns, name, verb, q)| format!("/v1/namespaces/{ns}/actors/{name}/{verb}{q}")),
        1 => prop::sample::select(vec![
            "/livez", "/readyz", "/startupz", "/metrics", "/", "//", "/v1", "/v1/namespaces//actors//ask",
        ])
        .prop_map(str::to_string),
        1 => prop::collection::vec(segment(), 0..6).prop_map(|s| format!("/{}", s.join("/"))),
    ]
}

/// A JSON value of any shape, from a small tree.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 4.0)),
        any_text(12).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any_text(6), inner), 0..6)
                .prop_map(|kv| Value::Object(Map::from_iter(kv))),
        ]
    })
}

/// One byte over the body limit, shared by the cases that send it.
static BIG: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| Bytes::from(vec![b' '; MAX_BODY + 1]));

/// A request body: valid JSON (kept for the echo check), damaged JSON, arbitrary bytes, JSON
/// nested past the parser's limit, or (rarely) one byte over the size limit.
fn body() -> impl Strategy<Value = (Bytes, Option<Value>)> {
    prop_oneof![
        40 => json_value().prop_map(|v| (serde_json::to_vec(&v).unwrap().into(), Some(v))),
        20 => (json_value(), any::<prop::sample::Index>(), 0usize..4).prop_map(|(v, at, how)| {
            let mut b = serde_json::to_vec(&v).unwrap();
            let i = at.index(b.len() + 1);
            match how {
                0 => b.truncate(i),
                1 => b.insert(i.min(b.len()), b'"'),
                2 => b.insert(i.min(b.len()), 0xFF),
                _ => b.insert(i.min(b.len()), b'{'),
            }
            (b.into(), None)
        }),
        20 => prop::collection::vec(any::<u8>(), 0..256).prop_map(|b| (b.into(), None)),
        5 => (100usize..400).prop_map(|n| {
            (format!("{}1{}", "[".repeat(n), "]".repeat(n)).into(), None)
        }),
        5 => prop::sample::select(vec![
            "1e999", "-1e999", "NaN", "Infinity", "18446744073709551616", "-0", "\"\\ud800\"",
            "\"\\u0000\"", "{\"a\":1,\"a\":2}", "", " ", "nul", "[1,]", "{\"a\"}", "\u{FEFF}1",
        ])
        .prop_map(|s| (Bytes::from_static(s.as_bytes()), None)),
        1 => Just((BIG.clone(), None)),
    ]
}

/// Header values a client may send, valid or not; invalid ones are left out of the request.
fn headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let auth = prop_oneof![
        6 => Just(format!("Bearer {TOKEN}").into_bytes()),
        1 => Just(format!("Bearer {TOKEN} ").into_bytes()),
        1 => Just(format!("bearer {TOKEN}").into_bytes()),
        1 => Just(format!("Bearer  {TOKEN}").into_bytes()),
        1 => Just(b"Bearer t0k3".to_vec()),
        1 => Just(b"Basic dDBrM246".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..20),
    ];
    let one = prop_oneof![
        4 => auth.prop_map(|v| ("authorization", v)),
        1 => prop::sample::select(vec!["application/json", "text/plain", "", "application/json; charset=utf-16"])
            .prop_map(|v| ("content-type", v.as_bytes().to_vec())),
        1 => Just(("x-troupe-forwarded", b"1".to_vec())),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(|v| ("x-anything", v)),
    ];
    prop::collection::vec(one, 0..4)
}

struct Case {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Bytes,
    json: Option<Value>,
}

fn request() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![
            "POST", "POST", "POST", "POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS",
        ]),
        path_and_query(),
        headers(),
        body(),
    )
        .prop_map(|(method, path, headers, (body, json))| Case {
            method,
            path,
            headers,
            body,
            json,
        })
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(200).collect();
        write!(
            f,
            "{} {} {:?} body({} bytes) {body:?}",
            self.method,
            self.path,
            self.headers,
            self.body.len()
        )
    }
}

/// A worker's API over a host with an echo actor and a paused one, ready and started.
async fn app() -> Router {
    let host = Host::start(HostConfig::default(), builtin::registry(), Metrics::new())
        .await
        .unwrap();
    let spec = |paused: bool| {
        serde_json::from_value(json!({"pool": "p", "behavior": "echo", "paused": paused})).unwrap()
    };
    host.upsert(ActorKey::new("ns", "echo"), spec(false), Some(1))
        .await;
    host.upsert(ActorKey::new("ns", "paused"), spec(true), Some(1))
        .await;
    router(Arc::new(ApiState {
        host,
        token: Some(TOKEN.into()),
        forwarder: Arc::new(Forwarder::new(None, None, "me".into())),
        started: true.into(),
        ready: true.into(),
    }))
}

/// Statuses the API answers with (see `api.rs`), and axum's own for unknown routes and
/// methods and for path or query text it cannot decode.
const STATUSES: &[u16] = &[200, 202, 400, 401, 404, 405, 409, 413, 429, 503, 504];

#[test]
fn worker_api_never_panics_and_answers_hostile_requests_with_its_statuses() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(app());
    let mut runner = TestRunner::new(config());
    let result = runner.run(&request(), |case| {
        let mut req = Request::builder().method(case.method).uri(&case.path);
        for (name, value) in &case.headers {
            if let Ok(v) = axum::http::HeaderValue::from_bytes(value) {
                req = req.header(*name, v);
            }
        }
        let req = req.body(Body::from(case.body.clone())).expect("a valid request");
        let (status, body) = rt.block_on(async {
            // A request that hangs is a failure too.
            let resp = tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(req))
                .await
                .expect("the API answers within 10 s")
                .expect("the router is infallible");
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
            (status, bytes)
        });
        prop_assert!(STATUSES.contains(&status.as_u16()), "{}", status);
        let authorized = case
            .headers
            .iter()
            .find(|(n, v)| *n == "authorization" && axum::http::HeaderValue::from_bytes(v).is_ok())
            .is_some_and(|(_, v)| v == format!("Bearer {TOKEN}").as_bytes());
        let message_route = case.path.starts_with("/v1/");
        if message_route && status.is_success() {
            prop_assert!(authorized, "answered {} without the token", status);
        }
        // (A HEAD answer has no body.)
        if status == StatusCode::UNAUTHORIZED && case.method != "HEAD" {
            let err: Value = serde_json::from_slice(&body).expect("a JSON error");
            prop_assert!(err["error"].is_string());
        }
        // Echo answers exactly what it was asked (within its default 5 s timeout).
        if case.method == "POST"
            && authorized
            && case.path == "/v1/namespaces/ns/actors/echo/ask"
            && let Some(sent) = &case.json
        {
            prop_assert_eq!(status, StatusCode::OK);
            let got: Value = serde_json::from_slice(&body).expect("JSON back");
            prop_assert_eq!(&got, sent);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
