//! The async-std adapter against the reference server on loopback: data,
//! lost links, a half-open link, TLS, a refused key, async handlers and the
//! event stream. The server runs on a tokio runtime of its own (it is a
//! tokio program); the clients run on async-std.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argus_async_std::{
    ClientEvent, ConnectError, ConnectionConfig, ConnectionState, DataType, DisconnectReason,
    GiveUpReason, MarketData, MessageKind, OpenError, SubscriptionConfig, WebSocketClient,
};
use argus_server::{BackgroundServer, Server, ServerConfig, TlsConfig};
use async_std::channel;
use futures_util::StreamExt;

/// The safety net around every wait: far above what any wait takes.
const WAIT: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match async_std::future::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// The reference server, on a tokio runtime of its own, ticking every 5 ms.
fn server(config: ServerConfig) -> BackgroundServer {
    Server::start_in_background(ServerConfig {
        tick_interval: Duration::from_millis(5),
        ..config
    })
    .expect("the server starts")
}

/// Pings every 200 ms, 300 ms to answer, backoff from 20 ms to 100 ms.
fn client_config(url: &str) -> ConnectionConfig {
    ConnectionConfig::builder(url)
        .heartbeat_interval(Duration::from_millis(200))
        .timeout(Duration::from_millis(300))
        .reconnect_delay(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(100))
        .max_reconnect_attempts(10)
        .build()
        .expect("a valid config")
}

/// The seqs a handler saw, and a channel that ticks at each.
#[derive(Clone)]
struct Recorder {
    seqs: Arc<Mutex<Vec<u64>>>,
    tick: channel::Sender<()>,
}

impl Recorder {
    fn new() -> (Self, channel::Receiver<()>) {
        let (tick, ticks) = channel::unbounded();
        let recorder = Self {
            seqs: Arc::default(),
            tick,
        };
        (recorder, ticks)
    }

    fn record(&self, data: &MarketData) {
        self.seqs.lock().unwrap().push(data.seq());
        let _ = self.tick.try_send(());
    }

    fn seqs(&self) -> Vec<u64> {
        self.seqs.lock().unwrap().clone()
    }
}

/// Waits for `n` more ticks.
async fn wait_for(ticks: &channel::Receiver<()>, n: usize) {
    within(&format!("{n} messages"), async {
        for _ in 0..n {
            ticks.recv().await.expect("the recorder lives");
        }
    })
    .await;
}

fn assert_consecutive(seqs: &[u64], context: &str) {
    assert_eq!(seqs.first(), Some(&1), "{context}: the first seq");
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "{context}: {} follows {}",
            pair[1],
            pair[0]
        );
    }
}

/// A client subscribed to AAPL prices, recording what its handler sees.
async fn recorded(config: ConnectionConfig) -> (WebSocketClient, Recorder, channel::Receiver<()>) {
    let client = WebSocketClient::new(config).expect("a valid client");
    let (seen, ticks) = Recorder::new();
    let s = seen.clone();
    client.add_message_handler(MessageKind::Price, move |data: &MarketData| s.record(data));
    within("connect", client.connect())
        .await
        .expect("connected");
    within(
        "subscribe",
        client.subscribe("main", SubscriptionConfig::new(["AAPL"], [DataType::Price])),
    )
    .await
    .expect("subscribed");
    (client, seen, ticks)
}

#[test]
fn every_seq_arrives_once_in_order_across_dropped_connections() {
    let bed = server(ServerConfig::ephemeral());
    async_std::task::block_on(async {
        let (client, seen, ticks) = recorded(client_config(&bed.url())).await;
        wait_for(&ticks, 10).await;
        for _ in 0..3 {
            assert_eq!(bed.drop_connections(), 1);
            wait_for(&ticks, 10).await;
        }
        assert_consecutive(&seen.seqs(), "across three drops");
        let stats = client.stats().await;
        assert_eq!(stats.connection.reconnect_count, 3, "{stats:?}");
        assert_eq!(stats.connection.gaps, 0);
        assert_eq!(client.state(), ConnectionState::Connected);
        client.disconnect().await;
    });
}

#[test]
fn a_half_open_link_is_detected_within_heartbeat_and_timeout_and_resumed() {
    let bed = server(ServerConfig::ephemeral());
    async_std::task::block_on(async {
        let config = client_config(&bed.url());
        let bound = config.heartbeat_interval + config.timeout;
        let (client, seen, ticks) = recorded(config.clone()).await;
        let mut events = client.events();
        wait_for(&ticks, 10).await;

        let silent_at = Instant::now();
        assert_eq!(bed.go_silent(), 1);
        within("the heartbeat timeout", async {
            while let Some(event) = events.next().await {
                match event {
                    ClientEvent::Disconnected(DisconnectReason::HeartbeatTimeout { .. }) => break,
                    ClientEvent::Disconnected(other) => panic!("{other:?}"),
                    _ => {}
                }
            }
        })
        .await;
        let detected = silent_at.elapsed();
        assert!(
            detected >= config.timeout && detected <= bound + Duration::from_millis(100),
            "detected after {detected:?}, bound {bound:?}"
        );
        within("the link back", client.wait_for_connection())
            .await
            .expect("reconnected");
        wait_for(&ticks, 10).await;
        assert_consecutive(&seen.seqs(), "after the half-open link");
        bed.end_silence();
    });
}

#[test]
fn wss_with_a_trusted_custom_root_gets_data_and_an_untrusted_one_is_fatal() {
    let key =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a certificate");
    let bed = server(ServerConfig {
        tls: Some(TlsConfig {
            cert_chain_pem: key.cert.pem().into_bytes(),
            private_key_pem: key.signing_key.serialize_pem().into_bytes(),
        }),
        ..ServerConfig::ephemeral()
    });
    assert!(bed.url().starts_with("wss://"), "{}", bed.url());
    async_std::task::block_on(async {
        let client = WebSocketClient::builder(client_config(&bed.url()))
            .builtin_roots(false)
            .add_root_certificate(key.cert.der().clone())
            .build()
            .unwrap();
        let (seen, ticks) = Recorder::new();
        let s = seen.clone();
        client.add_message_handler(MessageKind::Price, move |data: &MarketData| s.record(data));
        within("connect", client.connect()).await.unwrap();
        within(
            "subscribe",
            client.subscribe("tls", SubscriptionConfig::new(["AAPL"], [DataType::Price])),
        )
        .await
        .unwrap();
        wait_for(&ticks, 10).await;
        assert_consecutive(&seen.seqs(), "over TLS");

        let untrusted = WebSocketClient::builder(client_config(&bed.url()))
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
        assert_eq!(untrusted.stats().await.connection.connect_attempts, 1);
    });
}

#[test]
fn a_wrong_key_is_fatal_after_one_attempt_and_never_shown() {
    let bed = server(ServerConfig {
        api_keys: vec!["right-key".into()],
        ..ServerConfig::ephemeral()
    });
    async_std::task::block_on(async {
        let config = ConnectionConfig {
            api_key: Some("wrong-key-123".into()),
            ..client_config(&bed.url())
        };
        let client = WebSocketClient::new(config).unwrap();
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
    });
}

#[test]
fn async_handlers_take_the_queue_and_the_event_stream_sees_everything() {
    let bed = server(ServerConfig::ephemeral());
    async_std::task::block_on(async {
        let client = WebSocketClient::new(client_config(&bed.url())).unwrap();
        let mut events = client.events();
        let (seen, ticks) = Recorder::new();
        let s = seen.clone();
        client.add_message_handler(MessageKind::All, move |data: MarketData| {
            let s = s.clone();
            async move {
                async_std::task::yield_now().await;
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
        wait_for(&ticks, 30).await;
        assert_consecutive(&seen.seqs(), "through the handler task");
        let stats = client.stats().await;
        assert!(stats.queue.max_depth >= 1, "{:?}", stats.queue);

        let (mut subscribed, mut data) = (false, 0);
        within("events", async {
            while let Some(event) = events.next().await {
                match event {
                    ClientEvent::Subscribed(s) => subscribed = s == id,
                    ClientEvent::Data(_) => data += 1,
                    _ => {}
                }
                if subscribed && data >= 10 {
                    break;
                }
            }
        })
        .await;
        client.disconnect().await;
        assert_eq!(client.state(), ConnectionState::Disconnected);
    });
}
