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
//! ## One ordered output
//!
//! The core's [`Event`]s (data, gaps, resumes, state changes, errors) leave
//! the connection task once, in the core's order, through one delivery
//! stage, and every consumer sees that same sequence: message handlers
//! (registered for data, for events, or both: see
//! [`WebSocketClient::add_message_handler`]) and each event stream
//! ([`WebSocketClient::events`]). Under [`QueuePolicy::Backpressure`] (the
//! default) nothing is dropped: a consumer that falls behind its bounded
//! queue holds the socket's reading, and so slows the feed. Synchronous
//! handlers are then called by the connection task itself as each frame is
//! decoded: no queue, no hop, no wake-up. Async handlers run in a handler
//! task behind a bounded queue ([`ClientBuilder::queue_capacity`]). Losing
//! events instead is a choice a consumer makes: [`QueuePolicy::DropOldest`]
//! or [`QueuePolicy::ConflateLatest`] for the handlers, or
//! [`WebSocketClient::lossy_events`], each counted.
#![forbid(unsafe_code)]

mod adapter;
mod builder;
mod client;
mod delivery;
mod driver;
mod error;
mod events;
pub mod handler;
mod interest;
pub mod lines;
mod link;
mod manager;
mod queue;
mod quickstart;
mod replies;
mod runtime;
mod shared;
mod tasks;
pub mod transport;

pub use builder::{ClientBuilder, DEFAULT_EVENT_CAPACITY, DEFAULT_QUEUE_CAPACITY};
pub use client::{ClientStats, WeakClient, WebSocketClient};
pub use error::{BuildError, ConnectError, SubscribeError, UnsubscribeError};
pub use events::{EventStream, Lagged, LossyEventStream};
pub use handler::{HandlerId, MessageHandler, MessageKind};
pub use interest::{Interest, InvalidInterest};
pub use queue::{QueuePolicy, QueueStats};
pub use quickstart::{QuickStartClient, QuickStartError, STOCK_DATA_TYPES};
pub use runtime::Runtime;
pub use shared::SubscriptionInfo;

/// The rustls crate the [`Runtime::open`] TLS configuration comes from.
pub use rustls;
/// A DER-encoded certificate, for [`ClientBuilder::add_root_certificate`].
pub use rustls::pki_types::CertificateDer;
/// The tungstenite crate whose messages [`Runtime::Socket`] carries.
pub use tungstenite;

pub use argus_core;
pub use argus_core::{
    ApiKey, ConnectionConfig, ConnectionState, DataType, DisconnectReason, Event, Gap, GapCause,
    GiveUpReason, MarketData, OpenError, ProtocolError, RequestKind, ServerError, Stats,
    SubscriptionConfig, SubscriptionId, SubscriptionStatus, UpdateFrequency,
};
pub use argus_manager;
