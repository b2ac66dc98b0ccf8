//! A bounded queue between the connection task (the one producer) and one
//! consumer (the handler task, or one event stream), and what happens when
//! it is full.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use argus_core::{DataType, Event, Symbol};
use serde::Serialize;

/// What happens when a consumer (the handlers, or an event stream) falls
/// behind the feed and its queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum QueuePolicy {
    /// Stop reading the socket until the consumer takes an event: nothing
    /// is lost, and the server sees the client slow down (a server may drop
    /// a consumer that stays too slow, close code 4000; the client then
    /// reconnects and resumes without loss). Timers and commands are still
    /// served while the queue is full, but a ping's answer is not read
    /// either, so a queue that stays full for longer than `timeout` makes
    /// the link look dead.
    ///
    /// Synchronous handlers are called by the connection task itself under
    /// this policy: nothing is queued for them, the lowest latency and cost,
    /// and the same lossless slow-down.
    #[default]
    Backpressure,
    /// Drop the oldest queued event to make room (counted in
    /// [`QueueStats::dropped`]).
    DropOldest,
    /// Keep only the latest data message per (symbol, data type): a new
    /// message replaces the newest queued one of the same symbol and type
    /// (counted in [`QueueStats::conflated`]) and goes to the back, so
    /// seqs still increase. When no queued message shares its key, the
    /// oldest event is dropped instead (counted in [`QueueStats::dropped`]):
    /// give the queue more room than the number of (symbol, type) pairs
    /// subscribed.
    ConflateLatest,
}

impl QueuePolicy {
    /// Whether the policy may lose events (every policy but backpressure).
    pub fn is_lossy(self) -> bool {
        self != Self::Backpressure
    }
}

/// A queue's counters. At any snapshot,
/// `enqueued == delivered + dropped + conflated + depth`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// The policy in force.
    pub policy: QueuePolicy,
    /// Room in the queue.
    pub capacity: usize,
    /// Events waiting now.
    pub depth: usize,
    /// The most events that ever waited at once.
    pub max_depth: usize,
    /// Events put in the queue.
    pub enqueued: u64,
    /// Events taken out by the consumer.
    pub delivered: u64,
    /// Events dropped to make room.
    pub dropped: u64,
    /// Data messages replaced by a newer one of the same symbol and type.
    pub conflated: u64,
    /// Events handed to synchronous handlers by the connection task itself,
    /// without a queue (handler queue only).
    pub inline: u64,
    /// Handler calls that panicked (the event is skipped for that handler;
    /// handler queue only).
    pub handler_panics: u64,
}

type Key = (Symbol, DataType);

fn key(event: &Event) -> Option<Key> {
    match event {
        Event::Data(data) => Some((data.symbol(), data.data_type())),
        _ => None,
    }
}

#[derive(Default)]
struct State {
    items: VecDeque<Event>,
    /// How many queued data messages each key has (conflation only).
    keys: HashMap<Key, usize>,
    stats: QueueStats,
    /// Events dropped or conflated since the consumer last took one.
    missed: u64,
    /// The producer is gone: the consumer ends once the queue is empty.
    producer_gone: bool,
    /// The consumer is gone: nothing is queued any more.
    consumer_gone: bool,
    consumer: Option<Waker>,
    producer: Option<Waker>,
}

impl State {
    fn forget(&mut self, event: &Event) {
        if self.stats.policy == QueuePolicy::ConflateLatest
            && let Some(k) = key(event)
            && let Some(n) = self.keys.get_mut(&k)
        {
            *n -= 1;
            if *n == 0 {
                self.keys.remove(&k);
            }
        }
    }
}

/// A bounded queue of events with one producer and one consumer.
pub(crate) struct Queue {
    state: Mutex<State>,
    capacity: usize,
    policy: QueuePolicy,
}

impl Queue {
    pub(crate) fn new(capacity: usize, policy: QueuePolicy) -> Self {
        Self {
            state: Mutex::new(State {
                stats: QueueStats {
                    policy,
                    capacity,
                    ..QueueStats::default()
                },
                ..State::default()
            }),
            capacity,
            policy,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the producer must not read more for now (backpressure).
    pub(crate) fn is_full(&self) -> bool {
        let state = self.lock();
        self.policy == QueuePolicy::Backpressure
            && !state.consumer_gone
            && state.items.len() >= self.capacity
    }

    /// How many more events fit before backpressure applies (unbounded under
    /// the other policies, which never block).
    pub(crate) fn room(&self) -> usize {
        let state = self.lock();
        if self.policy == QueuePolicy::Backpressure && !state.consumer_gone {
            self.capacity.saturating_sub(state.items.len())
        } else {
            usize::MAX
        }
    }

    /// Ready once the queue has room (or its consumer is gone).
    pub(crate) fn poll_space(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if state.consumer_gone || state.items.len() < self.capacity {
            return Poll::Ready(());
        }
        state.producer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Whether the consumer went away (a dropped stream).
    pub(crate) fn is_abandoned(&self) -> bool {
        self.lock().consumer_gone
    }

    /// Adds an event; never waits. Under backpressure the producer checks
    /// [`room`](Self::room) before reading, so the queue exceeds its
    /// capacity by at most the events of one frame. False when the consumer
    /// is gone (the event is dropped: nobody would read it).
    pub(crate) fn push(&self, event: Event) -> bool {
        let mut state = self.lock();
        if state.consumer_gone {
            return false;
        }
        state.stats.enqueued += 1;
        if state.items.len() >= self.capacity {
            self.make_room(&mut state, &event);
        }
        if self.policy == QueuePolicy::ConflateLatest
            && let Some(k) = key(&event)
        {
            *state.keys.entry(k).or_default() += 1;
        }
        state.items.push_back(event);
        state.stats.max_depth = state.stats.max_depth.max(state.items.len());
        let consumer = state.consumer.take();
        drop(state);
        if let Some(waker) = consumer {
            waker.wake();
        }
        true
    }

    fn make_room(&self, state: &mut State, incoming: &Event) {
        let old = match self.policy {
            QueuePolicy::Backpressure => return,
            QueuePolicy::DropOldest => {
                state.stats.dropped += 1;
                state.items.pop_front()
            }
            QueuePolicy::ConflateLatest => {
                let position = key(incoming)
                    .filter(|k| state.keys.contains_key(k))
                    .and_then(|k| {
                        state
                            .items
                            .iter()
                            .rposition(|e| key(e).as_ref() == Some(&k))
                    });
                match position {
                    Some(i) => {
                        state.stats.conflated += 1;
                        state.items.remove(i)
                    }
                    None => {
                        state.stats.dropped += 1;
                        state.items.pop_front()
                    }
                }
            }
        };
        if let Some(old) = old {
            state.missed += 1;
            state.forget(&old);
        }
    }

    /// Takes queued events into `into`: everything under backpressure (one
    /// lock and one wake-up for the lot), one event under the other policies
    /// (so what waits stays subject to dropping and conflation). Ready with
    /// the number of events missed (dropped or conflated) since the last
    /// take, or `None` once the producer is gone and the queue is empty.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        into: &mut VecDeque<Event>,
    ) -> Poll<Option<u64>> {
        let mut state = self.lock();
        if state.items.is_empty() {
            if state.producer_gone {
                return Poll::Ready(None);
            }
            state.consumer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let taken = if self.policy == QueuePolicy::Backpressure {
            let n = state.items.len();
            into.extend(state.items.drain(..));
            n
        } else {
            let event = state.items.pop_front().expect("not empty");
            state.forget(&event);
            into.push_back(event);
            1
        };
        state.stats.delivered += taken as u64;
        let missed = std::mem::take(&mut state.missed);
        let producer = state.producer.take();
        drop(state);
        if let Some(waker) = producer {
            waker.wake();
        }
        Poll::Ready(Some(missed))
    }

    /// The producer is done: the consumer takes what is queued, then ends.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.producer_gone = true;
        let consumer = state.consumer.take();
        drop(state);
        if let Some(waker) = consumer {
            waker.wake();
        }
    }

    /// The consumer is gone: what is queued is discarded, and the producer
    /// is never held up by this queue again.
    pub(crate) fn abandon(&self) {
        let mut state = self.lock();
        state.consumer_gone = true;
        state.items.clear();
        state.keys.clear();
        let producer = state.producer.take();
        drop(state);
        if let Some(waker) = producer {
            waker.wake();
        }
    }

    pub(crate) fn stats(&self) -> QueueStats {
        let state = self.lock();
        QueueStats {
            depth: state.items.len(),
            ..state.stats.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_core::{MarketData, SubscriptionId};
    use futures_util::task::noop_waker_ref;

    fn tick(symbol: &str, seq: u64) -> Event {
        let text = format!(
            r#"{{"type":"price","sub":"s","seq":{seq},"symbol":"{symbol}","price":1.0,"timestamp":"2026-11-24T09:49:56.123Z"}}"#
        );
        let msg = argus_core::wire::ServerMessage::decode(&text).unwrap();
        Event::Data(
            MarketData::from_wire(&msg, SubscriptionId::new("s").unwrap())
                .unwrap()
                .unwrap(),
        )
    }

    fn take(q: &Queue) -> (Vec<u64>, u64) {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut into = VecDeque::new();
        let mut missed = 0;
        while let Poll::Ready(Some(m)) = q.poll_take(&mut cx, &mut into) {
            missed += m;
        }
        let seqs = into
            .iter()
            .map(|e| match e {
                Event::Data(d) => d.seq(),
                _ => 0,
            })
            .collect();
        (seqs, missed)
    }

    fn adds_up(s: &QueueStats) -> bool {
        s.enqueued == s.delivered + s.dropped + s.conflated + s.depth as u64
    }

    #[test]
    fn drop_oldest() {
        let q = Queue::new(3, QueuePolicy::DropOldest);
        for seq in 1..=5 {
            q.push(tick("AAPL", seq));
        }
        assert_eq!(take(&q), (vec![3, 4, 5], 2));
        let s = q.stats();
        assert_eq!((s.dropped, s.delivered, s.max_depth), (2, 3, 3));
        assert!(adds_up(&s));
    }

    #[test]
    fn conflate_keeps_the_latest_per_key_in_seq_order() {
        let q = Queue::new(2, QueuePolicy::ConflateLatest);
        q.push(tick("AAPL", 1));
        q.push(tick("MSFT", 2));
        q.push(tick("AAPL", 3));
        q.push(tick("AAPL", 4));
        assert_eq!(take(&q).0, vec![2, 4]);
        let s = q.stats();
        assert_eq!((s.conflated, s.dropped), (2, 0));
        assert!(adds_up(&s));
    }

    #[test]
    fn backpressure_fills_and_taking_frees() {
        let q = Queue::new(2, QueuePolicy::Backpressure);
        let mut cx = Context::from_waker(noop_waker_ref());
        q.push(tick("AAPL", 1));
        assert_eq!(q.room(), 1);
        q.push(tick("AAPL", 2));
        assert!(q.is_full());
        assert!(q.poll_space(&mut cx).is_pending());
        assert_eq!(take(&q), (vec![1, 2], 0));
        assert!(q.poll_space(&mut cx).is_ready());
        q.abandon();
        q.push(tick("AAPL", 3));
        assert!(!q.is_full());
        assert_eq!(q.room(), usize::MAX, "an abandoned queue holds nobody up");
    }

    #[test]
    fn a_closed_queue_ends_after_what_it_holds() {
        let q = Queue::new(4, QueuePolicy::Backpressure);
        q.push(tick("AAPL", 1));
        q.close();
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut into = VecDeque::new();
        assert_eq!(q.poll_take(&mut cx, &mut into), Poll::Ready(Some(0)));
        assert_eq!(q.poll_take(&mut cx, &mut into), Poll::Ready(None));
    }
}
