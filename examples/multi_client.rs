//! The original SDK's multi-client example: a `WebSocketClientManager` with
//! three clients, each with its own config and subscription, and their stats
//! printed together.
//!
//! ```text
//! cargo run --example multi_client          # three clients of one in-process server
//! ```
//!
//! The original points the clients at three servers; here they share
//! `ARGUS_URL` or the in-process server, each with its own settings.

use argus_examples::{init_logging, run_time, target};
use argus_tokio::{
    ConnectionConfig, DataType, MarketData, MessageKind, SubscriptionConfig, WebSocketClientManager,
};

fn handle_price(data: &MarketData) {
    if let MarketData::Price(p) = data {
        println!(
            "[{}] price update: {} ${:.2}",
            p.subscription, p.symbol, p.price
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let target = target().await?;
    let manager = WebSocketClientManager::new();

    let configs = [
        ConnectionConfig::production(target.url.as_str(), "key1"),
        ConnectionConfig::development(target.url.as_str()),
        ConnectionConfig::high_frequency(target.url.as_str(), "key3"),
    ];
    for (i, mut config) in configs.into_iter().enumerate() {
        // The in-process server is open: keys are only sent where one is configured.
        config.api_key = target.api_key.as_deref().map(Into::into);
        let client = manager.create_client(format!("client_{i}"), config)?;
        client.add_message_handler(MessageKind::Price, handle_price);
        client.connect().await?;
        let symbols = [["AAPL"], ["MSFT"], ["GOOGL"]][i];
        client
            .subscribe(
                format!("sub_{i}"),
                SubscriptionConfig::new(symbols, [DataType::Price]),
            )
            .await?;
    }

    tokio::time::sleep(run_time(3)).await;
    println!("=== client stats ===");
    for (name, stats) in manager.get_all_stats().await {
        println!(
            "{name}: state={} messages_received={} subscriptions={}",
            stats.connection.state,
            stats.connection.messages_received,
            stats.connection.subscriptions_count
        );
    }
    manager.close_all().await;
    Ok(())
}
