//! Sessions, resume and replay: nothing lost, nothing repeated.

mod common;

use std::time::Duration;

use argus_server::ServerConfig;
use common::*;
use serde_json::{Value, json};

/// Reads data messages until `n` have come, returning them as text.
async fn read_data(c: &mut Client, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let v = c.next_json().await;
        if is_data(&v) {
            out.push(v);
        }
    }
    out
}

#[tokio::test]
async fn resume_after_an_abrupt_drop_replays_exactly_what_followed() {
    bounded(async {
        let server = start(fast()).await;
        let (mut a, welcome) = connect_welcomed(&server).await;
        a.subscribe("main", &["AAPL", "MSFT"], &["price", "volume"])
            .await;
        a.subscribe("alerts", &["TSLA"], &["orderbook"]).await;
        let seen = read_data(&mut a, 60).await;
        for (i, v) in seen.iter().enumerate() {
            assert_eq!(seq(v), seq(&seen[0]) + i as u64);
        }
        // The client processed up to `last_seq`, then more arrived before the drop.
        let last_seq = seq(&seen[29]);
        assert_eq!(server.drop_connections(), 1);
        match a.end().await {
            End::Abrupt(_) => {}
            other => panic!("expected no close frame, got {other:?}"),
        }
        tokio::time::timeout(WAIT, server.wait_for_stats(|s| s.live_connections == 0))
            .await
            .unwrap();
        assert_eq!(
            server.session_count(),
            1,
            "the session outlives its connection"
        );

        let (mut b, fresh) = connect_welcomed(&server).await;
        assert_ne!(fresh["session"], welcome["session"]);
        b.send_json(json!({"op":"resume","session":welcome["session"],"last_seq":last_seq}))
            .await;
        let resumed = b.next_json().await;
        assert_eq!(resumed["type"], "resumed", "{resumed}");
        assert_eq!(resumed["session"], welcome["session"]);
        let mut subs: Vec<&str> = resumed["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        subs.sort_unstable();
        assert_eq!(subs, ["alerts", "main"]);
        let replayed = resumed["replayed"].as_u64().unwrap();
        assert!(
            replayed >= 30,
            "at least what the client saw after last_seq"
        );
        // Exactly the messages after last_seq, byte for byte what was sent
        // the first time, then live data with the same numbering.
        let after = read_data(&mut b, replayed as usize + 50).await;
        for (i, v) in after.iter().enumerate() {
            assert_eq!(seq(v), last_seq + 1 + i as u64, "no hole, no repeat");
        }
        for (old, new) in seen[30..].iter().zip(&after) {
            assert_eq!(old, new);
        }
        // The fresh session of b's welcome is gone; one session remains.
        tokio::time::timeout(WAIT, server.wait_for_stats(|s| s.sessions == 1))
            .await
            .unwrap();
        // Requests go to the resumed session.
        b.send_json(json!({"op":"unsubscribe","id":"alerts"})).await;
        assert_eq!(
            b.next_control().await,
            json!({"type":"unsubscribed","id":"alerts"})
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn resume_with_nothing_missed_replays_nothing() {
    bounded(async {
        let server = start(fast()).await;
        let (mut a, w) = connect_welcomed(&server).await;
        a.subscribe("main", &["AAPL"], &["price"]).await;
        let seen = read_data(&mut a, 5).await;
        let last = seq(seen.last().unwrap());
        // Close cleanly; the session still waits for a resume.
        a.ws.close(None).await.unwrap();
        a.end().await;
        let (mut b, _) = connect_welcomed(&server).await;
        b.send_json(json!({"op":"resume","session":w["session"],"last_seq":last}))
            .await;
        let r = b.next_json().await;
        assert_eq!(r["type"], "resumed");
        let replayed = r["replayed"].as_u64().unwrap();
        let next = read_data(&mut b, replayed as usize + 3).await;
        assert_eq!(seq(&next[0]), last + 1);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_unknown_session_fails_and_the_connection_goes_on() {
    bounded(async {
        let server = start(fast()).await;
        let (mut c, _) = connect_welcomed(&server).await;
        c.send_json(
            json!({"op":"resume","session":"00000000000000000000000000000000","last_seq":7}),
        )
        .await;
        let e = c.next_json().await;
        assert_eq!(e["type"], "error");
        assert_eq!(e["code"], "resume_failed");
        assert!(e.get("id").is_none());
        // The fresh session of the welcome serves on, from seq 1.
        c.subscribe("main", &["AAPL"], &["price"]).await;
        let first = c.next_json().await;
        assert_eq!(seq(&first), 1);
        // A second resume is not the first message any more.
        c.send_json(json!({"op":"resume","session":"x","last_seq":0}))
            .await;
        let e = c.next_control().await;
        assert_eq!(e["code"], "resume_failed");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn resume_must_be_the_first_message() {
    bounded(async {
        let server = start(fast()).await;
        let (mut a, w) = connect_welcomed(&server).await;
        a.subscribe("main", &["AAPL"], &["price"]).await;
        server.drop_connections();
        a.end().await;
        let (mut b, _) = connect_welcomed(&server).await;
        b.send_json(json!({"op":"unsubscribe","id":"nothing"}))
            .await;
        assert_eq!(b.next_control().await["code"], "unknown_subscription");
        b.send_json(json!({"op":"resume","session":w["session"],"last_seq":0}))
            .await;
        let e = b.next_control().await;
        assert_eq!(e["code"], "resume_failed", "{e}");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn resume_fails_for_another_key_a_short_buffer_or_a_future_seq() {
    bounded(async {
        let server = start(ServerConfig {
            api_keys: vec!["key-a".into(), "key-b".into()],
            replay_buffer_messages: 5,
            ..fast()
        })
        .await;
        let with_key = |k: &str| Opts {
            key: Some(k.to_owned()),
            subprotocol: true,
        };
        let mut a = try_connect(&server, with_key("key-a")).await.unwrap();
        let w = a.next_json().await;
        a.subscribe("main", &["AAPL", "MSFT"], &["price"]).await;
        let seen = read_data(&mut a, 20).await;
        server.drop_connections();
        a.end().await;
        let session = &w["session"];

        let attempt = |key: &'static str, last_seq: u64| {
            let server = &server;
            async move {
                let mut c = try_connect(server, with_key(key)).await.unwrap();
                assert_eq!(c.next_json().await["type"], "welcome");
                c.send_json(json!({"op":"resume","session":session,"last_seq":last_seq}))
                    .await;
                c.next_control().await
            }
        };
        // Another key: refused, as if the session did not exist.
        let e = attempt("key-b", seq(&seen[19])).await;
        assert_eq!(e["code"], "resume_failed", "{e}");
        // The buffer holds only the last 5 messages: it cannot reach seq 3.
        let e = attempt("key-a", 2).await;
        assert_eq!(e["code"], "resume_failed", "{e}");
        // A seq the session never sent.
        let e = attempt("key-a", 1_000_000_000).await;
        assert_eq!(e["code"], "resume_failed", "{e}");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn resuming_a_connected_session_takes_it_over() {
    bounded(async {
        let server = start(fast()).await;
        let (mut a, w) = connect_welcomed(&server).await;
        a.subscribe("main", &["AAPL"], &["price"]).await;
        let seen = read_data(&mut a, 3).await;
        let (mut b, _) = connect_welcomed(&server).await;
        b.send_json(json!({"op":"resume","session":w["session"],"last_seq":seq(&seen[2])}))
            .await;
        assert_eq!(b.next_json().await["type"], "resumed");
        assert_eq!(a.end().await.code(), Some(1000));
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_session_expires_after_its_ttl() {
    bounded(async {
        let server = start(ServerConfig {
            session_ttl: Duration::from_millis(200),
            ..fast()
        })
        .await;
        let (mut a, w) = connect_welcomed(&server).await;
        a.subscribe("main", &["AAPL"], &["price"]).await;
        server.drop_connections();
        a.end().await;
        tokio::time::timeout(
            WAIT,
            server.wait_for_stats(|s| s.sessions == 0 && s.live_connections == 0),
        )
        .await
        .expect("the session expires");
        let (mut b, _) = connect_welcomed(&server).await;
        b.send_json(json!({"op":"resume","session":w["session"],"last_seq":0}))
            .await;
        assert_eq!(b.next_control().await["code"], "resume_failed");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_resumed_conflated_session_catches_up_at_most_once_per_interval() {
    bounded(async {
        let server = start(fast()).await;
        let (mut a, welcome) = connect_welcomed(&server).await;
        a.send_json(json!({"op":"subscribe","id":"slow","symbols":["AAPL","MSFT"],"data_types":["price"],"update_frequency":"1s"}))
            .await;
        assert_eq!(a.next_control().await["type"], "subscribed");
        // The first change of each symbol goes out at once.
        let first = read_data(&mut a, 2).await;
        let last_seq = seq(&first[1]);
        server.drop_connections();
        tokio::time::timeout(WAIT, server.wait_for_stats(|s| s.live_connections == 0))
            .await
            .unwrap();
        // Detached for over two intervals: the session does no work meanwhile
        // and produces, on resume, what it would have sent.
        tokio::time::sleep(Duration::from_millis(2300)).await;
        let (mut b, _) = connect_welcomed(&server).await;
        b.send_json(json!({"op":"resume","session":welcome["session"],"last_seq":last_seq}))
            .await;
        let resumed = b.next_json().await;
        assert_eq!(resumed["type"], "resumed", "{resumed}");
        let replayed = resumed["replayed"].as_u64().unwrap() as usize;
        assert!(
            (2..=6).contains(&replayed),
            "two symbols, one message an interval each over 2.3 s: {replayed}"
        );
        let after = read_data(&mut b, replayed).await;
        let at = |v: &Value| micros(v["timestamp"].as_str().unwrap());
        let mut last_at: std::collections::HashMap<String, i64> = [&first[0], &first[1]]
            .iter()
            .map(|v| (v["symbol"].as_str().unwrap().to_owned(), at(v)))
            .collect();
        for (i, v) in after.iter().enumerate() {
            assert_eq!(seq(v), last_seq + 1 + i as u64, "no hole, no repeat");
            let symbol = v["symbol"].as_str().unwrap().to_owned();
            let now = at(v);
            let previous = last_at.insert(symbol, now).unwrap();
            assert!(now - previous >= 1_000_000, "at most once a second: {v}");
        }
        server.shutdown().await;
    })
    .await;
}
