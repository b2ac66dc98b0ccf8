//! Client requests: decoding with the core's wire types, then every check of
//! PROTOCOL.md that needs no session state, each with its own error code.

use std::str::FromStr;

use argus_core::wire::{ClientMessage, ErrorCode, SubscribeRequest};
use argus_core::{DataType, Filters, SubscriptionId, Symbol, UpdateFrequency};

use crate::market::Universe;

/// A well-formed request.
#[derive(Debug)]
pub(crate) enum Request {
    Subscribe(SubscribeSpec),
    Unsubscribe(SubscriptionId),
    Resume { session: String, last_seq: u64 },
}

/// A subscribe that passed every stateless check.
#[derive(Clone, Debug)]
pub(crate) struct SubscribeSpec {
    pub id: SubscriptionId,
    /// Distinct symbols, in the order asked, with their universe index.
    pub symbols: Vec<(u16, Symbol)>,
    /// Distinct data types, in the order asked.
    pub data_types: Vec<DataType>,
    pub frequency: UpdateFrequency,
    pub filters: Filters,
}

/// A request answered with `error`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rejection {
    pub code: ErrorCode,
    pub message: String,
    pub id: Option<String>,
}

impl Rejection {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>, id: Option<String>) -> Self {
        Self {
            code,
            message: message.into(),
            id,
        }
    }
}

/// The top-level string `id` of a frame that looks like a JSON object, found
/// without decoding the frame: one pass over its bytes that steps over
/// nested values by counting brackets, so that depth, huge numbers or a
/// syntax error after the `id` do not hide it. `None` when the frame is not
/// an object or has no string `id` at its top level.
pub(crate) fn best_effort_id(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b'}' => return None,
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = string_end(b, i)?;
        let key = &text[i..key_end];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if key == "\"id\"" {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let end = string_end(b, i)?;
            return serde_json::from_str(&text[i..end]).ok();
        }
        i = value_end(b, i)?;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// The index just past the string that opens at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match b.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The index just past the value that starts at `i` (of any depth).
fn value_end(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match b.get(i)? {
            b'"' => i = string_end(b, i)?,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
                i += 1;
            }
            b',' if depth == 0 => return Some(i),
            _ => i += 1,
        }
        if depth == 0 && matches!(b.get(i.wrapping_sub(1)), Some(b'"' | b'}' | b']')) {
            return Some(i);
        }
    }
}

/// Decodes and checks one text frame.
pub(crate) fn parse(
    text: &str,
    universe: &Universe,
    max_symbols: usize,
) -> Result<Request, Rejection> {
    match ClientMessage::decode(text) {
        Ok(ClientMessage::Subscribe(req)) => check_subscribe(req, universe, max_symbols),
        Ok(ClientMessage::Unsubscribe(req)) => {
            let id = check_id(&req.id)?;
            Ok(Request::Unsubscribe(id))
        }
        Ok(ClientMessage::Resume(req)) => Ok(Request::Resume {
            session: req.session.expose().to_owned(),
            last_seq: req.last_seq,
        }),
        Ok(_) => Err(Rejection::new(
            ErrorCode::BadRequest,
            "unsupported op",
            best_effort_id(text),
        )),
        Err(e) => Err(explain_bad_request(text, &e)),
    }
}

fn explain_bad_request(text: &str, error: &serde_json::Error) -> Rejection {
    let bad =
        |message: String| Rejection::new(ErrorCode::BadRequest, message, best_effort_id(text));
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        // Not JSON, nested too deeply, or a number out of range: the id, if
        // the frame starts like an object that has one, is still answered.
        Err(e) => return bad(format!("not JSON that this server decodes: {e}")),
    };
    let Some(object) = value.as_object() else {
        return Rejection::new(ErrorCode::BadRequest, "not a JSON object", None);
    };
    match object.get("op") {
        None => bad("missing field `op`".to_owned()),
        Some(serde_json::Value::String(op)) => match op.as_str() {
            "subscribe" | "unsubscribe" | "resume" => bad(format!("malformed `{op}`: {error}")),
            other => bad(format!("unknown op `{}`", truncate(other, 40))),
        },
        Some(_) => bad("`op` must be a string".to_owned()),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn check_id(id: &str) -> Result<SubscriptionId, Rejection> {
    SubscriptionId::new(id).map_err(|_| {
        Rejection::new(
            ErrorCode::BadRequest,
            "`id` must be 1-64 characters of A-Z a-z 0-9 _ - . :",
            Some(id.to_owned()),
        )
    })
}

fn check_subscribe(
    req: SubscribeRequest<'_>,
    universe: &Universe,
    max_symbols: usize,
) -> Result<Request, Rejection> {
    let id = check_id(&req.id)?;
    let reject = |code, message: String| Err(Rejection::new(code, message, Some(id.to_string())));

    if req.symbols.is_empty() {
        return reject(
            ErrorCode::BadRequest,
            "`symbols` must name at least one symbol".into(),
        );
    }
    if req.symbols.len() > max_symbols {
        return reject(
            ErrorCode::TooManySymbols,
            format!(
                "{} symbols; this server allows {max_symbols} per subscription",
                req.symbols.len()
            ),
        );
    }
    let mut symbols: Vec<(u16, Symbol)> = Vec::with_capacity(req.symbols.len());
    let mut unknown = None;
    for raw in &req.symbols {
        let Ok(symbol) = Symbol::parse(raw) else {
            return reject(
                ErrorCode::InvalidSymbol,
                format!(
                    "`{}` is not a symbol in normal form: 1-20 characters of A-Z 0-9 . - / _",
                    truncate(raw, 40)
                ),
            );
        };
        match universe.index_of(&symbol) {
            Some(idx) => {
                if !symbols.iter().any(|(i, _)| *i == idx) {
                    symbols.push((idx, symbol));
                }
            }
            None => {
                unknown.get_or_insert(symbol);
            }
        }
    }
    if let Some(symbol) = unknown {
        return reject(
            ErrorCode::UnknownSymbol,
            format!("no such symbol: {symbol}"),
        );
    }

    if req.data_types.is_empty() {
        return reject(
            ErrorCode::BadRequest,
            "`data_types` must name at least one of price, volume, orderbook".into(),
        );
    }
    let mut data_types = Vec::with_capacity(3);
    for raw in &req.data_types {
        match DataType::from_str(raw) {
            Ok(dt) => {
                if !data_types.contains(&dt) {
                    data_types.push(dt);
                }
            }
            Err(_) => {
                return reject(
                    ErrorCode::InvalidDataType,
                    format!(
                        "`{}` is not a data type: use price, volume or orderbook",
                        truncate(raw, 40)
                    ),
                );
            }
        }
    }

    let frequency = match req.update_frequency.as_deref() {
        None => UpdateFrequency::Realtime,
        Some(raw) => match UpdateFrequency::from_str(raw) {
            Ok(f) => f,
            Err(_) => {
                return reject(
                    ErrorCode::InvalidFrequency,
                    format!(
                        "`{}` is not an update frequency: use realtime, 1s, 5s or 1m",
                        truncate(raw, 40)
                    ),
                );
            }
        },
    };

    let mut filters = Filters::default();
    if let Some(map) = &req.filters {
        for (key, value) in map {
            let slot = match key.as_str() {
                "min_price" => &mut filters.min_price,
                "max_price" => &mut filters.max_price,
                other => {
                    return reject(
                        ErrorCode::InvalidFilter,
                        format!(
                            "unknown filter `{}`: use min_price, max_price",
                            truncate(other, 40)
                        ),
                    );
                }
            };
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::Number(n) => *slot = n.as_f64(),
                _ => {
                    return reject(
                        ErrorCode::InvalidFilter,
                        format!("`{key}` must be a number"),
                    );
                }
            }
        }
        if let Err(e) = filters.validate() {
            return reject(ErrorCode::InvalidFilter, e.to_string());
        }
    }

    Ok(Request::Subscribe(SubscribeSpec {
        id,
        symbols,
        data_types,
        frequency,
        filters,
    }))
}

/// A fixed one-second window of operations.
#[derive(Debug)]
pub(crate) struct RateLimit {
    limit: u32,
    window_start: tokio::time::Instant,
    used: u32,
}

impl RateLimit {
    pub(crate) fn new(limit: u32, now: tokio::time::Instant) -> Self {
        Self {
            limit,
            window_start: now,
            used: 0,
        }
    }

    /// Counts one operation; false when over the limit.
    pub(crate) fn allow(&mut self, now: tokio::time::Instant) -> bool {
        if now.duration_since(self.window_start) >= std::time::Duration::from_secs(1) {
            self.window_start = now;
            self.used = 0;
        }
        self.used = self.used.saturating_add(1);
        self.used <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::Market;

    fn universe() -> Universe {
        Market::simulated(None, 1).1
    }

    fn code(text: &str) -> (ErrorCode, Option<String>) {
        let r = parse(text, &universe(), 3).unwrap_err();
        (r.code, r.id)
    }

    #[test]
    fn every_code_with_its_id() {
        use ErrorCode::*;
        let cases: &[(&str, ErrorCode, Option<&str>)] = &[
            ("nope", BadRequest, None),
            ("[1]", BadRequest, None),
            (r#"{"id":"a"}"#, BadRequest, Some("a")),
            (r#"{"op":"dance","id":"a"}"#, BadRequest, Some("a")),
            (r#"{"op":7,"id":"a"}"#, BadRequest, Some("a")),
            (
                r#"{"op":"subscribe","id":"a","symbols":"AAPL","data_types":["price"]}"#,
                BadRequest,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","data_types":["price"]}"#,
                BadRequest,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a b","symbols":["AAPL"],"data_types":["price"]}"#,
                BadRequest,
                Some("a b"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":[],"data_types":["price"]}"#,
                BadRequest,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":["aapl"],"data_types":["price"]}"#,
                InvalidSymbol,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":["AAPX"],"data_types":["price"]}"#,
                UnknownSymbol,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":["AAPX","a a"],"data_types":["price"]}"#,
                InvalidSymbol,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":["A","B","C","D"],"data_types":["price"]}"#,
                TooManySymbols,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":["AAPL"],"data_types":["trades"]}"#,
                InvalidDataType,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":["AAPL"],"data_types":[]}"#,
                BadRequest,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":["AAPL"],"data_types":["price"],"update_frequency":"2s"}"#,
                InvalidFrequency,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":["AAPL"],"data_types":["price"],"filters":{"min_prize":1}}"#,
                InvalidFilter,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":["AAPL"],"data_types":["price"],"filters":{"min_price":"1"}}"#,
                InvalidFilter,
                Some("a"),
            ),
            (
                r#"{"op":"subscribe","id":"a","symbols":["AAPL"],"data_types":["price"],"filters":{"min_price":5,"max_price":1}}"#,
                InvalidFilter,
                Some("a"),
            ),
            (r#"{"op":"unsubscribe"}"#, BadRequest, None),
            (
                r#"{"op":"resume","session":"x","last_seq":-1}"#,
                BadRequest,
                None,
            ),
        ];
        for (text, want, id) in cases {
            assert_eq!(code(text), (*want, id.map(str::to_owned)), "{text}");
        }
    }

    #[test]
    fn accepts_and_normalises() {
        let text = r#"{"op":"subscribe","id":"m:1","symbols":["AAPL","MSFT","AAPL"],"data_types":["price","price","orderbook"],"update_frequency":"1s","filters":{"min_price":1,"max_price":1000},"extra":true}"#;
        let Ok(Request::Subscribe(s)) = parse(text, &universe(), 10) else {
            panic!()
        };
        assert_eq!(s.symbols.len(), 2);
        assert_eq!(s.data_types, [DataType::Price, DataType::OrderBook]);
        assert_eq!(s.frequency, UpdateFrequency::OneSecond);
        assert_eq!(s.filters.max_price, Some(1000.0));
    }

    #[test]
    fn rate_window() {
        let t = tokio::time::Instant::now();
        let mut r = RateLimit::new(2, t);
        assert!(r.allow(t) && r.allow(t) && !r.allow(t));
        assert!(r.allow(t + std::time::Duration::from_secs(1)));
    }
}

#[cfg(test)]
mod id_scan_tests {
    use super::best_effort_id;

    #[test]
    fn finds_the_top_level_id_without_decoding() {
        let deep = format!(
            r#"{{"op":"subscribe","x":{}1{},"id":"deep"}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(best_effort_id(&deep).as_deref(), Some("deep"));
        let huge = r#"{"op":"subscribe","filters":{"min_price":1e309},"id":"big"}"#;
        assert_eq!(best_effort_id(huge).as_deref(), Some("big"));
        let nested_id = r#"{"x":{"id":"inner"},"s":"a\"}","id":"outer"}"#;
        assert_eq!(best_effort_id(nested_id).as_deref(), Some("outer"));
        assert_eq!(best_effort_id(r#"{"id":"a\u0062"}"#).as_deref(), Some("ab"));
        assert_eq!(best_effort_id(r#"{"id":5}"#), None);
        assert_eq!(best_effort_id(r#"["id","x"]"#), None);
        assert_eq!(
            best_effort_id(r#"{"x":true,"n":-1.5e3,"id":"t"}"#).as_deref(),
            Some("t")
        );
        assert_eq!(best_effort_id(r#"{"x":"#), None);
        assert_eq!(best_effort_id(""), None);
    }
}
