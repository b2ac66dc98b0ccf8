//! Custom message handlers: a `DataProcessor` whose async methods keep a
//! price and a volume cache and raise alerts, registered as the client's
//! handlers (the original SDK's "custom message handler" example).
//!
//! `ARGUS_URL` / `ARGUS_API_KEY` choose the server (default: in-process),
//! `ARGUS_SECONDS` how long to run (5).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argus_examples::{init_logging, run_time, target};
use argus_tokio::{
    ConnectionConfig, DataType, MarketData, MessageKind, SubscriptionConfig, WebSocketClient,
};

/// Caches the latest price and volume per symbol and alerts on high prices.
#[derive(Default)]
struct DataProcessor {
    price_cache: Mutex<HashMap<String, f64>>,
    volume_cache: Mutex<HashMap<String, u64>>,
}

impl DataProcessor {
    async fn handle_price(&self, data: MarketData) {
        let MarketData::Price(p) = data else { return };
        self.price_cache
            .lock()
            .unwrap()
            .insert(p.symbol.to_string(), p.price);
        if self.should_alert(&p.symbol, p.price) {
            self.send_alert(&p.symbol, p.price).await;
        }
    }

    async fn handle_volume(&self, data: MarketData) {
        let MarketData::Volume(v) = data else { return };
        self.volume_cache
            .lock()
            .unwrap()
            .insert(v.symbol.to_string(), v.volume);
    }

    fn should_alert(&self, _symbol: &str, price: f64) -> bool {
        // Your own alert logic goes here.
        price > 200.0
    }

    async fn send_alert(&self, symbol: &str, price: f64) {
        // An async alert channel (a webhook, a queue) would be awaited here.
        println!("🚨 price alert: {symbol} reached ${price:.2}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let target = target().await?;
    let processor = Arc::new(DataProcessor::default());

    let config = ConnectionConfig {
        api_key: target.api_key.as_deref().map(Into::into),
        ..ConnectionConfig::new(&target.url)
    };
    let client = WebSocketClient::new(config)?;

    // Add the custom handlers: async methods, through closures that share
    // the processor.
    let p = processor.clone();
    client.add_message_handler(MessageKind::Price, move |data: MarketData| {
        let p = p.clone();
        async move { p.handle_price(data).await }
    });
    let p = processor.clone();
    client.add_message_handler(DataType::Volume, move |data: MarketData| {
        let p = p.clone();
        async move { p.handle_volume(data).await }
    });

    client.connect().await?;
    let sub_config = SubscriptionConfig::new(
        ["AAPL", "GOOGL", "TSLA"],
        [DataType::Price, DataType::Volume],
    );
    client.subscribe("main_subscription", sub_config).await?;

    tokio::time::sleep(run_time(5)).await;
    client.disconnect().await;

    println!(
        "latest prices:  {:?}",
        processor.price_cache.lock().unwrap()
    );
    println!(
        "latest volumes: {:?}",
        processor.volume_cache.lock().unwrap()
    );
    Ok(())
}
