//! The typed event stream: data, state changes, gaps and errors, as a
//! [`futures_util::Stream`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use argus_core::{
    ConnectionState, DisconnectReason, Gap, GiveUpReason, MarketData, OpenError, ProtocolError,
    ServerError, SubscriptionId,
};
use futures_util::Stream;
use tokio::sync::broadcast;

/// Something that happened to the client, from [`WebSocketClient::events`](crate::WebSocketClient::events).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Market data (also handed to the message handlers).
    Data(MarketData),
    /// The connection's state changed.
    StateChanged {
        /// The state before.
        from: ConnectionState,
        /// The state now.
        to: ConnectionState,
    },
    /// The server acknowledged a subscription.
    Subscribed(SubscriptionId),
    /// The server refused a subscription; it is gone.
    SubscribeFailed {
        /// The subscription.
        id: SubscriptionId,
        /// The server's error.
        error: ServerError,
    },
    /// The session of an earlier connection was resumed.
    Resumed {
        /// How many missed messages the server replays next.
        replayed: u64,
    },
    /// Data was lost: seqs `from..=to` never arrived.
    Gap(Gap),
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
    ProtocolError(Arc<ProtocolError>),
    /// This stream fell behind and missed this many events (its buffer is
    /// [`ClientBuilder::event_capacity`](crate::ClientBuilder::event_capacity)).
    Lagged(u64),
}

impl ClientEvent {
    /// The event as a core [`Event`](argus_core::Event) would name it, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Data(_) => "data",
            Self::StateChanged { .. } => "state_changed",
            Self::Subscribed(_) => "subscribed",
            Self::SubscribeFailed { .. } => "subscribe_failed",
            Self::Resumed { .. } => "resumed",
            Self::Gap(_) => "gap",
            Self::Disconnected(_) => "disconnected",
            Self::AttemptFailed { .. } => "attempt_failed",
            Self::Reconnecting { .. } => "reconnecting",
            Self::GaveUp(_) => "gave_up",
            Self::ProtocolError(_) => "protocol_error",
            Self::Lagged(_) => "lagged",
        }
    }
}

type Inner = Pin<Box<dyn Stream<Item = ClientEvent> + Send>>;

/// A stream of [`ClientEvent`]s. Each stream has its own buffer; one that
/// falls behind yields [`ClientEvent::Lagged`] and goes on with the newest
/// events (lossless delivery is what message handlers with
/// [`QueuePolicy::Backpressure`](crate::QueuePolicy::Backpressure) are for).
/// It ends once the client is dropped.
pub struct EventStream {
    inner: Inner,
}

impl EventStream {
    pub(crate) fn new(receiver: broadcast::Receiver<ClientEvent>) -> Self {
        let inner = futures_util::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((event, receiver)),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    Some((ClientEvent::Lagged(n), receiver))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Self {
            inner: Box::pin(inner),
        }
    }

    /// The next event, or `None` once the client is gone: the same as
    /// `StreamExt::next`, without importing a futures crate.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        std::future::poll_fn(|cx| self.inner.as_mut().poll_next(cx)).await
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl Stream for EventStream {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.inner.as_mut().poll_next(cx)
    }
}
