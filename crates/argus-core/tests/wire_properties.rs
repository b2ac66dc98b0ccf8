//! Property tests of the wire protocol: every message round-trips, and no
//! input makes the decoder panic.

use std::borrow::Cow;

use argus_core::wire::layout::Layout;
use argus_core::wire::{
    ClientMessage, ErrorCode, ErrorMessage, Level, OrderBookSnapshot, PriceTick, ResumeRequest,
    Resumed, ServerMessage, SessionToken, SubscribeRequest, Subscribed, UnsubscribeRequest,
    Unsubscribed, VolumeTick, Welcome,
};
use argus_core::{DataType, Input};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = Cow<'static, str>> {
    any::<String>().prop_map(Cow::Owned)
}

fn finite() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL | prop::num::f64::ZERO
}

fn code() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(vec![
        ErrorCode::BadRequest,
        ErrorCode::InvalidSymbol,
        ErrorCode::UnknownSymbol,
        ErrorCode::InvalidDataType,
        ErrorCode::InvalidFrequency,
        ErrorCode::InvalidFilter,
        ErrorCode::DuplicateSubscription,
        ErrorCode::UnknownSubscription,
        ErrorCode::TooManySubscriptions,
        ErrorCode::TooManySymbols,
        ErrorCode::ResumeFailed,
        ErrorCode::RateLimited,
    ])
}

fn levels() -> impl Strategy<Value = Vec<Level>> {
    prop::collection::vec((finite(), any::<u64>()).prop_map(Level::from), 0..10)
}

fn server_message() -> impl Strategy<Value = ServerMessage<'static>> {
    let data_types = prop::collection::vec(prop::sample::select(DataType::ALL.to_vec()), 0..3);
    prop_oneof![
        (text(), text(), any::<u32>(), text()).prop_map(
            |(connection_id, s, protocol, server_time)| {
                ServerMessage::Welcome(Welcome {
                    connection_id,
                    session: SessionToken::new(s),
                    protocol,
                    server_time,
                })
            }
        ),
        (text(), prop::collection::vec(text(), 0..4), data_types).prop_map(
            |(id, symbols, data_types)| ServerMessage::Subscribed(Subscribed {
                id,
                symbols,
                data_types
            })
        ),
        text().prop_map(|id| ServerMessage::Unsubscribed(Unsubscribed { id })),
        (text(), prop::collection::vec(text(), 0..4), any::<u64>()).prop_map(
            |(s, subscriptions, replayed)| {
                ServerMessage::Resumed(Resumed {
                    session: SessionToken::new(s),
                    subscriptions,
                    replayed,
                })
            }
        ),
        (code(), text(), prop::option::of(text())).prop_map(|(code, message, id)| {
            ServerMessage::Error(ErrorMessage { code, message, id })
        }),
        (text(), any::<u64>(), text(), finite(), text()).prop_map(
            |(sub, seq, symbol, price, timestamp)| {
                ServerMessage::Price(PriceTick {
                    sub,
                    seq,
                    symbol,
                    price,
                    timestamp,
                })
            }
        ),
        (text(), any::<u64>(), text(), any::<u64>(), text()).prop_map(
            |(sub, seq, symbol, volume, timestamp)| {
                ServerMessage::Volume(VolumeTick {
                    sub,
                    seq,
                    symbol,
                    volume,
                    timestamp,
                })
            }
        ),
        (text(), any::<u64>(), text(), levels(), levels(), text()).prop_map(
            |(sub, seq, symbol, bids, asks, timestamp)| {
                ServerMessage::OrderBook(OrderBookSnapshot {
                    sub,
                    seq,
                    symbol,
                    bids,
                    asks,
                    timestamp,
                })
            }
        ),
    ]
}

fn client_message() -> impl Strategy<Value = ClientMessage<'static>> {
    let filters = prop::option::of(
        (prop::option::of(finite()), prop::option::of(finite())).prop_map(|(min, max)| {
            let mut map = serde_json::Map::new();
            for (k, v) in [("min_price", min), ("max_price", max)] {
                if let Some(n) = v.and_then(serde_json::Number::from_f64) {
                    map.insert(k.into(), n.into());
                }
            }
            map
        }),
    );
    prop_oneof![
        (
            text(),
            prop::collection::vec(text(), 0..4),
            prop::collection::vec(text(), 0..3),
            prop::option::of(text()),
            filters
        )
            .prop_map(|(id, symbols, data_types, update_frequency, filters)| {
                ClientMessage::Subscribe(SubscribeRequest {
                    id,
                    symbols,
                    data_types,
                    update_frequency,
                    filters,
                })
            }),
        text().prop_map(|id| ClientMessage::Unsubscribe(UnsubscribeRequest { id })),
        (text(), any::<u64>()).prop_map(|(s, last_seq)| {
            ClientMessage::Resume(ResumeRequest {
                session: SessionToken::new(s),
                last_seq,
            })
        }),
    ]
}

/// Arbitrary JSON values, nested a little.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(Into::into),
        any::<i64>().prop_map(Into::into),
        finite().prop_map(Into::into),
        prop::sample::select(vec![
            "price",
            "volume",
            "orderbook",
            "welcome",
            "error",
            "resumed",
            "subscribed"
        ])
        .prop_map(Into::into),
        any::<String>().prop_map(Into::into),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Into::into),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "sub",
                    "seq",
                    "symbol",
                    "price",
                    "timestamp",
                    "bids",
                    "session",
                    "x"
                ])
                .prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn server_messages_round_trip(m in server_message()) {
        let json = m.to_json();
        prop_assert!(json.starts_with(r#"{"type":"#), "{}", json);
        prop_assert_eq!(ServerMessage::decode(&json).unwrap(), m);
    }

    #[test]
    fn client_messages_round_trip(m in client_message()) {
        let json = m.to_json();
        prop_assert!(json.starts_with(r#"{"op":"#), "{}", json);
        prop_assert_eq!(ClientMessage::decode(&json).unwrap(), m);
    }

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        let _ = ServerMessage::decode(&s);
        let _ = ClientMessage::decode(&s);
    }

    #[test]
    fn arbitrary_json_never_panics_the_decoder_or_the_client(v in json()) {
        let s = v.to_string();
        let _ = ServerMessage::decode(&s);
        let mut client = argus_core::Client::new(argus_core::ConnectionConfig::new("ws://h/ws"), 1).unwrap();
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        client.connect(now);
        client.handle_input(now, Input::Opened);
        client.handle_input(now, Input::Text(r#"{"type":"welcome","connection_id":"c","session":"s","protocol":1,"server_time":"t"}"#));
        client.handle_input(now, Input::Text(&s));
        while client.poll_event().is_some() {}
        prop_assert_eq!(client.state(), argus_core::ConnectionState::Connected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..256)) {
        let s = String::from_utf8_lossy(&b);
        let _ = ServerMessage::decode(&s);
    }
}

// ---- the data-message scanner agrees with serde_json ----

/// Whitespace JSON allows between tokens.
fn ws() -> impl Strategy<Value = String> {
    "[ \t\n\r]{0,2}"
}

/// A float as JSON text: as Rust prints it, in exponent form, or any
/// number-like text (some of it not JSON, some out of range).
fn float_text() -> impl Strategy<Value = String> {
    prop_oneof![
        finite().prop_map(|v| v.to_string()),
        finite().prop_map(|v| format!("{v:e}")),
        finite().prop_map(|v| format!("{v:E}")),
        any::<u64>().prop_map(|v| v.to_string()),
        Just("-0".to_owned()),
        Just("-0.0".to_owned()),
        "-?(0|[1-9][0-9]{0,22})(\\.[0-9]{0,20})?([eE][+-]?[0-9]{0,3})?",
        "[-+0-9.eE]{1,6}",
    ]
}

/// An integer as JSON text, mostly valid, sometimes not or out of range.
fn integer_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<u64>().prop_map(|v| v.to_string()),
        1 => "-?(0|[1-9][0-9]{0,21})(\\.[0-9]{1,2})?(e[0-9])?",
        1 => "0[0-9]{1,3}",
    ]
}

/// A JSON string, mostly plain, sometimes escaped.
fn string_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9._/ -]{0,10}".prop_map(|s| format!("\"{s}\"")),
        1 => "[A-Za-z0-9\\\\\"]{0,6}".prop_map(|s| format!("\"{s}\"")),
        1 => Just(r#""\u0041é\n""#.to_owned()),
    ]
}

fn levels_text() -> impl Strategy<Value = String> {
    prop::collection::vec((float_text(), integer_text(), ws()), 0..4).prop_map(|levels| {
        let inner: Vec<String> = levels
            .into_iter()
            .map(|(p, s, w)| format!("[{w}{p}{w},{w}{s}{w}]"))
            .collect();
        format!("[{}]", inner.join(","))
    })
}

/// The values of one data frame, each as JSON text (some of it not JSON).
#[derive(Clone, Debug)]
struct Values {
    kind: &'static str,
    sub: String,
    seq: String,
    symbol: String,
    price: String,
    volume: String,
    bids: String,
    asks: String,
    timestamp: String,
}

impl Values {
    /// The members of this kind of frame, in the server's order.
    fn members(&self) -> Vec<(&'static str, String)> {
        let mut members = vec![
            ("sub", self.sub.clone()),
            ("seq", self.seq.clone()),
            ("symbol", self.symbol.clone()),
        ];
        match self.kind {
            "price" => members.push(("price", self.price.clone())),
            "volume" => members.push(("volume", self.volume.clone())),
            _ => {
                members.push(("bids", self.bids.clone()));
                members.push(("asks", self.asks.clone()));
            }
        }
        members.push(("timestamp", self.timestamp.clone()));
        members
    }
}

fn values() -> impl Strategy<Value = Values> {
    (
        prop::sample::select(vec!["price", "volume", "orderbook"]),
        (string_text(), integer_text(), string_text()),
        (float_text(), integer_text(), levels_text(), levels_text()),
        string_text(),
    )
        .prop_map(
            |(kind, (sub, seq, symbol), (price, volume, bids, asks), timestamp)| Values {
                kind,
                sub,
                seq,
                symbol,
                price,
                volume,
                bids,
                asks,
                timestamp,
            },
        )
}

/// Sometimes one byte of the frame changed, inserted or removed, or
/// something written after the frame.
#[derive(Clone, Debug)]
enum Edit {
    Keep,
    Replace(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Append(&'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    let json_byte = prop::sample::select(b" \n\t\"\\,:[]{}0123456789.-+eE".to_vec());
    prop_oneof![
        3 => Just(Edit::Keep),
        2 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        1 => (any::<prop::sample::Index>(), json_byte).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Edit::Remove),
        1 => prop::sample::select(vec![" ", "\n", "x", "}", ",", "{}", "\u{0}"]).prop_map(Edit::Append),
    ]
}

fn edited(frame: String, edit: Edit) -> String {
    let mut bytes = frame.into_bytes();
    match edit {
        Edit::Keep => {}
        Edit::Replace(at, byte) => {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        Edit::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), byte),
        Edit::Remove(at) => {
            bytes.remove(at.index(bytes.len()));
        }
        Edit::Append(tail) => bytes.extend_from_slice(tail.as_bytes()),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A data frame, its members in any order, with whitespace, sometimes a
/// member missing, repeated or unknown, sometimes a byte changed.
fn data_frame() -> impl Strategy<Value = String> {
    (
        values(),
        prop::collection::vec(ws(), 8),
        0..6usize,
        any::<prop::sample::Index>(),
        edit(),
    )
        .prop_flat_map(|(values, ws, twist, pick, edit)| {
            let mut members = values.members();
            match twist {
                0 => {
                    members.remove(pick.index(members.len()));
                }
                1 => {
                    let m = members[pick.index(members.len())].clone();
                    members.push(m);
                }
                2 => members.push(("extra", "[1,{\"a\":2}]".to_owned())),
                _ => {}
            }
            members.push(("type", format!("\"{}\"", values.kind)));
            let members: Vec<String> = members
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| format!("{0}\"{k}\"{0}:{1}{v}", ws[i % 8], ws[(i + 3) % 8]))
                .collect();
            (Just(members).prop_shuffle(), Just((ws, edit)))
        })
        .prop_map(|(members, (ws, edit))| {
            let frame = format!("{}{{{}{}}}{}", ws[3], members.join(","), ws[1], ws[2]);
            edited(frame, edit)
        })
}

/// A data message with any values (strings with quotes, escapes, control
/// characters and any Unicode; any finite float, negative zero included).
fn data_message() -> impl Strategy<Value = ServerMessage<'static>> {
    server_message().prop_filter("a data message", |m| {
        matches!(
            m,
            ServerMessage::Price(_) | ServerMessage::Volume(_) | ServerMessage::OrderBook(_)
        )
    })
}

fn layout() -> impl Strategy<Value = Layout> {
    prop::sample::select(Layout::ALL.to_vec())
}

/// What serde_json alone makes of a data frame (the decoder without the
/// scanner): the value's `Debug`, so that `-0.0` and `0.0` differ.
fn serde_json_alone(frame: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(borrow, rename = "type")]
        kind: Cow<'a, str>,
    }
    let kind = serde_json::from_str::<Kind<'_>>(frame).ok()?.kind;
    let message = match &*kind {
        "price" => ServerMessage::Price(serde_json::from_str::<PriceTick<'_>>(frame).ok()?),
        "volume" => ServerMessage::Volume(serde_json::from_str::<VolumeTick<'_>>(frame).ok()?),
        "orderbook" => {
            ServerMessage::OrderBook(serde_json::from_str::<OrderBookSnapshot<'_>>(frame).ok()?)
        }
        _ => return None,
    };
    Some(format!("{message:?}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every corpus layout of any data message decodes to that message, to
    /// the bit.
    #[test]
    fn corpus_layouts_decode_to_the_message(m in data_message(), layout in layout()) {
        let frame = layout.write(&m);
        let ours = ServerMessage::decode(&frame).map(|d| format!("{d:?}"));
        prop_assert_eq!(ours.ok(), Some(format!("{m:?}")), "{}", frame);
    }

    /// Corpus frames, mutated (a byte changed, inserted or removed, text
    /// after the frame): the decoder accepts exactly what serde_json
    /// accepts, and reads it the same, to the bit.
    #[test]
    fn mutated_corpus_frames_decode_as_serde_json_decodes_them(
        m in data_message(),
        layout in layout(),
        edit in edit(),
    ) {
        let frame = edited(layout.write(&m), edit);
        let ours = ServerMessage::decode(&frame).ok().map(|m| format!("{m:?}"));
        prop_assert_eq!(ours, serde_json_alone(&frame), "{}", frame);
    }

    /// Data frames written member by member: any order, whitespace, number
    /// forms, escapes, members missing, repeated or unknown, mutated.
    #[test]
    fn data_frames_decode_as_serde_json_decodes_them(frame in data_frame()) {
        let ours = ServerMessage::decode(&frame).ok().map(|m| format!("{m:?}"));
        prop_assert_eq!(ours, serde_json_alone(&frame), "{}", frame);
    }
}
