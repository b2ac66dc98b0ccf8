//! A consumer on another host: reads the stream `argus relay` writes into
//! NATS JetStream through a durable consumer, and prints prices. Restarted,
//! it goes on after the last message it acknowledged.
//!
//! ```text
//! nats-server -js &                                             # JetStream
//! cargo run -p argus-cli -- serve &                             # a feed
//! cargo run -p argus-cli -- relay --symbols AAPL,MSFT &         # feed -> JetStream
//! cargo run --example nats_consumer                             # JetStream -> here
//! ```
//!
//! `ARGUS_NATS` is the NATS server (default `nats://127.0.0.1:4222`),
//! `ARGUS_STREAM` the stream (`ARGUS`), `ARGUS_FILTER` the subjects
//! (`argus.price.>`; gaps are on `argus.gap`), `ARGUS_DURABLE` the
//! consumer's name (`nats-consumer-example`), `ARGUS_SECONDS` how long to
//! run (10).

use argus_examples::run_time;
use serde_json::Value;

fn setting(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let nats = setting("ARGUS_NATS", "nats://127.0.0.1:4222");
    let stream = setting("ARGUS_STREAM", argus_nats::DEFAULT_STREAM);
    let filter = setting("ARGUS_FILTER", "argus.price.>");
    let durable = setting("ARGUS_DURABLE", "nats-consumer-example");

    let client = async_nats::connect(&nats).await?;
    let js = async_nats::jetstream::new(client);
    let mut messages = argus_nats::read_stream(&js, &stream, &filter, Some(&durable)).await?;
    println!("reading {stream} ({filter}) at {nats} as `{durable}`");

    let deadline = tokio::time::sleep(run_time(10));
    tokio::pin!(deadline);
    let mut stopping = false;
    loop {
        let message = tokio::select! {
            // Past the deadline, what was already asked for is still
            // handled (and acknowledged), so the next run starts after it.
            () = &mut deadline, if !stopping => {
                messages.stop();
                stopping = true;
                continue;
            }
            message = messages.next() => match message {
                Some(message) => message?,
                None => break,
            },
        };
        let body: Value = serde_json::from_slice(&message.payload)?;
        match body["type"].as_str() {
            Some("price") => println!(
                "{:<6} ${:>9.2}  seq {}  {}",
                body["symbol"].as_str().unwrap_or("?"),
                body["price"].as_f64().unwrap_or(f64::NAN),
                body["seq"],
                body["timestamp"].as_str().unwrap_or("")
            ),
            _ => println!("{}: {body}", message.subject),
        }
        // Handled: a restarted consumer goes on after it.
        message.ack().await?;
    }
    Ok(())
}
