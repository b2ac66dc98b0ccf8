//! The quick start on smol: the same client, handlers and stats, with
//! its tasks, timers and sockets on smol (crate `argus-smol`).
//!
//! ```text
//! cargo run --example smol_quickstart                       # in-process server
//! ARGUS_URL=ws://localhost:8000/ws cargo run --example smol_quickstart
//! ```
//!
//! `ARGUS_API_KEY` sets the api key, `ARGUS_SECONDS` how long to run (5).

use argus_examples::{init_logging, run_time, target};
use argus_smol::{
    ConnectionConfig, DataType, MarketData, MessageKind, SubscriptionConfig, WebSocketClient,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    // The in-process reference server is a tokio program: it gets a tokio
    // runtime of its own, beside the client's smol.
    let server_runtime = tokio::runtime::Runtime::new()?;
    let target = server_runtime.block_on(target())?;

    smol::block_on(async {
        let config = ConnectionConfig {
            api_key: target.api_key.as_deref().map(Into::into),
            ..ConnectionConfig::new(target.url.as_str())
        };
        let client = WebSocketClient::new(config)?;
        client.add_message_handler(MessageKind::All, |data: &MarketData| match data {
            MarketData::Price(p) => println!(
                "price update: {} ${:.2} @ {}",
                p.symbol, p.price, p.timestamp
            ),
            MarketData::Volume(v) => {
                println!("volume update: {} {} @ {}", v.symbol, v.volume, v.timestamp)
            }
            other => println!("update: {other:?}"),
        });
        client.connect().await?;
        println!("connected");
        let id = client
            .subscribe(
                "stocks",
                SubscriptionConfig::new(
                    ["AAPL", "GOOGL", "MSFT"],
                    [DataType::Price, DataType::Volume],
                ),
            )
            .await?;
        println!("subscribed as {id}");

        smol::Timer::after(run_time(5)).await;
        let stats = client.stats().await;
        println!("{}", serde_json::to_string_pretty(&stats)?);
        client.disconnect().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
