//! Configuration presets (production, development, high-frequency trading),
//! typed validation errors, the adapter's own settings, and the debug
//! handler that sees every message.
//!
//! `ARGUS_URL` / `ARGUS_API_KEY` choose the server (default: in-process),
//! `ARGUS_SECONDS` how long the debug client runs (2).

use std::time::Duration;

use argus_examples::{init_logging, run_time, target};
use argus_tokio::{
    ConnectionConfig, DataType, MarketData, MessageKind, QueuePolicy, SubscriptionConfig,
    WebSocketClient,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();

    // The original SDK's three presets. The api key is never serialised.
    let presets = [
        (
            "production",
            ConnectionConfig::production("wss://api.example.com/ws/v1", "your_production_api_key"),
        ),
        (
            "development",
            ConnectionConfig::development("ws://localhost:8000/ws"),
        ),
        (
            "high frequency trading",
            ConnectionConfig::high_frequency("wss://api.trading.com/ws", "trading_api_key"),
        ),
    ];
    for (name, config) in &presets {
        println!("{name}: {}", serde_json::to_string(config)?);
    }

    // A custom config, checked field by field.
    let custom = ConnectionConfig::builder("wss://feed.example.com/ws")
        .api_key("secret")
        .max_reconnect_attempts(10)
        .reconnect_delay(Duration::from_secs(2))
        .heartbeat_interval(Duration::from_secs(20))
        .timeout(Duration::from_secs(15))
        .max_subscriptions(1000)
        .build()?;
    println!("custom: {custom:?}");
    let error = ConnectionConfig::builder("http://not-a-websocket")
        .build()
        .unwrap_err();
    println!("rejected ({}): {error}", error.field());

    // Debug mode: the development preset against a real server, with a
    // handler that sees every message, and a conflating queue so a slow
    // terminal never holds the feed back.
    let target = target().await?;
    let config = ConnectionConfig {
        api_key: target.api_key.as_deref().map(Into::into),
        ..ConnectionConfig::development(&target.url)
    };
    let client = WebSocketClient::builder(config)
        .queue_policy(QueuePolicy::ConflateLatest)
        .queue_capacity(256)
        .build()?;
    client.add_message_handler(MessageKind::All, |data: &MarketData| {
        println!("DEBUG: {}", serde_json::to_string(data).unwrap_or_default());
    });
    client.connect().await?;
    client
        .subscribe("debug", SubscriptionConfig::new(["AAPL"], DataType::ALL))
        .await?;
    tokio::time::sleep(run_time(2)).await;
    println!("{}", serde_json::to_string_pretty(&client.stats().await)?);
    client.disconnect().await;
    Ok(())
}
