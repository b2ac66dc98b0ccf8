//! The messages of PROTOCOL.md: welcome, subscribe/unsubscribe with every
//! error code, data, seq, filters, conflation, limits and closing codes.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use argus_server::ServerConfig;
use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn welcome_comes_first_and_argus_v1_is_selected() {
    bounded(async {
        let server = start(fast()).await;
        let mut c = connect(&server).await;
        let selected = c.response.headers().get("Sec-WebSocket-Protocol");
        assert_eq!(selected.and_then(|v| v.to_str().ok()), Some("argus.v1"));
        let w = c.next_json().await;
        assert_eq!(w["type"], "welcome");
        assert_eq!(w["protocol"], 1);
        let id = w["connection_id"].as_str().unwrap();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{id} is not a UUID");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        let session = w["session"].as_str().unwrap();
        assert!(session.len() >= 32, "a token of at least 128 bits");
        micros(w["server_time"].as_str().unwrap());

        // Without an offer, nothing is selected and the protocol still runs.
        let mut plain = try_connect(&server, Opts::default()).await.unwrap();
        assert!(
            plain
                .response
                .headers()
                .get("Sec-WebSocket-Protocol")
                .is_none()
        );
        let w2 = plain.next_json().await;
        assert_eq!(w2["type"], "welcome");
        assert_ne!(w2["session"], w["session"]);
        assert_ne!(w2["connection_id"], w["connection_id"]);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn every_error_is_answered_once_with_its_id() {
    bounded(async {
        let server = start(ServerConfig {
            max_symbols_per_subscription: 3,
            ..fast()
        })
        .await;
        let (mut c, _) = connect_welcomed(&server).await;
        c.subscribe("live", &["AAPL"], &["price"]).await;
        let sub = |id: &str, extra: Value| {
            let mut v = json!({"op":"subscribe","id":id,"symbols":["AAPL"],"data_types":["price"]});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v.to_string()
        };
        // (frame, expected code, expected id)
        let cases: Vec<(String, &str, Option<&str>)> = vec![
            ("not json".into(), "bad_request", None),
            ("[1,2]".into(), "bad_request", None),
            (
                r#"{"op":"dance","id":"e1"}"#.into(),
                "bad_request",
                Some("e1"),
            ),
            (r#"{"id":"e2"}"#.into(), "bad_request", Some("e2")),
            (
                r#"{"op":"subscribe","id":"e3","data_types":["price"]}"#.into(),
                "bad_request",
                Some("e3"),
            ),
            (
                sub("e4", json!({"symbols": "AAPL"})),
                "bad_request",
                Some("e4"),
            ),
            (sub("bad id!", json!({})), "bad_request", Some("bad id!")),
            (
                sub("e5", json!({"symbols": ["aapl"]})),
                "invalid_symbol",
                Some("e5"),
            ),
            (
                sub("e6", json!({"symbols": ["AAPX"]})),
                "unknown_symbol",
                Some("e6"),
            ),
            (
                sub("e7", json!({"data_types": ["trades"]})),
                "invalid_data_type",
                Some("e7"),
            ),
            (
                sub("e8", json!({"update_frequency": "2s"})),
                "invalid_frequency",
                Some("e8"),
            ),
            (
                sub("e9", json!({"filters": {"min_prize": 1}})),
                "invalid_filter",
                Some("e9"),
            ),
            (
                sub("e10", json!({"filters": {"min_price": "1"}})),
                "invalid_filter",
                Some("e10"),
            ),
            (
                sub("e11", json!({"filters": {"min_price": 9, "max_price": 1}})),
                "invalid_filter",
                Some("e11"),
            ),
            (
                sub("e12", json!({"symbols": ["AAPL", "MSFT", "TSLA", "AMZN"]})),
                "too_many_symbols",
                Some("e12"),
            ),
            (
                sub("live", json!({})),
                "duplicate_subscription",
                Some("live"),
            ),
            (
                r#"{"op":"unsubscribe","id":"e13"}"#.into(),
                "unknown_subscription",
                Some("e13"),
            ),
            (
                r#"{"op":"resume","session":"whatever","last_seq":0}"#.into(),
                "resume_failed",
                None,
            ),
        ];
        for (frame, _, _) in &cases {
            c.send_text(frame).await;
        }
        c.ws.send(Message::Binary(vec![1, 2, 3].into()))
            .await
            .unwrap();
        // A sentinel: every reply before it answers the frames above, in order.
        c.send_json(json!({"op":"unsubscribe","id":"sentinel"}))
            .await;
        let (_, before) = c
            .until(|v| v["type"] == "error" && v["id"] == "sentinel")
            .await;
        let replies: Vec<&Value> = before.iter().filter(|v| !is_data(v)).collect();
        assert_eq!(replies.len(), cases.len() + 1, "{replies:#?}");
        for (reply, (frame, code, id)) in replies.iter().zip(&cases) {
            assert_eq!(reply["type"], "error", "{frame}");
            assert_eq!(reply["code"], *code, "{frame}: {reply}");
            assert_eq!(reply["id"].as_str(), *id, "{frame}: {reply}");
            assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        let binary = replies.last().unwrap();
        assert_eq!(
            (&binary["code"], binary.get("id")),
            (&json!("bad_request"), None)
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn too_many_subscriptions_and_unsubscribe() {
    bounded(async {
        let server = start(ServerConfig {
            max_subscriptions_per_connection: 2,
            ..fast()
        })
        .await;
        let (mut c, _) = connect_welcomed(&server).await;
        c.subscribe("a", &["AAPL"], &["price"]).await;
        c.subscribe("b", &["MSFT"], &["price"]).await;
        c.send_json(json!({"op":"subscribe","id":"c","symbols":["TSLA"],"data_types":["price"]}))
            .await;
        let e = c.next_control().await;
        assert_eq!(
            (&e["code"], &e["id"]),
            (&json!("too_many_subscriptions"), &json!("c"))
        );
        c.send_json(json!({"op":"unsubscribe","id":"a"})).await;
        let u = c.next_control().await;
        assert_eq!(u, json!({"type":"unsubscribed","id":"a"}));
        // The id is free again, and so is the slot.
        c.subscribe("a", &["TSLA"], &["volume"]).await;
        // After `unsubscribed`, no data of the old subscription: watch 200
        // messages of the others go by.
        c.send_json(json!({"op":"unsubscribe","id":"b"})).await;
        let (_, _) = c.until(|v| v["type"] == "unsubscribed").await;
        for _ in 0..200 {
            let v = c.next_json().await;
            assert_eq!(v["sub"], "a", "{v}");
            assert_eq!(v["type"], "volume");
            assert_eq!(v["symbol"], "TSLA");
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn data_messages_have_the_documented_shape() {
    bounded(async {
        let server = start(fast()).await;
        let (mut c, _) = connect_welcomed(&server).await;
        let reply = c
            .subscribe("main", &["AAPL", "GOOGL", "AAPL"], &["price", "volume", "orderbook"])
            .await;
        assert_eq!(
            reply,
            json!({"type":"subscribed","id":"main","symbols":["AAPL","GOOGL"],"data_types":["price","volume","orderbook"]})
        );
        let mut seen = HashSet::new();
        let mut last_volume: HashMap<String, u64> = HashMap::new();
        while seen.len() < 6 {
            let v = c.next_json().await;
            assert_eq!(v["sub"], "main");
            let symbol = v["symbol"].as_str().unwrap().to_owned();
            assert!(symbol == "AAPL" || symbol == "GOOGL");
            micros(v["timestamp"].as_str().unwrap());
            match v["type"].as_str().unwrap() {
                "price" => assert!(v["price"].as_f64().unwrap() > 0.0),
                "volume" => {
                    let vol = v["volume"].as_u64().expect("volume is an integer");
                    let last = last_volume.insert(symbol.clone(), vol).unwrap_or(0);
                    assert!(vol > last, "cumulative volume rises");
                }
                "orderbook" => {
                    let side = |k: &str| -> Vec<(f64, u64)> {
                        v[k].as_array()
                            .unwrap()
                            .iter()
                            .map(|l| (l[0].as_f64().unwrap(), l[1].as_u64().unwrap()))
                            .collect()
                    };
                    let (bids, asks) = (side("bids"), side("asks"));
                    assert!(!bids.is_empty() && bids.len() <= 10 && asks.len() <= 10);
                    assert!(bids.windows(2).all(|w| w[0].0 > w[1].0), "bids best first");
                    assert!(asks.windows(2).all(|w| w[0].0 < w[1].0), "asks best first");
                    assert!(bids[0].0 < asks[0].0, "never crossed");
                }
                other => panic!("unexpected {other}"),
            }
            seen.insert((symbol, v["type"].as_str().unwrap().to_owned()));
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn seq_counts_every_data_message_once_per_subscription() {
    bounded(async {
        let server = start(fast()).await;
        let (mut c, _) = connect_welcomed(&server).await;
        c.send_json(json!({"op":"subscribe","id":"a","symbols":["AAPL"],"data_types":["price"]}))
            .await;
        c.send_json(
            json!({"op":"subscribe","id":"b","symbols":["AAPL","MSFT"],"data_types":["price"]}),
        )
        .await;
        let mut expected = 1;
        // AAPL ticks by (timestamp, price): which subscriptions got them.
        let mut aapl: HashMap<(String, String), Vec<String>> = HashMap::new();
        let mut subscribed = 0;
        while expected <= 600 {
            let v = c.next_json().await;
            if !is_data(&v) {
                assert_eq!(v["type"], "subscribed");
                subscribed += 1;
                continue;
            }
            assert_eq!(seq(&v), expected, "seq starts at 1 and has no holes");
            expected += 1;
            if v["symbol"] == "AAPL" {
                let key = (v["timestamp"].to_string(), v["price"].to_string());
                aapl.entry(key)
                    .or_default()
                    .push(v["sub"].as_str().unwrap().to_owned());
            } else {
                assert_eq!(v["sub"], "b");
            }
        }
        assert_eq!(subscribed, 2);
        // Every AAPL tick went to both, once each (the first and the last
        // may be cut off by the subscribe and by the end of the test).
        let complete = aapl.values().filter(|subs| subs.len() == 2).count();
        assert!(complete + 2 >= aapl.len() && complete > 10, "{aapl:?}");
        for subs in aapl.values().filter(|s| s.len() == 2) {
            let set: HashSet<&String> = subs.iter().collect();
            assert_eq!(set.len(), 2);
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn filters_deliver_only_prices_within_bounds() {
    bounded(async {
        let server = start(fast()).await;
        let (mut c, _) = connect_welcomed(&server).await;
        c.subscribe("all", &["AAPL"], &["price"]).await;
        let first = c.next_json().await;
        let p = first["price"].as_f64().unwrap();
        let (lo, hi) = (p - 0.5, p + 0.5);
        // Unknown fields are ignored.
        c.send_json(json!({
            "op": "subscribe", "id": "band", "symbols": ["AAPL"], "data_types": ["price", "volume"],
            "filters": {"min_price": lo, "max_price": hi}, "client_hint": {"x": 1}
        }))
        .await;
        c.send_json(
            json!({"op":"subscribe","id":"none","symbols":["AAPL"],"data_types":["price"],
                           "filters":{"min_price":1e9}}),
        )
        .await;
        let mut last_price = p;
        let mut subscribed = 0;
        let (mut all, mut band, mut outside) = (0, 0, 0);
        while all < 400 {
            let v = c.next_json().await;
            match (v["type"].as_str().unwrap(), v["sub"].as_str()) {
                ("subscribed", _) => subscribed += 1,
                ("price", Some("all")) => {
                    last_price = v["price"].as_f64().unwrap();
                    all += 1;
                    if !(lo..=hi).contains(&last_price) {
                        outside += 1;
                    }
                }
                ("price", Some("band")) => {
                    let x = v["price"].as_f64().unwrap();
                    assert!(lo <= x && x <= hi, "{x} outside [{lo}, {hi}]");
                    assert_eq!(x, last_price);
                    band += 1;
                }
                ("volume", Some("band")) => {
                    assert!(
                        lo <= last_price && last_price <= hi,
                        "volume while the price is outside"
                    );
                }
                other => panic!("unexpected {other:?}: {v}"),
            }
        }
        assert_eq!(subscribed, 2);
        assert!(band > 0, "the band saw some prices");
        assert!(
            outside > 0,
            "the price left the band, and the band saw none of it"
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn conflation_sends_at_most_one_message_per_interval() {
    bounded(async {
        let server = start(ServerConfig {
            tick_interval: Duration::from_millis(10),
            ..fast()
        })
        .await;
        let (mut c, _) = connect_welcomed(&server).await;
        c.subscribe("rt", &["AAPL"], &["price"]).await;
        c.send_json(json!({"op":"subscribe","id":"c","symbols":["AAPL","MSFT"],"data_types":["price","volume"],"update_frequency":"1s"}))
            .await;
        let started = tokio::time::Instant::now();
        let mut last_rt_price = None;
        let mut conflated: HashMap<(String, String), Vec<i64>> = HashMap::new();
        let mut rt_count = 0;
        // Read for 2.5 s of real time, measured on the messages as they come.
        while started.elapsed() < Duration::from_millis(2500) {
            let v = c.next_json().await;
            match v["sub"].as_str() {
                Some("rt") => {
                    last_rt_price = v["price"].as_f64();
                    rt_count += 1;
                }
                Some("c") => {
                    let key = (v["symbol"].as_str().unwrap().to_owned(), v["type"].as_str().unwrap().to_owned());
                    if key == ("AAPL".to_owned(), "price".to_owned()) {
                        assert_eq!(v["price"].as_f64(), last_rt_price, "the latest value");
                    }
                    conflated.entry(key).or_default().push(micros(v["timestamp"].as_str().unwrap()));
                }
                _ => assert_eq!(v["type"], "subscribed"),
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        assert!(rt_count > 100, "the market ticked: {rt_count}");
        assert_eq!(conflated.len(), 4, "{conflated:?}");
        for (key, stamps) in &conflated {
            assert!(stamps.len() >= 2, "{key:?}: {stamps:?}");
            assert!(stamps.len() as f64 <= elapsed.ceil() + 1.0, "{key:?}: {} in {elapsed} s", stamps.len());
            for w in stamps.windows(2) {
                assert!(w[1] - w[0] >= 950_000, "{key:?}: two messages {} µs apart", w[1] - w[0]);
            }
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn operations_over_the_rate_limit_are_rate_limited() {
    bounded(async {
        let server = start(ServerConfig {
            max_ops_per_second: 5,
            ..fast()
        })
        .await;
        let (mut c, _) = connect_welcomed(&server).await;
        for i in 0..12 {
            c.send_json(json!({"op":"unsubscribe","id":format!("r{i}")}))
                .await;
        }
        let mut codes = HashMap::new();
        for _ in 0..12 {
            let e = c.next_control().await;
            assert_eq!(e["type"], "error");
            let id = e["id"].as_str().unwrap().to_owned();
            assert!(
                codes
                    .insert(id, e["code"].as_str().unwrap().to_owned())
                    .is_none(),
                "answered twice"
            );
        }
        let limited = codes.values().filter(|c| *c == "rate_limited").count();
        let answered = codes
            .values()
            .filter(|c| *c == "unknown_subscription")
            .count();
        assert_eq!(limited + answered, 12);
        assert!((5..=10).contains(&answered) && limited >= 2, "{codes:?}");
        assert_eq!(codes["r0"], "unknown_subscription");
        assert_eq!(codes["r11"], "rate_limited");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn repeated_abuse_closes_with_1008() {
    bounded(async {
        let server = start(ServerConfig {
            abuse_error_limit: Some(5),
            ..fast()
        })
        .await;
        let (mut c, _) = connect_welcomed(&server).await;
        for _ in 0..5 {
            c.send_text("garbage").await;
        }
        for _ in 0..5 {
            assert_eq!(c.next_control().await["code"], "bad_request");
        }
        assert_eq!(c.end().await.code(), Some(1008));
    })
    .await;
}

#[tokio::test]
async fn missing_or_wrong_key_gets_401_before_upgrade() {
    bounded(async {
        let server = start(ServerConfig {
            api_keys: vec!["k-one".into(), "k-two".into()],
            ..fast()
        })
        .await;
        let none = try_connect(&server, Opts::default())
            .await
            .err()
            .expect("refused");
        assert_eq!(http_status(&none), 401);
        let wrong = try_connect(
            &server,
            Opts {
                key: Some("k-three".into()),
                ..Opts::default()
            },
        )
        .await
        .err()
        .expect("refused");
        assert_eq!(http_status(&wrong), 401);
        let mut ok = try_connect(
            &server,
            Opts {
                key: Some("k-two".into()),
                subprotocol: true,
            },
        )
        .await
        .unwrap();
        assert_eq!(ok.next_json().await["type"], "welcome");
        let stats = server.stats();
        assert_eq!(
            (
                stats.connection_attempts,
                stats.connections_unauthorized,
                stats.connections_accepted
            ),
            (3, 2, 1)
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    bounded(async {
        let server = start(fast()).await;
        let (mut c, _) = connect_welcomed(&server).await;
        // 64 KiB exactly is allowed (and is a bad request).
        let mut at_limit = String::from("{\"op\":\"x\",\"pad\":\"");
        at_limit.push_str(&"a".repeat(64 * 1024 - at_limit.len() - 2));
        at_limit.push_str("\"}");
        assert_eq!(at_limit.len(), 64 * 1024);
        c.send_text(&at_limit).await;
        assert_eq!(c.next_control().await["code"], "bad_request");
        c.send_text(&"x".repeat(70 * 1024)).await;
        assert_eq!(c.end().await.code(), Some(1009));
    })
    .await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_4000_and_can_resume() {
    bounded(async {
        let server = start(ServerConfig {
            tick_interval: Duration::from_millis(1),
            outbound_queue_limit: 1000,
            replay_buffer_messages: 1_000_000,
            ..fast()
        })
        .await;
        let (mut c, w) = connect_welcomed(&server).await;
        let symbols: Vec<String> = server.symbols().iter().map(|s| s.to_string()).collect();
        let symbols: Vec<&str> = symbols.iter().map(String::as_str).collect();
        c.subscribe("all", &symbols, &["price", "volume", "orderbook"])
            .await;
        // Stop reading until the server has given up on us.
        let stats =
            tokio::time::timeout(WAIT, server.wait_for_stats(|s| s.slow_consumer_closes >= 1))
                .await
                .expect("the queue overflows");
        assert_eq!(stats.slow_consumer_closes, 1);
        // Reading again drains what was in flight, then the close.
        let mut last = 0;
        let end = loop {
            match c.next_frame().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_eq!(seq(&v), last + 1);
                    last += 1;
                }
                Some(Ok(Message::Close(f))) => break f,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(end.map(|f| u16::from(f.code)), Some(4000));
        // Reconnect and resume: the rest follows without a hole.
        let (mut c2, _) = connect_welcomed(&server).await;
        c2.send_json(json!({"op":"resume","session":w["session"],"last_seq":last}))
            .await;
        let r = c2.next_json().await;
        assert_eq!(r["type"], "resumed", "{r}");
        assert_eq!(r["subscriptions"], json!(["all"]));
        for _ in 0..100 {
            let v = c2.next_json().await;
            assert_eq!(seq(&v), last + 1);
            last += 1;
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn pings_keep_a_reading_client_and_drop_a_silent_one() {
    bounded(async {
        let server = start(ServerConfig {
            ping_interval: Duration::from_millis(200),
            ..fast()
        })
        .await;
        // A client that reads answers pings (tungstenite does) and stays;
        // it keeps reading in its own task while the rest of the test runs.
        let (mut reading, _) = connect_welcomed(&server).await;
        let reader = tokio::spawn(async move {
            let mut pings = 0;
            while pings < 4 {
                match reading.next_frame().await {
                    Some(Ok(Message::Ping(_))) => pings += 1,
                    Some(Ok(_)) => {}
                    other => panic!("the reading client was dropped: {other:?}"),
                }
            }
            reading
        });
        // A client that never reads never answers: it is dropped.
        let (silent, _) = connect_welcomed(&server).await;
        let before = server.stats().connections_accepted;
        assert_eq!(before, 2);
        tokio::time::timeout(WAIT, server.wait_for_stats(|s| s.live_connections == 1))
            .await
            .expect("the silent client is dropped");
        drop(silent);
        // Four pings later (two intervals twice over), the reader is still served.
        let mut reading = reader.await.unwrap();
        // The reading one is still served.
        reading.subscribe("x", &["AAPL"], &["price"]).await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001() {
    bounded(async {
        let server = start(fast()).await;
        let (mut a, _) = connect_welcomed(&server).await;
        let (mut b, _) = connect_welcomed(&server).await;
        a.subscribe("a", &["AAPL"], &["price"]).await;
        assert_eq!(server.live_connections(), 2);
        let (ra, rb, ()) = tokio::join!(a.end(), b.end(), server.shutdown());
        assert_eq!((ra.code(), rb.code()), (Some(1001), Some(1001)));
        let stats = server.stats();
        assert_eq!((stats.live_connections, stats.sessions), (0, 0));
        assert!(!server.is_running());
        assert!(try_connect_refused(&server).await);
    })
    .await;
}

async fn try_connect_refused(server: &argus_server::ServerHandle) -> bool {
    tokio::net::TcpStream::connect(server.local_addr())
        .await
        .is_err()
}
