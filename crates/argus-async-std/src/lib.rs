//! # argus-async-std
//!
//! The async-std adapter of Argus, a real-time market-data WebSocket SDK:
//! the original Python SDK's `WebSocketClient`, `QuickStartClient` and
//! `WebSocketClientManager` as async Rust on async-std. The client itself
//! (its connection task around the sans-IO [`argus_core::Client`], handlers,
//! queue, events) is [`argus_client`], the same as on tokio; this crate is
//! its [`Runtime`] for async-std ([`AsyncStd`]: `async_std::task::spawn`,
//! async-io timers, async-std's TCP, futures-rustls and async-tungstenite)
//! and names the types for it. Every decision (state, subscriptions,
//! heartbeat, backoff, resume, gaps) is the core's.
//!
//! ## The smallest use
//!
//! ```no_run
//! use argus_async_std::{ConnectionConfig, DataType, MarketData, MessageKind, SubscriptionConfig, WebSocketClient};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     async_std::task::block_on(async {
//!         let client = WebSocketClient::new(ConnectionConfig::new("ws://localhost:8000/ws"))?;
//!         client.add_message_handler(MessageKind::Price, |data: &MarketData| {
//!             println!("{} ${:?} @ {}", data.symbol(), data.price(), data.timestamp());
//!         });
//!         client.connect().await?;
//!         client
//!             .subscribe("main", SubscriptionConfig::new(["AAPL", "GOOGL"], [DataType::Price]))
//!             .await?;
//!         async_std::task::sleep(std::time::Duration::from_secs(60)).await;
//!         client.disconnect().await;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! Everything else reads as in `argus-tokio`: handlers, queue policies,
//! events, statistics, the manager and the quick-start client are the same
//! types, from [`argus_client`]. The security notes of `argus-tokio` hold
//! here too: the api key goes only into the upgrade request (marked
//! sensitive) and never into this crate's logs or any `Debug` output;
//! tungstenite logs the handshake request at `trace` level, so filter
//! `tungstenite=debug` or higher; `wss://` uses rustls with the `ring`
//! provider and the Mozilla roots (feature `webpki-roots`, on by default).
//!
//! ## CPU per message
//!
//! async-std runs tasks on an executor with a thread per core by default,
//! and its I/O reactor wakes another thread for every readiness event. For
//! the lowest CPU per message, run the process with
//! `ASYNC_STD_THREAD_COUNT=1`: at 50k msg/s paced this client then costs
//! 1.20× the CPU of a hand-written tokio loop, against 1.58× with the
//! default (BENCHMARKS.md). `argus-smol` needs no setting (1.13–1.17×).
#![forbid(unsafe_code)]

mod runtime;

pub use runtime::{AsyncStd, Transport};

argus_client::adapter!(AsyncStd, "async-std");
