//! The two forms the console accepts, parsed from their `application/x-www-form-urlencoded`
//! bodies: the confirmation of an action, and a message to an actor. Pure, so the refusals are
//! unit-tested; the handlers (`actions.rs`) check the origin and token first.

use serde::Deserialize;
use troupe_client::messages::{self, Kind};

/// The largest message the form sends. A person types it into a textarea; 64 KiB is plenty, and
/// far below the worker's own limit of 1 MiB.
pub const MAX_FORM_MESSAGE: usize = 64 * 1024;
/// The largest form body read: a message of [`MAX_FORM_MESSAGE`] percent-encoded (up to three
/// bytes for one) with the other fields.
pub const MAX_FORM_BODY: usize = 3 * MAX_FORM_MESSAGE + 4096;

/// The confirmation page's form.
#[derive(Debug, Default, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    pub csrf: String,
    /// `yes` from the confirmation page's button; anything else is not a confirmation.
    #[serde(default)]
    pub confirm: String,
}

impl ConfirmForm {
    pub fn confirmed(&self) -> bool {
        self.confirm == "yes"
    }
}

/// The tell/ask form as sent.
#[derive(Debug, Default, Deserialize)]
pub struct MessageForm {
    #[serde(default)]
    pub csrf: String,
    /// `tell` or `ask` (the button pressed).
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

/// A message ready to send.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: Kind,
    pub json: String,
}

/// Why a form was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the form could not be read: {0}")]
    Malformed(String),
    #[error("send it as tell or ask, not {0:?}")]
    Kind(String),
    #[error("write the message first (JSON, e.g. {{\"add\": 1}} or null)")]
    Empty,
    #[error(
        "the message is {0} bytes; the console sends at most {MAX_FORM_MESSAGE} (use kubectl troupe tell|ask for more)"
    )]
    TooLarge(usize),
    #[error("the message is not JSON: {0}")]
    NotJson(String),
}

/// Parses a urlencoded body into `T`.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FormError> {
    serde_urlencoded::from_bytes(body).map_err(|e| FormError::Malformed(e.to_string()))
}

impl MessageForm {
    /// The message, or why it cannot be sent.
    pub fn message(&self) -> Result<Message, FormError> {
        let kind = match self.kind.as_str() {
            "tell" => Kind::Tell,
            "ask" => Kind::Ask,
            other => return Err(FormError::Kind(other.chars().take(20).collect())),
        };
        let json = self.message.trim();
        if json.is_empty() {
            return Err(FormError::Empty);
        }
        if json.len() > MAX_FORM_MESSAGE {
            return Err(FormError::TooLarge(json.len()));
        }
        match messages::check_message(json) {
            Ok(()) => Ok(Message {
                kind,
                json: json.to_string(),
            }),
            Err(messages::MessageError::NotJson(why)) => Err(FormError::NotJson(why)),
            Err(other) => Err(FormError::Malformed(other.to_string())),
        }
    }
}
