//! Telling and asking an actor from outside the cluster, as `kubectl troupe tell|ask` and the
//! console's form do: through a worker's message API (`POST /v1/namespaces/{ns}/actors/{name}/
//! tell|ask`, docs/worker.md), which forwards to the worker hosting the actor; and reading its
//! journal (`GET …/journal`, `kubectl troupe journal`), which any worker of its pool answers.
//!
//! **How the worker is reached.** The address a worker's Lease announces (`troupe.dev/address`,
//! `ip:port`): the worker hosting the actor (its `troupe.dev/worker` label) when its Lease is
//! live, else any live worker of the actor's pool. That works wherever the pod network is
//! reachable: in the cluster, over a VPN, and on the local control plane (whose pods listen on
//! loopback addresses). The API server's pod proxy (`/api/v1/namespaces/{ns}/pods/{pod}:8080/
//! proxy/…`) is NOT a way to a worker: the API server removes the `Authorization` header of
//! every request it authenticated (k8s.io/apiserver, `filters/authentication.go`), so the
//! worker would never see its bearer token; the local control plane serves no `pods/proxy`
//! either. From a machine outside the pod network, forward a port yourself (`kubectl
//! port-forward deploy/POOL-REVISION 8080`) and pass its URL as [`Route::Url`]
//! (`--worker-url http://127.0.0.1:8080`).
//!
//! **The token** is the pool's: what the worker Deployment gives its container as
//! `TROUPE_API_TOKEN` (a `secretKeyRef`, as the operator writes it, or a plain value a template
//! set), read with the caller's own credentials; when the Deployment cannot be read, the
//! operator's default Secret `troupe-worker-token`, key `token`. It is sent only to a worker of
//! the actor's own pool at a plain address (or the URL the caller gave), never printed, never
//! logged, and not part of any error.

use std::time::Duration;

use k8s_openapi::{
    api::{apps::v1::Deployment, coordination::v1::Lease, core::v1::Secret},
    jiff::Timestamp,
};
use kube::{Api, Client, api::ListParams};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use troupe_crds::{Actor, labels};

use crate::actions::ActionError;

/// The annotation on a worker's Lease with the `ip:port` its API listens on.
pub const ADDRESS_ANNOTATION: &str = "troupe.dev/address";
/// The Secret the operator names in worker pods by default (`--worker-token-secret`).
pub const DEFAULT_TOKEN_SECRET: &str = "troupe-worker-token";
/// The key of the token in that Secret.
pub const TOKEN_KEY: &str = "token";
/// The env var a worker reads its token from.
const TOKEN_ENV: &str = "TROUPE_API_TOKEN";
/// The largest message sent: the worker's own limit (`worker::api::MAX_BODY`).
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// The largest answer read back; a longer one is cut and said so.
pub const MAX_REPLY: usize = 4 * MAX_MESSAGE;
/// How long an ask waits for its answer unless told otherwise (the worker's default).
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting to a worker on the pod network takes milliseconds; 2 s means it is gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A tell may wait for room in a blocking mailbox (the pool's `blockTimeout`, after which the
/// worker answers itself); past this, the caller is told it timed out.
pub const TELL_TIMEOUT: Duration = Duration::from_secs(15);
/// A journal read is one call to the store (bounded at 5 s by the worker).
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Path segments keep only the unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Tell (fire and forget, 202) or ask (wait for the answer, 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tell,
    Ask,
}

impl Kind {
    pub fn verb(self) -> &'static str {
        match self {
            Kind::Tell => "tell",
            Kind::Ask => "ask",
        }
    }
}

/// Where to send the message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Route {
    /// The address in a live worker Lease of the actor's pool (see the module header).
    #[default]
    Lease,
    /// This base URL (`http://127.0.0.1:8080`, e.g. a `kubectl port-forward`) instead.
    Url(String),
}

/// The worker's answer, whatever its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// The body as text (an ask's answer, or `{"error": "..."}`), at most [`MAX_REPLY`] bytes.
    pub body: String,
    /// The body was longer and has been cut.
    pub truncated: bool,
    /// The worker pod the message went to (it forwards to the host when that moved), or the URL.
    pub via: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `error` of a worker's JSON error body, else the body.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| self.body.clone())
    }
}

/// Why a message was not delivered to a worker (a worker's own refusal is a [`Reply`]).
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("the message is not JSON: {0}")]
    NotJson(String),
    #[error("the message is {0} bytes; at most {MAX_MESSAGE} are sent")]
    TooLarge(usize),
    /// Boxed: the API server's words are long, and this error's other cases are small.
    #[error(transparent)]
    Api(Box<ActionError>),
    #[error("no live worker of pool {ns}/{pool} announces an address (is the pool running?)")]
    NoWorker { ns: String, pool: String },
    #[error(
        "worker {0}'s Lease announces {1:?}, which is not a plain host:port; not sending the pool's token there"
    )]
    BadAddress(String, String),
    #[error("{0}")]
    Token(String),
    #[error("sending to {via}: {source}")]
    Http {
        via: String,
        #[source]
        source: reqwest::Error,
    },
}

impl From<ActionError> for MessageError {
    fn from(e: ActionError) -> Self {
        MessageError::Api(Box::new(e))
    }
}

/// The bearer token, which never shows in `Debug` output.
struct Token(String);

/// A worker to send a request about an actor to.
struct Target {
    /// `http://ip:port`, or the caller's URL.
    base: String,
    /// The worker pod, or the caller's URL.
    via: String,
    token: Token,
    /// The Actor's uid.
    uid: String,
}

impl Target {
    /// The URL of the actor's route `verb` (tell, ask, journal), its segments escaped.
    fn url(&self, ns: &str, name: &str, verb: &str) -> String {
        format!(
            "{}/v1/namespaces/{}/actors/{}/{verb}",
            self.base,
            utf8_percent_encode(ns, SEGMENT),
            utf8_percent_encode(name, SEGMENT),
        )
    }

    /// Sends `request` with the token and reads the answer, at most [`MAX_REPLY`] bytes of it.
    async fn call(self, request: reqwest::RequestBuilder) -> Result<Reply, MessageError> {
        let via = self.via;
        let http_err = |source| MessageError::Http {
            via: via.clone(),
            source,
        };
        let mut resp = request
            .bearer_auth(&self.token.0)
            .send()
            .await
            .map_err(|e| http_err(e.without_url()))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = resp.chunk().await.map_err(|e| http_err(e.without_url()))? {
            let room = MAX_REPLY - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            truncated,
            via,
        })
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(hidden)")
    }
}

/// Sends messages to actors with one Kubernetes client (the caller's credentials).
#[derive(Clone)]
pub struct Messenger {
    client: Client,
    http: reqwest::Client,
    route: Route,
}

impl Messenger {
    pub fn new(client: Client, route: Route) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // The token goes to the worker the Lease names, and nowhere it redirects to.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client builds");
        Messenger { client, http, route }
    }

    /// Sends `message` (JSON text) to actor `ns/name` as a tell or an ask (`timeout`: how long
    /// an ask waits, the worker's default when `None`).
    pub async fn send(
        &self,
        ns: &str,
        name: &str,
        kind: Kind,
        message: &str,
        timeout: Option<Duration>,
    ) -> Result<Reply, MessageError> {
        check_message(message)?;
        let target = self.target(ns, name).await?;
        let mut url = target.url(ns, name, kind.verb());
        let wait = match kind {
            Kind::Ask => {
                let t = timeout.unwrap_or(DEFAULT_ASK_TIMEOUT);
                url += &format!("?timeout={}ms", t.as_millis());
                t + Duration::from_secs(5)
            }
            Kind::Tell => TELL_TIMEOUT,
        };
        let request = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(message.to_string())
            .timeout(wait);
        target.call(request).await
    }

    /// Reads the newest `limit` entries of actor `ns/name`'s journal from a worker of its pool
    /// (`GET …/journal`, docs/durability.md). Returns the worker's answer and the Actor's uid
    /// (the journal keeps the entries of earlier Actors of the same name too).
    pub async fn journal(&self, ns: &str, name: &str, limit: u32) -> Result<(Reply, String), MessageError> {
        let target = self.target(ns, name).await?;
        let uid = target.uid.clone();
        let url = format!("{}?limit={limit}", target.url(ns, name, "journal"));
        let request = self.http.get(url).timeout(JOURNAL_TIMEOUT);
        Ok((target.call(request).await?, uid))
    }

    /// The worker to talk to about actor `ns/name`, and the pool's token.
    async fn target(&self, ns: &str, name: &str) -> Result<Target, MessageError> {
        let actor = Api::<Actor>::namespaced(self.client.clone(), ns)
            .get(name)
            .await
            .map_err(|e| ActionError::from_kube("actor", ns, name, e))?;
        let pool = actor.spec.pool.clone();
        let host = actor
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::WORKER))
            .cloned();
        let lease = self.worker_lease(ns, &pool, host.as_deref()).await?;
        let (base, via) = match (&self.route, &lease) {
            (Route::Url(url), _) => (url.trim_end_matches('/').to_string(), url.clone()),
            (Route::Lease, None) => return Err(MessageError::NoWorker { ns: ns.into(), pool }),
            (Route::Lease, Some(l)) => {
                let pod = l.metadata.name.clone().unwrap_or_default();
                let addr = lease_address(l).unwrap_or_default();
                if !plain_address(&addr) {
                    return Err(MessageError::BadAddress(pod, addr));
                }
                (format!("http://{addr}"), pod)
            }
        };
        let revision = lease
            .as_ref()
            .and_then(|l| l.metadata.labels.as_ref()?.get(labels::REVISION).cloned());
        let token = self.token(ns, &pool, revision.as_deref()).await?;
        Ok(Target {
            base,
            via,
            token,
            uid: actor.metadata.uid.unwrap_or_default(),
        })
    }

    /// The Lease of the worker hosting the actor when it is live and of the pool, else any live
    /// worker Lease of the pool (it forwards), else none.
    async fn worker_lease(
        &self,
        ns: &str,
        pool: &str,
        host: Option<&str>,
    ) -> Result<Option<Lease>, MessageError> {
        let api = Api::<Lease>::namespaced(self.client.clone(), ns);
        let now = Timestamp::now();
        let ours = |l: &Lease| {
            l.metadata
                .labels
                .as_ref()
                .and_then(|m| m.get(labels::POOL))
                .map(String::as_str)
                == Some(pool)
                && live(l, now)
                && lease_address(l).is_some()
        };
        if let Some(host) = host
            && let Some(l) = api
                .get_opt(host)
                .await
                .map_err(|e| ActionError::from_kube("lease", ns, host, e))?
            && ours(&l)
        {
            return Ok(Some(l));
        }
        let list = api
            .list(&ListParams::default().labels(&format!("{}={pool}", labels::POOL)))
            .await
            .map_err(|e| ActionError::from_kube("lease", ns, &format!("(pool {pool})"), e))?;
        Ok(list.items.into_iter().find(|l| ours(l)))
    }

    /// The pool's token: from the Deployment of `revision` when it can be read, else the
    /// operator's default Secret.
    async fn token(&self, ns: &str, pool: &str, revision: Option<&str>) -> Result<Token, MessageError> {
        let mut source = TokenSource::Secret(DEFAULT_TOKEN_SECRET.into(), TOKEN_KEY.into());
        if let Some(rev) = revision {
            let name = format!("{pool}-{rev}");
            // Not readable (RBAC) or gone: the default Secret is what the operator gives workers.
            if let Ok(Some(d)) = Api::<Deployment>::namespaced(self.client.clone(), ns)
                .get_opt(&name)
                .await
                && let Some(found) = token_source(&d)
            {
                source = found;
            }
        }
        let (secret, key) = match source {
            TokenSource::Value(v) => return Ok(Token(v)),
            TokenSource::Secret(s, k) => (s, k),
        };
        let what = format!("the workers' API token (Secret {ns}/{secret}, key {key})");
        let s = Api::<Secret>::namespaced(self.client.clone(), ns)
            .get(&secret)
            .await
            .map_err(|e| {
                MessageError::Token(format!(
                    "reading {what}: {}",
                    ActionError::from_kube("secret", ns, &secret, e)
                ))
            })?;
        let bytes = s
            .data
            .and_then(|mut d| d.remove(&key))
            .ok_or_else(|| MessageError::Token(format!("{what} has no such key")))?;
        let token =
            String::from_utf8(bytes.0).map_err(|_| MessageError::Token(format!("{what} is not text")))?;
        Ok(Token(token.trim_end_matches(['\n', '\r']).to_string()))
    }
}

/// Where a worker Deployment's container gets its token.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenSource {
    Value(String),
    Secret(String, String),
}

/// The token source of the first container that sets `TROUPE_API_TOKEN`.
pub fn token_source(d: &Deployment) -> Option<TokenSource> {
    let containers = &d.spec.as_ref()?.template.spec.as_ref()?.containers;
    let var = containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == TOKEN_ENV)?;
    if let Some(v) = &var.value {
        return Some(TokenSource::Value(v.clone()));
    }
    let r = var.value_from.as_ref()?.secret_key_ref.as_ref()?;
    Some(TokenSource::Secret(r.name.clone(), r.key.clone()))
}

/// Refuses what the worker would refuse anyway, before any API call: not JSON, too large.
pub fn check_message(message: &str) -> Result<(), MessageError> {
    if message.len() > MAX_MESSAGE {
        return Err(MessageError::TooLarge(message.len()));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(message)
        .map(drop)
        .map_err(|e| MessageError::NotJson(e.to_string()))
}

/// The address a worker's Lease announces.
pub fn lease_address(l: &Lease) -> Option<String> {
    l.metadata.annotations.as_ref()?.get(ADDRESS_ANNOTATION).cloned()
}

/// Whether a Lease was renewed within its duration.
pub fn live(l: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &l.spec else { return false };
    let (Some(renewed), Some(secs)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return false;
    };
    renewed
        .0
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs.into()))
        .is_ok_and(|until| until > now)
}

/// `host:port` and nothing else: no scheme, path, user, query or space, so that an address a
/// Lease announces cannot send the token anywhere but that host and port.
pub fn plain_address(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && port.parse::<u16>().is_ok_and(|p| p != 0)
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
