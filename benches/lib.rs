//! Helpers shared by the Argus benchmarks: the layout corpus's frames, and
//! the hand-written parse that is the limit we compare to.

pub mod server;

use std::borrow::Cow;

use argus_core::wire::layout::{Layout, sample_messages};
use serde::Deserialize;

/// The corpus's three data messages (`price`, `volume`, `orderbook` with 10
/// levels a side) written in `layout`, with their type names.
pub fn frames(layout: Layout) -> [(&'static str, String); 3] {
    sample_messages().map(|m| (m.kind(), layout.write(&m)))
}

/// What a hand-written client would parse a data frame into: every field,
/// borrowed from the frame (decoded only when it has escapes, which a
/// `&str` cannot hold). The limit for our decoder.
#[derive(Debug, Deserialize)]
pub struct HandTick<'a> {
    /// `type`.
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    /// `sub`.
    #[serde(borrow)]
    pub sub: Cow<'a, str>,
    /// `seq`.
    pub seq: u64,
    /// `symbol`.
    #[serde(borrow)]
    pub symbol: Cow<'a, str>,
    /// `price`, for price frames.
    pub price: Option<f64>,
    /// `volume`, for volume frames.
    pub volume: Option<u64>,
    /// `bids`, for order-book frames.
    pub bids: Option<Vec<(f64, u64)>>,
    /// `asks`, for order-book frames.
    pub asks: Option<Vec<(f64, u64)>>,
    /// `timestamp`.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
}

/// The hand-written parse: `serde_json::from_str` into a borrowed struct.
pub fn hand_parse(frame: &str) -> Option<HandTick<'_>> {
    serde_json::from_str(frame).ok()
}
