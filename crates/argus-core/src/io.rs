//! What crosses the boundary between the core and a transport: [`Input`]s the
//! transport feeds in, [`Transmit`]s it carries out, and [`Event`]s for the
//! application.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::config::ApiKey;
use crate::data::MarketData;
use crate::subscription::SubscriptionId;
use crate::wire::{ErrorCode, SessionToken};

/// Something the transport observed, fed to [`Client::handle_input`](crate::Client::handle_input).
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<'a> {
    /// The WebSocket upgrade of the last [`Transmit::Open`] completed.
    Opened,
    /// The last [`Transmit::Open`] failed before the upgrade completed.
    OpenFailed(OpenError),
    /// A text frame arrived.
    Text(&'a str),
    /// A binary frame arrived (a protocol error the client survives).
    Binary(&'a [u8]),
    /// A Ping control frame arrived (the transport answers it).
    Ping(&'a [u8]),
    /// A Pong control frame arrived.
    Pong(&'a [u8]),
    /// The transport gave up on the link itself (it was not closed by the
    /// server): a message over the size limit, a failed write, a socket error.
    Failed(LinkError),
    /// The connection ended: a close frame with its code, or `code: None` when
    /// the socket closed without one.
    Closed {
        /// The close code, when a close frame arrived.
        code: Option<u16>,
        /// The close reason, possibly empty.
        reason: &'a str,
    },
}

/// Why opening a connection failed. [`OpenError::is_fatal`] tells whether
/// retrying could help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The server refused the credentials (HTTP 401 or 403). Fatal.
    #[error("the server refused the credentials (HTTP {status}); check the api key")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// The URL cannot be connected to as given. Fatal.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The server's TLS certificate was rejected. Fatal.
    #[error("TLS certificate rejected: {0}")]
    Certificate(String),
    /// The server answered the upgrade with another HTTP status. Retried.
    #[error("the server answered the upgrade with HTTP {status}")]
    Http {
        /// The status code.
        status: u16,
    },
    /// A socket, DNS, or TLS transport error. Retried.
    #[error("network error: {0}")]
    Network(String),
    /// The handshake or `welcome` did not arrive within `timeout`. Retried.
    #[error("no welcome within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection before `welcome`. Retried.
    #[error("the server closed the connection before welcome (code {code:?})")]
    ClosedBeforeWelcome {
        /// The close code, if any.
        code: Option<u16>,
    },
    /// The server's `welcome` names a protocol version this client does not
    /// speak. Fatal: retrying would meet the same server.
    #[error("the server speaks protocol version {server}; this client speaks {client}")]
    UnsupportedProtocol {
        /// The version the server announced.
        server: u32,
        /// The version this client speaks.
        client: u32,
    },
    /// The connection came up but ended before it delivered any data or
    /// answered a heartbeat (a server that welcomes and then closes, say).
    /// It counts as a failed attempt, so backoff grows and
    /// `max_reconnect_attempts` applies. Retried.
    #[error("the connection ended before it was of any use: {0}")]
    Unproductive(Box<DisconnectReason>),
}

impl OpenError {
    /// The one place an HTTP status answering the upgrade becomes an error,
    /// for every transport: `401`/`403` refuse the credentials (fatal, never
    /// retried); any other status, `429` and `5xx` included, is retried with
    /// backoff. A `3xx` is not followed: the client connects only where it
    /// was told to, and retries that place.
    pub fn from_http_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::Unauthorized { status },
            status => Self::Http { status },
        }
    }

    /// Whether retrying cannot help: 401/403, an invalid URL, a rejected certificate.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Unauthorized { .. }
                | Self::InvalidUrl(_)
                | Self::Certificate(_)
                | Self::UnsupportedProtocol { .. }
        )
    }
}

/// What the core asks the transport to open.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenRequest {
    /// The server's URL.
    pub url: String,
    /// The key for `Authorization: Bearer`, if any. Redacted in `Debug`.
    pub api_key: Option<ApiKey>,
    /// The subprotocol to offer: `argus.v1`.
    pub subprotocol: &'static str,
    /// Largest incoming message to accept, in bytes.
    pub max_message_size: usize,
}

impl OpenRequest {
    /// The `Authorization` header's value, if a key is set. Never log it.
    pub fn authorization(&self) -> Option<String> {
        self.api_key
            .as_ref()
            .map(|key| format!("Bearer {}", key.expose()))
    }
}

impl fmt::Debug for OpenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenRequest")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("subprotocol", &self.subprotocol)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

/// Whether RFC 6455 (section 7.4) allows `code` in a close frame: 1000–1003,
/// 1007–1014, and 3000–4999 for libraries and applications.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: going away.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: protocol error.
pub const CLOSE_PROTOCOL: u16 = 1002;
/// Close code: policy violation.
pub const CLOSE_POLICY: u16 = 1008;
/// Close code: message too big.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: the server dropped a slow consumer.
pub const CLOSE_SLOW_CONSUMER: u16 = 4000;

/// Something the transport must do, drained from [`Client::poll_transmit`](crate::Client::poll_transmit).
#[derive(Debug, PartialEq)]
#[must_use]
#[non_exhaustive]
pub enum Transmit {
    /// Open a WebSocket connection, replacing any previous one.
    Open(OpenRequest),
    /// Send a text frame.
    Text(String),
    /// Send a Ping control frame with this payload.
    Ping([u8; 8]),
    /// Send a close frame if the socket can take it, without waiting, and drop
    /// the socket. Feed nothing more from it.
    Close {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: &'static str,
    },
}

/// The connection's state, as the original SDK named it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    /// Not connected, and not trying.
    #[default]
    Disconnected,
    /// Opening the first connection after [`Client::connect`](crate::Client::connect).
    Connecting,
    /// `welcome` arrived: the link is up.
    Connected,
    /// The link was lost or an attempt failed: waiting to retry, or retrying.
    Reconnecting,
    /// Given up: credentials refused, a fatal error, or attempts exhausted.
    Error,
}

impl ConnectionState {
    /// The original SDK's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure the transport detected on its own link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LinkError {
    /// An incoming message exceeded `max_message_size` (the transport closes with 1009).
    #[error("an incoming message exceeded max_message_size")]
    MessageTooBig,
    /// A write failed or the outgoing buffer overflowed.
    #[error("write failed: {0}")]
    Write(String),
    /// The socket or the WebSocket layer failed.
    #[error("socket error: {0}")]
    Socket(String),
}

/// Why a live connection ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server sent a close frame.
    #[error("the server closed the connection with code {code}: {reason}")]
    ServerClosed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The server sent a close frame whose code RFC 6455 does not allow on
    /// the wire (999, 1005, 5000, …): reported as sent. The link is lost
    /// all the same, and the client reconnects.
    #[error("the server closed the connection with code {code}, which is not a valid close code")]
    InvalidCloseCode {
        /// The code as the server sent it.
        code: u16,
    },
    /// The socket ended without a close frame.
    #[error("the connection was lost without a close frame")]
    Lost,
    /// The transport gave up on the link.
    #[error("the link failed: {error}")]
    Failed {
        /// What the transport saw.
        error: LinkError,
    },
    /// The live seq jumped further than `max_seq_jump`: the client closed
    /// the link (1002) to start over on a new session.
    #[error("the seq jumped from {last} to {got}, beyond max_seq_jump: starting a new session")]
    SeqOutOfRange {
        /// The last seq processed.
        last: u64,
        /// The seq that arrived.
        got: u64,
    },
    /// No frame arrived within `timeout` after a ping: the link is half-open.
    #[error("no frame within {timeout:?} after a ping: the link is dead")]
    HeartbeatTimeout {
        /// The timeout that passed.
        #[serde(serialize_with = "crate::stats::serialize_duration_secs")]
        timeout: Duration,
    },
}

/// Why the client stopped trying: the state is now `Error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// An attempt failed in a way retrying cannot fix (credentials
    /// refused, an invalid URL, a rejected certificate); no retry was made.
    #[error("retrying would not help: {0}")]
    Fatal(OpenError),
    /// `max_reconnect_attempts` consecutive attempts failed.
    #[error("gave up after {attempts} failed attempts; last: {last}")]
    AttemptsExhausted {
        /// How many attempts failed in a row.
        attempts: u32,
        /// The last attempt's error.
        last: OpenError,
    },
    /// The link was lost and reconnecting is disabled (`max_reconnect_attempts` = 0).
    #[error("the connection ended and reconnecting is disabled: {0}")]
    ReconnectDisabled(DisconnectReason),
}

/// Where a session stands: its token and the last seq processed. Enough to
/// resume the session on a later connection, or in another process after a
/// restart ([`Client::resume_from`](crate::Client::resume_from)).
///
/// A secret: the token lets anyone with the api key take the session over.
/// `Debug` redacts it; serializing it (to persist it) writes it in clear, so
/// store it where the api key would be stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ResumePoint {
    /// The session's token.
    #[serde(deserialize_with = "owned_token")]
    pub session: SessionToken<'static>,
    /// The last seq processed in it (0: none yet).
    pub last_seq: u64,
}

fn owned_token<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SessionToken<'static>, D::Error> {
    <String as serde::Deserialize>::deserialize(d).map(SessionToken::new)
}

/// Data that did not reach the application: seqs `from..=to` are missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The first missing seq.
    pub from: u64,
    /// The last missing seq, or `None` when unknown (a session could not be
    /// resumed: everything after `from − 1` of the old session may be lost).
    pub to: Option<u64>,
    /// Why.
    pub cause: GapCause,
}

/// Why a [`Gap`] happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// The live stream's seq jumped.
    SeqJump,
    /// The server could not resume the session; a new one started.
    ResumeFailed,
    /// The server did not answer `resume` within `timeout`: the session is
    /// treated as lost and the connection goes on with the fresh one.
    ResumeTimedOut,
    /// The live seq jumped beyond `max_seq_jump`: the client dropped the
    /// session and started a new one.
    SeqOutOfRange,
}

/// A request of the client that the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestKind {
    /// `subscribe`, answered by `subscribed` or `error`.
    Subscribe,
    /// `unsubscribe`, answered by `unsubscribed` or `error`.
    Unsubscribe,
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
        })
    }
}

/// An `error` message from the server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServerError {
    /// The error code.
    pub code: ErrorCode,
    /// The server's explanation (its first 160 characters, when longer).
    pub message: String,
}

/// A problem with what the server sent. The connection goes on.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame that is not a valid server message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] crate::wire::DecodeError),
    /// A data message with a bad symbol or timestamp.
    #[error("invalid data message (seq {seq}): {error}")]
    InvalidData {
        /// Its seq, which counts as processed.
        seq: u64,
        /// What was wrong.
        error: crate::data::InvalidData,
    },
    /// A binary frame: the protocol uses text only.
    #[error("binary frame of {0} bytes; the protocol uses text frames only")]
    BinaryFrame(usize),
    /// A data message whose seq jumps further than `max_seq_jump`; it is
    /// not delivered, and the client starts a new session.
    #[error("seq {got} after {last} jumps further than max_seq_jump ({bound})")]
    SeqOutOfRange {
        /// The last seq processed.
        last: u64,
        /// The seq that arrived.
        got: u64,
        /// The configured bound.
        bound: u64,
    },
    /// A message that makes no sense now (`welcome` twice, data before `welcome`).
    #[error("unexpected `{0}` message")]
    Unexpected(&'static str),
    /// An `error` not tied to a request of ours.
    #[error("server error: {0}")]
    Server(ServerError),
}

/// Something for the application, drained from [`Client::poll_event`](crate::Client::poll_event).
///
/// The events of one client form one ordered sequence (data, gaps, resumes
/// and state changes in wire order); every consumer of the client sees that
/// same sequence. Cloning is cheap except for order books, which own their
/// levels.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The state changed.
    StateChanged {
        /// The state before.
        from: ConnectionState,
        /// The state now.
        to: ConnectionState,
    },
    /// Market data.
    Data(MarketData),
    /// A subscribe was acknowledged.
    Subscribed(SubscriptionId),
    /// A subscribe was refused; the subscription is gone.
    SubscribeFailed {
        /// The subscription.
        id: SubscriptionId,
        /// The server's error.
        error: ServerError,
    },
    /// A new server session began: on the first connection, and whenever a
    /// session could not be resumed (after its [`Event::Gap`]). Seqs start
    /// again at 1. The token lets a consumer persist a [`ResumePoint`]
    /// (session, last seq) and resume in another process
    /// ([`Client::resume_from`](crate::Client::resume_from)); it is a
    /// secret, redacted in `Debug`.
    SessionStarted {
        /// The session's token.
        session: SessionToken<'static>,
    },
    /// The session of an earlier connection was resumed.
    Resumed {
        /// How many missed messages the server replays next.
        replayed: u64,
    },
    /// Data was lost.
    Gap(Gap),
    /// A request the server did not answer within `timeout`. The link stays
    /// up. A subscribe that timed out is gone (an unsubscribe is sent in
    /// case the server acts on it late); an unsubscribe had already taken
    /// effect locally.
    RequestTimedOut {
        /// Which request.
        request: RequestKind,
        /// The subscription it named.
        id: SubscriptionId,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// A live connection ended; a reconnect follows unless the client gives up.
    Disconnected(DisconnectReason),
    /// A connection attempt failed.
    AttemptFailed {
        /// The attempt's number in this outage, 1-based.
        attempt: u32,
        /// What went wrong.
        error: OpenError,
    },
    /// The next attempt is scheduled.
    Reconnecting {
        /// Its number in this outage, 1-based.
        attempt: u32,
        /// How long until it starts.
        delay: Duration,
    },
    /// The client stopped trying; the state is `Error`.
    GaveUp(GiveUpReason),
    /// A problem with what the server sent; nothing stops.
    ProtocolError(ProtocolError),
    /// A message of a `type` this version does not know, ignored (log it at
    /// debug level; it is not an error).
    Ignored {
        /// Its `type`.
        kind: String,
    },
}

impl Event {
    /// The event's name, for logs: `data`, `state_changed`, `gap`, …
    pub fn name(&self) -> &'static str {
        match self {
            Self::StateChanged { .. } => "state_changed",
            Self::Data(_) => "data",
            Self::Subscribed(_) => "subscribed",
            Self::SubscribeFailed { .. } => "subscribe_failed",
            Self::SessionStarted { .. } => "session_started",
            Self::Resumed { .. } => "resumed",
            Self::Gap(_) => "gap",
            Self::RequestTimedOut { .. } => "request_timed_out",
            Self::Disconnected(_) => "disconnected",
            Self::AttemptFailed { .. } => "attempt_failed",
            Self::Reconnecting { .. } => "reconnecting",
            Self::GaveUp(_) => "gave_up",
            Self::ProtocolError(_) => "protocol_error",
            Self::Ignored { .. } => "ignored",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_request_never_shows_the_key() {
        let request = OpenRequest {
            url: "wss://feed.example/ws".into(),
            api_key: Some(ApiKey::new("sk-live-999")),
            subprotocol: crate::wire::SUBPROTOCOL,
            max_message_size: 1 << 20,
        };
        let shown = format!("{request:?} {:?}", Transmit::Open(request.clone()));
        assert!(!shown.contains("sk-live-999"), "{shown}");
        assert_eq!(
            request.authorization().as_deref(),
            Some("Bearer sk-live-999")
        );
    }

    #[test]
    fn http_statuses_are_classified_once() {
        assert_eq!(
            OpenError::from_http_status(401),
            OpenError::Unauthorized { status: 401 }
        );
        assert!(OpenError::from_http_status(403).is_fatal());
        for retried in [301, 302, 400, 404, 429, 500, 502, 503] {
            let error = OpenError::from_http_status(retried);
            assert_eq!(error, OpenError::Http { status: retried });
            assert!(!error.is_fatal(), "{retried}");
        }
    }

    #[test]
    fn fatal_open_errors() {
        assert!(OpenError::Unauthorized { status: 403 }.is_fatal());
        assert!(OpenError::Certificate("unknown issuer".into()).is_fatal());
        assert!(OpenError::InvalidUrl("x".into()).is_fatal());
        assert!(!OpenError::Http { status: 503 }.is_fatal());
        assert!(!OpenError::Timeout(Duration::from_secs(1)).is_fatal());
    }
}
