//! The bounded queue between the connection task and the handler task, and
//! what happens when it is full.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use argus_core::{DataType, MarketData, Symbol};
use serde::Serialize;
use tokio::sync::Notify;

/// What the connection task does with a message when the handler queue is
/// full (the handlers are slower than the feed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum QueuePolicy {
    /// Stop reading the socket until a handler takes a message: nothing is
    /// lost, and the server sees the client slow down (a server may drop a
    /// consumer that stays too slow, close code 4000; the client then
    /// reconnects and resumes without loss). Timers and commands are still
    /// served while the queue is full, but a ping's answer is not read
    /// either, so a queue that stays full for longer than `timeout` makes
    /// the link look dead.
    ///
    /// With only synchronous handlers registered, the connection task calls
    /// them itself and nothing is queued: the lowest latency and cost, and
    /// the same lossless slow-down.
    #[default]
    Backpressure,
    /// Drop the oldest queued message to make room (counted in
    /// [`QueueStats::dropped`]).
    DropOldest,
    /// Keep only the latest message per (symbol, data type): a new message
    /// replaces the newest queued one of the same symbol and type (counted in
    /// [`QueueStats::conflated`]) and goes to the back, so handlers still see
    /// seqs in increasing order. When no queued message shares its key, the
    /// oldest message is dropped instead (counted in [`QueueStats::dropped`]):
    /// give the queue more room than the number of (symbol, type) pairs
    /// subscribed.
    ConflateLatest,
}

/// The handler queue's counters. At any snapshot,
/// `enqueued == delivered + dropped + conflated + depth`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// The policy in force.
    pub policy: QueuePolicy,
    /// Room in the queue.
    pub capacity: usize,
    /// Messages waiting now.
    pub depth: usize,
    /// The most messages that ever waited at once.
    pub max_depth: usize,
    /// Messages for the handlers: put in the queue, or handed to the
    /// handlers at once by the connection task (see [`QueuePolicy::Backpressure`]).
    pub enqueued: u64,
    /// Messages handed to the handlers (taken out of the queue, or handed
    /// on at once).
    pub delivered: u64,
    /// Messages dropped to make room ([`QueuePolicy::DropOldest`], or
    /// [`QueuePolicy::ConflateLatest`] without a message to replace).
    pub dropped: u64,
    /// Messages replaced by a newer one of the same symbol and type.
    pub conflated: u64,
    /// Handler calls that panicked (the message is skipped for that handler).
    pub handler_panics: u64,
}

type Key = (Symbol, DataType);

fn key(data: &MarketData) -> Key {
    (data.symbol(), data.data_type())
}

#[derive(Default)]
struct State {
    items: VecDeque<MarketData>,
    /// How many queued messages each key has (conflation only).
    keys: HashMap<Key, usize>,
    stats: QueueStats,
    closed: bool,
}

impl State {
    fn forget(&mut self, data: &MarketData) {
        if self.stats.policy == QueuePolicy::ConflateLatest {
            let k = key(data);
            if let Some(n) = self.keys.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.keys.remove(&k);
                }
            }
        }
    }
}

/// A bounded queue with one producer (the connection task) and one consumer
/// (the handler task).
pub(crate) struct Queue {
    state: Mutex<State>,
    capacity: usize,
    policy: QueuePolicy,
    /// Signalled when a message arrives or the queue closes.
    ready: Notify,
    /// Signalled when a message leaves.
    space: Notify,
    /// Messages queued and not yet through the handlers (including those
    /// the handler task took and is still dispatching).
    in_flight: AtomicUsize,
    /// Messages the connection task handed to the handlers itself, without
    /// queuing them (one writer: the connection task).
    direct: AtomicU64,
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
            ready: Notify::new(),
            space: Notify::new(),
            in_flight: AtomicUsize::new(0),
            direct: AtomicU64::new(0),
        }
    }

    /// The policy in force.
    pub(crate) fn policy(&self) -> QueuePolicy {
        self.policy
    }

    /// Whether nothing is queued nor being dispatched by the handler task:
    /// the connection task may then call the handlers itself without
    /// overtaking anything.
    pub(crate) fn is_quiet(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// The handler task finished dispatching `n` messages it took.
    pub(crate) fn dispatched(&self, n: usize) {
        self.in_flight.fetch_sub(n, Ordering::Release);
    }

    /// The connection task handed `n` messages to the handlers itself.
    pub(crate) fn delivered_directly(&self, n: u64) {
        // One writer: a load and a store, no read-modify-write.
        let total = self.direct.load(Ordering::Relaxed) + n;
        self.direct.store(total, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the producer must wait before reading more (backpressure).
    pub(crate) fn is_blocked(&self) -> bool {
        self.policy == QueuePolicy::Backpressure && self.lock().items.len() >= self.capacity
    }

    /// Waits until a message leaves the queue (or returns at once if one left
    /// since the last wait).
    pub(crate) async fn space(&self) {
        self.space.notified().await;
    }

    /// Adds a message; never waits. Under backpressure the producer checks
    /// [`is_blocked`](Self::is_blocked) before reading, so the queue is not full here.
    /// How many more messages fit before backpressure applies (unbounded
    /// under the other policies, which never block).
    pub(crate) fn room(&self) -> usize {
        if self.policy == QueuePolicy::Backpressure {
            self.capacity.saturating_sub(self.lock().items.len())
        } else {
            usize::MAX
        }
    }

    /// Queues every message of `batch` in order, taking the lock and waking
    /// the handler task once; leaves `batch` empty.
    pub(crate) fn push_batch(&self, batch: &mut Vec<MarketData>) {
        if batch.is_empty() {
            return;
        }
        let mut state = self.lock();
        let before = state.items.len();
        let pushed = batch.len();
        for data in batch.drain(..) {
            self.push_locked(&mut state, data);
        }
        // Dropped or conflated messages leave the flight at once.
        let lost = (before + pushed).saturating_sub(state.items.len());
        if !state.closed {
            self.in_flight.fetch_add(pushed - lost, Ordering::Release);
        }
        drop(state);
        self.ready.notify_one();
    }

    #[cfg(test)]
    pub(crate) fn push(&self, data: MarketData) {
        self.push_batch(&mut vec![data]);
    }

    fn push_locked(&self, state: &mut State, data: MarketData) {
        if state.closed {
            return;
        }
        state.stats.enqueued += 1;
        if state.items.len() >= self.capacity {
            match self.policy {
                QueuePolicy::Backpressure => {}
                QueuePolicy::DropOldest => {
                    if let Some(old) = state.items.pop_front() {
                        state.forget(&old);
                        state.stats.dropped += 1;
                    }
                }
                QueuePolicy::ConflateLatest => {
                    let k = key(&data);
                    let position = if state.keys.contains_key(&k) {
                        state.items.iter().rposition(|m| key(m) == k)
                    } else {
                        None
                    };
                    let old = match position {
                        Some(i) => {
                            state.stats.conflated += 1;
                            state.items.remove(i)
                        }
                        None => {
                            state.stats.dropped += 1;
                            state.items.pop_front()
                        }
                    };
                    if let Some(old) = old {
                        state.forget(&old);
                    }
                }
            }
        }
        if self.policy == QueuePolicy::ConflateLatest {
            *state.keys.entry(key(&data)).or_default() += 1;
        }
        state.items.push_back(data);
        state.stats.max_depth = state.stats.max_depth.max(state.items.len());
    }

    /// The next message, or `None` once the queue is closed.
    pub(crate) async fn pop(&self) -> Option<MarketData> {
        loop {
            {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                if let Some(data) = state.items.pop_front() {
                    state.forget(&data);
                    state.stats.delivered += 1;
                    drop(state);
                    self.space.notify_one();
                    return Some(data);
                }
            }
            self.ready.notified().await;
        }
    }

    /// Stops the consumer; queued messages are discarded.
    /// Takes what is queued, waiting while nothing is; `None` once closed.
    /// Under backpressure it takes everything at once (one lock and one
    /// wake-up of the connection task for the lot); under the other policies
    /// one message, so that what waits stays subject to dropping and
    /// conflation.
    pub(crate) async fn pop_batch(&self, into: &mut VecDeque<MarketData>) -> bool {
        if self.policy != QueuePolicy::Backpressure {
            return match self.pop().await {
                Some(data) => {
                    into.push_back(data);
                    true
                }
                None => false,
            };
        }
        loop {
            {
                let mut state = self.lock();
                if state.closed {
                    return false;
                }
                if !state.items.is_empty() {
                    std::mem::swap(&mut state.items, into);
                    state.stats.delivered += into.len() as u64;
                    drop(state);
                    self.space.notify_one();
                    return true;
                }
            }
            self.ready.notified().await;
        }
    }

    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.in_flight
            .fetch_sub(state.items.len(), Ordering::Release);
        state.items.clear();
        state.keys.clear();
        drop(state);
        self.ready.notify_one();
    }

    pub(crate) fn stats(&self) -> QueueStats {
        let state = self.lock();
        let direct = self.direct.load(Ordering::Relaxed);
        QueueStats {
            depth: state.items.len(),
            enqueued: state.stats.enqueued + direct,
            delivered: state.stats.delivered + direct,
            ..state.stats.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_core::SubscriptionId;

    fn tick(kind: &str, symbol: &str, seq: u64) -> MarketData {
        let body = match kind {
            "price" => r#""price":1.5"#,
            _ => r#""volume":7"#,
        };
        let text = format!(
            r#"{{"type":"{kind}","sub":"s","seq":{seq},"symbol":"{symbol}",{body},"timestamp":"2026-11-24T09:49:56.123Z"}}"#
        );
        let msg = argus_core::wire::ServerMessage::decode(&text).unwrap();
        MarketData::from_wire(&msg, SubscriptionId::new("s").unwrap())
            .unwrap()
            .unwrap()
    }

    fn seqs(q: &Queue) -> Vec<u64> {
        q.lock().items.iter().map(MarketData::seq).collect()
    }

    fn adds_up(s: &QueueStats) -> bool {
        s.enqueued == s.delivered + s.dropped + s.conflated + s.depth as u64
    }

    #[test]
    fn drop_oldest() {
        let q = Queue::new(2, QueuePolicy::DropOldest);
        for seq in 1..=5 {
            q.push(tick("price", "A", seq));
        }
        assert_eq!(seqs(&q), [4, 5]);
        let s = q.stats();
        assert_eq!((s.dropped, s.depth, s.max_depth), (3, 2, 2));
        assert!(adds_up(&s));
    }

    #[test]
    fn conflate_keeps_the_latest_per_key_in_seq_order() {
        let q = Queue::new(3, QueuePolicy::ConflateLatest);
        q.push(tick("price", "A", 1));
        q.push(tick("price", "B", 2));
        q.push(tick("volume", "A", 3));
        q.push(tick("price", "A", 4)); // replaces 1
        q.push(tick("price", "B", 5)); // replaces 2
        assert_eq!(seqs(&q), [3, 4, 5]);
        q.push(tick("price", "C", 6)); // no C queued: the oldest goes
        assert_eq!(seqs(&q), [4, 5, 6]);
        let s = q.stats();
        assert_eq!((s.conflated, s.dropped), (2, 1));
        assert!(adds_up(&s));
        assert_eq!(q.lock().keys.values().sum::<usize>(), 3);
    }

    #[tokio::test]
    async fn backpressure_blocks_and_pop_frees() {
        let q = Queue::new(2, QueuePolicy::Backpressure);
        q.push(tick("price", "A", 1));
        assert!(!q.is_blocked());
        q.push(tick("price", "A", 2));
        assert!(q.is_blocked());
        assert_eq!(q.pop().await.unwrap().seq(), 1);
        q.space().await; // a permit was stored by the pop
        assert!(!q.is_blocked());
        let s = q.stats();
        assert_eq!((s.enqueued, s.delivered, s.depth), (2, 1, 1));
        q.close();
        assert!(q.pop().await.is_none());
    }
}
