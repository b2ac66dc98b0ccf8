//! # argus-py
//!
//! The Python package `argus`: the original SDK's API
//! (`argus.websocket_client`) on the Argus engine. This crate is its native
//! half, `argus._argus`: the tokio adapter's client with its one event
//! stream dispatched to Python handlers ([`client`]), the conversion of
//! events to Python objects ([`convert`]), and the reference server
//! in-process ([`server`]). The seed's classes themselves are thin Python
//! (`python/argus/websocket_client.py`) over these.
//!
//! Built with maturin (`pip install ./crates/argus-py`); asyncio is bridged
//! to tokio with pyo3-async-runtimes, on a runtime whose one thread,
//! `argus-io`, runs the clients' tasks and calls the plain-function handlers.
#![forbid(unsafe_code)]

pub mod client;
pub mod convert;
pub mod server;

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError};
use pyo3::prelude::*;

create_exception!(
    _argus,
    ArgusError,
    PyException,
    "Base of the errors Argus raises (besides ValueError and TypeError for bad arguments)."
);
create_exception!(
    _argus,
    ArgusConnectError,
    ArgusError,
    "The client could not connect, gave up, or is disconnected. Arguments: (message, fatal)."
);
create_exception!(
    _argus,
    ArgusSubscribeError,
    ArgusError,
    "The server refused a subscription, or the client could not make it."
);

/// The thread that drives the clients' runtime, while it runs.
struct IoThread {
    /// Ends the thread's `block_on`.
    stop: tokio::sync::oneshot::Sender<()>,
    /// Says the thread has let go of Python.
    done: std::sync::mpsc::Receiver<()>,
}

static IO_THREAD: Mutex<Option<IoThread>> = Mutex::new(None);

/// How long the interpreter's exit waits for the I/O thread to let go of
/// Python (it may be in a handler).
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Starts the runtime the clients run on: a current-thread tokio runtime
/// driven by one thread of its own, `argus-io`, which keeps one Python
/// thread state for its whole life (detached while it waits). Attaching
/// to Python there (to call handlers, to resolve futures) then only takes
/// the GIL; a thread without a thread state would make and free one each
/// time, its frame stack included.
fn start_runtime() -> PyResult<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the I/O runtime: {e}")))?;
    let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(runtime));
    if pyo3_async_runtimes::tokio::init_with_runtime(runtime).is_err() {
        // Already started (the module was initialised before).
        return Ok(());
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("argus-io".into())
        .spawn(move || {
            Python::attach(|py| {
                py.detach(|| {
                    let _ = runtime.block_on(stopped);
                });
            });
            let _ = done_tx.send(());
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the I/O thread: {e}")))?;
    *IO_THREAD.lock().unwrap_or_else(PoisonError::into_inner) = Some(IoThread { stop, done });
    Ok(())
}

/// Stops the I/O thread for good before the interpreter goes away
/// (registered with `atexit` by the package): no thread of ours may touch
/// Python once it finalizes. The runtime's tasks stop where they are.
#[pyfunction]
fn _at_exit(py: Python<'_>) {
    client::stop_dispatching();
    let io = IO_THREAD
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(io) = io {
        let _ = io.stop.send(());
        // Without the GIL: the thread may need it to finish a batch.
        let done = io.done;
        let _ = py.detach(move || done.recv_timeout(EXIT_WAIT));
    }
}

/// The native half of the `argus` package.
#[pymodule]
fn _argus(m: &Bound<'_, PyModule>) -> PyResult<()> {
    start_runtime()?;
    let py = m.py();
    m.add_class::<client::Client>()?;
    m.add_class::<server::Server>()?;
    m.add_function(wrap_pyfunction!(client::check_connection_config, m)?)?;
    m.add_function(wrap_pyfunction!(client::check_subscription_config, m)?)?;
    m.add_function(wrap_pyfunction!(_at_exit, m)?)?;
    m.add("ArgusError", py.get_type::<ArgusError>())?;
    m.add("ConnectError", py.get_type::<ArgusConnectError>())?;
    m.add("SubscribeError", py.get_type::<ArgusSubscribeError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
