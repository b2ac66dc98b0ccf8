//! Measures the firehose: one in-process server, one plain tokio-tungstenite
//! client reading as fast as it can.
//!
//! ```text
//! cargo run --release -p argus-server --example firehose                 # throughput
//! cargo run --release -p argus-server --example firehose -- --rate 50000 # latency at 50k msg/s
//! ```
//!
//! Throughput mode counts text frames in a bare read loop (no JSON parsing)
//! for `--messages` messages. Latency mode reads each message's `timestamp`
//! (taken by the server when it produced the message) and reports how long
//! after it the client had the message.

use std::time::{Duration, Instant, SystemTime};

use argus_server::{FirehoseConfig, Server, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

struct Args {
    messages: u64,
    rate: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        messages: 20_000_000,
        rate: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.replace('_', "").parse::<u64>().ok())
                .ok_or_else(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--messages" => args.messages = value()?,
            "--rate" => args.rate = Some(value()?),
            other => return Err(format!("unknown flag {other}; use --messages N, --rate N")),
        }
    }
    if args.rate.is_some() && args.messages == 20_000_000 {
        // Ten seconds' worth at the rate, by default.
        args.messages = args.rate.unwrap_or(1) * 10;
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The client reads on this thread (inside `block_on`); the server's
    // tasks run on the worker threads.
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(ServerConfig {
        firehose: Some(FirehoseConfig {
            rate: args.rate,
            total: Some(args.messages),
        }),
        ..ServerConfig::ephemeral()
    })
    .await?;
    let tcp = tokio::net::TcpStream::connect(server.local_addr()).await?;
    tcp.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(server.url(), tcp).await?;
    let subscribe = r#"{"op":"subscribe","id":"bench","symbols":["AAPL","MSFT","GOOGL","AMZN"],"data_types":["price"]}"#;
    ws.send(Message::Text(subscribe.into())).await?;
    // welcome, subscribed
    for _ in 0..2 {
        ws.next().await.ok_or("closed early")??;
    }

    let started = Instant::now();
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut latencies_us: Vec<u64> = Vec::new();
    while count < args.messages {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                count += 1;
                bytes += text.len() as u64;
                if args.rate.is_some() {
                    latencies_us.push(latency_us(&text));
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    let took = started.elapsed();
    let rate = count as f64 / took.as_secs_f64();
    println!(
        "{count} messages ({:.1} MB) in {:.2} s: {:.2} M msg/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        rate / 1e6,
        bytes as f64 / 1e6 / took.as_secs_f64()
    );
    if !latencies_us.is_empty() {
        latencies_us.sort_unstable();
        let pct = |p: f64| latencies_us[((latencies_us.len() - 1) as f64 * p) as usize];
        println!(
            "latency at {} msg/s: p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            args.rate.unwrap_or_default(),
            pct(0.5),
            pct(0.99),
            pct(0.999),
            latencies_us[latencies_us.len() - 1]
        );
    }
    ws.close(None).await.ok();
    server.shutdown().await;
    Ok(())
}

/// Microseconds from the message's `timestamp` to now.
fn latency_us(text: &str) -> u64 {
    const KEY: &str = "\"timestamp\":\"";
    let Some(start) = text.find(KEY).map(|i| i + KEY.len()) else {
        return 0;
    };
    let Some(stamp) = text[start..].split('"').next() else {
        return 0;
    };
    match humantime::parse_rfc3339(stamp) {
        Ok(at) => SystemTime::now()
            .duration_since(at)
            .unwrap_or(Duration::ZERO)
            .as_micros() as u64,
        Err(_) => 0,
    }
}
