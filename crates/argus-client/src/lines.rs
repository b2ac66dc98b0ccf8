//! The client's events as NDJSON lines: what `argus tail` prints, and what
//! the NATS relay publishes for gaps and resumes.
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
//! | `session` | nothing more: a new session began (its token is a secret, never written) |
//! | `resumed` | `replayed` (messages the server replays next) |
//! | `gap` | `from`, `to` (seqs `from..=to` are missing; `to` null when unknown), `cause` (`seq_jump`, `resume_failed`, `resume_timed_out`, `seq_out_of_range`) |
//! | `disconnected` | `kind` (`server_closed`, `lost`, `failed`, `heartbeat_timeout`) and its details, `message` |
//! | `reconnecting` | `attempt`, `delay` (seconds) |
//! | `error` | `kind` (`attempt_failed`, `gave_up`, `subscribe_failed`, `request_timed_out`, `protocol`, `lagged`), `message`, and `attempt`, `id`, `code`, `request` and `timeout` (seconds), or `missed_events` |
//! | `ignored` | `kind`: the `type` of a message this version does not know |
//!
//! ```
//! use argus_client::lines::event_line;
//! use argus_core::{Event, Gap, GapCause};
//!
//! let line = event_line(&Event::Gap(Gap { from: 5, to: Some(6), cause: GapCause::SeqJump }));
//! assert!(line.starts_with(r#"{"event":"gap","from":5,"to":6,"cause":"seq_jump","time":""#));
//! ```

use std::time::SystemTime;

use argus_core::{ConnectionState, DisconnectReason, Event, GapCause, RequestKind};
use serde::Serialize;

use crate::events::Lagged;

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
    Session {},
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
    Error(ErrorBody<'a>),
    Ignored {
        kind: &'a str,
    },
    /// An event kind newer than this tool.
    Other {
        message: String,
    },
}

#[derive(Serialize)]
struct Stamped<T> {
    #[serde(flatten)]
    body: T,
    time: String,
}

/// The fields of an `error` line; those that do not apply are left out.
#[derive(Serialize)]
struct ErrorBody<'a> {
    kind: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<RequestKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    missed_events: Option<u64>,
}

fn error<'a>(kind: &'static str, message: String) -> ErrorBody<'a> {
    ErrorBody {
        kind,
        message,
        attempt: None,
        id: None,
        code: None,
        request: None,
        timeout: None,
        missed_events: None,
    }
}

fn body(event: &Event) -> Body<'_> {
    match event {
        Event::StateChanged { from, to } => Body::State {
            state: *to,
            from: *from,
        },
        Event::Subscribed(id) => Body::Subscribed { id: id.as_str() },
        Event::SessionStarted { .. } => Body::Session {},
        Event::Resumed { replayed } => Body::Resumed {
            replayed: *replayed,
        },
        Event::Gap(gap) => Body::Gap {
            from: gap.from,
            to: gap.to,
            cause: gap.cause,
        },
        Event::Disconnected(reason) => Body::Disconnected {
            reason,
            message: reason.to_string(),
        },
        Event::Reconnecting { attempt, delay } => Body::Reconnecting {
            attempt: *attempt,
            delay: delay.as_secs_f64(),
        },
        Event::AttemptFailed { attempt, error: e } => Body::Error(ErrorBody {
            attempt: Some(*attempt),
            ..error("attempt_failed", e.to_string())
        }),
        Event::SubscribeFailed { id, error: e } => Body::Error(ErrorBody {
            id: Some(id.as_str()),
            code: Some(e.code.as_str()),
            ..error("subscribe_failed", e.message.clone())
        }),
        Event::RequestTimedOut {
            request,
            id,
            timeout,
        } => Body::Error(ErrorBody {
            id: Some(id.as_str()),
            request: Some(*request),
            timeout: Some(timeout.as_secs_f64()),
            ..error(
                "request_timed_out",
                format!("the server did not answer {request} `{id}` within {timeout:?}"),
            )
        }),
        Event::GaveUp(reason) => Body::Error(error("gave_up", reason.to_string())),
        Event::ProtocolError(e) => Body::Error(error("protocol", e.to_string())),
        Event::Ignored { kind } => Body::Ignored { kind },
        // Data has lines of its own (`item_line`); this is an event kind
        // newer than this tool.
        other => Body::Other {
            message: format!("{other:?}"),
        },
    }
}

fn lagged(Lagged(missed): Lagged) -> Body<'static> {
    Body::Error(ErrorBody {
        missed_events: Some(missed),
        ..error("lagged", Lagged(missed).to_string())
    })
}

/// `body` (a struct that serializes with an `event` field first) as a
/// line, with the wall-clock `time` last: for lines of a tool's own, such
/// as `argus tail`'s closing `stats` line.
pub fn stamped(body: impl Serialize) -> String {
    let line = Stamped {
        body,
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
    };
    serde_json::to_string(&line).unwrap_or_else(|e| {
        format!(r#"{{"event":"error","kind":"internal","message":"cannot encode a line: {e}"}}"#)
    })
}

/// The line of an event: a data message exactly as received (the
/// protocol's shape), or an event line.
pub fn event_line(event: &Event) -> String {
    match event {
        Event::Data(data) => serde_json::to_string(data).unwrap_or_else(|e| {
            stamped(Body::Error(error(
                "internal",
                format!("cannot encode a data message: {e}"),
            )))
        }),
        event => stamped(body(event)),
    }
}

/// The line of a lossy stream's [`Lagged`] item: an `error` line of kind
/// `lagged` with `missed_events`.
pub fn lagged_line(missed: Lagged) -> String {
    stamped(lagged(missed))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use argus_core::{Gap, GiveUpReason, OpenError, SessionToken, SubscriptionId};
    use serde_json::Value;

    fn line(event: Event) -> Value {
        serde_json::from_str(&event_line(&event)).unwrap()
    }

    #[test]
    fn event_lines() {
        let gap = event_line(&Event::Gap(Gap {
            from: 5,
            to: Some(6),
            cause: GapCause::SeqJump,
        }));
        assert!(gap.starts_with(r#"{"event":"gap","from":5,"to":6,"cause":"seq_jump","time":""#));
        let unknown = line(Event::Gap(Gap {
            from: 9,
            to: None,
            cause: GapCause::ResumeFailed,
        }));
        assert_eq!(unknown["to"], Value::Null);
        let unanswered = line(Event::Gap(Gap {
            from: 12,
            to: None,
            cause: GapCause::ResumeTimedOut,
        }));
        assert_eq!(unanswered["cause"], "resume_timed_out");

        let state = line(Event::StateChanged {
            from: ConnectionState::Connected,
            to: ConnectionState::Reconnecting,
        });
        assert_eq!(state["event"], "state");
        assert_eq!(state["state"], "reconnecting");
        assert_eq!(state["from"], "connected");

        let lost = line(Event::Disconnected(DisconnectReason::ServerClosed {
            code: 1001,
            reason: "bye".into(),
        }));
        assert_eq!(lost["kind"], "server_closed");
        assert_eq!(lost["code"], 1001);

        let gave_up = line(Event::GaveUp(GiveUpReason::Fatal(
            OpenError::Unauthorized { status: 401 },
        )));
        assert_eq!(gave_up["event"], "error");
        assert_eq!(gave_up["kind"], "gave_up");
        assert!(gave_up.get("attempt").is_none());

        let failed = line(Event::AttemptFailed {
            attempt: 2,
            error: OpenError::Unauthorized { status: 401 },
        });
        assert_eq!(failed["kind"], "attempt_failed");
        assert_eq!(failed["attempt"], 2);

        let ignored = line(Event::Ignored {
            kind: "trade".into(),
        });
        assert_eq!(ignored["event"], "ignored");
        assert_eq!(ignored["kind"], "trade");
    }

    #[test]
    fn a_request_the_server_never_answered() {
        let timed_out = line(Event::RequestTimedOut {
            request: RequestKind::Subscribe,
            id: SubscriptionId::new("cli").unwrap(),
            timeout: Duration::from_millis(1500),
        });
        assert_eq!(timed_out["event"], "error");
        assert_eq!(timed_out["kind"], "request_timed_out");
        assert_eq!(timed_out["request"], "subscribe");
        assert_eq!(timed_out["id"], "cli");
        assert_eq!(timed_out["timeout"], 1.5);
        assert!(timed_out.get("missed_events").is_none());
        assert!(
            timed_out["message"]
                .as_str()
                .unwrap()
                .contains("subscribe `cli`"),
            "{timed_out}"
        );
    }

    #[test]
    fn a_lossy_feed_says_what_it_missed() {
        let lagged: Value = serde_json::from_str(&lagged_line(Lagged(3))).unwrap();
        assert_eq!(lagged["event"], "error");
        assert_eq!(lagged["kind"], "lagged");
        assert_eq!(lagged["missed_events"], 3);
    }

    #[test]
    fn a_session_line_never_shows_the_token() {
        let text = event_line(&Event::SessionStarted {
            session: SessionToken::new("b3e0-secret-token"),
        });
        assert!(!text.contains("b3e0"), "{text}");
        assert_eq!(
            line(Event::SessionStarted {
                session: SessionToken::new("x")
            })["event"],
            "session"
        );
    }
}
