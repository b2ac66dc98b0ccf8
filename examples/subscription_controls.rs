//! What a subscription can ask for, and proof that each took effect:
//! `unsubscribe`, `update_frequency` (conflation) and price `filters`.
//!
//! ```text
//! cargo run --example subscription_controls      # about 5 s, in-process server
//! ```
//!
//! Three subscriptions of the same two symbols (AAPL near $190, MSFT near
//! $420) run side by side, and one handler counts what each receives:
//!
//! - `live`: every update (`realtime`); unsubscribed after the first phase,
//!   it receives nothing more;
//! - `conflated`: `update_frequency` `1s`: at most one message per symbol
//!   per second, carrying the latest price;
//! - `band`: `filters` `min_price` 300, `max_price` 1000: only MSFT's
//!   updates pass, and every price is inside the bounds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use argus_examples::{init_logging, target};
use argus_tokio::{
    ConnectionConfig, DataType, MarketData, MessageKind, SubscriptionConfig, UpdateFrequency,
    WebSocketClient,
};

const SYMBOLS: [&str; 2] = ["AAPL", "MSFT"];
const BAND: (f64, f64) = (300.0, 1000.0);
/// Both phases: long enough for a few conflated seconds.
const BEFORE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(2);
/// Slack for the client's own scheduling when timing arrivals.
const JITTER: Duration = Duration::from_millis(50);

/// What one subscription received.
#[derive(Default)]
struct Received {
    /// Messages per phase (0: before the unsubscribe, 1: after).
    per_phase: [u64; 2],
    /// Messages per symbol.
    per_symbol: BTreeMap<String, u64>,
    /// When each symbol's last message arrived.
    last_arrival: BTreeMap<String, Instant>,
    /// The shortest time between two messages of one symbol.
    closest: Option<Duration>,
    /// The lowest and highest price.
    prices: Option<(f64, f64)>,
}

impl Received {
    fn add(&mut self, phase: usize, price: &argus_core::data::Price) {
        let now = Instant::now();
        let symbol = price.symbol.to_string();
        self.per_phase[phase] += 1;
        *self.per_symbol.entry(symbol.clone()).or_default() += 1;
        if let Some(last) = self.last_arrival.insert(symbol, now) {
            let apart = now - last;
            self.closest = Some(self.closest.map_or(apart, |c| c.min(apart)));
        }
        let (lo, hi) = self.prices.unwrap_or((price.price, price.price));
        self.prices = Some((lo.min(price.price), hi.max(price.price)));
    }
}

type Tally = Arc<Mutex<BTreeMap<String, Received>>>;

async fn print_subscriptions(client: &WebSocketClient) {
    for sub in client.subscriptions().await {
        let c = &sub.config;
        let symbols: Vec<String> = c.symbols.iter().map(ToString::to_string).collect();
        println!(
            "  {:<10} {:?} symbols={} frequency={} min_price={:?} max_price={:?}",
            sub.id.as_str(),
            sub.status,
            symbols.join(","),
            c.update_frequency,
            c.filters.min_price,
            c.filters.max_price,
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let target = target().await?;
    let config = ConnectionConfig {
        api_key: target.api_key.as_deref().map(Into::into),
        ..ConnectionConfig::new(target.url.as_str())
    };
    let client = WebSocketClient::new(config)?;

    // One handler counts every price, by subscription and phase.
    let tally = Tally::default();
    let phase = Arc::new(AtomicUsize::new(0));
    {
        let (tally, phase) = (tally.clone(), phase.clone());
        client.add_message_handler(MessageKind::Price, move |data: &MarketData| {
            if let MarketData::Price(price) = data {
                let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
                tally
                    .entry(price.subscription.to_string())
                    .or_default()
                    .add(phase.load(Ordering::Relaxed), price);
            }
        });
    }

    client.connect().await?;
    let prices = || SubscriptionConfig::new(SYMBOLS, [DataType::Price]);
    client.subscribe("live", prices()).await?;
    client
        .subscribe(
            "conflated",
            prices().update_frequency(UpdateFrequency::OneSecond),
        )
        .await?;
    client
        .subscribe("band", prices().min_price(BAND.0).max_price(BAND.1))
        .await?;
    println!("subscriptions:");
    print_subscriptions(&client).await;

    tokio::time::sleep(BEFORE).await;
    client.unsubscribe("live").await?;
    phase.store(1, Ordering::Relaxed);
    println!("unsubscribed `live`; subscriptions now:");
    print_subscriptions(&client).await;
    tokio::time::sleep(AFTER).await;
    client.disconnect().await;

    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(PoisonError::into_inner));
    let get = |id: &str| tally.get(id).map_or([0, 0], |r| r.per_phase);
    let empty = Received::default();
    let (live, conflated, band) = (
        tally.get("live").unwrap_or(&empty),
        tally.get("conflated").unwrap_or(&empty),
        tally.get("band").unwrap_or(&empty),
    );
    let verdict = |ok: bool| if ok { "ok" } else { "NOT MET" };

    println!();
    println!("messages per subscription, before / after the unsubscribe:");
    for id in ["live", "conflated", "band"] {
        let [before, after] = get(id);
        println!("  {id:<10} {before:>4} / {after}");
    }

    println!();
    let [before, after] = live.per_phase;
    println!(
        "unsubscribe: `live` got {before} messages in {BEFORE:?}, then {after} after the \
         unsubscribe: {}",
        verdict(before > 0 && after == 0)
    );

    let seconds = (BEFORE + AFTER).as_secs();
    let most = conflated.per_symbol.values().copied().max().unwrap_or(0);
    let closest = conflated.closest;
    println!(
        "update_frequency 1s: `conflated` got {:?} per symbol in {seconds} s (`live`, realtime, \
         got {:?} in {BEFORE:?}); closest two messages of one symbol arrived {} apart: {}",
        conflated.per_symbol,
        live.per_symbol,
        closest.map_or_else(|| "-".to_owned(), |c| format!("{c:.3?}")),
        verdict(
            most > 0
                && most <= seconds + 1
                && closest.is_none_or(|c| c + JITTER >= Duration::from_secs(1))
        )
    );

    let inside = band
        .prices
        .is_some_and(|(lo, hi)| lo >= BAND.0 && hi <= BAND.1);
    println!(
        "filters {}..={}: `band` got {:?} (AAPL trades near $190, outside the band); prices \
         from {}: {}",
        BAND.0,
        BAND.1,
        band.per_symbol,
        band.prices.map_or_else(
            || "-".to_owned(),
            |(lo, hi)| format!("${lo:.2} to ${hi:.2}")
        ),
        verdict(inside && !band.per_symbol.contains_key("AAPL"))
    );
    Ok(())
}
