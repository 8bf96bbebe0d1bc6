//! The default worker's behaviours: for examples, tests and rollout drills.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::behavior::{ActorError, Behavior, Context, Registry};

/// A registry with every built-in behaviour: echo, counter, scheduled, pipeline-stage, flaky.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register("echo", |_| Ok(Box::new(Echo)));
    r.register("counter", |init| {
        let start = match init.config.get("start") {
            None => 0,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| ActorError::new("counter: config.start must be an integer"))?,
        };
        let latency = match init.config.get("latencyMs") {
            None => Duration::ZERO,
            Some(v) => latency("counter", v.as_f64())?,
        };
        Ok(Box::new(Counter {
            value: start,
            latency,
        }))
    });
    r.register("scheduled", |_| Ok(Box::new(Scheduled::default())));
    r.register("pipeline-stage", |init| {
        Ok(Box::new(PipelineStage::from_config(init.config)?))
    });
    r.register("flaky", |init| {
        Ok(Box::new(Flaky::from_config(init.config, |k| {
            std::env::var(k).ok()
        })?))
    });
    r.register("witness", |init| {
        Ok(Box::new(crate::witness::Witness::start(init, |k| {
            std::env::var(k).ok()
        })?))
    });
    r
}

/// Answers with what it was sent.
pub struct Echo;

#[async_trait::async_trait]
impl Behavior for Echo {
    async fn handle(&mut self, _: &Context, msg: Value) -> Result<Value, ActorError> {
        Ok(msg)
    }
}

/// Keeps a count. A number adds itself, `{"add": n}` adds n, anything else reads; every message
/// answers `{"value": n}`. Config: `start` (default 0), and `latencyMs`, how long each message
/// takes (default 0: a slow actor, for demos and for pausing a worker in the middle of a
/// message).
pub struct Counter {
    pub value: i64,
    pub latency: Duration,
}

#[async_trait::async_trait]
impl Behavior for Counter {
    async fn handle(&mut self, _: &Context, msg: Value) -> Result<Value, ActorError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let add = msg.as_i64().or_else(|| msg.get("add").and_then(Value::as_i64));
        if let Some(n) = add {
            self.value = self
                .value
                .checked_add(n)
                .ok_or_else(|| ActorError::new("counter overflow"))?;
        }
        Ok(json!({ "value": self.value }))
    }

    async fn tick(&mut self, _: &Context) -> Result<(), ActorError> {
        self.value = self
            .value
            .checked_add(1)
            .ok_or_else(|| ActorError::new("counter overflow"))?;
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Value>, ActorError> {
        Ok(Some(json!({ "value": self.value })))
    }

    fn restore(&mut self, state: Value) -> Result<(), ActorError> {
        self.value = state["value"]
            .as_i64()
            .ok_or_else(|| ActorError::new(format!("counter: a state without an integer value: {state}")))?;
        Ok(())
    }
}

/// Counts its ticks; any message answers `{"ticks": n, "lastTick": time}`.
#[derive(Default)]
pub struct Scheduled {
    ticks: u64,
    last: Option<String>,
}

#[async_trait::async_trait]
impl Behavior for Scheduled {
    async fn handle(&mut self, _: &Context, _: Value) -> Result<Value, ActorError> {
        Ok(json!({ "ticks": self.ticks, "lastTick": self.last }))
    }

    async fn tick(&mut self, _: &Context) -> Result<(), ActorError> {
        self.ticks += 1;
        self.last = Some(chrono::Utc::now().to_rfc3339());
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Value>, ActorError> {
        Ok(Some(json!({ "ticks": self.ticks, "lastTick": self.last })))
    }

    fn restore(&mut self, state: Value) -> Result<(), ActorError> {
        self.ticks = state["ticks"]
            .as_u64()
            .ok_or_else(|| ActorError::new(format!("scheduled: a state without a tick count: {state}")))?;
        self.last = state["lastTick"].as_str().map(str::to_string);
        Ok(())
    }
}

/// One stage of a content pipeline. Items sent to it (`{"items": [...]}`) wait in its buffer; on
/// each tick it hands its output to `config.next`: a `generate` stage drafts `batch` new items, a
/// stage with `keep` passes on the best `keep` buffered items, and the last stage (no `next`)
/// publishes what it holds. Any other message answers its counters.
/// The most items a stage drafts or keeps per tick, and holds waiting: a config or a sender
/// cannot make one actor take the worker's memory.
pub const PIPELINE_MAX_ITEMS: usize = 10_000;

pub struct PipelineStage {
    stage: String,
    next: Option<String>,
    batch: usize,
    keep: Option<usize>,
    buffer: Vec<Value>,
    produced: u64,
    published: u64,
    runs: u64,
}

impl PipelineStage {
    fn from_config(config: &Map<String, Value>) -> Result<Self, ActorError> {
        let stage = config
            .get("stage")
            .and_then(Value::as_str)
            .ok_or_else(|| ActorError::new("pipeline-stage: config.stage (a string) is required"))?
            .to_string();
        let count = |k: &str| match config.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= PIPELINE_MAX_ITEMS as u64)
                .map(|n| Some(n as usize))
                .ok_or_else(|| {
                    ActorError::new(format!(
                        "pipeline-stage: config.{k} must be an integer from 0 to {PIPELINE_MAX_ITEMS}"
                    ))
                }),
        };
        Ok(Self {
            stage,
            next: config.get("next").and_then(Value::as_str).map(str::to_string),
            batch: count("batch")?.unwrap_or(3),
            keep: count("keep")?,
            buffer: Vec::new(),
            produced: 0,
            published: 0,
            runs: 0,
        })
    }
}

#[async_trait::async_trait]
impl Behavior for PipelineStage {
    async fn handle(&mut self, _: &Context, msg: Value) -> Result<Value, ActorError> {
        if let Some(items) = msg.get("items").and_then(Value::as_array) {
            if self.buffer.len() + items.len() > PIPELINE_MAX_ITEMS {
                return Err(ActorError::new(format!(
                    "pipeline-stage: {} items would exceed the buffer of {PIPELINE_MAX_ITEMS} (it holds {})",
                    items.len(),
                    self.buffer.len()
                )));
            }
            self.buffer.extend(items.iter().cloned());
        }
        Ok(json!({
            "stage": self.stage, "buffered": self.buffer.len(), "produced": self.produced,
            "published": self.published, "runs": self.runs
        }))
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), ActorError> {
        self.runs += 1;
        let output: Vec<Value> = if self.stage == "generate" {
            (0..self.batch)
                .map(|i| json!({"id": format!("{}-{}-{i}", ctx.name, self.runs), "score": (self.runs.wrapping_mul(7).wrapping_add(i as u64 * 13)) % 100}))
                .collect()
        } else {
            let mut items = std::mem::take(&mut self.buffer);
            items.sort_by_key(|i| std::cmp::Reverse(i["score"].as_u64().unwrap_or(0)));
            if let Some(k) = self.keep {
                items.truncate(k);
            }
            items
        };
        self.produced += output.len() as u64;
        match &self.next {
            Some(next) if !output.is_empty() => {
                ctx.tell(next, json!({"items": output, "from": self.stage})).await
            }
            Some(_) => Ok(()),
            None => {
                self.published += output.len() as u64;
                tracing::info!(stage = %self.stage, published = output.len(), "published");
                Ok(())
            }
        }
    }

    fn snapshot(&self) -> Result<Option<Value>, ActorError> {
        Ok(Some(json!({
            "buffer": self.buffer, "produced": self.produced,
            "published": self.published, "runs": self.runs
        })))
    }

    fn restore(&mut self, state: Value) -> Result<(), ActorError> {
        let bad = || ActorError::new(format!("pipeline-stage: a state that is not one: {state:.200}"));
        let buffer = state["buffer"].as_array().ok_or_else(bad)?;
        if buffer.len() > PIPELINE_MAX_ITEMS {
            return Err(ActorError::new(format!(
                "pipeline-stage: a state of {} buffered items; at most {PIPELINE_MAX_ITEMS}",
                buffer.len()
            )));
        }
        let count = |k: &str| state[k].as_u64().ok_or_else(bad);
        (self.produced, self.published, self.runs) =
            (count("produced")?, count("published")?, count("runs")?);
        self.buffer = buffer.clone();
        Ok(())
    }
}

/// Fails and slows down on demand, to prove rollouts and rollbacks. `config.failureRate` (0–1),
/// `config.latencyMs`, `config.panicRate` (0–1: the actor crashes); the pod's env
/// `TROUPE_FLAKY_FAILURE_RATE`, `TROUPE_FLAKY_LATENCY_MS` and `TROUPE_FLAKY_PANIC_RATE` override
/// them, so a new revision can be made bad through its template. `TROUPE_FLAKY_FAIL_AFTER` (a
/// duration such as `10s`) makes failures and panics start only once this worker has hosted flaky
/// actors that long: a revision that goes bad some time after its rollout, as real ones do.
pub struct Flaky {
    pub failure_rate: f64,
    pub latency: Duration,
    pub panic_rate: f64,
    /// Before this instant the actor behaves.
    pub good_until: Option<std::time::Instant>,
}

/// When this process first built a flaky actor.
static FLAKY_SINCE: std::sync::LazyLock<std::time::Instant> =
    std::sync::LazyLock::new(std::time::Instant::now);

/// The longest delay `flaky` or `counter` adds to a message: a minute, longer than any ask waits.
pub const MAX_LATENCY_MS: f64 = 60_000.0;

/// A configured per-message delay in milliseconds, refused outside 0..[`MAX_LATENCY_MS`] (or
/// when it is not a number) with a message naming the behaviour.
fn latency(behavior: &str, ms: Option<f64>) -> Result<Duration, ActorError> {
    match ms {
        Some(ms) if (0.0..=MAX_LATENCY_MS).contains(&ms) => Ok(Duration::from_millis(ms as u64)),
        _ => Err(ActorError::new(format!(
            "{behavior}: latencyMs must be a number within 0..{MAX_LATENCY_MS}"
        ))),
    }
}

impl Flaky {
    pub fn from_config(
        config: &Map<String, Value>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ActorError> {
        let read = |key: &str, var: &str| -> Result<f64, ActorError> {
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                return v
                    .parse()
                    .map_err(|_| ActorError::new(format!("flaky: env {var}={v:?} is not a number")));
            }
            match config.get(key) {
                None => Ok(0.0),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| ActorError::new(format!("flaky: config.{key} must be a number"))),
            }
        };
        let rate = |key: &str, var: &str| {
            let r = read(key, var)?;
            if (0.0..=1.0).contains(&r) {
                Ok(r)
            } else {
                Err(ActorError::new(format!("flaky: {key} must be within 0..1")))
            }
        };
        Ok(Self {
            failure_rate: rate("failureRate", "TROUPE_FLAKY_FAILURE_RATE")?,
            latency: latency("flaky", Some(read("latencyMs", "TROUPE_FLAKY_LATENCY_MS")?))?,
            panic_rate: rate("panicRate", "TROUPE_FLAKY_PANIC_RATE")?,
            good_until: match env("TROUPE_FLAKY_FAIL_AFTER").filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => {
                    let d = troupe_crds::duration::parse_duration(&v).map_err(|e| {
                        ActorError::new(format!("flaky: env TROUPE_FLAKY_FAIL_AFTER={v:?}: {e}"))
                    })?;
                    Some(FLAKY_SINCE.checked_add(d).ok_or_else(|| {
                        ActorError::new(format!(
                            "flaky: env TROUPE_FLAKY_FAIL_AFTER={v:?} is too far away"
                        ))
                    })?)
                }
            },
        })
    }
}

#[async_trait::async_trait]
impl Behavior for Flaky {
    async fn handle(&mut self, _: &Context, msg: Value) -> Result<Value, ActorError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.good_until.is_some_and(|t| std::time::Instant::now() < t) {
            return Ok(msg);
        }
        if self.panic_rate > 0.0 && rand::random::<f64>() < self.panic_rate {
            panic!("flaky: crashing as panicRate asked");
        }
        if self.failure_rate > 0.0 && rand::random::<f64>() < self.failure_rate {
            return Err(ActorError::new("flaky: failing as failureRate asked"));
        }
        Ok(msg)
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), ActorError> {
        self.handle(ctx, Value::Null).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::behavior::{ActorInit, Router};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, Value)>>);

    #[async_trait::async_trait]
    impl Router for Recorder {
        async fn tell(&self, _: &str, actor: &str, msg: Value) -> Result<(), ActorError> {
            self.0.lock().unwrap().push((actor.to_string(), msg));
            Ok(())
        }
    }

    fn ctx(router: Arc<Recorder>) -> Context {
        Context {
            namespace: "ns".into(),
            name: "a".into(),
            pool: "p".into(),
            revision: "r".into(),
            epoch: 1,
            router,
        }
    }

    fn build(name: &str, config: Value) -> Result<Box<dyn Behavior>, crate::behavior::BuildError> {
        let config = config.as_object().cloned().unwrap_or_default();
        registry().build(
            name,
            &ActorInit {
                namespace: "ns",
                name: "a",
                epoch: 1,
                config: &config,
            },
        )
    }

    #[tokio::test]
    async fn a_counter_keeps_its_count_from_its_configured_start() {
        let c = ctx(Arc::default());
        let mut counter = build("counter", json!({"start": 10})).unwrap();
        counter.handle(&c, json!(5)).await.unwrap();
        counter.handle(&c, json!({"add": 2})).await.unwrap();
        assert_eq!(
            counter.handle(&c, json!("get")).await.unwrap(),
            json!({"value": 17})
        );
        assert!(build("counter", json!({"start": "ten"})).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_counter_takes_its_latency_for_every_message() {
        let c = ctx(Arc::default());
        let mut counter = build("counter", json!({"latencyMs": 1500})).unwrap();
        let started = tokio::time::Instant::now();
        counter.handle(&c, json!(1)).await.unwrap();
        counter.handle(&c, json!(1)).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(3000));
        assert_eq!(counter.snapshot().unwrap(), Some(json!({"value": 2})));
    }

    #[tokio::test]
    async fn a_counter_at_its_limit_refuses_to_overflow_by_message_or_tick_and_keeps_its_value() {
        let c = ctx(Arc::default());
        let mut counter = build("counter", json!({"start": i64::MAX})).unwrap();
        let err = counter.handle(&c, json!(1)).await.unwrap_err();
        assert!(err.to_string().contains("overflow"), "{err}");
        assert!(counter.tick(&c).await.is_err());
        assert_eq!(
            counter.handle(&c, json!("get")).await.unwrap(),
            json!({ "value": i64::MAX })
        );
    }

    #[tokio::test]
    async fn built_in_behaviours_refuse_sizes_and_delays_that_would_take_the_worker() {
        for (behavior, config) in [
            (
                "pipeline-stage",
                json!({"stage": "generate", "batch": 1_000_000_000_000u64}),
            ),
            ("pipeline-stage", json!({"stage": "rank", "keep": 10_001})),
            ("flaky", json!({"latencyMs": 1e300})),
            ("flaky", json!({"latencyMs": -5})),
            ("counter", json!({"latencyMs": 3_600_000})),
            ("counter", json!({"latencyMs": "slow"})),
        ] {
            let err = build(behavior, config.clone()).err().expect("refused");
            assert!(err.to_string().contains("must be"), "{config}: {err}");
        }
        let c = ctx(Arc::default());
        let mut stage = build("pipeline-stage", json!({"stage": "rank"})).unwrap();
        let items: Vec<_> = (0..PIPELINE_MAX_ITEMS).map(|i| json!({"score": i})).collect();
        stage.handle(&c, json!({ "items": items })).await.unwrap();
        let err = stage
            .handle(&c, json!({"items": [{"score": 1}]}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("exceed the buffer"), "{err}");
    }

    #[tokio::test]
    async fn pipeline_stages_hand_their_output_to_the_next_stage() {
        let router = Arc::new(Recorder::default());
        let c = ctx(router.clone());
        let mut generate = build(
            "pipeline-stage",
            json!({"stage": "generate", "next": "curate", "batch": 5}),
        )
        .unwrap();
        generate.tick(&c).await.unwrap();
        let (to, msg) = router.0.lock().unwrap().pop().unwrap();
        assert_eq!(to, "curate");
        assert_eq!(msg["items"].as_array().unwrap().len(), 5);

        let mut curate = build(
            "pipeline-stage",
            json!({"stage": "curate", "next": "post", "keep": 2}),
        )
        .unwrap();
        curate.handle(&c, msg).await.unwrap();
        curate.tick(&c).await.unwrap();
        let (to, kept) = router.0.lock().unwrap().pop().unwrap();
        assert_eq!(to, "post");
        let scores: Vec<u64> = kept["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["score"].as_u64().unwrap())
            .collect();
        assert_eq!(scores.len(), 2);
        assert!(scores[0] >= scores[1], "the best items are kept first");

        let mut post = build("pipeline-stage", json!({"stage": "post"})).unwrap();
        post.handle(&c, kept).await.unwrap();
        post.tick(&c).await.unwrap();
        assert_eq!(post.handle(&c, json!({})).await.unwrap()["published"], 2);
        assert!(build("pipeline-stage", json!({})).is_err(), "stage is required");
    }

    #[test]
    fn flaky_reads_its_rates_from_the_pod_env_before_its_config() {
        let config = json!({"failureRate": 0.1, "latencyMs": 5})
            .as_object()
            .cloned()
            .unwrap();
        let f = Flaky::from_config(&config, |_| None).unwrap();
        assert_eq!((f.failure_rate, f.latency), (0.1, Duration::from_millis(5)));
        let f = Flaky::from_config(&config, |k| {
            (k == "TROUPE_FLAKY_FAILURE_RATE").then(|| "0.9".to_string())
        })
        .unwrap();
        assert_eq!(f.failure_rate, 0.9);
        assert!(
            Flaky::from_config(&json!({"failureRate": 2}).as_object().cloned().unwrap(), |_| None).is_err()
        );
    }

    #[tokio::test]
    async fn flaky_fails_every_message_at_rate_one() {
        let c = ctx(Arc::default());
        let mut f = build("flaky", json!({"failureRate": 1.0})).unwrap();
        assert!(f.handle(&c, json!(1)).await.is_err());
    }

    #[tokio::test]
    async fn flaky_behaves_until_its_fail_after_delay_has_passed() {
        let c = ctx(Arc::default());
        let config = json!({"failureRate": 1.0}).as_object().cloned().unwrap();
        let env = |d: &'static str| move |k: &str| (k == "TROUPE_FLAKY_FAIL_AFTER").then(|| d.to_string());
        let mut later = Flaky::from_config(&config, env("1h")).unwrap();
        assert!(later.handle(&c, json!(1)).await.is_ok());
        let mut now = Flaky::from_config(&config, env("0s")).unwrap();
        assert!(now.handle(&c, json!(1)).await.is_err());
        assert!(Flaky::from_config(&config, env("soon")).is_err());
    }

    #[test]
    fn an_unknown_behavior_names_the_known_ones() {
        let err = build("nope", json!({})).err().unwrap();
        assert_eq!(err.reason(), "UnknownBehavior");
        assert!(
            err.to_string()
                .contains("counter, echo, flaky, pipeline-stage, scheduled"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn stateful_built_ins_carry_their_state_to_a_new_activation_and_refuse_a_foreign_one() {
        let c = ctx(Arc::default());
        let mut counter = build("counter", json!({"start": 10})).unwrap();
        counter.handle(&c, json!(7)).await.unwrap();
        let state = counter.snapshot().unwrap().expect("a counter keeps state");
        let mut next = build("counter", json!({"start": 0})).unwrap();
        next.restore(state).unwrap();
        assert_eq!(next.handle(&c, json!("get")).await.unwrap(), json!({"value": 17}));
        assert!(next.restore(json!({"value": "seventeen"})).is_err());

        let mut stage = build("pipeline-stage", json!({"stage": "rank", "keep": 1})).unwrap();
        stage
            .handle(&c, json!({"items": [{"score": 3}, {"score": 9}]}))
            .await
            .unwrap();
        let state = stage.snapshot().unwrap().unwrap();
        let mut next = build("pipeline-stage", json!({"stage": "rank", "keep": 1})).unwrap();
        next.restore(state.clone()).unwrap();
        assert_eq!(next.snapshot().unwrap().unwrap(), state);
        let too_many: Vec<_> = (0..=PIPELINE_MAX_ITEMS).map(|i| json!({"score": i})).collect();
        let err = next
            .restore(json!({"buffer": too_many, "produced": 0, "published": 0, "runs": 0}))
            .unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");

        let echo = build("echo", json!({})).unwrap();
        assert_eq!(
            echo.snapshot().unwrap(),
            None,
            "a stateless behaviour keeps nothing"
        );
    }
}
