//! A connection's bounded outbound queue.
//!
//! Its session and its reader push; its writer takes everything queued at
//! once and writes it as one batch. Pushing past the limit means the client
//! does not keep up: the queue is dropped and the connection closes with 4000
//! (the session keeps the messages in its replay buffer for a resume).

use std::collections::VecDeque;
use std::sync::Mutex;

use argus_core::io::CLOSE_SLOW_CONSUMER;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::firehose::FirehoseCmd;

/// One thing for the writer to do.
#[derive(Debug)]
pub(crate) enum Out {
    /// A text frame.
    Text(Utf8Bytes),
    /// A binary frame (only ever injected by a test: the protocol has none).
    Binary(bytes::Bytes),
    /// A ping frame.
    Ping,
    /// A change to the connection's firehose.
    Firehose(FirehoseCmd),
    /// Send this close frame after everything before it, and stop.
    Close(u16, String),
}

/// What the writer takes.
#[derive(Debug)]
pub(crate) enum Taken {
    /// The items to write, in order, now in the writer's buffer.
    Items,
    /// Send this close frame and stop.
    Close(u16, String),
}

/// Why a push failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue was over its limit; the connection now closes with 4000.
    Overflow,
    /// The connection is closing or gone.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Out>,
    /// Items of a resume replay still queued; they do not count to the limit.
    bulk: usize,
    close: Option<(u16, String)>,
    /// A close is queued behind the items: no more pushes.
    closing: bool,
    closed: bool,
}

/// The queue itself.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    limit: usize,
    /// Set once the server has decided to close: the reader stops reading.
    decided: watch::Sender<bool>,
}

impl Outbox {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            limit,
            decided: watch::Sender::new(false),
        }
    }

    /// Becomes true once a close is decided (any close, 4000 included).
    pub(crate) fn close_decided(&self) -> watch::Receiver<bool> {
        self.decided.subscribe()
    }

    fn decide(&self) {
        self.decided.send_replace(true);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item`, counting it to the limit.
    pub(crate) fn push(&self, item: Out) -> Result<(), PushError> {
        let mut s = self.lock();
        if s.closed || s.closing || s.close.is_some() {
            return Err(PushError::Closed);
        }
        if s.queue.len() - s.bulk >= self.limit {
            s.queue.clear();
            s.bulk = 0;
            s.close = Some((
                CLOSE_SLOW_CONSUMER,
                "slow consumer: outbound queue over its limit".into(),
            ));
            drop(s);
            self.decide();
            self.notify.notify_one();
            return Err(PushError::Overflow);
        }
        s.queue.push_back(item);
        drop(s);
        self.notify.notify_one();
        Ok(())
    }

    /// Queues `items` without counting them to the limit (a resume's replay).
    pub(crate) fn push_bulk(&self, items: impl IntoIterator<Item = Out>) -> Result<(), PushError> {
        let mut s = self.lock();
        if s.closed || s.closing || s.close.is_some() {
            return Err(PushError::Closed);
        }
        let before = s.queue.len();
        s.queue.extend(items);
        s.bulk += s.queue.len() - before;
        drop(s);
        self.notify.notify_one();
        Ok(())
    }

    /// Queues a ping, outside the limit.
    pub(crate) fn push_ping(&self) {
        let mut s = self.lock();
        if s.closed || s.closing || s.close.is_some() {
            return;
        }
        s.queue.push_back(Out::Ping);
        s.bulk += 1;
        drop(s);
        self.notify.notify_one();
    }

    /// Drops what is queued and asks the writer to close with `code`. The first
    /// close asked wins.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        let mut s = self.lock();
        if s.closed || s.close.is_some() {
            return;
        }
        s.queue.clear();
        s.bulk = 0;
        s.close = Some((code, reason.to_owned()));
        drop(s);
        self.decide();
        self.notify.notify_one();
    }

    /// Asks the writer to close with `code` once it has written everything
    /// queued so far; later pushes fail.
    pub(crate) fn close_after(&self, code: u16, reason: &str) {
        let mut s = self.lock();
        if s.closed || s.closing || s.close.is_some() {
            return;
        }
        s.closing = true;
        s.queue.push_back(Out::Close(code, reason.to_owned()));
        s.bulk += 1;
        drop(s);
        self.decide();
        self.notify.notify_one();
    }

    /// The writer is gone: every later push fails.
    pub(crate) fn mark_closed(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.queue.clear();
        s.bulk = 0;
    }

    /// Whether pushes still succeed.
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        let s = self.lock();
        !s.closed && !s.closing && s.close.is_none()
    }

    /// Moves everything queued into `buf` (which must be empty) without
    /// waiting; `None` when there is nothing.
    pub(crate) fn try_take(&self, buf: &mut VecDeque<Out>) -> Option<Taken> {
        let mut s = self.lock();
        if let Some((code, reason)) = s.close.take() {
            s.closed = true;
            return Some(Taken::Close(code, reason));
        }
        if s.queue.is_empty() {
            return None;
        }
        std::mem::swap(&mut s.queue, buf);
        s.bulk = 0;
        Some(Taken::Items)
    }

    /// Waits for the next push or close (or returns at once if one came
    /// since the last wait).
    pub(crate) async fn wait(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Out {
        Out::Text(s.into())
    }

    #[test]
    fn overflow_closes_with_4000() {
        let o = Outbox::new(2);
        o.push(text("a")).unwrap();
        o.push(text("b")).unwrap();
        assert_eq!(o.push(text("c")), Err(PushError::Overflow));
        assert_eq!(o.push(text("d")), Err(PushError::Closed));
        let mut buf = VecDeque::new();
        assert!(matches!(o.try_take(&mut buf), Some(Taken::Close(4000, _))));
        assert!(buf.is_empty());
    }

    #[test]
    fn bulk_does_not_count() {
        let o = Outbox::new(2);
        o.push_bulk((0..10).map(|_| text("r"))).unwrap();
        o.push_ping();
        o.push(text("a")).unwrap();
        o.push(text("b")).unwrap();
        let mut buf = VecDeque::new();
        assert!(matches!(o.try_take(&mut buf), Some(Taken::Items)));
        assert_eq!(buf.len(), 13);
        buf.clear();
        assert!(o.try_take(&mut buf).is_none());
        o.close(1001, "bye");
        o.close(1000, "ignored");
        assert!(matches!(o.try_take(&mut buf), Some(Taken::Close(1001, _))));
        assert!(!o.is_open());
    }

    #[test]
    fn close_after_keeps_what_is_queued() {
        let o = Outbox::new(8);
        o.push(text("a")).unwrap();
        o.close_after(1008, "abuse");
        assert_eq!(o.push(text("b")), Err(PushError::Closed));
        let mut buf = VecDeque::new();
        assert!(matches!(o.try_take(&mut buf), Some(Taken::Items)));
        assert!(matches!(buf.pop_back(), Some(Out::Close(1008, _))));
        assert_eq!(buf.len(), 1);
    }
}
