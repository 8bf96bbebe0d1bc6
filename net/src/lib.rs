//! What every Troupe HTTP surface shares, so that each limit is written once:
//!
//! - [`server`]: serving an axum `Router` with a header-read timeout, a request timeout, and caps
//!   on connections and requests in flight (the excess answered 503), with graceful shutdown;
//! - [`body`]: reading a request or response body without ever holding more than a limit;
//! - [`redact`]: URLs made safe to show (no credentials, no query) in status, Events and logs.

pub mod body;
pub mod redact;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;

pub use body::{BodyError, read_request_body, read_response_body};
pub use redact::{redact_url, redact_urls_in};
pub use server::{Limits, serve};
