//! The client's one ordered output as a [`futures_util::Stream`]: every
//! event the core emits (data, gaps, resumes, state changes, errors), in
//! the core's order.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use argus_core::Event;
use futures_util::Stream;

use crate::queue::Queue;

/// The client's events, in order, from [`WebSocketClient::events`](crate::WebSocketClient::events).
///
/// Lossless: the stream has a bounded buffer, and while it is full the
/// client stops reading its socket (backpressure), so a slow reader slows
/// the feed instead of losing events. It ends once the client's connection
/// task has ended (every handle dropped). Dropping the stream unregisters it.
pub struct EventStream {
    queue: Arc<Queue>,
    buffer: VecDeque<Event>,
}

impl EventStream {
    pub(crate) fn new(queue: Arc<Queue>) -> Self {
        Self {
            queue,
            buffer: VecDeque::new(),
        }
    }

    /// The next event, or `None` once the client is gone: the same as
    /// `StreamExt::next`, without importing a futures crate.
    pub async fn recv(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Waits for at least one event, then moves every event already
    /// received (up to `limit`) into `into`, in order: one wake-up for a
    /// burst. Returns how many were moved; 0 once the client is gone.
    pub async fn recv_many(&mut self, into: &mut Vec<Event>, limit: usize) -> usize {
        std::future::poll_fn(|cx| {
            if self.buffer.is_empty() {
                match self.queue.poll_take(cx, &mut self.buffer) {
                    Poll::Ready(Some(_)) => {}
                    Poll::Ready(None) => return Poll::Ready(0),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let n = self.buffer.len().min(limit.max(1));
            into.extend(self.buffer.drain(..n));
            Poll::Ready(n)
        })
        .await
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = &mut *self;
        if let Some(event) = this.buffer.pop_front() {
            return Poll::Ready(Some(event));
        }
        this.queue
            .poll_take(cx, &mut this.buffer)
            .map(|taken| taken.and_then(|_| this.buffer.pop_front()))
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.queue.abandon();
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

/// A [`LossyEventStream`] fell behind: this many events were dropped or
/// conflated away before the next one, as its [`QueuePolicy`](crate::QueuePolicy) allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the event stream fell behind and missed {0} events")]
pub struct Lagged(pub u64);

/// The client's events, in order, for a reader that prefers losing events
/// to slowing the feed, from [`WebSocketClient::lossy_events`](crate::WebSocketClient::lossy_events).
/// When it falls behind, its policy drops or conflates events, and the next
/// item says how many with [`Lagged`] before the stream goes on.
pub struct LossyEventStream {
    queue: Arc<Queue>,
    buffer: VecDeque<Event>,
    /// Missed events not yet reported.
    lagged: u64,
}

impl LossyEventStream {
    pub(crate) fn new(queue: Arc<Queue>) -> Self {
        Self {
            queue,
            buffer: VecDeque::new(),
            lagged: 0,
        }
    }

    /// The next item, or `None` once the client is gone.
    pub async fn recv(&mut self) -> Option<Result<Event, Lagged>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for LossyEventStream {
    type Item = Result<Event, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.buffer.is_empty() {
            match this.queue.poll_take(cx, &mut this.buffer) {
                Poll::Ready(Some(missed)) => this.lagged += missed,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        if this.lagged > 0 {
            return Poll::Ready(Some(Err(Lagged(std::mem::take(&mut this.lagged)))));
        }
        Poll::Ready(this.buffer.pop_front().map(Ok))
    }
}

impl Drop for LossyEventStream {
    fn drop(&mut self) {
        self.queue.abandon();
    }
}

impl fmt::Debug for LossyEventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LossyEventStream")
            .field("buffered", &self.buffer.len())
            .field("lagged", &self.lagged)
            .finish_non_exhaustive()
    }
}
