//! The vocabulary of subscriptions: ids, symbols, data types, frequencies and
//! filters, each validated as PROTOCOL.md says.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest symbol the protocol allows.
pub const MAX_SYMBOL_LEN: usize = 20;
/// Longest subscription id the protocol allows.
pub const MAX_SUBSCRIPTION_ID_LEN: usize = 64;

/// A ticker symbol in the protocol's normal form: 1–20 characters of
/// `A–Z 0–9 . - / _`. It is `Copy` and stored inline, so delivering a tick
/// allocates nothing for it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    len: u8,
    bytes: [u8; MAX_SYMBOL_LEN],
}

/// A string that is not a valid symbol (an excerpt of it, when long).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a symbol: 1-20 characters of A-Z 0-9 . - / _")]
pub struct InvalidSymbol(pub String);

impl Symbol {
    /// Accepts only the normal form, as a server does (`invalid_symbol` otherwise).
    pub fn parse(s: &str) -> Result<Self, InvalidSymbol> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > MAX_SYMBOL_LEN || !b.iter().all(|&c| is_symbol_byte(c)) {
            return Err(InvalidSymbol(crate::excerpt::excerpt(s)));
        }
        let mut bytes = [0; MAX_SYMBOL_LEN];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Self {
            len: b.len() as u8,
            bytes,
        })
    }

    /// Trims and upper-cases `s`, then checks it, as a client does before sending.
    pub fn normalize(s: &str) -> Result<Self, InvalidSymbol> {
        let t = s.trim();
        if t.len() > MAX_SYMBOL_LEN {
            return Err(InvalidSymbol(crate::excerpt::excerpt(s)));
        }
        let mut bytes = [0; MAX_SYMBOL_LEN];
        for (dst, src) in bytes.iter_mut().zip(t.bytes()) {
            *dst = src.to_ascii_uppercase();
        }
        Self::parse(
            std::str::from_utf8(&bytes[..t.len()])
                .map_err(|_| InvalidSymbol(crate::excerpt::excerpt(s)))?,
        )
        .map_err(|_| InvalidSymbol(crate::excerpt::excerpt(s)))
    }

    /// The symbol as text.
    pub fn as_str(&self) -> &str {
        // Construction admits only ASCII, so this never fails.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

fn is_symbol_byte(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'/' | b'_')
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::ops::Deref for Symbol {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for Symbol {
    type Err = InvalidSymbol;
    fn from_str(s: &str) -> Result<Self, InvalidSymbol> {
        Self::normalize(s)
    }
}

impl Serialize for Symbol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A subscription's id: 1–64 characters of `A–Z a–z 0–9 _ - . :`. Cheap to
/// clone (shared), and it borrows as `&str` for look-ups.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(Arc<str>);

/// A string that is not a valid subscription id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a subscription id: 1-64 characters of A-Z a-z 0-9 _ - . :")]
pub struct InvalidSubscriptionId(pub String);

impl SubscriptionId {
    /// Checks `id` against the protocol's rule.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InvalidSubscriptionId> {
        let id = id.as_ref();
        if is_valid_subscription_id(id) {
            Ok(Self(Arc::from(id)))
        } else {
            Err(InvalidSubscriptionId(id.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `id` is 1–64 characters of `A–Z a–z 0–9 _ - . :`.
pub fn is_valid_subscription_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SUBSCRIPTION_ID_LEN
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':'))
}

impl fmt::Debug for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for SubscriptionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SubscriptionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for SubscriptionId {
    type Err = InvalidSubscriptionId;
    fn from_str(s: &str) -> Result<Self, InvalidSubscriptionId> {
        Self::new(s)
    }
}

impl TryFrom<&str> for SubscriptionId {
    type Error = InvalidSubscriptionId;
    fn try_from(s: &str) -> Result<Self, InvalidSubscriptionId> {
        Self::new(s)
    }
}

impl TryFrom<String> for SubscriptionId {
    type Error = InvalidSubscriptionId;
    fn try_from(s: String) -> Result<Self, InvalidSubscriptionId> {
        Self::new(s)
    }
}

impl Serialize for SubscriptionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SubscriptionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::new(&*s).map_err(serde::de::Error::custom)
    }
}

/// A kind of market data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// Last trade price.
    Price,
    /// Cumulative traded volume.
    Volume,
    /// Top-of-book snapshot, up to 10 levels a side.
    #[serde(rename = "orderbook")]
    OrderBook,
}

impl DataType {
    /// Every data type, in protocol order.
    pub const ALL: [DataType; 3] = [DataType::Price, DataType::Volume, DataType::OrderBook];

    /// The protocol's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Price => "price",
            Self::Volume => "volume",
            Self::OrderBook => "orderbook",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no data type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a data type: use price, volume or orderbook")]
pub struct InvalidDataType(pub String);

impl FromStr for DataType {
    type Err = InvalidDataType;
    fn from_str(s: &str) -> Result<Self, InvalidDataType> {
        match s {
            "price" => Ok(Self::Price),
            "volume" => Ok(Self::Volume),
            "orderbook" => Ok(Self::OrderBook),
            other => Err(InvalidDataType(other.to_owned())),
        }
    }
}

/// How often a subscription's updates come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpdateFrequency {
    /// Every event.
    #[default]
    #[serde(rename = "realtime")]
    Realtime,
    /// At most one message per symbol and data type each second.
    #[serde(rename = "1s")]
    OneSecond,
    /// At most one message per symbol and data type every five seconds.
    #[serde(rename = "5s")]
    FiveSeconds,
    /// At most one message per symbol and data type each minute.
    #[serde(rename = "1m")]
    OneMinute,
}

impl UpdateFrequency {
    /// The protocol's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Realtime => "realtime",
            Self::OneSecond => "1s",
            Self::FiveSeconds => "5s",
            Self::OneMinute => "1m",
        }
    }

    /// The conflation interval, or `None` for real time.
    pub fn interval(self) -> Option<Duration> {
        match self {
            Self::Realtime => None,
            Self::OneSecond => Some(Duration::from_secs(1)),
            Self::FiveSeconds => Some(Duration::from_secs(5)),
            Self::OneMinute => Some(Duration::from_secs(60)),
        }
    }
}

impl fmt::Display for UpdateFrequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no update frequency.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an update frequency: use realtime, 1s, 5s or 1m")]
pub struct InvalidFrequency(pub String);

impl FromStr for UpdateFrequency {
    type Err = InvalidFrequency;
    fn from_str(s: &str) -> Result<Self, InvalidFrequency> {
        match s {
            "realtime" => Ok(Self::Realtime),
            "1s" => Ok(Self::OneSecond),
            "5s" => Ok(Self::FiveSeconds),
            "1m" => Ok(Self::OneMinute),
            other => Err(InvalidFrequency(other.to_owned())),
        }
    }
}

/// Price bounds, inclusive: a symbol's events are delivered only while its
/// last price lies within them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Lowest price delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_price: Option<f64>,
    /// Highest price delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price: Option<f64>,
}

/// Why [`Filters`] are unusable.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidFilter {
    /// A bound is NaN or infinite.
    #[error("{field} must be a finite number")]
    NotFinite {
        /// `min_price` or `max_price`.
        field: &'static str,
    },
    /// `min_price` is above `max_price`.
    #[error("min_price {min} is above max_price {max}")]
    MinAboveMax {
        /// The lower bound.
        min: f64,
        /// The upper bound.
        max: f64,
    },
}

impl Filters {
    /// Whether no bound is set.
    pub fn is_empty(&self) -> bool {
        self.min_price.is_none() && self.max_price.is_none()
    }

    /// Checks the bounds: finite, and min ≤ max.
    pub fn validate(&self) -> Result<(), InvalidFilter> {
        for (field, v) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(InvalidFilter::NotFinite { field });
            }
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price)
            && min > max
        {
            return Err(InvalidFilter::MinAboveMax { min, max });
        }
        Ok(())
    }

    /// Whether `price` passes the bounds (inclusive).
    pub fn admits(&self, price: f64) -> bool {
        self.min_price.is_none_or(|min| price >= min)
            && self.max_price.is_none_or(|max| price <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols() {
        assert_eq!(Symbol::normalize(" brk.b ").unwrap().as_str(), "BRK.B");
        assert!(Symbol::parse("aapl").is_err());
        assert!(Symbol::parse("").is_err());
        assert!(Symbol::parse("ABCDEFGHIJKLMNOPQRSTU").is_err());
        assert!(Symbol::parse("ABCDEFGHIJKLMNOPQRST").is_ok());
        assert!(Symbol::normalize("é").is_err());
        assert!(Symbol::normalize("A B").is_err());
        assert_eq!(format!("{:?}", Symbol::parse("X/Y").unwrap()), "\"X/Y\"");
    }

    #[test]
    fn ids() {
        assert!(SubscriptionId::new("main:1.a-b_c").is_ok());
        assert!(SubscriptionId::new("").is_err());
        assert!(SubscriptionId::new("a b").is_err());
        assert!(SubscriptionId::new("x".repeat(65)).is_err());
        assert!(SubscriptionId::new("x".repeat(64)).is_ok());
    }

    #[test]
    fn enums_parse_from_the_seeds_strings() {
        for s in ["price", "volume", "orderbook"] {
            assert_eq!(s.parse::<DataType>().unwrap().as_str(), s);
            assert_eq!(
                serde_json::to_string(&s.parse::<DataType>().unwrap()).unwrap(),
                format!("\"{s}\"")
            );
        }
        for s in ["realtime", "1s", "5s", "1m"] {
            let f: UpdateFrequency = s.parse().unwrap();
            assert_eq!(f.as_str(), s);
            assert_eq!(
                serde_json::from_str::<UpdateFrequency>(&format!("\"{s}\"")).unwrap(),
                f
            );
        }
        assert!("tick".parse::<DataType>().is_err());
        assert!("2s".parse::<UpdateFrequency>().is_err());
    }

    #[test]
    fn filters() {
        let f = Filters {
            min_price: Some(100.0),
            max_price: Some(1000.0),
        };
        assert!(f.admits(100.0) && f.admits(1000.0) && !f.admits(99.99) && !f.admits(1000.01));
        assert!(Filters::default().admits(-1.0));
        assert!(
            Filters {
                min_price: Some(f64::NAN),
                max_price: None
            }
            .validate()
            .is_err()
        );
        assert!(serde_json::from_str::<Filters>(r#"{"min_prize":1}"#).is_err());
    }
}
