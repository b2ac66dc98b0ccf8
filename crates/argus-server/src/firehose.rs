//! The firehose: pre-encoded data messages written as fast as the socket
//! takes them, or at a fixed rate.
//!
//! Each (symbol, data type) of a subscription is encoded once in the
//! server's wire style, with markers where `seq` and `timestamp` go; a
//! message is then the template's pieces with the two values spliced in.
//! The connection's writer owns the firehose, so messages are produced only
//! when the socket can take them.
//!
//! Paced, every message is due at its own instant (`n / rate` after the
//! run's start), is stamped when it is written, and goes out in a write of
//! its own: no bursts that share one wake-up and one timestamp.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use argus_core::wire::layout::Layout;
use argus_core::wire::{OrderBookSnapshot, PriceTick, ServerMessage, VolumeTick};
use argus_core::{DataType, SubscriptionId, Symbol};
use bytes::BytesMut;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::FirehoseConfig;
use crate::market::Book;

/// Messages written between two flushes when not paced.
pub(crate) const BATCH: u64 = 1024;
/// Messages are rendered back to back into chunks of this size, so that a
/// message costs no allocation of its own.
const CHUNK: usize = 256 * 1024;
const SEQ_MARK: u64 = u64::MAX;
const TS_MARK: &str = "@TS@";

/// A change to a connection's firehose, queued in order with the replies.
#[derive(Debug)]
pub(crate) enum FirehoseCmd {
    /// Start serving a subscription.
    Start(FirehoseSub),
    /// Stop serving a subscription.
    Stop(SubscriptionId),
}

/// A subscription as the firehose serves it.
#[derive(Debug)]
pub(crate) struct FirehoseSub {
    pub id: SubscriptionId,
    pub items: Vec<FirehoseItem>,
}

/// One (symbol, data type) of a subscription, with its fixed values.
#[derive(Debug)]
pub(crate) struct FirehoseItem {
    pub symbol: Symbol,
    pub data_type: DataType,
    pub price: f64,
    pub volume: u64,
    pub book: Arc<Book>,
}

#[derive(Debug)]
struct Template {
    /// Text before the first hole, between the holes, after the second.
    pieces: [String; 3],
    seq_first: bool,
    len: usize,
}

impl Template {
    fn new(sub: &SubscriptionId, item: &FirehoseItem, layout: Layout) -> Self {
        let sub = Cow::Borrowed(sub.as_str());
        let symbol = Cow::Borrowed(item.symbol.as_str());
        let timestamp = Cow::Borrowed(TS_MARK);
        let message = match item.data_type {
            DataType::Price => ServerMessage::Price(PriceTick {
                sub,
                seq: SEQ_MARK,
                symbol,
                price: item.price,
                timestamp,
            }),
            DataType::Volume => ServerMessage::Volume(VolumeTick {
                sub,
                seq: SEQ_MARK,
                symbol,
                volume: item.volume,
                timestamp,
            }),
            DataType::OrderBook => ServerMessage::OrderBook(OrderBookSnapshot {
                sub,
                seq: SEQ_MARK,
                symbol,
                bids: item.book.bids.clone(),
                asks: item.book.asks.clone(),
                timestamp,
            }),
        };
        let json = layout.write(&message);
        let seq_text = SEQ_MARK.to_string();
        let seq_at = json.find(&seq_text).map(|i| (i, i + seq_text.len()));
        let mut ts_text = String::new();
        layout.write_str(TS_MARK, &mut ts_text);
        let ts_at = json.find(&ts_text).map(|i| (i, i + ts_text.len()));
        let (Some(seq_at), Some(ts_at)) = (seq_at, ts_at) else {
            unreachable!("a data message always has seq and timestamp")
        };
        let (first, second) = if seq_at.0 < ts_at.0 {
            (seq_at, ts_at)
        } else {
            (ts_at, seq_at)
        };
        let pieces = [
            json[..first.0].to_owned(),
            json[first.1..second.0].to_owned(),
            json[second.1..].to_owned(),
        ];
        let len = pieces.iter().map(String::len).sum();
        Self {
            pieces,
            seq_first: seq_at.0 < ts_at.0,
            len,
        }
    }

    /// Appends the message with `seq` and `timestamp` (a JSON string,
    /// quotes included) spliced in.
    fn render_into(&self, out: &mut BytesMut, seq: u64, timestamp: &str) {
        out.extend_from_slice(self.pieces[0].as_bytes());
        if self.seq_first {
            push_u64(out, seq);
        } else {
            out.extend_from_slice(timestamp.as_bytes());
        }
        out.extend_from_slice(self.pieces[1].as_bytes());
        if self.seq_first {
            out.extend_from_slice(timestamp.as_bytes());
        } else {
            push_u64(out, seq);
        }
        out.extend_from_slice(self.pieces[2].as_bytes());
    }
}

fn push_u64(out: &mut BytesMut, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[derive(Debug)]
struct Stream {
    id: SubscriptionId,
    templates: Vec<Template>,
    next: usize,
}

/// What the writer should do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Write this many messages now.
    Send(u64),
    /// Nothing is due before this instant.
    WaitUntil(Instant),
    /// Nothing to send until a subscription starts.
    Idle,
}

/// One connection's firehose.
#[derive(Debug)]
pub(crate) struct Firehose {
    config: FirehoseConfig,
    streams: Vec<Stream>,
    next_stream: usize,
    seq: u64,
    sent: u64,
    /// Start of the current pacing run: (when, messages sent before it).
    origin: Option<(Instant, u64)>,
    /// How messages are written.
    layout: Layout,
    /// The stamp of the next messages, as a JSON string in `layout`.
    timestamp: String,
    chunk: BytesMut,
}

impl Firehose {
    pub(crate) fn new(config: FirehoseConfig, layout: Layout) -> Self {
        Self {
            config,
            layout,
            streams: Vec::new(),
            next_stream: 0,
            seq: 0,
            sent: 0,
            origin: None,
            timestamp: String::new(),
            chunk: BytesMut::new(),
        }
    }

    /// Applies a start or stop.
    pub(crate) fn apply(&mut self, cmd: FirehoseCmd) {
        match cmd {
            FirehoseCmd::Start(sub) => {
                let templates: Vec<Template> = sub
                    .items
                    .iter()
                    .map(|i| Template::new(&sub.id, i, self.layout))
                    .collect();
                if !templates.is_empty() {
                    self.streams.push(Stream {
                        id: sub.id,
                        templates,
                        next: 0,
                    });
                }
            }
            FirehoseCmd::Stop(id) => {
                self.streams.retain(|s| s.id != id);
                self.next_stream = 0;
            }
        }
        if self.streams.is_empty() {
            self.origin = None;
        }
    }

    /// How many messages to write now (paced: one, each in its own write),
    /// or until when to wait.
    pub(crate) fn next(&mut self, now: Instant) -> Next {
        let left = self
            .config
            .total
            .map_or(u64::MAX, |t| t.saturating_sub(self.sent));
        if self.streams.is_empty() || left == 0 {
            return Next::Idle;
        }
        let Some(rate) = self.config.rate else {
            return Next::Send(BATCH.min(left));
        };
        let (t0, s0) = *self.origin.get_or_insert((now, self.sent));
        let due = s0 + (rate as f64 * now.duration_since(t0).as_secs_f64()) as u64;
        if due > self.sent {
            if due - self.sent > 1 + rate / 1000 {
                // More than a millisecond behind (the writer was blocked, or
                // the thread preempted): start a new run instead of
                // bursting to catch up, so that messages stay spaced.
                // The message sent now is the run's first; the next is due
                // one period later.
                let period = Duration::from_secs_f64(1.0 / rate as f64);
                self.origin = Some((now.checked_sub(period).unwrap_or(now), self.sent));
            }
            Next::Send(1)
        } else {
            let next_at = (self.sent + 1 - s0) as f64 / rate as f64;
            Next::WaitUntil(t0 + Duration::from_secs_f64(next_at))
        }
    }

    /// Takes the clock for the messages of the next batch (paced: of the
    /// next message).
    pub(crate) fn stamp(&mut self) {
        let now = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        self.timestamp.clear();
        self.layout.write_str(&now, &mut self.timestamp);
    }

    /// The next message, round-robin over subscriptions and their items.
    pub(crate) fn message(&mut self) -> Utf8Bytes {
        let n = self.streams.len();
        let stream = &mut self.streams[self.next_stream % n];
        self.next_stream = (self.next_stream + 1) % n;
        let template = &stream.templates[stream.next];
        stream.next = (stream.next + 1) % stream.templates.len();
        self.seq += 1;
        self.sent += 1;
        let need = template.len + 20 + self.timestamp.len();
        if self.chunk.capacity() < need {
            self.chunk = BytesMut::with_capacity(CHUNK.max(need));
        }
        template.render_into(&mut self.chunk, self.seq, &self.timestamp);
        let bytes = self.chunk.split().freeze();
        // Every piece comes from a `String`, so this never fails.
        Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_core::wire::Level;

    fn item(symbol: &str, data_type: DataType) -> FirehoseItem {
        FirehoseItem {
            symbol: Symbol::parse(symbol).unwrap(),
            data_type,
            price: 189.53,
            volume: 1200,
            book: Arc::new(Book {
                bids: vec![Level {
                    price: 189.52,
                    size: 300,
                }],
                asks: vec![Level {
                    price: 189.54,
                    size: 200,
                }],
            }),
        }
    }

    #[test]
    fn messages_decode_with_their_seq_in_every_layout() {
        for layout in Layout::ALL {
            let mut f = Firehose::new(FirehoseConfig::default(), layout);
            f.apply(FirehoseCmd::Start(FirehoseSub {
                id: SubscriptionId::new("a").unwrap(),
                items: DataType::ALL.iter().map(|d| item("AAPL", *d)).collect(),
            }));
            f.apply(FirehoseCmd::Start(FirehoseSub {
                id: SubscriptionId::new("b").unwrap(),
                items: vec![item("MSFT", DataType::Price)],
            }));
            f.stamp();
            let mut subs = Vec::new();
            for want in 1..=8u64 {
                let text = f.message();
                let message = ServerMessage::decode(&text).unwrap();
                let (sub, seq, timestamp) = match &message {
                    ServerMessage::Price(p) => (&p.sub, p.seq, &p.timestamp),
                    ServerMessage::Volume(v) => (&v.sub, v.seq, &v.timestamp),
                    ServerMessage::OrderBook(b) => (&b.sub, b.seq, &b.timestamp),
                    _ => panic!(),
                };
                assert_eq!(seq, want);
                assert!(argus_core::Timestamp::parse(timestamp).is_ok(), "{text}");
                subs.push(sub.to_string());
                let mut again = message.clone();
                match &mut again {
                    ServerMessage::Price(p) => p.seq = SEQ_MARK,
                    ServerMessage::Volume(v) => v.seq = SEQ_MARK,
                    ServerMessage::OrderBook(b) => b.seq = SEQ_MARK,
                    _ => {}
                }
                // Spliced as the layout writes the whole message.
                assert_eq!(
                    layout.write(&message),
                    &*text,
                    "{layout}: {}",
                    layout.write(&again)
                );
            }
            assert_eq!(subs, ["a", "b", "a", "b", "a", "b", "a", "b"]);
            f.apply(FirehoseCmd::Stop(SubscriptionId::new("a").unwrap()));
            f.apply(FirehoseCmd::Stop(SubscriptionId::new("b").unwrap()));
            assert_eq!(f.next(Instant::now()), Next::Idle);
        }
    }

    #[test]
    fn pacing_and_total() {
        let mut f = Firehose::new(
            FirehoseConfig {
                rate: Some(1000),
                total: Some(4),
            },
            Layout::Reference,
        );
        f.apply(FirehoseCmd::Start(FirehoseSub {
            id: SubscriptionId::new("a").unwrap(),
            items: vec![item("AAPL", DataType::Price)],
        }));
        let t0 = Instant::now();
        assert!(matches!(f.next(t0), Next::WaitUntil(_)));
        // Two are due: they go one at a time, each in a write of its own.
        assert_eq!(f.next(t0 + Duration::from_millis(2)), Next::Send(1));
        f.message();
        assert_eq!(f.next(t0 + Duration::from_millis(2)), Next::Send(1));
        f.message();
        assert_eq!(
            f.next(t0 + Duration::from_millis(2)),
            Next::WaitUntil(t0 + Duration::from_millis(3))
        );
        // Far behind: one now, and the next a period later, not a burst.
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(f.next(t1), Next::Send(1));
        f.message();
        let Next::WaitUntil(at) = f.next(t1) else {
            panic!()
        };
        assert!(
            at.duration_since(t1).abs_diff(Duration::from_millis(1)) < Duration::from_micros(5)
        );
        assert_eq!(f.next(at), Next::Send(1));
        f.message();
        assert_eq!(f.next(at + Duration::from_secs(1)), Next::Idle);
    }
}
