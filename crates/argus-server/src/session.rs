//! Sessions: one task each, owning the subscriptions, the `seq` counter and
//! the replay buffer, and outliving the connection that created it.
//!
//! A session takes every market tick (attached or not), turns what its
//! subscriptions match into data messages numbered 1, 2, 3, …, keeps them in
//! its replay buffer and pushes them to the outbox of the connection it is
//! attached to. Requests reach it as [`SessionCmd`]s in order, so replies and
//! data leave in the order they happened.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use argus_core::wire::{
    ErrorCode, ErrorMessage, OrderBookSnapshot, PriceTick, Resumed, ServerMessage, SessionToken,
    Subscribed, Unsubscribed, VolumeTick,
};
use argus_core::{DataType, Filters, SubscriptionId, Symbol, UpdateFrequency};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{debug, info, warn};

use crate::firehose::{FirehoseCmd, FirehoseItem, FirehoseSub};
use crate::ids::now_rfc3339;
use crate::market::{Book, Tick};
use crate::outbox::{Out, Outbox, PushError};
use crate::request::{Rejection, SubscribeSpec};
use crate::server::{Instance, Shared};

/// Close code sent to a connection whose session another connection resumed.
const CLOSE_TAKEN_OVER: u16 = argus_core::io::CLOSE_NORMAL;

/// What a connection asks of a session. Every command names the connection;
/// a session ignores commands from connections it is not attached to.
#[derive(Debug)]
pub(crate) enum SessionCmd {
    Subscribe {
        conn: u64,
        spec: SubscribeSpec,
    },
    Unsubscribe {
        conn: u64,
        id: SubscriptionId,
    },
    /// Send this error, in order with everything else.
    Reply {
        conn: u64,
        rejection: Rejection,
    },
    /// Adopt the connection (a `resume`): answers with how many messages it
    /// replays, or why it cannot.
    Attach {
        conn: u64,
        outbox: Arc<Outbox>,
        key: Option<usize>,
        last_seq: u64,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    /// Close the connection with `code` after what is queued.
    CloseAfter {
        conn: u64,
        code: u16,
        reason: &'static str,
    },
    /// The connection is gone.
    Detach {
        conn: u64,
    },
    /// A resume replaced this fresh session: end it now.
    Discard,
}

/// A way to reach a session.
#[derive(Clone, Debug)]
pub(crate) struct SessionHandle {
    /// A small number naming the session in logs (the token never is logged).
    pub label: u64,
    pub token: Arc<str>,
    pub tx: mpsc::UnboundedSender<SessionCmd>,
}

impl SessionHandle {
    pub(crate) fn send(&self, cmd: SessionCmd) {
        // A session that is gone has nothing left to answer.
        let _ = self.tx.send(cmd);
    }
}

/// A value of one (symbol, data type).
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Price(f64),
    Volume(u64),
    Book(Arc<Book>),
}

type Key = (u16, DataType);

#[derive(Debug)]
struct Conflation {
    interval: Duration,
    /// When each key was last sent, and what.
    last: HashMap<Key, (Instant, Value)>,
    /// Latest values waiting for their key's interval to end.
    pending: HashMap<Key, Value>,
}

impl Conflation {
    /// Takes a new value; returns it when it is to be sent now.
    fn offer(&mut self, key: Key, value: Value, now: Instant) -> Option<Value> {
        match self.last.get(&key) {
            Some((_, sent)) if *sent == value => {
                self.pending.remove(&key);
                None
            }
            Some((at, _)) if now < *at + self.interval => {
                self.pending.insert(key, value);
                None
            }
            _ => {
                self.pending.remove(&key);
                self.last.insert(key, (now, value.clone()));
                Some(value)
            }
        }
    }

    /// The pending values whose interval has ended.
    fn due(&mut self, now: Instant) -> Vec<(Key, Value)> {
        let ready: Vec<Key> = self
            .pending
            .keys()
            .filter(|k| {
                self.last
                    .get(k)
                    .is_none_or(|(at, _)| *at + self.interval <= now)
            })
            .copied()
            .collect();
        ready
            .into_iter()
            .filter_map(|k| {
                let v = self.pending.remove(&k)?;
                self.last.insert(k, (now, v.clone()));
                Some((k, v))
            })
            .collect()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .keys()
            .filter_map(|k| self.last.get(k).map(|(at, _)| *at + self.interval))
            .min()
    }
}

#[derive(Debug)]
struct Sub {
    id: SubscriptionId,
    /// Indexed by universe index: whether the subscription names the symbol.
    mask: Vec<bool>,
    data_types: Vec<DataType>,
    filters: Filters,
    conflation: Option<Conflation>,
}

#[derive(Debug)]
struct Attachment {
    conn: u64,
    outbox: Arc<Outbox>,
}

/// The numbered data stream: seq, replay buffer, and where messages go.
struct Output {
    shared: Arc<Shared>,
    label: u64,
    seq: u64,
    /// The server's skip epoch last applied (fault injection).
    skip_seen: u64,
    buffer: VecDeque<(u64, Instant, Utf8Bytes)>,
    /// Every seq up to this one has left the buffer.
    pruned_upto: u64,
    max_messages: usize,
    max_age: Duration,
    attached: Option<Attachment>,
    detached_at: Option<Instant>,
}

impl Output {
    fn is_attached_to(&self, conn: u64) -> bool {
        self.attached.as_ref().is_some_and(|a| a.conn == conn)
    }

    fn detach(&mut self, now: Instant) {
        if self.attached.take().is_some() {
            self.detached_at = Some(now);
        }
    }

    /// Pushes to the attached connection, detaching from it if it cannot take more.
    fn send(&mut self, item: Out, now: Instant) {
        let Some(a) = &self.attached else { return };
        match a.outbox.push(item) {
            Ok(()) => {}
            Err(PushError::Overflow) => {
                info!(
                    conn = a.conn,
                    session = self.label,
                    "slow consumer: closing with 4000"
                );
                self.shared
                    .stats
                    .send_modify(|s| s.slow_consumer_closes += 1);
                self.detach(now);
            }
            Err(PushError::Closed) => self.detach(now),
        }
    }

    fn send_json(&mut self, message: &ServerMessage<'_>, now: Instant) {
        self.send(Out::Text(Utf8Bytes::from(message.to_json())), now);
    }

    fn prune(&mut self, now: Instant) {
        while let Some((seq, at, _)) = self.buffer.front() {
            if self.buffer.len() > self.max_messages || now.duration_since(*at) > self.max_age {
                self.pruned_upto = *seq;
                self.buffer.pop_front();
            } else {
                break;
            }
        }
    }

    /// Numbers, encodes, buffers and sends one data message.
    fn emit(
        &mut self,
        skip_epoch: u64,
        sub: &SubscriptionId,
        symbol: Symbol,
        value: &Value,
        timestamp: &str,
        now: Instant,
    ) {
        if skip_epoch > self.skip_seen {
            self.seq += skip_epoch - self.skip_seen;
            self.skip_seen = skip_epoch;
        }
        self.seq += 1;
        let sub = Cow::Borrowed(sub.as_str());
        let symbol = Cow::Borrowed(symbol.as_str());
        let timestamp = Cow::Borrowed(timestamp);
        let seq = self.seq;
        let message = match value {
            Value::Price(price) => ServerMessage::Price(PriceTick {
                sub,
                seq,
                symbol,
                price: *price,
                timestamp,
            }),
            Value::Volume(volume) => ServerMessage::Volume(VolumeTick {
                sub,
                seq,
                symbol,
                volume: *volume,
                timestamp,
            }),
            Value::Book(book) => ServerMessage::OrderBook(OrderBookSnapshot {
                sub,
                seq,
                symbol,
                bids: book.bids.clone(),
                asks: book.asks.clone(),
                timestamp,
            }),
        };
        let text = Utf8Bytes::from(self.shared.config.wire_style.write(&message));
        self.buffer.push_back((seq, now, text.clone()));
        self.prune(now);
        self.send(Out::Text(text), now);
    }
}

/// One session's task.
struct Session {
    inst: Arc<Instance>,
    handle: SessionHandle,
    key: Option<usize>,
    subs: Vec<Sub>,
    out: Output,
    last_price: Vec<f64>,
}

/// Creates a session attached to `conn`, registers it and starts its task.
pub(crate) fn spawn(
    inst: &Arc<Instance>,
    token: String,
    key: Option<usize>,
    conn: u64,
    outbox: Arc<Outbox>,
) -> SessionHandle {
    let shared = &inst.shared;
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = SessionHandle {
        label: shared.next_session.fetch_add(1, Ordering::Relaxed) + 1,
        token: Arc::from(token),
        tx,
    };
    let session = Session {
        inst: inst.clone(),
        handle: handle.clone(),
        key,
        subs: Vec::new(),
        out: Output {
            shared: shared.clone(),
            label: handle.label,
            seq: 0,
            skip_seen: shared.skip_epoch.load(Ordering::SeqCst),
            buffer: VecDeque::new(),
            pruned_upto: 0,
            max_messages: shared.config.replay_buffer_messages,
            max_age: shared.config.replay_buffer_age,
            attached: Some(Attachment { conn, outbox }),
            detached_at: None,
        },
        last_price: (0..shared.universe.len())
            .map(|i| shared.universe.start_price(i as u16))
            .collect(),
    };
    let market = inst.market.as_ref().map(broadcast::Sender::subscribe);
    inst.add_session(handle.clone());
    tokio::spawn(session.run(rx, market));
    handle
}

impl Session {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<SessionCmd>,
        mut market: Option<broadcast::Receiver<Arc<Tick>>>,
    ) {
        let mut shutdown = self.inst.shutdown.subscribe();
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => {
                        if !self.handle_cmd(cmd) {
                            break;
                        }
                    }
                    None => break,
                },
                tick = next_tick(&mut market) => match tick {
                    Ok(tick) => self.on_tick(&tick),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(session = self.handle.label, ticks = n, "session fell behind the market; ticks lost");
                    }
                    Err(broadcast::error::RecvError::Closed) => market = None,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                    if !self.on_timer(Instant::now()) {
                        break;
                    }
                }
            }
        }
        if let Some(a) = self.out.attached.take() {
            // Shutting down or expiring while attached: nothing more will come.
            debug!(
                conn = a.conn,
                session = self.handle.label,
                "session ended while attached"
            );
        }
        self.inst.remove_session(&self.handle);
        debug!(session = self.handle.label, "session ended");
    }

    fn next_deadline(&self) -> Option<Instant> {
        let expiry = self
            .out
            .detached_at
            .map(|at| at + self.inst.shared.config.session_ttl);
        self.subs
            .iter()
            .filter_map(|s| s.conflation.as_ref()?.next_deadline())
            .chain(expiry)
            .min()
    }

    /// Handles one command; false ends the session.
    fn handle_cmd(&mut self, cmd: SessionCmd) -> bool {
        let now = Instant::now();
        match cmd {
            SessionCmd::Subscribe { conn, spec } => {
                if self.out.is_attached_to(conn) {
                    self.subscribe(conn, spec, now);
                }
            }
            SessionCmd::Unsubscribe { conn, id } => {
                if self.out.is_attached_to(conn) {
                    self.unsubscribe(id, now);
                }
            }
            SessionCmd::Reply { conn, rejection } => {
                if self.out.is_attached_to(conn) {
                    self.out.send_json(&error_message(&rejection), now);
                }
            }
            SessionCmd::Attach {
                conn,
                outbox,
                key,
                last_seq,
                reply,
            } => {
                let result = self.attach(conn, outbox, key, last_seq, now);
                let _ = reply.send(result);
            }
            SessionCmd::CloseAfter { conn, code, reason } => {
                if let Some(a) = self.out.attached.as_ref().filter(|a| a.conn == conn) {
                    a.outbox.close_after(code, reason);
                }
            }
            SessionCmd::Detach { conn } => {
                if self.out.is_attached_to(conn) {
                    self.out.detach(now);
                }
            }
            SessionCmd::Discard => return false,
        }
        true
    }

    fn subscribe(&mut self, conn: u64, spec: SubscribeSpec, now: Instant) {
        let config = &self.inst.shared.config;
        let rejection = if self.subs.iter().any(|s| s.id == spec.id) {
            Some((
                ErrorCode::DuplicateSubscription,
                format!("subscription `{}` is already live", spec.id),
            ))
        } else if self.subs.len() >= config.max_subscriptions_per_connection {
            Some((
                ErrorCode::TooManySubscriptions,
                format!(
                    "this server allows {} subscriptions per connection",
                    config.max_subscriptions_per_connection
                ),
            ))
        } else {
            None
        };
        if let Some((code, message)) = rejection {
            debug!(conn, session = self.handle.label, sub = %spec.id, %code, "subscribe rejected");
            let r = Rejection::new(code, message, Some(spec.id.to_string()));
            self.out.send_json(&error_message(&r), now);
            return;
        }
        let reply = ServerMessage::Subscribed(Subscribed {
            id: Cow::Borrowed(spec.id.as_str()),
            symbols: spec
                .symbols
                .iter()
                .map(|(_, s)| Cow::Borrowed(s.as_str()))
                .collect(),
            data_types: spec.data_types.clone(),
        });
        self.out.send_json(&reply, now);
        info!(
            conn,
            session = self.handle.label,
            sub = %spec.id,
            symbols = spec.symbols.len(),
            data_types = %spec
                .data_types
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(","),
            frequency = %spec.frequency,
            "subscribed"
        );
        if config.firehose.is_some() {
            let sub = self.firehose_sub(&spec);
            self.out.send(Out::Firehose(FirehoseCmd::Start(sub)), now);
        }
        let mut mask = vec![false; self.inst.shared.universe.len()];
        for (idx, _) in &spec.symbols {
            mask[usize::from(*idx)] = true;
        }
        self.subs.push(Sub {
            id: spec.id,
            mask,
            data_types: spec.data_types,
            filters: spec.filters,
            conflation: match spec.frequency {
                UpdateFrequency::Realtime => None,
                f => f.interval().map(|interval| Conflation {
                    interval,
                    last: HashMap::new(),
                    pending: HashMap::new(),
                }),
            },
        });
    }

    fn firehose_sub(&self, spec: &SubscribeSpec) -> FirehoseSub {
        let shared = &self.inst.shared;
        let mut items = Vec::new();
        for (idx, symbol) in &spec.symbols {
            let price = shared.universe.start_price(*idx);
            if !spec.filters.admits(price) {
                continue;
            }
            for data_type in &spec.data_types {
                items.push(FirehoseItem {
                    symbol: *symbol,
                    data_type: *data_type,
                    price,
                    volume: 1_000_000 + u64::from(*idx) * 1000,
                    book: shared.firehose_books[usize::from(*idx)].clone(),
                });
            }
        }
        FirehoseSub {
            id: spec.id.clone(),
            items,
        }
    }

    fn unsubscribe(&mut self, id: SubscriptionId, now: Instant) {
        let Some(pos) = self.subs.iter().position(|s| s.id == id) else {
            let r = Rejection::new(
                ErrorCode::UnknownSubscription,
                format!("no live subscription `{id}`"),
                Some(id.to_string()),
            );
            self.out.send_json(&error_message(&r), now);
            return;
        };
        self.subs.remove(pos);
        if self.inst.shared.config.firehose.is_some() {
            self.out
                .send(Out::Firehose(FirehoseCmd::Stop(id.clone())), now);
        }
        let reply = ServerMessage::Unsubscribed(Unsubscribed {
            id: Cow::Borrowed(id.as_str()),
        });
        self.out.send_json(&reply, now);
        info!(session = self.handle.label, sub = %id, "unsubscribed");
    }

    fn attach(
        &mut self,
        conn: u64,
        outbox: Arc<Outbox>,
        key: Option<usize>,
        last_seq: u64,
        now: Instant,
    ) -> Result<u64, String> {
        if key != self.key {
            return Err("unknown or expired session".to_owned());
        }
        if self.inst.shared.config.firehose.is_some() {
            return Err("the firehose keeps no replay buffer; subscribe again".to_owned());
        }
        self.out.prune(now);
        if last_seq > self.out.seq {
            return Err(format!(
                "last_seq {last_seq} is ahead of the session, whose last seq is {}",
                self.out.seq
            ));
        }
        if last_seq < self.out.pruned_upto {
            return Err(format!(
                "the replay buffer no longer reaches seq {}",
                last_seq + 1
            ));
        }
        let replay: Vec<Out> = self
            .out
            .buffer
            .iter()
            .filter(|(seq, _, _)| *seq > last_seq)
            .map(|(_, _, text)| Out::Text(text.clone()))
            .collect();
        let replayed = replay.len() as u64;
        let resumed = ServerMessage::Resumed(Resumed {
            session: SessionToken::new(&*self.handle.token),
            subscriptions: self
                .subs
                .iter()
                .map(|s| Cow::Borrowed(s.id.as_str()))
                .collect(),
            replayed,
        });
        let first = Out::Text(Utf8Bytes::from(resumed.to_json()));
        outbox
            .push_bulk(std::iter::once(first).chain(replay))
            .map_err(|_| "the connection is closing".to_owned())?;
        if let Some(old) = self.out.attached.take()
            && old.conn != conn
        {
            old.outbox
                .close(CLOSE_TAKEN_OVER, "session resumed by another connection");
        }
        self.out.attached = Some(Attachment { conn, outbox });
        self.out.detached_at = None;
        Ok(replayed)
    }

    fn on_tick(&mut self, tick: &Tick) {
        let now = Instant::now();
        for u in &tick.updates {
            self.last_price[usize::from(u.idx)] = u.price;
        }
        if self.subs.is_empty() {
            return;
        }
        let skip_epoch = self.inst.shared.skip_epoch.load(Ordering::SeqCst);
        let universe = &self.inst.shared.universe;
        for u in &tick.updates {
            let symbol = universe.symbol(u.idx);
            for sub in &mut self.subs {
                if !sub.mask[usize::from(u.idx)] || !sub.filters.admits(u.price) {
                    continue;
                }
                for &data_type in &sub.data_types {
                    let value = match data_type {
                        DataType::Price => Value::Price(u.price),
                        DataType::Volume => Value::Volume(u.volume),
                        DataType::OrderBook => Value::Book(u.book.clone()),
                    };
                    let value = match &mut sub.conflation {
                        None => Some(value),
                        Some(c) => c.offer((u.idx, data_type), value, now),
                    };
                    if let Some(value) = value {
                        self.out
                            .emit(skip_epoch, &sub.id, symbol, &value, &tick.timestamp, now);
                    }
                }
            }
        }
    }

    /// Flushes due conflated values and expires the session; false ends it.
    fn on_timer(&mut self, now: Instant) -> bool {
        if let Some(at) = self.out.detached_at
            && now >= at + self.inst.shared.config.session_ttl
        {
            debug!(session = self.handle.label, "session expired");
            return false;
        }
        let skip_epoch = self.inst.shared.skip_epoch.load(Ordering::SeqCst);
        let universe = &self.inst.shared.universe;
        let mut timestamp: Option<String> = None;
        for sub in &mut self.subs {
            let Some(c) = &mut sub.conflation else {
                continue;
            };
            for ((idx, _), value) in c.due(now) {
                // Delivered only while the symbol's last price is within bounds.
                if !sub.filters.admits(self.last_price[usize::from(idx)]) {
                    continue;
                }
                let ts = timestamp.get_or_insert_with(now_rfc3339);
                self.out
                    .emit(skip_epoch, &sub.id, universe.symbol(idx), &value, ts, now);
            }
        }
        true
    }
}

async fn next_tick(
    market: &mut Option<broadcast::Receiver<Arc<Tick>>>,
) -> Result<Arc<Tick>, broadcast::error::RecvError> {
    match market {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn error_message(r: &Rejection) -> ServerMessage<'_> {
    ServerMessage::Error(ErrorMessage {
        code: r.code,
        message: Cow::Borrowed(&r.message),
        id: r.id.as_deref().map(Cow::Borrowed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflation_sends_at_most_once_per_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = Conflation {
            interval: s,
            last: HashMap::new(),
            pending: HashMap::new(),
        };
        let k = (0, DataType::Price);
        assert_eq!(c.offer(k, Value::Price(1.0), t0), Some(Value::Price(1.0)));
        assert_eq!(c.offer(k, Value::Price(2.0), t0 + s / 4), None);
        assert_eq!(c.offer(k, Value::Price(3.0), t0 + s / 2), None);
        assert_eq!(c.next_deadline(), Some(t0 + s));
        assert!(c.due(t0 + s / 2).is_empty());
        assert_eq!(c.due(t0 + s), vec![(k, Value::Price(3.0))]);
        assert_eq!(c.next_deadline(), None);
        // Back to the value last sent: nothing to send.
        assert_eq!(c.offer(k, Value::Price(4.0), t0 + s + s / 4), None);
        assert_eq!(c.offer(k, Value::Price(3.0), t0 + s + s / 2), None);
        assert!(c.due(t0 + 3 * s).is_empty());
        // Unchanged after the interval: nothing either.
        assert_eq!(c.offer(k, Value::Price(3.0), t0 + 4 * s), None);
        assert_eq!(
            c.offer(k, Value::Price(5.0), t0 + 4 * s),
            Some(Value::Price(5.0))
        );
    }
}
