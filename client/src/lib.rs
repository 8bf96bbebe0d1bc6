//! The Kubernetes client every Troupe process uses (operator, workers, `kubectl troupe`), and
//! what `kubectl troupe` and the console do with it: [`actions`] on pools and actors,
//! [`messages`] to actors through a worker's API.
//!
//! It is kube's default client with one layer more: responses have `metadata.managedFields`
//! removed before they are parsed (see [`strip`] for why: one deeply nested object would
//! otherwise fail every list and watch that contains it). Plain responses are read whole and
//! cut; watch responses are cut line by line as they stream, so a watch stays a stream.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, Stream, StreamExt, TryStreamExt, future::BoxFuture};
use http::{Request, Response, header::CONTENT_TYPE};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use kube::{Client, Config, client::ClientBuilder};
use tower::{BoxError, Layer, Service};

pub mod actions;
pub mod messages;
pub mod strip;

pub use strip::strip_managed_fields;

/// A client for the cluster found the usual way (in-cluster, or `KUBECONFIG`).
pub async fn client() -> kube::Result<Client> {
    client_from(Config::infer().await.map_err(kube::Error::InferConfig)?)
}

/// A client for `config`.
pub fn client_from(config: Config) -> kube::Result<Client> {
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&StripManagedFieldsLayer)
        .build())
}

/// Removes `metadata.managedFields` from JSON responses (see the crate's header).
#[derive(Clone, Copy, Debug, Default)]
pub struct StripManagedFieldsLayer;

impl<S> Layer<S> for StripManagedFieldsLayer {
    type Service = StripManagedFields<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StripManagedFields { inner }
    }
}

/// The service of [`StripManagedFieldsLayer`].
#[derive(Clone, Debug)]
pub struct StripManagedFields<S> {
    inner: S,
}

type Body = UnsyncBoxBody<Bytes, BoxError>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StripManagedFields<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let watch = is_watch(req.uri());
        let response = self.inner.call(req);
        async move {
            let response = response.await.map_err(Into::into)?;
            let (parts, body) = response.into_parts();
            let body = body.map_err(Into::into);
            let json = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            let body = if !json {
                body.boxed_unsync()
            } else if watch {
                StreamBody::new(strip_lines(body.into_data_stream()).map_ok(Frame::data)).boxed_unsync()
            } else {
                let whole = body.collect().await?.to_bytes();
                let cut = match strip_managed_fields(&whole) {
                    std::borrow::Cow::Borrowed(_) => whole,
                    std::borrow::Cow::Owned(cut) => Bytes::from(cut),
                };
                http_body_util::Full::new(cut)
                    .map_err(|never| match never {})
                    .boxed_unsync()
            };
            Ok(Response::from_parts(parts, body))
        }
        .boxed()
    }
}

/// Whether a request is a watch (`?watch=true` or `?watch=1`), whose answer is one JSON event
/// per line, streamed.
fn is_watch(uri: &http::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|pair| matches!(pair, "watch=true" | "watch=1")))
}

/// The stream of `data` cut into lines, each without its managedFields, newline kept.
fn strip_lines<D>(data: D) -> impl Stream<Item = Result<Bytes, BoxError>> + Send
where
    D: Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
{
    let state = (Box::pin(data) as Pin<Box<D>>, BytesMut::new(), false);
    futures::stream::unfold(state, |(mut data, mut pending, mut ended)| async move {
        loop {
            if let Some(newline) = memchr::memchr(b'\n', &pending) {
                let line = pending.split_to(newline + 1).freeze();
                return Some((Ok(cut(line)), (data, pending, ended)));
            }
            if ended {
                if pending.is_empty() {
                    return None;
                }
                let rest = pending.split().freeze();
                return Some((Ok(cut(rest)), (data, pending, ended)));
            }
            match data.next().await {
                Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    pending.clear();
                    return Some((Err(e), (data, pending, true)));
                }
                None => ended = true,
            }
        }
    })
}

fn cut(line: Bytes) -> Bytes {
    match strip_managed_fields(&line) {
        std::borrow::Cow::Borrowed(_) => line,
        std::borrow::Cow::Owned(cut) => Bytes::from(cut),
    }
}

#[cfg(test)]
mod tests;
