//! The original SDK's multi-client app: a `WebSocketClientManager` with
//! three clients, each with its own config and api key, one price handler
//! shared by all three, then a monitoring loop that prints every client's
//! stats at an interval until it is stopped.
//!
//! ```text
//! cargo run --example multi_client                   # 6 s against an in-process server
//! cargo run --example multi_client -- --seconds 60   # longer; Ctrl-C stops it sooner
//! ```
//!
//! The original points the clients at three servers; here they share
//! `ARGUS_URL` (each sending `ARGUS_API_KEY`, if set) or the in-process
//! server, which accepts exactly the three keys `key1`, `key2`, `key3`.

use std::time::Duration;

use argus_examples::{init_logging, run_time, target_accepting};
use argus_tokio::{
    ClientStats, ConnectionConfig, DataType, MarketData, MessageKind, SubscriptionConfig,
    WebSocketClientManager,
};

/// The clients' api keys for the in-process server.
const KEYS: [&str; 3] = ["key1", "key2", "key3"];

/// How often the monitoring loop prints (the original's is 30 s).
const MONITOR_INTERVAL: Duration = Duration::from_secs(2);

/// The one handler every client calls.
fn handle_price(data: &MarketData) {
    if let MarketData::Price(p) = data {
        println!(
            "[{}] price update: {} ${:.2} (seq {})",
            p.subscription, p.symbol, p.price, p.seq
        );
    }
}

/// One client's stats on one line.
fn summary(stats: &ClientStats) -> String {
    let c = &stats.connection;
    format!(
        "state={} messages_received={} data_messages={} subscriptions={} reconnects={} \
         gaps={} rtt={} queue_depth={}",
        c.state,
        c.messages_received,
        c.data_messages,
        c.subscriptions_count,
        c.reconnect_count,
        c.gaps,
        c.rtt
            .map_or_else(|| "-".to_owned(), |rtt| format!("{rtt:.1?}")),
        stats.queue.depth,
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let target = target_accepting(&KEYS).await?;
    let manager = WebSocketClientManager::new();

    // Three configs, as the original: each its own settings and key.
    let url = target.url.as_str();
    let mut configs = [
        ConnectionConfig::production(url, KEYS[0]),
        ConnectionConfig::development(url),
        ConnectionConfig::high_frequency(url, KEYS[2]),
    ];
    for (config, key) in configs.iter_mut().zip(KEYS) {
        config.api_key = match &target.server {
            Some(_) => Some(key.into()),
            None => target.api_key.as_deref().map(Into::into),
        };
    }
    for (i, config) in configs.into_iter().enumerate() {
        let client = manager.create_client(format!("client_{i}"), config)?;
        client.add_message_handler(MessageKind::Price, handle_price);
        client.connect().await?;
        client
            .subscribe(
                format!("sub_{i}"),
                SubscriptionConfig::new(["AAPL"], [DataType::Price]),
            )
            .await?;
    }

    // The monitoring loop, until --seconds pass or Ctrl-C.
    let stop = tokio::time::sleep(run_time(6));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(stop, ctrl_c);
    let mut monitor = tokio::time::interval(MONITOR_INTERVAL);
    monitor.tick().await;
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = &mut ctrl_c => break,
            _ = monitor.tick() => {
                println!("=== client stats ===");
                for (name, stats) in manager.get_all_stats().await {
                    println!("{name}: {}", summary(&stats));
                }
            }
        }
    }
    manager.close_all().await;
    println!("closed every client");
    Ok(())
}
