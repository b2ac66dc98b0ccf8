//! Sessions: one task each, owning the subscriptions, the `seq` counter and
//! the replay buffer, and outliving the connection that created it.
//!
//! An attached session takes every market tick, turns what its
//! subscriptions match into data messages numbered 1, 2, 3, …, keeps them in
//! its replay buffer (within its byte budget and the server's) and pushes
//! them to the outbox of its connection. A detached session does no market
//! work: a resume first catches up from the market's recent ticks. Requests
//! reach it as [`SessionCmd`]s in order, so replies and data leave in the
//! order they happened; it also counts rejected requests toward the 1008
//! close.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use argus_core::io::CLOSE_POLICY;
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

/// Bytes a buffered message costs besides its text (the entry, the
/// allocation's header), for the replay budgets.
const BUFFERED_OVERHEAD: usize = 64;

/// What a connection asks of a session. Every command names the connection;
/// a session ignores commands from connections it is not attached to.
#[derive(Debug)]
pub(crate) enum SessionCmd {
    Subscribe {
        conn: u64,
        spec: Box<SubscribeSpec>,
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
    /// The api key it belongs to (an index into the configured keys).
    pub key: Option<usize>,
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
    /// Bytes of the messages in `buffer`.
    buffer_bytes: usize,
    /// Every seq up to this one has left the buffer.
    pruned_upto: u64,
    max_messages: usize,
    max_age: Duration,
    max_bytes: usize,
    /// Consecutive requests answered with an error.
    rejected_in_a_row: u32,
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

    /// Answers a request with an error, and closes with 1008 once too many
    /// requests in a row were rejected.
    fn reject(&mut self, r: &Rejection, now: Instant) {
        self.send_json(&error_message(r), now);
        self.rejected_in_a_row += 1;
        if let Some(limit) = self.shared.config.abuse_error_limit
            && self.rejected_in_a_row >= limit
            && let Some(a) = &self.attached
        {
            info!(
                conn = a.conn,
                session = self.label,
                rejected = self.rejected_in_a_row,
                "too many rejected requests; closing with 1008"
            );
            a.outbox
                .close_after(CLOSE_POLICY, "too many rejected requests");
        }
    }

    fn accepted(&mut self) {
        self.rejected_in_a_row = 0;
    }

    fn pop_oldest(&mut self) {
        if let Some((seq, _, text)) = self.buffer.pop_front() {
            self.pruned_upto = seq;
            let size = text.len() + BUFFERED_OVERHEAD;
            self.buffer_bytes -= size;
            self.shared.replay_bytes.fetch_sub(size, Ordering::Relaxed);
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some((_, at, _)) = self.buffer.front() {
            if self.buffer.len() > self.max_messages
                || self.buffer_bytes > self.max_bytes
                || now.duration_since(*at) > self.max_age
            {
                self.pop_oldest();
            } else {
                break;
            }
        }
    }

    /// Keeps a data message for a resume, within the session's budget and
    /// the server's.
    fn keep(&mut self, inst: &Instance, seq: u64, text: Utf8Bytes, now: Instant) {
        let size = text.len() + BUFFERED_OVERHEAD;
        self.buffer.push_back((seq, now, text));
        self.buffer_bytes += size;
        let total = self.shared.replay_bytes.fetch_add(size, Ordering::Relaxed) + size;
        self.prune(now);
        if total > self.shared.config.replay_memory_limit && !inst.evict_for_memory(self.label) {
            // Every session is attached: this one gives up its oldest messages.
            while self.shared.replay_bytes.load(Ordering::Relaxed)
                > self.shared.config.replay_memory_limit
                && !self.buffer.is_empty()
            {
                self.pop_oldest();
            }
        }
    }

    /// Gives the buffer's bytes back to the server's budget.
    fn release(&mut self) {
        self.shared
            .replay_bytes
            .fetch_sub(self.buffer_bytes, Ordering::Relaxed);
        self.buffer_bytes = 0;
        self.buffer.clear();
    }

    /// Numbers, encodes, buffers and sends one data message.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        inst: &Instance,
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
        self.keep(inst, seq, text.clone(), now);
        self.send(Out::Text(text), now);
    }
}

/// One session's task.
///
/// While attached it takes every market tick live. Detached it does no
/// market work at all: it drops its market subscription, and a resume first
/// catches up from the server's recent ticks (the market's history, shared
/// by every session), producing exactly the messages it would have
/// produced. If the history no longer reaches back far enough, the resume
/// fails with `resume_failed` and the session ends.
struct Session {
    inst: Arc<Instance>,
    handle: SessionHandle,
    key: Option<usize>,
    subs: Vec<Sub>,
    out: Output,
    last_price: Vec<f64>,
    /// Live market ticks, while attached (never with the firehose).
    market: Option<broadcast::Receiver<Arc<Tick>>>,
    /// The number of the last tick taken.
    last_tick: u64,
    /// What the server was last told of `out.detached_at`.
    published_detached: Option<Instant>,
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
        key,
        tx,
    };
    let market = inst.market.as_ref().map(broadcast::Sender::subscribe);
    // Ticks from the next one on: every earlier one is in the history.
    let last_tick = crate::server::lock(&inst.history).latest;
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
            buffer_bytes: 0,
            pruned_upto: 0,
            max_messages: shared.config.replay_buffer_messages,
            max_age: shared.config.replay_buffer_age,
            max_bytes: shared.config.replay_buffer_bytes,
            rejected_in_a_row: 0,
            attached: Some(Attachment { conn, outbox }),
            detached_at: None,
        },
        last_price: (0..shared.universe.len())
            .map(|i| shared.universe.start_price(i as u16))
            .collect(),
        market,
        last_tick,
        published_detached: None,
    };
    inst.add_session(handle.clone());
    tokio::spawn(session.run(rx));
    handle
}

impl Session {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<SessionCmd>) {
        let mut shutdown = self.inst.shutdown.subscribe();
        loop {
            self.after_change();
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
                tick = next_tick(&mut self.market) => match tick {
                    Ok(tick) => self.on_tick(&tick, Instant::now()),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(session = self.handle.label, ticks = n, "session fell behind the market; ticks lost");
                    }
                    Err(broadcast::error::RecvError::Closed) => self.market = None,
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
        self.out.release();
        self.inst.remove_session(&self.handle);
        debug!(session = self.handle.label, "session ended");
    }

    /// Detached: stops taking ticks, and tells the server since when it is
    /// detached (eviction takes the oldest first).
    fn after_change(&mut self) {
        if self.out.attached.is_none() {
            self.market = None;
        }
        if self.published_detached != self.out.detached_at {
            self.published_detached = self.out.detached_at;
            self.inst.set_detached(&self.handle, self.out.detached_at);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        if let Some(at) = self.out.detached_at {
            // Detached: nothing to do but expire.
            return Some(at + self.inst.shared.config.session_ttl);
        }
        self.subs
            .iter()
            .filter_map(|s| s.conflation.as_ref()?.next_deadline())
            .min()
    }

    /// Handles one command; false ends the session.
    fn handle_cmd(&mut self, cmd: SessionCmd) -> bool {
        let now = Instant::now();
        match cmd {
            SessionCmd::Subscribe { conn, spec } => {
                if self.out.is_attached_to(conn) {
                    self.subscribe(conn, *spec, now);
                }
            }
            SessionCmd::Unsubscribe { conn, id } => {
                if self.out.is_attached_to(conn) {
                    self.unsubscribe(id, now);
                }
            }
            SessionCmd::Reply { conn, rejection } => {
                if self.out.is_attached_to(conn) {
                    self.out.reject(&rejection, now);
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
                let stale = matches!(result, Err(AttachError::Stale));
                let _ = reply.send(result.map_err(|e| e.to_string()));
                if stale {
                    info!(
                        session = self.handle.label,
                        "session data no longer available; ending it"
                    );
                    return false;
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
            self.out.reject(&r, now);
            return;
        }
        self.out.accepted();
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
            self.out.reject(&r, now);
            return;
        };
        self.out.accepted();
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
    ) -> Result<u64, AttachError> {
        let failed = |why: String| Err(AttachError::Refused(why));
        if key != self.key {
            return failed("unknown or expired session".to_owned());
        }
        if self.inst.shared.config.firehose.is_some() {
            return failed("the firehose keeps no replay buffer; subscribe again".to_owned());
        }
        if self.market.is_none() && self.inst.market.is_some() {
            self.catch_up(now)?;
        }
        self.out.prune(now);
        if last_seq > self.out.seq {
            return failed(format!(
                "last_seq {last_seq} is ahead of the session, whose last seq is {}",
                self.out.seq
            ));
        }
        if last_seq < self.out.pruned_upto {
            return failed(format!(
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
            .map_err(|_| AttachError::Refused("the connection is closing".to_owned()))?;
        if let Some(old) = self.out.attached.take()
            && old.conn != conn
        {
            old.outbox
                .close(CLOSE_TAKEN_OVER, "session resumed by another connection");
        }
        self.out.attached = Some(Attachment { conn, outbox });
        self.out.detached_at = None;
        self.out.accepted();
        Ok(replayed)
    }

    /// Back from detached: takes the market live again and first produces,
    /// from the market's history, what it would have produced meanwhile.
    fn catch_up(&mut self, now: Instant) -> Result<(), AttachError> {
        let Some(tx) = &self.inst.market else {
            return Ok(());
        };
        // Live first, so that no tick falls between the history and live.
        let live = tx.subscribe();
        let missed: Vec<Arc<Tick>> = {
            let history = crate::server::lock(&self.inst.history);
            let first = history.ticks.front().map_or(history.latest + 1, |t| t.no);
            if first > self.last_tick + 1 {
                return Err(AttachError::Stale);
            }
            history
                .ticks
                .iter()
                .filter(|t| t.no > self.last_tick)
                .cloned()
                .collect()
        };
        let caught_up = missed.len();
        for tick in missed {
            self.flush_due(tick.at, Some(&tick.timestamp));
            self.on_tick(&tick, tick.at);
        }
        self.flush_due(now, None);
        self.market = Some(live);
        debug!(session = self.handle.label, ticks = caught_up, "caught up");
        Ok(())
    }

    fn on_tick(&mut self, tick: &Tick, now: Instant) {
        if tick.no <= self.last_tick {
            return;
        }
        self.last_tick = tick.no;
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
                        self.out.emit(
                            &self.inst,
                            skip_epoch,
                            &sub.id,
                            symbol,
                            &value,
                            &tick.timestamp,
                            now,
                        );
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
        if self.out.detached_at.is_none() {
            self.flush_due(now, None);
        }
        true
    }

    /// Sends the conflated values due at `now`, stamped `timestamp` (the
    /// current time when `None`).
    fn flush_due(&mut self, now: Instant, timestamp: Option<&str>) {
        let skip_epoch = self.inst.shared.skip_epoch.load(Ordering::SeqCst);
        let universe = &self.inst.shared.universe;
        let mut timestamp: Option<String> = timestamp.map(str::to_owned);
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
                self.out.emit(
                    &self.inst,
                    skip_epoch,
                    &sub.id,
                    universe.symbol(idx),
                    &value,
                    ts,
                    now,
                );
            }
        }
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

/// Why a resume did not take the session.
#[derive(Debug)]
enum AttachError {
    /// Answered with `resume_failed`; the session goes on.
    Refused(String),
    /// The market's history no longer covers the time it was detached: it
    /// cannot produce its messages any more, and ends.
    Stale,
}

impl std::fmt::Display for AttachError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) => f.write_str(why),
            Self::Stale => f.write_str("the replay buffer no longer reaches back far enough"),
        }
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
