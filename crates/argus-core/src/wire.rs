//! The wire protocol of PROTOCOL.md: every message as a Rust type with serde.
//!
//! Server messages decode from a text frame with [`ServerMessage::decode`],
//! borrowing strings from the frame. The decoder reads the `type` field first
//! and then parses straight into the matching struct, which measured about
//! twice as fast as an internally tagged enum. Data messages take a one-pass
//! scanner instead, whatever their member order and whitespace (faster than
//! serde_json, and checked against it on every layout of [`layout`]);
//! anything it does not read goes to serde_json, counted by
//! [`fallback_decodes`]. Client messages encode with
//! [`ClientMessage::to_json`]. The reference server uses the same types in the
//! other direction.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::subscription::DataType;

pub mod layout;
mod scan;

use scan::Scan;

/// Data frames the scanner left to serde_json in this process.
static FALLBACK_DECODES: AtomicU64 = AtomicU64::new(0);

/// How many data frames [`ServerMessage::decode`] has left to serde_json
/// in this process: frames in a shape the scanner does not read (an unknown
/// or repeated member, an escaped key, a number out of range) and malformed
/// ones. It stays at zero on every layout of [`layout`]; a counter that
/// grows with the message count means a server writes a shape the fast path
/// does not read.
pub fn fallback_decodes() -> u64 {
    FALLBACK_DECODES.load(Ordering::Relaxed)
}

/// The WebSocket subprotocol a client offers and a server selects.
pub const SUBPROTOCOL: &str = "argus.v1";
/// The protocol version a `welcome` carries.
pub const PROTOCOL_VERSION: u32 = 1;
/// Default path of the WebSocket endpoint.
pub const DEFAULT_PATH: &str = "/ws";

/// A session token: an unguessable secret naming a server-side session. Its
/// `Debug` output is redacted; use [`SessionToken::expose`] to send it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionToken<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'a> SessionToken<'a> {
    /// Wraps a token.
    pub fn new(token: impl Into<Cow<'a, str>>) -> Self {
        Self(token.into())
    }

    /// The token itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Detaches the token from the frame it was read from.
    pub fn into_owned(self) -> SessionToken<'static> {
        SessionToken(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Debug for SessionToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// The first message on every connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Welcome<'a> {
    /// A UUID naming this connection.
    #[serde(borrow)]
    pub connection_id: Cow<'a, str>,
    /// The server-side session of this connection.
    #[serde(borrow)]
    pub session: SessionToken<'a>,
    /// The protocol version, 1.
    pub protocol: u32,
    /// The server's clock, RFC 3339 UTC.
    #[serde(borrow)]
    pub server_time: Cow<'a, str>,
}

/// A subscribe succeeded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribed<'a> {
    /// The subscription's id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// The symbols subscribed.
    #[serde(borrow)]
    pub symbols: Vec<Cow<'a, str>>,
    /// The data types subscribed.
    pub data_types: Vec<DataType>,
}

/// An unsubscribe succeeded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unsubscribed<'a> {
    /// The subscription's id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

/// A resume succeeded: the old session now serves this connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resumed<'a> {
    /// The session adopted.
    #[serde(borrow)]
    pub session: SessionToken<'a>,
    /// The ids of the session's live subscriptions.
    #[serde(borrow)]
    pub subscriptions: Vec<Cow<'a, str>>,
    /// How many data messages the server replays next.
    pub replayed: u64,
}

/// The codes an `error` message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, not an object, unknown `op`, or a missing or mistyped field.
    BadRequest,
    /// A symbol not in normal form.
    InvalidSymbol,
    /// A symbol the server does not list.
    UnknownSymbol,
    /// A data type other than price, volume, orderbook.
    InvalidDataType,
    /// A frequency other than realtime, 1s, 5s, 1m.
    InvalidFrequency,
    /// An unknown filter key, a non-number, or min above max.
    InvalidFilter,
    /// The id is already live in the session.
    DuplicateSubscription,
    /// The id is not live in the session.
    UnknownSubscription,
    /// The connection holds the server's maximum of subscriptions.
    TooManySubscriptions,
    /// The subscription names more symbols than the server allows.
    TooManySymbols,
    /// The session cannot be resumed.
    ResumeFailed,
    /// Too many operations per second.
    RateLimited,
    /// A code this version does not know.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The protocol's name for the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidSymbol => "invalid_symbol",
            Self::UnknownSymbol => "unknown_symbol",
            Self::InvalidDataType => "invalid_data_type",
            Self::InvalidFrequency => "invalid_frequency",
            Self::InvalidFilter => "invalid_filter",
            Self::DuplicateSubscription => "duplicate_subscription",
            Self::UnknownSubscription => "unknown_subscription",
            Self::TooManySubscriptions => "too_many_subscriptions",
            Self::TooManySymbols => "too_many_symbols",
            Self::ResumeFailed => "resume_failed",
            Self::RateLimited => "rate_limited",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request failed, or the server reports a problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage<'a> {
    /// What went wrong.
    pub code: ErrorCode,
    /// A human-readable explanation.
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    /// The id of the request that failed, when there is one.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
}

/// A last-trade price.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriceTick<'a> {
    /// The subscription it answers.
    #[serde(borrow)]
    pub sub: Cow<'a, str>,
    /// Sequence number in the session.
    pub seq: u64,
    /// The symbol.
    #[serde(borrow)]
    pub symbol: Cow<'a, str>,
    /// Last trade price.
    pub price: f64,
    /// RFC 3339 UTC.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
}

/// A cumulative traded volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumeTick<'a> {
    /// The subscription it answers.
    #[serde(borrow)]
    pub sub: Cow<'a, str>,
    /// Sequence number in the session.
    pub seq: u64,
    /// The symbol.
    #[serde(borrow)]
    pub symbol: Cow<'a, str>,
    /// Cumulative volume since the server started.
    pub volume: u64,
    /// RFC 3339 UTC.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
}

/// One order-book level, `[price, size]` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "(f64, u64)", into = "(f64, u64)")]
pub struct Level {
    /// Price of the level.
    pub price: f64,
    /// Size resting at that price.
    pub size: u64,
}

impl From<(f64, u64)> for Level {
    fn from((price, size): (f64, u64)) -> Self {
        Self { price, size }
    }
}

impl From<Level> for (f64, u64) {
    fn from(l: Level) -> Self {
        (l.price, l.size)
    }
}

/// A top-of-book snapshot, best first, at most 10 levels a side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderBookSnapshot<'a> {
    /// The subscription it answers.
    #[serde(borrow)]
    pub sub: Cow<'a, str>,
    /// Sequence number in the session.
    pub seq: u64,
    /// The symbol.
    #[serde(borrow)]
    pub symbol: Cow<'a, str>,
    /// Bids, best (highest) first.
    pub bids: Vec<Level>,
    /// Asks, best (lowest) first.
    pub asks: Vec<Level>,
    /// RFC 3339 UTC.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
}

/// Every message a server sends.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServerMessage<'a> {
    /// `welcome`.
    Welcome(Welcome<'a>),
    /// `subscribed`.
    Subscribed(Subscribed<'a>),
    /// `unsubscribed`.
    Unsubscribed(Unsubscribed<'a>),
    /// `resumed`.
    Resumed(Resumed<'a>),
    /// `error`.
    Error(ErrorMessage<'a>),
    /// `price`.
    Price(PriceTick<'a>),
    /// `volume`.
    Volume(VolumeTick<'a>),
    /// `orderbook`.
    #[serde(rename = "orderbook")]
    OrderBook(OrderBookSnapshot<'a>),
}

/// Why a text frame is not a server message.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not a JSON object with a string `type` field.
    #[error("not a JSON object with a string `type` field")]
    MissingType,
    /// A `type` this version does not know (an excerpt of it, when long):
    /// ignore it (forward compatibility).
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    /// A known `type` with missing or mistyped fields.
    #[error("malformed `{kind}` message: {detail}")]
    Malformed {
        /// The message type.
        kind: &'static str,
        /// What serde_json found, cut to an excerpt (its messages quote the
        /// offending value, which may be megabytes long).
        detail: String,
    },
}

impl DecodeError {
    /// Whether this is an unknown `type`, which a client ignores.
    pub fn is_unknown_type(&self) -> bool {
        matches!(self, Self::UnknownType(_))
    }
}

#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

fn parse<'a, T: Deserialize<'a>>(kind: &'static str, text: &'a str) -> Result<T, DecodeError> {
    serde_json::from_str(text).map_err(|error| DecodeError::Malformed {
        kind,
        detail: crate::excerpt::cut(&error.to_string(), crate::excerpt::DETAIL_CHARS),
    })
}

impl<'a> ServerMessage<'a> {
    /// Decodes one text frame, borrowing strings from it where it can.
    ///
    /// Data messages take the scanner (any member order, any whitespace);
    /// what it leaves, and control messages, serde_json parses. Data frames
    /// left to serde_json are counted by [`fallback_decodes`].
    pub fn decode(text: &'a str) -> Result<Self, DecodeError> {
        let owned_kind;
        let kind = match scan::scan(text) {
            Scan::Data(message) => return Ok(message),
            Scan::Other(kind) => {
                owned_kind = kind;
                &*owned_kind
            }
            Scan::Unsure => {
                owned_kind = serde_json::from_str::<TypeOnly<'_>>(text)
                    .map_err(|_| DecodeError::MissingType)?
                    .kind;
                &*owned_kind
            }
        };
        if matches!(kind, "price" | "volume" | "orderbook") {
            FALLBACK_DECODES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(match kind {
            "price" => Self::Price(parse("price", text)?),
            "volume" => Self::Volume(parse("volume", text)?),
            "orderbook" => Self::OrderBook(parse("orderbook", text)?),
            "welcome" => Self::Welcome(parse("welcome", text)?),
            "subscribed" => Self::Subscribed(parse("subscribed", text)?),
            "unsubscribed" => Self::Unsubscribed(parse("unsubscribed", text)?),
            "resumed" => Self::Resumed(parse("resumed", text)?),
            "error" => Self::Error(parse("error", text)?),
            other => return Err(DecodeError::UnknownType(crate::excerpt::excerpt(other))),
        })
    }

    /// Encodes the message as one JSON text frame, `type` first.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("wire types always serialise")
    }

    /// The protocol's name for the message's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Welcome(_) => "welcome",
            Self::Subscribed(_) => "subscribed",
            Self::Unsubscribed(_) => "unsubscribed",
            Self::Resumed(_) => "resumed",
            Self::Error(_) => "error",
            Self::Price(_) => "price",
            Self::Volume(_) => "volume",
            Self::OrderBook(_) => "orderbook",
        }
    }
}

/// `subscribe`. Fields are kept as the client wrote them, so that a server can
/// answer each mistake with its own error code; a client builds it from a
/// [`NormalizedSubscription`](crate::NormalizedSubscription).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscribeRequest<'a> {
    /// The subscription's id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// Symbols, in normal form.
    #[serde(borrow)]
    pub symbols: Vec<Cow<'a, str>>,
    /// `price`, `volume`, `orderbook`.
    #[serde(borrow)]
    pub data_types: Vec<Cow<'a, str>>,
    /// `realtime` (the default), `1s`, `5s`, `1m`.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub update_frequency: Option<Cow<'a, str>>,
    /// `min_price`, `max_price`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<serde_json::Map<String, serde_json::Value>>,
}

impl<'a> SubscribeRequest<'a> {
    /// The request for a normalised subscription.
    pub fn new(id: &'a str, sub: &'a crate::NormalizedSubscription) -> Self {
        let mut filters = serde_json::Map::new();
        for (key, value) in [
            ("min_price", sub.filters.min_price),
            ("max_price", sub.filters.max_price),
        ] {
            if let Some(v) = value.and_then(serde_json::Number::from_f64) {
                filters.insert(key.to_owned(), serde_json::Value::Number(v));
            }
        }
        Self {
            id: Cow::Borrowed(id),
            symbols: sub
                .symbols
                .iter()
                .map(|s| Cow::Borrowed(s.as_str()))
                .collect(),
            data_types: sub
                .data_types
                .iter()
                .map(|d| Cow::Borrowed(d.as_str()))
                .collect(),
            update_frequency: Some(Cow::Borrowed(sub.update_frequency.as_str())),
            filters: (!filters.is_empty()).then_some(filters),
        }
    }
}

/// `unsubscribe`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeRequest<'a> {
    /// The subscription's id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

/// `resume`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResumeRequest<'a> {
    /// The session to adopt.
    #[serde(borrow)]
    pub session: SessionToken<'a>,
    /// The last seq the client processed.
    pub last_seq: u64,
}

/// Every message a client sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ClientMessage<'a> {
    /// `subscribe`.
    Subscribe(#[serde(borrow)] SubscribeRequest<'a>),
    /// `unsubscribe`.
    Unsubscribe(#[serde(borrow)] UnsubscribeRequest<'a>),
    /// `resume`.
    Resume(#[serde(borrow)] ResumeRequest<'a>),
}

impl<'a> ClientMessage<'a> {
    /// Encodes the message as one JSON text frame, `op` first.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("wire types always serialise")
    }

    /// Decodes one text frame, as a server does. Any failure is a `bad_request`.
    pub fn decode(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_protocols_examples() {
        let m = ServerMessage::decode(
            r#"{"type":"price","sub":"main","seq":17,"symbol":"AAPL","price":189.53,"timestamp":"2026-11-24T09:49:56.123Z"}"#,
        )
        .unwrap();
        let ServerMessage::Price(p) = m else { panic!() };
        assert!(matches!(p.symbol, Cow::Borrowed("AAPL")));
        assert_eq!((p.seq, p.price), (17, 189.53));
        let m = ServerMessage::decode(
            r#"{"type":"orderbook","sub":"main","seq":19,"symbol":"AAPL","bids":[[189.52,300],[189.51,500]],"asks":[[189.54,200],[189.55,700]],"timestamp":"2026-11-24T09:49:56.125Z"}"#,
        )
        .unwrap();
        let ServerMessage::OrderBook(b) = m else {
            panic!()
        };
        assert_eq!(
            b.bids[1],
            Level {
                price: 189.51,
                size: 500
            }
        );
        let w = ServerMessage::decode(
            r#"{"type":"welcome","connection_id":"6f1c","session":"b3e0","protocol":1,"server_time":"2026-11-24T09:49:56.123Z"}"#,
        )
        .unwrap();
        assert!(!format!("{w:?}").contains("b3e0"));
        let e = ServerMessage::decode(
            r#"{"type":"error","code":"unknown_symbol","message":"no such symbol: AAPX","id":"main"}"#,
        )
        .unwrap();
        assert!(matches!(
            e,
            ServerMessage::Error(ErrorMessage {
                code: ErrorCode::UnknownSymbol,
                ..
            })
        ));
        let e =
            ServerMessage::decode(r#"{"type":"error","code":"brand_new","message":"?"}"#).unwrap();
        assert!(matches!(
            e,
            ServerMessage::Error(ErrorMessage {
                code: ErrorCode::Other,
                id: None,
                ..
            })
        ));
    }

    #[test]
    fn type_anywhere_and_unknown_fields() {
        let m = ServerMessage::decode(
            r#"{"seq":1,"extra":[1,2],"type":"volume","sub":"s","symbol":"A","volume":5,"timestamp":"t"}"#,
        )
        .unwrap();
        assert_eq!(m.kind(), "volume");
    }

    #[test]
    fn bad_frames_are_errors() {
        for bad in [
            "",
            "null",
            "[]",
            "{",
            r#"{"type":5}"#,
            "{\"type\":\"pri\\u0063e\"",
            "\u{0}",
        ] {
            assert!(ServerMessage::decode(bad).is_err(), "{bad}");
        }
        assert!(
            ServerMessage::decode(r#"{"type":"trade"}"#)
                .unwrap_err()
                .is_unknown_type()
        );
        assert!(matches!(
            ServerMessage::decode(r#"{"type":"price","sub":"s"}"#),
            Err(DecodeError::Malformed { kind: "price", .. })
        ));
        // An escaped type still decodes, through the slow path.
        let m = ServerMessage::decode(
            r#"{"type":"pri\u0063e","sub":"s","seq":1,"symbol":"A","price":1.0,"timestamp":"t"}"#,
        )
        .unwrap();
        assert_eq!(m.kind(), "price");
    }

    #[test]
    fn client_messages_match_the_protocol() {
        let sub =
            crate::SubscriptionConfig::new(["AAPL", "GOOGL"], [DataType::Price, DataType::Volume])
                .min_price(100.0)
                .max_price(1000.0)
                .normalized()
                .unwrap();
        let json = ClientMessage::Subscribe(SubscribeRequest::new("main", &sub)).to_json();
        assert_eq!(
            json,
            r#"{"op":"subscribe","id":"main","symbols":["AAPL","GOOGL"],"data_types":["price","volume"],"update_frequency":"realtime","filters":{"max_price":1000.0,"min_price":100.0}}"#
        );
        let r = ClientMessage::Resume(ResumeRequest {
            session: SessionToken::new("b3e0"),
            last_seq: 1234,
        });
        assert_eq!(
            r.to_json(),
            r#"{"op":"resume","session":"b3e0","last_seq":1234}"#
        );
        assert_eq!(ClientMessage::decode(&r.to_json()).unwrap(), r);
        assert!(ClientMessage::decode(r#"{"op":"dance"}"#).is_err());
    }
}
