//! The calls waiting on the connection task: `connect()` until the link is
//! up or the client gives up, `subscribe()` until the server answers (or
//! the core's deadline passes), and the replies that wait until a
//! command's transmits went out.

use std::collections::HashMap;

use argus_core::{ConnectionState, Event, GiveUpReason, RequestKind, SubscriptionId};
use tokio::sync::oneshot;

use crate::error::{ConnectError, SubscribeError, UnsubscribeError};

type SubscribeReply = oneshot::Sender<Result<SubscriptionId, SubscribeError>>;

/// A reply that waits until the transmits of its command went out.
pub(crate) enum Deferred {
    Disconnect(oneshot::Sender<()>),
    Unsubscribe(
        oneshot::Sender<Result<(), UnsubscribeError>>,
        Result<(), UnsubscribeError>,
    ),
}

/// An answer decided by an event, sent once the event was delivered (so a
/// caller that reacts to the answer finds the event on its stream already).
pub(crate) struct Answer(SubscribeReply, Result<SubscriptionId, SubscribeError>);

impl Answer {
    pub(crate) fn send(self) {
        let _ = self.0.send(self.1);
    }
}

#[derive(Default)]
pub(crate) struct Replies {
    connect: Vec<oneshot::Sender<Result<(), ConnectError>>>,
    subscribe: HashMap<SubscriptionId, SubscribeReply>,
    deferred: Vec<Deferred>,
}

impl Replies {
    pub(crate) fn wait_connected(&mut self, reply: oneshot::Sender<Result<(), ConnectError>>) {
        self.connect.push(reply);
    }

    pub(crate) fn wait_subscribed(&mut self, id: SubscriptionId, reply: SubscribeReply) {
        self.subscribe.insert(id, reply);
    }

    pub(crate) fn defer(&mut self, deferred: Deferred) {
        self.deferred.push(deferred);
    }

    /// An unsubscribe came before the server answered the subscribe.
    pub(crate) fn cancel(&mut self, id: &str) {
        if let Some((id, waiter)) = self.subscribe.remove_entry(id) {
            let _ = waiter.send(Err(SubscribeError::Cancelled(id)));
        }
    }

    /// Whether nothing waits on the state.
    pub(crate) fn is_idle(&self) -> bool {
        self.connect.is_empty() && self.deferred.is_empty()
    }

    /// The answer `event` decides, if a call waits for it.
    pub(crate) fn answer(&mut self, event: &Event) -> Option<Answer> {
        let (id, result) = match event {
            Event::Subscribed(id) => (id, Ok(id.clone())),
            Event::SubscribeFailed { id, error } => (
                id,
                Err(SubscribeError::Rejected {
                    id: id.clone(),
                    error: error.clone(),
                }),
            ),
            Event::RequestTimedOut {
                request: RequestKind::Subscribe,
                id,
                timeout,
            } => (
                id,
                Err(SubscribeError::TimedOut {
                    id: id.clone(),
                    timeout: *timeout,
                }),
            ),
            _ => return None,
        };
        let waiter = self.subscribe.remove(id)?;
        Some(Answer(waiter, result))
    }

    /// Answers what the state now decides, and every deferred reply.
    pub(crate) fn settle(&mut self, state: ConnectionState, gave_up: Option<GiveUpReason>) {
        match state {
            ConnectionState::Connected => {
                for waiter in self.connect.drain(..) {
                    let _ = waiter.send(Ok(()));
                }
            }
            ConnectionState::Error => {
                let error = gave_up
                    .clone()
                    .map_or(ConnectError::Disconnected, ConnectError::GaveUp);
                for waiter in self.connect.drain(..) {
                    let _ = waiter.send(Err(error.clone()));
                }
                for (_, waiter) in self.subscribe.drain() {
                    let _ = waiter.send(Err(match &gave_up {
                        Some(reason) => SubscribeError::GaveUp(reason.clone()),
                        None => SubscribeError::NotConnected,
                    }));
                }
            }
            ConnectionState::Disconnected => {
                for waiter in self.connect.drain(..) {
                    let _ = waiter.send(Err(ConnectError::Disconnected));
                }
                for (_, waiter) in self.subscribe.drain() {
                    let _ = waiter.send(Err(SubscribeError::Disconnected));
                }
            }
            ConnectionState::Connecting | ConnectionState::Reconnecting => {}
        }
        for deferred in self.deferred.drain(..) {
            match deferred {
                Deferred::Disconnect(reply) => {
                    let _ = reply.send(());
                }
                Deferred::Unsubscribe(reply, result) => {
                    let _ = reply.send(result);
                }
            }
        }
    }
}
