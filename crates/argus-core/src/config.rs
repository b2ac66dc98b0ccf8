//! Connection and subscription configuration.
//!
//! [`ConnectionConfig`] carries every field of the original SDK's
//! `ConnectionConfig` (URL, api key, reconnect attempts and delay, heartbeat
//! interval, timeout, maximum subscriptions) as typed Rust, plus a cap for the
//! reconnect backoff and a maximum message size. [`SubscriptionConfig`]
//! describes one subscription: symbols, data types, update frequency and
//! price filters.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::subscription::{DataType, Filters, Symbol, UpdateFrequency};

/// Default number of consecutive failed attempts before the client gives up.
pub const DEFAULT_MAX_RECONNECT_ATTEMPTS: u32 = 5;
/// Default base delay of the reconnect backoff.
pub const DEFAULT_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Default cap of the reconnect backoff.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Default interval between two client pings.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// Default connect timeout and pong deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default maximum number of live subscriptions.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 100;
/// Default maximum size of one incoming message, in bytes (1 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;
/// Default largest forward jump of the live seq taken as a gap; a larger
/// one is a protocol error (see [`ConnectionConfig::max_seq_jump`]). A
/// million messages is over ten seconds of a 100k msg/s feed, and far more
/// than any replay buffer holds.
pub const DEFAULT_MAX_SEQ_JUMP: u64 = 1_000_000;

/// An api key. Its `Debug` output is redacted, it has no `Display`, and it is
/// never serialised: it can reach the server only through
/// [`ApiKey::expose`], which the transport calls to build the
/// `Authorization` header.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for building the `Authorization` header. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        Self::new(key)
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        Self(key)
    }
}

/// How to reach a server and how to keep the connection alive.
///
/// Durations (de)serialise as human-readable strings (`"1s"`, `"500ms"`) and
/// also accept a number of seconds (`1.5`), as the original SDK did. The api
/// key is read by `Deserialize` but never written by `Serialize`, so a
/// serialised config is safe to log.
///
/// ```
/// use argus_core::ConnectionConfig;
/// use std::time::Duration;
///
/// let config = ConnectionConfig::builder("wss://feed.example.com/ws")
///     .api_key("secret")
///     .heartbeat_interval(Duration::from_secs(15))
///     .build()
///     .unwrap();
/// assert_eq!(config.max_reconnect_attempts, 5);
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The server's URL, `ws://` or `wss://`.
    pub url: String,
    /// The api key, sent as `Authorization: Bearer <key>` in the upgrade request.
    #[serde(skip_serializing)]
    pub api_key: Option<ApiKey>,
    /// Consecutive failed attempts after which the client gives up (state `Error`).
    /// Zero disables reconnecting.
    pub max_reconnect_attempts: u32,
    /// Base delay of the exponential reconnect backoff.
    #[serde(with = "duration_serde")]
    pub reconnect_delay: Duration,
    /// The longest the backoff waits before one attempt.
    #[serde(with = "duration_serde")]
    pub max_backoff: Duration,
    /// Interval between two pings.
    #[serde(with = "duration_serde")]
    pub heartbeat_interval: Duration,
    /// Connect timeout (TCP, TLS, upgrade and `welcome`) and pong deadline.
    #[serde(with = "duration_serde")]
    pub timeout: Duration,
    /// Maximum number of subscriptions the client holds at once.
    pub max_subscriptions: usize,
    /// Largest incoming message accepted, in bytes.
    pub max_message_size: usize,
    /// Largest forward jump of the live seq that is reported as a gap. A
    /// larger jump (a seq of 2⁶³ after 17, say) is not believed: it is a
    /// protocol error, the message is not delivered, and the client starts
    /// a new session (a gap event says data may be lost), so one bad seq
    /// never makes every later message look like a duplicate.
    pub max_seq_jump: u64,
}

impl Default for ConnectionConfig {
    /// The original SDK's defaults, pointed at a local server.
    fn default() -> Self {
        Self {
            url: "ws://localhost:8000/ws".to_owned(),
            api_key: None,
            max_reconnect_attempts: DEFAULT_MAX_RECONNECT_ATTEMPTS,
            reconnect_delay: DEFAULT_RECONNECT_DELAY,
            max_backoff: DEFAULT_MAX_BACKOFF,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_seq_jump: DEFAULT_MAX_SEQ_JUMP,
        }
    }
}

impl ConnectionConfig {
    /// A config with the default settings for `url` and no api key.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// A config with the default settings for `url`, authenticated with `api_key`.
    pub fn with_api_key(url: impl Into<String>, api_key: impl Into<ApiKey>) -> Self {
        Self {
            api_key: Some(api_key.into()),
            ..Self::new(url)
        }
    }

    /// Starts a builder for `url` from the default settings.
    pub fn builder(url: impl Into<String>) -> ConnectionConfigBuilder {
        ConnectionConfigBuilder {
            config: Self::new(url),
        }
    }

    /// The original SDK's production preset: 10 attempts, 2 s delay, 20 s
    /// heartbeat, 15 s timeout, 1000 subscriptions.
    pub fn production(url: impl Into<String>, api_key: impl Into<ApiKey>) -> Self {
        Self {
            max_reconnect_attempts: 10,
            reconnect_delay: Duration::from_secs(2),
            heartbeat_interval: Duration::from_secs(20),
            timeout: Duration::from_secs(15),
            max_subscriptions: 1000,
            ..Self::with_api_key(url, api_key)
        }
    }

    /// The original SDK's development preset: 3 attempts, 1 s delay, 30 s
    /// heartbeat, 10 s timeout, 50 subscriptions, no api key.
    pub fn development(url: impl Into<String>) -> Self {
        Self {
            max_reconnect_attempts: 3,
            reconnect_delay: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            max_subscriptions: 50,
            ..Self::new(url)
        }
    }

    /// The original SDK's high-frequency trading preset: 20 attempts, 0.5 s
    /// delay, 10 s heartbeat, 5 s timeout, 5000 subscriptions; the backoff is
    /// capped at 5 s so a trading client never waits long between attempts.
    pub fn high_frequency(url: impl Into<String>, api_key: impl Into<ApiKey>) -> Self {
        Self {
            max_reconnect_attempts: 20,
            reconnect_delay: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            max_subscriptions: 5000,
            ..Self::with_api_key(url, api_key)
        }
    }

    /// Checks every field and names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_url(&self.url)?;
        for (field, value) in [
            ("timeout", self.timeout),
            ("heartbeat_interval", self.heartbeat_interval),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.max_subscriptions == 0 {
            return Err(ConfigError::Zero {
                field: "max_subscriptions",
            });
        }
        if self.max_seq_jump == 0 {
            return Err(ConfigError::Zero {
                field: "max_seq_jump",
            });
        }
        if self.max_message_size < 1024 {
            return Err(ConfigError::MessageSizeTooSmall {
                size: self.max_message_size,
            });
        }
        if self.max_backoff < self.reconnect_delay {
            return Err(ConfigError::BackoffBelowDelay {
                max_backoff: self.max_backoff,
                reconnect_delay: self.reconnect_delay,
            });
        }
        if let Some(key) = &self.api_key
            && (key.0.is_empty() || key.0.bytes().any(|b| b.is_ascii_control() || b == b' '))
        {
            return Err(ConfigError::InvalidApiKey);
        }
        Ok(())
    }

    /// Whether the URL asks for TLS (`wss://`).
    pub fn is_tls(&self) -> bool {
        self.url
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("wss://"))
    }
}

fn validate_url(url: &str) -> Result<(), ConfigError> {
    if url.trim().is_empty() {
        return Err(ConfigError::EmptyUrl);
    }
    let invalid = || ConfigError::InvalidUrl {
        url: url.to_owned(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("ws") && !scheme.eq_ignore_ascii_case("wss") {
        return Err(invalid());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty()
        || host.starts_with(':')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid());
    }
    Ok(())
}

/// A [`ConnectionConfig`] field that failed validation. [`ConfigError::field`]
/// names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL is empty.
    #[error("url: must not be empty; give a ws:// or wss:// URL")]
    EmptyUrl,
    /// The URL is not a `ws://` or `wss://` URL with a host.
    #[error("url: `{url}` is not a ws:// or wss:// URL with a host")]
    InvalidUrl {
        /// The URL as given.
        url: String,
    },
    /// A field that must be positive is zero.
    #[error("{field}: must be greater than zero")]
    Zero {
        /// The field's name.
        field: &'static str,
    },
    /// `max_message_size` is too small for the protocol's messages.
    #[error("max_message_size: {size} bytes is too small; allow at least 1024")]
    MessageSizeTooSmall {
        /// The size given.
        size: usize,
    },
    /// The backoff cap is below the base delay.
    #[error("max_backoff: {max_backoff:?} is less than reconnect_delay {reconnect_delay:?}")]
    BackoffBelowDelay {
        /// The cap given.
        max_backoff: Duration,
        /// The base delay given.
        reconnect_delay: Duration,
    },
    /// The api key is empty or holds characters a header cannot carry.
    #[error("api_key: must be non-empty, without spaces or control characters")]
    InvalidApiKey,
}

impl ConfigError {
    /// The name of the offending field.
    pub fn field(&self) -> &'static str {
        match self {
            Self::EmptyUrl | Self::InvalidUrl { .. } => "url",
            Self::Zero { field } => field,
            Self::MessageSizeTooSmall { .. } => "max_message_size",
            Self::BackoffBelowDelay { .. } => "max_backoff",
            Self::InvalidApiKey => "api_key",
        }
    }
}

/// Builds a validated [`ConnectionConfig`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ConnectionConfigBuilder {
    config: ConnectionConfig,
}

impl ConnectionConfigBuilder {
    /// Sets the api key.
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.config.api_key = Some(key.into());
        self
    }
    /// Sets the number of consecutive failed attempts before giving up.
    pub fn max_reconnect_attempts(mut self, attempts: u32) -> Self {
        self.config.max_reconnect_attempts = attempts;
        self
    }
    /// Sets the base delay of the reconnect backoff.
    pub fn reconnect_delay(mut self, delay: Duration) -> Self {
        self.config.reconnect_delay = delay;
        self
    }
    /// Sets the cap of the reconnect backoff.
    pub fn max_backoff(mut self, cap: Duration) -> Self {
        self.config.max_backoff = cap;
        self
    }
    /// Sets the interval between pings.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }
    /// Sets the connect timeout and pong deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }
    /// Sets the maximum number of subscriptions.
    pub fn max_subscriptions(mut self, max: usize) -> Self {
        self.config.max_subscriptions = max;
        self
    }
    /// Sets the largest incoming message accepted, in bytes.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }
    /// Sets the largest forward seq jump reported as a gap.
    pub fn max_seq_jump(mut self, jump: u64) -> Self {
        self.config.max_seq_jump = jump;
        self
    }
    /// Validates and returns the config.
    pub fn build(self) -> Result<ConnectionConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// One subscription's request: which symbols, which data types, how often,
/// and which prices.
///
/// ```
/// use argus_core::{DataType, SubscriptionConfig, UpdateFrequency};
///
/// let sub = SubscriptionConfig::new(["aapl", " googl "], [DataType::Price, DataType::Volume])
///     .update_frequency(UpdateFrequency::Realtime)
///     .min_price(100.0)
///     .max_price(1000.0)
///     .normalized()
///     .unwrap();
/// assert_eq!(sub.symbols[0].as_str(), "AAPL");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionConfig {
    /// Symbols as the application gave them; [`SubscriptionConfig::normalized`]
    /// trims and upper-cases them.
    pub symbols: Vec<String>,
    /// Data types wanted.
    pub data_types: Vec<DataType>,
    /// How often updates come.
    #[serde(default)]
    pub update_frequency: UpdateFrequency,
    /// Price filters.
    #[serde(default)]
    pub filters: Filters,
}

impl SubscriptionConfig {
    /// A real-time subscription without filters.
    pub fn new<S: AsRef<str>>(
        symbols: impl IntoIterator<Item = S>,
        data_types: impl IntoIterator<Item = DataType>,
    ) -> Self {
        Self {
            symbols: symbols.into_iter().map(|s| s.as_ref().to_owned()).collect(),
            data_types: data_types.into_iter().collect(),
            update_frequency: UpdateFrequency::Realtime,
            filters: Filters::default(),
        }
    }

    /// Sets the update frequency.
    #[must_use]
    pub fn update_frequency(mut self, frequency: UpdateFrequency) -> Self {
        self.update_frequency = frequency;
        self
    }

    /// Delivers events only while the symbol's price is at least `price`.
    #[must_use]
    pub fn min_price(mut self, price: f64) -> Self {
        self.filters.min_price = Some(price);
        self
    }

    /// Delivers events only while the symbol's price is at most `price`.
    #[must_use]
    pub fn max_price(mut self, price: f64) -> Self {
        self.filters.max_price = Some(price);
        self
    }

    /// The normal form PROTOCOL.md asks clients to send: symbols trimmed,
    /// upper-cased and de-duplicated, data types de-duplicated, each checked.
    pub fn normalized(&self) -> Result<NormalizedSubscription, SubscriptionConfigError> {
        if self.symbols.is_empty() {
            return Err(SubscriptionConfigError::NoSymbols);
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(self.symbols.len());
        let mut seen = std::collections::HashSet::with_capacity(self.symbols.len());
        for raw in &self.symbols {
            let symbol =
                Symbol::normalize(raw).map_err(|_| SubscriptionConfigError::InvalidSymbol {
                    symbol: raw.clone(),
                })?;
            if seen.insert(symbol) {
                symbols.push(symbol);
            }
        }
        if self.data_types.is_empty() {
            return Err(SubscriptionConfigError::NoDataTypes);
        }
        let mut data_types = Vec::with_capacity(self.data_types.len());
        for dt in &self.data_types {
            if !data_types.contains(dt) {
                data_types.push(*dt);
            }
        }
        self.filters
            .validate()
            .map_err(SubscriptionConfigError::InvalidFilter)?;
        Ok(NormalizedSubscription {
            symbols,
            data_types,
            update_frequency: self.update_frequency,
            filters: self.filters,
        })
    }
}

/// A [`SubscriptionConfig`] in the protocol's normal form, ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizedSubscription {
    /// Distinct, valid symbols in the order given.
    pub symbols: Vec<Symbol>,
    /// Distinct data types in the order given.
    pub data_types: Vec<DataType>,
    /// How often updates come.
    pub update_frequency: UpdateFrequency,
    /// Price filters, checked.
    pub filters: Filters,
}

/// Why a [`SubscriptionConfig`] cannot be sent.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionConfigError {
    /// No symbols were given.
    #[error("symbols: give at least one symbol")]
    NoSymbols,
    /// A symbol is not 1–20 characters of `A–Z 0–9 . - / _` after trimming and upper-casing.
    #[error("symbols: `{symbol}` is not 1-20 characters of A-Z 0-9 . - / _")]
    InvalidSymbol {
        /// The symbol as given.
        symbol: String,
    },
    /// No data types were given.
    #[error("data_types: give at least one of price, volume, orderbook")]
    NoDataTypes,
    /// The filters are not usable.
    #[error("filters: {0}")]
    InvalidFilter(#[from] crate::subscription::InvalidFilter),
}

/// (De)serialises a [`Duration`] as a human-readable string such as `"1s"` or
/// `"500ms"`, and also reads a plain number of seconds.
pub mod duration_serde {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes `duration` as a human-readable string.
    pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*duration))
    }

    /// Reads a human-readable string or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"1s\" or \"500ms\", or a number of seconds")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            humantime::parse_duration(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom("a duration cannot be negative"))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            Duration::try_from_secs_f64(v).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let c = ConnectionConfig::new("ws://localhost:8000/ws");
        assert_eq!(c.max_reconnect_attempts, 5);
        assert_eq!(c.reconnect_delay, Duration::from_secs(1));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.max_subscriptions, 100);
        assert!(c.api_key.is_none());
        c.validate().unwrap();
    }

    #[test]
    fn presets_match_the_seed() {
        let p = ConnectionConfig::production("wss://api.example.com/ws/v1", "k");
        assert_eq!(
            (
                p.max_reconnect_attempts,
                p.reconnect_delay,
                p.heartbeat_interval,
                p.timeout,
                p.max_subscriptions
            ),
            (
                10,
                Duration::from_secs(2),
                Duration::from_secs(20),
                Duration::from_secs(15),
                1000
            )
        );
        let d = ConnectionConfig::development("ws://localhost:8000/ws");
        assert_eq!((d.max_reconnect_attempts, d.max_subscriptions), (3, 50));
        assert!(d.api_key.is_none());
        let h = ConnectionConfig::high_frequency("wss://api.trading.com/ws", "k");
        assert_eq!(
            (
                h.max_reconnect_attempts,
                h.reconnect_delay,
                h.heartbeat_interval,
                h.timeout,
                h.max_subscriptions
            ),
            (
                20,
                Duration::from_millis(500),
                Duration::from_secs(10),
                Duration::from_secs(5),
                5000
            )
        );
        for c in [p, d, h] {
            c.validate().unwrap();
        }
    }

    #[test]
    fn validate_names_the_field() {
        let field = |c: ConnectionConfig| c.validate().unwrap_err().field();
        assert_eq!(field(ConnectionConfig::new("")), "url");
        assert_eq!(field(ConnectionConfig::new("http://x/ws")), "url");
        assert_eq!(field(ConnectionConfig::new("ws:///ws")), "url");
        assert_eq!(field(ConnectionConfig::new("ws://a b/ws")), "url");
        let base = ConnectionConfig::new("wss://x.example/ws");
        assert_eq!(
            field(ConnectionConfig {
                timeout: Duration::ZERO,
                ..base.clone()
            }),
            "timeout"
        );
        assert_eq!(
            field(ConnectionConfig {
                heartbeat_interval: Duration::ZERO,
                ..base.clone()
            }),
            "heartbeat_interval"
        );
        assert_eq!(
            field(ConnectionConfig {
                max_subscriptions: 0,
                ..base.clone()
            }),
            "max_subscriptions"
        );
        assert_eq!(
            field(ConnectionConfig {
                max_backoff: Duration::from_millis(1),
                ..base.clone()
            }),
            "max_backoff"
        );
        let msg = ConnectionConfig::new("ftp://x").validate().unwrap_err();
        assert!(msg.to_string().starts_with("url:"), "{msg}");
    }

    #[test]
    fn api_key_never_shows() {
        let c = ConnectionConfig::production("wss://x/ws", "sk-live-123456");
        let debug = format!("{c:?} {:#?}", c);
        assert!(!debug.contains("sk-live-123456"), "{debug}");
        assert!(debug.contains("<redacted>"));
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("sk-live-123456"), "{json}");
        assert!(!json.contains("api_key"), "{json}");
    }

    #[test]
    fn serde_reads_strings_and_seconds() {
        let c: ConnectionConfig = serde_json::from_str(
            r#"{"url":"ws://h/ws","api_key":"k","reconnect_delay":0.5,"heartbeat_interval":"15s","timeout":10}"#,
        )
        .unwrap();
        assert_eq!(c.reconnect_delay, Duration::from_millis(500));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(15));
        assert_eq!(c.api_key.as_ref().map(ApiKey::expose), Some("k"));
        let back: ConnectionConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, ConnectionConfig { api_key: None, ..c });
        assert!(serde_json::from_str::<ConnectionConfig>(r#"{"urll":"x"}"#).is_err());
    }

    #[test]
    fn subscription_normalises() {
        let n = SubscriptionConfig::new([" aapl", "AAPL", "brk.b"], [DataType::Price])
            .normalized()
            .unwrap();
        let names: Vec<&str> = n.symbols.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["AAPL", "BRK.B"]);
        assert_eq!(
            SubscriptionConfig::new(["AA PL"], [DataType::Price]).normalized(),
            Err(SubscriptionConfigError::InvalidSymbol {
                symbol: "AA PL".into()
            })
        );
        assert_eq!(
            SubscriptionConfig::new(Vec::<String>::new(), [DataType::Price]).normalized(),
            Err(SubscriptionConfigError::NoSymbols)
        );
        assert_eq!(
            SubscriptionConfig::new(["A"], []).normalized(),
            Err(SubscriptionConfigError::NoDataTypes)
        );
        assert!(matches!(
            SubscriptionConfig::new(["A"], [DataType::Price])
                .min_price(10.0)
                .max_price(1.0)
                .normalized(),
            Err(SubscriptionConfigError::InvalidFilter(_))
        ));
    }
}
