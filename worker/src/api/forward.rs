//! Forwarding: a message for an actor this worker does not host goes to the worker that does,
//! found through the Actor's worker label and that worker's Lease, within the forwarder's limits
//! (plain addresses of the actor's own pool only, escaped URLs, bounded answers).

use super::*;

/// Finds the worker hosting an actor (the Actor's worker label, then that worker's Lease
/// address) and passes requests on to it.
pub struct Forwarder {
    client: Option<Client>,
    http: reqwest::Client,
    token: Option<String>,
    pod: String,
    addresses: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// Fixed actor → address routes, used instead of the API (benchmarks, tests).
    static_routes: HashMap<ActorKey, String>,
    /// Messages for moving actors that wait here for the next worker (see `moving.rs`).
    pub(super) moves: super::moving::MoveBuffer,
}

/// How long a worker's address is reused before it is looked up again.
const ADDRESS_TTL: Duration = Duration::from_secs(5);

impl Forwarder {
    pub fn new(client: Option<Client>, token: Option<String>, pod: String) -> Self {
        Self {
            client,
            http: reqwest::Client::builder()
                // The longest ask, and a little more for the hop.
                .timeout(MAX_ASK_TIMEOUT + Duration::from_secs(5))
                .connect_timeout(FORWARD_CONNECT_TIMEOUT)
                // The token goes to the worker the Lease names, and nowhere it redirects to.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client builds"),
            token,
            pod,
            addresses: Mutex::new(HashMap::new()),
            static_routes: HashMap::new(),
            moves: super::moving::MoveBuffer::default(),
        }
    }

    /// How long, and how many at once, messages for a moving actor wait here for its next
    /// worker.
    pub fn with_move_buffer(mut self, wait: Duration, capacity: usize) -> Self {
        self.moves = super::moving::MoveBuffer::new(wait, capacity);
        self
    }

    /// A forwarder with fixed routes and no API access.
    pub fn with_static_routes(token: Option<String>, routes: HashMap<ActorKey, String>) -> Self {
        let mut f = Self::new(None, token, String::new());
        f.static_routes = routes;
        f
    }

    /// The pool of the Actor `key` (None without API access: fixed routes, tests), or the
    /// response saying it does not exist.
    pub async fn pool_of(&self, key: &ActorKey) -> Result<Option<String>, Response> {
        let Some(client) = &self.client else {
            return Ok(None);
        };
        let actor = Api::<Actor>::namespaced(client.clone(), &key.namespace)
            .get_opt(&key.name)
            .await
            .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("looking up actor {key}: {e}")))?
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("actor {key} does not exist")))?;
        Ok(Some(actor.spec.pool))
    }

    /// Where the actor's worker listens, or the response explaining why there is none.
    async fn locate(&self, key: &ActorKey) -> Result<String, Response> {
        if let Some(addr) = self.static_routes.get(key) {
            return Ok(addr.clone());
        }
        let Some(client) = &self.client else {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("actor {key} is not hosted by this worker"),
            ));
        };
        let actor = Api::<Actor>::namespaced(client.clone(), &key.namespace)
            .get_opt(&key.name)
            .await
            .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("looking up actor {key}: {e}")))?
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("actor {key} does not exist")))?;
        let worker = actor
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::WORKER))
            .cloned()
            .ok_or_else(|| {
                moving(format!(
                    "actor {key} is not placed on a worker yet (moving, or waiting for room)"
                ))
            })?;
        if worker == self.pod {
            return Err(moving(format!("actor {key} is moving to this worker")));
        }
        self.address_of(&key.namespace, &worker, &actor.spec.pool).await
    }

    /// Where worker `worker` of pool `pool` listens, from its Lease (cached a few seconds).
    async fn address_of(&self, namespace: &str, worker: &str, pool: &str) -> Result<String, Response> {
        let Some(client) = &self.client else {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("worker {worker} cannot be looked up"),
            ));
        };
        let cache_key = (namespace.to_string(), worker.to_string());
        if let Some((addr, at)) = self
            .addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cache_key)
            && at.elapsed() < ADDRESS_TTL
        {
            return Ok(addr.clone());
        }
        let lease = Api::<Lease>::namespaced(client.clone(), namespace)
            .get_opt(worker)
            .await
            .map_err(|e| {
                error(
                    StatusCode::BAD_GATEWAY,
                    format!("looking up worker {worker}: {e}"),
                )
            })?
            .ok_or_else(|| moving(format!("worker {worker} is gone (its actors are failing over)")))?;
        // The pool's token goes only to a worker of the actor's pool, at a plain address.
        let lease_pool = lease.metadata.labels.as_ref().and_then(|l| l.get(labels::POOL));
        if lease_pool.map(String::as_str) != Some(pool) {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the Lease of worker {worker} is not of pool {pool}: not sending to it"),
            ));
        }
        let addr = lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ADDRESS_ANNOTATION))
            .cloned()
            .ok_or_else(|| {
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("worker {worker} has no address yet"),
                )
            })?;
        peer::check_address(&addr).map_err(|why| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("worker {worker}: {why}; not forwarding to it"),
            )
        })?;
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cache_key, (addr.clone(), Instant::now()));
        Ok(addr)
    }

    async fn send(
        &self,
        addr: &str,
        key: &ActorKey,
        verb: &str,
        body: &[u8],
        timeout: Option<&str>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Unsent> {
        let url = peer::message_url(addr, key, verb, timeout).map_err(Unsent::Never)?;
        let mut req = self
            .http
            .post(url)
            .header(FORWARDED, "1")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(t) = crate::trace::current() {
            req = req.header(crate::trace::HEADER, t.to_string());
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| {
            let connect = e.is_connect();
            let why = format!("forwarding to {addr}: {}", e.without_url());
            // Not connected: the request was not sent, so it may be sent again (a worker that
            // just went away). Anything later may have been handled.
            if connect {
                Unsent::NotConnected(why)
            } else {
                Unsent::Unknown(why)
            }
        })?;
        let code = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let headers = resp.headers().clone();
        let bytes = troupe_net::read_response_body(resp, FORWARDED_ANSWER_MAX)
            .await
            .map_err(|e| Unsent::Unknown(format!("the answer of worker {addr}: {e}")))?;
        Ok((code, headers, bytes))
    }

    /// Passes a request on and returns the hosting worker's answer as is, or, when the actor is
    /// moving (no worker yet, or the one named no longer has it), the answer saying so, marked
    /// as [`MOVING`] so that the caller may wait and try again.
    pub async fn forward(&self, key: &ActorKey, verb: &str, body: &[u8], timeout: Option<&str>) -> Response {
        // A name no actor can have is never looked up (nor put in a URL).
        if let Err(why) = peer::check_key(key) {
            return error(
                StatusCode::NOT_FOUND,
                format!("actor {key} does not exist: {why}"),
            );
        }
        let addr = match self.locate(key).await {
            Ok(a) => a,
            Err(r) => return r,
        };
        match self.send(&addr, key, verb, body, timeout).await {
            Ok((code, headers, bytes)) => {
                let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response();
                if headers.contains_key(MOVING) {
                    resp.headers_mut()
                        .insert(MOVING, header::HeaderValue::from_static("1"));
                }
                resp
            }
            Err(Unsent::NotConnected(why)) => moving(why),
            Err(Unsent::Never(why) | Unsent::Unknown(why)) => error(StatusCode::SERVICE_UNAVAILABLE, why),
        }
    }
}

/// Why a forwarded request has no answer.
#[derive(Debug)]
enum Unsent {
    /// It was never sent (no URL could be made).
    Never(String),
    /// No connection was made: not sent.
    NotConnected(String),
    /// Sent, perhaps handled: not to be sent again.
    Unknown(String),
}

/// A 503 saying the actor is moving: marked, so that the worker that received the message waits
/// for the next worker instead of answering at once.
pub(super) fn moving(why: String) -> Response {
    let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, why);
    resp.headers_mut()
        .insert(MOVING, header::HeaderValue::from_static("1"));
    resp
}

#[async_trait::async_trait]
impl ActorRouter for Forwarder {
    async fn tell(&self, namespace: &str, actor: &str, msg: Value) -> Result<(), ActorError> {
        let key = ActorKey::new(namespace, actor);
        peer::check_key(&key).map_err(|why| ActorError::new(format!("cannot reach {key}: {why}")))?;
        let addr = self
            .locate(&key)
            .await
            .map_err(|r| ActorError::new(format!("cannot reach {key}: HTTP {}", r.status())))?;
        let body = serde_json::to_vec(&msg).map_err(|e| ActorError::new(e.to_string()))?;
        match self.send(&addr, &key, "tell", &body, None).await {
            Ok((code, _, _)) if code.is_success() => Ok(()),
            Ok((code, _, bytes)) => Err(ActorError::new(format!(
                "{key} refused the message: HTTP {code}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
            Err(Unsent::Never(e) | Unsent::NotConnected(e) | Unsent::Unknown(e)) => Err(ActorError::new(e)),
        }
    }
}

/// How long the next worker waits for the previous one's handed-over state before it starts the
/// actor from its config: a planned move should not stall on a worker that went away meanwhile.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(5);

#[async_trait::async_trait]
impl HandoffSource for Forwarder {
    async fn fetch(&self, key: &ActorKey, previous: &PreviousHolder) -> Option<crate::host::Handoff> {
        let fetched = async {
            let addr = self
                .address_of(&key.namespace, &previous.worker, &previous.pool)
                .await
                .map_err(|r| format!("worker {}: HTTP {}", previous.worker, r.status()))?;
            let url = peer::handoff_url(&addr, key, previous.epoch)?;
            let mut req = self.http.get(url).timeout(HANDOFF_TIMEOUT);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("{addr}: {}", e.without_url()))?;
            let status = resp.status();
            let stopped_at = resp
                .headers()
                .get(STOPPED_AT)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(|micros| std::time::UNIX_EPOCH + Duration::from_micros(micros));
            let bytes = troupe_net::read_response_body(resp, HANDOFF_ANSWER_MAX)
                .await
                .map_err(|e| format!("the answer of {addr}: {e}"))?;
            match status.as_u16() {
                200 => serde_json::from_slice::<Value>(&bytes)
                    .map(|state| Some(crate::host::Handoff { state, stopped_at }))
                    .map_err(|e| format!("the answer of {addr} is not JSON: {e}")),
                404 => Ok(None),
                code => Err(format!(
                    "{addr} answered HTTP {code}: {}",
                    String::from_utf8_lossy(&bytes)
                )),
            }
        };
        match fetched.await {
            Ok(state) => {
                tracing::info!(actor = %key, from = %previous.worker, epoch = previous.epoch, handed_over = state.is_some(), "asked the previous worker for the actor's state");
                state
            }
            Err(why) => {
                tracing::warn!(actor = %key, from = %previous.worker, %why, "the previous worker's state could not be fetched; the actor starts from its config");
                None
            }
        }
    }
}
