//! The link: the socket in whatever stage it is (opening, open, none), how
//! frames go out on it, and how what comes in becomes the core's input.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use argus_core::{Client, Input, OpenError};
use futures_util::{FutureExt, Sink, SinkExt, Stream};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Error as WsError, Message};

use crate::runtime::Runtime;

/// How long a close frame that the socket could not take at once may take
/// to go out, in a task of its own, before the socket is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

type Opening<S> = Pin<Box<dyn Future<Output = Result<S, OpenError>> + Send>>;

/// What the link had for the connection task this turn.
pub(crate) enum Ready<S> {
    /// The open attempt ended.
    Opened(Result<S, OpenError>),
    /// A frame, a failure, or the end of the socket (`None`).
    Frame(Option<Result<Message, WsError>>),
}

/// The socket, in whatever stage it is.
pub(crate) enum Link<S> {
    None,
    Opening(Opening<S>),
    Open {
        socket: Box<S>,
        /// Frames were written since the last successful flush.
        flush: bool,
    },
    /// The socket failed: it is read no more, and kept only until the core
    /// said whether to send a close frame on it (1009 for a message too big).
    Failed(Box<S>),
}

impl<S> Link<S>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    pub(crate) fn opening(
        open: impl Future<Output = Result<S, OpenError>> + Send + 'static,
    ) -> Self {
        Self::Opening(Box::pin(open))
    }

    pub(crate) fn opened(socket: S) -> Self {
        Self::Open {
            socket: Box::new(socket),
            flush: false,
        }
    }

    /// Drives the open attempt, or flushes and (when `read`) reads the socket.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>, read: bool) -> Poll<Ready<S>> {
        match self {
            Self::None | Self::Failed(_) => Poll::Pending,
            Self::Opening(opening) => opening.as_mut().poll(cx).map(Ready::Opened),
            Self::Open { socket, flush } => {
                if *flush {
                    match Pin::new(&mut **socket).poll_flush(cx) {
                        Poll::Ready(Ok(())) => *flush = false,
                        Poll::Ready(Err(e)) => return Poll::Ready(Ready::Frame(Some(Err(e)))),
                        Poll::Pending => {}
                    }
                }
                if read {
                    Pin::new(&mut **socket).poll_next(cx).map(Ready::Frame)
                } else {
                    Poll::Pending
                }
            }
        }
    }

    /// A frame already buffered, without waiting.
    pub(crate) fn try_next(&mut self) -> Option<Option<Result<Message, WsError>>> {
        match self {
            Self::Open { socket, .. } => {
                futures_util::StreamExt::next(&mut **socket).now_or_never()
            }
            _ => None,
        }
    }

    /// Queues a frame without waiting (the connection task flushes it).
    /// An error means the link is lost; the socket is dropped. A full write
    /// buffer is not an error: the frame is dropped, and the core's
    /// deadlines judge the link (a peer that reads nothing for `timeout`
    /// fails the heartbeat; one that reads slowly, say while it floods us
    /// with pings, keeps a healthy link).
    pub(crate) fn send(&mut self, message: Message) -> Result<(), WsError> {
        let Self::Open { socket, flush } = self else {
            tracing::debug!("no open socket; frame dropped");
            return Ok(());
        };
        match Pin::new(&mut **socket).start_send(message) {
            Ok(()) => {
                *flush = true;
                Ok(())
            }
            Err(WsError::WriteBufferFull(_)) => {
                tracing::debug!("the write buffer is full; frame dropped");
                *flush = true;
                Ok(())
            }
            Err(error) => {
                *self = Self::None;
                Err(error)
            }
        }
    }

    /// Sends a close frame if the socket takes it at once, otherwise gives
    /// it [`CLOSE_GRACE`] in a task of its own; the link is gone either way.
    pub(crate) fn close<R: Runtime<Socket = S>>(&mut self, code: u16, reason: &'static str)
    where
        S: Send + 'static,
    {
        let mut socket = match std::mem::replace(self, Self::None) {
            Self::Open { socket, .. } | Self::Failed(socket) => socket,
            Self::None | Self::Opening(_) => return,
        };
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        if Pin::new(&mut *socket)
            .start_send(Message::Close(Some(frame)))
            .is_err()
        {
            return;
        }
        if socket.flush().now_or_never().is_none() {
            R::spawn(async move {
                let grace = R::timer(R::now() + CLOSE_GRACE);
                let _ = futures_util::future::select(grace, socket.flush()).await;
            });
        }
    }

    /// Drops a failed socket the core did not close (after its transmits
    /// were drained).
    pub(crate) fn forget_failed(&mut self) {
        if matches!(self, Self::Failed(_)) {
            *self = Self::None;
        }
    }

    /// Feeds one frame read from the socket to the core: a data frame with
    /// the time it was seen (`arrived`), anything else with `now()` (a pong's
    /// round trip, say, is measured to the moment it is handled).
    pub(crate) fn feed(
        &mut self,
        core: &mut Client,
        frame: Option<Result<Message, WsError>>,
        arrived: Instant,
        now: impl FnOnce() -> Instant,
        sent_close_code: impl FnOnce(&S) -> Option<u16>,
    ) {
        let at = match &frame {
            Some(Ok(Message::Text(_))) => arrived,
            _ => now(),
        };
        match frame {
            Some(Ok(Message::Text(text))) => core.handle_input(at, Input::Text(&text)),
            Some(Ok(Message::Binary(bytes))) => core.handle_input(at, Input::Binary(&bytes)),
            Some(Ok(Message::Ping(payload))) => {
                // tungstenite queued the pong; the next turn flushes it.
                if let Self::Open { flush, .. } = self {
                    *flush = true;
                }
                core.handle_input(at, Input::Ping(&payload));
            }
            Some(Ok(Message::Pong(payload))) => core.handle_input(at, Input::Pong(&payload)),
            Some(Ok(Message::Close(frame))) => {
                // tungstenite queued the close reply: send it if it can go
                // at once, then drop the socket.
                let mut sent = None;
                if let Self::Open { mut socket, .. } = std::mem::replace(self, Self::None) {
                    sent = sent_close_code(&socket);
                    let _ = socket.flush().now_or_never();
                }
                let (code, reason) = match &frame {
                    // tungstenite replaced an invalid code (and its reason):
                    // report the code as the server sent it.
                    Some(f) if sent.is_some_and(|s| s != u16::from(f.code)) => (sent, ""),
                    Some(f) => (Some(u16::from(f.code)), f.reason.as_str()),
                    None => (None, ""),
                };
                tracing::debug!(?code, reason, "the server closed the connection");
                core.handle_input(at, Input::Closed { code, reason });
            }
            Some(Ok(Message::Frame(_))) => {}
            Some(Err(error)) => {
                tracing::debug!(%error, "the connection failed");
                // The core decides what to send (a 1009 close, say) before
                // the socket goes: keep it until its transmits are drained.
                if let Self::Open { socket, .. } = std::mem::replace(self, Self::None) {
                    *self = Self::Failed(socket);
                }
                core.handle_input(at, crate::transport::link_input(&error));
            }
            None => {
                tracing::debug!("the connection ended without a close frame");
                *self = Self::None;
                core.handle_input(
                    at,
                    Input::Closed {
                        code: None,
                        reason: "",
                    },
                );
            }
        }
    }
}
