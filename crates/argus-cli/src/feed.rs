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
use serde::Serialize;

/// One item of the feed: an event, or how many events a lossy feed missed
/// at this place.
pub type Item = Result<Event, Lagged>;

/// The client's events as one stream of [`Item`]s, lossless or lossy as
/// `policy` says. Take it before connecting, so it sees everything.
pub struct Feed {
    stream: BoxStream<'static, Item>,
    stats: FeedStats,
}

/// What a [`Feed`] did: its policy, and how many events it missed (always 0
/// under backpressure). On the `stats` line as `feed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FeedStats {
    /// The policy it was made with.
    pub policy: QueuePolicy,
    /// Events dropped or conflated away, the sum of its [`Lagged`] items.
    pub missed_events: u64,
}

impl Feed {
    /// The feed of `client` under `policy`: [`QueuePolicy::Backpressure`]
    /// reads [`WebSocketClient::events`], which never lags; a lossy policy
    /// reads [`WebSocketClient::lossy_events`].
    pub fn new(client: &WebSocketClient, policy: QueuePolicy) -> Self {
        let stream = match policy {
            QueuePolicy::Backpressure => client.events().map(Ok).boxed(),
            lossy => client.lossy_events(Interest::ALL, lossy).boxed(),
        };
        Self {
            stream,
            stats: FeedStats {
                policy,
                missed_events: 0,
            },
        }
    }

    /// The next item, waiting for it; `None` once the client is gone.
    /// Cancel-safe: nothing is lost when the future is dropped unfinished.
    pub async fn next(&mut self) -> Option<Item> {
        let item = self.stream.next().await;
        self.count(item)
    }

    /// The next item if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Option<Item> {
        let item = self.stream.next().now_or_never().flatten();
        self.count(item)
    }

    /// What the feed did so far.
    pub fn stats(&self) -> FeedStats {
        self.stats
    }

    fn count(&mut self, item: Option<Item>) -> Option<Item> {
        if let Some(Err(Lagged(missed))) = item {
            self.stats.missed_events += missed;
        }
        item
    }
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
