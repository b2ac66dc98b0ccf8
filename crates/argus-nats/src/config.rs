//! The relay's settings, the shard it covers, and how its symbols are
//! spread over upstream connections.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Default stream name.
pub const DEFAULT_STREAM: &str = "ARGUS";
/// Default subject prefix.
pub const DEFAULT_SUBJECT_PREFIX: &str = "argus";
/// Default key-value bucket of resume points.
pub const DEFAULT_BUCKET: &str = "argus_relay";
/// Default bound on publishes awaiting JetStream's acknowledgement.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// Default de-duplication window of a stream the relay creates.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Default symbols on one upstream connection (the reference server's
/// `max_symbols_per_subscription`).
pub const DEFAULT_SYMBOLS_PER_CONNECTION: usize = 1000;

/// What the relay publishes where, and its bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// The JetStream stream (default `ARGUS`). Created when missing, with
    /// the subjects `<subject_prefix>.>`, file storage and
    /// `duplicate_window`.
    pub stream: String,
    /// The first subject token (default `argus`): data goes to
    /// `<prefix>.<type>.<SYMBOL>`, gaps to `<prefix>.gap`, resumes to
    /// `<prefix>.resumed`.
    pub subject_prefix: String,
    /// The key-value bucket holding each upstream connection's resume
    /// point (default `argus_relay`). Its values are secrets: read access
    /// to it is the power to resume the relay's upstream sessions.
    pub bucket: String,
    /// Publishes sent and not yet acknowledged (default 512). When they are
    /// all out, the relay stops reading its upstream events, so a slow
    /// JetStream slows the upstream reading and memory stays bounded.
    pub max_in_flight: usize,
    /// The stream's de-duplication window when the relay creates it
    /// (default 2 minutes). A message published again within it (after a
    /// relay restart, or a retry) is stored once.
    pub duplicate_window: Duration,
    /// The longest wait between attempts to publish what JetStream did
    /// not acknowledge (default 2 s; the first wait is 50 ms, doubling).
    pub max_retry_delay: Duration,
    /// How long a publish may wait for its acknowledgement before it is
    /// sent again, with everything after it (default 5 s).
    pub ack_timeout: Duration,
    /// The least time between two writes of a connection's resume point
    /// (default 100 ms; a new session's point is written at once, and the
    /// last one at shutdown). The point is a floor: a restarted relay
    /// raises it to the last seq the stream holds, so a write per message
    /// would only load JetStream.
    pub point_interval: Duration,
    /// How long a run that was told to stop (or whose feeds ended) waits
    /// for the acknowledgements still due and the last resume points
    /// (default 10 s). Past it the run ends anyway, with the count of what
    /// was not acknowledged in [`RelayStats::unacknowledged`](crate::RelayStats::unacknowledged):
    /// a broker that is gone does not keep the relay from exiting, and
    /// nothing is lost, as the stored points precede what was not
    /// acknowledged, so a restarted relay publishes it again.
    pub shutdown_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            stream: DEFAULT_STREAM.into(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.into(),
            bucket: DEFAULT_BUCKET.into(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            max_retry_delay: Duration::from_secs(2),
            ack_timeout: Duration::from_secs(5),
            point_interval: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl RelayConfig {
    /// The defaults, with this stream and subject prefix.
    pub fn new(stream: impl Into<String>, subject_prefix: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            subject_prefix: subject_prefix.into(),
            ..Self::default()
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !name_ok(&self.stream) {
            return Err(ConfigError::Stream(self.stream.clone()));
        }
        if !name_ok(&self.bucket) {
            return Err(ConfigError::Bucket(self.bucket.clone()));
        }
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>'))
        };
        if !self.subject_prefix.split('.').all(token_ok) {
            return Err(ConfigError::SubjectPrefix(self.subject_prefix.clone()));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::MaxInFlight);
        }
        if self.duplicate_window.is_zero() {
            return Err(ConfigError::DuplicateWindow);
        }
        if self.max_retry_delay.is_zero() {
            return Err(ConfigError::MaxRetryDelay);
        }
        if self.ack_timeout.is_zero() {
            return Err(ConfigError::AckTimeout);
        }
        if self.shutdown_timeout.is_zero() {
            return Err(ConfigError::ShutdownTimeout);
        }
        Ok(())
    }
}

/// A bad relay setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Stream names are 1–64 characters of `A–Z a–z 0–9 _ -`.
    #[error("stream: `{0}` is not a stream name (1-64 characters of A-Z a-z 0-9 _ -)")]
    Stream(String),
    /// Bucket names are 1–64 characters of `A–Z a–z 0–9 _ -`.
    #[error("bucket: `{0}` is not a bucket name (1-64 characters of A-Z a-z 0-9 _ -)")]
    Bucket(String),
    /// A prefix is one or more subject tokens without `*`, `>` or spaces.
    #[error(
        "subject_prefix: `{0}` is not a subject prefix (tokens separated by dots, no * > or spaces)"
    )]
    SubjectPrefix(String),
    /// At least one publish must be allowed in flight.
    #[error("max_in_flight: must be greater than zero")]
    MaxInFlight,
    /// The de-duplication window must be positive.
    #[error("duplicate_window: must be greater than zero")]
    DuplicateWindow,
    /// The retry delay must be positive.
    #[error("max_retry_delay: must be greater than zero")]
    MaxRetryDelay,
    /// The acknowledgement timeout must be positive.
    #[error("ack_timeout: must be greater than zero")]
    AckTimeout,
    /// The shutdown timeout must be positive.
    #[error("shutdown_timeout: must be greater than zero")]
    ShutdownTimeout,
    /// A shard is `i/N` with `i < N`.
    #[error("shard: `{0}` is not i/N with 0 <= i < N")]
    Shard(String),
    /// At least one symbol per connection.
    #[error("symbols_per_connection: must be greater than zero")]
    SymbolsPerConnection,
}

/// One of `count` relays that share the symbol universe: it takes the
/// symbols whose stable hash falls on `index`. `N` relays on `N` machines,
/// `0/N` to `N-1/N`, cover every symbol exactly once.
///
/// ```
/// use argus_nats::Shard;
///
/// let halves: [Shard; 2] = ["0/2".parse().unwrap(), "1/2".parse().unwrap()];
/// for symbol in ["AAPL", "MSFT", "BRK.B"] {
///     assert_eq!(halves.iter().filter(|s| s.contains(symbol)).count(), 1);
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Every symbol: `0/1`.
    pub const ALL: Self = Self { index: 0, count: 1 };

    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ConfigError> {
        if count == 0 || index >= count {
            return Err(ConfigError::Shard(format!("{index}/{count}")));
        }
        Ok(Self { index, count })
    }

    /// This shard's number, from 0.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether `symbol` is this shard's: FNV-1a (64 bits) of the symbol's
    /// bytes, modulo the count. The hash is fixed by its specification, so
    /// every relay of every version and platform agrees.
    pub fn contains(self, symbol: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in symbol.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash % u64::from(self.count) == u64::from(self.index)
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::Shard(s.to_owned());
        let (index, count) = s.split_once('/').ok_or_else(bad)?;
        let index = index.trim().parse().map_err(|_| bad())?;
        let count = count.trim().parse().map_err(|_| bad())?;
        Self::new(index, count).map_err(|_| bad())
    }
}

/// One upstream connection of a relay: its symbols, and the key its resume
/// point is stored under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamPlan {
    /// The key in the resume-point bucket: the shard, the connection's
    /// number and a hash of what it subscribes, so a relay restarted with
    /// other symbols starts new sessions instead of resuming the wrong ones.
    pub key: String,
    /// The symbols, normalised and sorted.
    pub symbols: Vec<String>,
}

/// Spreads `symbols` (normalised: trimmed, upper-cased, de-duplicated,
/// sorted) that belong to `shard` over connections of at most
/// `symbols_per_connection` each. The same input always gives the same
/// plan, so a restarted relay finds its resume points. `data_types` goes
/// into the keys.
pub fn plan_upstream(
    symbols: &[String],
    data_types: &[String],
    shard: Shard,
    symbols_per_connection: usize,
) -> Result<Vec<UpstreamPlan>, ConfigError> {
    if symbols_per_connection == 0 {
        return Err(ConfigError::SymbolsPerConnection);
    }
    let mut mine: Vec<String> = symbols
        .iter()
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty() && shard.contains(s))
        .collect();
    mine.sort();
    mine.dedup();
    let mut types: Vec<String> = data_types.iter().map(|t| t.trim().to_owned()).collect();
    types.sort();
    types.dedup();
    Ok(mine
        .chunks(symbols_per_connection)
        .enumerate()
        .map(|(i, chunk)| {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for part in chunk.iter().chain(&types) {
                ctx.update(part.as_bytes());
                ctx.update(b"\0");
            }
            let digest = ctx.finish();
            let tag: String = digest.as_ref()[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            UpstreamPlan {
                key: format!("shard-{}-of-{}.conn-{i}.{tag}", shard.index, shard.count),
                symbols: chunk.to_vec(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn shards_partition_the_universe() {
        let universe: Vec<String> = (0..500).map(|i| format!("S{i}")).collect();
        for count in 1..6 {
            for symbol in &universe {
                let owners = (0..count)
                    .filter(|i| Shard::new(*i, count).unwrap().contains(symbol))
                    .count();
                assert_eq!(owners, 1, "{symbol} in {count} shards");
            }
        }
        // Fixed by FNV-1a: these must never change between versions.
        assert!(
            Shard::new(0, 2).unwrap().contains("AAPL")
                != Shard::new(1, 2).unwrap().contains("AAPL")
        );
        assert_eq!("3/4".parse::<Shard>().unwrap().to_string(), "3/4");
        for bad in ["2/2", "1", "a/b", "0/0", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_plan_is_stable_and_chunked() {
        let symbols = strings(&["msft", "AAPL", "GOOGL", "aapl", "AMZN", "TSLA"]);
        let types = strings(&["price"]);
        let plan = plan_upstream(&symbols, &types, Shard::ALL, 2).unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[0].symbols, ["AAPL", "AMZN"]);
        assert_eq!(
            plan,
            plan_upstream(&symbols, &types, Shard::ALL, 2).unwrap()
        );
        assert!(plan[0].key.starts_with("shard-0-of-1.conn-0."));
        let volume = plan_upstream(&symbols, &strings(&["volume"]), Shard::ALL, 2).unwrap();
        assert_ne!(plan[0].key, volume[0].key);
        assert!(plan_upstream(&symbols, &types, Shard::ALL, 0).is_err());
    }

    #[test]
    fn bad_settings_name_their_field() {
        let mut config = RelayConfig::default();
        assert_eq!(config.validate(), Ok(()));
        config.subject_prefix = "a.*".into();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::SubjectPrefix(_))
        ));
        config = RelayConfig::new("has space", "argus");
        assert!(matches!(config.validate(), Err(ConfigError::Stream(_))));
        config = RelayConfig {
            max_in_flight: 0,
            ..RelayConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::MaxInFlight));
    }
}
