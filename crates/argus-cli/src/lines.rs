//! The NDJSON lines of `argus tail`: the client's event lines
//! ([`argus_tokio::lines`], where the format is described), and one `stats`
//! line of its own at exit, with the client's statistics and the feed's
//! (`feed`: `policy`, `missed_events`).

use argus_tokio::ClientStats;
use argus_tokio::lines::{event_line, lagged_line, stamped};
use serde::Serialize;

use crate::feed::{FeedStats, Item};

/// The line of an item: a data message as received, an event line, or the
/// `lagged` line of a lossy feed that missed events.
pub fn item_line(item: &Item) -> String {
    match item {
        Ok(event) => event_line(event),
        Err(missed) => lagged_line(*missed),
    }
}

/// The `stats` line written at exit.
#[derive(Serialize)]
#[serde(tag = "event", rename = "stats")]
struct StatsLine<'a> {
    #[serde(flatten)]
    stats: &'a ClientStats,
    feed: FeedStats,
}

/// The `stats` line written at exit: the client's statistics, and the
/// feed's as `feed`.
pub fn stats_line(stats: &ClientStats, feed: FeedStats) -> String {
    stamped(StatsLine { stats, feed })
}
