//! Fault injection through the handle, as a client library's tests use it.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::{Bytes, Message};

#[tokio::test]
async fn refusing_answers_503_and_counts_every_attempt() {
    bounded(async {
        let server = start(fast()).await;
        server.refuse_next_connections(2);
        for _ in 0..2 {
            let e = try_connect(&server, Opts::default())
                .await
                .err()
                .expect("refused");
            assert_eq!(http_status(&e), 503);
        }
        let (_c, _) = connect_welcomed(&server).await;
        let s = server.stats();
        assert_eq!(
            (
                s.connection_attempts,
                s.connections_refused,
                s.connections_accepted
            ),
            (3, 2, 1)
        );

        server.refuse_connections(Duration::from_secs(60));
        let e = try_connect(&server, Opts::default())
            .await
            .err()
            .expect("refused");
        assert_eq!(http_status(&e), 503);
        server.accept_connections();
        let (_d, _) = connect_welcomed(&server).await;
        let s = server.stats();
        assert_eq!(
            (
                s.connection_attempts,
                s.connections_refused,
                s.connections_accepted,
                s.live_connections
            ),
            (5, 3, 2, 2)
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn skip_seq_leaves_exactly_one_hole() {
    bounded(async {
        let server = start(fast()).await;
        let (mut c, _) = connect_welcomed(&server).await;
        c.subscribe("main", &["AAPL", "MSFT"], &["price"]).await;
        let mut last = 0;
        while last < 10 {
            let v = c.next_json().await;
            assert_eq!(seq(&v), last + 1);
            last = seq(&v);
        }
        server.skip_seq();
        let mut holes = Vec::new();
        for _ in 0..100 {
            let v = c.next_json().await;
            if seq(&v) != last + 1 {
                holes.push((last, seq(&v)));
            }
            last = seq(&v);
        }
        assert_eq!(holes.len(), 1, "{holes:?}");
        assert_eq!(holes[0].1, holes[0].0 + 2, "one seq skipped");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn dropped_connections_get_no_close_frame() {
    bounded(async {
        let server = start(fast()).await;
        let (mut a, _) = connect_welcomed(&server).await;
        let (mut b, _) = connect_welcomed(&server).await;
        assert_eq!(server.drop_connections(), 2);
        for c in [&mut a, &mut b] {
            assert!(matches!(c.end().await, End::Abrupt(_)));
        }
        tokio::time::timeout(WAIT, server.wait_for_stats(|s| s.live_connections == 0))
            .await
            .unwrap();
        // New connections are served as usual.
        let (_c, _) = connect_welcomed(&server).await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn silence_makes_current_connections_half_open_until_ended() {
    bounded(async {
        let server = start(fast()).await;
        let (mut c, _) = connect_welcomed(&server).await;
        c.subscribe("main", &["AAPL"], &["price"]).await;
        c.next_json().await;
        assert_eq!(server.go_silent(), 1);
        // Whatever was in flight drains; then nothing, not even a pong.
        c.ws.send(Message::Ping(Bytes::from_static(b"are you there")))
            .await
            .unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                match c.ws.next_frame_raw().await {
                    Some(Ok(Message::Pong(_))) => return,
                    Some(Ok(_)) => {}
                    other => panic!("the connection must stay open: {other:?}"),
                }
            }
        })
        .await;
        assert!(quiet.is_err(), "no pong while silent");
        // A new connection is not affected.
        let (mut d, _) = connect_welcomed(&server).await;
        d.subscribe("x", &["MSFT"], &["price"]).await;
        // Undo: the pong and the data come.
        server.end_silence();
        loop {
            match c.next_frame().await {
                Some(Ok(Message::Pong(p))) => {
                    assert_eq!(&p[..], b"are you there");
                    break;
                }
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        let v = c.next_json().await;
        assert_eq!(v["sub"], "main");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn disconnect_all_closes_with_the_code_and_keeps_sessions() {
    bounded(async {
        let server = start(fast()).await;
        let (mut c, w) = connect_welcomed(&server).await;
        c.subscribe("main", &["AAPL"], &["price"]).await;
        assert_eq!(server.disconnect_all(4000, "test"), 1);
        assert_eq!(c.end().await.code(), Some(4000));
        let (mut d, _) = connect_welcomed(&server).await;
        d.send_json(json!({"op":"resume","session":w["session"],"last_seq":0}))
            .await;
        assert_eq!(d.next_json().await["type"], "resumed");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn restart_closes_with_1001_and_serves_again_on_the_same_port() {
    bounded(async {
        let server = start(fast()).await;
        let url = server.url();
        let (mut c, w) = connect_welcomed(&server).await;
        c.subscribe("main", &["AAPL"], &["price"]).await;
        let (end, restarted) = tokio::join!(c.end(), server.restart());
        restarted.unwrap();
        assert_eq!(end.code(), Some(1001));
        assert_eq!(server.url(), url);
        assert_eq!(server.stats().restarts, 1);
        // A restart forgets sessions, as a real one would.
        let (mut d, _) = connect_welcomed(&server).await;
        d.send_json(json!({"op":"resume","session":w["session"],"last_seq":1}))
            .await;
        assert_eq!(d.next_control().await["code"], "resume_failed");
        let first = {
            d.subscribe("main", &["AAPL"], &["price"]).await;
            d.next_json().await
        };
        assert_eq!(seq(&first), 1);
        server.shutdown().await;
        assert!(server.restart().await.is_err(), "no restart after shutdown");
    })
    .await;
}

#[tokio::test]
async fn injected_frames_arrive_in_order() {
    bounded(async {
        let server = start(fast()).await;
        let (mut c, _) = connect_welcomed(&server).await;
        assert_eq!(server.inject_text(r#"{"type":"trade","future":true}"#), 1);
        assert_eq!(server.inject_binary(&[0xde, 0xad]), 1);
        c.send_json(json!({"op":"unsubscribe","id":"after"})).await;
        assert_eq!(c.next_json().await, json!({"type":"trade","future":true}));
        match c.next_frame().await {
            Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], [0xde, 0xad]),
            other => panic!("expected the binary frame, got {other:?}"),
        }
        assert_eq!(c.next_control().await["id"], "after");
        server.shutdown().await;
    })
    .await;
}

/// Reading without the helpers' timeout, for waits that are meant to time out.
trait RawNext {
    async fn next_frame_raw(
        &mut self,
    ) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>>;
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> RawNext
    for tokio_tungstenite::WebSocketStream<S>
{
    async fn next_frame_raw(
        &mut self,
    ) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
        futures_util::StreamExt::next(self).await
    }
}
