//! Actor behaviours: what users implement, and the registry that names them.
//!
//! A behaviour is registered under a name; `Actor.spec.behavior` picks it and
//! `Actor.spec.config` is handed to its factory when the actor starts:
//!
//! ```
//! use troupe_worker::behavior::{Behavior, Context, Registry, ActorError};
//! use serde_json::{Value, json};
//!
//! struct Greeter { greeting: String }
//!
//! #[async_trait::async_trait]
//! impl Behavior for Greeter {
//!     async fn handle(&mut self, _ctx: &Context, msg: Value) -> Result<Value, ActorError> {
//!         Ok(json!(format!("{} {}", self.greeting, msg.as_str().unwrap_or("stranger"))))
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register("greeter", |init| {
//!     let greeting = init.config.get("greeting").and_then(Value::as_str).unwrap_or("hello");
//!     Ok(Box::new(Greeter { greeting: greeting.to_string() }))
//! });
//! assert!(registry.names().contains(&"greeter".to_string()));
//! ```

use std::{collections::BTreeMap, sync::Arc};

use serde_json::{Map, Value};

/// An actor's failure to handle a message or tick. Counted, reported as `lastError`, and fed to
/// the circuit breaker; it does not stop the actor (a panic does, and the restart policy applies).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ActorError(pub String);

impl ActorError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Where a behaviour can send messages to other actors (by name, in its namespace).
#[async_trait::async_trait]
pub trait Router: Send + Sync {
    async fn tell(&self, namespace: &str, actor: &str, msg: Value) -> Result<(), ActorError>;
}

/// What an actor knows about itself and its surroundings.
#[derive(Clone)]
pub struct Context {
    pub namespace: String,
    pub name: String,
    pub pool: String,
    pub revision: String,
    /// The epoch (fencing token) of the assignment this activation runs under. The operator
    /// raises it on every placement; an activation of a higher epoch always started after this
    /// one stopped. Pass it to external stores so that they can refuse writes from a stale
    /// activation. 0 when the assignment carries none (an actor placed by hand).
    pub epoch: u64,
    pub router: Arc<dyn Router>,
}

impl Context {
    /// Sends a message to another actor of the namespace, wherever it runs.
    pub async fn tell(&self, actor: &str, msg: Value) -> Result<(), ActorError> {
        self.router.tell(&self.namespace, actor, msg).await
    }
}

/// An actor type. One value per running actor; `&mut self` is its private state.
#[async_trait::async_trait]
pub trait Behavior: Send + 'static {
    /// Handles one message (tell or ask); the returned value answers an ask.
    async fn handle(&mut self, ctx: &Context, msg: Value) -> Result<Value, ActorError>;

    /// Handles a scheduled or triggered tick.
    async fn tick(&mut self, ctx: &Context) -> Result<(), ActorError> {
        let _ = ctx;
        Ok(())
    }

    /// The actor's state to carry to its next activation (a move, a restart), as JSON. `None`
    /// (the default): the behaviour keeps no state, and every activation starts from its config.
    /// Called after the last message an activation handles, never during one.
    fn snapshot(&self) -> Result<Option<Value>, ActorError> {
        Ok(None)
    }

    /// Puts back a state [`Behavior::snapshot`] returned, before the first message of a new
    /// activation. An error fails the activation and leaves the state as it was for the next.
    fn restore(&mut self, state: Value) -> Result<(), ActorError> {
        let _ = state;
        Ok(())
    }
}

/// What a factory gets to build an actor.
pub struct ActorInit<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The epoch of the assignment the actor is built for (see [`Context::epoch`]).
    pub epoch: u64,
    pub config: &'a Map<String, Value>,
}

type Factory = Arc<dyn Fn(&ActorInit<'_>) -> Result<Box<dyn Behavior>, ActorError> + Send + Sync>;

/// Behaviours by name.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a behaviour under `name`.
    pub fn register<F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        F: Fn(&ActorInit<'_>) -> Result<Box<dyn Behavior>, ActorError> + Send + Sync + 'static,
    {
        self.factories.insert(name.to_string(), Arc::new(factory));
        self
    }

    pub fn names(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// Builds an actor of behaviour `name`.
    pub fn build(&self, name: &str, init: &ActorInit<'_>) -> Result<Box<dyn Behavior>, BuildError> {
        let factory = self
            .factories
            .get(name)
            .ok_or_else(|| BuildError::UnknownBehavior {
                name: name.to_string(),
                known: self.names().join(", "),
            })?;
        factory(init).map_err(|e| BuildError::InvalidConfig(e.0))
    }
}

/// Why an actor could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    #[error("unknown behavior {name:?}; this worker knows: {known}")]
    UnknownBehavior { name: String, known: String },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The state handed over by the previous worker could not be put back.
    #[error("the state handed over could not be restored: {0}")]
    Restore(String),
}

impl BuildError {
    /// The condition reason for status.
    pub fn reason(&self) -> &'static str {
        match self {
            BuildError::UnknownBehavior { .. } => "UnknownBehavior",
            BuildError::InvalidConfig(_) => "InvalidConfig",
            BuildError::Restore(_) => "RestoreFailed",
        }
    }
}
