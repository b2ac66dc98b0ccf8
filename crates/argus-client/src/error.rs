//! The adapter's errors: one enum per fallible call.

use argus_core::{ConfigError, GiveUpReason, OpenError, ServerError, SubscriptionId};

/// Why a [`WebSocketClient`](crate::WebSocketClient) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A [`ConnectionConfig`](argus_core::ConnectionConfig) field is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The handler queue must hold at least one message.
    #[error("queue_capacity: must be greater than zero")]
    ZeroQueueCapacity,
    /// Each event stream's buffer must hold at least one event.
    #[error("event_capacity: must be greater than zero")]
    ZeroEventCapacity,
    /// An extra root certificate could not be read or used.
    #[error("TLS root certificate: {0}")]
    RootCertificate(String),
    /// rustls refused the TLS settings.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A subscription given to the builder is invalid.
    #[error("subscription: {0}")]
    Subscription(argus_core::SubscribeError),
}

/// Why [`connect`](crate::WebSocketClient::connect) or
/// [`wait_for_connection`](crate::WebSocketClient::wait_for_connection)
/// did not end connected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The client gave up, and says why: an attempt failed in a way
    /// retrying cannot fix ([`GiveUpReason::Fatal`]: credentials refused,
    /// an invalid URL, a rejected certificate; no retry was made),
    /// `max_reconnect_attempts` attempts in a row failed, or the link was
    /// lost with reconnecting disabled. The state is `Error`; a later
    /// `connect()` starts again.
    #[error("the client gave up: {0}")]
    GaveUp(#[from] GiveUpReason),
    /// The client is disconnected: [`disconnect`](crate::WebSocketClient::disconnect)
    /// was called, or [`connect`](crate::WebSocketClient::connect) never was.
    #[error("the client is disconnected; call connect()")]
    Disconnected,
    /// The client's tasks have ended.
    #[error("the client has shut down")]
    Shutdown,
}

impl ConnectError {
    /// The error of the attempt that decided it, if one did.
    pub fn open_error(&self) -> Option<&OpenError> {
        match self {
            Self::GaveUp(
                GiveUpReason::Fatal(e) | GiveUpReason::AttemptsExhausted { last: e, .. },
            ) => Some(e),
            _ => None,
        }
    }

    /// Whether retrying cannot help (credentials, URL, certificate).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::GaveUp(GiveUpReason::Fatal(_)))
    }
}

/// Why [`subscribe`](crate::WebSocketClient::subscribe) did not end with the
/// server's acknowledgement.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The request was refused locally (bad id or config, duplicate id, too
    /// many subscriptions); nothing was sent.
    #[error(transparent)]
    Invalid(#[from] argus_core::SubscribeError),
    /// The server refused the subscription; it is gone.
    #[error("the server refused subscription `{id}`: {error}")]
    Rejected {
        /// The subscription.
        id: SubscriptionId,
        /// The server's error (its `code` says why).
        error: ServerError,
    },
    /// The client is disconnected (or gave up); call
    /// [`connect`](crate::WebSocketClient::connect) first. Nothing was queued.
    #[error("the client is not connected; call connect() first")]
    NotConnected,
    /// The server did not answer within the config's `timeout`. The link
    /// stays up; the subscription is gone (an unsubscribe was sent in case
    /// the server acts on it late). Retrying is safe.
    #[error("the server did not answer subscription `{id}` within {timeout:?}")]
    TimedOut {
        /// The subscription.
        id: SubscriptionId,
        /// The deadline that passed.
        timeout: std::time::Duration,
    },
    /// [`unsubscribe`](crate::WebSocketClient::unsubscribe) was called before
    /// the server answered.
    #[error("subscription `{0}` was unsubscribed before the server answered")]
    Cancelled(SubscriptionId),
    /// [`disconnect`](crate::WebSocketClient::disconnect) was called before
    /// the server answered; the subscription is gone.
    #[error("the client disconnected before the server answered")]
    Disconnected,
    /// The client gave up reconnecting before the server answered. The
    /// subscription stays queued and is sent when
    /// [`connect`](crate::WebSocketClient::connect) succeeds again.
    #[error(
        "the client gave up before the server answered ({0}); the subscription stays queued for the next connect()"
    )]
    GaveUp(GiveUpReason),
    /// The client's tasks have ended.
    #[error("the client has shut down")]
    Shutdown,
}

impl SubscribeError {
    /// The server's error, when the server refused.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Self::Rejected { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Why [`unsubscribe`](crate::WebSocketClient::unsubscribe) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsubscribeError {
    /// No subscription has this id.
    #[error(transparent)]
    Unknown(#[from] argus_core::UnsubscribeError),
    /// The client's tasks have ended.
    #[error("the client has shut down")]
    Shutdown,
}
