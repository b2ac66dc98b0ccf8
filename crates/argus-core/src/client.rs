//! The connection state machine.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::config::{ConfigError, ConnectionConfig, NormalizedSubscription, SubscriptionConfig};
use crate::data::{MarketData, TimestampParser};
use crate::io::{
    CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_PROTOCOL, CLOSE_TOO_BIG, ConnectionState,
    DisconnectReason, Event, Gap, GapCause, GiveUpReason, Input, LinkError, OpenError, OpenRequest,
    ProtocolError, RequestKind, ResumePoint, ServerError, Transmit, is_valid_close_code,
};
use crate::stats::Stats;
use crate::subscription::{InvalidSubscriptionId, SubscriptionId};
use crate::wire::{
    ClientMessage, ErrorCode, ErrorMessage, PROTOCOL_VERSION, ResumeRequest, SUBPROTOCOL,
    ServerMessage, SessionToken, SubscribeRequest, UnsubscribeRequest, Welcome,
};

/// Why [`Client::subscribe`] refused a request. Nothing was sent.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The id breaks the protocol's rule.
    #[error(transparent)]
    InvalidId(#[from] InvalidSubscriptionId),
    /// The configuration cannot be sent.
    #[error(transparent)]
    InvalidConfig(#[from] crate::config::SubscriptionConfigError),
    /// A subscription with this id is live; unsubscribe it first.
    #[error("subscription `{0}` already exists; unsubscribe it first or pick another id")]
    Duplicate(SubscriptionId),
    /// The client holds `max_subscriptions` already.
    #[error("the client already holds its maximum of {max} subscriptions")]
    TooMany {
        /// The configured maximum.
        max: usize,
    },
}

/// Why [`Client::unsubscribe`] refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsubscribeError {
    /// No subscription has this id.
    #[error("no subscription `{0}`")]
    Unknown(String),
}

/// Where a subscription stands with the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// Not sent on the current connection yet.
    Queued,
    /// Sent; waiting for `subscribed`.
    Pending,
    /// Acknowledged by the server.
    Active,
}

#[derive(Debug)]
struct Wanted {
    config: NormalizedSubscription,
    status: SubscriptionStatus,
    /// While `Pending`: when the server's answer is due.
    deadline: Option<Instant>,
}

/// An unsubscribe the server has yet to see (`None`) or to answer by a
/// deadline (`Some`).
type Leaving = BTreeMap<SubscriptionId, Option<Instant>>;

/// A request sent on the current link, due to be answered at the instant.
/// Requests are sent in order with the same timeout, so the queue is sorted;
/// an entry whose request was answered meanwhile is skipped when it is due.
type Due = VecDeque<(Instant, RequestKind, SubscriptionId)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No socket.
    Idle,
    /// `Transmit::Open` issued; waiting for `Input::Opened`.
    Opening,
    /// Upgraded; waiting for `welcome`.
    Handshaking,
    /// `welcome` arrived.
    Live,
}

/// Every wait of the client has a deadline here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// TCP, TLS, upgrade and `welcome`.
    Connect = 0,
    /// Any frame after a ping.
    Pong = 1,
    /// The next ping.
    Heartbeat = 2,
    /// The next connection attempt.
    Reconnect = 3,
    /// The answer to `resume`.
    Resume = 4,
    /// The earliest answer due to a subscribe or unsubscribe.
    Request = 5,
}

const TIMERS: [Timer; 6] = [
    Timer::Connect,
    Timer::Pong,
    Timer::Heartbeat,
    Timer::Reconnect,
    Timer::Resume,
    Timer::Request,
];

/// Timers that belong to one link.
const LINK_TIMERS: [Timer; 5] = [
    Timer::Connect,
    Timer::Pong,
    Timer::Heartbeat,
    Timer::Resume,
    Timer::Request,
];

/// The run of failures since a link was last of use (delivered data or
/// answered a heartbeat).
#[derive(Clone, Copy, Debug, Default)]
struct Outage {
    /// Consecutive failed attempts.
    failures: u32,
    /// Retries scheduled.
    retries: u32,
    /// Whether a live link was lost (so a `welcome` counts as a reconnect).
    after_loss: bool,
}

#[derive(Debug, Default)]
struct Counters {
    messages_received: u64,
    messages_sent: u64,
    reconnects: u64,
    errors: u64,
    bytes_received: u64,
    data_messages: u64,
    gaps: u64,
    missed: u64,
    duplicates: u64,
    attempts: u64,
}

/// The Argus client as a pure state machine: no sockets, no clock, no tasks.
///
/// Its methods come in four groups, as in quinn-proto:
/// - **commands** from the application: [`connect`](Self::connect),
///   [`subscribe`](Self::subscribe), [`unsubscribe`](Self::unsubscribe),
///   [`disconnect`](Self::disconnect);
/// - **inputs** from the transport: [`handle_input`](Self::handle_input),
///   [`handle_timeout`](Self::handle_timeout);
/// - **outputs**, drained after every command or input:
///   [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
///   then [`poll_timeout`](Self::poll_timeout);
/// - **getters**: [`state`](Self::state), [`stats`](Self::stats), …
///
/// Every method that can change anything takes `now`; the client never reads
/// a clock. Randomness (backoff jitter) comes from the seed given to
/// [`Client::new`], so a run is reproducible.
#[derive(Debug)]
pub struct Client {
    config: ConnectionConfig,
    backoff: Backoff,
    rng: fastrand::Rng,
    state: ConnectionState,
    phase: Phase,
    timers: [Option<Instant>; TIMERS.len()],
    outage: Outage,
    wanted: BTreeMap<SubscriptionId, Wanted>,
    leaving: Leaving,
    due: Due,
    /// The session of the current link, or of the last one while reconnecting.
    session: Option<ResumePoint>,
    /// While a `resume` is in flight: the fresh session this link's `welcome` named.
    resuming: Option<SessionToken<'static>>,
    /// The current link delivered data or answered a heartbeat: only then
    /// does its `welcome` end the outage (see [`Outage`]).
    productive: bool,
    next_ping: u64,
    ping_in_flight: Option<(u64, Instant)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
    connection_id: Option<String>,
    connected_at: Option<Instant>,
    last_frame_at: Option<Instant>,
    rtt: Option<Duration>,
    /// Parses data timestamps, remembering the current minute.
    clock: TimestampParser,
}

impl Client {
    /// A disconnected client. `rng_seed` seeds the backoff jitter.
    pub fn new(config: ConnectionConfig, rng_seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            backoff: Backoff::new(config.reconnect_delay, config.max_backoff),
            config,
            rng: fastrand::Rng::with_seed(rng_seed),
            state: ConnectionState::Disconnected,
            phase: Phase::Idle,
            timers: [None; TIMERS.len()],
            outage: Outage::default(),
            wanted: BTreeMap::new(),
            leaving: Leaving::new(),
            due: Due::new(),
            session: None,
            resuming: None,
            productive: false,
            next_ping: 1,
            ping_in_flight: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            connection_id: None,
            connected_at: None,
            last_frame_at: None,
            rtt: None,
            clock: TimestampParser::default(),
        })
    }

    // ---- getters ----

    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// A snapshot of the counters at `now`.
    pub fn stats(&self, now: Instant) -> Stats {
        Stats {
            messages_received: self.counters.messages_received,
            messages_sent: self.counters.messages_sent,
            reconnect_count: self.counters.reconnects,
            errors: self.counters.errors,
            state: self.state,
            connection_id: self.connection_id.clone(),
            subscriptions_count: self.wanted.len(),
            uptime: self
                .connected_at
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
            bytes_received: self.counters.bytes_received,
            data_messages: self.counters.data_messages,
            gaps: self.counters.gaps,
            missed_messages: self.counters.missed,
            duplicates: self.counters.duplicates,
            connect_attempts: self.counters.attempts,
            last_message_age: self.last_frame_at.map(|t| now.saturating_duration_since(t)),
            rtt: self.rtt,
        }
    }

    /// The subscriptions the application holds, by id, with where each stands.
    pub fn subscriptions(
        &self,
    ) -> impl Iterator<Item = (&SubscriptionId, &NormalizedSubscription, SubscriptionStatus)> {
        self.wanted.iter().map(|(id, w)| (id, &w.config, w.status))
    }

    /// The last seq processed in the current session, if there is a session.
    pub fn last_seq(&self) -> Option<u64> {
        self.session.as_ref().map(|s| s.last_seq)
    }

    /// The current session and its last seq, if there is a session: what
    /// [`resume_from`](Self::resume_from) takes to resume it elsewhere. A
    /// secret (see [`ResumePoint`]).
    pub fn resume_point(&self) -> Option<&ResumePoint> {
        self.session.as_ref()
    }

    // ---- commands ----

    /// Resumes `point` on the next connection instead of starting a session:
    /// the first message after `welcome` is a `resume` from `point.last_seq`.
    /// For a process that persisted the point and restarted; subscribe what
    /// the session holds before connecting, or the reconciliation after
    /// `resumed` unsubscribes it. If the server refuses, the usual
    /// [`Event::Gap`] (from `last_seq + 1`, cause `resume_failed`) comes
    /// before the new session.
    ///
    /// Only while disconnected (before [`connect`](Self::connect)); returns
    /// `false` and does nothing otherwise.
    pub fn resume_from(&mut self, point: ResumePoint) -> bool {
        if !matches!(
            self.state,
            ConnectionState::Disconnected | ConnectionState::Error
        ) {
            return false;
        }
        self.session = Some(point);
        true
    }

    /// Starts connecting, from `Disconnected` or `Error`; does nothing otherwise.
    ///
    /// A failed attempt is retried with backoff, like a lost link, until
    /// `max_reconnect_attempts` attempts in a row have failed in total.
    pub fn connect(&mut self, now: Instant) {
        if matches!(
            self.state,
            ConnectionState::Disconnected | ConnectionState::Error
        ) {
            self.outage = Outage::default();
            self.set_state(ConnectionState::Connecting);
            self.start_attempt(now);
        }
    }

    /// Closes the connection (code 1000) and stays disconnected. The session
    /// and every subscription are dropped; a later [`connect`](Self::connect)
    /// starts afresh.
    pub fn disconnect(&mut self, _now: Instant) {
        if self.phase != Phase::Idle {
            self.transmits.push_back(Transmit::Close {
                code: CLOSE_NORMAL,
                reason: "client disconnect",
            });
        }
        self.drop_link();
        self.timers = [None; TIMERS.len()];
        self.session = None;
        self.wanted.clear();
        self.leaving.clear();
        self.set_state(ConnectionState::Disconnected);
    }

    /// Adds a subscription. It is sent at once when connected, and otherwise
    /// queued and sent when the link is up. [`Event::Subscribed`] or
    /// [`Event::SubscribeFailed`] tells how the server answered, and
    /// [`Event::RequestTimedOut`] that it did not answer within `timeout`.
    pub fn subscribe(
        &mut self,
        now: Instant,
        id: impl AsRef<str>,
        config: &SubscriptionConfig,
    ) -> Result<SubscriptionId, SubscribeError> {
        let id = SubscriptionId::new(id)?;
        let config = config.normalized()?;
        if self.wanted.contains_key(&id) {
            return Err(SubscribeError::Duplicate(id));
        }
        if self.wanted.len() >= self.config.max_subscriptions {
            return Err(SubscribeError::TooMany {
                max: self.config.max_subscriptions,
            });
        }
        let mut wanted = Wanted {
            config,
            status: SubscriptionStatus::Queued,
            deadline: None,
        };
        if self.can_send() {
            let request =
                ClientMessage::Subscribe(SubscribeRequest::new(id.as_str(), &wanted.config));
            self.send(&request);
            wanted.status = SubscriptionStatus::Pending;
            wanted.deadline = Some(self.expect_answer(now, RequestKind::Subscribe, &id));
        }
        self.wanted.insert(id.clone(), wanted);
        Ok(id)
    }

    /// Removes a subscription. It takes effect at once: no more data is
    /// delivered for it and its id is free again. The server is told when
    /// the link is up.
    pub fn unsubscribe(&mut self, now: Instant, id: &str) -> Result<(), UnsubscribeError> {
        let (id, wanted) = self
            .wanted
            .remove_entry(id)
            .ok_or_else(|| UnsubscribeError::Unknown(id.to_owned()))?;
        if wanted.status != SubscriptionStatus::Queued || self.leaving.contains_key(&id) {
            self.leave(now, id);
        }
        Ok(())
    }

    /// Tells the server to drop a subscription: now when requests can go
    /// out, otherwise when the link is up.
    fn leave(&mut self, now: Instant, id: SubscriptionId) {
        let deadline = self.can_send().then(|| {
            let request = ClientMessage::Unsubscribe(UnsubscribeRequest {
                id: id.as_str().into(),
            });
            self.send(&request);
            self.expect_answer(now, RequestKind::Unsubscribe, &id)
        });
        self.leaving.insert(id, deadline);
    }

    /// Notes that the server owes an answer to a request just sent; returns
    /// its deadline.
    fn expect_answer(
        &mut self,
        now: Instant,
        request: RequestKind,
        id: &SubscriptionId,
    ) -> Instant {
        let deadline = now + self.config.timeout;
        self.due.push_back((deadline, request, id.clone()));
        self.timers[Timer::Request as usize].get_or_insert(deadline);
        deadline
    }

    /// Whether the request sent with this deadline still waits for its answer.
    fn awaits_answer(&self, deadline: Instant, request: RequestKind, id: &SubscriptionId) -> bool {
        match request {
            RequestKind::Subscribe => self.wanted.get(id).is_some_and(|w| {
                w.status == SubscriptionStatus::Pending && w.deadline == Some(deadline)
            }),
            RequestKind::Unsubscribe => self.leaving.get(id) == Some(&Some(deadline)),
        }
    }

    /// After an answer: forgets the answered requests at the front of the
    /// queue, so their deadlines wake nobody.
    fn answered(&mut self) {
        while let Some((deadline, request, id)) = self.due.front()
            && !self.awaits_answer(*deadline, *request, id)
        {
            self.due.pop_front();
        }
        self.timers[Timer::Request as usize] = self.due.front().map(|&(deadline, _, _)| deadline);
    }

    /// Ends every request whose answer is overdue at `now`.
    fn requests_due(&mut self, now: Instant) {
        while let Some(&(deadline, _, _)) = self.due.front()
            && deadline <= now
        {
            let Some((deadline, request, id)) = self.due.pop_front() else {
                break;
            };
            if !self.awaits_answer(deadline, request, &id) {
                continue;
            }
            self.counters.errors += 1;
            match request {
                RequestKind::Subscribe => {
                    self.wanted.remove(&id);
                    // In case the server acts on it late.
                    self.leave(now, id.clone());
                }
                RequestKind::Unsubscribe => {
                    self.leaving.remove(&id);
                }
            }
            self.events.push_back(Event::RequestTimedOut {
                request,
                id,
                timeout: self.config.timeout,
            });
        }
        self.timers[Timer::Request as usize] = self.due.front().map(|&(deadline, _, _)| deadline);
    }

    // ---- inputs ----

    /// Feeds what the transport observed.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Opened => {
                if self.phase == Phase::Opening {
                    self.phase = Phase::Handshaking;
                }
            }
            Input::OpenFailed(error) => {
                if matches!(self.phase, Phase::Opening | Phase::Handshaking) {
                    self.attempt_failed(now, error);
                }
            }
            Input::Text(text) => {
                if self.frame_arrived(now, text.len()) {
                    self.counters.messages_received += 1;
                    self.handle_text(now, text);
                }
            }
            Input::Binary(bytes) => {
                if self.frame_arrived(now, bytes.len()) {
                    self.protocol_error(ProtocolError::BinaryFrame(bytes.len()));
                }
            }
            Input::Ping(_) => {
                self.frame_arrived(now, 0);
            }
            Input::Pong(payload) => {
                if self.frame_arrived(now, 0)
                    && let Some((id, sent)) = self.ping_in_flight
                    && payload == id.to_be_bytes()
                {
                    self.rtt = Some(now.saturating_duration_since(sent));
                    self.ping_in_flight = None;
                    self.was_of_use();
                }
            }
            Input::Failed(error) => {
                if self.phase == Phase::Idle {
                    return;
                }
                if error == LinkError::MessageTooBig {
                    self.transmits.push_back(Transmit::Close {
                        code: CLOSE_TOO_BIG,
                        reason: "message too big",
                    });
                }
                match self.phase {
                    Phase::Live => self.link_lost(now, DisconnectReason::Failed { error }),
                    _ => self.attempt_failed(now, OpenError::Network(error.to_string())),
                }
            }
            Input::Closed { code, reason } => match self.phase {
                Phase::Idle => {}
                Phase::Opening | Phase::Handshaking => {
                    self.attempt_failed(now, OpenError::ClosedBeforeWelcome { code })
                }
                Phase::Live => {
                    let reason = match code {
                        Some(code) if !is_valid_close_code(code) => {
                            DisconnectReason::InvalidCloseCode { code }
                        }
                        Some(code) => DisconnectReason::ServerClosed {
                            code,
                            reason: reason.to_owned(),
                        },
                        None => DisconnectReason::Lost,
                    };
                    self.link_lost(now, reason);
                }
            },
        }
    }

    /// Acts on every deadline at or before `now`. Calling it early, or twice,
    /// is harmless. Afterwards [`poll_timeout`](Self::poll_timeout) is later
    /// than `now`, or `None`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = TIMERS
            .into_iter()
            .find(|&t| self.timers[t as usize].is_some_and(|at| at <= now))
        {
            self.timers[timer as usize] = None;
            match timer {
                Timer::Connect => {
                    if matches!(self.phase, Phase::Opening | Phase::Handshaking) {
                        self.transmits.push_back(Transmit::Close {
                            code: CLOSE_NORMAL,
                            reason: "connect timeout",
                        });
                        self.attempt_failed(now, OpenError::Timeout(self.config.timeout));
                    }
                }
                Timer::Pong => {
                    if self.phase == Phase::Live {
                        self.transmits.push_back(Transmit::Close {
                            code: CLOSE_GOING_AWAY,
                            reason: "heartbeat timeout",
                        });
                        self.link_lost(
                            now,
                            DisconnectReason::HeartbeatTimeout {
                                timeout: self.config.timeout,
                            },
                        );
                    }
                }
                Timer::Heartbeat => {
                    if self.phase == Phase::Live {
                        let id = self.next_ping;
                        self.next_ping += 1;
                        self.ping_in_flight = Some((id, now));
                        self.transmits.push_back(Transmit::Ping(id.to_be_bytes()));
                        let pong = &mut self.timers[Timer::Pong as usize];
                        pong.get_or_insert(now + self.config.timeout);
                        self.timers[Timer::Heartbeat as usize] =
                            Some(now + self.config.heartbeat_interval);
                    }
                }
                Timer::Reconnect => {
                    if self.phase == Phase::Idle && self.state == ConnectionState::Reconnecting {
                        self.start_attempt(now);
                    }
                }
                Timer::Resume => {
                    if let Some(fresh) = self.resuming.take() {
                        self.session_lost(now, fresh, GapCause::ResumeTimedOut);
                    }
                }
                Timer::Request => self.requests_due(now),
            }
        }
    }

    // ---- outputs ----

    /// The next thing the transport must do.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    // ---- internals ----

    fn set_state(&mut self, to: ConnectionState) {
        if self.state != to {
            let from = std::mem::replace(&mut self.state, to);
            self.events.push_back(Event::StateChanged { from, to });
        }
    }

    fn protocol_error(&mut self, error: ProtocolError) {
        self.counters.errors += 1;
        self.events.push_back(Event::ProtocolError(error));
    }

    fn send(&mut self, message: &ClientMessage<'_>) {
        self.counters.messages_sent += 1;
        self.transmits.push_back(Transmit::Text(message.to_json()));
    }

    /// Records a frame on a live or opening link; false when no link is up
    /// (a stale frame the driver should not have fed).
    fn frame_arrived(&mut self, now: Instant, bytes: usize) -> bool {
        if !matches!(self.phase, Phase::Handshaking | Phase::Live) {
            return false;
        }
        self.counters.bytes_received += bytes as u64;
        self.last_frame_at = Some(now);
        self.timers[Timer::Pong as usize] = None;
        true
    }

    fn start_attempt(&mut self, now: Instant) {
        self.phase = Phase::Opening;
        self.productive = false;
        self.counters.attempts += 1;
        self.timers[Timer::Reconnect as usize] = None;
        self.timers[Timer::Connect as usize] = Some(now + self.config.timeout);
        self.transmits.push_back(Transmit::Open(OpenRequest {
            url: self.config.url.clone(),
            api_key: self.config.api_key.clone(),
            subprotocol: SUBPROTOCOL,
            max_message_size: self.config.max_message_size,
        }));
    }

    /// Forgets the socket and its timers.
    fn drop_link(&mut self) {
        self.phase = Phase::Idle;
        for t in LINK_TIMERS {
            self.timers[t as usize] = None;
        }
        self.due.clear();
        self.ping_in_flight = None;
        self.resuming = None;
        self.connected_at = None;
    }

    fn attempt_failed(&mut self, now: Instant, error: OpenError) {
        self.drop_link();
        self.counters.errors += 1;
        self.outage.failures += 1;
        let attempts = self.outage.failures;
        self.events.push_back(Event::AttemptFailed {
            attempt: attempts,
            error: error.clone(),
        });
        if error.is_fatal() {
            self.give_up(GiveUpReason::Fatal(error));
        } else if attempts >= self.config.max_reconnect_attempts {
            self.give_up(GiveUpReason::AttemptsExhausted {
                attempts,
                last: error,
            });
        } else {
            self.schedule_retry(now);
        }
    }

    /// The link delivered data or answered a heartbeat: the outage is over.
    fn was_of_use(&mut self) {
        if !self.productive {
            self.productive = true;
            self.outage = Outage::default();
        }
    }

    /// A live link ended. One that was of use starts a new outage; one that
    /// ended before it delivered the data it was asked for (nor answered a
    /// heartbeat) counts as a failed attempt, so a server that welcomes and
    /// closes meets a growing backoff and `max_reconnect_attempts`. A link
    /// with nothing subscribed has no data to judge it by, and is of use.
    fn link_lost(&mut self, now: Instant, reason: DisconnectReason) {
        self.drop_link();
        self.events.push_back(Event::Disconnected(reason.clone()));
        if self.config.max_reconnect_attempts == 0 {
            return self.give_up(GiveUpReason::ReconnectDisabled(reason));
        }
        if self.productive || self.wanted.is_empty() {
            self.outage = Outage {
                after_loss: true,
                ..Outage::default()
            };
            return self.schedule_retry(now);
        }
        self.outage.after_loss = true;
        self.outage.failures += 1;
        let attempts = self.outage.failures;
        if attempts >= self.config.max_reconnect_attempts {
            self.give_up(GiveUpReason::AttemptsExhausted {
                attempts,
                last: OpenError::Unproductive(Box::new(reason)),
            });
        } else {
            self.schedule_retry(now);
        }
    }

    fn schedule_retry(&mut self, now: Instant) {
        self.outage.retries += 1;
        let attempt = self.outage.retries;
        let delay = self.backoff.delay(attempt, self.rng.f64());
        self.timers[Timer::Reconnect as usize] = Some(now + delay);
        self.set_state(ConnectionState::Reconnecting);
        self.events
            .push_back(Event::Reconnecting { attempt, delay });
    }

    fn give_up(&mut self, reason: GiveUpReason) {
        self.drop_link();
        self.timers = [None; TIMERS.len()];
        self.set_state(ConnectionState::Error);
        self.events.push_back(Event::GaveUp(reason));
    }

    fn handle_text(&mut self, now: Instant, text: &str) {
        let message = match ServerMessage::decode(text) {
            Ok(message) => message,
            Err(error) if error.is_unknown_type() => {
                let crate::wire::DecodeError::UnknownType(kind) = error else {
                    return;
                };
                self.events.push_back(Event::Ignored { kind });
                return;
            }
            Err(error) => return self.protocol_error(error.into()),
        };
        if self.phase == Phase::Handshaking {
            return match message {
                ServerMessage::Welcome(welcome) => self.on_welcome(now, welcome),
                other => self.protocol_error(ProtocolError::Unexpected(other.kind())),
            };
        }
        match message {
            ServerMessage::Price(_) | ServerMessage::Volume(_) | ServerMessage::OrderBook(_) => {
                self.on_data(now, &message)
            }
            ServerMessage::Subscribed(s) => {
                self.on_subscribed(&s.id);
                self.answered();
            }
            ServerMessage::Unsubscribed(u) => {
                if self.leaving.get(&*u.id).is_some_and(Option::is_some) {
                    self.leaving.remove(&*u.id);
                }
                self.answered();
            }
            ServerMessage::Resumed(r) => {
                if self.resuming.take().is_some() {
                    self.timers[Timer::Resume as usize] = None;
                    if let Some(session) = &mut self.session {
                        session.session = r.session.into_owned();
                    }
                    let on_server: BTreeSet<&str> = r.subscriptions.iter().map(|s| &**s).collect();
                    self.reconcile(&on_server);
                    self.events.push_back(Event::Resumed {
                        replayed: r.replayed,
                    });
                    self.flush_subscriptions(now);
                } else {
                    self.protocol_error(ProtocolError::Unexpected("resumed"));
                }
            }
            ServerMessage::Error(e) => {
                self.on_error(now, e);
                self.answered();
            }
            ServerMessage::Welcome(_) => self.protocol_error(ProtocolError::Unexpected("welcome")),
        }
    }

    fn on_subscribed(&mut self, key: &str) {
        let found = self
            .wanted
            .range_mut::<str, _>((Bound::Included(key), Bound::Included(key)))
            .next();
        if let Some((id, w)) = found
            && w.status == SubscriptionStatus::Pending
        {
            w.status = SubscriptionStatus::Active;
            w.deadline = None;
            self.events.push_back(Event::Subscribed(id.clone()));
        }
    }

    fn on_welcome(&mut self, now: Instant, welcome: Welcome<'_>) {
        if welcome.protocol != PROTOCOL_VERSION {
            self.transmits.push_back(Transmit::Close {
                code: CLOSE_PROTOCOL,
                reason: "unsupported protocol version",
            });
            return self.attempt_failed(
                now,
                OpenError::UnsupportedProtocol {
                    server: welcome.protocol,
                    client: PROTOCOL_VERSION,
                },
            );
        }
        self.phase = Phase::Live;
        self.timers[Timer::Connect as usize] = None;
        self.timers[Timer::Heartbeat as usize] = Some(now + self.config.heartbeat_interval);
        self.connection_id = Some(crate::excerpt::excerpt(&welcome.connection_id));
        self.connected_at = Some(now);
        if self.outage.after_loss {
            self.counters.reconnects += 1;
            self.outage.after_loss = false;
        }
        let fresh = welcome.session.into_owned();
        match &self.session {
            Some(held) => {
                let resume = ClientMessage::Resume(ResumeRequest {
                    session: held.session.clone(),
                    last_seq: held.last_seq,
                });
                self.send(&resume);
                self.resuming = Some(fresh);
                self.timers[Timer::Resume as usize] = Some(now + self.config.timeout);
            }
            None => self.start_session(now, fresh),
        }
        self.set_state(ConnectionState::Connected);
    }

    /// Adopts a new server session: nothing is on the server, so every
    /// subscription is sent again.
    fn start_session(&mut self, now: Instant, token: SessionToken<'static>) {
        self.session = Some(ResumePoint {
            session: token.clone(),
            last_seq: 0,
        });
        self.events
            .push_back(Event::SessionStarted { session: token });
        self.leaving.clear();
        for w in self.wanted.values_mut() {
            w.status = SubscriptionStatus::Queued;
        }
        self.flush_subscriptions(now);
    }

    /// The held session could not be resumed (refused, or no answer): data
    /// after its last seq may be lost, and the link goes on with `fresh`.
    fn session_lost(&mut self, now: Instant, fresh: SessionToken<'static>, cause: GapCause) {
        self.timers[Timer::Resume as usize] = None;
        let from = self
            .session
            .as_ref()
            .map_or(0, |s| s.last_seq)
            .saturating_add(1);
        self.counters.gaps += 1;
        self.events.push_back(Event::Gap(Gap {
            from,
            to: None,
            cause,
        }));
        self.start_session(now, fresh);
    }

    /// After `resumed`: subscribe what the session lacks, unsubscribe what
    /// the application dropped.
    fn reconcile(&mut self, on_server: &BTreeSet<&str>) {
        self.leaving.retain(|id, sent| {
            *sent = None;
            on_server.contains(id.as_str())
        });
        for (id, w) in &mut self.wanted {
            if on_server.contains(id.as_str()) && !self.leaving.contains_key(id) {
                if w.status == SubscriptionStatus::Pending {
                    self.events.push_back(Event::Subscribed(id.clone()));
                }
                w.status = SubscriptionStatus::Active;
                w.deadline = None;
            } else {
                w.status = SubscriptionStatus::Queued;
            }
        }
        for &id in on_server {
            if !self.wanted.contains_key(id)
                && !self.leaving.contains_key(id)
                && let Ok(id) = SubscriptionId::new(id)
            {
                self.leaving.insert(id, None);
            }
        }
    }

    /// Whether requests go out now: the link is up and no resume is in flight.
    fn can_send(&self) -> bool {
        self.phase == Phase::Live && self.resuming.is_none()
    }

    /// Sends every queued unsubscribe, then every queued subscribe, when the
    /// link is up and no resume is in flight.
    fn flush_subscriptions(&mut self, now: Instant) {
        if !self.can_send() {
            return;
        }
        let deadline = now + self.config.timeout;
        let mut out = Vec::new();
        for (id, sent) in &mut self.leaving {
            if sent.is_none() {
                *sent = Some(deadline);
                self.due
                    .push_back((deadline, RequestKind::Unsubscribe, id.clone()));
                out.push(
                    ClientMessage::Unsubscribe(UnsubscribeRequest {
                        id: id.as_str().into(),
                    })
                    .to_json(),
                );
            }
        }
        for (id, w) in &mut self.wanted {
            if w.status == SubscriptionStatus::Queued {
                w.status = SubscriptionStatus::Pending;
                w.deadline = Some(deadline);
                self.due
                    .push_back((deadline, RequestKind::Subscribe, id.clone()));
                out.push(
                    ClientMessage::Subscribe(SubscribeRequest::new(id.as_str(), &w.config))
                        .to_json(),
                );
            }
        }
        if !out.is_empty() {
            self.timers[Timer::Request as usize].get_or_insert(deadline);
        }
        self.counters.messages_sent += out.len() as u64;
        self.transmits.extend(out.into_iter().map(Transmit::Text));
    }

    fn on_error(&mut self, now: Instant, e: ErrorMessage<'_>) {
        let error = ServerError {
            code: e.code,
            message: crate::excerpt::cut(&e.message, crate::excerpt::DETAIL_CHARS),
        };
        if e.code == ErrorCode::ResumeFailed
            && let Some(fresh) = self.resuming.take()
        {
            self.session_lost(now, fresh, GapCause::ResumeFailed);
            return;
        }
        if let Some(id) = e.id.as_deref() {
            if self.leaving.get(id).is_some_and(Option::is_some) {
                self.leaving.remove(id);
                if e.code != ErrorCode::UnknownSubscription {
                    self.protocol_error(ProtocolError::Server(error));
                }
                return;
            }
            if self
                .wanted
                .get(id)
                .is_some_and(|w| w.status == SubscriptionStatus::Pending)
            {
                if let Some((id, _)) = self.wanted.remove_entry(id) {
                    self.counters.errors += 1;
                    self.events.push_back(Event::SubscribeFailed { id, error });
                }
                return;
            }
        }
        self.protocol_error(ProtocolError::Server(error));
    }

    fn on_data(&mut self, now: Instant, message: &ServerMessage<'_>) {
        let (sub, seq) = match message {
            ServerMessage::Price(m) => (&m.sub, m.seq),
            ServerMessage::Volume(m) => (&m.sub, m.seq),
            ServerMessage::OrderBook(m) => (&m.sub, m.seq),
            _ => return,
        };
        let Some(session) = self.session.as_mut() else {
            return self.protocol_error(ProtocolError::Unexpected(message.kind()));
        };
        if seq <= session.last_seq {
            self.counters.duplicates += 1;
            return;
        }
        let last = session.last_seq;
        let expected = last.saturating_add(1);
        if seq - expected > self.config.max_seq_jump {
            return self.seq_out_of_range(now, last, seq);
        }
        session.last_seq = seq;
        if seq > expected {
            self.counters.gaps += 1;
            self.counters.missed += seq - expected;
            self.events.push_back(Event::Gap(Gap {
                from: expected,
                to: Some(seq - 1),
                cause: GapCause::SeqJump,
            }));
        }
        if self.leaving.contains_key(&**sub) {
            return;
        }
        let Some((id, _)) = self.wanted.get_key_value(&**sub) else {
            return;
        };
        match MarketData::from_wire_with(message, id.clone(), &mut self.clock) {
            Some(Ok(data)) => {
                self.counters.data_messages += 1;
                self.events.push_back(Event::Data(data));
                self.was_of_use();
            }
            Some(Err(error)) => self.protocol_error(ProtocolError::InvalidData { seq, error }),
            None => {}
        }
    }

    /// A seq too far ahead to believe: not delivered, reported, and the
    /// session dropped (data after `last` may be lost); the link is closed
    /// and the next one starts a new session and subscribes everything again.
    fn seq_out_of_range(&mut self, now: Instant, last: u64, got: u64) {
        self.protocol_error(ProtocolError::SeqOutOfRange {
            last,
            got,
            bound: self.config.max_seq_jump,
        });
        self.counters.gaps += 1;
        self.events.push_back(Event::Gap(Gap {
            from: last.saturating_add(1),
            to: None,
            cause: GapCause::SeqOutOfRange,
        }));
        self.session = None;
        self.transmits.push_back(Transmit::Close {
            code: CLOSE_PROTOCOL,
            reason: "seq out of range",
        });
        self.link_lost(now, DisconnectReason::SeqOutOfRange { last, got });
    }
}
