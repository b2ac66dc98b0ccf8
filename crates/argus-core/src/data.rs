//! Market data as the application receives it: owned, typed, and cheap.
//!
//! A [`MarketData`] is built from a decoded frame without allocating for
//! prices and volumes: the symbol is stored inline ([`Symbol`]), the
//! subscription id is shared ([`SubscriptionId`]), and the timestamp is parsed
//! into a [`Timestamp`].

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

use crate::subscription::{DataType, SubscriptionId, Symbol};
use crate::wire::{self, Level};

/// A point in time as the server stamped it: nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i128);

/// A string that is not an RFC 3339 UTC timestamp.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an RFC 3339 UTC timestamp")]
pub struct InvalidTimestamp(pub String);

impl Timestamp {
    /// Parses RFC 3339 UTC (`2026-11-24T09:49:56.123Z`), with any fraction.
    pub fn parse(s: &str) -> Result<Self, InvalidTimestamp> {
        if let Some(nanos) = parse_utc_fast(s.as_bytes()) {
            return Ok(Self(nanos));
        }
        let t = humantime::parse_rfc3339(s)
            .map_err(|_| InvalidTimestamp(crate::excerpt::excerpt(s)))?;
        Ok(Self::from_system_time(t))
    }

    /// The timestamp of a [`SystemTime`].
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(d.as_nanos() as i128),
            Err(e) => Self(-(e.duration().as_nanos() as i128)),
        }
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(self) -> i128 {
        self.0
    }

    /// The same instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        let magnitude =
            Duration::from_nanos(self.0.unsigned_abs().min(u128::from(u64::MAX)) as u64);
        if self.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 UTC, with as many fraction digits as the value needs (3, 6 or 9).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.to_system_time();
        let n = self.0.rem_euclid(1_000_000_000);
        if n % 1_000_000 == 0 {
            write!(f, "{}", humantime::format_rfc3339_millis(t))
        } else if n % 1_000 == 0 {
            write!(f, "{}", humantime::format_rfc3339_micros(t))
        } else {
            write!(f, "{}", humantime::format_rfc3339_nanos(t))
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses the one form servers write on the hot path,
/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, without allocating; `None` sends the
/// caller to the general parser.
fn parse_utc_fast(b: &[u8]) -> Option<i128> {
    if b.len() < 20
        || b.len() > 30
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let two = |i: usize| two_digits(b, i);
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute) = (two(11)?, two(14)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
    {
        return None;
    }
    let within = seconds_and_fraction(b)?;
    // Days since 1970-01-01 of a proleptic Gregorian date (civil-from-days inverse).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60;
    Some(i128::from(secs) * 1_000_000_000 + within)
}

/// Parses a stream of timestamps, remembering the last one's date, hour and
/// minute: consecutive ticks share them, so most parses read only the seconds
/// and the fraction.
#[derive(Clone, Debug, Default)]
pub(crate) struct TimestampParser {
    /// `YYYY-MM-DDTHH:MM` of the last parse, and its nanoseconds at `:00`.
    minute: Option<([u8; 16], i128)>,
}

impl TimestampParser {
    pub(crate) fn parse(&mut self, s: &str) -> Result<Timestamp, InvalidTimestamp> {
        let b = s.as_bytes();
        if let Some((prefix, base)) = &self.minute {
            let same_minute =
                b.get(..16).and_then(|p| <&[u8; 16]>::try_from(p).ok()) == Some(prefix);
            if same_minute && let Some(within) = seconds_and_fraction(b) {
                return Ok(Timestamp(base + within));
            }
        }
        let t = Timestamp::parse(s)?;
        if let (Some(within), Some(prefix)) = (seconds_and_fraction(b), b.get(..16)) {
            let mut key = [0; 16];
            key.copy_from_slice(prefix);
            self.minute = Some((key, t.0 - within));
        }
        Ok(t)
    }
}

/// Two ASCII digits at `i`, checked.
fn two_digits(b: &[u8], i: usize) -> Option<i64> {
    let (hi, lo) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
    (hi < 10 && lo < 10).then_some(i64::from(hi * 10 + lo))
}

/// The nanoseconds of `:SS[.fraction]Z` at offset 16 of a 20–30 byte
/// timestamp, or `None` when that part is not of this form.
fn seconds_and_fraction(b: &[u8]) -> Option<i128> {
    if b.len() < 20 || b.len() > 30 || b[16] != b':' || b[b.len() - 1] != b'Z' {
        return None;
    }
    let second = two_digits(b, 17)?;
    if second > 59 {
        return None;
    }
    let fraction = match b.len() {
        20 => 0,
        n if b[19] == b'.' && n > 21 => {
            let mut fraction = 0i64;
            for &c in &b[20..n - 1] {
                let d = c.wrapping_sub(b'0');
                if d >= 10 {
                    return None;
                }
                fraction = fraction * 10 + i64::from(d);
            }
            const SCALE: [i64; 9] = [
                1,
                10,
                100,
                1_000,
                10_000,
                100_000,
                1_000_000,
                10_000_000,
                100_000_000,
            ];
            fraction * SCALE[30 - n]
        }
        _ => return None,
    };
    Some(i128::from(second) * 1_000_000_000 + i128::from(fraction))
}

/// A last-trade price.
#[derive(Clone, Debug, PartialEq)]
pub struct Price {
    /// The subscription it answers.
    pub subscription: SubscriptionId,
    /// Sequence number in the session.
    pub seq: u64,
    /// The symbol.
    pub symbol: Symbol,
    /// Last trade price.
    pub price: f64,
    /// When the server produced it.
    pub timestamp: Timestamp,
}

/// A cumulative traded volume.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    /// The subscription it answers.
    pub subscription: SubscriptionId,
    /// Sequence number in the session.
    pub seq: u64,
    /// The symbol.
    pub symbol: Symbol,
    /// Cumulative volume since the server started.
    pub volume: u64,
    /// When the server produced it.
    pub timestamp: Timestamp,
}

/// A top-of-book snapshot, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderBook {
    /// The subscription it answers.
    pub subscription: SubscriptionId,
    /// Sequence number in the session.
    pub seq: u64,
    /// The symbol.
    pub symbol: Symbol,
    /// Bids, best (highest) first.
    pub bids: Vec<Level>,
    /// Asks, best (lowest) first.
    pub asks: Vec<Level>,
    /// When the server produced it.
    pub timestamp: Timestamp,
}

/// One market-data message. Serialises with the protocol's field names
/// (`type`, `sub`, `seq`, `symbol`, …), so it can be printed as the wire shows it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MarketData {
    /// A price.
    Price(Price),
    /// A volume.
    Volume(Volume),
    /// An order book.
    OrderBook(OrderBook),
}

macro_rules! common {
    ($self:ident, $field:ident) => {
        match $self {
            MarketData::Price(m) => &m.$field,
            MarketData::Volume(m) => &m.$field,
            MarketData::OrderBook(m) => &m.$field,
        }
    };
}

impl MarketData {
    /// Which data type it is.
    pub fn data_type(&self) -> DataType {
        match self {
            Self::Price(_) => DataType::Price,
            Self::Volume(_) => DataType::Volume,
            Self::OrderBook(_) => DataType::OrderBook,
        }
    }

    /// The subscription it answers.
    pub fn subscription(&self) -> &SubscriptionId {
        common!(self, subscription)
    }

    /// Sequence number in the session.
    pub fn seq(&self) -> u64 {
        *common!(self, seq)
    }

    /// The symbol.
    pub fn symbol(&self) -> Symbol {
        *common!(self, symbol)
    }

    /// When the server produced it.
    pub fn timestamp(&self) -> Timestamp {
        *common!(self, timestamp)
    }

    /// The price, for a price message.
    pub fn price(&self) -> Option<f64> {
        match self {
            Self::Price(p) => Some(p.price),
            _ => None,
        }
    }

    /// Builds the owned message from a decoded frame, or `None` when `msg` is
    /// not a data message.
    pub fn from_wire(
        msg: &wire::ServerMessage<'_>,
        subscription: SubscriptionId,
    ) -> Option<Result<Self, InvalidData>> {
        Self::from_wire_with(msg, subscription, &mut TimestampParser::default())
    }

    pub(crate) fn from_wire_with(
        msg: &wire::ServerMessage<'_>,
        subscription: SubscriptionId,
        clock: &mut TimestampParser,
    ) -> Option<Result<Self, InvalidData>> {
        let mut build = |symbol: &str, ts: &str| -> Result<(Symbol, Timestamp), InvalidData> {
            let symbol = Symbol::parse(symbol).map_err(InvalidData::Symbol)?;
            let timestamp = clock.parse(ts).map_err(InvalidData::Timestamp)?;
            Ok((symbol, timestamp))
        };
        Some(match msg {
            wire::ServerMessage::Price(p) => {
                build(&p.symbol, &p.timestamp).map(|(symbol, timestamp)| {
                    Self::Price(Price {
                        subscription,
                        seq: p.seq,
                        symbol,
                        price: p.price,
                        timestamp,
                    })
                })
            }
            wire::ServerMessage::Volume(v) => {
                build(&v.symbol, &v.timestamp).map(|(symbol, timestamp)| {
                    Self::Volume(Volume {
                        subscription,
                        seq: v.seq,
                        symbol,
                        volume: v.volume,
                        timestamp,
                    })
                })
            }
            wire::ServerMessage::OrderBook(b)
                if b.bids.len() > MAX_BOOK_LEVELS || b.asks.len() > MAX_BOOK_LEVELS =>
            {
                Err(InvalidData::TooManyLevels {
                    bids: b.bids.len(),
                    asks: b.asks.len(),
                })
            }
            wire::ServerMessage::OrderBook(b) => {
                build(&b.symbol, &b.timestamp).map(|(symbol, timestamp)| {
                    Self::OrderBook(OrderBook {
                        subscription,
                        seq: b.seq,
                        symbol,
                        bids: b.bids.clone(),
                        asks: b.asks.clone(),
                        timestamp,
                    })
                })
            }
            _ => return None,
        })
    }
}

/// A data message whose fields parse but do not make sense.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidData {
    /// The symbol is not in normal form.
    #[error(transparent)]
    Symbol(crate::subscription::InvalidSymbol),
    /// The timestamp is not RFC 3339 UTC.
    #[error(transparent)]
    Timestamp(InvalidTimestamp),
    /// An order book deeper than the protocol's [`MAX_BOOK_LEVELS`] a side.
    /// The decoder stops reading a side one level past the limit, so the
    /// counts say "at least"; nothing deeper is copied.
    #[error(
        "order book of at least {bids} bids and {asks} asks; the protocol allows {MAX_BOOK_LEVELS} a side"
    )]
    TooManyLevels {
        /// Its bid levels read (one past the limit, when deeper).
        bids: usize,
        /// Its ask levels read (one past the limit, when deeper).
        asks: usize,
    },
}

/// The most levels a side an order book may have (the protocol's depth).
pub const MAX_BOOK_LEVELS: usize = 10;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum WireShape<'a> {
    Price {
        sub: &'a str,
        seq: u64,
        symbol: &'a str,
        price: f64,
        timestamp: Timestamp,
    },
    Volume {
        sub: &'a str,
        seq: u64,
        symbol: &'a str,
        volume: u64,
        timestamp: Timestamp,
    },
    #[serde(rename = "orderbook")]
    OrderBook {
        sub: &'a str,
        seq: u64,
        symbol: &'a str,
        bids: &'a [Level],
        asks: &'a [Level],
        timestamp: Timestamp,
    },
}

impl Serialize for MarketData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Price(p) => WireShape::Price {
                sub: p.subscription.as_str(),
                seq: p.seq,
                symbol: p.symbol.as_str(),
                price: p.price,
                timestamp: p.timestamp,
            },
            Self::Volume(v) => WireShape::Volume {
                sub: v.subscription.as_str(),
                seq: v.seq,
                symbol: v.symbol.as_str(),
                volume: v.volume,
                timestamp: v.timestamp,
            },
            Self::OrderBook(b) => WireShape::OrderBook {
                sub: b.subscription.as_str(),
                seq: b.seq,
                symbol: b.symbol.as_str(),
                bids: &b.bids,
                asks: &b.asks,
                timestamp: b.timestamp,
            },
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_their_precision() {
        for s in [
            "2026-11-24T09:49:56.123Z",
            "2026-11-24T09:49:56.123456Z",
            "2026-11-24T09:49:56.123456789Z",
        ] {
            assert_eq!(Timestamp::parse(s).unwrap().to_string(), s);
        }
        assert!(Timestamp::parse("yesterday").is_err());
        for bad in [
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-24T24:00:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
        // The fast path agrees with the general parser.
        for s in [
            "2024-02-29T23:59:59.999999999Z",
            "2000-03-01T00:00:00Z",
            "2038-01-19T03:14:08.5Z",
            "9999-12-31T23:59:59Z",
        ] {
            let general = Timestamp::from_system_time(humantime::parse_rfc3339(s).unwrap());
            assert_eq!(Timestamp::parse(s).unwrap(), general, "{s}");
            assert_eq!(
                parse_utc_fast(s.as_bytes()),
                Some(general.unix_nanos()),
                "{s}"
            );
        }
    }

    #[test]
    fn the_cached_parser_agrees_with_the_plain_one() {
        let mut parser = TimestampParser::default();
        for s in [
            "2026-11-24T09:49:56.123Z",
            "2026-11-24T09:49:57.5Z",
            "2026-11-24T09:49:59Z",
            "2026-11-24T09:50:00.000001Z",
            "2026-11-24T09:50:61Z",
            "2026-11-24T09:50:01.123456789Z",
            "2026-11-25T09:50:01.1Z",
            "2026-11-25T09:50:0x.1Z",
        ] {
            assert_eq!(parser.parse(s), Timestamp::parse(s), "{s}");
        }
    }

    #[test]
    fn serialises_like_the_wire() {
        let text = r#"{"type":"price","sub":"main","seq":17,"symbol":"AAPL","price":189.53,"timestamp":"2026-11-24T09:49:56.123Z"}"#;
        let msg = wire::ServerMessage::decode(text).unwrap();
        let data = MarketData::from_wire(&msg, SubscriptionId::new("main").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(serde_json::to_string(&data).unwrap(), text);
        assert_eq!(
            (data.seq(), data.symbol().as_str(), data.price()),
            (17, "AAPL", Some(189.53))
        );
    }
}
