//! The layout corpus: data messages written in the layouts other servers
//! use, for the decode benchmarks, the property tests, the end-to-end bench
//! and the reference server's `--wire-style`. Test and bench support, not
//! part of the SDK's API.
//!
//! Protocol v1 allows any member order and any JSON whitespace; a server
//! in Python writes `{"type": "price", "sub": "main", ...}`, another one
//! pretty-prints, writes `1.8953e2` or escapes strings. Each [`Layout`]
//! writes the same message one of these ways; every layout is valid JSON
//! that decodes to the same value.

use std::fmt::{self, Write};
use std::str::FromStr;

use super::{Level, OrderBookSnapshot, PriceTick, ServerMessage, VolumeTick};

/// A way to write a data message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Layout {
    /// The reference server's ([`ServerMessage::to_json`]): its member
    /// order (`type` first), compact.
    #[default]
    Reference,
    /// Python's `json.dumps` default spacing: `", "` and `": "`.
    Python,
    /// Compact, members in another order (`type` in the middle).
    Shuffled,
    /// Pretty-printed over several lines, two-space indent, one array
    /// element a line (`json.dumps(indent=2)`).
    Pretty,
    /// Compact, prices in exponent form (`1.8953e2`), integral prices as
    /// integers (`190`), negative zero as `-0.0`.
    Numbers,
    /// Compact, every string's first character as a `\u` escape and `/`
    /// as `\/`.
    Escaped,
}

impl Layout {
    /// Every layout, the reference server's first.
    pub const ALL: [Layout; 6] = [
        Self::Reference,
        Self::Python,
        Self::Shuffled,
        Self::Pretty,
        Self::Numbers,
        Self::Escaped,
    ];

    /// The layout's name, as `--wire-style` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::Python => "python",
            Self::Shuffled => "shuffled",
            Self::Pretty => "pretty",
            Self::Numbers => "numbers",
            Self::Escaped => "escaped",
        }
    }

    /// Writes `message` in this layout. Messages other than data messages
    /// are written as the reference server writes them.
    pub fn write(self, message: &ServerMessage<'_>) -> String {
        if self == Self::Reference {
            return message.to_json();
        }
        let (kind, members) = match message {
            ServerMessage::Price(PriceTick {
                sub,
                seq,
                symbol,
                price,
                timestamp,
            }) => (
                "price",
                vec![
                    ("sub", Value::Str(sub)),
                    ("seq", Value::U64(*seq)),
                    ("symbol", Value::Str(symbol)),
                    ("price", Value::F64(*price)),
                    ("timestamp", Value::Str(timestamp)),
                ],
            ),
            ServerMessage::Volume(VolumeTick {
                sub,
                seq,
                symbol,
                volume,
                timestamp,
            }) => (
                "volume",
                vec![
                    ("sub", Value::Str(sub)),
                    ("seq", Value::U64(*seq)),
                    ("symbol", Value::Str(symbol)),
                    ("volume", Value::U64(*volume)),
                    ("timestamp", Value::Str(timestamp)),
                ],
            ),
            ServerMessage::OrderBook(OrderBookSnapshot {
                sub,
                seq,
                symbol,
                bids,
                asks,
                timestamp,
            }) => (
                "orderbook",
                vec![
                    ("sub", Value::Str(sub)),
                    ("seq", Value::U64(*seq)),
                    ("symbol", Value::Str(symbol)),
                    ("bids", Value::Levels(bids)),
                    ("asks", Value::Levels(asks)),
                    ("timestamp", Value::Str(timestamp)),
                ],
            ),
            other => return other.to_json(),
        };
        let mut members = [vec![("type", Value::Str(kind))], members].concat();
        if self == Self::Shuffled {
            members.sort_by_key(|(key, _)| SHUFFLED.iter().position(|k| k == key));
        }
        let mut out = String::with_capacity(256);
        out.push('{');
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            self.space(&mut out, 1);
            // Keys are plain in every layout.
            let _ = write!(out, "\"{key}\":");
            if matches!(self, Self::Python | Self::Pretty) {
                out.push(' ');
            }
            self.value(value, &mut out);
        }
        self.newline(&mut out, 0);
        out.push('}');
        out
    }

    /// Writes `s` as a JSON string, quotes included, in this layout.
    pub fn write_str(self, s: &str, out: &mut String) {
        out.push('"');
        for (i, c) in s.chars().enumerate() {
            match c {
                _ if i == 0 && self == Self::Escaped => {
                    for unit in c.encode_utf16(&mut [0; 2]) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
                '/' if self == Self::Escaped => out.push_str("\\/"),
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c if c < ' ' => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    fn value(self, value: &Value<'_>, out: &mut String) {
        match value {
            Value::Str(s) => self.write_str(s, out),
            Value::U64(n) => {
                let _ = write!(out, "{n}");
            }
            Value::F64(v) => self.float(*v, out),
            Value::Levels(levels) => {
                out.push('[');
                for (i, level) in levels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.space(out, 2);
                    out.push('[');
                    self.newline(out, 3);
                    self.float(level.price, out);
                    out.push(',');
                    self.space(out, 3);
                    let _ = write!(out, "{}", level.size);
                    self.newline(out, 2);
                    out.push(']');
                }
                if !levels.is_empty() {
                    self.newline(out, 1);
                }
                out.push(']');
            }
        }
    }

    fn float(self, v: f64, out: &mut String) {
        if self == Self::Numbers {
            if v == 0.0 && v.is_sign_negative() {
                out.push_str("-0.0");
            } else if v.fract() == 0.0 && v.abs() < 1e15 {
                let _ = write!(out, "{v:.0}");
            } else {
                let _ = write!(out, "{v:e}");
            }
        } else {
            // serde_json's own form (shortest round trip).
            out.push_str(&serde_json::to_string(&v).unwrap_or_else(|_| "null".into()));
        }
    }

    /// What goes before an element at `depth`: a space (Python, after the
    /// comma), a new line and indent (pretty), nothing (compact). The first
    /// element of a container gets no space in Python's layout.
    fn space(self, out: &mut String, depth: usize) {
        match self {
            Self::Python if !out.ends_with('[') && !out.ends_with('{') => out.push(' '),
            Self::Pretty => self.newline(out, depth),
            _ => {}
        }
    }

    fn newline(self, out: &mut String, depth: usize) {
        if self == Self::Pretty {
            out.push('\n');
            out.extend(std::iter::repeat_n("  ", depth));
        }
    }
}

/// The member order of [`Layout::Shuffled`].
const SHUFFLED: [&str; 9] = [
    "timestamp",
    "symbol",
    "asks",
    "type",
    "price",
    "volume",
    "bids",
    "seq",
    "sub",
];

#[derive(Clone, Copy)]
enum Value<'a> {
    Str(&'a str),
    U64(u64),
    F64(f64),
    Levels(&'a [Level]),
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a layout's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown wire layout `{0}` (expected reference, python, shuffled, pretty, numbers or escaped)"
)]
pub struct UnknownLayout(pub String);

impl FromStr for Layout {
    type Err = UnknownLayout;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| UnknownLayout(s.to_owned()))
    }
}

/// The corpus's messages: one of each data type, as a market-data server
/// sends them (the order book has 10 levels a side).
pub fn sample_messages() -> [ServerMessage<'static>; 3] {
    let level = |price, size| Level { price, size };
    let sub = "main".into();
    let symbol = "AAPL".into();
    [
        ServerMessage::Price(PriceTick {
            sub,
            seq: 17,
            symbol,
            price: 189.53,
            timestamp: "2026-11-24T09:49:56.123456Z".into(),
        }),
        ServerMessage::Volume(VolumeTick {
            sub: "main".into(),
            seq: 18,
            symbol: "AAPL".into(),
            volume: 1200,
            timestamp: "2026-11-24T09:49:56.124456Z".into(),
        }),
        ServerMessage::OrderBook(OrderBookSnapshot {
            sub: "main".into(),
            seq: 19,
            symbol: "AAPL".into(),
            bids: vec![
                level(189.52, 300),
                level(189.51, 500),
                level(189.5, 200),
                level(189.49, 700),
                level(189.48, 100),
                level(189.47, 900),
                level(189.46, 300),
                level(189.45, 400),
                level(189.44, 800),
                level(189.0, 600),
            ],
            asks: vec![
                level(189.54, 200),
                level(189.55, 700),
                level(189.56, 300),
                level(189.57, 500),
                level(189.58, 100),
                level(189.59, 400),
                level(189.6, 900),
                level(189.61, 200),
                level(189.62, 300),
                level(190.0, 800),
            ],
            timestamp: "2026-11-24T09:49:56.125456Z".into(),
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_decodes_to_the_same_message() {
        for message in sample_messages() {
            let reference = Layout::Reference.write(&message);
            assert_eq!(reference, message.to_json());
            for layout in Layout::ALL {
                let text = layout.write(&message);
                let decoded = ServerMessage::decode(&text).unwrap();
                assert_eq!(format!("{decoded:?}"), format!("{message:?}"), "{text}");
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(value["type"], message.kind());
                assert_eq!(layout.name().parse::<Layout>(), Ok(layout));
            }
        }
        assert!("tabs".parse::<Layout>().is_err());
    }

    #[test]
    fn every_layout_takes_the_scanner() {
        let mut messages = sample_messages().to_vec();
        for (price, text) in [
            (-0.0, "\"quoted\" \\ back/slash"),
            (1e300, "control\u{1}\t\n"),
            (5e-324, "ünïcødé 😀"),
            (123_456_789.123_456_78, ""),
            (1e15, "x"),
        ] {
            messages.push(ServerMessage::Price(PriceTick {
                sub: text.into(),
                seq: u64::MAX,
                symbol: text.into(),
                price,
                timestamp: text.into(),
            }));
        }
        for message in &messages {
            for layout in Layout::ALL {
                let text = layout.write(message);
                let super::super::scan::Scan::Data(decoded) = super::super::scan::scan(&text)
                else {
                    panic!("left to serde_json: {text}")
                };
                assert_eq!(format!("{decoded:?}"), format!("{message:?}"), "{text}");
            }
        }
    }

    #[test]
    fn layouts_look_as_documented() {
        let [price, _, book] = sample_messages();
        assert!(
            Layout::Python
                .write(&price)
                .starts_with(r#"{"type": "price", "sub": "main""#)
        );
        assert!(
            Layout::Shuffled
                .write(&price)
                .starts_with(r#"{"timestamp":"#)
        );
        assert!(
            Layout::Numbers
                .write(&price)
                .contains(r#""price":1.8953e2"#)
        );
        assert!(Layout::Numbers.write(&book).contains("[190,800]"));
        assert!(
            Layout::Escaped
                .write(&price)
                .contains(r#""symbol":"\u0041APL""#)
        );
        let pretty = Layout::Pretty.write(&book);
        assert!(
            pretty.contains("\n  \"bids\": [\n    [\n      189.52,\n      300\n    ],"),
            "{pretty}"
        );
        let mut s = String::new();
        Layout::Escaped.write_str("a/b", &mut s);
        assert_eq!(s, r#""\u0061\/b""#);
    }
}
