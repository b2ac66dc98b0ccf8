//! What `tail` and `watch` read: the client's one ordered stream of events
//! ([`WebSocketClient::events`]), data and everything else in the order it
//! happened.
//!
//! With `--policy backpressure` (the default) the stream is lossless: when
//! stdout or the screen falls behind, the client stops reading its socket
//! until they catch up. With `drop-oldest` or `conflate` it is the client's
//! lossy stream ([`WebSocketClient::lossy_events`]): the client reads on,
//! and the stream drops (or conflates) what does not fit in
//! `--queue-capacity`, then says how many events went with a [`Lagged`]
//! item in their place.

use argus_tokio::{Event, Interest, Lagged, QueuePolicy, WebSocketClient};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};

/// One item of the feed: an event, or how many events a lossy feed missed
/// at this place.
pub type Item = Result<Event, Lagged>;

/// The client's events as one stream of [`Item`]s, lossless or lossy as
/// `policy` says. Take it before connecting, so it sees everything.
pub struct Feed(BoxStream<'static, Item>);

impl Feed {
    /// The feed of `client` under `policy`: [`QueuePolicy::Backpressure`]
    /// reads [`WebSocketClient::events`], which never lags; a lossy policy
    /// reads [`WebSocketClient::lossy_events`].
    pub fn new(client: &WebSocketClient, policy: QueuePolicy) -> Self {
        Self(match policy {
            QueuePolicy::Backpressure => client.events().map(Ok).boxed(),
            lossy => client.lossy_events(Interest::ALL, lossy).boxed(),
        })
    }

    /// The next item, waiting for it; `None` once the client is gone.
    /// Cancel-safe: nothing is lost when the future is dropped unfinished.
    pub async fn next(&mut self) -> Option<Item> {
        self.0.next().await
    }

    /// The next item if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Option<Item> {
        self.0.next().now_or_never().flatten()
    }
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").finish_non_exhaustive()
    }
}
