//! # argus-client
//!
//! The runtime-independent half of the Argus adapters: the client handle
//! ([`WebSocketClient`]), its connection task, message handlers, the handler
//! queue and its policies, the event stream and the errors, generic over a
//! [`Runtime`]. An adapter crate (`argus-tokio`, `argus-async-std`)
//! implements [`Runtime`] for its runtime (tasks, a clock, timers, opening
//! a socket) and names the types for it; applications depend on an
//! adapter, not on this crate.
//!
//! The connection task runs the sans-IO [`argus_core::Client`]: it drains
//! every output after each mutation, handles an expired deadline without
//! awaiting a timer, and makes exactly one mutation per turn. Every
//! decision (state, subscriptions, heartbeat, backoff, resume, gaps) is the
//! core's; the task only does the I/O through the runtime.
//!
//! ## The smallest use
//!
//! Running the client on a runtime of your own is one [`Runtime`] impl;
//! with it, the whole SDK works unchanged:
//!
//! ```no_run
//! use argus_client::{ConnectionConfig, MessageKind, Runtime, WebSocketClient};
//! use argus_core::{DataType, MarketData, SubscriptionConfig};
//!
//! async fn run<R: Runtime>() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = WebSocketClient::<R>::new(ConnectionConfig::new("ws://localhost:8000/ws"))?;
//!     client.add_message_handler(MessageKind::Price, |data: &MarketData| {
//!         println!("{} {:?}", data.symbol(), data.price());
//!     });
//!     client.connect().await?;
//!     client
//!         .subscribe("main", SubscriptionConfig::new(["AAPL"], [DataType::Price]))
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! ## Where handlers run
//!
//! Under [`QueuePolicy::Backpressure`] (the default, lossless) with only
//! synchronous handlers, the connection task calls them itself as each
//! frame is decoded: no queue, no hop, no wake-up. Otherwise (an async
//! handler is registered, or another policy) a bounded queue
//! ([`ClientBuilder::queue_capacity`]) feeds a handler task. When handlers
//! fall behind, [`QueuePolicy`] decides: backpressure (reading stops), drop
//! the oldest, or conflate to the latest per (symbol, data type).
#![forbid(unsafe_code)]

mod adapter;
mod client;
mod driver;
mod error;
mod events;
pub mod handler;
mod manager;
mod queue;
mod quickstart;
mod runtime;
pub mod transport;

pub use client::{
    ClientBuilder, ClientStats, DEFAULT_EVENT_CAPACITY, DEFAULT_QUEUE_CAPACITY, WeakClient,
    WebSocketClient,
};
pub use error::{BuildError, ConnectError, SubscribeError, UnsubscribeError};
pub use events::{ClientEvent, EventStream};
pub use handler::{HandlerId, MessageHandler, MessageKind};
pub use queue::{QueuePolicy, QueueStats};
pub use quickstart::{QuickStartClient, QuickStartError, STOCK_DATA_TYPES};
pub use runtime::Runtime;

/// The rustls crate the [`Runtime::open`] TLS configuration comes from.
pub use rustls;
/// A DER-encoded certificate, for [`ClientBuilder::add_root_certificate`].
pub use rustls::pki_types::CertificateDer;
/// The tungstenite crate whose messages [`Runtime::Socket`] carries.
pub use tungstenite;

pub use argus_core;
pub use argus_core::{
    ApiKey, ConnectionConfig, ConnectionState, DataType, DisconnectReason, Gap, GapCause,
    GiveUpReason, MarketData, OpenError, ServerError, Stats, SubscriptionConfig, SubscriptionId,
    UpdateFrequency,
};
pub use argus_manager;
