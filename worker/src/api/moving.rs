//! Messages for a moving actor wait at the worker that received them (Akka's handoff buffer,
//! at the entry): between the moment an actor's worker lets it go (it stops taking messages,
//! handles the ones it accepted, hands its state over) and the moment the next worker runs it,
//! nobody may accept a message for it. Rather than answering 503, the receiving worker looks
//! again, with a growing pause, until the next worker takes the message or [`MoveBuffer::wait`]
//! runs out; at most [`MoveBuffer::capacity`] messages wait at once on a worker (the others get
//! the 503 at once). A tell is answered 202 only once the actor's worker put it in its mailbox,
//! so a planned move neither loses nor doubles a tell answered 202.
//!
//! Only answers that are safe to retry are waited on: the actor has no worker yet, its worker is
//! this one and the actor is not here yet, its worker's Lease is gone, the worker named
//! answered that it does not have it (marked [`MOVING`]), or no connection could be made (the
//! request was not sent). A timeout or a reset after sending is never sent again.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::*;

/// Bounds on the messages that wait for moving actors on one worker.
pub struct MoveBuffer {
    /// How long one message waits for the actor's next worker.
    pub wait: Duration,
    /// How many messages may wait at once.
    pub capacity: usize,
    permits: Arc<Semaphore>,
}

impl MoveBuffer {
    pub fn new(wait: Duration, capacity: usize) -> Self {
        Self {
            wait,
            capacity,
            permits: Arc::new(Semaphore::new(capacity)),
        }
    }
}

impl Default for MoveBuffer {
    /// 10 s (a planned move takes well under a second; a failover, the dead worker's lease),
    /// 1,000 messages.
    fn default() -> Self {
        Self::new(Duration::from_secs(10), 1000)
    }
}

/// The first pause before looking again, and the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_millis(250);

/// Delivers a message here or to the actor's worker, waiting while the actor moves. `here`
/// tries this worker's own host. A request that was itself forwarded is answered at once: the
/// worker that received it first does the waiting.
pub(super) async fn deliver<F, Fut>(
    state: &ApiState,
    key: &ActorKey,
    verb: &str,
    body: &[u8],
    timeout: Option<&str>,
    forwarded: bool,
    here: F,
) -> Response
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Response, DeliveryError>>,
{
    let buffer = &state.forwarder.moves;
    let until = Instant::now() + buffer.wait;
    let mut pause = FIRST_PAUSE;
    let mut held = None;
    loop {
        let resp = match here().await {
            Ok(r) => return r,
            Err(DeliveryError::NotHere(_)) if forwarded => {
                return forward::moving(format!("actor {key} is not hosted by this worker"));
            }
            Err(DeliveryError::NotHere(_)) => state.forwarder.forward(key, verb, body, timeout).await,
            Err(e) => return delivery_error(e),
        };
        if !resp.headers().contains_key(MOVING) || forwarded {
            return resp;
        }
        // Look until the wait is over, the last time at its end: giving up when the next pause
        // would pass it cut the wait short by up to a pause (seen: a 600 ms wait ended at 350 ms).
        let now = Instant::now();
        if now >= until {
            return resp;
        }
        if held.is_none() {
            match buffer.permits.clone().try_acquire_owned() {
                Ok(p) => held = Some(p),
                Err(_) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "actor {key} is moving and {} messages already wait for moving actors on this worker; retry shortly",
                            buffer.capacity
                        ),
                    );
                }
            }
            state.host.metrics().move_waits.inc();
        }
        tokio::time::sleep(pause.min(until - now)).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}
