//! Connection statistics: the original SDK's `get_stats()` fields, plus what
//! someone debugging a live feed needs.

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::io::ConnectionState;

/// A snapshot of the connection's counters, from [`Client::stats`](crate::Client::stats).
///
/// Its JSON reads like the original SDK's example: `uptime` is written as
/// `H:MM:SS.ffffff`, other durations as fractional seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Text messages received, control and data.
    pub messages_received: u64,
    /// Text messages sent.
    pub messages_sent: u64,
    /// Successful reconnections (a `welcome` after a lost link).
    pub reconnect_count: u64,
    /// Protocol errors, server errors and failed attempts.
    pub errors: u64,
    /// The connection's state.
    pub state: ConnectionState,
    /// The server's id of the current connection.
    pub connection_id: Option<String>,
    /// Subscriptions the application holds.
    pub subscriptions_count: usize,
    /// Time since the current connection's `welcome` (zero when not connected).
    #[serde(serialize_with = "serialize_uptime")]
    pub uptime: Duration,
    /// Bytes of text and binary frames received.
    pub bytes_received: u64,
    /// Data messages delivered to the application.
    pub data_messages: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Seqs known to be missing, summed over the gaps with a known end.
    pub missed_messages: u64,
    /// Data messages dropped as repeats of a seq already delivered.
    pub duplicates: u64,
    /// Connection attempts made.
    pub connect_attempts: u64,
    /// Time since the last frame arrived, if one has.
    #[serde(serialize_with = "serialize_opt_duration_secs")]
    pub last_message_age: Option<Duration>,
    /// Round-trip time of the last answered ping.
    #[serde(serialize_with = "serialize_opt_duration_secs")]
    pub rtt: Option<Duration>,
}

impl Stats {
    /// The fields of the original SDK's `get_stats()`, which [`Stats`]'s
    /// JSON always carries (more fields follow them).
    pub const SEED_FIELDS: [&'static str; 8] = [
        "messages_received",
        "messages_sent",
        "reconnect_count",
        "errors",
        "state",
        "connection_id",
        "subscriptions_count",
        "uptime",
    ];
}

/// Writes a duration as Python's `timedelta` prints it: `H:MM:SS.ffffff`.
pub fn format_uptime(d: Duration) -> String {
    let secs = d.as_secs();
    format!(
        "{}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_micros()
    )
}

fn serialize_uptime<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_uptime(*d))
}

/// Writes a duration as fractional seconds.
pub(crate) fn serialize_duration_secs<S: Serializer>(
    d: &Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn serialize_opt_duration_secs<S: Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_like_the_seed() {
        assert_eq!(
            format_uptime(Duration::from_micros(323_123_456)),
            "0:05:23.123456"
        );
        assert_eq!(
            format_uptime(Duration::from_secs(90_000)),
            "25:00:00.000000"
        );
        let json = serde_json::to_value(Stats::default()).unwrap();
        for field in Stats::SEED_FIELDS {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(json["state"], "disconnected");
    }
}
