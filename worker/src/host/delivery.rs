//! Delivering messages: admission (is the actor here and taking messages), the bounded
//! mailbox, waking the actor, asks with their deadline, and `ctx.tell` between actors.

use super::*;

impl Host {
    pub(super) fn admit(&self, key: &ActorKey) -> Result<Arc<Slot>, DeliveryError> {
        let slot = self
            .slot(key)
            .ok_or_else(|| DeliveryError::NotHere(key.clone()))?;
        self.check(&slot)?;
        Ok(slot)
    }

    pub(super) fn wake(&self, slot: &Arc<Slot>, pushed: Pushed) {
        if pushed.dropped_oldest {
            let behavior = self.behavior_label(&slot.lock().spec.behavior);
            self.metrics
                .messages
                .with_label_values(&[&self.config.pool, &self.config.revision, &behavior, "dropped"])
                .inc();
        }
        if pushed.wake {
            let mut s = slot.lock();
            match s.actor.clone() {
                Some(actor) => {
                    let _ = actor.cast(HostedMsg::Wake);
                }
                None if s.parked.is_some() => {
                    self.activate(slot, &mut s);
                }
                // Restarting: the next start finds the messages waiting.
                None => {}
            }
        }
    }

    pub(super) fn rejected(&self, slot: &Slot, e: SendError) -> DeliveryError {
        let behavior = self.behavior_label(&slot.lock().spec.behavior);
        self.metrics
            .messages
            .with_label_values(&[&self.config.pool, &self.config.revision, &behavior, "rejected"])
            .inc();
        match e {
            // It left this worker between the lookup and the push: as if not found here.
            SendError::Closed
                if self
                    .slot(&slot.key)
                    .is_none_or(|now| !std::ptr::eq(now.as_ref(), slot)) =>
            {
                DeliveryError::NotHere(slot.key.clone())
            }
            SendError::Closed => DeliveryError::Unavailable {
                key: slot.key.clone(),
                why: e.to_string(),
            },
            full => DeliveryError::Full {
                key: slot.key.clone(),
                source: full,
            },
        }
    }

    /// A handle on a hosted actor, for senders that send it many messages (no lookup per send).
    pub fn handle(&self, key: &ActorKey) -> Option<ActorHandle> {
        Some(ActorHandle {
            slot: self.slot(key)?,
            host: self.me.upgrade()?,
        })
    }

    /// Sends a message without waiting for an answer; with persistence EveryMessage, returns
    /// once the message was handled and its state change committed.
    pub async fn tell(&self, key: &ActorKey, body: Value) -> Result<(), DeliveryError> {
        let slot = self.admit(key)?;
        self.tell_slot(&slot, body).await
    }

    /// Puts a message in the actor's mailbox and returns: `ctx.tell` between actors, which must
    /// not wait for another actor's commit inside a message of its own (two actors telling each
    /// other would wait for each other).
    pub(super) async fn enqueue(&self, key: &ActorKey, body: Value) -> Result<(), DeliveryError> {
        let slot = self.admit(key)?;
        self.push(&slot, body, None, false).await
    }

    /// Puts one message in the slot's mailbox (with where its answer goes, if anywhere) and
    /// wakes the actor; a refusal is counted.
    async fn push(
        &self,
        slot: &Arc<Slot>,
        body: Value,
        reply: Option<oneshot::Sender<crate::mailbox::Reply>>,
        ack: bool,
    ) -> Result<(), DeliveryError> {
        let env = Envelope {
            body,
            reply,
            ack,
            enqueued: Instant::now(),
            trace: crate::trace::current().map(Into::into),
        };
        match slot.mailbox.push(env).await {
            Ok(p) => {
                self.wake(slot, p);
                Ok(())
            }
            Err(e) => Err(self.rejected(slot, e)),
        }
    }

    /// Whether the actor takes messages now: not paused, failed or pending, and the worker can
    /// prove its lease (a message accepted by a fenced worker could only be lost).
    pub(super) fn check(&self, slot: &Slot) -> Result<(), DeliveryError> {
        let s = slot.lock();
        match s.phase {
            ActorPhase::Paused => Err(DeliveryError::Paused(slot.key.clone())),
            ActorPhase::Failed | ActorPhase::Pending => Err(DeliveryError::Unavailable {
                key: slot.key.clone(),
                why: format!("{:?}: {}", s.phase, s.ready_reason.1),
            }),
            _ if self.is_fenced() || !self.config.lease.is_live() => Err(DeliveryError::Unavailable {
                key: slot.key.clone(),
                why: "the worker cannot prove its lease right now".into(),
            }),
            // Accepted now, it could be neither committed nor refused: refused until it answers.
            _ if s.store_down.is_some() => Err(DeliveryError::Unavailable {
                key: slot.key.clone(),
                why: format!(
                    "the state store is unavailable: {}",
                    s.store_down.as_deref().unwrap_or_default()
                ),
            }),
            _ => Ok(()),
        }
    }

    pub(super) async fn tell_slot(&self, slot: &Arc<Slot>, body: Value) -> Result<(), DeliveryError> {
        if self.config.persistence == PersistenceMode::EveryMessage && self.store().is_some() {
            return self.tell_committed(slot, body).await;
        }
        self.push(slot, body, None, false).await
    }

    /// A tell answered once its state change is committed (EveryMessage).
    async fn tell_committed(&self, slot: &Arc<Slot>, body: Value) -> Result<(), DeliveryError> {
        let key = &slot.key;
        let (tx, rx) = oneshot::channel();
        self.push(slot, body, Some(tx), true).await?;
        match tokio::time::timeout(self.config.commit_timeout, rx).await {
            Err(_) => Err(DeliveryError::Timeout(key.clone())),
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(why))) => Err(DeliveryError::Unavailable {
                key: key.clone(),
                why,
            }),
            Ok(Err(_)) => Err(DeliveryError::Unavailable {
                key: key.clone(),
                why: "the actor stopped before the message was committed".into(),
            }),
        }
    }

    /// Sends a message and waits for the answer, up to `timeout`.
    pub async fn ask(&self, key: &ActorKey, body: Value, timeout: Duration) -> Result<Value, DeliveryError> {
        let slot = self.admit(key)?;
        self.ask_slot(&slot, body, timeout).await
    }

    pub(super) async fn ask_slot(
        &self,
        slot: &Arc<Slot>,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, DeliveryError> {
        let key = &slot.key;
        let (tx, rx) = oneshot::channel();
        self.push(slot, body, Some(tx), false).await?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(DeliveryError::Timeout(key.clone())),
            Ok(Err(_)) => Err(DeliveryError::Failed {
                key: key.clone(),
                why: "the actor stopped before answering".into(),
            }),
            Ok(Ok(Err(why))) => Err(DeliveryError::Failed {
                key: key.clone(),
                why,
            }),
            Ok(Ok(Ok(v))) => Ok(v),
        }
    }
}

/// `ctx.tell` of actors: local actors directly, others through the worker's router.
pub(super) struct HostRouter {
    pub(super) host: Weak<Host>,
}

#[async_trait::async_trait]
impl Router for HostRouter {
    async fn tell(
        &self,
        namespace: &str,
        actor: &str,
        msg: Value,
    ) -> Result<(), crate::behavior::ActorError> {
        let host = self
            .host
            .upgrade()
            .ok_or_else(|| crate::behavior::ActorError::new("the worker is shutting down"))?;
        let key = ActorKey::new(namespace, actor);
        if host.is_hosted(&key) {
            return host
                .enqueue(&key, msg)
                .await
                .map_err(|e| crate::behavior::ActorError::new(e.to_string()));
        }
        let router = host.router.read().unwrap_or_else(|e| e.into_inner()).clone();
        match router {
            Some(r) => r.tell(namespace, actor, msg).await,
            None => Err(crate::behavior::ActorError::new(format!(
                "actor {key} is not hosted here and this worker has no route to other workers"
            ))),
        }
    }
}
