//! # argus-tokio
//!
//! The tokio adapter of Argus, a real-time market-data WebSocket SDK: the
//! original Python SDK's `WebSocketClient`, `QuickStartClient` and
//! `WebSocketClientManager` as async Rust on tokio. The client itself (its
//! connection task around the sans-IO [`argus_core::Client`], handlers,
//! queue, events) is [`argus_client`], the same for every runtime; this
//! crate is its [`Runtime`] for tokio ([`Tokio`]: `tokio::spawn`, tokio's
//! clock and timers, TCP, tokio-rustls and tokio-tungstenite) and names the
//! types for it. Every decision (state, subscriptions, heartbeat, backoff,
//! resume, gaps) is the core's.
//!
//! ## The smallest use
//!
//! ```no_run
//! use argus_tokio::{ConnectionConfig, DataType, MarketData, MessageKind, SubscriptionConfig, WebSocketClient};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = WebSocketClient::new(ConnectionConfig::new("ws://localhost:8000/ws"))?;
//!     client.add_message_handler(MessageKind::Price, |data: &MarketData| {
//!         println!("{} ${:?} @ {}", data.symbol(), data.price(), data.timestamp());
//!     });
//!     client.connect().await?;
//!     client
//!         .subscribe("main", SubscriptionConfig::new(["AAPL", "GOOGL"], [DataType::Price]))
//!         .await?;
//!     tokio::time::sleep(std::time::Duration::from_secs(60)).await;
//!     client.disconnect().await;
//!     Ok(())
//! }
//! ```
//!
//! ## How it runs
//!
//! - [`WebSocketClient`] is a cheap, cloneable handle. The connection runs in
//!   a task of its own, which keeps the core's driver invariant: it drains
//!   every output after each mutation, handles an expired deadline without
//!   awaiting a timer, and makes exactly one mutation per turn. Dropping the
//!   last handle closes the connection with code 1000 and ends the tasks.
//! - The core's events leave the connection task once, in order, for every
//!   consumer: message handlers (for data, for events such as gaps and
//!   resumes, or both: see [`WebSocketClient::add_message_handler`]) and
//!   each [`WebSocketClient::events`] stream, a `futures::Stream` of
//!   [`Event`]s. Under [`QueuePolicy::Backpressure`] (the default) nothing
//!   is lost: a slow consumer holds the socket's reading. Synchronous
//!   handlers then run in the connection task as each frame is decoded:
//!   no queue, no hop, no wake-up. Async handlers run in a handler task
//!   behind a bounded queue ([`ClientBuilder::queue_capacity`]). A consumer
//!   may choose loss instead: [`QueuePolicy::DropOldest`] or
//!   [`QueuePolicy::ConflateLatest`] for the handlers,
//!   [`WebSocketClient::lossy_events`] for a stream; [`WebSocketClient::stats`]
//!   counts what was dropped or conflated.
//! - Handlers are plain closures or functions (taking `&MarketData`,
//!   `MarketData`, `&Event` or `Event`) or async ones (an `async fn`, or a
//!   closure returning an `async` block).
//!   [`MessageKind::All`] sees every data message (the original SDK's
//!   `"debug"`); [`Interest::ALL`] every event.
//! - Timers use tokio's clock ([`tokio::time::Instant`]), so tests may run
//!   with paused time.
//!
//! ## Security
//!
//! - The api key goes only into the upgrade request, as
//!   `Authorization: Bearer <key>` (marked sensitive), next to
//!   `Sec-WebSocket-Protocol: argus.v1`. It never appears in this crate's
//!   logs or in any `Debug` output.
//! - **tungstenite logs the whole handshake request, `Authorization`
//!   included, at `trace` level** (through the `log` crate). If your logger
//!   records `trace`, filter that target: `tungstenite=debug` or higher
//!   (for example `RUST_LOG=info,tungstenite=debug`).
//! - Redirects are not followed: a 3xx answer is an
//!   [`OpenError::Http`] like any other status.
//! - Incoming frames and messages are limited to
//!   [`ConnectionConfig::max_message_size`]; outgoing frames buffer at most
//!   1 MiB before the link counts as lost.
//! - `wss://` uses rustls with the `ring` provider. The Mozilla roots are
//!   trusted (feature `webpki-roots`, on by default), plus any root given
//!   with [`ClientBuilder::add_root_certificate`]. A rejected certificate
//!   is fatal: no retry.
//!
//! ## Logging
//!
//! Everything is logged with `tracing` at `debug` level, inside a span named
//! `argus` carrying the server's URL (without any credentials).
#![forbid(unsafe_code)]

mod runtime;

pub use runtime::Tokio;

argus_client::adapter!(Tokio, "tokio");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        fn send<T: Send + 'static>() {}
        send_sync::<WebSocketClient>();
        send_sync::<WeakClient>();
        send_sync::<ClientStats>();
        send::<EventStream>();
        send_sync::<crate::Event>();
    }

    #[test]
    fn build_checks_settings() {
        let config = ConnectionConfig::new("ws://localhost:1/ws");
        assert!(matches!(
            WebSocketClient::builder(config.clone())
                .queue_capacity(0)
                .build(),
            Err(BuildError::ZeroQueueCapacity)
        ));
        assert!(matches!(
            WebSocketClient::new(ConnectionConfig::new("http://x")),
            Err(BuildError::Config(_))
        ));
        assert!(matches!(
            WebSocketClient::builder(config.clone())
                .add_root_certificates_pem("not pem")
                .build(),
            Err(BuildError::RootCertificate(_))
        ));
        let client = WebSocketClient::builder(ConnectionConfig::with_api_key(
            "ws://localhost:1/ws",
            "sk-secret-1",
        ))
        .build()
        .unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("sk-secret-1"), "{debug}");
        assert_eq!(client.state(), ConnectionState::Disconnected);
    }
}
