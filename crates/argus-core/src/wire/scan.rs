//! The fast path for data messages: a scanner that reads a `price`,
//! `volume` or `orderbook` frame in one pass, for the shapes a server
//! writes, and gives up on anything else. It tries the reference server's
//! exact layout first (its member order, no whitespace: fixed literals
//! between the values, no key matching), then any member order with any
//! whitespace.
//!
//! It accepts a strict subset of what serde_json accepts for the same
//! struct, and yields the same value: any member it does not expect (an
//! unknown or repeated key, an escaped string, a number that does not fit,
//! trailing text) makes it return `None`, and [`ServerMessage::decode`]
//! then parses the frame with serde_json, which either accepts it or names
//! the error. `wire_properties.rs` checks the agreement on generated and
//! mutated frames.
//!
//! Numbers: integers are `0` or a digit 1–9 followed by digits, within
//! `u64`; floats follow JSON's grammar and are converted by `str::parse`,
//! which rounds correctly, as serde_json does with `float_roundtrip`.
//!
//! [`ServerMessage::decode`]: super::ServerMessage::decode

use std::borrow::Cow;

use super::{Level, OrderBookSnapshot, PriceTick, VolumeTick};

/// The bytes that end the plain run of a string: the closing quote, and
/// what the scanner leaves to serde_json (escapes, control characters).
static STOPS_STRING: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// A cursor over a frame's bytes.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Consumes `byte` (after whitespace).
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string without escapes or control characters (after whitespace).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = self.text.as_bytes().get(start..)?;
        let len = rest.iter().position(|&b| STOPS_STRING[usize::from(b)])?;
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Both ends are ASCII, so these are char boundaries.
        self.text.get(start..start + len)
    }

    /// The digits of a JSON integer part: `0`, or 1–9 then digits.
    fn integer_part(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        match bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.at += 1;
                while bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
            }
            _ => return None,
        }
        Some(())
    }

    /// An unsigned integer that fits in `u64`, not followed by a fraction
    /// or exponent (after whitespace).
    fn u64(&mut self) -> Option<u64> {
        self.skip_ws();
        let start = self.at;
        self.integer_part()?;
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut n: u64 = 0;
        for &d in &self.text.as_bytes()[start..self.at] {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        Some(n)
    }

    /// A finite JSON number (after whitespace).
    fn f64(&mut self) -> Option<f64> {
        self.skip_ws();
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        self.integer_part()?;
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.digits()?;
        }
        // Only ASCII was consumed: both ends are char boundaries.
        let text = self.text.get(start..self.at)?;
        exact_decimal(text)
            .or_else(|| text.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    }

    /// One or more digits.
    fn digits(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        while bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        (self.at > start).then_some(())
    }

    /// `[[price, size], ...]` (after whitespace).
    fn levels(&mut self) -> Option<Vec<Level>> {
        self.eat(b'[')?;
        let mut levels = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(levels);
        }
        loop {
            self.eat(b'[')?;
            let price = self.f64()?;
            self.eat(b',')?;
            let size = self.u64()?;
            self.eat(b']')?;
            levels.push(Level { price, size });
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(levels);
                }
                _ => return None,
            }
        }
    }

    /// Consumes `literal` exactly (no whitespace skipped).
    fn literal(&mut self, literal: &str) -> Option<()> {
        let rest = self.text.as_bytes().get(self.at..)?;
        rest.starts_with(literal.as_bytes())
            .then(|| self.at += literal.len())
    }

    /// Nothing left.
    fn end(&self) -> Option<()> {
        (self.at == self.text.len()).then_some(())
    }

    /// Reads the object member by member, handing each key to `member`,
    /// which reads the value (or returns `None` to give up). Ends at the
    /// closing brace, which only whitespace may follow.
    fn object(mut self, mut member: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.skip_ws();
        if self.peek() != Some(b'}') {
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                member(&mut self, key)?;
                self.skip_ws();
                match self.peek()? {
                    b',' => self.at += 1,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.at += 1;
        self.skip_ws();
        (self.at == self.text.len()).then_some(())
    }
}

/// Powers of ten that `f64` holds exactly.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A plain decimal (`-`, digits, `.`, digits; already checked to be JSON)
/// whose digits fit in 2^53 and whose fraction has at most 22 digits: the
/// digits and the power of ten are then exact in `f64`, and one division
/// rounds correctly (Clinger's fast path), as `str::parse` would. `None`
/// for anything else.
fn exact_decimal(text: &str) -> Option<f64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut mantissa: u64 = 0;
    let mut fraction_digits = None;
    for (i, b) in digits.bytes().enumerate() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                if mantissa > 1 << 53 {
                    return None;
                }
            }
            b'.' => fraction_digits = Some(digits.len() - i - 1),
            _ => return None,
        }
    }
    let value = mantissa as f64 / *EXACT_POWERS.get(fraction_digits.unwrap_or(0))?;
    Some(if negative { -value } else { value })
}

/// Stores a field's value, giving up if the key came before.
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

/// The members every data message has.
#[derive(Default)]
struct Common<'a> {
    kind: Option<&'a str>,
    sub: Option<&'a str>,
    seq: Option<u64>,
    symbol: Option<&'a str>,
    timestamp: Option<&'a str>,
}

impl<'a> Common<'a> {
    /// Reads the value of `key` when it is a common member: `Some(true)`
    /// when read, `Some(false)` when `key` is another member, `None` to
    /// give up.
    fn member(&mut self, s: &mut Scanner<'a>, key: &str) -> Option<bool> {
        match key {
            "type" => once(&mut self.kind, s.string())?,
            "sub" => once(&mut self.sub, s.string())?,
            "seq" => once(&mut self.seq, s.u64())?,
            "symbol" => once(&mut self.symbol, s.string())?,
            "timestamp" => once(&mut self.timestamp, s.string())?,
            _ => return Some(false),
        }
        Some(true)
    }
}

/// A `price` frame exactly as the reference server lays it out (members in
/// its order, no whitespace), or `None`.
fn price_as_written(text: &str) -> Option<PriceTick<'_>> {
    let mut s = Scanner::new(text);
    s.literal(r#"{"type":"price","sub":"#)?;
    let sub = s.string()?;
    s.literal(r#","seq":"#)?;
    let seq = s.u64()?;
    s.literal(r#","symbol":"#)?;
    let symbol = s.string()?;
    s.literal(r#","price":"#)?;
    let price = s.f64()?;
    s.literal(r#","timestamp":"#)?;
    let timestamp = s.string()?;
    s.literal("}")?;
    s.end()?;
    Some(PriceTick {
        sub: Cow::Borrowed(sub),
        seq,
        symbol: Cow::Borrowed(symbol),
        price,
        timestamp: Cow::Borrowed(timestamp),
    })
}

/// A `volume` frame exactly as the reference server lays it out, or `None`.
fn volume_as_written(text: &str) -> Option<VolumeTick<'_>> {
    let mut s = Scanner::new(text);
    s.literal(r#"{"type":"volume","sub":"#)?;
    let sub = s.string()?;
    s.literal(r#","seq":"#)?;
    let seq = s.u64()?;
    s.literal(r#","symbol":"#)?;
    let symbol = s.string()?;
    s.literal(r#","volume":"#)?;
    let volume = s.u64()?;
    s.literal(r#","timestamp":"#)?;
    let timestamp = s.string()?;
    s.literal("}")?;
    s.end()?;
    Some(VolumeTick {
        sub: Cow::Borrowed(sub),
        seq,
        symbol: Cow::Borrowed(symbol),
        volume,
        timestamp: Cow::Borrowed(timestamp),
    })
}

/// An `orderbook` frame exactly as the reference server lays it out, or
/// `None`.
fn order_book_as_written(text: &str) -> Option<OrderBookSnapshot<'_>> {
    let mut s = Scanner::new(text);
    s.literal(r#"{"type":"orderbook","sub":"#)?;
    let sub = s.string()?;
    s.literal(r#","seq":"#)?;
    let seq = s.u64()?;
    s.literal(r#","symbol":"#)?;
    let symbol = s.string()?;
    s.literal(r#","bids":"#)?;
    let bids = s.levels()?;
    s.literal(r#","asks":"#)?;
    let asks = s.levels()?;
    s.literal(r#","timestamp":"#)?;
    let timestamp = s.string()?;
    s.literal("}")?;
    s.end()?;
    Some(OrderBookSnapshot {
        sub: Cow::Borrowed(sub),
        seq,
        symbol: Cow::Borrowed(symbol),
        bids,
        asks,
        timestamp: Cow::Borrowed(timestamp),
    })
}

/// A `price` frame, or `None` to leave it to serde_json: the server's own
/// layout first (one pass, no key matching), then any member order and
/// whitespace.
pub(super) fn price(text: &str) -> Option<PriceTick<'_>> {
    if let Some(tick) = price_as_written(text) {
        return Some(tick);
    }
    let mut common = Common::default();
    let mut price = None;
    Scanner::new(text).object(|s, key| {
        if common.member(s, key)? {
            return Some(());
        }
        match key {
            "price" => once(&mut price, s.f64()),
            _ => None,
        }
    })?;
    Some(PriceTick {
        sub: Cow::Borrowed(common.sub?),
        seq: common.seq?,
        symbol: Cow::Borrowed(common.symbol?),
        price: price?,
        timestamp: Cow::Borrowed(common.timestamp?),
    })
}

/// A `volume` frame, or `None` to leave it to serde_json (layouts as for
/// [`price`]).
pub(super) fn volume(text: &str) -> Option<VolumeTick<'_>> {
    if let Some(tick) = volume_as_written(text) {
        return Some(tick);
    }
    let mut common = Common::default();
    let mut volume = None;
    Scanner::new(text).object(|s, key| {
        if common.member(s, key)? {
            return Some(());
        }
        match key {
            "volume" => once(&mut volume, s.u64()),
            _ => None,
        }
    })?;
    Some(VolumeTick {
        sub: Cow::Borrowed(common.sub?),
        seq: common.seq?,
        symbol: Cow::Borrowed(common.symbol?),
        volume: volume?,
        timestamp: Cow::Borrowed(common.timestamp?),
    })
}

/// An `orderbook` frame, or `None` to leave it to serde_json (layouts as
/// for [`price`]).
pub(super) fn order_book(text: &str) -> Option<OrderBookSnapshot<'_>> {
    if let Some(book) = order_book_as_written(text) {
        return Some(book);
    }
    let mut common = Common::default();
    let (mut bids, mut asks) = (None, None);
    Scanner::new(text).object(|s, key| {
        if common.member(s, key)? {
            return Some(());
        }
        match key {
            "bids" => once(&mut bids, s.levels()),
            "asks" => once(&mut asks, s.levels()),
            _ => None,
        }
    })?;
    Some(OrderBookSnapshot {
        sub: Cow::Borrowed(common.sub?),
        seq: common.seq?,
        symbol: Cow::Borrowed(common.symbol?),
        bids: bids?,
        asks: asks?,
        timestamp: Cow::Borrowed(common.timestamp?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_server_writes() {
        let p = price(r#"{"type":"price","sub":"main","seq":17,"symbol":"AAPL","price":189.53,"timestamp":"2026-11-24T09:49:56.123456Z"}"#).unwrap();
        assert_eq!(
            (&*p.sub, p.seq, &*p.symbol, p.price),
            ("main", 17, "AAPL", 189.53)
        );
        let v = volume(
            " { \"volume\" : 0 , \"seq\":1,\"sub\":\"s\",\"symbol\":\"X\",\"timestamp\":\"t\"}\n",
        )
        .unwrap();
        assert_eq!(v.volume, 0);
        let b = order_book(r#"{"type":"orderbook","sub":"s","seq":2,"symbol":"X","bids":[[1.5,2],[1e2,0]],"asks":[],"timestamp":"t"}"#).unwrap();
        assert_eq!(
            b.bids,
            [
                Level {
                    price: 1.5,
                    size: 2
                },
                Level {
                    price: 100.0,
                    size: 0
                }
            ]
        );
        assert!(b.asks.is_empty());
    }

    #[test]
    fn gives_up_on_what_it_does_not_expect() {
        let base = r#""sub":"s","seq":1,"symbol":"X","timestamp":"t""#;
        for body in [
            format!(r#"{{{base},"price":1.5,"extra":1}}"#), // unknown key
            format!(r#"{{{base},"price":1.5,"price":2}}"#), // repeated key
            format!(r#"{{{base},"price":1e999}}"#),         // not finite
            format!(r#"{{{base},"price":01}}"#),            // leading zero
            format!(r#"{{{base},"price":1.}}"#),            // bare point
            format!(r#"{{{base},"price":"1"}}"#),           // string
            format!(r#"{{{base},"price":1.5}} x"#),         // trailing text
            format!(r#"{{{base},"price":1.5,}}"#),          // trailing comma
            format!(r#"{{{base}}}"#),                       // missing price
            r#"{"sub":"\u0073","seq":1,"symbol":"X","price":1,"timestamp":"t"}"#.to_owned(),
        ] {
            assert!(price(&body).is_none(), "{body}");
        }
        let v = r#"{"sub":"s","seq":18446744073709551616,"symbol":"X","volume":1,"timestamp":"t"}"#;
        assert!(volume(v).is_none(), "u64 overflow");
        let v = r#"{"sub":"s","seq":1,"symbol":"X","volume":1.0,"timestamp":"t"}"#;
        assert!(volume(v).is_none(), "float for an integer");
        let b = r#"{"sub":"s","seq":1,"symbol":"X","bids":[[1,2,3]],"asks":[],"timestamp":"t"}"#;
        assert!(order_book(b).is_none(), "three-element level");
    }
}
