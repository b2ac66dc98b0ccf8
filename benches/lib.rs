//! Helpers shared by the Argus benchmarks: sample frames of every data
//! message type, and the hand-written parse that is the limit we compare to.

use serde::Deserialize;

/// A `price` frame as the reference server writes it (116 bytes).
pub const PRICE: &str = r#"{"type":"price","sub":"main","seq":17,"symbol":"AAPL","price":189.53,"timestamp":"2026-11-24T09:49:56.123456Z"}"#;
/// A `volume` frame.
pub const VOLUME: &str = r#"{"type":"volume","sub":"main","seq":18,"symbol":"AAPL","volume":1200,"timestamp":"2026-11-24T09:49:56.124456Z"}"#;
/// An `orderbook` frame with 10 levels a side.
pub const ORDERBOOK: &str = r#"{"type":"orderbook","sub":"main","seq":19,"symbol":"AAPL","bids":[[189.52,300],[189.51,500],[189.5,200],[189.49,700],[189.48,100],[189.47,900],[189.46,300],[189.45,400],[189.44,800],[189.43,600]],"asks":[[189.54,200],[189.55,700],[189.56,300],[189.57,500],[189.58,100],[189.59,400],[189.6,900],[189.61,200],[189.62,300],[189.63,800]],"timestamp":"2026-11-24T09:49:56.125456Z"}"#;

/// What a hand-written client would parse a data frame into: every field,
/// borrowed from the frame. The limit for our decoder.
#[derive(Debug, Deserialize)]
pub struct HandTick<'a> {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// `sub`.
    pub sub: &'a str,
    /// `seq`.
    pub seq: u64,
    /// `symbol`.
    pub symbol: &'a str,
    /// `price`, for price frames.
    pub price: Option<f64>,
    /// `volume`, for volume frames.
    pub volume: Option<u64>,
    /// `bids`, for order-book frames.
    pub bids: Option<Vec<(f64, u64)>>,
    /// `asks`, for order-book frames.
    pub asks: Option<Vec<(f64, u64)>>,
    /// `timestamp`.
    pub timestamp: &'a str,
}

/// The hand-written parse: `serde_json::from_str` into a borrowed struct.
pub fn hand_parse(frame: &str) -> Option<HandTick<'_>> {
    serde_json::from_str(frame).ok()
}
