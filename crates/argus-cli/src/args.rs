//! The command line: subcommands, their flags, and how the flags become an
//! [`argus_core::ConnectionConfig`] and a [`SubscriptionConfig`].

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use argus_core::config::DEFAULT_MAX_BACKOFF;
use argus_core::{ConfigError, SubscriptionConfigError};
use argus_tokio::{ApiKey, ConnectionConfig, DataType, QueuePolicy, SubscriptionConfig};
use argus_tokio::{BuildError, UpdateFrequency};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// `argus`: tail an Argus market-data feed, watch it live, or serve one.
#[derive(Debug, Parser)]
#[command(name = "argus", version, about, long_about = None)]
pub struct Cli {
    /// More logging on stderr: -v info, -vv debug, -vvv trace (RUST_LOG,
    /// when set, replaces these levels).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the feed as NDJSON on stdout: one data message or event per
    /// line, from a server or (`--from-nats`) from a relay's JetStream stream.
    Tail(TailArgs),
    /// Show the feed as a live table in the terminal (`q` quits).
    Watch(StreamArgs),
    /// Run the reference server (argus-server) on this machine.
    Serve(ServeArgs),
    /// Relay the feed into NATS JetStream: data to `<prefix>.<type>.<SYMBOL>`,
    /// gaps and resumes to `<prefix>.gap` and `<prefix>.resumed`, resuming
    /// the upstream session after a restart.
    Relay(RelayArgs),
}

/// The flags of `tail`: those of a feed, and where to read instead.
#[derive(Clone, Debug, Args)]
pub struct TailArgs {
    /// The feed read from a server (when `--from-nats` is not given).
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Reading a relay's stream instead.
    #[command(flatten)]
    pub nats: FromNatsArgs,
}

/// The flags of `tail --from-nats`.
#[derive(Clone, Debug, Args)]
pub struct FromNatsArgs {
    /// Read a relay's JetStream stream at this NATS server
    /// (`nats://HOST:PORT`) instead of a feed.
    #[arg(long, value_name = "NATS_URL")]
    pub from_nats: Option<String>,
    /// The stream to read.
    #[arg(long, default_value = argus_nats::DEFAULT_STREAM, requires = "from_nats")]
    pub stream: String,
    /// Only subjects matching this, e.g. `argus.price.>` (default: all).
    #[arg(long, requires = "from_nats")]
    pub filter: Option<String>,
    /// A durable consumer of this name: a restarted `tail` goes on after
    /// the last line it printed (default: an ordered consumer from the
    /// stream's start).
    #[arg(long, requires = "from_nats")]
    pub durable: Option<String>,
}

/// The flags of `relay`.
#[derive(Clone, Debug, Args)]
pub struct RelayArgs {
    /// Where to connect upstream.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Symbols to relay, comma separated (this shard's part of them).
    #[arg(long, value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// Data types, comma separated: price, volume, orderbook.
    #[arg(long, value_delimiter = ',', default_value = "price")]
    pub types: Vec<DataType>,
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// The JetStream stream (created when missing).
    #[arg(long, default_value = argus_nats::DEFAULT_STREAM)]
    pub stream: String,
    /// The first subject token.
    #[arg(long, default_value = argus_nats::DEFAULT_SUBJECT_PREFIX)]
    pub subject_prefix: String,
    /// The key-value bucket of resume points (secrets: guard access to it).
    #[arg(long, default_value = argus_nats::DEFAULT_BUCKET)]
    pub bucket: String,
    /// This relay's share of the symbols, `i/N`: the symbols whose stable
    /// hash falls on `i`.
    #[arg(long, default_value = "0/1")]
    pub shard: argus_nats::Shard,
    /// Symbols on one upstream connection; more symbols open more
    /// connections.
    #[arg(long, default_value_t = argus_nats::DEFAULT_SYMBOLS_PER_CONNECTION)]
    pub symbols_per_connection: usize,
    /// Publishes awaiting JetStream's acknowledgement before the relay
    /// stops reading upstream.
    #[arg(long, default_value_t = argus_nats::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// How long a publish may wait for its acknowledgement before it is
    /// sent again.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub ack_timeout: Duration,
    /// At the end, how long to wait for the acknowledgements still due
    /// (a broker that is gone does not keep the relay from exiting; what
    /// was not acknowledged is published again by the next run).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Stop after this long, e.g. 30s or 5m (default: until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}

/// What `tail` and `watch` do when they cannot keep up with the feed, as
/// named on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// Slow the socket down: lose nothing (the server may close a client that
    /// stays too slow; it then reconnects and resumes).
    #[default]
    Backpressure,
    /// Keep reading; drop the oldest queued event to make room, and say how
    /// many went (a `lagged` line).
    DropOldest,
    /// Keep reading; keep only the latest queued message per symbol and data
    /// type, and say how many went (a `lagged` line).
    Conflate,
}

impl From<Policy> for QueuePolicy {
    fn from(policy: Policy) -> Self {
        match policy {
            Policy::Backpressure => QueuePolicy::Backpressure,
            Policy::DropOldest => QueuePolicy::DropOldest,
            Policy::Conflate => QueuePolicy::ConflateLatest,
        }
    }
}

/// Where to connect and how to keep the connection alive: the flags of
/// every command that reads a feed (`tail`, `watch`, `relay`).
#[derive(Clone, Debug, Args)]
pub struct ConnectionArgs {
    /// The server's WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8000/ws")]
    pub url: String,
    /// The api key, sent as `Authorization: Bearer`. Prefer the ARGUS_API_KEY
    /// variable: a flag shows in `ps` and in shell history.
    #[arg(long, env = "ARGUS_API_KEY", hide_env_values = true)]
    pub api_key: Option<ApiKey>,
    /// Interval between the client's pings (heartbeat_interval).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,
    /// Connect timeout and pong deadline (timeout).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Base delay of the reconnect backoff (reconnect_delay).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub reconnect_delay: Duration,
    /// Longest wait between two attempts (max_backoff; default: 30s, or
    /// --reconnect-delay when that is longer).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_backoff: Option<Duration>,
    /// Consecutive failed attempts before giving up; 0 never reconnects
    /// (max_reconnect_attempts).
    #[arg(long, default_value_t = 5)]
    pub max_reconnect_attempts: u32,
}

impl ConnectionArgs {
    /// The connection settings, checked; the error names the offending
    /// field and its flag.
    pub fn connection_config(&self) -> Result<ConnectionConfig, UsageError> {
        let config = ConnectionConfig {
            url: self.url.clone(),
            api_key: self.api_key.clone(),
            max_reconnect_attempts: self.max_reconnect_attempts,
            reconnect_delay: self.reconnect_delay,
            max_backoff: self
                .max_backoff
                .unwrap_or(DEFAULT_MAX_BACKOFF.max(self.reconnect_delay)),
            heartbeat_interval: self.heartbeat,
            timeout: self.timeout,
            ..ConnectionConfig::default()
        };
        config.validate().map_err(UsageError::Config)?;
        Ok(config)
    }
}

/// The flags `tail` and `watch` share: where to connect, what to subscribe
/// to, and how to keep up.
#[derive(Clone, Debug, Args)]
pub struct StreamArgs {
    /// Where to connect.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Symbols to subscribe to, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "AAPL,MSFT,GOOGL,AMZN,TSLA"
    )]
    pub symbols: Vec<String>,
    /// Data types, comma separated: price, volume, orderbook.
    #[arg(long, value_delimiter = ',', default_value = "price")]
    pub types: Vec<DataType>,
    /// How often updates come: realtime, 1s, 5s or 1m.
    #[arg(long, default_value = "realtime")]
    pub frequency: UpdateFrequency,
    /// Deliver a symbol's events only while its price is at least this.
    #[arg(long)]
    pub min_price: Option<f64>,
    /// Deliver a symbol's events only while its price is at most this.
    #[arg(long)]
    pub max_price: Option<f64>,
    /// Stop after this long, e.g. 30s or 5m (default: until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// What to do when stdout (or the screen) cannot keep up with the feed.
    #[arg(long, value_enum, default_value_t = Policy::Backpressure)]
    pub policy: Policy,
    /// Events the client queues for a slow consumer before --policy applies.
    #[arg(long, default_value_t = argus_tokio::DEFAULT_EVENT_CAPACITY)]
    pub queue_capacity: usize,
}

impl StreamArgs {
    /// The connection settings, checked; the error names the offending
    /// field and its flag.
    pub fn connection_config(&self) -> Result<ConnectionConfig, UsageError> {
        self.connection.connection_config()
    }

    /// The one subscription `tail` and `watch` make, checked.
    pub fn subscription(&self) -> Result<SubscriptionConfig, UsageError> {
        let mut sub = SubscriptionConfig::new(&self.symbols, self.types.iter().copied())
            .update_frequency(self.frequency);
        if let Some(min) = self.min_price {
            sub = sub.min_price(min);
        }
        if let Some(max) = self.max_price {
            sub = sub.max_price(max);
        }
        sub.normalized().map_err(UsageError::Subscription)?;
        Ok(sub)
    }
}

/// The flags of `serve`.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value_t = argus_server::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Symbols to serve, comma separated (default: 25 well-known US tickers).
    #[arg(long, value_delimiter = ',')]
    pub symbols: Vec<String>,
    /// How often the simulated market moves, e.g. 100ms.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub tick_interval: Duration,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Accepted api keys, comma separated (none: the server is open). Prefer
    /// the ARGUS_API_KEYS variable.
    #[arg(
        long = "api-key",
        env = "ARGUS_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<ApiKey>,
    /// Serve every subscription from a firehose of pre-encoded messages
    /// (for throughput tests) instead of the simulated market.
    #[arg(long)]
    pub firehose: bool,
    /// Firehose messages per second per connection (default: as fast as possible).
    #[arg(long, requires = "firehose")]
    pub firehose_rate: Option<u64>,
}

/// A flag or setting that cannot be used: exit code 2.
#[derive(Debug)]
#[non_exhaustive]
pub enum UsageError {
    /// A connection setting failed validation.
    Config(ConfigError),
    /// The subscription is not valid.
    Subscription(SubscriptionConfigError),
    /// The client refused a setting of its own (the queue's capacity).
    Build(BuildError),
    /// A setting of `serve` is unusable.
    Server(String),
    /// `watch` needs a terminal.
    NotATerminal,
    /// A relay setting is unusable.
    Relay(argus_nats::ConfigError),
}

impl UsageError {
    /// The flag to blame, when there is one.
    pub fn flag(&self) -> Option<&'static str> {
        match self {
            Self::Config(e) => flag_of_field(e.field()),
            Self::Subscription(e) => Some(match e {
                SubscriptionConfigError::NoSymbols
                | SubscriptionConfigError::InvalidSymbol { .. } => "--symbols",
                SubscriptionConfigError::NoDataTypes => "--types",
                _ => "--min-price/--max-price",
            }),
            Self::Build(BuildError::ZeroQueueCapacity | BuildError::ZeroEventCapacity) => {
                Some("--queue-capacity")
            }
            Self::Build(BuildError::Config(e)) => flag_of_field(e.field()),
            _ => None,
        }
    }
}

/// The flag that sets a [`ConnectionConfig`] field.
fn flag_of_field(field: &str) -> Option<&'static str> {
    Some(match field {
        "url" => "--url",
        "api_key" => "--api-key (or ARGUS_API_KEY)",
        "heartbeat_interval" => "--heartbeat",
        "timeout" => "--timeout",
        "reconnect_delay" => "--reconnect-delay",
        "max_backoff" => "--max-backoff",
        "max_reconnect_attempts" => "--max-reconnect-attempts",
        _ => return None,
    })
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(flag) = self.flag() {
            write!(f, "invalid {flag}: ")?;
        }
        match self {
            // These name the field first ("heartbeat_interval: ...").
            Self::Config(e) => write!(f, "{e}"),
            Self::Subscription(e) => write!(f, "{e}"),
            Self::Build(e) => write!(f, "{e}"),
            Self::Server(e) => write!(f, "{e}"),
            Self::Relay(e) => write!(f, "{e}"),
            Self::NotATerminal => f.write_str(
                "`argus watch` draws on a terminal, and stdout is not one; \
                 use `argus tail` to pipe or save the feed",
            ),
        }
    }
}

impl std::error::Error for UsageError {}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_core::config::{
        DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_RECONNECT_ATTEMPTS, DEFAULT_RECONNECT_DELAY,
        DEFAULT_TIMEOUT,
    };

    fn tail(args: &[&str]) -> StreamArgs {
        let cli = Cli::try_parse_from(["argus", "tail"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Tail(args) => args.stream,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_cores() {
        let config = tail(&[]).connection_config().unwrap();
        let core = ConnectionConfig::new("ws://127.0.0.1:8000/ws");
        assert_eq!(config, core);
        assert_eq!(config.heartbeat_interval, DEFAULT_HEARTBEAT_INTERVAL);
        assert_eq!(config.timeout, DEFAULT_TIMEOUT);
        assert_eq!(config.reconnect_delay, DEFAULT_RECONNECT_DELAY);
        assert_eq!(
            config.max_reconnect_attempts,
            DEFAULT_MAX_RECONNECT_ATTEMPTS
        );
    }

    #[test]
    fn flags_map_onto_the_config() {
        let args = tail(&[
            "--heartbeat",
            "200ms",
            "--timeout",
            "1s",
            "--reconnect-delay",
            "50ms",
            "--max-reconnect-attempts",
            "3",
            "--symbols",
            "aapl, msft",
            "--types",
            "price,orderbook",
            "--frequency",
            "1s",
            "--min-price",
            "10",
            "--policy",
            "drop-oldest",
        ]);
        let c = args.connection_config().unwrap();
        assert_eq!(c.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.reconnect_delay, Duration::from_millis(50));
        assert_eq!(c.max_backoff, DEFAULT_MAX_BACKOFF);
        assert_eq!(c.max_reconnect_attempts, 3);
        let sub = args.subscription().unwrap().normalized().unwrap();
        let symbols: Vec<&str> = sub.symbols.iter().map(|s| s.as_str()).collect();
        assert_eq!(symbols, ["AAPL", "MSFT"]);
        assert_eq!(sub.data_types, [DataType::Price, DataType::OrderBook]);
        assert_eq!(sub.update_frequency, UpdateFrequency::OneSecond);
        assert_eq!(sub.filters.min_price, Some(10.0));
        assert_eq!(QueuePolicy::from(args.policy), QueuePolicy::DropOldest);
        // A long base delay lifts the default cap instead of failing.
        let slow = tail(&["--reconnect-delay", "1m"])
            .connection_config()
            .unwrap();
        assert_eq!(slow.max_backoff, Duration::from_secs(60));
    }

    #[test]
    fn errors_name_the_flag_and_the_field() {
        let message = |args: &[&str]| {
            let a = tail(args);
            let e = a
                .connection_config()
                .err()
                .or_else(|| a.subscription().err())
                .expect("an error");
            e.to_string()
        };
        assert_eq!(
            message(&["--heartbeat", "0s"]),
            "invalid --heartbeat: heartbeat_interval: must be greater than zero"
        );
        assert!(message(&["--url", "http://x/ws"]).starts_with("invalid --url: url: "));
        assert!(
            message(&["--max-backoff", "1ms"]).starts_with("invalid --max-backoff: max_backoff: ")
        );
        assert!(message(&["--symbols", "A B"]).starts_with("invalid --symbols: symbols: "));
        assert!(
            message(&["--min-price", "10", "--max-price", "1"])
                .starts_with("invalid --min-price/--max-price: filters: ")
        );
        assert!(Cli::try_parse_from(["argus", "tail", "--frequency", "2s"]).is_err());
        assert!(Cli::try_parse_from(["argus", "tail", "--types", "trades"]).is_err());
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let args = tail(&["--api-key", "sk-very-secret"]);
        assert!(!format!("{args:?}").contains("sk-very-secret"));
    }
}
