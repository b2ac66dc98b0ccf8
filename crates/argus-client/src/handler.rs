//! Message handlers: what [`WebSocketClient::add_message_handler`] accepts,
//! and the table the dispatcher reads.
//!
//! A handler is any of
//! - a closure or function taking `&MarketData` (runs synchronously),
//! - a closure or function taking `MarketData` (runs synchronously),
//! - a closure or `async fn` taking `MarketData` and returning a future
//!   (awaited before the next message is handed to the next handler).
//!
//! Closures need their argument's type written out (`|data: &MarketData|`),
//! because the three forms are told apart by it.
//!
//! [`WebSocketClient::add_message_handler`]: crate::WebSocketClient::add_message_handler

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use argus_core::{DataType, MarketData, SubscriptionId};
use futures_util::FutureExt;

/// Which messages a handler sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// Price messages.
    Price,
    /// Volume messages.
    Volume,
    /// Order-book messages.
    OrderBook,
    /// Every data message, whatever its type (the original SDK's `"debug"`
    /// handler).
    All,
}

impl MessageKind {
    /// Whether a message of type `data_type` is for this kind.
    pub fn matches(self, data_type: DataType) -> bool {
        match self {
            Self::All => true,
            Self::Price => data_type == DataType::Price,
            Self::Volume => data_type == DataType::Volume,
            Self::OrderBook => data_type == DataType::OrderBook,
        }
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

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A handler with its type erased, ready for the table. Built by
/// [`MessageHandler::into_handler`].
pub struct Handler(Callback);

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form = match self.0 {
            Callback::Borrowed(_) => "sync(&MarketData)",
            Callback::Owned(_) => "sync(MarketData)",
            Callback::Async(_) => "async(MarketData)",
            Callback::Removed => "removed",
        };
        f.debug_tuple("Handler").field(&form).finish()
    }
}

enum Callback {
    Borrowed(Box<dyn FnMut(&MarketData) + Send>),
    Owned(Box<dyn FnMut(MarketData) + Send>),
    Async(Box<dyn FnMut(MarketData) -> BoxFuture + Send>),
    /// The handler was removed and its closure dropped (a snapshot taken
    /// before the removal may still list the entry).
    Removed,
}

/// Something [`WebSocketClient::add_message_handler`](crate::WebSocketClient::add_message_handler)
/// accepts. `M` is a marker ([`Borrowed`], [`Owned`] or [`Async`]) that
/// tells the three forms apart; it is inferred.
pub trait MessageHandler<M>: Send + 'static {
    /// Erases the handler's type.
    fn into_handler(self) -> Handler;
}

/// Marks a synchronous handler taking `&MarketData`.
#[derive(Debug)]
pub enum Borrowed {}

/// Marks a synchronous handler taking `MarketData`.
#[derive(Debug)]
pub enum Owned {}

/// Marks an asynchronous handler taking `MarketData`, returning `Fut`.
pub struct Async<Fut>(PhantomData<fn() -> Fut>);

impl<Fut> fmt::Debug for Async<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Async")
    }
}

impl<F> MessageHandler<Borrowed> for F
where
    F: FnMut(&MarketData) + Send + 'static,
{
    fn into_handler(self) -> Handler {
        Handler(Callback::Borrowed(Box::new(self)))
    }
}

impl<F> MessageHandler<Owned> for F
where
    F: FnMut(MarketData) + Send + 'static,
{
    fn into_handler(self) -> Handler {
        Handler(Callback::Owned(Box::new(self)))
    }
}

impl<F, Fut> MessageHandler<Async<Fut>> for F
where
    F: FnMut(MarketData) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn into_handler(self) -> Handler {
        let mut f = self;
        Handler(Callback::Async(Box::new(move |data| Box::pin(f(data)))))
    }
}

/// One registered handler.
struct Entry {
    id: HandlerId,
    kind: MessageKind,
    /// Its callback returns a future.
    is_async: bool,
    /// Only this subscription's messages, when set.
    subscription: Option<SubscriptionId>,
    removed: AtomicBool,
    callback: Mutex<Callback>,
}

impl Entry {
    fn wants(&self, data_type: DataType, subscription: &SubscriptionId) -> bool {
        self.kind.matches(data_type) && self.subscription.as_ref().is_none_or(|s| s == subscription)
    }
}

thread_local! {
    /// The handler the dispatcher is calling on this thread, so a handler
    /// that removes itself does not wait for itself.
    static RUNNING: Cell<Option<HandlerId>> = const { Cell::new(None) };
}

/// The handlers registered at one moment, in registration order.
#[derive(Default)]
pub(crate) struct Snapshot {
    entries: Box<[Arc<Entry>]>,
    any_async: bool,
}

impl Snapshot {
    fn new(entries: Vec<Arc<Entry>>) -> Self {
        Self {
            any_async: entries.iter().any(|e| e.is_async),
            entries: entries.into_boxed_slice(),
        }
    }

    /// Whether some handler is asynchronous (and so cannot be called from
    /// the connection task, which it might await).
    pub(crate) fn any_async(&self) -> bool {
        self.any_async
    }
}

/// The registered handlers. Readers take a snapshot (an `Arc` clone), so
/// adding or removing never waits for a handler to run.
pub(crate) struct HandlerTable {
    next_id: AtomicU64,
    entries: RwLock<Arc<Snapshot>>,
    /// Bumped by every change of the table, so a reader that keeps a
    /// snapshot knows when to take a new one.
    generation: AtomicU64,
    panics: AtomicU64,
}

impl Default for HandlerTable {
    fn default() -> Self {
        Self {
            next_id: AtomicU64::new(1),
            entries: RwLock::new(Arc::default()),
            generation: AtomicU64::new(0),
            panics: AtomicU64::new(0),
        }
    }
}

impl HandlerTable {
    pub(crate) fn add(
        &self,
        kind: MessageKind,
        subscription: Option<SubscriptionId>,
        handler: Handler,
    ) -> HandlerId {
        let id = HandlerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let entry = Arc::new(Entry {
            id,
            kind,
            is_async: matches!(handler.0, Callback::Async(_)),
            subscription,
            removed: AtomicBool::new(false),
            callback: Mutex::new(handler.0),
        });
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let mut next: Vec<Arc<Entry>> = entries.entries.to_vec();
        next.push(entry);
        *entries = Arc::new(Snapshot::new(next));
        self.generation.fetch_add(1, Ordering::Release);
        id
    }

    /// Removes a handler; once this returns it is not called again (a call
    /// already under way on another thread is waited for).
    pub(crate) fn remove(&self, id: HandlerId) -> bool {
        let removed = {
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            let Some(entry) = entries.entries.iter().find(|e| e.id == id).cloned() else {
                return false;
            };
            let next = entries
                .entries
                .iter()
                .filter(|e| e.id != id)
                .cloned()
                .collect();
            *entries = Arc::new(Snapshot::new(next));
            self.generation.fetch_add(1, Ordering::Release);
            entry
        };
        removed.removed.store(true, Ordering::SeqCst);
        if RUNNING.with(Cell::get) != Some(id) {
            // Wait for a call in progress to end; later calls see `removed`.
            // The closure (and what it holds) goes now, not when the last
            // snapshot listing it does.
            *removed
                .callback
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Callback::Removed;
        }
        // A handler removing itself is dropped by its dispatcher once its
        // call returns.
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
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
            .clone()
    }

    /// Changes with every change of the table: read it before taking a
    /// [`snapshot`](Self::snapshot), and take a new one when it moved.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Hands `data` to every handler that wants it, in registration order;
    /// an async handler is awaited before the next one runs. A panicking
    /// handler is counted and skipped.
    #[cfg(test)]
    pub(crate) async fn dispatch(&self, data: MarketData) {
        self.dispatch_with(&self.snapshot(), data).await;
    }

    /// Hands every message of `batch` on, in order, against one snapshot of
    /// the table (a handler removed meanwhile is still skipped: see `remove`).
    pub(crate) async fn dispatch_batch(&self, batch: impl IntoIterator<Item = MarketData>) {
        let snapshot = self.snapshot();
        for data in batch {
            self.dispatch_with(&snapshot, data).await;
        }
    }

    async fn dispatch_with(&self, snapshot: &Snapshot, data: MarketData) {
        let mut recipients = Recipients::new(snapshot, &data);
        let mut data = Some(data);
        while let Some((entry, last)) = recipients.next(data.as_ref()) {
            if let Some(future) = self.call(entry, &mut data, last)
                && std::panic::AssertUnwindSafe(future)
                    .catch_unwind()
                    .await
                    .is_err()
            {
                self.handler_panicked(entry.id);
            }
        }
    }

    /// Hands `data` to every handler of `snapshot` that wants it, in
    /// registration order, on this thread: for a snapshot without async
    /// handlers (an async one met here would be skipped).
    pub(crate) fn dispatch_sync(&self, snapshot: &Snapshot, data: MarketData) {
        let mut recipients = Recipients::new(snapshot, &data);
        let mut data = Some(data);
        while let Some((entry, last)) = recipients.next(data.as_ref()) {
            if self.call(entry, &mut data, last).is_some() {
                tracing::debug!(handler = %entry.id, "async handler met by a synchronous dispatch; skipped");
            }
        }
    }

    /// Calls one handler with the message (taken by the last handler,
    /// cloned for the others); an async handler's future is returned to be
    /// awaited. A removed handler is not called; a panic is counted.
    fn call(&self, entry: &Entry, data: &mut Option<MarketData>, last: bool) -> Option<BoxFuture> {
        let mut callback = entry
            .callback
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if entry.removed.load(Ordering::SeqCst) {
            return None;
        }
        RUNNING.with(|r| r.set(Some(entry.id)));
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &mut *callback {
                Callback::Borrowed(f) => {
                    if let Some(message) = data.as_ref() {
                        f(message);
                    }
                    None
                }
                Callback::Owned(f) => {
                    if let Some(message) = take_or_clone(data, last) {
                        f(message);
                    }
                    None
                }
                Callback::Async(f) => take_or_clone(data, last).map(f),
                Callback::Removed => None,
            }));
        RUNNING.with(|r| r.set(None));
        if entry.removed.load(Ordering::SeqCst) {
            // It removed itself during the call.
            *callback = Callback::Removed;
        }
        outcome.unwrap_or_else(|_| {
            self.handler_panicked(entry.id);
            None
        })
    }

    fn handler_panicked(&self, id: HandlerId) {
        self.panics.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(handler = %id, "message handler panicked; the message is skipped for it");
    }
}

/// The handlers of a snapshot that want one message, in registration order,
/// each with whether it is the last of them (which may take the message
/// instead of a clone). The message is lent to [`next`](Self::next) only,
/// so that the caller may hand it on between steps.
struct Recipients<'a> {
    entries: std::slice::Iter<'a, Arc<Entry>>,
    /// How many entries are left up to and including the last recipient.
    left: usize,
}

impl<'a> Recipients<'a> {
    fn new(snapshot: &'a Snapshot, data: &MarketData) -> Self {
        let last = snapshot
            .entries
            .iter()
            .rposition(|e| e.wants(data.data_type(), data.subscription()));
        Self {
            entries: snapshot.entries.iter(),
            left: last.map_or(0, |l| l + 1),
        }
    }

    /// The next recipient of `data` (`None` once the last one took it).
    fn next(&mut self, data: Option<&MarketData>) -> Option<(&'a Entry, bool)> {
        let data = data?;
        while self.left > 0 {
            self.left -= 1;
            let entry = self.entries.next()?;
            if entry.wants(data.data_type(), data.subscription()) {
                return Some((entry, self.left == 0));
            }
        }
        None
    }
}

/// The message itself for the last handler, a clone for the others.
fn take_or_clone(data: &mut Option<MarketData>, last: bool) -> Option<MarketData> {
    if last { data.take() } else { data.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn price(seq: u64) -> MarketData {
        let text = format!(
            r#"{{"type":"price","sub":"main","seq":{seq},"symbol":"AAPL","price":1.5,"timestamp":"2026-11-24T09:49:56.123Z"}}"#
        );
        let msg = argus_core::wire::ServerMessage::decode(&text).unwrap();
        MarketData::from_wire(&msg, SubscriptionId::new("main").unwrap())
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn three_forms_and_removal() {
        let table = HandlerTable::default();
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let a = table.add(
            MessageKind::Price,
            None,
            (move |_: &MarketData| {
                s.fetch_add(1, Ordering::SeqCst);
            })
            .into_handler(),
        );
        let s = seen.clone();
        table.add(
            MessageKind::All,
            None,
            (move |d: MarketData| {
                assert_eq!(d.seq(), 1);
                s.fetch_add(10, Ordering::SeqCst);
            })
            .into_handler(),
        );
        let s = seen.clone();
        table.add(
            MessageKind::Volume,
            None,
            (move |_: MarketData| {
                let s = s.clone();
                async move {
                    s.fetch_add(100, Ordering::SeqCst);
                }
            })
            .into_handler(),
        );
        let s = seen.clone();
        table.add(
            MessageKind::Price,
            None,
            (move |_: MarketData| {
                let s = s.clone();
                async move {
                    tokio::task::yield_now().await;
                    s.fetch_add(1000, Ordering::SeqCst);
                }
            })
            .into_handler(),
        );
        table.dispatch(price(1)).await;
        assert_eq!(seen.load(Ordering::SeqCst), 1011);
        assert!(table.remove(a));
        assert!(!table.remove(a));
        table.dispatch(price(1)).await;
        assert_eq!(seen.load(Ordering::SeqCst), 2021);
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn removal_drops_the_closure_though_a_snapshot_still_lists_it() {
        let table = HandlerTable::default();
        let held = Arc::new(());
        let h = held.clone();
        let id = table.add(
            MessageKind::All,
            None,
            (move |_: &MarketData| {
                let _ = &h;
            })
            .into_handler(),
        );
        let snapshot = table.snapshot();
        let generation = table.generation();
        assert_eq!(Arc::strong_count(&held), 2);
        assert!(table.remove(id));
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "the closure outlived its removal"
        );
        assert_ne!(table.generation(), generation);
        // The stale snapshot calls nothing.
        table.dispatch_sync(&snapshot, price(1));
        assert!(!snapshot.any_async());
    }

    #[test]
    fn a_handler_removing_itself_is_dropped_after_its_call() {
        let table = Arc::new(HandlerTable::default());
        let held = Arc::new(());
        let (h, t) = (held.clone(), Arc::downgrade(&table));
        let id = Arc::new(std::sync::OnceLock::new());
        let me = id.clone();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        id.set(
            table.add(
                MessageKind::All,
                None,
                (move |_: &MarketData| {
                    let _ = &h;
                    c.fetch_add(1, Ordering::SeqCst);
                    if let (Some(table), Some(id)) = (t.upgrade(), me.get()) {
                        assert!(table.remove(*id));
                    }
                })
                .into_handler(),
            ),
        )
        .unwrap();
        let snapshot = table.snapshot();
        table.dispatch_sync(&snapshot, price(1));
        table.dispatch_sync(&snapshot, price(2));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(Arc::strong_count(&held), 1);
    }

    #[tokio::test]
    async fn panics_are_contained() {
        let table = HandlerTable::default();
        table.add(
            MessageKind::All,
            None,
            (|_: &MarketData| panic!("boom")).into_handler(),
        );
        let hit = Arc::new(AtomicBool::new(false));
        let h = hit.clone();
        table.add(
            MessageKind::All,
            None,
            (move |_: &MarketData| h.store(true, Ordering::SeqCst)).into_handler(),
        );
        table.dispatch(price(1)).await;
        assert!(hit.load(Ordering::SeqCst));
        assert_eq!(table.panics(), 1);
    }

    #[test]
    fn kinds_parse_from_the_seeds_names() {
        assert_eq!("debug".parse::<MessageKind>().unwrap(), MessageKind::All);
        assert_eq!(
            "orderbook".parse::<MessageKind>().unwrap(),
            MessageKind::OrderBook
        );
        assert!("ticks".parse::<MessageKind>().is_err());
        assert!(MessageKind::All.matches(DataType::Volume));
        assert!(!MessageKind::Price.matches(DataType::Volume));
    }
}
