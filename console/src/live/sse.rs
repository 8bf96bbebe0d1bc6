//! `GET /live`: the batches of the hub as server-sent events, to one open page.
//!
//! First a `hello` event with the number of the last batch and this process's name (batch
//! numbers are its own: a page rendered by another replica of an in-cluster console compares
//! nothing with them), so that a page rendered before a batch it never received refreshes at
//! once; then one `change` event per batch (id: its number,
//! data: its topics separated by spaces). A subscriber that fell behind is sent `*`.

use std::{convert::Infallible, time::Duration};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt, stream};
use tokio::sync::broadcast::error::RecvError;

use super::{Hub, topics::ALL};

/// A comment line this often keeps proxies and the browser from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn stream_for(hub: &Hub, instance: &str) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    // Subscribe first: a batch sent after this is received; one sent before has already raised
    // the number in `hello`, which then differs from the page's.
    let rx = hub.subscribe();
    let hello = Event::default()
        .event("hello")
        .data(format!("{} {instance}", hub.seq()));
    let changes = stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(batch) => Event::default()
                .event("change")
                .id(batch.seq.to_string())
                .data(batch.topics.join(" ")),
            Err(RecvError::Lagged(_)) => Event::default().event("change").data(ALL),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(stream::once(async { Ok(hello) }).chain(changes))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
