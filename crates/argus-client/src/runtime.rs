//! What an adapter gives the client: tasks, a clock, timers and sockets of
//! one async runtime. Everything else (the connection task, handlers,
//! queue, events, errors) is in this crate, the same for every runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use argus_core::{OpenError, OpenRequest};
use futures_util::{Sink, Stream};
use tungstenite::{Error as WsError, Message};

/// One async runtime, as the client needs it. Implemented by a unit type in
/// each adapter crate (`argus_tokio::Tokio`, `argus_async_std::AsyncStd`);
/// implement it to run the client on another runtime.
///
/// The methods are associated functions: a runtime is ambient to the task
/// that calls them.
pub trait Runtime: Send + Sync + 'static {
    /// An open WebSocket (after the upgrade).
    type Socket: Stream<Item = Result<Message, WsError>>
        + Sink<Message, Error = WsError>
        + Send
        + Unpin
        + 'static;

    /// A timer that completes at its deadline (with whatever output) and
    /// can be moved.
    type Timer: Future + Send + Unpin + 'static;

    /// Runs `task` in the background.
    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// The clock the connection task reads (the only clock: the core reads
    /// none).
    fn now() -> Instant;

    /// A timer that completes at `deadline`.
    fn timer(deadline: Instant) -> Self::Timer;

    /// Moves `timer` to `deadline`.
    fn reset(timer: &mut Self::Timer, deadline: Instant);

    /// Opens the connection the core asked for: TCP, TLS for `wss://` with
    /// `tls`, and the WebSocket upgrade, configured by
    /// [`prepare`](crate::transport::prepare), every failure mapped to the
    /// core's [`OpenError`] (see [`transport`](crate::transport)).
    fn open(
        request: OpenRequest,
        tls: Arc<rustls::ClientConfig>,
    ) -> impl Future<Output = Result<Self::Socket, OpenError>> + Send + 'static;

    /// The code of the last close frame the server sent, as sent, when the
    /// socket follows it (see
    /// [`CloseCodeSniffer`](crate::transport::CloseCodeSniffer)):
    /// tungstenite reports an invalid code as 1002. `None` by default.
    fn sent_close_code(socket: &Self::Socket) -> Option<u16> {
        let _ = socket;
        None
    }
}
