//! # argus-py
//!
//! The Python package `argus`: the original SDK's API
//! (`argus.websocket_client`) on the Argus engine. This crate is its native
//! half, `argus._argus`: the tokio adapter's client with its one event
//! stream dispatched to Python handlers ([`client`]), the conversion of
//! events to Python objects ([`convert`]), the runtime and the asyncio
//! futures of Rust futures ([`bridge`]), and the reference server
//! in-process ([`server`]). The seed's classes themselves are thin Python
//! (`python/argus/websocket_client.py`) over these.
//!
//! Built with maturin (`pip install ./crates/argus-py`). The clients run on
//! a tokio runtime whose one thread, `argus-io`, also calls the
//! plain-function handlers and completes the asyncio futures.
#![forbid(unsafe_code)]

pub mod bridge;
pub mod client;
pub mod convert;
pub mod server;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
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

/// The native half of the `argus` package.
#[pymodule]
fn _argus(m: &Bound<'_, PyModule>) -> PyResult<()> {
    bridge::start()?;
    let py = m.py();
    m.add_class::<client::Client>()?;
    m.add_class::<server::Server>()?;
    m.add_function(wrap_pyfunction!(client::check_connection_config, m)?)?;
    m.add_function(wrap_pyfunction!(client::check_subscription_config, m)?)?;
    m.add_function(wrap_pyfunction!(bridge::_at_exit, m)?)?;
    m.add("ArgusError", py.get_type::<ArgusError>())?;
    m.add("ConnectError", py.get_type::<ArgusConnectError>())?;
    m.add("SubscribeError", py.get_type::<ArgusSubscribeError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
