//! `rate-limiter`: a token bucket per actor. Each message asks for tokens (`{"take": n}`, or
//! anything else for one) and is answered `{"allowed": bool, "tokens": <left>}`; the bucket
//! holds `capacity` tokens and gains `refillPerSecond` of them per second.
//!
//! Actor config: `{"capacity": 10, "refillPerSecond": 2.5}` (capacity ≥ 1, refill ≥ 0; a refill
//! of 0 gives a fixed allowance). The bucket is the actor's state: it is kept while the actor
//! runs on a worker and starts full when the actor starts again elsewhere.

use serde_json::{Value, json};
use tokio::time::Instant;
use troupe_worker::behavior::{ActorError, ActorInit, Behavior, Context};

pub struct RateLimiter {
    capacity: f64,
    refill_per_second: f64,
    tokens: f64,
    refilled_at: Instant,
}

/// The factory the registry calls with each actor's config; a bad config is refused here, so the
/// actor's status says `InvalidConfig` with this message instead of the actor misbehaving later.
pub fn build(init: &ActorInit<'_>) -> Result<Box<dyn Behavior>, ActorError> {
    Ok(Box::new(RateLimiter::from_config(init.config)?))
}

impl RateLimiter {
    pub fn from_config(config: &serde_json::Map<String, Value>) -> Result<Self, ActorError> {
        let number = |key: &str, default: f64| match config.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| ActorError::new(format!("rate-limiter: config.{key} must be a number"))),
        };
        let capacity = number("capacity", 10.0)?;
        let refill_per_second = number("refillPerSecond", 1.0)?;
        if !(1.0..=1e9).contains(&capacity) {
            return Err(ActorError::new(
                "rate-limiter: config.capacity must be between 1 and 1e9",
            ));
        }
        if !(0.0..=1e9).contains(&refill_per_second) {
            return Err(ActorError::new(
                "rate-limiter: config.refillPerSecond must be between 0 and 1e9",
            ));
        }
        Ok(Self {
            capacity,
            refill_per_second,
            tokens: capacity,
            refilled_at: Instant::now(),
        })
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let gained = now.duration_since(self.refilled_at).as_secs_f64() * self.refill_per_second;
        self.tokens = (self.tokens + gained).min(self.capacity);
        self.refilled_at = now;
    }
}

#[async_trait::async_trait]
impl Behavior for RateLimiter {
    async fn handle(&mut self, _ctx: &Context, msg: Value) -> Result<Value, ActorError> {
        let take = match msg.get("take") {
            None => 1.0,
            Some(v) => match v.as_f64() {
                Some(n) if n > 0.0 => n,
                _ => return Err(ActorError::new("rate-limiter: take must be a positive number")),
            },
        };
        self.refill();
        let allowed = self.tokens >= take;
        if allowed {
            self.tokens -= take;
        }
        Ok(json!({"allowed": allowed, "tokens": self.tokens.floor()}))
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;

    struct NoRouter;

    #[async_trait::async_trait]
    impl troupe_worker::behavior::Router for NoRouter {
        async fn tell(&self, _: &str, _: &str, _: Value) -> Result<(), ActorError> {
            Err(ActorError::new("no other actors in a unit test"))
        }
    }

    fn ctx() -> Context {
        Context {
            namespace: "ns".into(),
            name: "limiter".into(),
            pool: "p".into(),
            revision: "r".into(),
            epoch: 0,
            router: Arc::new(NoRouter),
        }
    }

    fn limiter(config: Value) -> Result<RateLimiter, ActorError> {
        RateLimiter::from_config(config.as_object().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_allows_its_capacity_then_refuses_until_it_refills() {
        let mut l = limiter(json!({"capacity": 3, "refillPerSecond": 1})).unwrap();
        for left in [2, 1, 0] {
            assert_eq!(
                l.handle(&ctx(), json!({})).await.unwrap(),
                json!({"allowed": true, "tokens": left as f64})
            );
        }
        assert_eq!(l.handle(&ctx(), json!({})).await.unwrap()["allowed"], false);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            l.handle(&ctx(), json!({"take": 2})).await.unwrap(),
            json!({"allowed": true, "tokens": 0.0})
        );
    }

    #[test]
    fn a_config_out_of_range_or_of_the_wrong_type_is_refused_by_name() {
        for (config, named) in [
            (json!({"capacity": 0}), "config.capacity"),
            (json!({"capacity": "ten"}), "config.capacity"),
            (json!({"refillPerSecond": -1}), "config.refillPerSecond"),
        ] {
            let err = limiter(config.clone()).err().unwrap();
            assert!(err.0.contains(named), "{config}: {err}");
        }
        assert!(limiter(json!({})).is_ok(), "every key has a default");
    }

    #[tokio::test]
    async fn a_take_that_is_not_a_positive_number_is_an_error_and_takes_nothing() {
        let mut l = limiter(json!({"capacity": 1, "refillPerSecond": 0})).unwrap();
        assert!(l.handle(&ctx(), json!({"take": -1})).await.is_err());
        assert_eq!(l.handle(&ctx(), json!("go")).await.unwrap()["allowed"], true);
    }
}
