//! A bounded mailbox in front of each actor.
//!
//! Ractor mailboxes are unbounded; a slow actor would grow one without limit. Troupe keeps each
//! actor's messages here, bounded by the pool's `mailbox.capacity`, and only wakes the Ractor
//! actor (one `Wake` message, whatever the backlog), which then drains the queue in batches.

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::sync::{Notify, oneshot};
use troupe_crds::MailboxFullPolicy;

/// The reply to an ask: the actor's answer, or why there is none.
pub type Reply = Result<Value, String>;

/// One message waiting for its actor.
#[derive(Debug)]
pub struct Envelope {
    pub body: Value,
    /// Set for an ask: where the answer goes.
    pub reply: Option<oneshot::Sender<Reply>>,
    /// A tell that waits for its state change to be committed (persistence EveryMessage):
    /// `reply` gets `Ok(null)` once committed, whatever the behaviour answered, or why not.
    pub ack: bool,
    pub enqueued: Instant,
    /// The trace the message belongs to, see [`crate::trace`]: every tell or ask taken over HTTP
    /// has one (its caller's or one it started), and so do the messages sent while handling it;
    /// a message sent in process outside any trace has none. Not boxed: a box of its own per
    /// message, allocated by the sender's thread and freed by the actor's, cost more
    /// (allocator contention between threads) than the 24 bytes [`crate::trace::Carried`] adds.
    pub trace: Option<crate::trace::Carried>,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("mailbox full ({capacity} messages waiting)")]
    Full { capacity: usize },
    #[error("mailbox closed: the actor is stopping")]
    Closed,
}

/// What a successful push means for the actor.
#[derive(Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The actor must be woken (it was idle).
    pub wake: bool,
    /// Whether an older message had to go (DropOldest).
    pub dropped_oldest: bool,
}

struct State {
    queue: VecDeque<Envelope>,
    /// A Wake is on its way or the actor is draining: no need for another.
    scheduled: bool,
    closed: bool,
}

/// A bounded queue with the pool's full policy.
pub struct Mailbox {
    state: Mutex<State>,
    capacity: usize,
    policy: MailboxFullPolicy,
    block_timeout: Duration,
    room: Notify,
}

impl Mailbox {
    pub fn new(capacity: usize, policy: MailboxFullPolicy, block_timeout: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                scheduled: false,
                closed: false,
            }),
            capacity: capacity.max(1),
            policy,
            block_timeout,
            room: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empty, and no wake on its way: the actor has nothing to do.
    pub fn is_idle(&self) -> bool {
        let s = self.lock();
        s.queue.is_empty() && !s.scheduled
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a message without waiting: Reject and Block refuse when full (Block callers use
    /// [`Mailbox::push`]), DropOldest makes room by dropping the oldest message.
    pub fn try_push(&self, env: Envelope) -> Result<Pushed, (SendError, Envelope)> {
        let mut s = self.lock();
        if s.closed {
            return Err((SendError::Closed, env));
        }
        let mut dropped_oldest = false;
        if s.queue.len() >= self.capacity {
            match self.policy {
                MailboxFullPolicy::DropOldest => {
                    if let Some(old) = s.queue.pop_front() {
                        if let Some(reply) = old.reply {
                            let _ = reply.send(Err(
                                "dropped: the mailbox was full and dropped its oldest message".into(),
                            ));
                        }
                        dropped_oldest = true;
                    }
                }
                _ => {
                    return Err((
                        SendError::Full {
                            capacity: self.capacity,
                        },
                        env,
                    ));
                }
            }
        }
        s.queue.push_back(env);
        let wake = !s.scheduled;
        s.scheduled = true;
        Ok(Pushed { wake, dropped_oldest })
    }

    /// Adds a message per the full policy; with Block, waits up to the block timeout for room.
    pub async fn push(&self, env: Envelope) -> Result<Pushed, SendError> {
        let deadline = Instant::now() + self.block_timeout;
        let mut env = env;
        loop {
            let notified = self.room.notified();
            match self.try_push(env) {
                Ok(p) => return Ok(p),
                Err((SendError::Full { capacity }, back)) if self.policy == MailboxFullPolicy::Block => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                        return Err(SendError::Full { capacity });
                    }
                    env = back;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Takes up to `max` messages for the actor. When none are left, the next push wakes it.
    pub fn take_batch(&self, max: usize, out: &mut Vec<Envelope>) {
        let mut s = self.lock();
        let n = s.queue.len().min(max);
        out.extend(s.queue.drain(..n));
        if s.queue.is_empty() {
            s.scheduled = false;
        }
        drop(s);
        if n > 0 {
            self.room.notify_waiters();
        }
    }

    /// Refuses new messages and keeps the waiting ones for the actor to handle (an actor
    /// leaving on a planned move drains them before it stops; [`Mailbox::close`] after).
    pub fn seal(&self) {
        self.lock().closed = true;
        self.room.notify_waiters();
    }

    /// Refuses further messages and fails the waiting asks.
    pub fn close(&self, why: &str) -> usize {
        let mut s = self.lock();
        s.closed = true;
        let gone = s.queue.len();
        for env in s.queue.drain(..) {
            if let Some(reply) = env.reply {
                let _ = reply.send(Err(why.to_string()));
            }
        }
        drop(s);
        self.room.notify_waiters();
        gone
    }

    /// Accepts messages again (a restarted actor keeps its mailbox).
    pub fn reopen(&self) {
        let mut s = self.lock();
        s.closed = false;
        s.scheduled = !s.queue.is_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: i64) -> Envelope {
        Envelope {
            body: Value::from(n),
            reply: None,
            ack: false,
            enqueued: Instant::now(),
            trace: None,
        }
    }

    fn drain(m: &Mailbox) -> Vec<i64> {
        let mut out = Vec::new();
        m.take_batch(usize::MAX, &mut out);
        out.iter().map(|e| e.body.as_i64().unwrap()).collect()
    }

    #[test]
    fn only_the_first_message_to_an_idle_actor_wakes_it() {
        let m = Mailbox::new(10, MailboxFullPolicy::Reject, Duration::ZERO);
        assert!(m.try_push(env(1)).unwrap().wake);
        assert!(!m.try_push(env(2)).unwrap().wake);
        assert_eq!(drain(&m), [1, 2]);
        assert!(
            m.try_push(env(3)).unwrap().wake,
            "drained to empty: the next push wakes again"
        );
    }

    #[test]
    fn reject_refuses_the_message_beyond_capacity() {
        let m = Mailbox::new(2, MailboxFullPolicy::Reject, Duration::ZERO);
        m.try_push(env(1)).unwrap();
        m.try_push(env(2)).unwrap();
        let (err, back) = m.try_push(env(3)).unwrap_err();
        assert_eq!(err, SendError::Full { capacity: 2 });
        assert_eq!(back.body, Value::from(3));
        assert_eq!(drain(&m), [1, 2]);
    }

    #[test]
    fn drop_oldest_keeps_the_newest_messages_and_fails_a_dropped_ask() {
        let m = Mailbox::new(2, MailboxFullPolicy::DropOldest, Duration::ZERO);
        let (tx, mut rx) = oneshot::channel();
        m.try_push(Envelope {
            body: Value::from(1),
            reply: Some(tx),
            ack: false,
            enqueued: Instant::now(),
            trace: None,
        })
        .unwrap();
        m.try_push(env(2)).unwrap();
        assert!(m.try_push(env(3)).unwrap().dropped_oldest);
        assert_eq!(drain(&m), [2, 3]);
        assert!(rx.try_recv().unwrap().unwrap_err().contains("dropped"));
    }

    #[tokio::test]
    async fn block_waits_for_room_then_gives_up_after_the_timeout() {
        let m = std::sync::Arc::new(Mailbox::new(
            1,
            MailboxFullPolicy::Block,
            Duration::from_millis(300),
        ));
        m.try_push(env(1)).unwrap();
        let m2 = m.clone();
        let taker = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drain(&m2)
        });
        m.push(env(2)).await.expect("room appeared within the timeout");
        assert_eq!(taker.await.unwrap(), [1]);
        let started = Instant::now();
        assert_eq!(m.push(env(3)).await, Err(SendError::Full { capacity: 1 }));
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    #[test]
    fn a_closed_mailbox_refuses_and_fails_waiting_asks() {
        let m = Mailbox::new(5, MailboxFullPolicy::Reject, Duration::ZERO);
        let (tx, mut rx) = oneshot::channel();
        m.try_push(Envelope {
            body: Value::Null,
            reply: Some(tx),
            ack: false,
            enqueued: Instant::now(),
            trace: None,
        })
        .unwrap();
        assert_eq!(m.close("stopping"), 1);
        assert_eq!(rx.try_recv().unwrap(), Err("stopping".to_string()));
        assert!(matches!(m.try_push(env(1)), Err((SendError::Closed, _))));
        m.reopen();
        assert!(m.try_push(env(1)).is_ok());
    }
}
