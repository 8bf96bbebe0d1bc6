//! Who may use the console, and whether it may act.
//!
//! - **Local** (`kubectl troupe console`): on loopback with the user's own kubeconfig. Nothing
//!   new to secure: whoever reaches the port is the user (loopback only, unless they said
//!   otherwise), and the user's RBAC decides what every read and action may do.
//! - **In the cluster** (served by the operator, `--console-listen`): the console reads every
//!   namespace with the operator's ServiceAccount, so the operator's rights are what a reader
//!   borrows. Every request then presents the console's token, as `Authorization: Bearer TOKEN`
//!   or as the password of Basic authentication (what a browser asks a person for; any user
//!   name), unless reading without it was explicitly allowed (`--console-anonymous-read`).
//!   Actions (promote, abort, retry, undo, pause, resume, trigger, tell/ask) are off unless
//!   turned on (`--console-actions`), and then only for requests that present the token; there
//!   is no default token, so the console refuses to start actions without one. The token is
//!   compared by its SHA-256 digest in constant time (no early exit, no length leak).
//!
//! The keys of the CSRF token and of the result links are derived from the token with HMAC, so
//! every replica of the operator (behind one Service) accepts the forms and links of the others.

use axum::http::{HeaderMap, header};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest token accepted: anything shorter is guessable.
pub const MIN_TOKEN: usize = 16;

/// The console's bearer token (in the cluster). Never printed, logged or shown.
#[derive(Clone)]
pub struct BearerToken {
    secret: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(hidden)")
    }
}

/// Why a token was not accepted (the token itself is in none of them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the console's token is empty")]
    Empty,
    #[error(
        "the console's token is {0} characters long; it needs at least {MIN_TOKEN} (make one with `openssl rand -hex 32`)"
    )]
    TooShort(usize),
    #[error(
        "the console's token may hold only visible ASCII characters (no spaces or line breaks inside it)"
    )]
    BadCharacter,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl BearerToken {
    /// The token as read from its file or Secret (surrounding white space, such as a final
    /// newline, removed).
    pub fn new(text: &str) -> Result<BearerToken, TokenError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(TokenError::Empty);
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::BadCharacter);
        }
        if t.len() < MIN_TOKEN {
            return Err(TokenError::TooShort(t.len()));
        }
        Ok(BearerToken {
            secret: t.to_string(),
            digest: sha256(t.as_bytes()),
        })
    }

    /// Whether `presented` is the token: their digests compared in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(sha256(presented).ct_eq(&self.digest))
    }

    /// A key for `purpose`, derived from the token (HMAC-SHA256): the same in every process
    /// that holds the token, and telling nothing about it.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// What the request's `Authorization` header presents: a Bearer token, or the password of
/// Basic authentication (`user:password`, base64; the user name is ignored).
pub fn presented(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        Some(decoded[colon + 1..].to_vec())
    } else {
        None
    }
}

/// How the console is served, and so who may read and act.
#[derive(Clone, Debug)]
pub enum Access {
    /// `kubectl troupe console`: the user's kubeconfig; no authentication of its own.
    Local,
    /// Served by the operator in the cluster.
    InCluster(InCluster),
}

/// The in-cluster console's settings, checked (see [`InCluster::new`]).
#[derive(Clone, Debug)]
pub struct InCluster {
    token: Option<BearerToken>,
    actions: bool,
    anonymous_read: bool,
}

/// Why an in-cluster console does not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error(
        "refusing to turn the console's actions on without a token: they act with the operator's ServiceAccount, and there is no default token. Give one (--console-token-file; the chart's console.existingSecret)"
    )]
    ActionsWithoutToken,
    #[error(
        "the in-cluster console reads every namespace with the operator's ServiceAccount, so reading needs a token too: give one (--console-token-file; the chart's console.existingSecret), or allow reading without it explicitly (--console-anonymous-read; console.anonymousRead)"
    )]
    ReadingWithoutToken,
}

impl InCluster {
    /// Actions need a token; so does reading, unless `anonymous_read`.
    pub fn new(
        token: Option<BearerToken>,
        actions: bool,
        anonymous_read: bool,
    ) -> Result<InCluster, AccessError> {
        if token.is_none() && actions {
            return Err(AccessError::ActionsWithoutToken);
        }
        if token.is_none() && !anonymous_read {
            return Err(AccessError::ReadingWithoutToken);
        }
        Ok(InCluster {
            token,
            actions,
            anonymous_read,
        })
    }

    pub fn actions(&self) -> bool {
        self.actions
    }

    pub fn anonymous_read(&self) -> bool {
        self.anonymous_read
    }
}

/// What one request may do beyond reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Acts {
    /// It may act: with the user's kubeconfig (locally), or it presented the token.
    Allowed,
    /// The console is read-only: its actions are turned off.
    Off,
    /// Actions need the token, which the request did not present (anonymous reading).
    SignIn,
}

/// A request refused for want of the token: missing, or wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unauthorized {
    Missing,
    Wrong,
}

impl Unauthorized {
    pub fn sentence(self) -> &'static str {
        match self {
            Unauthorized::Missing => {
                "This console needs its token: send it as `Authorization: Bearer TOKEN`, or as the password when your browser asks (any user name). The token is in the Secret the operator's chart names (console.existingSecret)."
            }
            Unauthorized::Wrong => "The token sent is not this console's token. Nothing was shown or done.",
        }
    }
}

impl Access {
    /// Whether the request may read, and what it may do; `Err` when it must present the token
    /// first (answered 401), or presented a wrong one.
    pub fn admit(&self, headers: &HeaderMap) -> Result<Acts, Unauthorized> {
        let c = match self {
            Access::Local => return Ok(Acts::Allowed),
            Access::InCluster(c) => c,
        };
        let authenticated = match (presented(headers), &c.token) {
            (None, _) => false,
            (Some(p), Some(t)) if t.matches(&p) => true,
            // A token sent and not ours (or no token to compare with): refused, even where
            // reading needs none, so that a mistyped token is not silently read-only.
            (Some(_), _) => return Err(Unauthorized::Wrong),
        };
        if !authenticated && !c.anonymous_read {
            return Err(Unauthorized::Missing);
        }
        Ok(match (c.actions, authenticated) {
            (false, _) => Acts::Off,
            (true, true) => Acts::Allowed,
            (true, false) => Acts::SignIn,
        })
    }

    /// The seed of the CSRF token and the result links' key: derived from the token in the
    /// cluster (shared by every replica), random otherwise (one process).
    pub fn key(&self, purpose: &str) -> [u8; 32] {
        match self {
            Access::InCluster(InCluster { token: Some(t), .. }) => t.derive(purpose),
            _ => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
                bytes
            }
        }
    }

    pub fn in_cluster(&self) -> bool {
        matches!(self, Access::InCluster(_))
    }
}
