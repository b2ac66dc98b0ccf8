//! The connection task: drives the core state machine with a socket, a
//! timer and the application's commands.
//!
//! Each turn of the loop drains every output of the core (transmits, then
//! events), checks the core's deadline against the clock itself (an expired
//! deadline is handled at once, without awaiting a timer), and otherwise
//! waits for exactly one thing (the timer, the socket, or a command), feeds
//! it to the core (one mutation), and turns again.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use argus_core::{
    Client, ConnectionState, Event, Input, LinkError, MarketData, OpenError, Stats,
    SubscriptionConfig, SubscriptionId, Transmit,
};
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tungstenite::error::ProtocolError;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Error as WsError, Message};

use crate::client::{Shared, redact_url};
use crate::error::{ConnectError, SubscribeError, UnsubscribeError};
use crate::events::ClientEvent;
use crate::handler::Snapshot;
use crate::queue::QueuePolicy;
use crate::runtime::{Runtime, yield_now};

/// How long a close frame that the socket could not take at once may take
/// to go out, in a task of its own, before the socket is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a handle asks of the connection task.
pub(crate) enum Command {
    Connect(oneshot::Sender<Result<(), ConnectError>>),
    Disconnect(oneshot::Sender<()>),
    Subscribe {
        id: String,
        config: SubscriptionConfig,
        reply: oneshot::Sender<Result<SubscriptionId, SubscribeError>>,
    },
    Unsubscribe {
        id: String,
        reply: oneshot::Sender<Result<(), UnsubscribeError>>,
    },
    Stats(oneshot::Sender<Stats>),
}

/// A reply that waits until the transmits of its command went out.
enum Deferred {
    Disconnect(oneshot::Sender<()>),
    Unsubscribe(
        oneshot::Sender<Result<(), UnsubscribeError>>,
        Result<(), UnsubscribeError>,
    ),
}

type Opening<S> = Pin<Box<dyn Future<Output = Result<S, OpenError>> + Send>>;

/// The socket, in whatever stage it is.
enum Link<S> {
    None,
    Opening(Opening<S>),
    Open {
        socket: Box<S>,
        /// Frames were written since the last successful flush.
        flush: bool,
    },
}

/// The one thing a turn waited for.
enum Step<S> {
    Timeout,
    Opened(Result<S, OpenError>),
    Frame(Option<Result<Message, WsError>>),
    Command(Option<Command>),
    Space,
}

impl<S> Link<S>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    /// Drives the open attempt, or flushes and reads the socket.
    fn poll_step(&mut self, cx: &mut Context<'_>, read: bool) -> Poll<Step<S>> {
        match self {
            Self::None => Poll::Pending,
            Self::Opening(opening) => opening.as_mut().poll(cx).map(Step::Opened),
            Self::Open { socket, flush } => {
                if *flush {
                    match Pin::new(&mut **socket).poll_flush(cx) {
                        Poll::Ready(Ok(())) => *flush = false,
                        Poll::Ready(Err(e)) => return Poll::Ready(Step::Frame(Some(Err(e)))),
                        Poll::Pending => {}
                    }
                }
                if read {
                    Pin::new(&mut **socket).poll_next(cx).map(Step::Frame)
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

/// Most frames fed in one turn without waiting (see `read_ready_frames`).
const READ_BATCH: usize = 64;
/// The first batch after the socket ran dry.
const FIRST_READ_BATCH: usize = 4;

pub(crate) struct Driver<R: Runtime> {
    core: Client,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    tls: Arc<rustls::ClientConfig>,
    link: Link<R::Socket>,
    /// The timer, made at the first deadline and reset for later ones.
    timer: Option<R::Timer>,
    /// A write failed while draining: the link is lost, to be fed to the
    /// core as the next turn's mutation.
    lost: Option<String>,
    /// Market data not yet handed to the handlers.
    batch: Vec<MarketData>,
    /// Under [`QueuePolicy::Backpressure`], synchronous handlers are called
    /// by this task itself, without a hop through the queue.
    direct: bool,
    /// The handler table as last seen, and its generation then.
    handlers: Arc<Snapshot>,
    handlers_generation: u64,
    /// Frames to read in the next batch: see `read_ready_frames`.
    read_batch: usize,
    /// The state last published to the handles.
    published: ConnectionState,
    connect_waiters: Vec<oneshot::Sender<Result<(), ConnectError>>>,
    subscribe_waiters:
        HashMap<SubscriptionId, oneshot::Sender<Result<SubscriptionId, SubscribeError>>>,
    deferred: Vec<Deferred>,
    /// The events of one drain (kept for its allocation).
    events: Vec<Event>,
}

impl<R: Runtime> Driver<R> {
    pub(crate) fn new(
        core: Client,
        commands: mpsc::UnboundedReceiver<Command>,
        shared: Arc<Shared>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            core,
            commands,
            tls,
            link: Link::None,
            timer: None,
            lost: None,
            connect_waiters: Vec::new(),
            subscribe_waiters: HashMap::new(),
            deferred: Vec::new(),
            events: Vec::new(),
            batch: Vec::new(),
            direct: shared.queue.policy() == QueuePolicy::Backpressure,
            handlers: Arc::default(),
            handlers_generation: u64::MAX,
            read_batch: FIRST_READ_BATCH,
            published: ConnectionState::Disconnected,
            shared,
        }
    }

    pub(crate) async fn run(mut self) {
        tracing::debug!("connection task started");
        loop {
            self.drain();
            // Market data the handlers could not be given directly goes to
            // the queue in one go; then the handler task gets its turn before
            // the next read, so a burst is handed on as it arrives instead of
            // after the socket runs dry.
            if !self.deliver_directly() {
                self.shared.queue.push_batch(&mut self.batch);
                yield_now().await;
            }
            let at = R::now();
            if let Some(why) = self.lost.take() {
                tracing::debug!(error = %why, "write failed; the link is lost");
                self.core
                    .handle_input(at, Input::Failed(LinkError::Write(why.to_string())));
                continue;
            }
            let deadline = self.core.poll_timeout();
            if deadline.is_some_and(|d| d <= at) {
                self.core.handle_timeout(at);
                continue;
            }
            let blocked = matches!(self.link, Link::Open { .. })
                && !self.shared.queue.is_quiet()
                && self.shared.queue.is_blocked();
            let step = {
                if let Some(d) = deadline {
                    match &mut self.timer {
                        Some(timer) => R::reset(timer, d),
                        None => self.timer = Some(R::timer(d)),
                    }
                }
                let mut timer = self.timer.as_mut().filter(|_| deadline.is_some());
                let (link, commands) = (&mut self.link, &mut self.commands);
                let space = self.shared.queue.space();
                let mut space = std::pin::pin!(space);
                // Commands before the socket: a busy feed must not starve
                // them (there are few, and each is one turn).
                std::future::poll_fn(|cx| {
                    if let Some(timer) = timer.as_mut()
                        && Pin::new(&mut **timer).poll(cx).is_ready()
                    {
                        return Poll::Ready(Step::Timeout);
                    }
                    if let Poll::Ready(command) = commands.poll_recv(cx) {
                        return Poll::Ready(Step::Command(command));
                    }
                    if blocked && space.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Step::Space);
                    }
                    link.poll_step(cx, !blocked)
                })
                .await
            };
            match step {
                Step::Timeout => self.core.handle_timeout(R::now()),
                Step::Opened(Ok(socket)) => {
                    tracing::debug!("upgrade complete; waiting for welcome");
                    self.link = Link::Open {
                        socket: Box::new(socket),
                        flush: false,
                    };
                    self.core.handle_input(R::now(), Input::Opened);
                }
                Step::Opened(Err(error)) => {
                    tracing::debug!(%error, "connection attempt failed");
                    self.link = Link::None;
                    self.core.handle_input(R::now(), Input::OpenFailed(error));
                }
                Step::Frame(frame) => {
                    let arrived = R::now();
                    self.on_frame(frame, arrived);
                    self.read_ready_frames(arrived);
                }
                Step::Command(Some(command)) => self.on_command(command),
                Step::Command(None) => break,
                Step::Space => {}
            }
        }
        // Every handle is gone: close with 1000 and end.
        self.core.disconnect(R::now());
        self.drain();
        self.batch.clear();
        self.shared.queue.close();
        tracing::debug!("connection task ended");
    }

    /// Feeds the frames that are already buffered, without waiting: each is
    /// one mutation, drained before the next. Bounded, so timers and commands
    /// get their turn, and within the handler queue's room under
    /// backpressure. One wake-up of the handler task then carries the batch.
    ///
    /// The batch starts small and doubles while the socket keeps having more
    /// (up to [`READ_BATCH`]): a short burst reaches the handlers after a few
    /// frames, a saturated feed is read in large batches.
    ///
    /// Every frame of the batch was already buffered when the batch began,
    /// at `arrived`: data frames are fed with that time, which saves a
    /// clock read a frame (control frames read the clock afresh).
    fn read_ready_frames(&mut self, arrived: Instant) {
        let budget = if self.shared.queue.is_quiet() {
            self.read_batch
        } else {
            let room = self.shared.queue.room().saturating_sub(self.batch.len());
            self.read_batch.min(room)
        };
        let mut read = 1;
        while read < budget {
            let Link::Open { socket, .. } = &mut self.link else {
                break;
            };
            let Some(frame) = socket.next().now_or_never() else {
                break;
            };
            self.drain();
            self.deliver_directly();
            self.on_frame(frame, arrived);
            read += 1;
        }
        self.read_batch = if read == self.read_batch {
            (self.read_batch * 2).min(READ_BATCH)
        } else {
            FIRST_READ_BATCH
        };
    }

    /// Calls the handlers with the market data not yet handed on, from this
    /// task, when that overtakes nothing and awaits nothing: under
    /// backpressure, with nothing queued or being dispatched by the handler
    /// task, and no async handler registered (an async handler might await
    /// this very task, through a call on the client). True when nothing is
    /// left for the queue.
    fn deliver_directly(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        if !self.may_deliver_directly() {
            return false;
        }
        let n = self.batch.len();
        for data in self.batch.drain(..) {
            self.shared.handlers.dispatch_sync(&self.handlers, data);
        }
        self.shared.queue.delivered_directly(n as u64);
        true
    }

    /// Whether this task may call the handlers itself now (see
    /// [`deliver_directly`](Self::deliver_directly)); refreshes its view of
    /// the handler table when the table changed.
    fn may_deliver_directly(&mut self) -> bool {
        if !self.direct || !self.shared.queue.is_quiet() {
            return false;
        }
        let generation = self.shared.handlers.generation();
        if generation != self.handlers_generation {
            self.handlers = self.shared.handlers.snapshot();
            self.handlers_generation = generation;
        }
        !self.handlers.any_async()
    }

    /// Drains every output of the core: transmits, then events; then
    /// publishes the state and answers whoever waits on it.
    fn drain(&mut self) {
        while let Some(transmit) = self.core.poll_transmit() {
            self.transmit(transmit);
        }
        // Market data that comes before any other event takes the short way
        // (nothing it could overtake); the rest keeps its order below.
        let mut events = std::mem::take(&mut self.events);
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::Data(data) if events.is_empty() => self.route_data(data),
                other => events.push(other),
            }
        }
        if events.is_empty()
            && self.core.state() == self.published
            && self.connect_waiters.is_empty()
            && self.deferred.is_empty()
        {
            self.events = events;
            return;
        }
        // Publish the state (and why the client gave up) before handing the
        // events on, so whoever sees an event sees the state it led to.
        for event in &events {
            if let Event::GaveUp(reason) = event {
                *self
                    .shared
                    .gave_up
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(reason.clone());
            }
        }
        let state = self.core.state();
        if state != self.published {
            self.published = state;
            self.shared.state.send_replace(state);
        }
        for event in events.drain(..) {
            self.route(event);
        }
        self.events = events;
        match state {
            ConnectionState::Connected => {
                for waiter in self.connect_waiters.drain(..) {
                    let _ = waiter.send(Ok(()));
                }
            }
            ConnectionState::Error => {
                let error = self.shared.gave_up_error();
                for waiter in self.connect_waiters.drain(..) {
                    let _ = waiter.send(Err(error.clone()));
                }
                let reason = self
                    .shared
                    .gave_up
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                for (_, waiter) in self.subscribe_waiters.drain() {
                    let _ = waiter.send(Err(match &reason {
                        Some(reason) => SubscribeError::GaveUp(reason.clone()),
                        None => SubscribeError::NotConnected,
                    }));
                }
            }
            ConnectionState::Disconnected => {
                for waiter in self.connect_waiters.drain(..) {
                    let _ = waiter.send(Err(ConnectError::Disconnected));
                }
                for (_, waiter) in self.subscribe_waiters.drain() {
                    let _ = waiter.send(Err(SubscribeError::Disconnected));
                }
            }
            ConnectionState::Connecting | ConnectionState::Reconnecting => {}
        }
        for deferred in self.deferred.drain(..) {
            match deferred {
                Deferred::Disconnect(reply) => {
                    let _ = reply.send(());
                }
                Deferred::Unsubscribe(reply, result) => {
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn transmit(&mut self, transmit: Transmit) {
        match transmit {
            Transmit::Open(request) => {
                tracing::debug!(url = %redact_url(&request.url), "opening a connection");
                let tls = self.tls.clone();
                self.link = Link::Opening(Box::pin(R::open(request, tls)));
            }
            Transmit::Text(text) => self.send(Message::text(text)),
            Transmit::Ping(payload) => self.send(Message::Ping(Bytes::copy_from_slice(&payload))),
            Transmit::Close { code, reason } => {
                tracing::debug!(code, reason, "closing the connection");
                if let Link::Open { socket, .. } = std::mem::replace(&mut self.link, Link::None) {
                    close_now::<R>(socket, code, reason);
                }
            }
            other => tracing::debug!(?other, "transmit not understood; ignored"),
        }
    }

    /// Queues a frame on the socket without waiting; the loop flushes it.
    fn send(&mut self, message: Message) {
        let Link::Open { socket, flush } = &mut self.link else {
            tracing::debug!("no open socket; frame dropped");
            return;
        };
        match Pin::new(&mut **socket).start_send(message) {
            Ok(()) => *flush = true,
            Err(error) => {
                self.lost = Some(error.to_string());
                self.link = Link::None;
            }
        }
    }

    /// Feeds one frame read from the socket; a data frame with the time it
    /// was seen `arrived`, anything else with the clock read now (a pong's
    /// round trip, say, is measured to the moment it is handled).
    fn on_frame(&mut self, frame: Option<Result<Message, WsError>>, arrived: Instant) {
        let now = match &frame {
            Some(Ok(Message::Text(_))) => arrived,
            _ => R::now(),
        };
        match frame {
            Some(Ok(Message::Text(text))) => self.core.handle_input(now, Input::Text(&text)),
            Some(Ok(Message::Binary(bytes))) => self.core.handle_input(now, Input::Binary(&bytes)),
            Some(Ok(Message::Ping(payload))) => {
                // tungstenite queued the pong; the next turn flushes it.
                if let Link::Open { flush, .. } = &mut self.link {
                    *flush = true;
                }
                self.core.handle_input(now, Input::Ping(&payload));
            }
            Some(Ok(Message::Pong(payload))) => self.core.handle_input(now, Input::Pong(&payload)),
            Some(Ok(Message::Close(frame))) => {
                // tungstenite queued the close reply: send it if it can go
                // at once, then drop the socket.
                if let Link::Open { mut socket, .. } = std::mem::replace(&mut self.link, Link::None)
                {
                    let _ = socket.flush().now_or_never();
                }
                let (code, reason) = match &frame {
                    Some(f) => (Some(u16::from(f.code)), f.reason.as_str()),
                    None => (None, ""),
                };
                tracing::debug!(?code, reason, "the server closed the connection");
                self.core.handle_input(now, Input::Closed { code, reason });
            }
            Some(Ok(Message::Frame(_))) => {}
            Some(Err(error)) => {
                tracing::debug!(%error, "the connection failed");
                let too_big = matches!(error, WsError::Capacity(_));
                if let Link::Open { socket, .. } = std::mem::replace(&mut self.link, Link::None)
                    && too_big
                {
                    close_now::<R>(socket, 1009, "message too big");
                }
                let input = match error {
                    WsError::Capacity(_) => Input::Failed(LinkError::MessageTooBig),
                    // The peer or the network went away: a lost link.
                    WsError::Io(_)
                    | WsError::ConnectionClosed
                    | WsError::AlreadyClosed
                    | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                        Input::Closed {
                            code: None,
                            reason: "",
                        }
                    }
                    other => Input::Failed(LinkError::Socket(other.to_string())),
                };
                self.core.handle_input(now, input);
            }
            None => {
                tracing::debug!("the connection ended without a close frame");
                self.link = Link::None;
                self.core.handle_input(
                    now,
                    Input::Closed {
                        code: None,
                        reason: "",
                    },
                );
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = R::now();
        match command {
            Command::Connect(reply) => {
                self.core.connect(now);
                self.connect_waiters.push(reply);
            }
            Command::Disconnect(reply) => {
                self.core.disconnect(now);
                self.deferred.push(Deferred::Disconnect(reply));
            }
            Command::Subscribe { id, config, reply } => {
                if matches!(
                    self.core.state(),
                    ConnectionState::Disconnected | ConnectionState::Error
                ) {
                    let _ = reply.send(Err(SubscribeError::NotConnected));
                    return;
                }
                match self.core.subscribe(now, &id, &config) {
                    Ok(id) => {
                        self.subscribe_waiters.insert(id, reply);
                    }
                    Err(error) => {
                        let _ = reply.send(Err(SubscribeError::Invalid(error)));
                    }
                }
            }
            Command::Unsubscribe { id, reply } => {
                let result = self
                    .core
                    .unsubscribe(now, &id)
                    .map_err(UnsubscribeError::from);
                if let Some((id, waiter)) = self.subscribe_waiters.remove_entry(id.as_str()) {
                    let _ = waiter.send(Err(SubscribeError::Cancelled(id)));
                }
                self.deferred.push(Deferred::Unsubscribe(reply, result));
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.core.stats(now));
            }
        }
    }

    /// Hands market data to the event streams, if any listens, and to the
    /// handlers: at once when this task may call them itself, otherwise to
    /// this turn's batch.
    fn route_data(&mut self, data: MarketData) {
        if let Some(events) = self.shared.events.get().filter(|e| e.receiver_count() > 0) {
            let _ = events.send(ClientEvent::Data(data.clone()));
        }
        // Nothing waiting before it: straight to the handlers when allowed.
        if self.batch.is_empty() && self.may_deliver_directly() {
            self.shared.handlers.dispatch_sync(&self.handlers, data);
            self.shared.queue.delivered_directly(1);
        } else {
            self.batch.push(data);
        }
    }

    /// Hands an event on: to the event streams, the handler queue, and the
    /// calls waiting for it.
    fn route(&mut self, event: Event) {
        let shared = &self.shared;
        let publish = |event: ClientEvent| {
            // No stream listening is not an error.
            if let Some(events) = shared.events.get() {
                let _ = events.send(event);
            }
        };
        match event {
            Event::Data(data) => self.route_data(data),
            Event::StateChanged { from, to } => {
                tracing::debug!(%from, %to, "state changed");
                publish(ClientEvent::StateChanged { from, to });
            }
            // The event goes out before the caller's answer, so a caller that
            // reacts to the answer has the event on its stream already.
            Event::Subscribed(id) => {
                tracing::debug!(%id, "subscribed");
                publish(ClientEvent::Subscribed(id.clone()));
                if let Some(waiter) = self.subscribe_waiters.remove(&id) {
                    let _ = waiter.send(Ok(id));
                }
            }
            Event::SubscribeFailed { id, error } => {
                tracing::debug!(%id, %error, "subscription refused");
                publish(ClientEvent::SubscribeFailed {
                    id: id.clone(),
                    error: error.clone(),
                });
                if let Some(waiter) = self.subscribe_waiters.remove(&id) {
                    let _ = waiter.send(Err(SubscribeError::Rejected { id, error }));
                }
            }
            Event::Resumed { replayed } => {
                tracing::debug!(replayed, "session resumed");
                publish(ClientEvent::Resumed { replayed });
            }
            Event::Gap(gap) => {
                tracing::debug!(?gap, "data gap");
                publish(ClientEvent::Gap(gap));
            }
            Event::Disconnected(reason) => {
                tracing::debug!(%reason, "connection lost");
                publish(ClientEvent::Disconnected(reason));
            }
            Event::AttemptFailed { attempt, error } => {
                tracing::debug!(attempt, %error, "attempt failed");
                publish(ClientEvent::AttemptFailed { attempt, error });
            }
            Event::Reconnecting { attempt, delay } => {
                tracing::debug!(attempt, ?delay, "reconnecting");
                publish(ClientEvent::Reconnecting { attempt, delay });
            }
            Event::GaveUp(reason) => {
                tracing::debug!(%reason, "gave up");
                publish(ClientEvent::GaveUp(reason));
            }
            Event::ProtocolError(error) => {
                tracing::debug!(%error, "protocol error");
                publish(ClientEvent::ProtocolError(Arc::new(error)));
            }
            Event::Ignored { kind } => {
                tracing::debug!(kind, "message of unknown type ignored");
            }
            other => tracing::debug!(?other, "core event not understood; ignored"),
        }
    }
}

/// Sends a close frame if the socket takes it at once; otherwise gives it
/// [`CLOSE_GRACE`] in a task of its own. The socket is dropped either way.
fn close_now<R: Runtime>(mut socket: Box<R::Socket>, code: u16, reason: &'static str) {
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
