//! The result pages of actions done, so that a done action answers with a redirect to its
//! result page (POST, redirect, GET): reloading that page shows the result again instead of
//! asking the browser to send the form again, which would promote twice.
//!
//! A result link carries what was done (the action, the object, when) and a MAC of it under
//! the console's key, so nothing needs to be kept, a link cannot claim an action that was not
//! done, and every replica of an in-cluster console (one key, derived from its token) shows the
//! result of an action another replica did. A local console's key is random: its links end
//! with the process.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::jiff::Timestamp;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use troupe_client::actions::{ActorAction, PoolAction};

use crate::pages::act::Act;

/// One action done from the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub act: Act,
    pub namespace: String,
    pub name: String,
    /// When it was done (to the second).
    pub at: Timestamp,
}

/// Makes and reads result links.
pub struct Results {
    key: [u8; 32],
}

/// Bytes of the MAC kept in a link: 128 bits.
const MAC_BYTES: usize = 16;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl Results {
    pub fn new(key: [u8; 32]) -> Results {
        Results { key }
    }

    fn mac(&self, payload: &[u8]) -> [u8; MAC_BYTES] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(payload);
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&full[..MAC_BYTES]);
        out
    }

    /// The id of `outcome`'s result page (`/results/{id}`): URL-safe, one path segment.
    pub fn put(&self, outcome: &Outcome) -> String {
        let (kind, verb) = match outcome.act {
            Act::Pool(a) => ("pool", a.verb()),
            Act::Actor(a) => ("actor", a.verb()),
        };
        let payload = format!(
            "{kind}\n{verb}\n{}\n{}\n{}",
            outcome.namespace,
            outcome.name,
            outcome.at.as_second()
        );
        format!(
            "{}.{}",
            b64().encode(payload.as_bytes()),
            b64().encode(self.mac(payload.as_bytes()))
        )
    }

    /// The outcome a link names, when this console (or a replica with its key) made it.
    pub fn get(&self, id: &str) -> Option<Outcome> {
        let (payload, mac) = id.split_once('.')?;
        let payload = b64().decode(payload).ok()?;
        let mac = b64().decode(mac).ok()?;
        if mac.len() != MAC_BYTES || !bool::from(self.mac(&payload).ct_eq(&mac[..])) {
            return None;
        }
        let text = String::from_utf8(payload).ok()?;
        let mut parts = text.split('\n');
        let (kind, verb, ns, name, at) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let act = match kind {
            "pool" => Act::Pool(PoolAction::from_verb(verb)?),
            "actor" => Act::Actor(ActorAction::from_verb(verb)?),
            _ => return None,
        };
        Some(Outcome {
            act,
            namespace: ns.into(),
            name: name.into(),
            at: Timestamp::from_second(at.parse().ok()?).ok()?,
        })
    }
}
