//! Quick start: connect, subscribe to three stocks, print live prices for a
//! few seconds, disconnect.
//!
//! ```text
//! cargo run --example quickstart                       # in-process server
//! ARGUS_URL=ws://localhost:8000/ws cargo run --example quickstart
//! ```
//!
//! `ARGUS_API_KEY` sets the api key, `ARGUS_SECONDS` how long to run (5).

use argus_examples::{init_logging, run_time, target};
use argus_tokio::{MarketData, QuickStartClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let target = target().await?;

    // Create the client.
    let client = QuickStartClient::create(&target.url, target.api_key.as_deref()).await?;

    // Connect to the server.
    client.connect().await?;
    println!("connected");

    // The data handler.
    let on_price_update = |data: &MarketData| match data {
        MarketData::Price(p) => println!(
            "price update: {} ${:.2} @ {}",
            p.symbol, p.price, p.timestamp
        ),
        MarketData::Volume(v) => {
            println!("volume update: {} {} @ {}", v.symbol, v.volume, v.timestamp)
        }
        other => println!("update: {other:?}"),
    };

    // Subscribe to stock data.
    let sub_id =
        QuickStartClient::subscribe_stocks(&client, ["AAPL", "GOOGL", "MSFT"], on_price_update)
            .await?;
    println!("subscribed as {sub_id}");

    // Keep running for a while, then disconnect.
    tokio::time::sleep(run_time(5)).await;
    let stats = client.stats().await;
    println!("{}", serde_json::to_string_pretty(&stats)?);
    client.disconnect().await;
    Ok(())
}
