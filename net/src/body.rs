//! Bodies read with a limit: never more than `max` bytes held, and a declared length over the
//! limit refused before a byte of the body is read.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header::CONTENT_LENGTH};

/// Why a body was not read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BodyError {
    /// Larger than the limit (declared or as sent): HTTP 413 for a request.
    #[error("larger than the limit of {max} bytes")]
    TooLarge { max: usize },
    /// The connection failed or timed out while reading.
    #[error("{0}")]
    Failed(String),
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// A request body of at most `max` bytes; a `Content-Length` over `max` is refused before
/// reading, and a body sent without one is read only up to `max` + 1 bytes.
pub async fn read_request_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, BodyError> {
    if declared_length(headers).is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge { max });
    }
    axum::body::to_bytes(body, max).await.map_err(|e| {
        let inner = e.into_inner();
        if inner.is::<http_body_util::LengthLimitError>() {
            BodyError::TooLarge { max }
        } else {
            BodyError::Failed(inner.to_string())
        }
    })
}

/// A response body of at most `max` bytes, read chunk by chunk (a declared length over `max`
/// is refused before reading). Errors carry no URL (see [`crate::redact`]).
pub async fn read_response_body(mut resp: reqwest::Response, max: usize) -> Result<Bytes, BodyError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge { max });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Failed(e.without_url().to_string()))?
    {
        if buf.len() + chunk.len() > max {
            return Err(BodyError::TooLarge { max });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
