//! The NDJSON lines of `argus tail`.
//!
//! A data line is the message exactly as the client received it, in the
//! protocol's shape: `{"type":"price","sub":"tail","seq":17,"symbol":"AAPL",...}`.
//! Every other line carries an `event` field first and the wall-clock
//! `time` it was written last:
//!
//! | `event` | fields |
//! | --- | --- |
//! | `state` | `state`, `from` (the connection states) |
//! | `subscribed` | `id` |
//! | `resumed` | `replayed` (messages the server replays next) |
//! | `gap` | `from`, `to` (seqs `from..=to` are missing; `to` null when unknown), `cause` (`seq_jump`, `resume_failed`) |
//! | `disconnected` | `kind` (`server_closed`, `lost`, `failed`, `heartbeat_timeout`) and its details, `message` |
//! | `reconnecting` | `attempt`, `delay` (seconds) |
//! | `error` | `kind` (`attempt_failed`, `gave_up`, `subscribe_failed`, `protocol`, `lagged`), `message`, and `attempt`, `id`, `code` or `missed_events` |
//! | `stats` | the client's statistics, written once at exit |

use std::time::SystemTime;

use argus_tokio::{ClientEvent, ClientStats, ConnectionState, DisconnectReason, GapCause};
use serde::Serialize;

use crate::feed::Item;

/// An event line's body, tagged with `event`.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Body<'a> {
    State {
        state: ConnectionState,
        from: ConnectionState,
    },
    Subscribed {
        id: &'a str,
    },
    Resumed {
        replayed: u64,
    },
    Gap {
        from: u64,
        to: Option<u64>,
        cause: GapCause,
    },
    Disconnected {
        #[serde(flatten)]
        reason: &'a DisconnectReason,
        message: String,
    },
    Reconnecting {
        attempt: u32,
        delay: f64,
    },
    Error {
        kind: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        missed_events: Option<u64>,
    },
    Stats {
        #[serde(flatten)]
        stats: &'a ClientStats,
    },
    Other {
        name: &'static str,
    },
}

#[derive(Serialize)]
struct Stamped<'a> {
    #[serde(flatten)]
    body: Body<'a>,
    time: String,
}

fn error(kind: &'static str, message: String) -> Body<'static> {
    Body::Error {
        kind,
        message,
        attempt: None,
        id: None,
        code: None,
        missed_events: None,
    }
}

fn body(event: &ClientEvent) -> Body<'_> {
    match event {
        ClientEvent::StateChanged { from, to } => Body::State {
            state: *to,
            from: *from,
        },
        ClientEvent::Subscribed(id) => Body::Subscribed { id: id.as_str() },
        ClientEvent::Resumed { replayed } => Body::Resumed {
            replayed: *replayed,
        },
        ClientEvent::Gap(gap) => Body::Gap {
            from: gap.from,
            to: gap.to,
            cause: gap.cause,
        },
        ClientEvent::Disconnected(reason) => Body::Disconnected {
            reason,
            message: reason.to_string(),
        },
        ClientEvent::Reconnecting { attempt, delay } => Body::Reconnecting {
            attempt: *attempt,
            delay: delay.as_secs_f64(),
        },
        ClientEvent::AttemptFailed { attempt, error } => Body::Error {
            kind: "attempt_failed",
            message: error.to_string(),
            attempt: Some(*attempt),
            id: None,
            code: None,
            missed_events: None,
        },
        ClientEvent::SubscribeFailed { id, error } => Body::Error {
            kind: "subscribe_failed",
            message: error.message.clone(),
            attempt: None,
            id: Some(id.as_str()),
            code: Some(error.code.as_str()),
            missed_events: None,
        },
        ClientEvent::GaveUp(reason) => error("gave_up", reason.to_string()),
        ClientEvent::ProtocolError(e) => error("protocol", e.to_string()),
        ClientEvent::Lagged(n) => Body::Error {
            kind: "lagged",
            message: format!("the event stream fell behind and missed {n} events"),
            attempt: None,
            id: None,
            code: None,
            missed_events: Some(*n),
        },
        ClientEvent::Data(_) => Body::Other { name: "data" },
        other => Body::Other { name: other.name() },
    }
}

fn stamped(body: Body<'_>) -> String {
    let line = Stamped {
        body,
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
    };
    serde_json::to_string(&line).unwrap_or_else(|e| {
        format!(r#"{{"event":"error","kind":"internal","message":"cannot encode a line: {e}"}}"#)
    })
}

/// The line of an item: a data message as received, or an event line.
pub fn item_line(item: &Item) -> String {
    match item {
        Item::Data(data) | Item::Event(ClientEvent::Data(data)) => serde_json::to_string(data)
            .unwrap_or_else(|e| {
                stamped(error(
                    "internal",
                    format!("cannot encode a data message: {e}"),
                ))
            }),
        Item::Event(event) => stamped(body(event)),
    }
}

/// The `stats` line written at exit.
pub fn stats_line(stats: &ClientStats) -> String {
    stamped(Body::Stats { stats })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_tokio::{Gap, GiveUpReason, OpenError};
    use serde_json::Value;

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn event_lines() {
        let gap = item_line(&Item::Event(ClientEvent::Gap(Gap {
            from: 5,
            to: Some(6),
            cause: GapCause::SeqJump,
        })));
        assert!(gap.starts_with(r#"{"event":"gap","from":5,"to":6,"cause":"seq_jump","time":""#));
        let unknown = parse(&item_line(&Item::Event(ClientEvent::Gap(Gap {
            from: 9,
            to: None,
            cause: GapCause::ResumeFailed,
        }))));
        assert_eq!(unknown["to"], Value::Null);

        let state = parse(&item_line(&Item::Event(ClientEvent::StateChanged {
            from: ConnectionState::Connected,
            to: ConnectionState::Reconnecting,
        })));
        assert_eq!(state["event"], "state");
        assert_eq!(state["state"], "reconnecting");
        assert_eq!(state["from"], "connected");

        let lost = parse(&item_line(&Item::Event(ClientEvent::Disconnected(
            DisconnectReason::ServerClosed {
                code: 1001,
                reason: "bye".into(),
            },
        ))));
        assert_eq!(lost["kind"], "server_closed");
        assert_eq!(lost["code"], 1001);

        let gave_up = parse(&item_line(&Item::Event(ClientEvent::GaveUp(
            GiveUpReason::Fatal(OpenError::Unauthorized { status: 401 }),
        ))));
        assert_eq!(gave_up["event"], "error");
        assert_eq!(gave_up["kind"], "gave_up");
        assert!(gave_up.get("attempt").is_none());

        let lagged = parse(&item_line(&Item::Event(ClientEvent::Lagged(3))));
        assert_eq!(lagged["missed_events"], 3);
    }
}
