//! The client's API against the reference server: handlers, subscriptions,
//! stats, the event stream, QuickStartClient, and keeping the key secret.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argus_core::wire::ErrorCode;
use argus_server::ServerConfig;
use argus_tests::live::*;
use argus_tokio::Tokio;
use argus_tokio::{
    ConnectError, ConnectionState, DataType, Event, GiveUpReason, MarketData, MessageKind,
    OpenError, QuickStartClient, SubscribeError, SubscriptionConfig, WebSocketClient,
};
use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_reaches_sync_and_async_handlers_and_removed_ones_get_nothing() {
    let server = start_server(server_config()).await;
    let client = client::<Tokio>(&server.url());

    let sync_seen = Recorder::default();
    let sync_id = client.add_message_handler(MessageKind::Price, sync_seen.handler());

    async fn slow_path(seen: Recorder, data: MarketData) {
        tokio::task::yield_now().await;
        seen.record(&data);
    }
    let async_seen = Recorder::default();
    let a = async_seen.clone();
    client.add_message_handler(DataType::Price, move |data: MarketData| {
        slow_path(a.clone(), data)
    });
    let volumes = Recorder::default();
    let v = volumes.clone();
    let not_volume = Arc::new(AtomicUsize::new(0));
    let nv = not_volume.clone();
    client.add_message_handler(MessageKind::Volume, move |data: MarketData| {
        if data.data_type() != DataType::Volume {
            nv.fetch_add(1, Ordering::SeqCst);
        }
        v.record(&data);
    });
    let debug_seen = Recorder::default();
    client.add_message_handler(
        "debug".parse::<MessageKind>().unwrap(),
        debug_seen.handler(),
    );
    assert_eq!(client.handler_count(), 4);

    within("connect", client.connect()).await.unwrap();
    assert_eq!(client.state(), ConnectionState::Connected);
    let config = SubscriptionConfig::new(["aapl", "MSFT"], [DataType::Price, DataType::Volume]);
    let id = within("subscribe", client.subscribe("main", config))
        .await
        .unwrap();
    assert_eq!(id.as_str(), "main");

    sync_seen.wait_for(20).await;
    async_seen.wait_for(20).await;
    volumes.wait_for(5).await;
    assert_eq!(not_volume.load(Ordering::SeqCst), 0);
    assert_consecutive(
        &debug_seen.seqs(),
        1,
        "the debug handler sees every message",
    );

    // Once removed, the handler sees nothing more, while others go on.
    assert!(client.remove_message_handler(sync_id));
    assert!(!client.remove_message_handler(sync_id));
    let frozen = sync_seen.len();
    async_seen.wait_for_more(20).await;
    assert_eq!(sync_seen.len(), frozen, "a removed handler got a message");
    assert_eq!(client.handler_count(), 3);

    let stats = client.stats().await;
    assert_eq!(stats.connection.state, ConnectionState::Connected);
    assert_eq!(stats.connection.subscriptions_count, 1);
    assert_eq!(stats.handlers, 3);
    assert!(stats.connection.data_messages >= 40);
    assert!(stats.connection.connection_id.is_some());
    let json = serde_json::to_value(&stats).unwrap();
    for field in [
        "messages_received",
        "reconnect_count",
        "uptime",
        "state",
        "queue",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }

    client.disconnect().await;
    assert_eq!(client.state(), ConnectionState::Disconnected);
    assert_eq!(
        client.wait_for_connection().await,
        Err(ConnectError::Disconnected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_errors_are_typed() {
    let server = start_server(server_config()).await;
    let client = client::<Tokio>(&server.url());

    // Before connect: nothing is queued.
    let config = SubscriptionConfig::new(["AAPL"], [DataType::Price]);
    assert_eq!(
        client.subscribe("early", config.clone()).await,
        Err(SubscribeError::NotConnected)
    );
    within("connect", client.connect()).await.unwrap();

    // Refused by the server: an unknown symbol.
    let error = within(
        "a refusal",
        client.subscribe("bad", SubscriptionConfig::new(["NOPE"], [DataType::Price])),
    )
    .await
    .unwrap_err();
    match &error {
        SubscribeError::Rejected { id, error } => {
            assert_eq!(id.as_str(), "bad");
            assert_eq!(error.code, ErrorCode::UnknownSymbol);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(error.server_error().unwrap().code, ErrorCode::UnknownSymbol);

    // Refused locally, at once.
    assert!(matches!(
        client.subscribe("bad id!", config.clone()).await,
        Err(SubscribeError::Invalid(
            argus_core::SubscribeError::InvalidId(_)
        ))
    ));
    assert!(matches!(
        client
            .subscribe("x", SubscriptionConfig::new(["A B"], [DataType::Price]))
            .await,
        Err(SubscribeError::Invalid(
            argus_core::SubscribeError::InvalidConfig(_)
        ))
    ));
    within("subscribe", client.subscribe("ok", config.clone()))
        .await
        .unwrap();
    assert!(matches!(
        client.subscribe("ok", config.clone()).await,
        Err(SubscribeError::Invalid(
            argus_core::SubscribeError::Duplicate(_)
        ))
    ));
    client.unsubscribe("ok").await.unwrap();
    assert!(client.unsubscribe("ok").await.is_err());
    assert_eq!(client.stats().await.connection.subscriptions_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sees_state_subscriptions_and_data() {
    let server = start_server(server_config()).await;
    let client = client::<Tokio>(&server.url());
    let mut events = client.events();
    within("connect", client.connect()).await.unwrap();
    within(
        "subscribe",
        client.subscribe("main", SubscriptionConfig::new(["AAPL"], [DataType::Price])),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    within("events", async {
        while let Some(event) = events.next().await {
            let data = matches!(event, Event::Data(_));
            seen.push(event.name());
            if data {
                break;
            }
        }
    })
    .await;
    assert_eq!(
        seen[..5],
        [
            "state_changed",
            "session_started",
            "state_changed",
            "subscribed",
            "data"
        ],
        "{seen:?}"
    );
    // The stream ends once the client is gone.
    drop(client);
    within("the stream's end", async {
        while events.next().await.is_some() {}
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_client_subscribes_stocks() {
    let server = start_server(ServerConfig {
        api_keys: vec!["qs-key".into()],
        ..server_config()
    })
    .await;
    let client = QuickStartClient::create(server.url(), Some("qs-key"))
        .await
        .unwrap();
    let seen = Recorder::default();
    // Not connected yet: subscribe_stocks connects first.
    let id = within(
        "subscribe_stocks",
        QuickStartClient::subscribe_stocks(&client, ["AAPL", "GOOGL", "MSFT"], seen.handler()),
    )
    .await
    .unwrap();
    assert!(id.as_str().starts_with("stocks-"));
    seen.wait_for(10).await;
    assert_consecutive(&seen.seqs(), 1, "quickstart");
    // A second subscription's handler sees only its own messages.
    let other = Recorder::default();
    let id2 = QuickStartClient::subscribe_stocks(&client, ["TSLA"], other.handler())
        .await
        .unwrap();
    assert_ne!(id, id2);
    other.wait_for(5).await;
    let stats = client.stats().await;
    assert_eq!(stats.connection.subscriptions_count, 2);
    // A failed quick subscription removes its handler again.
    let before = client.handler_count();
    assert!(
        QuickStartClient::subscribe_stocks(&client, ["NOPE"], |_: &MarketData| {})
            .await
            .is_err()
    );
    assert_eq!(client.handler_count(), before);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_key_never_shows_in_logs_or_debug_output_and_a_wrong_one_is_fatal() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    const KEY: &str = "sk-live-5ecret-4rgus";
    let server = start_server(ServerConfig {
        api_keys: vec!["the-right-key".into()],
        ..server_config()
    })
    .await;
    let config = argus_tokio::ConnectionConfig {
        api_key: Some(KEY.into()),
        ..client_config(&server.url())
    };
    let client = WebSocketClient::new(config).unwrap();
    let debug = format!("{client:?} {:?}", client.config());
    assert!(!debug.contains(KEY), "{debug}");

    let error = within("a refusal", client.connect()).await.unwrap_err();
    assert_eq!(
        error,
        ConnectError::GaveUp(GiveUpReason::Fatal(OpenError::Unauthorized { status: 401 }))
    );
    assert!(error.is_fatal());
    assert_eq!(client.state(), ConnectionState::Error);
    // One attempt, no retry: the core gave up and holds no timer.
    let stats = client.stats().await;
    assert_eq!(stats.connection.connect_attempts, 1);
    let server_stats = server.stats();
    assert_eq!(server_stats.connection_attempts, 1);
    assert_eq!(server_stats.connections_unauthorized, 1);
    assert_eq!(
        client.wait_for_connection().await,
        Err(ConnectError::GaveUp(GiveUpReason::Fatal(
            OpenError::Unauthorized { status: 401 }
        )))
    );
    let error_text = format!("{error} {error:?}");
    assert!(!error_text.contains(KEY));

    drop(client);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("argus"), "our logs were captured: {logs}");
    assert!(!logs.contains(KEY), "the key leaked into the logs:\n{logs}");
}
