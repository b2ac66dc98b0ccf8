//! Property tests of the wire protocol: every message round-trips, and no
//! input makes the decoder panic.

use std::borrow::Cow;

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
