//! Message handlers: what [`WebSocketClient::add_message_handler`] accepts,
//! and the table the delivery stage reads.
//!
//! A handler is any of
//! - a closure or function taking `&MarketData` or `MarketData` (data only),
//! - a closure or function taking `&Event` or `Event` (any event it asked
//!   for: data, gaps, resumes, state changes, …),
//! - a closure or `async fn` taking `MarketData` or `Event` and returning a
//!   future (awaited before the handler gets the next event).
//!
//! Closures need their argument's type written out (`|data: &MarketData|`),
//! because the forms are told apart by it.
//!
//! [`WebSocketClient::add_message_handler`]: crate::WebSocketClient::add_message_handler

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use argus_core::{DataType, Event, SubscriptionId};
use futures_util::FutureExt;

use crate::interest::Interest;
use crate::queue::QueuePolicy;

mod form;

pub use form::{
    Async, AsyncEvent, Borrowed, BorrowedEvent, Handler, MessageHandler, Owned, OwnedEvent,
};
use form::{BoxFuture, Callback};

/// Which data messages a handler sees (the original SDK's names). For
/// events that are not data, register with an [`Interest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// Price messages.
    Price,
    /// Volume messages.
    Volume,
    /// Order-book messages.
    OrderBook,
    /// Every data message, whatever its type (the original SDK's `"debug"`).
    All,
}

impl MessageKind {
    /// Whether a message of type `data_type` is for this kind.
    pub fn matches(self, data_type: DataType) -> bool {
        Interest::from(self).contains(data_type.into())
    }
}

impl From<DataType> for MessageKind {
    fn from(data_type: DataType) -> Self {
        match data_type {
            DataType::Price => Self::Price,
            DataType::Volume => Self::Volume,
            DataType::OrderBook => Self::OrderBook,
        }
    }
}

/// A string that names no [`MessageKind`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a message kind: use price, volume, orderbook, or all (alias debug)")]
pub struct InvalidMessageKind(pub String);

impl FromStr for MessageKind {
    type Err = InvalidMessageKind;

    /// The original SDK's names: `price`, `volume`, `orderbook`, and `debug`
    /// (or `all`) for every message.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "price" => Ok(Self::Price),
            "volume" => Ok(Self::Volume),
            "orderbook" => Ok(Self::OrderBook),
            "all" | "debug" => Ok(Self::All),
            other => Err(InvalidMessageKind(other.to_owned())),
        }
    }
}

/// Names a registered handler, for [`WebSocketClient::remove_message_handler`](crate::WebSocketClient::remove_message_handler).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(u64);

impl fmt::Display for HandlerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler#{}", self.0)
    }
}

/// One registered handler.
struct Entry {
    id: HandlerId,
    interest: Interest,
    /// Only this subscription's data, when set.
    subscription: Option<SubscriptionId>,
    /// Its callback returns a future (so it never runs inline).
    is_async: bool,
    /// Set by `remove`; a removed handler is never called again.
    removed: AtomicBool,
    callback: Mutex<Callback>,
}

impl Entry {
    /// Whether the handler wants `event`, of kind `kind` (its [`Interest::of`]).
    fn wants(&self, kind: Interest, event: &Event) -> bool {
        self.interest.intersects(kind)
            && match (&self.subscription, event) {
                (Some(only), Event::Data(data)) => data.subscription() == only,
                _ => true,
            }
    }

    /// Drops the closure, unless a call is under way (on any thread, this
    /// one included: a handler removing itself); the dispatcher then drops
    /// it when the call returns.
    fn release(&self) {
        if let Ok(mut callback) = self.callback.try_lock() {
            *callback = Callback::Removed;
        }
    }
}

/// The handlers registered at one moment, in registration order, split by
/// where they run.
#[derive(Default)]
pub(crate) struct Snapshot {
    /// Called by the connection task as each event is delivered:
    /// synchronous handlers under [`QueuePolicy::Backpressure`].
    inline: Box<[Arc<Entry>]>,
    /// Called by the handler task, behind the handler queue: async
    /// handlers, and every handler under a lossy policy.
    queued: Box<[Arc<Entry>]>,
    /// What the queued handlers want, together.
    queued_interest: Interest,
}

impl Snapshot {
    /// Whether a handler of the handler task wants `event`.
    pub(crate) fn queue_wants(&self, kind: Interest, event: &Event) -> bool {
        self.queued_interest.intersects(kind) && self.queued.iter().any(|e| e.wants(kind, event))
    }

    /// Whether an inline handler wants `event`.
    pub(crate) fn inline_wants(&self, kind: Interest, event: &Event) -> bool {
        self.inline.iter().any(|e| e.wants(kind, event))
    }
}

/// The registered handlers. Readers take a snapshot (an `Arc` clone), so
/// adding or removing never waits for a handler to run.
pub(crate) struct HandlerTable {
    policy: QueuePolicy,
    next_id: AtomicU64,
    entries: RwLock<(Vec<Arc<Entry>>, Arc<Snapshot>)>,
    /// Bumped by every change of the table, so a reader that keeps a
    /// snapshot knows when to take a new one.
    generation: AtomicU64,
    panics: AtomicU64,
}

impl HandlerTable {
    pub(crate) fn new(policy: QueuePolicy) -> Self {
        Self {
            policy,
            next_id: AtomicU64::new(1),
            entries: RwLock::default(),
            generation: AtomicU64::new(0),
            panics: AtomicU64::new(0),
        }
    }

    fn publish(&self, entries: &mut (Vec<Arc<Entry>>, Arc<Snapshot>)) {
        let runs_inline = |e: &Arc<Entry>| self.policy == QueuePolicy::Backpressure && !e.is_async;
        let (inline, queued): (Vec<_>, Vec<_>) = entries.0.iter().cloned().partition(runs_inline);
        let queued_interest = queued
            .iter()
            .fold(Interest::NONE, |set, e| set | e.interest);
        entries.1 = Arc::new(Snapshot {
            inline: inline.into(),
            queued: queued.into(),
            queued_interest,
        });
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn add(
        &self,
        interest: Interest,
        subscription: Option<SubscriptionId>,
        handler: Handler,
    ) -> HandlerId {
        let id = HandlerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let entry = Arc::new(Entry {
            id,
            interest: interest.and(handler.accepts),
            subscription,
            is_async: matches!(handler.callback, Callback::Async(_)),
            removed: AtomicBool::new(false),
            callback: Mutex::new(handler.callback),
        });
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.0.push(entry);
        self.publish(&mut entries);
        id
    }

    /// Removes a handler: once this returns it is not called again (a call
    /// already under way may finish), and its closure is dropped at once or,
    /// when a call is under way, as soon as that call returns.
    pub(crate) fn remove(&self, id: HandlerId) -> bool {
        let removed = {
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            let Some(at) = entries.0.iter().position(|e| e.id == id) else {
                return false;
            };
            let entry = entries.0.remove(at);
            self.publish(&mut entries);
            entry
        };
        removed.removed.store(true, Ordering::SeqCst);
        removed.release();
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .len()
    }

    pub(crate) fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// The table as it is now.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// Changes with every change of the table: read it before taking a
    /// [`snapshot`](Self::snapshot), and take a new one when it moved.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Hands `event` (of kind `kind`) to the inline handlers of `snapshot`
    /// that want it, in registration order, on this thread. True when one did.
    pub(crate) fn dispatch_inline(
        &self,
        snapshot: &Snapshot,
        kind: Interest,
        event: Event,
    ) -> bool {
        let mut recipients = Recipients::new(&snapshot.inline, kind, &event);
        let any = recipients.left > 0;
        let mut event = Some(event);
        while let Some((entry, last)) = recipients.next(event.as_ref()) {
            if self.call(entry, &mut event, last).is_some() {
                tracing::debug!(handler = %entry.id, "async handler met inline; skipped");
            }
        }
        any
    }

    /// Hands `event` to the queued handlers of `snapshot` that want it, in
    /// registration order; an async handler is awaited before the next one
    /// runs.
    pub(crate) async fn dispatch_queued(&self, snapshot: &Snapshot, event: Event) {
        let mut recipients = Recipients::new(&snapshot.queued, Interest::of(&event), &event);
        let mut event = Some(event);
        while let Some((entry, last)) = recipients.next(event.as_ref()) {
            if let Some(future) = self.call(entry, &mut event, last)
                && std::panic::AssertUnwindSafe(future)
                    .catch_unwind()
                    .await
                    .is_err()
            {
                self.handler_panicked(entry.id);
            }
        }
    }

    /// Calls one handler with the event (taken by the last recipient,
    /// cloned for the others); an async handler's future is returned to be
    /// awaited. A removed handler is not called; a panic is counted.
    fn call(&self, entry: &Entry, event: &mut Option<Event>, last: bool) -> Option<BoxFuture> {
        let mut callback = entry
            .callback
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if entry.removed.load(Ordering::SeqCst) {
            *callback = Callback::Removed;
            return None;
        }
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &mut *callback {
                Callback::Borrowed(f) => {
                    if let Some(event) = event.as_ref() {
                        f(event);
                    }
                    None
                }
                Callback::Owned(f) => {
                    if let Some(event) = take_or_clone(event, last) {
                        f(event);
                    }
                    None
                }
                Callback::Async(f) => take_or_clone(event, last).map(f),
                Callback::Removed => None,
            }));
        if entry.removed.load(Ordering::SeqCst) {
            // Removed during the call (by itself, or by another thread).
            *callback = Callback::Removed;
        }
        outcome.unwrap_or_else(|_| {
            self.handler_panicked(entry.id);
            None
        })
    }

    fn handler_panicked(&self, id: HandlerId) {
        self.panics.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(handler = %id, "message handler panicked; the event is skipped for it");
    }
}

/// The entries that want one event, in order, each with whether it is the
/// last of them (which may take the event instead of a clone). The event is
/// lent to [`next`](Self::next) only, so the caller may hand it on between
/// steps.
struct Recipients<'a> {
    kind: Interest,
    entries: std::slice::Iter<'a, Arc<Entry>>,
    /// How many entries are left up to and including the last recipient.
    left: usize,
}

impl<'a> Recipients<'a> {
    fn new(entries: &'a [Arc<Entry>], kind: Interest, event: &Event) -> Self {
        let last = entries.iter().rposition(|e| e.wants(kind, event));
        Self {
            kind,
            entries: entries.iter(),
            left: last.map_or(0, |l| l + 1),
        }
    }

    fn next(&mut self, event: Option<&Event>) -> Option<(&'a Entry, bool)> {
        let event = event?;
        while self.left > 0 {
            self.left -= 1;
            let entry = self.entries.next()?;
            if entry.wants(self.kind, event) {
                return Some((entry, self.left == 0));
            }
        }
        None
    }
}

/// The event itself for the last recipient, a clone for the others.
fn take_or_clone(event: &mut Option<Event>, last: bool) -> Option<Event> {
    if last { event.take() } else { event.clone() }
}

#[cfg(test)]
mod tests;
