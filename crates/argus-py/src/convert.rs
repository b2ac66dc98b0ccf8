//! Rust values to Python objects: the one place that knows the shape of what
//! Python handlers and `events()` receive.
//!
//! Data messages become the dictionaries `json.loads` would make of the wire
//! text (`type`, `sub`, `seq`, `symbol`, `price` / `volume` / `bids` and
//! `asks`, `timestamp`), built field by field with interned keys: no JSON
//! text is written or read on the way. Other events become dictionaries
//! whose `type` names the event (`gap`, `resumed`, `state_changed`, ...).

use std::collections::HashMap;

use argus_tokio::{
    DataType, DisconnectReason, Event, GapCause, Lagged, MarketData, SubscriptionId,
    argus_core::{Symbol, Timestamp},
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::{IntoPyObjectExt, intern};

/// The most symbols whose Python strings are kept: a server that invents
/// symbols cannot grow the cache past this.
const MAX_CACHED_SYMBOLS: usize = 4096;

/// The handler kinds that are not market data, as `add_message_handler` and
/// the `type` of event dictionaries name them.
pub(crate) const EVENT_KINDS: [&str; 11] = [
    "state_changed",
    "subscribed",
    "subscribe_failed",
    "resumed",
    "gap",
    "disconnected",
    "attempt_failed",
    "reconnecting",
    "gave_up",
    "protocol_error",
    "lagged",
];

/// What an event is, for routing it to handlers: its data type, or its
/// event kind (one of [`EVENT_KINDS`], or another name of a newer event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Market data of this type.
    Data(DataType),
    /// Any other event, by name.
    Event(&'static str),
}

/// One item of the client's stream: an event, or how many events a lossy
/// stream (`slow_consumer` other than backpressure) dropped before the next.
pub(crate) type Item = Result<Event, Lagged>;

/// The routing key of `item`, and the subscription it belongs to, if any.
pub(crate) fn route_item(item: &Item) -> (Kind, Option<&SubscriptionId>) {
    match item {
        Ok(event) => route(event),
        Err(_) => (Kind::Event("lagged"), None),
    }
}

/// The routing key of `event`, and the subscription it belongs to, if any.
pub(crate) fn route(event: &Event) -> (Kind, Option<&SubscriptionId>) {
    match event {
        Event::Data(data) => (Kind::Data(data.data_type()), Some(data.subscription())),
        Event::Subscribed(id)
        | Event::SubscribeFailed { id, .. }
        | Event::RequestTimedOut { id, .. } => (Kind::Event(event.name()), Some(id)),
        other => (Kind::Event(other.name()), None),
    }
}

/// Builds the Python dictionaries of events, keeping the strings that repeat
/// from one message to the next (symbols, the subscription id, the
/// timestamp of a burst) so most messages allocate only their dictionary
/// and numbers.
#[derive(Default)]
pub(crate) struct Converter {
    symbols: HashMap<Symbol, Py<PyString>>,
    subscription: Option<(SubscriptionId, Py<PyString>)>,
    timestamp: Option<(Timestamp, Py<PyString>)>,
}

impl Converter {
    /// The Python object handlers and `events()` receive for `item`.
    pub(crate) fn item<'py>(
        &mut self,
        py: Python<'py>,
        item: &Item,
    ) -> PyResult<Bound<'py, PyAny>> {
        match item {
            Ok(event) => self.event(py, event),
            Err(Lagged(missed)) => {
                let dict = PyDict::new(py);
                dict.set_item(intern!(py, "type"), intern!(py, "lagged"))?;
                dict.set_item(intern!(py, "missed"), missed)?;
                Ok(dict.into_any())
            }
        }
    }

    /// The Python object handlers and `events()` receive for `event`.
    pub(crate) fn event<'py>(
        &mut self,
        py: Python<'py>,
        event: &Event,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Event::Data(data) = event {
            return self.data(py, data).map(Bound::into_any);
        }
        let dict = PyDict::new(py);
        dict.set_item(intern!(py, "type"), event.name())?;
        match event {
            Event::StateChanged { from, to } => {
                dict.set_item(intern!(py, "from"), from.as_str())?;
                dict.set_item(intern!(py, "to"), to.as_str())?;
            }
            Event::Subscribed(id) => dict.set_item(intern!(py, "id"), id.as_str())?,
            Event::SubscribeFailed { id, error } => {
                dict.set_item(intern!(py, "id"), id.as_str())?;
                dict.set_item(intern!(py, "code"), error.code.to_string())?;
                dict.set_item(intern!(py, "message"), &error.message)?;
            }
            Event::Resumed { replayed } => dict.set_item(intern!(py, "replayed"), replayed)?,
            Event::Gap(gap) => {
                dict.set_item(intern!(py, "from"), gap.from)?;
                dict.set_item(intern!(py, "to"), gap.to)?;
                let cause = match gap.cause {
                    GapCause::SeqJump => "seq_jump",
                    GapCause::ResumeFailed => "resume_failed",
                    GapCause::ResumeTimedOut => "resume_timed_out",
                    GapCause::SeqOutOfRange => "seq_out_of_range",
                };
                dict.set_item(intern!(py, "cause"), cause)?;
            }
            Event::Disconnected(reason) => {
                let kind = match reason {
                    DisconnectReason::ServerClosed { code, .. } => {
                        dict.set_item(intern!(py, "code"), code)?;
                        "server_closed"
                    }
                    DisconnectReason::Lost => "lost",
                    DisconnectReason::Failed { .. } => "failed",
                    DisconnectReason::HeartbeatTimeout { .. } => "heartbeat_timeout",
                    DisconnectReason::SeqOutOfRange { .. } => "seq_out_of_range",
                    DisconnectReason::InvalidCloseCode { code } => {
                        dict.set_item(intern!(py, "code"), code)?;
                        "invalid_close_code"
                    }
                    _ => "other",
                };
                dict.set_item(intern!(py, "kind"), kind)?;
                dict.set_item(intern!(py, "reason"), reason.to_string())?;
            }
            Event::AttemptFailed { attempt, error } => {
                dict.set_item(intern!(py, "attempt"), attempt)?;
                dict.set_item(intern!(py, "error"), error.to_string())?;
                dict.set_item(intern!(py, "fatal"), error.is_fatal())?;
            }
            Event::Reconnecting { attempt, delay } => {
                dict.set_item(intern!(py, "attempt"), attempt)?;
                dict.set_item(intern!(py, "delay"), delay.as_secs_f64())?;
            }
            Event::GaveUp(reason) => dict.set_item(intern!(py, "reason"), reason.to_string())?,
            Event::ProtocolError(error) => {
                dict.set_item(intern!(py, "error"), error.to_string())?
            }
            Event::RequestTimedOut {
                request,
                id,
                timeout,
            } => {
                dict.set_item(intern!(py, "request"), request.to_string())?;
                dict.set_item(intern!(py, "id"), id.as_str())?;
                dict.set_item(intern!(py, "timeout"), timeout.as_secs_f64())?;
            }
            Event::Ignored { kind } => dict.set_item(intern!(py, "kind"), kind)?,
            _ => {}
        }
        Ok(dict.into_any())
    }

    /// A data message as `json.loads` would give it.
    fn data<'py>(&mut self, py: Python<'py>, data: &MarketData) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item(intern!(py, "type"), data_type_name(py, data.data_type()))?;
        dict.set_item(
            intern!(py, "sub"),
            self.subscription(py, data.subscription()),
        )?;
        dict.set_item(intern!(py, "seq"), data.seq())?;
        dict.set_item(intern!(py, "symbol"), self.symbol(py, data.symbol()))?;
        match data {
            MarketData::Price(p) => dict.set_item(intern!(py, "price"), p.price)?,
            MarketData::Volume(v) => dict.set_item(intern!(py, "volume"), v.volume)?,
            MarketData::OrderBook(b) => {
                for (key, levels) in [
                    (intern!(py, "bids"), &b.bids),
                    (intern!(py, "asks"), &b.asks),
                ] {
                    let list = PyList::empty(py);
                    for level in levels {
                        list.append(PyList::new(
                            py,
                            [level.price.into_py_any(py)?, level.size.into_py_any(py)?],
                        )?)?;
                    }
                    dict.set_item(key, list)?;
                }
            }
            _ => {}
        }
        dict.set_item(
            intern!(py, "timestamp"),
            self.timestamp(py, data.timestamp()),
        )?;
        Ok(dict)
    }

    fn subscription<'py>(&mut self, py: Python<'py>, id: &SubscriptionId) -> Bound<'py, PyString> {
        match &self.subscription {
            Some((cached, s)) if cached == id => s.bind(py).clone(),
            _ => {
                let s = PyString::new(py, id.as_str());
                self.subscription = Some((id.clone(), s.clone().unbind()));
                s
            }
        }
    }

    fn symbol<'py>(&mut self, py: Python<'py>, symbol: Symbol) -> Bound<'py, PyString> {
        if let Some(s) = self.symbols.get(&symbol) {
            return s.bind(py).clone();
        }
        let s = PyString::new(py, symbol.as_str());
        if self.symbols.len() < MAX_CACHED_SYMBOLS {
            self.symbols.insert(symbol, s.clone().unbind());
        }
        s
    }

    fn timestamp<'py>(&mut self, py: Python<'py>, t: Timestamp) -> Bound<'py, PyString> {
        match &self.timestamp {
            Some((cached, s)) if *cached == t => s.bind(py).clone(),
            _ => {
                let s = PyString::new(py, &t.to_string());
                self.timestamp = Some((t, s.clone().unbind()));
                s
            }
        }
    }
}

fn data_type_name(py: Python<'_>, data_type: DataType) -> &Bound<'_, PyString> {
    match data_type {
        DataType::Price => intern!(py, "price"),
        DataType::Volume => intern!(py, "volume"),
        DataType::OrderBook => intern!(py, "orderbook"),
    }
}

/// A JSON value (statistics) as plain Python objects.
pub(crate) struct Json(pub(crate) serde_json::Value);

impl<'py> IntoPyObject<'py> for Json {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.0)
    }
}

fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_bound_py_any(py)?,
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_bound_py_any(py)?,
            (None, Some(i)) => i.into_bound_py_any(py)?,
            _ => n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)?,
        },
        Value::String(s) => s.into_bound_py_any(py)?,
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, json_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}
