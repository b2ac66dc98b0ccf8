//! # argus-nats
//!
//! Scale past one machine: relay an Argus client's one ordered output into
//! **NATS JetStream**, for consumers on other hosts.
//!
//! - Each data message goes to `<prefix>.<type>.<SYMBOL>` (`argus.price.AAPL`;
//!   a `.` in a symbol becomes `~`), its body the protocol's JSON, with a
//!   `Nats-Msg-Id` made of the session's public name and the seq
//!   ([`SessionName`]: a one-way hash; the session token is a secret and is
//!   never published).
//! - Gaps and resumes go to `<prefix>.gap` and `<prefix>.resumed` as the
//!   event lines of `argus tail` ([`argus_client::lines`]).
//! - At most [`RelayConfig::max_in_flight`] publishes await their
//!   acknowledgement; beyond that the relay stops reading, the client stops
//!   reading its socket, and memory stays bounded.
//! - Once everything up to a seq is acknowledged, the relay stores the
//!   upstream resume point (session, seq) in a key-value bucket. A relay
//!   restarted within the server's session lifetime resumes from there:
//!   nothing lost, and what it publishes again is dropped by the stream's
//!   de-duplication window. After the session expired: one gap, from the
//!   stored seq.
//! - Every decision of the relay (what to send, when to send it again,
//!   which resume point to store when) is made by [`pipeline::Pipeline`], a
//!   state machine without I/O that is told the time; [`Relay::run`] does
//!   the publishing and the waiting. The pipeline knows no NATS, so it can
//!   carry the feed onto another bus.
//! - [`Shard`] splits the symbol universe over relays by a stable hash, and
//!   [`plan_upstream`] splits a relay's symbols over connections.
//!
//! The smallest use, on tokio (see `argus relay` for the whole program):
//!
//! ```no_run
//! use argus_nats::{Relay, RelayConfig, Shard, plan_upstream, start_upstream};
//! use argus_tokio::{ConnectionConfig, DataType, Tokio};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let relay = Relay::connect(
//!     "nats://127.0.0.1:4222",
//!     async_nats::ConnectOptions::new(),
//!     RelayConfig::default(),
//! )
//! .await?;
//! let symbols = vec!["AAPL".to_owned(), "MSFT".to_owned()];
//! let plan = plan_upstream(&symbols, &["price".to_owned()], Shard::ALL, 1000)?;
//! let upstream = start_upstream::<Tokio>(
//!     &relay,
//!     &ConnectionConfig::new("ws://127.0.0.1:8765/ws"),
//!     &plan,
//!     &[DataType::Price],
//! )
//! .await?;
//! let stats = relay.run(upstream.feeds, tokio::signal::ctrl_c().map(drop)).await;
//! # use futures_util::FutureExt;
//! println!("{} messages relayed", stats.published);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod config;
mod consumer;
mod names;
pub mod pipeline;
mod relay;
mod upstream;

pub use config::{
    ConfigError, DEFAULT_BUCKET, DEFAULT_DUPLICATE_WINDOW, DEFAULT_MAX_IN_FLIGHT, DEFAULT_STREAM,
    DEFAULT_SUBJECT_PREFIX, DEFAULT_SYMBOLS_PER_CONNECTION, RelayConfig, Shard, UpstreamPlan,
    plan_upstream,
};
pub use consumer::{StreamReader, read_stream};
pub use names::{SessionName, data_id, data_subject, event_id, seq_of, subject, symbol_token};
pub use relay::{FEED_HEADER, Feed, Halt, Relay, RelayError, RelayStats};
pub use upstream::{SUBSCRIPTION_ID, Upstream, UpstreamError, start_upstream};
