//! The client handle, its builder, and its statistics.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use argus_core::{
    Client, ConnectionConfig, ConnectionState, GiveUpReason, Stats, SubscriptionConfig,
    SubscriptionId,
};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::Instrument;

use crate::driver::{Command, Driver};
use crate::error::{BuildError, ConnectError, SubscribeError, UnsubscribeError};
use crate::events::{ClientEvent, EventStream};
use crate::handler::{HandlerId, HandlerTable, MessageHandler, MessageKind};
use crate::queue::{Queue, QueuePolicy, QueueStats};
use crate::runtime::Runtime;

/// Default room in the handler queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default buffer of each event stream.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// What the connection task, the handler task and the handles share.
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<ConnectionState>,
    /// The event streams' channel, made when the first stream is asked for:
    /// its buffer is allocated whole, and most clients never listen.
    pub(crate) events: OnceLock<broadcast::Sender<ClientEvent>>,
    pub(crate) event_capacity: usize,
    pub(crate) gave_up: Mutex<Option<GiveUpReason>>,
    pub(crate) handlers: HandlerTable,
    pub(crate) queue: Queue,
}

impl Shared {
    pub(crate) fn gave_up_error(&self) -> ConnectError {
        match self
            .gave_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            Some(reason) => reason.into(),
            None => ConnectError::Disconnected,
        }
    }
}

/// Held by the handles only: when the last one goes, the command channel
/// closes and the connection task shuts down.
struct Inner<R: Runtime> {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    /// The connection task, until the first call that needs it starts it.
    unstarted: Mutex<Option<Driver<R>>>,
    config: ConnectionConfig,
}

impl<R: Runtime> Inner<R> {
    /// Starts the connection and handler tasks on the runtime, once.
    fn start(&self) {
        let Some(driver) = self
            .unstarted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let span = tracing::debug_span!("argus", url = %redact_url(&self.config.url));
        let shared = self.shared.clone();
        R::spawn(
            async move {
                let mut batch = std::collections::VecDeque::new();
                while shared.queue.pop_batch(&mut batch).await {
                    let n = batch.len();
                    shared.handlers.dispatch_batch(batch.drain(..)).await;
                    shared.queue.dispatched(n);
                }
                tracing::debug!("handler task ended");
            }
            .instrument(span.clone()),
        );
        R::spawn(driver.run().instrument(span));
    }

    fn send(&self, command: Command) -> bool {
        self.start();
        self.commands.send(command).is_ok()
    }
}

/// The URL without any `user:password@` part, for logs.
pub(crate) fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
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
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Clone for WebSocketClient<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// A handle that does not keep the client alive; see
/// [`WebSocketClient::downgrade`].
pub struct WeakClient<R: Runtime> {
    inner: Weak<Inner<R>>,
}

impl<R: Runtime> Clone for WeakClient<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
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
        self.inner.upgrade().map(|inner| WebSocketClient { inner })
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
    /// The handler queue's counters.
    pub queue: QueueStats,
    /// Message handlers registered.
    pub handlers: usize,
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
        ClientBuilder {
            runtime: PhantomData,
            config,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_policy: QueuePolicy::default(),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            roots_der: Vec::new(),
            roots_pem: Vec::new(),
            builtin_roots: cfg!(feature = "webpki-roots"),
            rng_seed: None,
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
    /// it: [`SubscribeError::Rejected`]). While reconnecting, the request
    /// waits and is sent when the link is up. Local validation errors come
    /// back at once, and so does [`SubscribeError::NotConnected`] when the
    /// client is disconnected.
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

    /// Registers a handler for `kind` (a [`MessageKind`] or a
    /// [`DataType`](argus_core::DataType)). Handlers run one message at a
    /// time and in seq order; see [`QueuePolicy`] for what happens when
    /// they fall behind.
    ///
    /// Where they run: under [`QueuePolicy::Backpressure`] with only
    /// synchronous handlers registered, in the connection task, as each
    /// frame is decoded (the fastest path: a handler that blocks holds up
    /// reading, timers and commands alike, as it would hold up a
    /// current-thread runtime anyway). Once an async handler is registered,
    /// or under another policy, every handler runs in the client's handler
    /// task behind the queue; messages already queued are handed on before
    /// any later one, so switching between the two keeps seq order.
    ///
    /// A handler is a closure or function taking `&MarketData` or
    /// `MarketData`, or one returning a future (an `async fn`, or a closure
    /// returning an `async` block), which is awaited before the next message.
    /// Write the closure's argument type out: it tells the forms apart.
    ///
    /// ```no_run
    /// # use argus_client::{ConnectionConfig, MessageKind, Runtime, WebSocketClient};
    /// # use argus_core::MarketData;
    /// # fn run<R: Runtime>(client: WebSocketClient<R>) {
    /// async fn on_price(data: MarketData) {
    ///     println!("{} {:?}", data.symbol(), data.price());
    /// }
    /// client.add_message_handler(MessageKind::Price, on_price);
    /// client.add_message_handler(MessageKind::All, |data: &MarketData| println!("DEBUG: {data:?}"));
    /// # }
    /// ```
    pub fn add_message_handler<M, H>(&self, kind: impl Into<MessageKind>, handler: H) -> HandlerId
    where
        H: MessageHandler<M>,
    {
        self.inner
            .shared
            .handlers
            .add(kind.into(), None, handler.into_handler())
    }

    /// Registers a handler that sees only the messages of one subscription.
    pub fn add_subscription_handler<M, H>(
        &self,
        subscription: SubscriptionId,
        kind: impl Into<MessageKind>,
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
    /// in progress on another thread is waited for). False when no handler
    /// has this id.
    pub fn remove_message_handler(&self, id: HandlerId) -> bool {
        self.inner.shared.handlers.remove(id)
    }

    /// How many handlers are registered.
    pub fn handler_count(&self) -> usize {
        self.inner.shared.handlers.len()
    }

    /// The original SDK's `get_stats()`: the connection's counters and the
    /// handler queue's.
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
                ..shared.queue.stats()
            },
            handlers: shared.handlers.len(),
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

    /// A stream of everything that happens: data, state changes, gaps,
    /// errors. Each call makes a new stream that sees the events from now on.
    pub fn events(&self) -> EventStream {
        let shared = &self.inner.shared;
        let sender = shared
            .events
            .get_or_init(|| broadcast::channel(shared.event_capacity).0);
        EventStream::new(sender.subscribe())
    }

    /// A handle that does not keep the client alive (for handlers that need
    /// to reach the client).
    pub fn downgrade(&self) -> WeakClient<R> {
        WeakClient {
            inner: Arc::downgrade(&self.inner),
        }
    }
}

/// Builds a [`WebSocketClient`] with the adapter's own settings.
///
/// ```
/// use argus_client::{ConnectionConfig, ConnectionState, QueuePolicy, Runtime, WebSocketClient};
///
/// fn build<R: Runtime>() -> WebSocketClient<R> {
///     let client = WebSocketClient::<R>::builder(ConnectionConfig::new("wss://feed.example.com/ws"))
///         .queue_capacity(4096)
///         .queue_policy(QueuePolicy::ConflateLatest)
///         .rng_seed(7)
///         .build()
///         .unwrap();
///     assert_eq!(client.state(), ConnectionState::Disconnected);
///     client
/// }
/// ```
#[must_use]
pub struct ClientBuilder<R: Runtime> {
    runtime: PhantomData<fn() -> R>,
    config: ConnectionConfig,
    queue_capacity: usize,
    queue_policy: QueuePolicy,
    event_capacity: usize,
    roots_der: Vec<CertificateDer<'static>>,
    roots_pem: Vec<Vec<u8>>,
    builtin_roots: bool,
    rng_seed: Option<u64>,
}

impl<R: Runtime> Clone for ClientBuilder<R> {
    fn clone(&self) -> Self {
        Self {
            runtime: PhantomData,
            config: self.config.clone(),
            queue_capacity: self.queue_capacity,
            queue_policy: self.queue_policy,
            event_capacity: self.event_capacity,
            roots_der: self.roots_der.clone(),
            roots_pem: self.roots_pem.clone(),
            builtin_roots: self.builtin_roots,
            rng_seed: self.rng_seed,
        }
    }
}

impl<R: Runtime> fmt::Debug for ClientBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("queue_capacity", &self.queue_capacity)
            .field("queue_policy", &self.queue_policy)
            .field("event_capacity", &self.event_capacity)
            .field(
                "added_roots",
                &(self.roots_der.len() + self.roots_pem.len()),
            )
            .field("builtin_roots", &self.builtin_roots)
            .field("rng_seed", &self.rng_seed)
            .finish()
    }
}

impl<R: Runtime> ClientBuilder<R> {
    /// Room in the handler queue (default [`DEFAULT_QUEUE_CAPACITY`]).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// What to do when the handler queue is full (default
    /// [`QueuePolicy::Backpressure`]).
    pub fn queue_policy(mut self, policy: QueuePolicy) -> Self {
        self.queue_policy = policy;
        self
    }

    /// Buffer of each [`EventStream`] (default [`DEFAULT_EVENT_CAPACITY`]);
    /// a stream further behind yields [`ClientEvent::Lagged`].
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Trusts this root certificate (DER) for `wss://`, besides the built-in
    /// roots.
    pub fn add_root_certificate(mut self, der: impl Into<CertificateDer<'static>>) -> Self {
        self.roots_der.push(der.into());
        self
    }

    /// Trusts every certificate in this PEM text for `wss://`, besides the
    /// built-in roots.
    pub fn add_root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.roots_pem.push(pem.as_ref().to_vec());
        self
    }

    /// Whether to trust the built-in Mozilla roots (the `webpki-roots`
    /// feature, on by default). With `false`, only the added roots are.
    pub fn builtin_roots(mut self, enabled: bool) -> Self {
        self.builtin_roots = enabled && cfg!(feature = "webpki-roots");
        self
    }

    /// Seeds the reconnect jitter, for reproducible runs (default: random).
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// The built-in roots, when enabled.
    fn base_roots(&self) -> RootCertStore {
        #[allow(unused_mut)]
        let mut roots = RootCertStore::empty();
        #[cfg(feature = "webpki-roots")]
        if self.builtin_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    }

    /// A TLS configuration of this client's own, with the added roots.
    fn tls_with_added_roots(&self) -> Result<Arc<rustls::ClientConfig>, BuildError> {
        let mut roots = self.base_roots();
        for der in &self.roots_der {
            roots
                .add(der.clone())
                .map_err(|e| BuildError::RootCertificate(e.to_string()))?;
        }
        for pem in &self.roots_pem {
            let mut found = false;
            for der in CertificateDer::pem_slice_iter(pem) {
                let der = der.map_err(|e| BuildError::RootCertificate(e.to_string()))?;
                roots
                    .add(der)
                    .map_err(|e| BuildError::RootCertificate(e.to_string()))?;
                found = true;
            }
            if !found {
                return Err(BuildError::RootCertificate(
                    "no certificate in the PEM text".into(),
                ));
            }
        }
        crate::transport::tls_config(roots).map_err(|e| BuildError::Tls(e.to_string()))
    }

    /// Checks the settings and builds the client. Needs no runtime: the
    /// tasks start at the first `async` call.
    pub fn build(self) -> Result<WebSocketClient<R>, BuildError> {
        if self.queue_capacity == 0 {
            return Err(BuildError::ZeroQueueCapacity);
        }
        if self.event_capacity == 0 {
            return Err(BuildError::ZeroEventCapacity);
        }
        let seed = self
            .rng_seed
            .unwrap_or_else(|| RandomState::new().hash_one(0x5eed_u64));
        let core = Client::new(self.config.clone(), seed)?;

        let tls = if self.roots_der.is_empty() && self.roots_pem.is_empty() {
            // Clients without roots of their own share one configuration.
            static SHARED: [OnceLock<Arc<rustls::ClientConfig>>; 2] =
                [OnceLock::new(), OnceLock::new()];
            let slot = &SHARED[usize::from(self.builtin_roots)];
            match slot.get() {
                Some(tls) => tls.clone(),
                None => {
                    let tls = crate::transport::tls_config(self.base_roots())
                        .map_err(|e| BuildError::Tls(e.to_string()))?;
                    slot.get_or_init(|| tls).clone()
                }
            }
        } else {
            self.tls_with_added_roots()?
        };

        let (state, _) = watch::channel(ConnectionState::Disconnected);
        let shared = Arc::new(Shared {
            state,
            events: OnceLock::new(),
            event_capacity: self.event_capacity,
            gave_up: Mutex::new(None),
            handlers: HandlerTable::default(),
            queue: Queue::new(self.queue_capacity, self.queue_policy),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let driver = Driver::new(core, receiver, shared.clone(), tls);
        Ok(WebSocketClient {
            inner: Arc::new(Inner {
                commands,
                shared,
                unstarted: Mutex::new(Some(driver)),
                config: self.config,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_in_logs() {
        assert_eq!(
            redact_url("wss://user:pw@feed.example.com/ws?x=1"),
            "wss://***@feed.example.com/ws?x=1"
        );
        assert_eq!(redact_url("ws://h:1/ws"), "ws://h:1/ws");
        assert_eq!(redact_url("ws://h/ws@x"), "ws://h/ws@x");
    }
}
