//! The runtime the clients run on, and Rust futures as asyncio futures.
//!
//! One current-thread tokio runtime, driven by one thread of ours,
//! `argus-io`, runs every client's tasks, the dispatchers that call the
//! plain-function handlers, and the completion of the asyncio futures that
//! `awaitable` returns. That thread keeps one Python thread state for
//! its whole life (detached while it waits), so attaching to Python there
//! only takes the GIL; and it is the only thread of ours that touches
//! Python. `_at_exit` (an `atexit` hook) ends it before the interpreter
//! finalizes: a thread that touches Python during finalization is ended by
//! the interpreter in the middle of Rust code, which crashes the process.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{IntoPyObjectExt, intern};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Set when the interpreter begins to exit: nothing of ours attaches to
/// Python from then on.
static EXITING: AtomicBool = AtomicBool::new(false);

/// The thread that drives the runtime, while it runs.
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

/// Starts the runtime and its thread, `argus-io` (once per process).
pub(crate) fn start() -> PyResult<()> {
    let mut io_thread = IO_THREAD.lock().unwrap_or_else(PoisonError::into_inner);
    if RUNTIME.get().is_some() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the I/O runtime: {e}")))?;
    let runtime = RUNTIME.get_or_init(|| runtime);
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
    *io_thread = Some(IoThread { stop, done });
    Ok(())
}

/// The runtime (started with the module).
pub(crate) fn runtime() -> &'static Runtime {
    RUNTIME
        .get()
        .expect("the module starts the runtime when it loads")
}

/// Whether the interpreter exits (nothing may attach to it any more).
pub(crate) fn exiting() -> bool {
    EXITING.load(Ordering::SeqCst)
}

/// Stops the I/O thread for good before the interpreter goes away
/// (registered with `atexit` by the package). The runtime's tasks stop
/// where they are.
#[pyfunction]
pub(crate) fn _at_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    let io = IO_THREAD
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(io) = io {
        let _ = io.stop.send(());
        let done = io.done;
        // Without the GIL: the thread may need it to finish what it does.
        let _ = py.detach(move || done.recv_timeout(EXIT_WAIT));
    }
}

/// Runs `future` on the runtime; returns an asyncio future of the running
/// loop that resolves with its output (set on the loop, from `argus-io`).
/// Cancelling the asyncio future drops `future`.
pub(crate) fn awaitable<'py, F, T>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = py
        .import(intern!(py, "asyncio"))?
        .call_method0(intern!(py, "get_running_loop"))?;
    let py_future = event_loop.call_method0(intern!(py, "create_future"))?;
    let (target, event_loop) = (py_future.clone().unbind(), event_loop.unbind());
    let task = runtime().spawn(async move {
        let output = AssertUnwindSafe(future).catch_unwind().await;
        if exiting() {
            return;
        }
        Python::try_attach(|py| {
            let output = match output {
                Ok(output) => output.and_then(|value| value.into_py_any(py)),
                Err(_) => Err(PyRuntimeError::new_err("argus: an internal task panicked")),
            };
            let (ok, value) = match output {
                Ok(value) => (true, value),
                Err(error) => (false, error.into_value(py).into_any()),
            };
            // The loop may be closed by now: nobody waits then.
            let _ = event_loop.call_method1(
                py,
                intern!(py, "call_soon_threadsafe"),
                (resolver(py)?, target, ok, value),
            );
            PyResult::Ok(())
        });
    });
    py_future.call_method1(
        intern!(py, "add_done_callback"),
        (CancelOnDone {
            task: task.abort_handle(),
        },),
    )?;
    Ok(py_future)
}

/// `_resolve(future, ok, value)`, cached.
fn resolver(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    RESOLVE.get_or_try_init(py, || {
        Ok(wrap_pyfunction!(_resolve, py)?.into_any().unbind())
    })
}

/// Sets `future`'s result (`ok`) or exception, unless it is done already
/// (cancelled): run on the loop.
#[pyfunction]
fn _resolve(future: &Bound<'_, PyAny>, ok: bool, value: Bound<'_, PyAny>) -> PyResult<()> {
    let py = future.py();
    if future.call_method0(intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    let method = if ok {
        intern!(py, "set_result")
    } else {
        intern!(py, "set_exception")
    };
    future.call_method1(method, (value,))?;
    Ok(())
}

/// An asyncio future's done callback: a cancelled future aborts its task.
#[pyclass(module = "argus._argus", frozen)]
struct CancelOnDone {
    task: AbortHandle,
}

#[pymethods]
impl CancelOnDone {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = future.py();
        if future.call_method0(intern!(py, "cancelled"))?.is_truthy()? {
            self.task.abort();
        }
        Ok(())
    }
}
