//! # argus-core
//!
//! The sans-IO heart of Argus, a real-time market-data WebSocket SDK. It holds
//! every decision a client makes — connection state, subscriptions, heartbeat
//! deadlines, reconnect backoff, session resume and gap detection — as a pure
//! state machine, and does no I/O: no sockets, no async runtime, no clock, no
//! global randomness. The tokio and async-std adapters drive it; so can any
//! custom transport, or a test with virtual time.
//!
//! - [`config`]: [`ConnectionConfig`] (with the original SDK's presets) and
//!   [`SubscriptionConfig`].
//! - [`wire`]: every message of the wire protocol, with serde.
//! - [`Client`]: the state machine. [`Input`] goes in; [`Transmit`],
//!   [`Event`] and a deadline come out.
//!
//! ## The driver's invariant
//!
//! argus-core never calls `Instant::now()`: every call that can change
//! anything takes `now`. **After every command or input, drain
//! [`Client::poll_transmit`] and [`Client::poll_event`] until both return
//! `None`, then wait until [`Client::poll_timeout`]** (or the next input,
//! whichever comes first). A driver does exactly one mutation per turn of its
//! loop and checks `now >= deadline` itself before it awaits a timer.
//!
//! ## The whole run loop
//!
//! This drives the client against a scripted server, in virtual time:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use argus_core::{Client, ConnectionConfig, DataType, Event, Input, SubscriptionConfig, Transmit};
//!
//! let mut client = Client::new(ConnectionConfig::new("ws://127.0.0.1:8000/ws"), 7).unwrap();
//! let mut now = Instant::now(); // the driver's clock; the core reads none
//! client.connect(now);
//! client
//!     .subscribe(now, "main", &SubscriptionConfig::new(["AAPL"], [DataType::Price]))
//!     .unwrap();
//!
//! // What the scripted server says once the socket is open.
//! let mut script = vec![
//!     r#"{"type":"welcome","connection_id":"c1","session":"s1","protocol":1,"server_time":"2026-11-24T09:49:56.000Z"}"#,
//!     r#"{"type":"subscribed","id":"main","symbols":["AAPL"],"data_types":["price"]}"#,
//!     r#"{"type":"price","sub":"main","seq":1,"symbol":"AAPL","price":189.53,"timestamp":"2026-11-24T09:49:56.123Z"}"#,
//! ]
//! .into_iter();
//! let mut prices = Vec::new();
//!
//! for _turn in 0..10 {
//!     // 1. Drain every output.
//!     while let Some(transmit) = client.poll_transmit() {
//!         match transmit {
//!             Transmit::Open(_request) => client.handle_input(now, Input::Opened),
//!             Transmit::Text(_json) => {} // a socket would send it
//!             Transmit::Ping(_) | Transmit::Close { .. } => {}
//!             _ => {}
//!         }
//!     }
//!     while let Some(event) = client.poll_event() {
//!         if let Event::Data(data) = event {
//!             prices.push(data.price());
//!         }
//!     }
//!     // 2. One mutation: an expired deadline, else the next frame.
//!     match client.poll_timeout() {
//!         Some(deadline) if deadline <= now => client.handle_timeout(now),
//!         _ => match script.next() {
//!             Some(frame) => client.handle_input(now, Input::Text(frame)),
//!             None => now += Duration::from_secs(1), // a real driver sleeps until the deadline
//!         },
//!     }
//! }
//! assert_eq!(prices, [Some(189.53)]);
//! assert_eq!(client.stats(now).data_messages, 1);
//! ```
#![forbid(unsafe_code)]

pub mod backoff;
pub mod client;
pub mod config;
pub mod data;
pub mod excerpt;
pub mod io;
pub mod stats;
pub mod subscription;
pub mod wire;

pub use backoff::Backoff;
pub use client::{Client, SubscribeError, SubscriptionStatus, UnsubscribeError};
pub use config::{
    ApiKey, ConfigError, ConnectionConfig, ConnectionConfigBuilder, NormalizedSubscription,
    SubscriptionConfig, SubscriptionConfigError,
};
pub use data::{MarketData, OrderBook, Price, Timestamp, Volume};
pub use io::{
    ConnectionState, DisconnectReason, Event, Gap, GapCause, GiveUpReason, Input, LinkError,
    OpenError, OpenRequest, ProtocolError, RequestKind, ResumePoint, ServerError, Transmit,
};
pub use stats::Stats;
pub use subscription::{DataType, Filters, SubscriptionId, Symbol, UpdateFrequency};
pub use wire::SessionToken;
