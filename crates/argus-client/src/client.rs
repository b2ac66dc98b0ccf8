//! The client handle and its statistics.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use argus_core::{ConnectionConfig, ConnectionState, Stats, SubscriptionConfig, SubscriptionId};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::builder::ClientBuilder;
use crate::error::{BuildError, ConnectError, SubscribeError, UnsubscribeError};
use crate::events::{EventStream, LossyEventStream};
use crate::handler::{HandlerId, MessageHandler};
use crate::interest::Interest;
use crate::queue::{Queue, QueuePolicy, QueueStats};
use crate::runtime::Runtime;
use crate::shared::{Command, Consumer, Shared, SubscriptionInfo};

/// Held by the handles only: when the last one goes, the command channel
/// closes and the connection task shuts down.
pub(crate) struct Inner {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) shared: Arc<Shared>,
    /// Starts the connection task, until the first call that needs it does.
    pub(crate) unstarted: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    pub(crate) config: ConnectionConfig,
}

impl Inner {
    /// Starts the connection and handler tasks on the runtime, once.
    fn start(&self) {
        let start = self
            .unstarted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(start) = start {
            start();
        }
    }

    fn send(&self, command: Command) -> bool {
        self.start();
        self.commands.send(command).is_ok()
    }
}

/// A connection to an Argus server: the Rust form of the original SDK's
/// `WebSocketClient`.
///
/// The handle is cheap to clone; every clone drives the same connection,
/// which runs in its own task; message handlers run there too, or in a
/// handler task of their own (see [`add_message_handler`](Self::add_message_handler)).
/// Dropping the last handle closes the connection (code 1000) and ends
/// both tasks.
/// A handler that holds a handle keeps the client alive: give it a
/// [`WeakClient`] instead.
///
/// `R` is the async runtime it runs on; the adapter crates name it
/// (`argus_tokio::WebSocketClient` is `WebSocketClient<Tokio>`). The tasks
/// start at the first `async` call, on the runtime of the task making it.
///
/// ```no_run
/// use argus_client::{ConnectionConfig, MessageKind, Runtime, WebSocketClient};
/// use argus_core::{DataType, MarketData, SubscriptionConfig};
///
/// # async fn run<R: Runtime>() -> Result<(), Box<dyn std::error::Error>> {
/// let client = WebSocketClient::<R>::new(ConnectionConfig::new("ws://localhost:8000/ws"))?;
/// client.add_message_handler(MessageKind::Price, |data: &MarketData| {
///     println!("{} {:?}", data.symbol(), data.price());
/// });
/// client.connect().await?;
/// client
///     .subscribe("main", SubscriptionConfig::new(["AAPL", "GOOGL"], [DataType::Price]))
///     .await?;
/// # Ok(()) }
/// ```
pub struct WebSocketClient<R: Runtime> {
    inner: Arc<Inner>,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Clone for WebSocketClient<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            runtime: PhantomData,
        }
    }
}

/// A handle that does not keep the client alive; see
/// [`WebSocketClient::downgrade`].
pub struct WeakClient<R: Runtime> {
    inner: Weak<Inner>,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Clone for WeakClient<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            runtime: PhantomData,
        }
    }
}

impl<R: Runtime> fmt::Debug for WeakClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakClient")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl<R: Runtime> WeakClient<R> {
    /// The client, if a strong handle still exists.
    pub fn upgrade(&self) -> Option<WebSocketClient<R>> {
        self.inner.upgrade().map(|inner| WebSocketClient {
            inner,
            runtime: PhantomData,
        })
    }
}

impl<R: Runtime> fmt::Debug for WebSocketClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketClient")
            .field("config", &self.inner.config)
            .field("state", &self.state())
            .field("handlers", &self.handler_count())
            .finish()
    }
}

/// The original SDK's `get_stats()`: the connection's counters plus the
/// handler queue's. Serialises flat, like the original's dictionary.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ClientStats {
    /// The connection's counters, from the core.
    #[serde(flatten)]
    pub connection: Stats,
    /// The handler queue's counters (and the events handed to inline
    /// handlers).
    pub queue: QueueStats,
    /// Message handlers registered.
    pub handlers: usize,
    /// Event streams open.
    pub event_streams: usize,
}

impl<R: Runtime> WebSocketClient<R> {
    /// A client with the default adapter settings (see [`ClientBuilder`]).
    /// Nothing connects until [`connect`](Self::connect).
    pub fn new(config: ConnectionConfig) -> Result<Self, BuildError> {
        Self::builder(config).build()
    }

    /// A builder for the adapter's own settings: handler queue, TLS roots,
    /// randomness.
    pub fn builder(config: ConnectionConfig) -> ClientBuilder<R> {
        ClientBuilder::new(config)
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
            runtime: PhantomData,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ConnectionConfig {
        &self.inner.config
    }

    /// Connects, and resolves once the server's `welcome` arrived. A failed
    /// attempt is retried with backoff until `max_reconnect_attempts` in a
    /// row have failed; credentials refused, an invalid URL or a rejected
    /// certificate end it at once. Already connected: resolves at once.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        let (reply, answer) = oneshot::channel();
        if !self.inner.send(Command::Connect(reply)) {
            return Err(ConnectError::Shutdown);
        }
        answer.await.unwrap_or(Err(ConnectError::Shutdown))
    }

    /// Closes the connection (code 1000) and stays disconnected. Every
    /// subscription is dropped; a later [`connect`](Self::connect) starts
    /// afresh. Resolves once the close frame was handed to the socket.
    pub async fn disconnect(&self) {
        let (reply, answer) = oneshot::channel();
        if self.inner.send(Command::Disconnect(reply)) {
            let _ = answer.await;
        }
    }

    /// Subscribes, and resolves once the server acknowledged it (or refused
    /// it: [`SubscribeError::Rejected`], or did not answer within the
    /// config's `timeout`: [`SubscribeError::TimedOut`]). While
    /// reconnecting, the request waits and is sent when the link is up.
    /// Local validation errors come back at once, and so does
    /// [`SubscribeError::NotConnected`] when the client is disconnected.
    pub async fn subscribe(
        &self,
        id: impl AsRef<str>,
        config: SubscriptionConfig,
    ) -> Result<SubscriptionId, SubscribeError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Subscribe {
            id: id.as_ref().to_owned(),
            config,
            reply,
        };
        if !self.inner.send(command) {
            return Err(SubscribeError::Shutdown);
        }
        answer.await.unwrap_or(Err(SubscribeError::Shutdown))
    }

    /// Unsubscribes. It takes effect at once: no more data of this
    /// subscription reaches the handlers; the server is told when the link
    /// is up.
    pub async fn unsubscribe(&self, id: impl AsRef<str>) -> Result<(), UnsubscribeError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Unsubscribe {
            id: id.as_ref().to_owned(),
            reply,
        };
        if !self.inner.send(command) {
            return Err(UnsubscribeError::Shutdown);
        }
        answer.await.unwrap_or(Err(UnsubscribeError::Shutdown))
    }

    /// Registers a handler for `kind`: a [`MessageKind`](crate::MessageKind) or a
    /// [`DataType`](argus_core::DataType) for data, or any [`Interest`]
    /// (data, gaps, resumes, state changes, …). A handler sees the events it
    /// asked for one at a time, in the client's one order: one registered
    /// for data and gaps sees each gap exactly between the data before and
    /// after it.
    ///
    /// A handler is a closure or function taking `&MarketData` or
    /// `MarketData` (data only), or `&Event` or `Event` (any event), or one
    /// of these returning a future (an `async fn`, or a closure returning an
    /// `async` block), awaited before the handler's next event. Write the
    /// closure's argument type out: it tells the forms apart.
    ///
    /// Where they run: under [`QueuePolicy::Backpressure`] (the default),
    /// a synchronous handler runs in the connection task as each frame is
    /// decoded (the fastest path: a handler that blocks holds up reading,
    /// timers and commands alike, as it would hold up a current-thread
    /// runtime anyway); an async handler runs in the client's handler task
    /// behind the bounded handler queue. Under a lossy policy every handler
    /// runs behind the queue, which drops or conflates when they fall
    /// behind. Handlers in the same place run in registration order.
    ///
    /// ```no_run
    /// # use argus_client::{ConnectionConfig, Interest, MessageKind, Runtime, WebSocketClient};
    /// # use argus_core::{Event, MarketData};
    /// # fn run<R: Runtime>(client: WebSocketClient<R>) {
    /// async fn on_price(data: MarketData) {
    ///     println!("{} {:?}", data.symbol(), data.price());
    /// }
    /// client.add_message_handler(MessageKind::Price, on_price);
    /// client.add_message_handler(MessageKind::All, |data: &MarketData| println!("DEBUG: {data:?}"));
    /// client.add_message_handler(Interest::DATA | Interest::GAP, |event: &Event| match event {
    ///     Event::Data(data) => println!("{} #{}", data.symbol(), data.seq()),
    ///     Event::Gap(gap) => println!("lost seqs from {}", gap.from),
    ///     _ => {}
    /// });
    /// # }
    /// ```
    pub fn add_message_handler<M, H>(&self, kind: impl Into<Interest>, handler: H) -> HandlerId
    where
        H: MessageHandler<M>,
    {
        self.inner
            .shared
            .handlers
            .add(kind.into(), None, handler.into_handler())
    }

    /// Registers a handler that sees only the data of one subscription (and
    /// any event that is not data it asked for).
    pub fn add_subscription_handler<M, H>(
        &self,
        subscription: SubscriptionId,
        kind: impl Into<Interest>,
        handler: H,
    ) -> HandlerId
    where
        H: MessageHandler<M>,
    {
        self.inner
            .shared
            .handlers
            .add(kind.into(), Some(subscription), handler.into_handler())
    }

    /// Removes a handler. Once this returns it is not called again (a call
    /// already under way may finish), and its closure is dropped. False
    /// when no handler has this id.
    pub fn remove_message_handler(&self, id: HandlerId) -> bool {
        self.inner.shared.handlers.remove(id)
    }

    /// How many handlers are registered.
    pub fn handler_count(&self) -> usize {
        self.inner.shared.handlers.len()
    }

    /// The connection's counters and the handler queue's.
    pub async fn stats(&self) -> ClientStats {
        let (reply, answer) = oneshot::channel();
        let connection = if self.inner.send(Command::Stats(reply)) {
            answer.await.unwrap_or_default()
        } else {
            Stats::default()
        };
        let shared = &self.inner.shared;
        ClientStats {
            connection,
            queue: QueueStats {
                handler_panics: shared.handlers.panics(),
                inline: shared.inline.load(Ordering::Relaxed),
                ..shared.handler_queue.stats()
            },
            handlers: shared.handlers.len(),
            event_streams: shared.streams.list().len(),
        }
    }

    /// The original SDK's name for [`stats`](Self::stats).
    pub async fn get_stats(&self) -> ClientStats {
        self.stats().await
    }

    /// The subscriptions the application holds (the order is by id): what
    /// each asks for, and where it stands with the server.
    pub async fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        let (reply, answer) = oneshot::channel();
        if self.inner.send(Command::Subscriptions(reply)) {
            answer.await.unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    /// The connection's state now.
    pub fn state(&self) -> ConnectionState {
        *self.inner.shared.state.borrow()
    }

    /// Resolves once the client is connected; at once when it is. Fails when
    /// the client gives up ([`ConnectionState::Error`], with the reason) or
    /// is disconnected.
    pub async fn wait_for_connection(&self) -> Result<(), ConnectError> {
        let mut state = self.inner.shared.state.subscribe();
        loop {
            let now = *state.borrow_and_update();
            match now {
                ConnectionState::Connected => return Ok(()),
                ConnectionState::Error => return Err(self.inner.shared.gave_up_error()),
                ConnectionState::Disconnected => return Err(ConnectError::Disconnected),
                ConnectionState::Connecting | ConnectionState::Reconnecting => {}
            }
            let changed = std::pin::pin!(state.changed());
            let closed = std::pin::pin!(self.inner.commands.closed());
            match futures_util::future::select(changed, closed).await {
                futures_util::future::Either::Left((Ok(()), _)) => {}
                _ => return Err(ConnectError::Shutdown),
            }
        }
    }

    /// The client's one ordered output: every event (data, gaps, resumes,
    /// state changes, errors) in the core's order, from now on. Lossless: a
    /// reader that falls behind its buffer
    /// ([`ClientBuilder::event_capacity`]) holds the socket's reading until
    /// it catches up. Each call makes a stream of its own.
    pub fn events(&self) -> EventStream {
        self.events_of(Interest::ALL)
    }

    /// Like [`events`](Self::events), for the events of `interest` only.
    pub fn events_of(&self, interest: impl Into<Interest>) -> EventStream {
        EventStream::new(self.add_consumer(interest.into(), QueuePolicy::Backpressure))
    }

    /// The events of `interest` for a reader that prefers losing events to
    /// slowing the feed: when it falls behind, `policy`
    /// ([`QueuePolicy::DropOldest`] or [`QueuePolicy::ConflateLatest`])
    /// decides what goes, and the stream says how many with a
    /// [`Lagged`](crate::Lagged) item. With [`QueuePolicy::Backpressure`] it
    /// never lags.
    pub fn lossy_events(
        &self,
        interest: impl Into<Interest>,
        policy: QueuePolicy,
    ) -> LossyEventStream {
        LossyEventStream::new(self.add_consumer(interest.into(), policy))
    }

    fn add_consumer(&self, interest: Interest, policy: QueuePolicy) -> Arc<Queue> {
        let shared = &self.inner.shared;
        let queue = Arc::new(Queue::new(shared.event_capacity, policy));
        shared.streams.add(Consumer {
            queue: queue.clone(),
            interest,
        });
        queue
    }

    /// A handle that does not keep the client alive (for handlers that need
    /// to reach the client).
    pub fn downgrade(&self) -> WeakClient<R> {
        WeakClient {
            inner: Arc::downgrade(&self.inner),
            runtime: PhantomData,
        }
    }
}
