//! argus-server: the reference Argus market-data WebSocket server.
//!
//! It speaks the Argus wire protocol (PROTOCOL.md) in full: `welcome` with a
//! session token, subscriptions with every validation and error code, price
//! filters, conflation, a gap-free `seq` per session, sessions that outlive a
//! disconnect with a replay buffer and `resume`, server pings, message-size,
//! rate and slow-consumer limits, bounded memory and CPU per peer (write and
//! read buffers, stall and close timeouts, connection and session caps,
//! replay budgets), and graceful shutdown with 1001. Its data
//! comes from a seeded simulation (geometric random walk prices, rising
//! volumes, 10-level books), a replay of daily bars from a CSV file, or a
//! firehose of pre-encoded messages for throughput benchmarks.
//!
//! Tests and examples start it in-process on a free port and keep the
//! [`ServerHandle`], which also injects faults (abrupt drops, half-open
//! silence, refused upgrades, a skipped `seq`, restarts) and exposes counters
//! to wait on. The `argus-server` binary serves it from the command line.
//!
//! ```
//! use argus_server::{Server, ServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), argus_server::ServerError> {
//! let server = Server::start(ServerConfig::ephemeral()).await?;
//! println!("connect to {}", server.url()); // ws://127.0.0.1:PORT/ws
//! // ... connect clients, subscribe, inject faults, read server.stats() ...
//! server.shutdown().await; // clients get close code 1001
//! # Ok(())
//! # }
//! ```
//!
//! Encoding and decoding use the wire types of `argus-core`, so the server
//! and the SDK cannot drift apart on field names. The server never logs an
//! api key or a session token.
#![forbid(unsafe_code)]

mod config;
mod connection;
mod firehose;
mod ids;
mod market;
mod outbox;
pub mod replay;
mod request;
mod server;
mod session;
mod watched;

pub use config::{DEFAULT_LISTEN, DEFAULT_UNIVERSE, FirehoseConfig, ServerConfig, TlsConfig};
pub use server::{BackgroundServer, Server, ServerError, ServerHandle, ServerStats};
