//! `argus.Server`: the reference server in-process, on a runtime of its own,
//! so examples and tests need nothing else running.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use argus_server::{BackgroundServer, FirehoseConfig, Server as RustServer, ServerConfig};
use argus_tokio::ApiKey;
use argus_tokio::argus_core::Symbol;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::client::seconds;

/// The reference Argus server, running in this process until `shutdown()`
/// (or the end of a `with` block).
#[pyclass(module = "argus._argus", frozen)]
pub struct Server {
    running: Mutex<Option<BackgroundServer>>,
    url: String,
}

impl Server {
    fn guard(&self) -> MutexGuard<'_, Option<BackgroundServer>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the running server; a stopped server raises.
    fn with<T>(&self, f: impl FnOnce(&BackgroundServer) -> T) -> PyResult<T> {
        match self.guard().as_ref() {
            Some(server) => Ok(f(server)),
            None => Err(PyRuntimeError::new_err("the server was shut down")),
        }
    }
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (
        *,
        host = "127.0.0.1",
        port = 0,
        api_keys = None,
        symbols = None,
        tick_interval = 0.1,
        seed = 42,
        firehose = false,
        firehose_rate = None,
        firehose_total = None,
        session_ttl = 60.0,
        ping_interval = 15.0,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        api_keys: Option<Vec<String>>,
        symbols: Option<Vec<String>>,
        tick_interval: f64,
        seed: u64,
        firehose: bool,
        firehose_rate: Option<u64>,
        firehose_total: Option<u64>,
        session_ttl: f64,
        ping_interval: f64,
    ) -> PyResult<Self> {
        let ip: IpAddr = host
            .parse()
            .map_err(|_| PyValueError::new_err(format!("host: `{host}` is not an IP address")))?;
        let symbols = symbols
            .map(|list| {
                list.iter()
                    .map(|s| {
                        Symbol::normalize(s)
                            .map_err(|e| PyValueError::new_err(format!("symbols: {e}")))
                    })
                    .collect::<PyResult<Vec<_>>>()
            })
            .transpose()?;
        let config = ServerConfig {
            listen: SocketAddr::new(ip, port),
            api_keys: api_keys
                .unwrap_or_default()
                .into_iter()
                .map(ApiKey::from)
                .collect(),
            symbols,
            tick_interval: seconds("tick_interval", tick_interval)?,
            seed,
            firehose: (firehose || firehose_rate.is_some() || firehose_total.is_some()).then_some(
                FirehoseConfig {
                    rate: firehose_rate,
                    total: firehose_total,
                },
            ),
            session_ttl: seconds("session_ttl", session_ttl)?,
            ping_interval: seconds("ping_interval", ping_interval)?,
            ..ServerConfig::ephemeral()
        };
        let server = py
            .detach(|| RustServer::start_in_background(config))
            .map_err(|e| match e {
                argus_server::ServerError::Config { .. } => PyValueError::new_err(e.to_string()),
                other => PyRuntimeError::new_err(other.to_string()),
            })?;
        Ok(Self {
            url: server.url(),
            running: Mutex::new(Some(server)),
        })
    }

    /// The endpoint, such as `ws://127.0.0.1:41234/ws`.
    #[getter]
    fn url(&self) -> String {
        self.url.clone()
    }

    /// The port it listens on.
    #[getter]
    fn port(&self) -> PyResult<u16> {
        self.with(|s| s.local_addr().port())
    }

    /// Whether it still serves.
    #[getter]
    fn running(&self) -> bool {
        self.guard().is_some()
    }

    /// The server's counters.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.with(|s| s.stats())?;
        let dict = PyDict::new(py);
        dict.set_item("connection_attempts", stats.connection_attempts)?;
        dict.set_item("connections_accepted", stats.connections_accepted)?;
        dict.set_item("connections_refused", stats.connections_refused)?;
        dict.set_item("connections_unauthorized", stats.connections_unauthorized)?;
        dict.set_item("live_connections", stats.live_connections)?;
        dict.set_item("sessions", stats.sessions)?;
        dict.set_item("slow_consumer_closes", stats.slow_consumer_closes)?;
        dict.set_item("restarts", stats.restarts)?;
        Ok(dict)
    }

    /// Drops every connection abruptly (no close frame); sessions stay for a
    /// resume. Returns how many were dropped.
    fn drop_connections(&self) -> PyResult<usize> {
        self.with(|s| s.drop_connections())
    }

    /// Makes every live session skip one seq: a gap for its client.
    fn skip_seq(&self) -> PyResult<()> {
        self.with(|s| s.skip_seq())
    }

    /// Makes the current connections half-open (no reads, writes or pings).
    fn go_silent(&self) -> PyResult<usize> {
        self.with(|s| s.go_silent())
    }

    /// Ends `go_silent()`.
    fn end_silence(&self) -> PyResult<()> {
        self.with(|s| s.end_silence())
    }

    /// Answers the next `n` upgrades with HTTP 503.
    fn refuse_next_connections(&self, n: u64) -> PyResult<()> {
        self.with(|s| s.refuse_next_connections(n))
    }

    /// Closes every connection with `code` and `reason`; sessions stay.
    #[pyo3(signature = (code = 1000, reason = ""))]
    fn disconnect_all(&self, code: u16, reason: &str) -> PyResult<usize> {
        self.with(|s| s.disconnect_all(code, reason))
    }

    /// Sends `text` as a frame on every connection.
    fn inject_text(&self, text: &str) -> PyResult<usize> {
        self.with(|s| s.inject_text(text))
    }

    /// Restarts on the same port, as a process restart would: clients get
    /// 1001, sessions and market start afresh.
    fn restart(&self, py: Python<'_>) -> PyResult<()> {
        let guard = self.guard();
        let server = guard
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("the server was shut down"))?;
        py.detach(|| server.block_on(server.restart()))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Stops gracefully: every client gets close code 1001. Idempotent.
    fn shutdown(&self, py: Python<'_>) {
        let server = self.guard().take();
        if let Some(server) = server {
            py.detach(move || {
                server.block_on(server.shutdown());
                drop(server);
            });
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.shutdown(py);
    }

    fn __repr__(&self) -> String {
        format!(
            "Server(url={:?}, running={})",
            self.url,
            self.guard().is_some()
        )
    }
}
