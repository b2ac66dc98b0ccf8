//! # argus-smol
//!
//! The smol adapter of Argus, a real-time market-data WebSocket SDK: the
//! original Python SDK's `WebSocketClient`, `QuickStartClient` and
//! `WebSocketClientManager` as async Rust on smol, async-std's successor.
//! The client itself (its connection task around the sans-IO
//! [`argus_core::Client`], the delivery of its one ordered output to
//! handlers and streams) is [`argus_client`], the same as on tokio; this
//! crate is its [`Runtime`] for smol ([`Smol`]: `smol::spawn`, async-io
//! timers, smol's TCP, futures-rustls and async-tungstenite) and names the
//! types for it.
//!
//! ## The smallest use
//!
//! ```no_run
//! use argus_smol::{ConnectionConfig, DataType, MarketData, MessageKind, SubscriptionConfig, WebSocketClient};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     smol::block_on(async {
//!         let client = WebSocketClient::new(ConnectionConfig::new("ws://localhost:8000/ws"))?;
//!         client.add_message_handler(MessageKind::Price, |data: &MarketData| {
//!             println!("{} ${:?} @ {}", data.symbol(), data.price(), data.timestamp());
//!         });
//!         client.connect().await?;
//!         client
//!             .subscribe("main", SubscriptionConfig::new(["AAPL", "GOOGL"], [DataType::Price]))
//!             .await?;
//!         smol::Timer::after(std::time::Duration::from_secs(60)).await;
//!         client.disconnect().await;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! Everything else reads as in `argus-tokio`, with the same security notes:
//! the api key goes only into the upgrade request (marked sensitive), never
//! into this crate's logs or any `Debug` output; tungstenite logs the
//! handshake request at `trace` level, so filter `tungstenite=debug` or
//! higher; `wss://` uses rustls with the `ring` provider.
#![forbid(unsafe_code)]

mod runtime;

pub use runtime::{Smol, Transport};

argus_client::adapter!(Smol, "smol");
