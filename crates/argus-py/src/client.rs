//! The native client behind `argus.websocket_client.WebSocketClient`: the
//! tokio adapter's client, its one event stream, and the dispatch of that
//! stream to Python handlers and `events()` iterators.
//!
//! One Rust consumer reads `WebSocketClient::events()`, taking every event
//! that is ready as one batch. The Python side (a task on the application's
//! asyncio loop) takes a batch, then hands it to `Client.dispatch`, which
//! holds the GIL for the whole batch: it builds each event's object once
//! and calls the matching handlers in order. An async handler's coroutine
//! is handed back to be awaited before the next handler or message, so
//! every handler sees the stream in order, one message at a time.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use argus_tokio::{
    ApiKey, ConnectError, ConnectionConfig, DataType, Interest, QueuePolicy, SubscribeError,
    SubscriptionConfig, UnsubscribeError, UpdateFrequency, WebSocketClient,
};
use futures_util::FutureExt;
use futures_util::stream::{ReadyChunks, Stream, StreamExt};
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_async_runtimes::tokio::future_into_py;
use tokio::sync::Notify;

use crate::convert::{self, Converter, EVENT_KINDS, Json, Kind};
use crate::{ArgusConnectError, ArgusSubscribeError};

/// Events one batch holds at most.
const MAX_BATCH: usize = 4096;
/// The client's one ordered stream, lossless (`slow_consumer` backpressure:
/// a full stream holds the socket's reading) or lossy (its policy drops or
/// conflates and says so), read in batches.
type Chunks = ReadyChunks<Pin<Box<dyn Stream<Item = convert::Item> + Send>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A duration from a number of seconds, named in the error.
pub(crate) fn seconds(field: &str, secs: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        PyValueError::new_err(format!(
            "{field}: must be a finite number of seconds, zero or more (got {secs})"
        ))
    })
}

/// The core's connection settings from the seed's fields, checked.
#[allow(clippy::too_many_arguments)]
pub(crate) fn connection_config(
    url: String,
    api_key: Option<String>,
    max_reconnect_attempts: u32,
    reconnect_delay: f64,
    heartbeat_interval: f64,
    timeout: f64,
    max_subscriptions: usize,
) -> PyResult<ConnectionConfig> {
    let reconnect_delay = seconds("reconnect_delay", reconnect_delay)?;
    let mut config = ConnectionConfig {
        api_key: api_key.map(ApiKey::from),
        max_reconnect_attempts,
        reconnect_delay,
        heartbeat_interval: seconds("heartbeat_interval", heartbeat_interval)?,
        timeout: seconds("timeout", timeout)?,
        max_subscriptions,
        ..ConnectionConfig::new(url)
    };
    config.max_backoff = config.max_backoff.max(reconnect_delay);
    config
        .validate()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(config)
}

/// The core's subscription request from the seed's fields, checked.
pub(crate) fn subscription_config(
    symbols: Vec<String>,
    data_types: Vec<String>,
    update_frequency: &str,
    min_price: Option<f64>,
    max_price: Option<f64>,
) -> PyResult<SubscriptionConfig> {
    let data_types = data_types
        .iter()
        .map(|t| {
            t.parse::<DataType>()
                .map_err(|e| PyValueError::new_err(format!("data_types: {e}")))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let frequency = update_frequency
        .parse::<UpdateFrequency>()
        .map_err(|e| PyValueError::new_err(format!("update_frequency: {e}")))?;
    let mut config = SubscriptionConfig::new(symbols, data_types).update_frequency(frequency);
    config.filters.min_price = min_price;
    config.filters.max_price = max_price;
    config
        .normalized()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(config)
}

fn queue_policy(name: &str) -> PyResult<QueuePolicy> {
    match name {
        "backpressure" => Ok(QueuePolicy::Backpressure),
        "drop_oldest" => Ok(QueuePolicy::DropOldest),
        "conflate_latest" => Ok(QueuePolicy::ConflateLatest),
        other => Err(PyValueError::new_err(format!(
            "slow_consumer: `{other}` is not a policy: use backpressure, drop_oldest or conflate_latest"
        ))),
    }
}

fn connect_error(error: ConnectError) -> PyErr {
    ArgusConnectError::new_err((error.to_string(), error.is_fatal()))
}

/// A refused subscribe: `ValueError` naming the field when it was refused
/// locally, `SubscribeError` otherwise.
fn subscribe_error(error: SubscribeError) -> PyErr {
    use argus_tokio::argus_core::SubscribeError as Local;
    match error {
        SubscribeError::Invalid(e) => PyValueError::new_err(match e {
            // Its message names the field already.
            Local::InvalidConfig(e) => e.to_string(),
            Local::TooMany { .. } => format!("max_subscriptions: {e}"),
            other => format!("subscription_id: {other}"),
        }),
        other => ArgusSubscribeError::new_err(other.to_string()),
    }
}

/// Handlers or sinks: the dispatch reads a snapshot (one per batch) without
/// a lock; a change copies the list.
struct Registry<T> {
    entries: Mutex<Snapshot<T>>,
}

type Snapshot<T> = Arc<Vec<Arc<T>>>;

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
        }
    }
}

impl<T> Registry<T> {
    fn snapshot(&self) -> Snapshot<T> {
        lock(&self.entries).clone()
    }

    fn add(&self, entry: T) {
        let mut entries = lock(&self.entries);
        let mut next = Vec::clone(&entries);
        next.push(Arc::new(entry));
        *entries = Arc::new(next);
    }

    /// Removes the entries `matches` picks; whether there were any.
    fn remove(&self, matches: impl Fn(&T) -> bool) -> bool {
        let mut entries = lock(&self.entries);
        let next: Vec<_> = entries.iter().filter(|e| !matches(e)).cloned().collect();
        let removed = next.len() != entries.len();
        *entries = Arc::new(next);
        removed
    }

    fn len(&self) -> usize {
        lock(&self.entries).len()
    }
}

/// A receiver of every event's object (an `events()` stream).
struct Sink {
    id: u64,
    push: Py<PyAny>,
}

/// Which events a handler sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wants {
    /// Every event (the seed's `"debug"`).
    Everything,
    /// Events of one kind.
    Kind(Kind),
}

struct Handler {
    id: u64,
    wants: Wants,
    /// Only the events of this subscription.
    subscription: Option<String>,
    func: Py<PyAny>,
}

impl Handler {
    fn matches(&self, kind: Kind, subscription: Option<&str>) -> bool {
        (self.wants == Wants::Everything || self.wants == Wants::Kind(kind))
            && self
                .subscription
                .as_deref()
                .is_none_or(|wanted| subscription == Some(wanted))
    }
}

fn wants(kind: &str) -> PyResult<Wants> {
    if kind == "debug" {
        return Ok(Wants::Everything);
    }
    if let Ok(data_type) = kind.parse::<DataType>() {
        return Ok(Wants::Kind(Kind::Data(data_type)));
    }
    match EVENT_KINDS.iter().find(|k| **k == kind) {
        Some(k) => Ok(Wants::Kind(Kind::Event(k))),
        None => Err(PyValueError::new_err(format!(
            "data_type: `{kind}` is not a message kind: use price, volume, orderbook, debug, or an event kind ({})",
            EVENT_KINDS.join(", ")
        ))),
    }
}

/// Events taken from the client's stream in one go, and how far their
/// dispatch got.
#[pyclass(module = "argus._argus", frozen)]
pub struct Batch {
    state: Mutex<BatchState>,
}

struct BatchState {
    events: Vec<convert::Item>,
    /// The next event to dispatch.
    next: usize,
    /// The event being dispatched, its object, and the next handler to call.
    current: Option<(Py<PyAny>, usize)>,
    /// The handlers and sinks as they were when the batch's dispatch began.
    handlers: Option<Snapshot<Handler>>,
    sinks: Option<Snapshot<Sink>>,
}

#[pymethods]
impl Batch {
    fn __len__(&self) -> usize {
        lock(&self.state).events.len()
    }
}

impl Batch {
    fn new(events: Vec<convert::Item>) -> Self {
        Self {
            state: Mutex::new(BatchState {
                events,
                next: 0,
                current: None,
                handlers: None,
                sinks: None,
            }),
        }
    }
}

/// The engine of one `WebSocketClient`.
#[pyclass(module = "argus._argus", frozen)]
pub struct Client {
    client: WebSocketClient,
    /// The client's one event stream, in batches.
    stream: Arc<tokio::sync::Mutex<Chunks>>,
    /// Ends a wait in [`Client::next_batch`] early.
    wake: Arc<Notify>,
    handlers: Registry<Handler>,
    sinks: Registry<Sink>,
    next_id: AtomicU64,
    converter: Mutex<Converter>,
    handler_errors: Arc<AtomicU64>,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (
        url,
        api_key = None,
        max_reconnect_attempts = 5,
        reconnect_delay = 1.0,
        heartbeat_interval = 30.0,
        timeout = 10.0,
        max_subscriptions = 100,
        slow_consumer = "backpressure",
        queue_capacity = 1024,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        url: String,
        api_key: Option<String>,
        max_reconnect_attempts: u32,
        reconnect_delay: f64,
        heartbeat_interval: f64,
        timeout: f64,
        max_subscriptions: usize,
        slow_consumer: &str,
        queue_capacity: usize,
    ) -> PyResult<Self> {
        let config = connection_config(
            url,
            api_key,
            max_reconnect_attempts,
            reconnect_delay,
            heartbeat_interval,
            timeout,
            max_subscriptions,
        )?;
        let policy = queue_policy(slow_consumer)?;
        let client = WebSocketClient::builder(config)
            .queue_policy(policy)
            .queue_capacity(queue_capacity)
            .event_capacity(queue_capacity)
            .build()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let events: Pin<Box<dyn Stream<Item = convert::Item> + Send>> = match policy {
            QueuePolicy::Backpressure => Box::pin(client.events().map(Ok)),
            lossy => Box::pin(client.lossy_events(Interest::ALL, lossy)),
        };
        let stream = events.ready_chunks(MAX_BATCH);
        Ok(Self {
            client,
            stream: Arc::new(tokio::sync::Mutex::new(stream)),
            wake: Arc::new(Notify::new()),
            handlers: Registry::default(),
            sinks: Registry::default(),
            next_id: AtomicU64::new(1),
            converter: Mutex::default(),
            handler_errors: Arc::default(),
        })
    }

    /// Connects; resolves once connected, raises `ConnectError` otherwise.
    fn connect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(
            py,
            async move { client.connect().await.map_err(connect_error) },
        )
    }

    /// Closes the connection (code 1000) and drops every subscription.
    fn disconnect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            client.disconnect().await;
            Ok(())
        })
    }

    /// Subscribes; resolves with the id once the server acknowledged it.
    #[pyo3(signature = (id, symbols, data_types, update_frequency = "realtime", min_price = None, max_price = None))]
    #[allow(clippy::too_many_arguments)]
    fn subscribe<'py>(
        &self,
        py: Python<'py>,
        id: String,
        symbols: Vec<String>,
        data_types: Vec<String>,
        update_frequency: &str,
        min_price: Option<f64>,
        max_price: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let config =
            subscription_config(symbols, data_types, update_frequency, min_price, max_price)?;
        let client = self.client.clone();
        future_into_py(py, async move {
            client
                .subscribe(id, config)
                .await
                .map(|id| id.as_str().to_owned())
                .map_err(subscribe_error)
        })
    }

    /// Unsubscribes; raises `ValueError` for an unknown id.
    fn unsubscribe<'py>(&self, py: Python<'py>, id: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            client.unsubscribe(id).await.map_err(|e| match e {
                UnsubscribeError::Unknown(e) => {
                    PyValueError::new_err(format!("subscription_id: {e}"))
                }
                other => ArgusSubscribeError::new_err(other.to_string()),
            })
        })
    }

    /// Resolves once connected; raises `ConnectError` if the client gave up
    /// or is disconnected.
    fn wait_for_connection<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        future_into_py(py, async move {
            client.wait_for_connection().await.map_err(connect_error)
        })
    }

    /// The statistics as a dictionary: the seed's eight fields first.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let handler_errors = self.handler_errors.clone();
        future_into_py(py, async move {
            let stats = client.stats().await;
            let mut value =
                serde_json::to_value(&stats).map_err(|e| PyValueError::new_err(e.to_string()))?;
            if let Some(map) = value.as_object_mut() {
                map.insert(
                    "handler_errors".into(),
                    handler_errors.load(Ordering::Relaxed).into(),
                );
            }
            Ok(Json(value))
        })
    }

    /// The connection's state, as the seed names it.
    #[getter]
    fn state(&self) -> &'static str {
        self.client.state().as_str()
    }

    /// Handler calls that raised.
    #[getter]
    fn handler_errors(&self) -> u64 {
        self.handler_errors.load(Ordering::Relaxed)
    }

    /// Registers `func` for `kind`, optionally only for one subscription's
    /// events; returns its id.
    #[pyo3(signature = (kind, func, subscription = None))]
    fn add_handler(
        &self,
        kind: &str,
        func: Bound<'_, PyAny>,
        subscription: Option<String>,
    ) -> PyResult<u64> {
        if !func.is_callable() {
            return Err(PyTypeError::new_err("handler: must be callable"));
        }
        let wants = wants(kind)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.handlers.add(Handler {
            id,
            wants,
            subscription,
            func: func.unbind(),
        });
        Ok(id)
    }

    /// Removes a handler; whether it was registered.
    fn remove_handler(&self, id: u64) -> bool {
        self.handlers.remove(|h| h.id == id)
    }

    /// Handlers registered.
    #[getter]
    fn handler_count(&self) -> usize {
        self.handlers.len()
    }

    /// Registers `push`, called with every event's object; returns its id.
    fn add_sink(&self, push: Bound<'_, PyAny>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.sinks.add(Sink {
            id,
            push: push.unbind(),
        });
        id
    }

    /// Removes a sink.
    fn remove_sink(&self, id: u64) {
        self.sinks.remove(|s| s.id == id);
    }

    /// The events that are ready now, or `None` when none is (or the stream
    /// is being read by [`next_batch`](Self::next_batch)).
    fn poll_batch(&self) -> Option<Batch> {
        let mut stream = self.stream.try_lock().ok()?;
        stream.next().now_or_never().flatten().map(Batch::new)
    }

    /// Waits for the next events; resolves with `None` once the stream has
    /// ended, or early when [`wake`](Self::wake) is called.
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stream = self.stream.clone();
        let wake = self.wake.clone();
        future_into_py(py, async move {
            let mut stream = stream.lock().await;
            Ok(tokio::select! {
                biased;
                events = stream.next() => events.map(Batch::new),
                () = wake.notified() => None,
            })
        })
    }

    /// Ends a pending (or the next) [`next_batch`](Self::next_batch) with `None`.
    fn wake(&self) {
        self.wake.notify_one();
    }

    /// Dispatches the batch from where it stopped: hands each event's
    /// object to every sink and to the matching handlers, in order. Returns
    /// the awaitable of an async handler when one is called (await it, then
    /// call `dispatch` again), `None` when the batch is done.
    fn dispatch(&self, py: Python<'_>, batch: &Batch) -> PyResult<Option<Py<PyAny>>> {
        let mut state = lock(&batch.state);
        let handlers = state
            .handlers
            .get_or_insert_with(|| self.handlers.snapshot())
            .clone();
        let sinks = state
            .sinks
            .get_or_insert_with(|| self.sinks.snapshot())
            .clone();
        while state.next < state.events.len() {
            let (object, mut at) = match state.current.take() {
                Some(current) => current,
                None => {
                    let event = &state.events[state.next];
                    let object = lock(&self.converter).item(py, event)?;
                    for sink in sinks.iter() {
                        sink.push.call1(py, (&object,))?;
                    }
                    (object.unbind(), 0)
                }
            };
            let (kind, subscription) = convert::route_item(&state.events[state.next]);
            let subscription = subscription.map(|s| s.as_str());
            while let Some(handler) = handlers.get(at) {
                at += 1;
                if !handler.matches(kind, subscription) {
                    continue;
                }
                match handler.func.call1(py, (&object,)) {
                    Ok(returned) if !returned.is_none(py) && is_awaitable(py, &returned) => {
                        state.current = Some((object, at));
                        return Ok(Some(returned));
                    }
                    Ok(_) => {}
                    // KeyboardInterrupt, SystemExit: not the handler's bug to count.
                    Err(error) if !error.is_instance_of::<PyException>(py) => return Err(error),
                    Err(error) => self.record_handler_error(py, error.into_value(py).into_any())?,
                }
            }
            state.next += 1;
        }
        Ok(None)
    }

    /// Counts a handler call that raised `error`, and logs it (logger
    /// `argus`, with its traceback). The client goes on.
    fn record_handler_error(&self, py: Python<'_>, error: Py<PyAny>) -> PyResult<()> {
        self.handler_errors.fetch_add(1, Ordering::Relaxed);
        let logger = py
            .import(intern!(py, "logging"))?
            .call_method1(intern!(py, "getLogger"), (intern!(py, "argus"),))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "exc_info"), error)?;
        logger.call_method(
            intern!(py, "error"),
            (intern!(py, "a message handler raised; the client goes on"),),
            Some(&kwargs),
        )?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.client)
    }
}

fn is_awaitable(py: Python<'_>, object: &Py<PyAny>) -> bool {
    object
        .bind(py)
        .hasattr(intern!(py, "__await__"))
        .unwrap_or(false)
}

/// Checks the seed's `ConnectionConfig` fields as the client will; raises
/// `ValueError` naming the first bad field.
#[pyfunction]
#[pyo3(signature = (url, api_key, max_reconnect_attempts, reconnect_delay, heartbeat_interval, timeout, max_subscriptions))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_connection_config(
    url: String,
    api_key: Option<String>,
    max_reconnect_attempts: u32,
    reconnect_delay: f64,
    heartbeat_interval: f64,
    timeout: f64,
    max_subscriptions: usize,
) -> PyResult<()> {
    connection_config(
        url,
        api_key,
        max_reconnect_attempts,
        reconnect_delay,
        heartbeat_interval,
        timeout,
        max_subscriptions,
    )
    .map(drop)
}

/// Checks the seed's `SubscriptionConfig` fields as the client will.
#[pyfunction]
#[pyo3(signature = (symbols, data_types, update_frequency, min_price = None, max_price = None))]
pub(crate) fn check_subscription_config(
    symbols: Vec<String>,
    data_types: Vec<String>,
    update_frequency: &str,
    min_price: Option<f64>,
    max_price: Option<f64>,
) -> PyResult<()> {
    subscription_config(symbols, data_types, update_frequency, min_price, max_price).map(drop)
}
