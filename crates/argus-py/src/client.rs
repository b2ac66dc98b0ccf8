//! The native client behind `argus.websocket_client.WebSocketClient`: the
//! tokio adapter's client, its one event stream, and the dispatch of that
//! stream to Python handlers and `events()` iterators.
//!
//! A dispatcher task per client (on the runtime's one thread, `argus-io`)
//! reads `WebSocketClient::events()`, taking every event that is ready as
//! one batch, and delivers the batch with the GIL held once: it builds each
//! event's object once, calls the plain-function handlers on the spot, and
//! queues for the asyncio loop what must run there (`async def` and
//! `on_loop` handlers, `events()` sinks, awaitables the handlers returned),
//! waking the loop only when its queue was empty. The loop side
//! (`Client.dispatch_loop`) takes the queue in order and hands back each
//! awaitable to be awaited before it goes on, so every consumer sees the
//! stream in order. A full loop queue holds the dispatcher, and so the
//! stream, back.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use argus_tokio::{
    ApiKey, ConnectError, ConnectionConfig, DataType, Interest, QueuePolicy, SubscribeError,
    SubscriptionConfig, UnsubscribeError, UpdateFrequency, WebSocketClient,
};
use futures_util::FutureExt;
use futures_util::stream::{ReadyChunks, Stream, StreamExt};
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::{IntoPyObjectExt, intern};
use tokio::sync::Notify;

use crate::bridge::{self, awaitable};
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

    fn is_empty(&self) -> bool {
        lock(&self.entries).is_empty()
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
    /// Called on the asyncio loop, not on the I/O thread.
    on_loop: bool,
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

/// Work for the asyncio loop, in the stream's order.
enum LoopWork {
    /// An event for the loop's consumers (`events()` streams, handlers
    /// registered to run on the loop), with its object.
    Event {
        item: convert::Item,
        object: Py<PyAny>,
    },
    /// What a handler called on the I/O thread returned: an awaitable, to
    /// be awaited on the loop.
    Await(Py<PyAny>),
}

/// The loop's share of the stream: filled by the dispatcher on the I/O
/// thread, emptied by [`Client::dispatch_loop`] on the loop.
#[derive(Default)]
struct LoopQueue {
    items: VecDeque<LoopWork>,
    /// The loop side found the queue empty and waits to be woken.
    idle: bool,
    /// An event whose loop handlers were left at an awaitable: the event
    /// and the next handler to call.
    current: Option<(LoopWork, usize)>,
}

/// How the dispatcher wakes the loop side: `call_soon_threadsafe(wake)`.
struct LoopWake {
    call_soon_threadsafe: Py<PyAny>,
    wake: Py<PyAny>,
}

/// What a client's `Client` (Python's handle) and its dispatcher share.
struct Shared {
    handlers: Registry<Handler>,
    sinks: Registry<Sink>,
    converter: Mutex<Converter>,
    handler_errors: AtomicU64,
    loop_queue: Mutex<LoopQueue>,
    /// Events the loop queue holds before the dispatcher waits.
    loop_capacity: usize,
    /// The loop side took from a full queue.
    room: Notify,
    wake: Mutex<Option<LoopWake>>,
}

impl Shared {
    /// Hands `events` (taken from the stream in one go) out, with the GIL
    /// held once for all of them: calls the handlers that run on this (the
    /// I/O) thread, and queues what the loop must run. Fails only when the
    /// loop cannot be woken (it is closed).
    fn deliver(&self, py: Python<'_>, events: Vec<convert::Item>) -> PyResult<()> {
        let handlers = self.handlers.snapshot();
        let to_loop_always = !self.sinks.is_empty();
        let mut converter = lock(&self.converter);
        let mut work = Vec::new();
        for item in events {
            let (kind, subscription) = convert::route_item(&item);
            let subscription = subscription.map(|s| s.as_str());
            let mut here = handlers
                .iter()
                .filter(|h| !h.on_loop && h.matches(kind, subscription))
                .peekable();
            let to_loop = to_loop_always
                || handlers
                    .iter()
                    .any(|h| h.on_loop && h.matches(kind, subscription));
            if here.peek().is_none() && !to_loop {
                continue;
            }
            let object = match converter.item(py, &item) {
                Ok(object) => object.unbind(),
                Err(error) => {
                    // Nobody to raise to on this thread: Python's hook for
                    // such errors reports it, and the stream goes on.
                    error.write_unraisable(py, None);
                    continue;
                }
            };
            let mut awaitables = Vec::new();
            for handler in here {
                match handler.func.call1(py, (&object,)) {
                    Ok(returned) if is_awaitable(py, &returned) => awaitables.push(returned),
                    Ok(_) => {}
                    // Nothing on this thread can stop the application: a
                    // handler's exception of any kind is counted and logged.
                    Err(error) => {
                        let error = error.into_value(py).into_any();
                        if let Err(failed) = self.record_handler_error(py, error) {
                            failed.write_unraisable(py, None);
                        }
                    }
                }
            }
            if to_loop {
                work.push(LoopWork::Event { item, object });
            }
            work.extend(awaitables.into_iter().map(LoopWork::Await));
        }
        drop(converter);
        if work.is_empty() {
            return Ok(());
        }
        let wake = {
            let mut queue = lock(&self.loop_queue);
            queue.items.extend(work);
            std::mem::take(&mut queue.idle)
        };
        if wake {
            self.wake_loop(py)?;
        }
        Ok(())
    }

    fn wake_loop(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(wake) = lock(&self.wake).as_ref() {
            wake.call_soon_threadsafe.call1(py, (&wake.wake,))?;
        }
        Ok(())
    }

    fn loop_queue_full(&self) -> bool {
        lock(&self.loop_queue).items.len() >= self.loop_capacity
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
}

/// A running dispatcher: the task that reads the client's stream.
struct Dispatcher {
    stop: Arc<Notify>,
    finished: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Reads the client's stream, one batch (every event that is ready) at a
/// time, and delivers each batch with the GIL held once. Ends when the
/// stream ends, when stopped (after delivering what is ready then), when
/// the loop cannot be woken any more, or when the interpreter exits.
async fn dispatch(
    shared: Arc<Shared>,
    stream: Arc<tokio::sync::Mutex<Chunks>>,
    stop: Arc<Notify>,
    finished: Arc<AtomicBool>,
) {
    let mut stream = stream.lock().await;
    let mut stopping = false;
    loop {
        let events = if stopping {
            match stream.next().now_or_never() {
                Some(Some(events)) => events,
                _ => break,
            }
        } else {
            tokio::select! {
                biased;
                events = stream.next() => match events {
                    Some(events) => events,
                    None => break,
                },
                () = stop.notified() => {
                    stopping = true;
                    continue;
                }
            }
        };
        if bridge::exiting() {
            break;
        }
        match Python::try_attach(|py| shared.deliver(py, events)) {
            Some(Ok(())) => {}
            // The loop is closed, or the interpreter is going away.
            Some(Err(_)) | None => break,
        }
        while !stopping && shared.loop_queue_full() {
            tokio::select! {
                biased;
                () = stop.notified() => stopping = true,
                () = shared.room.notified() => {}
            }
        }
    }
    finished.store(true, Ordering::SeqCst);
    if !bridge::exiting() {
        // The loop side may wait for this end; the loop may be gone.
        let _ = Python::try_attach(|py| shared.wake_loop(py));
    }
}

/// The engine of one `WebSocketClient`.
#[pyclass(module = "argus._argus", frozen)]
pub struct Client {
    client: WebSocketClient,
    /// The client's one event stream, in batches.
    stream: Arc<tokio::sync::Mutex<Chunks>>,
    shared: Arc<Shared>,
    dispatcher: Mutex<Option<Dispatcher>>,
    next_id: AtomicU64,
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
            shared: Arc::new(Shared {
                handlers: Registry::default(),
                sinks: Registry::default(),
                converter: Mutex::default(),
                handler_errors: AtomicU64::new(0),
                loop_queue: Mutex::default(),
                loop_capacity: queue_capacity,
                room: Notify::new(),
                wake: Mutex::new(None),
            }),
            dispatcher: Mutex::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    /// Connects; resolves once connected, raises `ConnectError` otherwise.
    fn connect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        awaitable(
            py,
            async move { client.connect().await.map_err(connect_error) },
        )
    }

    /// Closes the connection (code 1000) and drops every subscription.
    fn disconnect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        awaitable(py, async move {
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
        awaitable(py, async move {
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
        awaitable(py, async move {
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
        awaitable(py, async move {
            client.wait_for_connection().await.map_err(connect_error)
        })
    }

    /// The statistics as a dictionary: the seed's eight fields first.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let shared = self.shared.clone();
        awaitable(py, async move {
            let stats = client.stats().await;
            let mut value =
                serde_json::to_value(&stats).map_err(|e| PyValueError::new_err(e.to_string()))?;
            if let Some(map) = value.as_object_mut() {
                map.insert(
                    "handler_errors".into(),
                    shared.handler_errors.load(Ordering::Relaxed).into(),
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
        self.shared.handler_errors.load(Ordering::Relaxed)
    }

    /// Registers `func` for `kind`, optionally only for one subscription's
    /// events, to be called on the I/O thread or (`on_loop`) on the loop;
    /// returns its id.
    #[pyo3(signature = (kind, func, subscription = None, on_loop = false))]
    fn add_handler(
        &self,
        kind: &str,
        func: Bound<'_, PyAny>,
        subscription: Option<String>,
        on_loop: bool,
    ) -> PyResult<u64> {
        if !func.is_callable() {
            return Err(PyTypeError::new_err("handler: must be callable"));
        }
        let wants = wants(kind)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.shared.handlers.add(Handler {
            id,
            wants,
            subscription,
            func: func.unbind(),
            on_loop,
        });
        Ok(id)
    }

    /// Removes a handler; whether it was registered.
    fn remove_handler(&self, id: u64) -> bool {
        self.shared.handlers.remove(|h| h.id == id)
    }

    /// Handlers registered.
    #[getter]
    fn handler_count(&self) -> usize {
        self.shared.handlers.len()
    }

    /// Registers `push`, called with every event's object; returns its id.
    fn add_sink(&self, push: Bound<'_, PyAny>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.shared.sinks.add(Sink {
            id,
            push: push.unbind(),
        });
        id
    }

    /// Removes a sink.
    fn remove_sink(&self, id: u64) {
        self.shared.sinks.remove(|s| s.id == id);
    }

    /// Starts the dispatcher (unless it runs), which wakes the loop side
    /// with `call_soon_threadsafe(wake)` when it queues work for the loop.
    fn start(&self, call_soon_threadsafe: Py<PyAny>, wake: Py<PyAny>) {
        *lock(&self.shared.wake) = Some(LoopWake {
            call_soon_threadsafe,
            wake,
        });
        let mut dispatcher = lock(&self.dispatcher);
        if dispatcher
            .as_ref()
            .is_some_and(|d| !d.finished.load(Ordering::SeqCst))
        {
            return;
        }
        let stop = Arc::new(Notify::new());
        let finished = Arc::new(AtomicBool::new(false));
        let task = bridge::runtime().spawn(dispatch(
            self.shared.clone(),
            self.stream.clone(),
            stop.clone(),
            finished.clone(),
        ));
        *dispatcher = Some(Dispatcher {
            stop,
            finished,
            task,
        });
    }

    /// Stops the dispatcher once it has delivered the events that are
    /// ready; resolves when it has.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let dispatcher = lock(&self.dispatcher).take();
        awaitable(py, async move {
            if let Some(dispatcher) = dispatcher {
                dispatcher.stop.notify_one();
                // A dispatcher that panicked has stopped too.
                let _ = dispatcher.task.await;
            }
            Ok(())
        })
    }

    /// Tells the dispatcher to stop, without waiting for it.
    fn halt(&self) {
        if let Some(dispatcher) = lock(&self.dispatcher).as_ref() {
            dispatcher.stop.notify_one();
        }
    }

    /// Whether the dispatcher runs.
    #[getter]
    fn dispatching(&self) -> bool {
        lock(&self.dispatcher)
            .as_ref()
            .is_some_and(|d| !d.finished.load(Ordering::SeqCst))
    }

    /// Runs the loop's share of the stream from where it stopped: hands
    /// each event's object to every sink and to the matching loop handlers,
    /// in order. Returns an awaitable to await before calling again (an
    /// async handler's, or one a handler on the I/O thread returned),
    /// `True` once the queue is empty after handing some out, `None` when
    /// it was empty (the dispatcher's next work wakes the loop).
    fn dispatch_loop(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let shared = &*self.shared;
        let handlers = shared.handlers.snapshot();
        let sinks = shared.sinks.snapshot();
        let mut progressed = false;
        loop {
            let (work, mut at, resumed) = {
                let mut queue = lock(&shared.loop_queue);
                match queue.current.take() {
                    Some((work, at)) => (work, at, true),
                    None => match queue.items.pop_front() {
                        Some(work) => {
                            if queue.items.len() < shared.loop_capacity {
                                shared.room.notify_one();
                            }
                            (work, 0, false)
                        }
                        None => {
                            queue.idle = true;
                            return Ok(if progressed {
                                true.into_py_any(py)?
                            } else {
                                py.None()
                            });
                        }
                    },
                }
            };
            progressed = true;
            let (item, object) = match &work {
                LoopWork::Await(awaitable) => return Ok(awaitable.clone_ref(py)),
                LoopWork::Event { item, object } => (item, object),
            };
            if !resumed {
                for sink in sinks.iter() {
                    sink.push.call1(py, (object,))?;
                }
            }
            let (kind, subscription) = convert::route_item(item);
            let subscription = subscription.map(|s| s.as_str());
            while let Some(handler) = handlers.get(at) {
                at += 1;
                if !handler.on_loop || !handler.matches(kind, subscription) {
                    continue;
                }
                match handler.func.call1(py, (object,)) {
                    Ok(returned) if is_awaitable(py, &returned) => {
                        lock(&shared.loop_queue).current = Some((work, at));
                        return Ok(returned);
                    }
                    Ok(_) => {}
                    // KeyboardInterrupt, SystemExit: not the handler's bug to count.
                    Err(error) if !error.is_instance_of::<PyException>(py) => return Err(error),
                    Err(error) => {
                        shared.record_handler_error(py, error.into_value(py).into_any())?;
                    }
                }
            }
        }
    }

    /// Counts a handler call that raised `error`, and logs it (logger
    /// `argus`, with its traceback). The client goes on.
    fn record_handler_error(&self, py: Python<'_>, error: Py<PyAny>) -> PyResult<()> {
        self.shared.record_handler_error(py, error)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.client)
    }
}

fn is_awaitable(py: Python<'_>, object: &Py<PyAny>) -> bool {
    !object.is_none(py)
        && object
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
