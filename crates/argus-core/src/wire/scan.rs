//! The fast path for data messages: one pass over the frame, members in
//! any order, any JSON whitespace, keys matched by their first byte and
//! their bytes, the `type` read wherever it stands.
//!
//! It accepts a strict subset of what serde_json accepts for the same
//! struct, and yields the same value: anything it does not expect (an
//! unknown or repeated member, an escaped key, a number that does not fit,
//! a lone surrogate, trailing text) makes it answer [`Scan::Unsure`], and
//! [`ServerMessage::decode`] then parses the frame with serde_json, which
//! either accepts it or names the error, and counts it
//! ([`fallback_decodes`](super::fallback_decodes)). `wire_properties.rs`
//! checks the agreement on every layout of the corpus, mutated. One
//! deliberate difference: a side of an order book deeper than the
//! protocol's 10 levels is read to one level past the limit and the rest
//! skipped unread (the book is refused as data anyway), so a hostile book
//! costs a byte scan, not a parse and a copy of every level.
//!
//! Strings: a plain run is borrowed from the frame; a string with escapes
//! is decoded into an owned one, as serde_json does for `Cow<str>`.
//! Numbers: integers are `0` or a digit 1–9 followed by digits, within
//! `u64`; floats follow JSON's grammar, and a float of at most 19 digits
//! whose digits fit in 2^53, with a decimal exponent within ±22, is
//! converted exactly (Clinger's fast path: one correctly rounded
//! multiplication or division); the rest go to `str::parse`, which rounds
//! correctly, as serde_json does with `float_roundtrip`.
//!
//! [`ServerMessage::decode`]: super::ServerMessage::decode

use std::borrow::Cow;

use super::{Level, OrderBookSnapshot, PriceTick, ServerMessage, VolumeTick};
use crate::data::MAX_BOOK_LEVELS;

/// What the scanner made of a frame.
pub(super) enum Scan<'a> {
    /// A data message, read.
    Data(ServerMessage<'a>),
    /// An object whose `type` is not a data type: a control message.
    Other(Cow<'a, str>),
    /// Something the scanner leaves to serde_json.
    Unsure,
}

/// The bytes that end the plain run of a string: the closing quote, an
/// escape, a control character.
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

/// Powers of ten that `f64` holds exactly.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The data types, as the `type` member names them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Price,
    Volume,
    OrderBook,
}

/// Every member a data message may have, as read so far.
#[derive(Default)]
struct Members<'a> {
    kind: Option<Kind>,
    sub: Option<Cow<'a, str>>,
    seq: Option<u64>,
    symbol: Option<Cow<'a, str>>,
    timestamp: Option<Cow<'a, str>>,
    price: Option<f64>,
    volume: Option<u64>,
    bids: Option<Vec<Level>>,
    asks: Option<Vec<Level>>,
}

/// Stores a member's value; `None` (give up) when the value is not what
/// the scanner reads, or the member came before.
#[inline(always)]
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

/// A cursor over a frame's bytes.
struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Skips JSON whitespace, and returns the byte after it.
    #[inline(always)]
    fn skip_ws(&mut self) -> Option<u8> {
        let b = self.peek()?;
        if b > b' ' {
            return Some(b);
        }
        self.skip_ws_slow()
    }

    #[cold]
    fn skip_ws_slow(&mut self) -> Option<u8> {
        loop {
            let b = self.peek()?;
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
    }

    /// Consumes `byte` after whitespace.
    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.skip_ws()? == byte).then(|| self.at += 1)
    }

    /// The plain run of a string whose opening quote is consumed, up to
    /// and not including the byte that stops it: eight bytes at a time,
    /// then one at a time for the last few.
    #[inline(always)]
    fn plain_run(&mut self) -> Option<(usize, u8)> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let start = self.at;
        let mut at = start;
        while let Some(chunk) = self.bytes.get(at..at + 8) {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_le_bytes(word);
            // A high bit in each byte that is a quote, a backslash or
            // below 0x20 (and maybe in bytes above the first such byte,
            // which the lowest set bit ignores).
            let quote = w ^ (ONES * u64::from(b'"'));
            let backslash = w ^ (ONES * u64::from(b'\\'));
            let hits = (quote.wrapping_sub(ONES) & !quote
                | backslash.wrapping_sub(ONES) & !backslash
                | w.wrapping_sub(ONES * 0x20) & !w)
                & HIGHS;
            if hits != 0 {
                at += (hits.trailing_zeros() / 8) as usize;
                self.at = at;
                return Some((start, self.bytes[at]));
            }
            at += 8;
        }
        let rest = self.bytes.get(at..)?;
        let len = rest.iter().position(|&b| STOPS_STRING[usize::from(b)])?;
        self.at = at + len;
        Some((start, rest[len]))
    }

    /// A string (after whitespace): borrowed when plain, decoded when it
    /// has escapes.
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let (start, stop) = self.plain_run()?;
        if stop == b'"' {
            self.at += 1;
            // Both ends are ASCII, so these are char boundaries.
            return self.text.get(start..self.at - 1).map(Cow::Borrowed);
        }
        self.escaped(start).map(Cow::Owned)
    }

    /// The rest of a string that has escapes, from its first content byte
    /// at `start`; the cursor is on the first byte that stopped the plain
    /// run.
    #[cold]
    fn escaped(&mut self, start: usize) -> Option<String> {
        let mut out = String::with_capacity(self.at - start + 16);
        out.push_str(self.text.get(start..self.at)?);
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.at += 1;
                    let c = match self.peek()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            self.at += 1;
                            let unit = self.hex4()?;
                            let c = match unit {
                                0xD800..=0xDBFF => {
                                    // A high surrogate: a low one must follow.
                                    if self.bytes.get(self.at..self.at + 2)? != b"\\u" {
                                        return None;
                                    }
                                    self.at += 2;
                                    let low = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return None;
                                    }
                                    let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                                    char::from_u32(code)?
                                }
                                _ => char::from_u32(unit)?,
                            };
                            out.push(c);
                            continue;
                        }
                        _ => return None,
                    };
                    self.at += 1;
                    out.push(c);
                }
                _ => {
                    let from = self.at;
                    let (_, stop) = self.plain_run()?;
                    if stop < 0x20 {
                        return None;
                    }
                    out.push_str(self.text.get(from..self.at)?);
                }
            }
        }
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.at..self.at + 4)?;
        let mut unit = 0;
        for &d in digits {
            unit = unit * 16 + char::from(d).to_digit(16)?;
        }
        self.at += 4;
        Some(unit)
    }

    /// Digits from the cursor, folded into `acc` (wrapping: the caller
    /// checks how many there were); returns how many.
    #[inline(always)]
    fn digits(&mut self, acc: &mut u64) -> usize {
        let start = self.at;
        while let Some(&b) = self.bytes.get(self.at) {
            let d = b.wrapping_sub(b'0');
            if d >= 10 {
                break;
            }
            *acc = acc.wrapping_mul(10).wrapping_add(u64::from(d));
            self.at += 1;
        }
        self.at - start
    }

    /// An unsigned integer that fits in `u64`, not followed by a fraction
    /// or exponent (after whitespace).
    #[inline(always)]
    fn u64(&mut self) -> Option<u64> {
        let first = self.skip_ws()?.wrapping_sub(b'0');
        if first >= 10 {
            return None;
        }
        self.at += 1;
        let mut n = u64::from(first);
        if first != 0 {
            while let Some(&b) = self.bytes.get(self.at) {
                let d = b.wrapping_sub(b'0');
                if d >= 10 {
                    break;
                }
                n = n.checked_mul(10)?.checked_add(u64::from(d))?;
                self.at += 1;
            }
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'0'..=b'9')) {
            return None;
        }
        Some(n)
    }

    /// A finite JSON number (after whitespace).
    #[inline(always)]
    fn f64(&mut self) -> Option<f64> {
        self.skip_ws()?;
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let mut mantissa = 0u64;
        let mut digits = match self.peek()? {
            b'0' => {
                self.at += 1;
                0
            }
            b'1'..=b'9' => self.digits(&mut mantissa),
            _ => return None,
        };
        let mut exponent: i64 = 0;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let n = self.digits(&mut mantissa);
            if n == 0 {
                return None;
            }
            digits += n;
            exponent = -(n as i64);
        }
        let mut exact = digits <= 19;
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            let negative_exponent = match self.peek() {
                Some(b'-') => {
                    self.at += 1;
                    true
                }
                Some(b'+') => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let mut e = 0;
            match self.digits(&mut e) {
                0 => return None,
                1..=4 => {}
                _ => exact = false,
            }
            exponent += if negative_exponent {
                -(e as i64)
            } else {
                e as i64
            };
        }
        // At most 19 digits cannot wrap a u64; up to 2^53 they are exact
        // in an f64, and so is a power of ten up to 1e22: one operation
        // then rounds correctly (Clinger's fast path).
        if exact && mantissa <= 1 << 53 && (-22..=22).contains(&exponent) {
            let m = mantissa as f64;
            let v = if exponent >= 0 {
                m * EXACT_POWERS[exponent as usize]
            } else {
                m / EXACT_POWERS[(-exponent) as usize]
            };
            return Some(if negative { -v } else { v });
        }
        // Only ASCII was consumed: both ends are char boundaries.
        self.text
            .get(start..self.at)?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    }

    /// `[[price, size], ...]` (after whitespace).
    fn levels(&mut self) -> Option<Vec<Level>> {
        self.eat(b'[')?;
        let mut levels = Vec::new();
        if self.skip_ws()? == b']' {
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
            match self.skip_ws()? {
                b',' if levels.len() > MAX_BOOK_LEVELS => {
                    // Deeper than the protocol allows: the book will be
                    // refused, so the rest is skipped, not read.
                    self.at += 1;
                    self.skip_array_rest()?;
                    return Some(levels);
                }
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(levels);
                }
                _ => return None,
            }
        }
    }

    /// Skips to the end of the array being read (numbers and nested arrays
    /// only), without reading its values.
    fn skip_array_rest(&mut self) -> Option<()> {
        let mut depth = 1usize;
        while let Some(&b) = self.bytes.get(self.at) {
            self.at += 1;
            match b {
                b'[' => depth += 1,
                b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
                b'"' | b'{' | b'}' => return None,
                _ => {}
            }
        }
        None
    }

    /// Consumes a key of `len` bytes, its closing quote and the colon.
    #[inline(always)]
    fn colon(&mut self, len: usize) -> Option<()> {
        self.at += len + 1;
        self.eat(b':')
    }

    /// Reads one member (after whitespace) into `m`: the key matched by
    /// its first byte and its bytes (closing quote included), then its
    /// value. Any other key (unknown, escaped) gives up. `Err` carries a
    /// control message's `type`.
    #[inline(always)]
    fn member(&mut self, m: &mut Members<'a>) -> Result<Option<()>, Cow<'a, str>> {
        if self.eat(b'"').is_none() {
            return Ok(None);
        }
        let Some(rest) = self.bytes.get(self.at..) else {
            return Ok(None);
        };
        Ok(match rest.first() {
            Some(b't') if rest.starts_with(b"type\"") => {
                let Some(kind) = self.colon(4).and_then(|()| self.string()) else {
                    return Ok(None);
                };
                let kind = match &*kind {
                    "price" => Kind::Price,
                    "volume" => Kind::Volume,
                    "orderbook" => Kind::OrderBook,
                    _ => return Err(kind),
                };
                once(&mut m.kind, Some(kind))
            }
            Some(b't') if rest.starts_with(b"timestamp\"") => self
                .colon(9)
                .and_then(|()| once(&mut m.timestamp, self.string())),
            Some(b's') if rest.starts_with(b"sub\"") => {
                self.colon(3).and_then(|()| once(&mut m.sub, self.string()))
            }
            Some(b's') if rest.starts_with(b"seq\"") => {
                self.colon(3).and_then(|()| once(&mut m.seq, self.u64()))
            }
            Some(b's') if rest.starts_with(b"symbol\"") => self
                .colon(6)
                .and_then(|()| once(&mut m.symbol, self.string())),
            Some(b'p') if rest.starts_with(b"price\"") => {
                self.colon(5).and_then(|()| once(&mut m.price, self.f64()))
            }
            Some(b'v') if rest.starts_with(b"volume\"") => {
                self.colon(6).and_then(|()| once(&mut m.volume, self.u64()))
            }
            Some(b'b') if rest.starts_with(b"bids\"") => self
                .colon(4)
                .and_then(|()| once(&mut m.bids, self.levels())),
            Some(b'a') if rest.starts_with(b"asks\"") => self
                .colon(4)
                .and_then(|()| once(&mut m.asks, self.levels())),
            _ => None,
        })
    }
}

/// Reads a frame: a data message, a control message's `type`, or
/// [`Scan::Unsure`].
pub(super) fn scan(text: &str) -> Scan<'_> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut m = Members::default();
    match read_object(&mut s, &mut m) {
        Ok(Some(())) => {}
        Ok(None) => return Scan::Unsure,
        Err(kind) => return Scan::Other(kind),
    }
    finish(m).map_or(Scan::Unsure, Scan::Data)
}

/// The object, member by member, to its closing brace, which only
/// whitespace may follow.
#[inline(always)]
fn read_object<'a>(s: &mut Scanner<'a>, m: &mut Members<'a>) -> Result<Option<()>, Cow<'a, str>> {
    if s.eat(b'{').is_none() {
        return Ok(None);
    }
    loop {
        if s.member(m)?.is_none() {
            return Ok(None);
        }
        match s.skip_ws() {
            Some(b',') => s.at += 1,
            Some(b'}') => {
                s.at += 1;
                break;
            }
            _ => return Ok(None),
        }
    }
    Ok(match s.skip_ws() {
        None => Some(()),
        Some(_) => None,
    })
}

/// The message the members make, when they make one of its type whole.
/// Members of the other data types are ignored, as serde_json ignores
/// unknown members.
fn finish(m: Members<'_>) -> Option<ServerMessage<'_>> {
    Some(match m.kind? {
        Kind::Price => ServerMessage::Price(PriceTick {
            sub: m.sub?,
            seq: m.seq?,
            symbol: m.symbol?,
            price: m.price?,
            timestamp: m.timestamp?,
        }),
        Kind::Volume => ServerMessage::Volume(VolumeTick {
            sub: m.sub?,
            seq: m.seq?,
            symbol: m.symbol?,
            volume: m.volume?,
            timestamp: m.timestamp?,
        }),
        Kind::OrderBook => ServerMessage::OrderBook(OrderBookSnapshot {
            sub: m.sub?,
            seq: m.seq?,
            symbol: m.symbol?,
            bids: m.bids?,
            asks: m.asks?,
            timestamp: m.timestamp?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(text: &str) -> Option<ServerMessage<'_>> {
        match scan(text) {
            Scan::Data(m) => Some(m),
            _ => None,
        }
    }

    #[test]
    fn reads_any_order_and_spacing() {
        let Some(ServerMessage::Price(p)) = data(
            r#"{"type":"price","sub":"main","seq":17,"symbol":"AAPL","price":189.53,"timestamp":"2026-11-24T09:49:56.123456Z"}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (&*p.sub, p.seq, &*p.symbol, p.price),
            ("main", 17, "AAPL", 189.53)
        );
        let Some(ServerMessage::Volume(v)) = data(
            " { \"volume\" : 0 , \"seq\":1,\"sub\":\"s\",\"type\":\"volume\",\"symbol\":\"X\",\"timestamp\":\"t\"}\n",
        ) else {
            panic!()
        };
        assert_eq!(v.volume, 0);
        let Some(ServerMessage::OrderBook(b)) = data(
            r#"{"asks":[],"sub":"s","seq":2,"symbol":"X","bids":[[1.5,2],[ 1e2 , 0 ]],"timestamp":"t","type":"orderbook"}"#,
        ) else {
            panic!()
        };
        assert_eq!(b.bids[1], Level::from((100.0, 0)));
        assert!(b.asks.is_empty());
        let Some(ServerMessage::Price(p)) = data(
            r#"{"type":"\u0070rice","sub":"a\/b","seq":1,"symbol":"\u0041APL","price":-0.0,"timestamp":"\ud83d\ude00"}"#,
        ) else {
            panic!()
        };
        assert_eq!((&*p.sub, &*p.symbol, &*p.timestamp), ("a/b", "AAPL", "😀"));
        assert!(p.price == 0.0 && p.price.is_sign_negative());
        assert!(matches!(
            scan(r#"{"type":"welcome","connection_id":"c"}"#),
            Scan::Other(Cow::Borrowed("welcome"))
        ));
    }

    #[test]
    fn gives_up_on_what_it_does_not_expect() {
        let base = r#""type":"price","sub":"s","seq":1,"symbol":"X","timestamp":"t""#;
        for body in [
            format!(r#"{{{base},"price":1.5,"extra":1}}"#), // unknown key
            format!(r#"{{{base},"price":1.5,"price":2}}"#), // repeated key
            format!(r#"{{{base},"price":1e999}}"#),         // not finite
            format!(r#"{{{base},"price":01}}"#),            // leading zero
            format!(r#"{{{base},"price":1.}}"#),            // bare point
            format!(r#"{{{base},"price":1e}}"#),            // bare exponent
            format!(r#"{{{base},"price":"1"}}"#),           // string
            format!(r#"{{{base},"price":1.5}} x"#),         // trailing text
            format!(r#"{{{base},"price":1.5,}}"#),          // trailing comma
            format!(r#"{{{base}}}"#),                       // missing price
            format!(r#"{{{base},"price":1,"sy\u006dbol":"Y"}}"#), // escaped key
            r#"{"type":"price","sub":"\ud800","seq":1,"symbol":"X","price":1,"timestamp":"t"}"#
                .to_owned(), // lone surrogate
            r#"{"type":"price","sub":"\q","seq":1,"symbol":"X","price":1,"timestamp":"t"}"#
                .to_owned(), // bad escape
            "{\"type\":\"price\",\"sub\":\"a\u{1}\",\"seq\":1,\"symbol\":\"X\",\"price\":1,\"timestamp\":\"t\"}"
                .to_owned(), // control character
        ] {
            assert!(data(&body).is_none(), "{body}");
        }
        let v = r#"{"type":"volume","sub":"s","seq":18446744073709551616,"symbol":"X","volume":1,"timestamp":"t"}"#;
        assert!(data(v).is_none(), "u64 overflow");
        let v = r#"{"type":"volume","sub":"s","seq":1,"symbol":"X","volume":1.0,"timestamp":"t"}"#;
        assert!(data(v).is_none(), "float for an integer");
        let b = r#"{"type":"orderbook","sub":"s","seq":1,"symbol":"X","bids":[[1,2,3]],"asks":[],"timestamp":"t"}"#;
        assert!(data(b).is_none(), "three-element level");
    }

    #[test]
    fn numbers_convert_as_the_standard_library_does() {
        for text in [
            "189.53",
            "1.8953e2",
            "18953e-2",
            "0.1",
            "-0",
            "9007199254740993",
            "123456789012345678901234567890",
            "1.7976931348623157e308",
            "4.9e-324",
            "1e22",
            "1e23",
            "0.000000000000000000000000001",
        ] {
            let frame = format!(
                r#"{{"type":"price","sub":"s","seq":1,"symbol":"X","price":{text},"timestamp":"t"}}"#
            );
            let Some(ServerMessage::Price(p)) = data(&frame) else {
                panic!("{text}")
            };
            assert_eq!(
                p.price.to_bits(),
                text.parse::<f64>().unwrap().to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn a_book_deeper_than_the_protocol_is_read_one_level_past_the_limit() {
        let side = (0..100_000)
            .map(|i| format!("[{}.5,{}]", 100 + i, i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let text = format!(
            r#"{{"type":"orderbook","sub":"m","seq":7,"symbol":"AAPL","bids":[{side}],"asks":[[1.0,1]],"timestamp":"2026-11-24T09:49:56.123Z"}}"#
        );
        let Scan::Data(ServerMessage::OrderBook(book)) = scan(&text) else {
            panic!("the scanner reads a deep book's other members");
        };
        assert_eq!((book.bids.len(), book.asks.len(), book.seq), (11, 1, 7));
    }
}
