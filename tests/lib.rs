//! Workspace-level tests of Argus: the live suite every adapter runs, and a
//! custom transport.
//!
//! - [`live`] and [`suite`]: the client's live tests against the reference
//!   server, written once for any [`Runtime`](argus_client::Runtime); each
//!   adapter runs them with [`live_suite!`].
//! - [`BlockingDriver`]: argus-core holds every decision of the client, so
//!   any transport can drive it. This one is a whole transport in a hundred
//!   lines: blocking `std::net` sockets and synchronous tungstenite, no async
//!   runtime. The tests run it against the reference server, which shows the
//!   core behaves the same whatever drives it, and shows users how to write
//!   their own driver.
//!
//! ```no_run
//! use argus_core::{ConnectionConfig, DataType, SubscriptionConfig};
//! use argus_tests::BlockingDriver;
//!
//! let mut driver = BlockingDriver::new(ConnectionConfig::new("ws://127.0.0.1:8000/ws"), 1).unwrap();
//! driver.connect();
//! driver.subscribe("main", &SubscriptionConfig::new(["AAPL"], [DataType::Price])).unwrap();
//! while let Some(event) = driver.next_event() {
//!     println!("{event:?}");
//! }
//! ```
#![forbid(unsafe_code)]

pub mod live;
pub mod nats;
pub mod scripted;
pub mod suite;

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use argus_client::transport::{self, Prepared};
use argus_core::{
    Client, ConfigError, ConnectionConfig, Event, Input, LinkError, OpenError, OpenRequest,
    SubscribeError, SubscriptionConfig, SubscriptionId, Transmit,
};
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::{Error as WsError, Message, WebSocket};

/// Drives an [`argus_core::Client`] with blocking sockets on the calling
/// thread. Plain `ws://` only. The driver keeps the core's invariant: one
/// mutation, then every output drained, and deadlines checked before waiting.
pub struct BlockingDriver {
    core: Client,
    socket: Option<WebSocket<TcpStream>>,
    events: VecDeque<Event>,
}

impl BlockingDriver {
    /// A driver of a new core client.
    pub fn new(config: ConnectionConfig, seed: u64) -> Result<Self, ConfigError> {
        Ok(Self {
            core: Client::new(config, seed)?,
            socket: None,
            events: VecDeque::new(),
        })
    }

    /// The core, for getters such as `state()` and `stats()`.
    pub fn core(&self) -> &Client {
        &self.core
    }

    /// Starts connecting.
    pub fn connect(&mut self) {
        self.core.connect(Instant::now());
        self.drain();
    }

    /// Adds a subscription.
    pub fn subscribe(
        &mut self,
        id: &str,
        config: &SubscriptionConfig,
    ) -> Result<SubscriptionId, SubscribeError> {
        let id = self.core.subscribe(Instant::now(), id, config)?;
        self.drain();
        Ok(id)
    }

    /// Runs until the core has an event, and returns it; `None` when the
    /// client is down for good (no socket and no deadline).
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            let now = Instant::now();
            let deadline = self.core.poll_timeout();
            match deadline {
                Some(at) if at <= now => self.core.handle_timeout(now),
                _ => {
                    let Some(socket) = &mut self.socket else {
                        let at = deadline?;
                        std::thread::sleep(at - now); // nothing else can happen
                        continue;
                    };
                    let wait = deadline
                        .map(|at| at - now)
                        .unwrap_or(Duration::from_secs(1));
                    let _ = socket
                        .get_mut()
                        .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
                    match socket.read() {
                        Ok(message) => self.feed(&message),
                        Err(WsError::Io(e))
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                        {
                            continue;
                        }
                        Err(error) => {
                            // The same input as every transport gives for
                            // this failure; the core says whether to close
                            // (1009 for a message too big), then the socket
                            // goes.
                            let input = transport::link_input(&error);
                            self.core.handle_input(Instant::now(), input);
                            self.drain();
                            self.socket = None;
                        }
                    }
                }
            }
            self.drain();
        }
    }

    fn feed(&mut self, message: &Message) {
        let now = Instant::now();
        let input = match message {
            Message::Text(text) => Input::Text(text.as_str()),
            Message::Binary(bytes) => Input::Binary(bytes),
            Message::Ping(payload) => Input::Ping(payload),
            Message::Pong(payload) => Input::Pong(payload),
            Message::Close(frame) => {
                self.socket = None;
                let code = frame.as_ref().map(|f| u16::from(f.code));
                let reason = frame.as_ref().map_or("", |f| f.reason.as_str());
                Input::Closed { code, reason }
            }
            Message::Frame(_) => return,
        };
        self.core.handle_input(now, input);
    }

    /// Carries out every transmit and keeps every event.
    fn drain(&mut self) {
        while let Some(transmit) = self.core.poll_transmit() {
            let now = Instant::now();
            match transmit {
                Transmit::Open(request) => match open(&request, self.core.config().timeout) {
                    Ok(socket) => {
                        self.socket = Some(socket);
                        self.core.handle_input(now, Input::Opened);
                    }
                    Err(error) => self.core.handle_input(now, Input::OpenFailed(error)),
                },
                Transmit::Text(text) => self.write(Message::text(text)),
                Transmit::Ping(payload) => self.write(Message::Ping(payload.to_vec().into())),
                Transmit::Close { code, reason } => {
                    if let Some(mut socket) = self.socket.take() {
                        let frame = CloseFrame {
                            code: code.into(),
                            reason: reason.into(),
                        };
                        let _ = socket.close(Some(frame));
                        let _ = socket.flush();
                    }
                }
                _ => {}
            }
        }
        self.events
            .extend(std::iter::from_fn(|| self.core.poll_event()));
    }

    fn write(&mut self, message: Message) {
        let Some(socket) = &mut self.socket else {
            return;
        };
        if let Err(error) = socket.send(message) {
            self.socket = None;
            let failed = Input::Failed(LinkError::Write(error.to_string()));
            self.core.handle_input(Instant::now(), failed);
        }
    }
}

/// Opens a `ws://` connection as the core asks: the upgrade request and
/// limits from [`transport::prepare`] (bearer key, subprotocol, message
/// limit), the connect timeout, and every failure mapped as every transport
/// maps it.
fn open(request: &OpenRequest, timeout: Duration) -> Result<WebSocket<TcpStream>, OpenError> {
    let Prepared {
        request: http,
        host,
        port,
        tls_name,
        config,
        ..
    } = transport::prepare(request)?;
    if tls_name.is_some() {
        return Err(OpenError::InvalidUrl(
            "this transport speaks ws:// only".into(),
        ));
    }
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .map_err(|e| transport::connect_error(&host, port, e))?
        .next()
        .ok_or_else(|| OpenError::Network(format!("{host} has no address")))?;
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| transport::connect_error(&host, port, e))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_nodelay(true);
    match tungstenite::client::client_with_config(http, stream, Some(config)) {
        Ok((socket, _response)) => Ok(socket),
        Err(tungstenite::HandshakeError::Failure(error)) => Err(transport::handshake_error(error)),
        Err(error) => Err(OpenError::Network(error.to_string())),
    }
}
