//! The live suite: the same tests, written once, for the client on every
//! [`Runtime`]. Each adapter runs it with [`live_suite!`](crate::live_suite)
//! and its runtime's `block_on`; the reference server runs on a tokio
//! runtime of its own, started before and stopped after the client's.
//!
//! [`Runtime`]: argus_client::Runtime
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argus_client::{
    ConnectError, DisconnectReason, Event, GiveUpReason, Interest, MarketData, MessageKind,
    OpenError, Runtime, SubscribeError, WebSocketClient,
};
use argus_core::{ConnectionConfig, ConnectionState, DataType, SubscriptionConfig};
use argus_server::{ServerConfig, TlsConfig};
use futures_util::StreamExt;

use crate::live::*;
use crate::scripted::ScriptedServer;

/// A runtime's `block_on`, as the suite calls it.
pub type BlockOn = fn(Pin<Box<dyn Future<Output = ()> + '_>>);

/// Declares the live suite's tests for runtime `$runtime`, each run by
/// `$block_on` (a [`BlockOn`]).
#[macro_export]
macro_rules! live_suite {
    ($runtime:ty, $block_on:expr) => {
        $crate::live_suite!(@tests $runtime, $block_on,
            every_seq_arrives_once_in_order_across_dropped_connections,
            a_half_open_link_is_detected_within_heartbeat_and_timeout_and_resumed,
            wss_with_a_trusted_custom_root_gets_data_and_an_untrusted_one_is_fatal,
            a_wrong_key_is_fatal_after_one_attempt_and_never_shown,
            async_handlers_take_the_queue_and_the_event_stream_sees_everything,
            a_slow_event_stream_gets_every_event_in_order_through_drops_and_a_gap,
            a_subscribe_the_server_never_answers_times_out_and_the_link_stays_up,
        );
    };
    (@tests $runtime:ty, $block_on:expr, $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::suite::$name::<$runtime>($block_on);
            }
        )*
    };
}

/// A client subscribed to AAPL prices, recording what its handler sees.
async fn recorded<R: Runtime>(config: ConnectionConfig) -> (WebSocketClient<R>, Recorder) {
    let client = WebSocketClient::<R>::new(config).expect("a valid client");
    let seen = Recorder::default();
    client.add_message_handler(MessageKind::Price, seen.handler());
    within("connect", client.connect())
        .await
        .expect("connected");
    within(
        "subscribe",
        client.subscribe("main", SubscriptionConfig::new(["AAPL"], [DataType::Price])),
    )
    .await
    .expect("subscribed");
    (client, seen)
}

/// Three dropped connections: every seq once, in order, resumed each time.
pub fn every_seq_arrives_once_in_order_across_dropped_connections<R: Runtime>(block_on: BlockOn) {
    let bed = server(server_config());
    block_on(Box::pin(async {
        let (client, seen) = recorded::<R>(client_config(&bed.url())).await;
        seen.wait_for(10).await;
        for _ in 0..3 {
            assert_eq!(bed.drop_connections(), 1);
            seen.wait_for_more(10).await;
        }
        assert_consecutive(&seen.seqs(), 1, "across three drops");
        let stats = client.stats().await;
        assert_eq!(stats.connection.reconnect_count, 3, "{stats:?}");
        assert_eq!(stats.connection.gaps, 0);
        assert_eq!(client.state(), ConnectionState::Connected);
        client.disconnect().await;
    }));
}

/// A link that goes silent is found dead within heartbeat + timeout.
pub fn a_half_open_link_is_detected_within_heartbeat_and_timeout_and_resumed<R: Runtime>(
    block_on: BlockOn,
) {
    let bed = server(server_config());
    block_on(Box::pin(async {
        let config = client_config(&bed.url());
        let bound = config.heartbeat_interval + config.timeout;
        let (client, seen) = recorded::<R>(config.clone()).await;
        let mut events = client.events();
        seen.wait_for(10).await;

        let silent_at = Instant::now();
        assert_eq!(bed.go_silent(), 1);
        next_event(&mut events, "the heartbeat timeout", |event| match event {
            Event::Disconnected(DisconnectReason::HeartbeatTimeout { .. }) => Some(()),
            Event::Disconnected(other) => panic!("{other:?}"),
            _ => None,
        })
        .await;
        let detected = silent_at.elapsed();
        assert!(
            detected >= config.timeout && detected <= bound + Duration::from_millis(100),
            "detected after {detected:?}, bound {bound:?}"
        );
        drop(events);
        within("the link back", client.wait_for_connection())
            .await
            .expect("reconnected");
        seen.wait_for_more(10).await;
        assert_consecutive(&seen.seqs(), 1, "after the half-open link");
        bed.end_silence();
    }));
}

/// `wss://` with a root given in the builder works; without it, the
/// certificate is refused once and for all.
pub fn wss_with_a_trusted_custom_root_gets_data_and_an_untrusted_one_is_fatal<R: Runtime>(
    block_on: BlockOn,
) {
    let key =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a certificate");
    let bed = server(ServerConfig {
        tls: Some(TlsConfig {
            cert_chain_pem: key.cert.pem().into_bytes(),
            private_key_pem: key.signing_key.serialize_pem().into_bytes(),
        }),
        ..server_config()
    });
    assert!(bed.url().starts_with("wss://"), "{}", bed.url());
    block_on(Box::pin(async {
        let client = WebSocketClient::<R>::builder(client_config(&bed.url()))
            .builtin_roots(false)
            .add_root_certificate(key.cert.der().clone())
            .build()
            .unwrap();
        let seen = Recorder::default();
        client.add_message_handler(MessageKind::Price, seen.handler());
        within("connect", client.connect()).await.unwrap();
        within(
            "subscribe",
            client.subscribe("tls", SubscriptionConfig::new(["AAPL"], [DataType::Price])),
        )
        .await
        .unwrap();
        seen.wait_for(10).await;
        assert_consecutive(&seen.seqs(), 1, "over TLS");

        // The same root as PEM works too.
        let pem = WebSocketClient::<R>::builder(client_config(&bed.url()))
            .builtin_roots(false)
            .add_root_certificates_pem(key.cert.pem())
            .build()
            .unwrap();
        within("connect with a PEM root", pem.connect())
            .await
            .unwrap();
        pem.disconnect().await;

        let attempts = bed.stats().connection_attempts;
        let untrusted = WebSocketClient::<R>::builder(client_config(&bed.url()))
            .builtin_roots(false)
            .build()
            .unwrap();
        let error = within("the refusal", untrusted.connect())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ConnectError::GaveUp(GiveUpReason::Fatal(OpenError::Certificate(_)))
            ),
            "{error:?}"
        );
        assert!(error.is_fatal());
        assert_eq!(untrusted.state(), ConnectionState::Error);
        assert_eq!(untrusted.stats().await.connection.connect_attempts, 1);
        assert_eq!(bed.stats().connection_attempts, attempts + 1, "no retry");
    }));
}

/// 401 ends the client at once, and the key shows nowhere.
pub fn a_wrong_key_is_fatal_after_one_attempt_and_never_shown<R: Runtime>(block_on: BlockOn) {
    let bed = server(ServerConfig {
        api_keys: vec!["right-key".into()],
        ..server_config()
    });
    block_on(Box::pin(async {
        let config = ConnectionConfig {
            api_key: Some("wrong-key-123".into()),
            ..client_config(&bed.url())
        };
        let client = WebSocketClient::<R>::new(config).unwrap();
        let error = within("the refusal", client.connect()).await.unwrap_err();
        assert!(
            matches!(
                error,
                ConnectError::GaveUp(GiveUpReason::Fatal(OpenError::Unauthorized { status: 401 }))
            ),
            "{error:?}"
        );
        assert_eq!(client.state(), ConnectionState::Error);
        assert_eq!(bed.stats().connections_unauthorized, 1);
        assert!(!format!("{client:?} {error:?} {error}").contains("wrong-key-123"));
    }));
}

/// An async handler runs behind the handler queue; a stream sees the
/// subscription's answer and the data.
pub fn async_handlers_take_the_queue_and_the_event_stream_sees_everything<R: Runtime>(
    block_on: BlockOn,
) {
    let bed = server(server_config());
    block_on(Box::pin(async {
        let client = client::<R>(&bed.url());
        let mut events = client.events();
        let seen = Recorder::default();
        let s = seen.clone();
        client.add_message_handler(MessageKind::All, move |data: MarketData| {
            let s = s.clone();
            async move {
                pause(Duration::from_micros(200)).await;
                s.record(&data);
            }
        });
        within("connect", client.connect()).await.unwrap();
        let id = within(
            "subscribe",
            client.subscribe("both", SubscriptionConfig::new(["MSFT"], DataType::ALL)),
        )
        .await
        .unwrap();
        seen.wait_for(30).await;
        assert_consecutive(&seen.seqs(), 1, "through the handler task");
        let stats = client.stats().await;
        assert!(stats.queue.max_depth >= 1, "{:?}", stats.queue);
        assert_eq!(stats.event_streams, 1);

        let mut data = Vec::new();
        next_event(
            &mut events,
            "the subscription's answer",
            |event| match event {
                Event::Subscribed(s) => {
                    assert_eq!(s, &id);
                    Some(())
                }
                Event::Data(_) => panic!("data before the subscription's answer"),
                _ => None,
            },
        )
        .await;
        next_event(&mut events, "ten data messages", |event| {
            if let Event::Data(d) = event {
                data.push(d.seq());
            }
            (data.len() >= 10).then_some(())
        })
        .await;
        assert_consecutive(&data, 1, "on the event stream");
        client.disconnect().await;
        assert_eq!(client.state(), ConnectionState::Disconnected);
    }));
}

/// The one ordered output under stress: a deliberately slow event stream
/// (backpressure), five forced drops and one skipped seq. The stream gets
/// every data message once, in order, with the gap exactly in its place;
/// a handler registered for data and gaps sees the same sequence.
pub fn a_slow_event_stream_gets_every_event_in_order_through_drops_and_a_gap<R: Runtime>(
    block_on: BlockOn,
) {
    let bed = server(server_config());
    block_on(Box::pin(async {
        let client = WebSocketClient::<R>::builder(client_config(&bed.url()))
            .event_capacity(8)
            .build()
            .unwrap();
        // The slow reader: a pause after every data message.
        let mut events = client.events();
        let (done, finished) = tokio::sync::oneshot::channel();
        R::spawn(async move {
            let mut lines = Vec::new();
            let mut resumed = 0;
            while let Some(event) = events.next().await {
                match &event {
                    Event::Data(_) => pause(Duration::from_millis(2)).await,
                    Event::Resumed { .. } => resumed += 1,
                    Event::StateChanged {
                        to: ConnectionState::Disconnected,
                        ..
                    } => break,
                    _ => {}
                }
                lines.extend(journal_line(&event));
            }
            let _ = done.send((lines, resumed));
        });
        let handled = Arc::new(Mutex::new(Vec::new()));
        let h = handled.clone();
        client.add_message_handler(Interest::DATA | Interest::GAP, move |event: &Event| {
            h.lock().unwrap().extend(journal_line(event));
        });
        let seen = Recorder::default();
        client.add_message_handler(MessageKind::All, seen.handler());
        within("connect", client.connect()).await.unwrap();
        within(
            "subscribe",
            client.subscribe(
                "slow",
                SubscriptionConfig::new(["AAPL", "MSFT", "NVDA"], [DataType::Price]),
            ),
        )
        .await
        .unwrap();
        seen.wait_for(20).await;
        for forced in 0..5 {
            if forced == 2 {
                bed.skip_seq();
                seen.wait_for_more(5).await;
            }
            // The slow reader may also cost a link (a pong unread for
            // `timeout` looks like a dead link): drop a live one, known
            // live by the next message it delivers.
            within("a live link to drop", async {
                while bed.drop_connections() == 0 {
                    seen.wait_for_more(1).await;
                }
            })
            .await;
            seen.wait_for_more(20).await;
        }
        client.disconnect().await;
        let (lines, resumed) = within("the slow reader", finished).await.unwrap();

        assert_eq!(
            lines,
            *handled.lock().unwrap(),
            "the stream and the handler saw different sequences"
        );
        let gaps: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].starts_with("gap"))
            .collect();
        assert_eq!(gaps.len(), 1, "one gap: {lines:?}");
        let at = gaps[0];
        let seq = |line: &str| line[1..].parse::<u64>().unwrap();
        let (before, after) = (seq(&lines[at - 1]), seq(&lines[at + 1]));
        assert_eq!(after, before + 2, "the gap stands between its neighbours");
        assert_eq!(lines[at], format!("gap {}..={}", before + 1, before + 1));
        let mut seqs: Vec<u64> = lines
            .iter()
            .filter(|l| l.starts_with('#'))
            .map(|l| seq(l))
            .collect();
        assert_eq!(
            seqs.len(),
            seen.len(),
            "every data message reached the stream"
        );
        seqs.insert(at, before + 1);
        assert_consecutive(&seqs, 1, "the stream's data with the gap filled in");
        // Each forced drop is resumed, unless the slow reader had already
        // cost that link (a drop may then hit a connection the client had
        // given up on): at least one resume, and never a failed one.
        assert!(resumed >= 1, "resumed {resumed} times");
        let stats = client.stats().await;
        assert_eq!(stats.connection.gaps, 1, "{stats:?}");
    }));
}

/// A server that welcomes and never answers a subscribe: the call fails
/// with a timeout within `timeout` + 10%, and the client stays connected.
pub fn a_subscribe_the_server_never_answers_times_out_and_the_link_stays_up<R: Runtime>(
    block_on: BlockOn,
) {
    let mut mute = ScriptedServer::start(|mut conn| async move {
        conn.welcome(1).await?;
        conn.drain().await
    });
    block_on(Box::pin(async {
        let timeout = Duration::from_secs(1);
        let config = ConnectionConfig::builder(mute.url())
            .heartbeat_interval(Duration::from_millis(200))
            .timeout(timeout)
            .build()
            .unwrap();
        let client = WebSocketClient::<R>::new(config).unwrap();
        within("connect", client.connect()).await.unwrap();
        let asked = Instant::now();
        let error = within(
            "the timeout",
            client.subscribe(
                "never",
                SubscriptionConfig::new(["AAPL"], [DataType::Price]),
            ),
        )
        .await
        .unwrap_err();
        let took = asked.elapsed();
        assert!(
            matches!(&error, SubscribeError::TimedOut { id, .. } if id.as_str() == "never"),
            "{error:?}"
        );
        assert!(
            took >= timeout && took <= timeout + timeout / 10,
            "timed out after {took:?}"
        );
        assert_eq!(client.state(), ConnectionState::Connected);
        assert!(client.subscriptions().await.is_empty());
        assert_eq!(client.stats().await.connection.reconnect_count, 0);
        // The subscribe, then the unsubscribe sent in case it acts late.
        let ops: Vec<String> = mute
            .requests(2)
            .await
            .into_iter()
            .map(|(_, request)| format!("{} {}", request["op"], request["id"]))
            .collect();
        assert_eq!(ops, [r#""subscribe" "never""#, r#""unsubscribe" "never""#]);
    }));
}
