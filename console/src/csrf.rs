//! Cross-site request forgery: what keeps another web site, open in the same browser, from
//! making the console act. The console has no cookies or sessions (the kubeconfig is the
//! credential, on the server side), so a forged request is a form on another site posted to
//! `127.0.0.1:PORT`. Every POST must pass two checks before its form is even read further:
//!
//! - **Origin.** Browsers send `Origin` with every POST; it must be this server's own origin
//!   (`http://` + the `Host` the browser used, itself checked to be loopback by the server's
//!   guard). A POST without one (not a browser, or a browser that hides it) is refused, and so
//!   is `Sec-Fetch-Site` other than `same-origin` when present. (The pages' `Referrer-Policy` is
//!   `same-origin` for this: under `no-referrer` browsers send `Origin: null` from one's own
//!   forms.)
//! - **Token.** A random token made when the process starts (in the cluster: derived from the
//!   console's bearer token, the same in every replica), in a hidden field of every form,
//!   compared in constant time. Another site cannot read it: no CORS, frames refused, and DNS
//!   rebinding stopped by the Host check (or, in the cluster, the bearer token every page needs).

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// The per-process token.
#[derive(Clone)]
pub struct Csrf(String);

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf(hidden)")
    }
}

/// Why a POST was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the request carries no Origin header; actions are taken only from the console's own pages in a browser"
    )]
    NoOrigin,
    #[error("the request comes from {0}, not from this console's own pages")]
    ForeignOrigin(String),
    #[error(
        "the form's token is missing or wrong: it comes from an older console (reload the page) or from another site"
    )]
    BadToken,
}

impl Csrf {
    /// 32 random bytes from the operating system, as hex.
    pub fn generate() -> Csrf {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
        Csrf::from_key(bytes)
    }

    /// The token for a 32-byte key, as hex: random for one process, or derived from the
    /// in-cluster console's bearer token so that every replica takes the others' forms
    /// (`access.rs`).
    pub fn from_key(key: [u8; 32]) -> Csrf {
        Csrf(key.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A fixed token, for tests.
    pub fn fixed(token: &str) -> Csrf {
        Csrf(token.into())
    }

    /// The value for the forms' hidden field.
    pub fn token(&self) -> &str {
        &self.0
    }

    /// Both checks: the request's origin, then the form's token.
    pub fn check(&self, headers: &HeaderMap, form_token: &str) -> Result<(), Refusal> {
        check_origin(headers)?;
        if form_token.is_empty() || !bool::from(form_token.as_bytes().ct_eq(self.0.as_bytes())) {
            return Err(Refusal::BadToken);
        }
        Ok(())
    }
}

/// `Origin` must be `http://HOST` or `https://HOST` for the request's own `Host`.
pub fn check_origin(headers: &HeaderMap) -> Result<(), Refusal> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site"))
        && site != "same-origin"
    {
        return Err(Refusal::ForeignOrigin(format!("a {site} page")));
    }
    let origin = text(header::ORIGIN).ok_or(Refusal::NoOrigin)?;
    let host = text(header::HOST).unwrap_or("");
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host));
    if own {
        Ok(())
    } else {
        Err(Refusal::ForeignOrigin(origin.chars().take(200).collect()))
    }
}
