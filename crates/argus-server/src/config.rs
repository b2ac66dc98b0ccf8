//! The server's settings: where it listens, what it serves, and its limits.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use argus_core::wire::layout::Layout;
use argus_core::{ApiKey, Symbol};

/// Default listen address, `127.0.0.1:8000`.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8000));

/// The simulated market's default universe: well-known US tickers with a
/// plausible starting price each.
pub const DEFAULT_UNIVERSE: &[(&str, f64)] = &[
    ("AAPL", 190.0),
    ("MSFT", 420.0),
    ("GOOGL", 170.0),
    ("AMZN", 185.0),
    ("TSLA", 250.0),
    ("META", 500.0),
    ("NVDA", 120.0),
    ("JPM", 200.0),
    ("V", 280.0),
    ("JNJ", 155.0),
    ("WMT", 70.0),
    ("PG", 165.0),
    ("MA", 460.0),
    ("UNH", 520.0),
    ("HD", 350.0),
    ("DIS", 100.0),
    ("BAC", 40.0),
    ("XOM", 115.0),
    ("KO", 62.0),
    ("PEP", 170.0),
    ("NFLX", 650.0),
    ("INTC", 30.0),
    ("CSCO", 50.0),
    ("ORCL", 140.0),
    ("IBM", 190.0),
];

/// Everything a [`Server`](crate::Server) needs. Build one with struct update
/// syntax from [`ServerConfig::default`] (port 8000) or
/// [`ServerConfig::ephemeral`] (a free port, for tests).
///
/// ```
/// use std::time::Duration;
/// use argus_server::ServerConfig;
///
/// let config = ServerConfig {
///     tick_interval: Duration::from_millis(10),
///     api_keys: vec!["secret".into()],
///     ..ServerConfig::ephemeral()
/// };
/// assert_eq!(config.listen.port(), 0);
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on. Port 0 picks a free port; read the real one from
    /// [`ServerHandle::local_addr`](crate::ServerHandle::local_addr).
    pub listen: SocketAddr,
    /// The WebSocket endpoint's path, `/ws` by default.
    pub path: String,
    /// The symbols served. `None`: [`DEFAULT_UNIVERSE`] when simulating, every
    /// ticker of the file when replaying (with `Some`, a replay serves only the
    /// listed tickers that the file has).
    pub symbols: Option<Vec<Symbol>>,
    /// Accepted api keys, sent by clients as `Authorization: Bearer <key>`.
    /// Empty: the server is open.
    pub api_keys: Vec<ApiKey>,
    /// How often the market moves (simulation) or takes one replay step.
    pub tick_interval: Duration,
    /// Seed of the simulation: the same seed gives the same prices, volumes
    /// and books, tick by tick.
    pub seed: u64,
    /// Replay this gzip (or plain) CSV of daily bars instead of simulating;
    /// see the crate's README for the format.
    pub replay: Option<PathBuf>,
    /// Serve every subscription from a firehose instead of the market.
    pub firehose: Option<FirehoseConfig>,
    /// How data messages are written: the reference layout by default, or
    /// another server's (Python spacing, members in another order, ...), so
    /// that tests and benchmarks see what a client of another server sees.
    pub wire_style: Layout,
    /// Serve `wss://` with this certificate and key.
    pub tls: Option<TlsConfig>,
    /// How long a session outlives its connection.
    pub session_ttl: Duration,
    /// Most data messages a session's replay buffer holds.
    pub replay_buffer_messages: usize,
    /// Oldest data message a session's replay buffer holds.
    pub replay_buffer_age: Duration,
    /// Interval between the server's pings; a client silent for two intervals
    /// is dropped.
    pub ping_interval: Duration,
    /// Most live subscriptions of one session (`too_many_subscriptions`).
    pub max_subscriptions_per_connection: usize,
    /// Most symbols in one subscription (`too_many_symbols`).
    pub max_symbols_per_subscription: usize,
    /// Most client operations (text frames) per second on one connection;
    /// the rest are answered with `rate_limited`.
    pub max_ops_per_second: u32,
    /// Most messages waiting for a slow client before it is closed with 4000.
    pub outbound_queue_limit: usize,
    /// Largest client message, in bytes; a larger one closes with 1009.
    pub max_message_size: usize,
    /// Close a connection with 1008 after this many consecutive rejected
    /// requests. `None`: never.
    pub abuse_error_limit: Option<u32>,
    /// Time allowed for the TLS and WebSocket handshakes.
    pub handshake_timeout: Duration,
    /// Time allowed for a closing handshake, and for clients to go at shutdown.
    /// A close the server decided on (1008, 1009, 4000, shutdown) drops the
    /// socket at the latest this long after the decision, read or not.
    pub close_timeout: Duration,

    // Limits against hostile peers (what one peer may cost the server).
    /// Bytes a connection reads from its socket at once (the size of its read
    /// buffer, allocated for every connection).
    pub read_buffer_size: usize,
    /// Most bytes waiting to be written to one socket (frames and pongs); the
    /// writer stops taking work and the reader stops reading while it is full.
    pub max_write_buffer: usize,
    /// A client message begun and not finished within this time, or a write
    /// that makes no progress for this long, drops the connection. Pings do
    /// not keep a stalled message alive.
    pub stall_timeout: Duration,
    /// Most TCP connections at once, upgraded or not (lowered at start to
    /// the process's file-descriptor limit minus `fd_reserve`).
    pub max_connections: usize,
    /// Most TCP connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Most WebSocket connections with one api key.
    pub max_connections_per_key: usize,
    /// File descriptors kept free for the process's own needs and for
    /// answering 503 when it runs out.
    pub fd_reserve: usize,
    /// Most sessions, attached or waiting for a resume. At the cap the oldest
    /// detached session is ended to make room; with none, upgrades get 503.
    pub max_sessions: usize,
    /// Most sessions of one api key (same rule as `max_sessions`).
    pub max_sessions_per_key: usize,
    /// Most bytes of data messages one session keeps for a resume.
    pub replay_buffer_bytes: usize,
    /// Most bytes of data messages all sessions together keep for a resume;
    /// over it, the oldest detached sessions are ended first.
    pub replay_memory_limit: usize,
    /// Most bytes of recent market ticks kept for detached sessions, which
    /// catch up from them when resumed instead of working while detached.
    pub market_history_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            path: argus_core::wire::DEFAULT_PATH.to_owned(),
            symbols: None,
            api_keys: Vec::new(),
            tick_interval: Duration::from_millis(100),
            seed: 42,
            replay: None,
            firehose: None,
            wire_style: Layout::Reference,
            tls: None,
            session_ttl: Duration::from_secs(60),
            replay_buffer_messages: 10_000,
            replay_buffer_age: Duration::from_secs(60),
            ping_interval: Duration::from_secs(15),
            max_subscriptions_per_connection: 100,
            max_symbols_per_subscription: 1000,
            max_ops_per_second: 200,
            outbound_queue_limit: 8192,
            max_message_size: 64 * 1024,
            abuse_error_limit: Some(50),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            // Limits against hostile peers.
            read_buffer_size: 4 * 1024,
            max_write_buffer: 512 * 1024,
            stall_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            max_connections_per_key: 256,
            fd_reserve: 32,
            max_sessions: 10_000,
            max_sessions_per_key: 512,
            replay_buffer_bytes: 4 * 1024 * 1024,
            replay_memory_limit: 1024 * 1024 * 1024,
            market_history_bytes: 64 * 1024 * 1024,
        }
    }
}

impl ServerConfig {
    /// The defaults, listening on a free port of 127.0.0.1: what tests and
    /// examples start.
    pub fn ephemeral() -> Self {
        Self {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            ..Self::default()
        }
    }

    /// Checks every setting and names the first unusable one.
    pub fn validate(&self) -> Result<(), crate::ServerError> {
        let bad = |field: &'static str, reason: &str| {
            Err(crate::ServerError::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if !self.path.starts_with('/') {
            return bad("path", "must start with `/`");
        }
        for (field, value) in [
            ("tick_interval", self.tick_interval),
            ("session_ttl", self.session_ttl),
            ("ping_interval", self.ping_interval),
            ("handshake_timeout", self.handshake_timeout),
            ("close_timeout", self.close_timeout),
            ("stall_timeout", self.stall_timeout),
        ] {
            if value.is_zero() {
                return bad(field, "must be greater than zero");
            }
        }
        for (field, value) in [
            (
                "max_subscriptions_per_connection",
                self.max_subscriptions_per_connection,
            ),
            (
                "max_symbols_per_subscription",
                self.max_symbols_per_subscription,
            ),
            ("outbound_queue_limit", self.outbound_queue_limit),
            ("max_ops_per_second", self.max_ops_per_second as usize),
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("max_connections_per_key", self.max_connections_per_key),
            ("max_sessions", self.max_sessions),
            ("max_sessions_per_key", self.max_sessions_per_key),
            ("replay_buffer_bytes", self.replay_buffer_bytes),
            ("replay_memory_limit", self.replay_memory_limit),
        ] {
            if value == 0 {
                return bad(field, "must be greater than zero");
            }
        }
        if self.max_message_size < 1024 {
            return bad("max_message_size", "allow at least 1024 bytes");
        }
        if self.read_buffer_size < 1024 {
            return bad("read_buffer_size", "allow at least 1024 bytes");
        }
        if self.max_write_buffer < 128 * 1024 {
            return bad("max_write_buffer", "allow at least 128 KiB");
        }
        if self
            .api_keys
            .iter()
            .any(|k| k.expose().is_empty() || k.expose().bytes().any(|b| b <= b' ' || b == 127))
        {
            return bad(
                "api_keys",
                "a key must be non-empty, without spaces or control characters",
            );
        }
        if let Some(symbols) = &self.symbols {
            if symbols.is_empty() {
                return bad("symbols", "list at least one symbol, or leave it unset");
            }
            if symbols.len() > usize::from(u16::MAX) {
                return bad("symbols", "at most 65535 symbols");
            }
        }
        if self.replay.is_some() && self.firehose.is_some() {
            return bad("firehose", "firehose and replay exclude each other");
        }
        if let Some(f) = &self.firehose
            && f.rate == Some(0)
        {
            return bad("firehose.rate", "must be greater than zero");
        }
        Ok(())
    }

    /// Whether clients must present a key.
    pub fn requires_key(&self) -> bool {
        !self.api_keys.is_empty()
    }
}

/// The firehose: every subscription receives valid data messages (its own
/// `sub`, the session's `seq`) as fast as the socket takes them, or at `rate`.
///
/// Messages are pre-encoded per symbol and data type and cycle through the
/// subscription's symbols and data types; prices, volumes and books are fixed
/// per symbol, and only `seq` and `timestamp` change. Filters apply to the
/// fixed price; `update_frequency` is ignored; sessions keep no replay buffer,
/// so a `resume` fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirehoseConfig {
    /// Messages per second on each connection; `None`: as fast as possible.
    pub rate: Option<u64>,
    /// Stop after this many messages on each connection; `None`: never.
    pub total: Option<u64>,
}

/// A certificate chain and its private key, PEM encoded. `Debug` hides the key.
#[derive(Clone)]
pub struct TlsConfig {
    /// The certificate chain, leaf first, PEM.
    pub cert_chain_pem: Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub private_key_pem: Vec<u8>,
}

impl TlsConfig {
    /// Reads the chain and the key from two PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> std::io::Result<Self> {
        Ok(Self {
            cert_chain_pem: std::fs::read(cert)?,
            private_key_pem: std::fs::read(key)?,
        })
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field(
                "cert_chain_pem",
                &format_args!("{} bytes", self.cert_chain_pem.len()),
            )
            .field("private_key_pem", &format_args!("<redacted>"))
            .finish()
    }
}
