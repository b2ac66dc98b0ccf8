//! What the handles and the client's tasks share: the commands a handle
//! sends, the published state, the handler table, and the consumers of the
//! one ordered output.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use argus_core::{ConnectionState, GiveUpReason, Stats, SubscriptionConfig, SubscriptionId};
use tokio::sync::{oneshot, watch};

use crate::error::{ConnectError, SubscribeError, UnsubscribeError};
use crate::handler::HandlerTable;
use crate::interest::Interest;
use crate::queue::{Queue, QueuePolicy};

/// What a handle asks of the connection task.
pub(crate) enum Command {
    Connect(oneshot::Sender<Result<(), ConnectError>>),
    Disconnect(oneshot::Sender<()>),
    Subscribe {
        id: String,
        config: SubscriptionConfig,
        reply: oneshot::Sender<Result<SubscriptionId, SubscribeError>>,
    },
    Unsubscribe {
        id: String,
        reply: oneshot::Sender<Result<(), UnsubscribeError>>,
    },
    Stats(oneshot::Sender<Stats>),
    Subscriptions(oneshot::Sender<Vec<SubscriptionInfo>>),
}

/// One subscription the application holds, from
/// [`WebSocketClient::subscriptions`](crate::WebSocketClient::subscriptions).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SubscriptionInfo {
    /// Its id.
    pub id: SubscriptionId,
    /// What it asks for: symbols, data types, update frequency, filters.
    pub config: argus_core::NormalizedSubscription,
    /// Where it stands with the server.
    pub status: argus_core::SubscriptionStatus,
}

/// A consumer of the event sequence besides the handlers: one event stream.
#[derive(Clone)]
pub(crate) struct Consumer {
    pub(crate) queue: Arc<Queue>,
    pub(crate) interest: Interest,
}

/// The event streams, as the delivery stage reads them.
#[derive(Default)]
pub(crate) struct Consumers {
    list: Mutex<Vec<Consumer>>,
    /// Bumped by every change of the list.
    generation: AtomicU64,
}

impl Consumers {
    pub(crate) fn add(&self, consumer: Consumer) {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(consumer);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Forgets the streams that were dropped.
    pub(crate) fn prune(&self) {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|c| !c.queue.is_abandoned());
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn list(&self) -> Vec<Consumer> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Ends every stream once it has taken what it holds.
    pub(crate) fn close(&self) {
        for consumer in self.list().iter() {
            consumer.queue.close();
        }
    }
}

/// What the connection task, the handler task and the handles share.
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<ConnectionState>,
    pub(crate) gave_up: Mutex<Option<GiveUpReason>>,
    pub(crate) handlers: HandlerTable,
    /// The queue in front of the handlers that the handler task runs.
    pub(crate) handler_queue: Queue,
    /// Events handed to inline handlers (one writer: the connection task).
    pub(crate) inline: AtomicU64,
    pub(crate) streams: Consumers,
    /// Room of each event stream.
    pub(crate) event_capacity: usize,
}

impl Shared {
    pub(crate) fn new(queue_capacity: usize, policy: QueuePolicy, event_capacity: usize) -> Self {
        Self {
            state: watch::channel(ConnectionState::Disconnected).0,
            gave_up: Mutex::new(None),
            handlers: HandlerTable::new(policy),
            handler_queue: Queue::new(queue_capacity, policy),
            inline: AtomicU64::new(0),
            streams: Consumers::default(),
            event_capacity,
        }
    }

    pub(crate) fn gave_up_reason(&self) -> Option<GiveUpReason> {
        self.gave_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn gave_up_error(&self) -> ConnectError {
        match self.gave_up_reason() {
            Some(reason) => reason.into(),
            None => ConnectError::Disconnected,
        }
    }
}
