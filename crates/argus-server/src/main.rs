//! `argus-server`: serves the Argus market-data protocol from the command line.
//!
//! `cargo run -p argus-server` listens on `ws://127.0.0.1:8000/ws` with a
//! simulated market; `--help` lists every flag. SIGINT or SIGTERM shuts it
//! down gracefully (clients get close code 1001).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argus_core::wire::layout::Layout;
use argus_core::{ApiKey, Symbol};
use argus_server::{FirehoseConfig, Server, ServerConfig, TlsConfig};
use clap::Parser;
use tracing::{error, info};

/// The reference Argus market-data WebSocket server.
#[derive(Debug, Parser)]
#[command(name = "argus-server", version, about, long_about = None)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Symbols to serve, comma separated (default: 25 well-known US tickers;
    /// with --replay: every ticker of the file).
    #[arg(long, value_delimiter = ',')]
    symbols: Vec<String>,
    /// An accepted api key (repeatable; none: the server is open). Also read,
    /// comma separated, from ARGUS_API_KEYS, which keeps keys out of `ps`.
    #[arg(
        long = "api-key",
        env = "ARGUS_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// How often the market moves (or takes one replay step), e.g. 100ms, 1s.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    tick_interval: Duration,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Replay this CSV of daily bars (gzip or plain), e.g.
    /// crates/argus-server/data/stocks-daily.csv.gz.
    #[arg(long, value_name = "FILE", conflicts_with = "firehose")]
    replay: Option<PathBuf>,
    /// Serve every subscription from a firehose of pre-encoded messages.
    #[arg(long)]
    firehose: bool,
    /// Firehose messages per second per connection (default: as fast as possible).
    #[arg(long, requires = "firehose")]
    firehose_rate: Option<u64>,
    /// Stop each connection's firehose after this many messages.
    #[arg(long, requires = "firehose")]
    firehose_total: Option<u64>,
    /// Write data messages in another server's layout (for tests and
    /// benchmarks): reference, python, shuffled, pretty, numbers, escaped.
    #[arg(long, default_value = "reference")]
    wire_style: Layout,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Serve wss:// with this PEM certificate chain.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long a session outlives its connection.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    session_ttl: Duration,
    /// Most data messages a session keeps for a resume.
    #[arg(long, default_value_t = 10_000)]
    replay_buffer_messages: usize,
    /// Oldest data message a session keeps for a resume.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    replay_buffer_age: Duration,
    /// Interval of the server's pings; a client silent for two is dropped.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    ping_interval: Duration,
    /// Most live subscriptions per connection.
    #[arg(long, default_value_t = 100)]
    max_subscriptions: usize,
    /// Most symbols per subscription.
    #[arg(long, default_value_t = 1000)]
    max_symbols: usize,
    /// Most client operations per second per connection.
    #[arg(long, default_value_t = 200)]
    max_ops_per_second: u32,
    /// Most messages queued for a slow client before closing it with 4000.
    #[arg(long, default_value_t = 8192)]
    outbound_queue_limit: usize,
    #[command(flatten)]
    limits: PeerLimits,
}

/// Limits against hostile peers: what one peer may cost the server.
#[derive(Debug, clap::Args)]
struct PeerLimits {
    /// Bytes read from a socket at once (every connection's read buffer).
    #[arg(long, default_value_t = 4 * 1024)]
    read_buffer_size: usize,
    /// Most bytes waiting to be written to one socket (frames and pongs).
    #[arg(long, default_value_t = 512 * 1024)]
    max_write_buffer: usize,
    /// A client message not finished, or a write not progressing, for this
    /// long drops the connection.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    stall_timeout: Duration,
    /// Time for a close the server decided on before the socket is dropped.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    close_timeout: Duration,
    /// Time for the TLS and WebSocket handshakes.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    handshake_timeout: Duration,
    /// Most TCP connections at once (lowered to the file-descriptor limit).
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Most TCP connections from one IP address.
    #[arg(long, default_value_t = 256)]
    max_connections_per_ip: usize,
    /// Most WebSocket connections with one api key.
    #[arg(long, default_value_t = 256)]
    max_connections_per_key: usize,
    /// File descriptors kept free below the process's limit.
    #[arg(long, default_value_t = 32)]
    fd_reserve: usize,
    /// Most sessions, attached or detached (the oldest detached make room).
    #[arg(long, default_value_t = 10_000)]
    max_sessions: usize,
    /// Most sessions of one api key.
    #[arg(long, default_value_t = 512)]
    max_sessions_per_key: usize,
    /// Most bytes of data messages one session keeps for a resume.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    replay_buffer_bytes: usize,
    /// Most bytes of data messages all sessions keep for a resume.
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    replay_memory_limit: usize,
    /// Most bytes of recent market ticks kept for resuming sessions.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    market_history_bytes: usize,
    /// Close with 1008 after this many requests in a row were rejected (0: never).
    #[arg(long, default_value_t = 50)]
    max_rejected_in_a_row: u32,
    /// Largest client message in bytes (1009 above it).
    #[arg(long, default_value_t = 64 * 1024)]
    max_message_size: usize,
}

impl PeerLimits {
    fn apply(self, config: ServerConfig) -> ServerConfig {
        ServerConfig {
            read_buffer_size: self.read_buffer_size,
            max_write_buffer: self.max_write_buffer,
            stall_timeout: self.stall_timeout,
            close_timeout: self.close_timeout,
            handshake_timeout: self.handshake_timeout,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_connections_per_key: self.max_connections_per_key,
            fd_reserve: self.fd_reserve,
            max_sessions: self.max_sessions,
            max_sessions_per_key: self.max_sessions_per_key,
            replay_buffer_bytes: self.replay_buffer_bytes,
            replay_memory_limit: self.replay_memory_limit,
            market_history_bytes: self.market_history_bytes,
            abuse_error_limit: (self.max_rejected_in_a_row > 0)
                .then_some(self.max_rejected_in_a_row),
            max_message_size: self.max_message_size,
            ..config
        }
    }
}

impl Args {
    fn into_config(self) -> Result<ServerConfig, String> {
        let symbols = if self.symbols.is_empty() {
            None
        } else {
            let parsed = self
                .symbols
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| Symbol::normalize(s).map_err(|e| format!("--symbols: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            Some(parsed)
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                TlsConfig::from_pem_files(cert, key)
                    .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?,
            ),
            _ => None,
        };
        let limits = self.limits;
        let config = ServerConfig {
            listen: self.listen,
            symbols,
            api_keys: self.api_keys.into_iter().map(ApiKey::new).collect(),
            tick_interval: self.tick_interval,
            seed: self.seed,
            replay: self.replay,
            firehose: self.firehose.then_some(FirehoseConfig {
                rate: self.firehose_rate,
                total: self.firehose_total,
            }),
            wire_style: self.wire_style,
            tls,
            session_ttl: self.session_ttl,
            replay_buffer_messages: self.replay_buffer_messages,
            replay_buffer_age: self.replay_buffer_age,
            ping_interval: self.ping_interval,
            max_subscriptions_per_connection: self.max_subscriptions,
            max_symbols_per_subscription: self.max_symbols,
            max_ops_per_second: self.max_ops_per_second,
            outbound_queue_limit: self.outbound_queue_limit,
            ..ServerConfig::default()
        };
        Ok(limits.apply(config))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&args.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("argus-server: --log-level: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match Server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        info!(url = %server.url(), "serving; Ctrl-C to stop");
        wait_for_signal().await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Waits for SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => info!("SIGINT"),
                    _ = term.recv() => info!("SIGTERM"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!("Ctrl-C");
    }
}
