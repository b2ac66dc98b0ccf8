//! The connection task: drives the core state machine with a socket, a
//! timer and the application's commands.
//!
//! Each turn of the loop drains every output of the core (transmits to the
//! [`Link`], events to the [`Delivery`] stage and the waiting [`Replies`]),
//! checks the core's deadline against the clock itself (an expired deadline
//! is handled at once, without awaiting a timer), and otherwise waits for
//! exactly one thing (the timer, a command, room in a full consumer queue,
//! or the socket), feeds it to the core (one mutation), and turns again.

use std::sync::{Arc, PoisonError};
use std::task::Poll;
use std::time::Instant;

use argus_core::{Client, ConnectionState, Event, Input, LinkError, Transmit};
use tokio::sync::mpsc;
use tungstenite::{Bytes, Message};

use crate::delivery::Delivery;
use crate::error::{SubscribeError, UnsubscribeError};
use crate::link::{Link, Ready};
use crate::replies::{Deferred, Replies};
use crate::runtime::Runtime;
use crate::shared::{Command, Shared, SubscriptionInfo};
use crate::transport::redact_url;

/// Most frames fed in one turn without waiting (see `read_ready_frames`).
const READ_BATCH: usize = 64;
/// The first batch after the socket ran dry.
const FIRST_READ_BATCH: usize = 4;

/// The one thing a turn waited for.
enum Step<S> {
    Timeout,
    Command(Option<Command>),
    Space,
    Link(Ready<S>),
}

pub(crate) struct Driver<R: Runtime> {
    core: Client,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    tls: Arc<rustls::ClientConfig>,
    link: Link<R::Socket>,
    /// The timer and the deadline it is set to: made at the first deadline,
    /// reset only when the deadline moves (most turns, a message each, do
    /// not move it, and resetting costs some runtimes a reactor wake-up).
    timer: Option<(R::Timer, Instant)>,
    /// A write failed while draining: the link is lost, to be fed to the
    /// core as the next turn's mutation.
    lost: Option<String>,
    delivery: Delivery,
    replies: Replies,
    /// Frames to read in the next batch: see `read_ready_frames`.
    read_batch: usize,
    /// The state last published to the handles.
    published: ConnectionState,
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
            delivery: Delivery::new(shared.clone()),
            replies: Replies::default(),
            read_batch: FIRST_READ_BATCH,
            published: ConnectionState::Disconnected,
            shared,
        }
    }

    pub(crate) async fn run(mut self) {
        tracing::debug!("connection task started");
        loop {
            self.drain();
            let at = R::now();
            if let Some(why) = self.lost.take() {
                tracing::debug!(error = %why, "write failed; the link is lost");
                self.core
                    .handle_input(at, Input::Failed(LinkError::Write(why)));
                continue;
            }
            let deadline = self.core.poll_timeout();
            if deadline.is_some_and(|d| d <= at) {
                self.core.handle_timeout(at);
                continue;
            }
            if let Some(d) = deadline {
                match &mut self.timer {
                    Some((_, at)) if *at == d => {}
                    Some((timer, at)) => {
                        R::reset(timer, d);
                        *at = d;
                    }
                    None => self.timer = Some((R::timer(d), d)),
                }
            }
            let step = {
                let mut timer = self
                    .timer
                    .as_mut()
                    .map(|(timer, _)| timer)
                    .filter(|_| deadline.is_some());
                let (link, commands) = (&mut self.link, &mut self.commands);
                let full = match link {
                    Link::Open { .. } => self.delivery.full_queue(),
                    _ => None,
                };
                // Commands before the socket: a busy feed must not starve
                // them (there are few, and each is one turn).
                std::future::poll_fn(|cx| {
                    if let Some(timer) = timer.as_mut()
                        && std::pin::Pin::new(&mut **timer).poll(cx).is_ready()
                    {
                        return Poll::Ready(Step::Timeout);
                    }
                    if let Poll::Ready(command) = commands.poll_recv(cx) {
                        return Poll::Ready(Step::Command(command));
                    }
                    if let Some(queue) = full
                        && queue.poll_space(cx).is_ready()
                    {
                        return Poll::Ready(Step::Space);
                    }
                    link.poll_ready(cx, full.is_none()).map(Step::Link)
                })
                .await
            };
            match step {
                Step::Timeout => self.core.handle_timeout(R::now()),
                Step::Command(Some(command)) => self.on_command(command),
                Step::Command(None) => break,
                Step::Space => {}
                Step::Link(Ready::Opened(Ok(socket))) => {
                    tracing::debug!("upgrade complete; waiting for welcome");
                    self.link = Link::opened(socket);
                    self.core.handle_input(R::now(), Input::Opened);
                }
                Step::Link(Ready::Opened(Err(error))) => {
                    tracing::debug!(%error, "connection attempt failed");
                    self.link = Link::None;
                    self.core.handle_input(R::now(), Input::OpenFailed(error));
                }
                Step::Link(Ready::Frame(frame)) => {
                    let arrived = R::now();
                    self.link
                        .feed(&mut self.core, frame, arrived, R::now, R::sent_close_code);
                    self.read_ready_frames(arrived);
                }
            }
        }
        // Every handle is gone: close with 1000 and end.
        self.core.disconnect(R::now());
        self.drain();
        self.delivery.close();
        tracing::debug!("connection task ended");
    }

    /// Feeds the frames that are already buffered, without waiting: each is
    /// one mutation, drained before the next. Bounded, so timers and commands
    /// get their turn, and within the room of the consumers' queues under
    /// backpressure.
    ///
    /// The batch starts small and doubles while the socket keeps having more
    /// (up to [`READ_BATCH`]): a short burst reaches the consumers after a
    /// few frames, a saturated feed is read in large batches.
    ///
    /// Every frame of the batch was already buffered when the batch began,
    /// at `arrived`: data frames are fed with that time, which saves a
    /// clock read a frame (control frames read the clock afresh).
    fn read_ready_frames(&mut self, arrived: Instant) {
        let budget = self.read_batch.min(self.delivery.room());
        let mut read = 1;
        while read < budget {
            let Some(frame) = self.link.try_next() else {
                break;
            };
            self.drain();
            self.link
                .feed(&mut self.core, frame, arrived, R::now, R::sent_close_code);
            read += 1;
        }
        self.read_batch = if read == self.read_batch {
            (self.read_batch * 2).min(READ_BATCH)
        } else {
            FIRST_READ_BATCH
        };
    }

    /// Drains every output of the core: transmits, then events, in order;
    /// then answers whoever waits on the state.
    fn drain(&mut self) {
        while let Some(transmit) = self.core.poll_transmit() {
            self.transmit(transmit);
        }
        self.link.forget_failed();
        let state = self.core.state();
        if state == self.published {
            // The common case: market data, delivered as it comes.
            while let Some(event) = self.core.poll_event() {
                match event {
                    Event::Data(_) => self.delivery.deliver(event),
                    other => self.route(other),
                }
            }
            if !self.replies.is_idle() {
                self.replies.settle(state, self.shared.gave_up_reason());
            }
            return;
        }
        // The state moved: publish it (and why the client gave up) before
        // the events, so whoever sees an event sees the state it led to.
        let mut events = Vec::new();
        while let Some(event) = self.core.poll_event() {
            if let Event::GaveUp(reason) = &event {
                *self
                    .shared
                    .gave_up
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(reason.clone());
            }
            events.push(event);
        }
        self.published = state;
        self.shared.state.send_replace(state);
        for event in events {
            self.route(event);
        }
        self.replies.settle(state, self.shared.gave_up_reason());
    }

    /// Hands one event on: to every consumer, then to the call waiting for
    /// it (so a caller that reacts to its answer has the event already).
    fn route(&mut self, event: Event) {
        if !matches!(event, Event::Data(_)) {
            tracing::debug!(?event, "client event");
        }
        let answer = self.replies.answer(&event);
        self.delivery.deliver(event);
        if let Some(answer) = answer {
            answer.send();
        }
    }

    fn transmit(&mut self, transmit: Transmit) {
        let sent = match transmit {
            Transmit::Open(request) => {
                tracing::debug!(url = %redact_url(&request.url), "opening a connection");
                self.link = Link::opening(R::open(request, self.tls.clone()));
                Ok(())
            }
            Transmit::Text(text) => self.link.send(Message::text(text)),
            Transmit::Ping(payload) => self
                .link
                .send(Message::Ping(Bytes::copy_from_slice(&payload))),
            Transmit::Close { code, reason } => {
                tracing::debug!(code, reason, "closing the connection");
                self.link.close::<R>(code, reason);
                Ok(())
            }
            other => {
                tracing::debug!(?other, "transmit not understood; ignored");
                Ok(())
            }
        };
        if let Err(error) = sent {
            self.lost = Some(error.to_string());
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = R::now();
        match command {
            Command::Connect(reply) => {
                self.core.connect(now);
                self.replies.wait_connected(reply);
            }
            Command::Disconnect(reply) => {
                self.core.disconnect(now);
                self.replies.defer(Deferred::Disconnect(reply));
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
                    Ok(id) => self.replies.wait_subscribed(id, reply),
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
                self.replies.cancel(&id);
                self.replies.defer(Deferred::Unsubscribe(reply, result));
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.core.stats(now));
            }
            Command::Subscriptions(reply) => {
                let list = self
                    .core
                    .subscriptions()
                    .map(|(id, config, status)| SubscriptionInfo {
                        id: id.clone(),
                        config: config.clone(),
                        status,
                    })
                    .collect();
                let _ = reply.send(list);
            }
        }
    }
}
