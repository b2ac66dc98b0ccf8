//! Churn: a thousand subscribe/unsubscribe cycles and a thousand handler
//! add/remove cycles leave no task, handler, subscription or memory behind;
//! dropping the last handle closes with 1000 and ends the client's tasks.
//!
//! The reference server runs on a runtime of its own, so the test runtime's
//! task count is the client's alone.

use std::sync::Arc;
use std::time::Duration;

use argus_server::{Server, ServerConfig, ServerHandle};
use argus_tests::live::*;
use argus_tokio::Tokio;
use argus_tokio::{DataType, MarketData, MessageKind, SubscriptionConfig};
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Starts the reference server on a separate runtime.
fn server_elsewhere(config: ServerConfig) -> (tokio::runtime::Runtime, ServerHandle) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(Server::start(config)).unwrap();
        (runtime, server)
    })
    .join()
    .unwrap()
}

/// Resident memory of this process, in bytes (Linux), if known.
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

async fn alive_tasks_become(n: usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    within(&format!("{n} alive tasks"), async {
        while metrics.num_alive_tasks() != n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cycles_leave_nothing_behind() {
    let (runtime, server) = server_elsewhere(ServerConfig {
        max_ops_per_second: 1_000_000,
        abuse_error_limit: None,
        ..server_config()
    });
    let metrics = tokio::runtime::Handle::current().metrics();
    let client = client::<Tokio>(&server.url());
    let steady = Recorder::default();
    client.add_message_handler(MessageKind::All, steady.handler());
    within("connect", client.connect()).await.unwrap();
    within(
        "subscribe",
        client.subscribe(
            "steady",
            SubscriptionConfig::new(["AAPL"], [DataType::Price]),
        ),
    )
    .await
    .unwrap();
    steady.wait_for(5).await;

    let churn = |i: usize| {
        let client = client.clone();
        async move {
            let id = format!("churn-{}", i % 7);
            let config =
                SubscriptionConfig::new(["MSFT", "GOOGL"], [DataType::Price, DataType::Volume]);
            within("a churn subscribe", client.subscribe(&id, config))
                .await
                .unwrap();
            client.unsubscribe(&id).await.unwrap();
        }
    };
    // Warm up, then measure.
    for i in 0..50 {
        churn(i).await;
    }
    let tasks = metrics.num_alive_tasks();
    let memory = rss();
    for i in 0..1000 {
        churn(i).await;
    }
    let token = Arc::new(());
    for _ in 0..1000 {
        let t = token.clone();
        let id = client.add_message_handler(MessageKind::Price, move |_: &MarketData| {
            let _ = &t;
        });
        assert_eq!(client.handler_count(), 2);
        assert!(client.remove_message_handler(id));
    }
    steady.wait_for_more(5).await;

    let stats = client.stats().await;
    println!(
        "after churn: {} tasks (was {tasks}), rss {:?} (was {memory:?}), {:?}",
        metrics.num_alive_tasks(),
        rss(),
        stats.connection
    );
    assert_eq!(metrics.num_alive_tasks(), tasks, "tasks grew");
    assert_eq!(client.handler_count(), 1);
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "removed handlers were not dropped"
    );
    assert_eq!(stats.connection.subscriptions_count, 1);
    assert_eq!(stats.handlers, 1);
    if let (Some(before), Some(after)) = (memory, rss()) {
        assert!(
            after.saturating_sub(before) < 16 << 20,
            "resident memory grew from {before} to {after} bytes"
        );
    }
    // The steady subscription never missed a beat (its seqs share the
    // session's numbering with the churned ones).
    let seqs = steady.seqs();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(stats.connection.gaps, 0);

    // Dropping the last handle ends both of the client's tasks.
    let base = tasks - 2;
    drop(client);
    alive_tasks_become(base).await;
    within(
        "the server to see the client go",
        server.wait_for_stats(|s| s.live_connections == 0),
    )
    .await;
    drop(server);
    runtime.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_carries_the_key_and_subprotocol_and_dropping_closes_with_1000() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let base = metrics.num_alive_tasks();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut headers = None;
        // tungstenite's callback type, not ours.
        #[allow(clippy::result_large_err)]
        let callback = |request: &Request, mut response: Response| {
            headers = Some(request.headers().clone());
            response.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static("argus.v1"),
            );
            Ok(response)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
            .await
            .unwrap();
        let welcome = r#"{"type":"welcome","connection_id":"c-1","session":"s-0123456789abcdef0123456789abcdef","protocol":1,"server_time":"2026-11-24T09:49:56.123Z"}"#;
        futures_util::SinkExt::send(&mut ws, Message::text(welcome))
            .await
            .unwrap();
        (ws, headers.unwrap())
    });
    let config = argus_tokio::ConnectionConfig {
        api_key: Some("k-123".into()),
        ..client_config(&url)
    };
    let client = argus_tokio::WebSocketClient::new(config).unwrap();
    within("connect", client.connect()).await.unwrap();
    let (mut ws, headers) = within("the upgrade", accept).await.unwrap();
    assert_eq!(headers["authorization"], "Bearer k-123");
    assert_eq!(headers["sec-websocket-protocol"], "argus.v1");
    assert!(!url.contains("k-123"));

    drop(client);
    let code = within("the close frame", async {
        while let Some(message) = ws.next().await {
            if let Message::Close(frame) = message.unwrap() {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await;
    assert_eq!(code, Some(1000));
    alive_tasks_become(base).await;
}
