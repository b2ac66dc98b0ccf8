//! The relay: the client's one ordered output, published into JetStream in
//! order, a bounded number of publishes in flight, the resume point of each
//! upstream connection stored once what precedes it is acknowledged.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use argus_client::argus_core::{
    DataType, Event, GiveUpReason, ResumePoint, ServerError, SessionToken,
};
use argus_client::{EventStream, lines};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, kv, stream};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::SelectAll;

use crate::config::{RelayConfig, UpstreamPlan};
use crate::names::{SessionName, data_id, data_subject, event_id, seq_of, subject};

/// The header naming the upstream connection (its resume-point key) on
/// `gap` and `resumed` messages.
pub const FEED_HEADER: &str = "Argus-Feed";

/// Why the relay could not start. A running relay has no error: it retries
/// publishing and storing points, and ends early only with a [`Halt`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// The stream could not be found or created.
    #[error("stream `{stream}`: {source}")]
    Stream {
        /// The stream.
        stream: String,
        /// What JetStream said.
        #[source]
        source: async_nats::Error,
    },
    /// The resume-point bucket could not be found or created.
    #[error("key-value bucket `{bucket}`: {source}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// What JetStream said.
        #[source]
        source: async_nats::Error,
    },
    /// A stored resume point could not be read.
    #[error("resume point `{key}`: {message}")]
    ResumePoint {
        /// Its key.
        key: String,
        /// What went wrong (never the value).
        message: String,
    },
}

/// One upstream connection's events, to relay: its client's
/// [`events()`](argus_client::WebSocketClient::events) stream, the key of
/// its resume point, and the point the client was built to resume (so the
/// relay knows the session before the first [`Event::SessionStarted`]).
pub struct Feed {
    key: String,
    events: EventStream,
    resumed_from: Option<ResumePoint>,
}

impl Feed {
    /// A feed. Take `events` before connecting the client, so it sees
    /// everything.
    pub fn new(
        key: impl Into<String>,
        events: EventStream,
        resumed_from: Option<ResumePoint>,
    ) -> Self {
        Self {
            key: key.into(),
            events,
            resumed_from,
        }
    }

    /// Its resume-point key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("key", &self.key)
            .field("resumed_from", &self.resumed_from)
            .finish_non_exhaustive()
    }
}

/// What a relay run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Data messages JetStream acknowledged as stored.
    pub published: u64,
    /// Messages JetStream acknowledged as duplicates (already stored within
    /// the de-duplication window: re-published after a restart or a retry).
    pub duplicates: u64,
    /// Gap events published.
    pub gaps: u64,
    /// Resume events published.
    pub resumes: u64,
    /// Times publishing failed and what was unacknowledged was sent again.
    pub retries: u64,
    /// Resume points written to the bucket.
    pub points_stored: u64,
    /// Why the run ended before its feeds or its shutdown did, if it did.
    pub halted: Option<Halt>,
}

/// Why a relay run ended early: an upstream connection cannot go on. What
/// came before was published all the same.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Halt {
    /// The client gave up (credentials refused, attempts exhausted).
    GaveUp {
        /// The connection's resume-point key.
        feed: String,
        /// Why.
        reason: GiveUpReason,
    },
    /// The server refused the connection's subscription (an unknown
    /// symbol, too many symbols): relaying part of the symbols silently
    /// would be worse than stopping.
    Refused {
        /// The connection's resume-point key.
        feed: String,
        /// The server's error.
        error: ServerError,
    },
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GaveUp { feed, reason } => write!(f, "connection `{feed}`: {reason}"),
            Self::Refused { feed, error } => {
                write!(
                    f,
                    "connection `{feed}`: the server refused the subscription: {error}"
                )
            }
        }
    }
}

/// The relay. Cheap to share: it holds the JetStream context and the
/// resume-point bucket.
#[derive(Clone)]
pub struct Relay {
    js: jetstream::Context,
    points: kv::Store,
    config: RelayConfig,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A session the relay has seen: its token (to store resume points) and
/// its public name (for message ids).
struct Session {
    token: SessionToken<'static>,
    name: SessionName,
}

impl Session {
    fn new(token: SessionToken<'static>) -> Arc<Self> {
        let name = SessionName::of(&token);
        Arc::new(Self { token, name })
    }
}

/// A message to publish, kept until JetStream acknowledges it. A publish
/// takes its headers by value, so they are made at each send from their
/// values (cheaper than keeping a `HeaderMap` to clone); the subject and
/// the payload are shared.
struct Outgoing {
    subject: Subject,
    /// `Nats-Msg-Id`, when the session is known.
    id: Option<String>,
    /// [`FEED_HEADER`], on event lines.
    feed: Option<String>,
    payload: Bytes,
}

enum Ack {
    /// Nothing to publish: resolves when it reaches the front.
    Nothing,
    /// Not sent (yet, or again after a failure).
    Unsent,
    /// Sent; JetStream's answer.
    Pending(BoxFuture<'static, Acked>),
}

/// JetStream's answer to a publish.
type Acked = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>;

/// One step of a feed, in its order.
struct Entry {
    feed: usize,
    outgoing: Option<Outgoing>,
    ack: Ack,
    /// The resume point this entry completes: stored once it and everything
    /// before it are acknowledged.
    point: Option<(Arc<Session>, u64)>,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Gap,
    Resumed,
    Point,
}

/// Where each feed stands.
struct FeedState {
    key: String,
    session: Option<Arc<Session>>,
    /// The last point everything up to which is acknowledged.
    acked: Option<(Arc<Session>, u64)>,
    /// Whether `acked` is newer than the stored point.
    dirty: bool,
    /// Whether `acked` names a session the bucket does not hold yet: it
    /// is written without waiting for `point_interval`.
    urgent: bool,
    /// The last seq seen in the events (not yet acknowledged, perhaps).
    seen: u64,
}

impl Relay {
    /// Checks `config`, and finds or creates the stream (subjects
    /// `<prefix>.>`, file storage, the de-duplication window) and the
    /// resume-point bucket (file storage, one value a key).
    pub async fn open(mut js: jetstream::Context, config: RelayConfig) -> Result<Self, RelayError> {
        config.validate()?;
        js.set_timeout(config.ack_timeout);
        js.get_or_create_stream(stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            storage: stream::StorageType::File,
            duplicate_window: config.duplicate_window,
            ..Default::default()
        })
        .await
        .map_err(|e| RelayError::Stream {
            stream: config.stream.clone(),
            source: e.into(),
        })?;
        // The bucket's stream is made here, as a key-value bucket's stream
        // is (one value a key, rollups, direct gets), rather than through
        // `create_key_value`, whose account query nats-server 2.9 answers
        // in a shape the client does not read.
        let bucket_error = |source: async_nats::Error| RelayError::Bucket {
            bucket: config.bucket.clone(),
            source,
        };
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{}", config.bucket),
            description: Some("argus relay: upstream resume points (secrets)".into()),
            subjects: vec![format!("$KV.{}.>", config.bucket)],
            max_messages_per_subject: 1,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| bucket_error(e.into()))?;
        let points = js
            .get_key_value(&config.bucket)
            .await
            .map_err(|e| bucket_error(e.into()))?;
        Ok(Self { js, points, config })
    }

    /// The settings.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Where the upstream connection `plan` stands: the resume point the
    /// last run stored for it, if any, raised to the last seq of that
    /// session the stream already holds on the connection's subjects
    /// (`data_types` of its symbols). Points are stored once
    /// acknowledged, so a killed relay's point may lag what it published;
    /// the stream says exactly. Build the connection's client with
    /// [`ClientBuilder::resume_from`](argus_client::ClientBuilder::resume_from)
    /// and this point: nothing is lost or published twice, and if the
    /// session has expired the gap starts right after the last stored
    /// message.
    pub async fn resume_point(
        &self,
        plan: &UpstreamPlan,
        data_types: &[DataType],
    ) -> Result<Option<ResumePoint>, RelayError> {
        let key = &plan.key;
        let bad = |message: String| RelayError::ResumePoint {
            key: key.clone(),
            message,
        };
        let mut point: ResumePoint = match self.points.get(key).await {
            Ok(None) => return Ok(None),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map_err(|e| bad(format!("not a resume point ({:?} error)", e.classify())))?,
            Err(e) => return Err(bad(e.to_string())),
        };
        let name = SessionName::of(&point.session);
        let stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(|e| bad(format!("stream `{}`: {e}", self.config.stream)))?;
        for symbol in &plan.symbols {
            for data_type in data_types {
                let subject = subject(&self.config.subject_prefix, *data_type, symbol);
                let last = match stream.get_last_raw_message_by_subject(&subject).await {
                    Ok(message) => message,
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => continue,
                    Err(e) => return Err(bad(format!("last message of `{subject}`: {e}"))),
                };
                let seq = last
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .and_then(|id| seq_of(&name, id.as_str()));
                if let Some(seq) = seq {
                    point.last_seq = point.last_seq.max(seq);
                }
            }
        }
        Ok(Some(point))
    }

    /// Relays `feeds` until they all end (their clients are gone), one of
    /// them cannot go on ([`Halt`]), or `shutdown` resolves, then waits for
    /// every publish in flight to be acknowledged and for the last resume
    /// points to be stored.
    ///
    /// Each feed's events are published in their order: data to
    /// `<prefix>.<type>.<SYMBOL>` with `Nats-Msg-Id` `<session name>:<seq>`,
    /// gaps and resumes as event lines ([`argus_client::lines`]) to
    /// `<prefix>.gap` and `<prefix>.resumed`. At most `max_in_flight`
    /// publishes await their acknowledgement; then the relay stops reading
    /// events, and the clients stop reading their sockets. A failed or
    /// unanswered publish is sent again, with everything after it, after a
    /// delay growing to `max_retry_delay`: JetStream drops what it already
    /// stored by its id. While the NATS connection is down nothing is sent;
    /// when it is back, everything unacknowledged is sent again at once, in
    /// order.
    pub async fn run(&self, feeds: Vec<Feed>, shutdown: impl Future<Output = ()>) -> RelayStats {
        let mut states: Vec<FeedState> = Vec::with_capacity(feeds.len());
        let mut merged = SelectAll::new();
        for (i, feed) in feeds.into_iter().enumerate() {
            let session = feed
                .resumed_from
                .map(|p| (Session::new(p.session), p.last_seq));
            states.push(FeedState {
                key: feed.key,
                session: session.as_ref().map(|(s, _)| s.clone()),
                seen: session.as_ref().map_or(0, |(_, seq)| *seq),
                acked: session,
                dirty: false,
                urgent: false,
            });
            merged.push(feed.events.map(move |event| (i, event)));
        }
        let mut run = Run {
            relay: self,
            states,
            in_flight: VecDeque::with_capacity(self.config.max_in_flight),
            stats: RelayStats::default(),
            store: None,
            retry_delay: RETRY_FIRST,
            unsent: 0,
            blocked: false,
            held: false,
            epoch: self
                .js
                .client()
                .statistics()
                .connects
                .load(Ordering::Relaxed),
            client: self.js.client(),
            next_store: tokio::time::Instant::now(),
        };
        run.go(merged, shutdown).await;
        run.stats
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(50);

/// How often a relay whose sends wait for the NATS connection looks at it.
const LINK_POLL: Duration = Duration::from_millis(10);

type Store = BoxFuture<'static, (usize, u64, Result<(), String>)>;

struct Run<'a> {
    relay: &'a Relay,
    states: Vec<FeedState>,
    in_flight: VecDeque<Entry>,
    stats: RelayStats,
    /// The one resume-point write in flight: its feed and seq.
    store: Option<Store>,
    retry_delay: Duration,
    /// How many entries at the back of `in_flight` are not sent yet.
    unsent: usize,
    /// A send failed: nothing is sent until the retry.
    blocked: bool,
    /// Sends wait for the NATS connection to come back.
    held: bool,
    /// The NATS client, to see its connection's state.
    client: async_nats::Client,
    /// The client's `connects` count (one more at each reconnection) when
    /// the entries in flight were sent.
    epoch: u64,
    /// When the next routine resume-point write may start.
    next_store: tokio::time::Instant,
}

impl Run<'_> {
    async fn go(
        &mut self,
        mut merged: SelectAll<
            futures_util::stream::Map<EventStream, impl FnMut(Event) -> (usize, Event)>,
        >,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut closing = merged.is_empty();
        loop {
            closing |= self.stats.halted.is_some();
            self.follow_link().await;
            self.settle();
            // At shutdown, the last points go out at once.
            self.start_store(closing && self.in_flight.is_empty());
            if closing && self.in_flight.is_empty() && self.store.is_none() {
                return;
            }
            let room = self.in_flight.len() < self.relay.config.max_in_flight;
            let store_due = self.store.is_none() && self.states.iter().any(|s| s.dirty);
            tokio::select! {
                biased;
                acked = poll_fn(|cx| match self.in_flight.front_mut().map(|e| &mut e.ack) {
                    Some(Ack::Pending(fut)) => fut.as_mut().poll(cx),
                    _ => Poll::Pending,
                }) => self.on_ack(acked).await,
                (feed, seq, result) = poll_fn(|cx| match self.store.as_mut() {
                    Some(fut) => fut.as_mut().poll(cx),
                    None => Poll::Pending,
                }) => self.on_stored(feed, seq, result).await,
                next = merged.next(), if room && !closing => match next {
                    Some((feed, event)) => self.on_event(feed, event).await,
                    None => closing = true,
                },
                () = &mut shutdown, if !closing => closing = true,
                () = tokio::time::sleep_until(self.next_store), if store_due => {}
                // The client has no notice of its state: looked at while held.
                () = tokio::time::sleep(LINK_POLL), if self.held => {}
            }
        }
    }

    /// Pops what is resolved at the front.
    fn settle(&mut self) {
        while let Some(entry) = self.in_flight.front() {
            if !matches!(entry.ack, Ack::Nothing) {
                break;
            }
            let entry = self.in_flight.pop_front().expect("front");
            self.completed(entry);
        }
    }

    fn completed(&mut self, entry: Entry) {
        match entry.kind {
            Kind::Gap => self.stats.gaps += 1,
            Kind::Resumed => self.stats.resumes += 1,
            Kind::Data | Kind::Point => {}
        }
        if let Some(point) = entry.point {
            let state = &mut self.states[entry.feed];
            state.urgent |= entry.kind == Kind::Point;
            state.acked = Some(point);
            state.dirty = true;
        }
    }

    async fn on_ack(&mut self, acked: Acked) {
        match acked {
            Ok(ack) => {
                self.retry_delay = RETRY_FIRST;
                let entry = self.in_flight.pop_front().expect("the front was pending");
                if ack.duplicate {
                    self.stats.duplicates += 1;
                } else if entry.kind == Kind::Data {
                    self.stats.published += 1;
                }
                self.completed(entry);
            }
            Err(error) => {
                self.stats.retries += 1;
                tracing::warn!(%error, in_flight = self.in_flight.len(), delay = ?self.retry_delay,
                    "a publish was not acknowledged: sending it and everything after it again");
                tokio::time::sleep(self.retry_delay).await;
                self.retry_delay = (self.retry_delay * 2).min(self.relay.config.max_retry_delay);
                self.resend_all();
                self.send_unsent().await;
            }
        }
    }

    /// After the NATS connection came back, what was in flight may have
    /// been lost with the old one while the client's buffer goes out on
    /// the new one: everything unacknowledged is sent again at once, in
    /// order (the de-duplication window drops what was stored), rather
    /// than after `ack_timeout` behind newer messages.
    async fn follow_link(&mut self) {
        let connects = self.client.statistics().connects.load(Ordering::Relaxed);
        if connects != self.epoch {
            self.epoch = connects;
            if self.in_flight.iter().any(|e| e.outgoing.is_some()) {
                self.stats.retries += 1;
                tracing::warn!(
                    in_flight = self.in_flight.len(),
                    "NATS reconnected: sending what was not acknowledged again, in order"
                );
                self.resend_all();
                self.held = true;
            }
        }
        if self.held {
            self.send_unsent().await;
        }
    }

    /// Marks every publish in flight unsent, to go out again from the
    /// front, in order.
    fn resend_all(&mut self) {
        for entry in &mut self.in_flight {
            if entry.outgoing.is_some() {
                entry.ack = Ack::Unsent;
            }
        }
        self.unsent = self.in_flight.len();
        self.blocked = false;
    }

    /// Sends every unsent entry (the last `unsent` of the queue), in
    /// order. A failed send becomes that entry's answer, so the retry path
    /// takes it, and nothing more is sent until that retry: order is kept.
    async fn send_unsent(&mut self) {
        if self.blocked || self.unsent == 0 {
            return;
        }
        if self.client.connection_state() != async_nats::connection::State::Connected {
            // Sent now, it would wait in the client's buffer and go out on
            // the next connection before what the broken one lost.
            self.held = true;
            return;
        }
        self.held = false;
        let js = &self.relay.js;
        let first = self.in_flight.len() - self.unsent;
        for entry in self.in_flight.range_mut(first..) {
            self.unsent -= 1;
            if !matches!(entry.ack, Ack::Unsent) {
                continue;
            }
            let Some(out) = &entry.outgoing else { continue };
            match send(js, out).await {
                // `into_future` boxes already.
                Ok(ack) => entry.ack = Ack::Pending(ack.into_future()),
                Err(error) => {
                    entry.ack = Ack::Pending(Box::pin(std::future::ready(Err(error))));
                    self.blocked = true;
                    return;
                }
            }
        }
    }

    async fn on_event(&mut self, feed: usize, event: Event) {
        let state = &mut self.states[feed];
        let prefix = &self.relay.config.subject_prefix;
        let entry = match event {
            Event::Data(data) => {
                let seq = data.seq();
                state.seen = seq;
                let id = state.session.as_ref().map(|s| data_id(&s.name, seq));
                if id.is_none() {
                    tracing::error!(seq, "data before any session: published without an id");
                }
                // Room for a `price` or `volume` message in one allocation.
                let mut json = Vec::with_capacity(256);
                let payload = match serde_json::to_writer(&mut json, &data) {
                    Ok(()) => Bytes::from(json),
                    Err(error) => {
                        tracing::error!(%error, seq, "cannot encode a data message");
                        return;
                    }
                };
                Entry {
                    feed,
                    outgoing: Some(Outgoing {
                        subject: Subject::from(data_subject(prefix, &data)),
                        id,
                        feed: None,
                        payload,
                    }),
                    ack: Ack::Unsent,
                    point: state.session.clone().map(|s| (s, seq)),
                    kind: Kind::Data,
                }
            }
            Event::Gap(gap) => self.event_entry(feed, &Event::Gap(gap), "gap", gap.from, Kind::Gap),
            Event::Resumed { replayed } => {
                let at = state.seen;
                self.event_entry(
                    feed,
                    &Event::Resumed { replayed },
                    "resumed",
                    at,
                    Kind::Resumed,
                )
            }
            Event::SessionStarted { session } => {
                let session = Session::new(session);
                tracing::info!(feed = %state.key, session = %session.name, "a new upstream session");
                state.session = Some(session.clone());
                state.seen = 0;
                Entry {
                    feed,
                    outgoing: None,
                    ack: Ack::Nothing,
                    point: Some((session, 0)),
                    kind: Kind::Point,
                }
            }
            Event::GaveUp(reason) => {
                let feed = state.key.clone();
                return self.halt(Halt::GaveUp { feed, reason });
            }
            Event::SubscribeFailed { error, .. } => {
                let feed = state.key.clone();
                return self.halt(Halt::Refused { feed, error });
            }
            other => {
                tracing::debug!(feed = %state.key, event = other.name(), "upstream");
                return;
            }
        };
        self.in_flight.push_back(entry);
        self.unsent += 1;
        self.send_unsent().await;
    }

    /// Stops taking events: the run ends once what is in flight is
    /// acknowledged and the points are stored.
    fn halt(&mut self, halt: Halt) {
        tracing::error!(%halt, "stopping");
        self.stats.halted = Some(halt);
    }

    /// An event line (`gap`, `resumed`) to `<prefix>.<name>`, its id from
    /// the session and `seq`.
    fn event_entry(&self, feed: usize, event: &Event, name: &str, seq: u64, kind: Kind) -> Entry {
        let state = &self.states[feed];
        Entry {
            feed,
            outgoing: Some(Outgoing {
                subject: Subject::from(format!("{}.{name}", self.relay.config.subject_prefix)),
                id: state
                    .session
                    .as_ref()
                    .map(|session| event_id(&session.name, name, seq)),
                feed: Some(state.key.clone()),
                payload: Bytes::from(lines::event_line(event)),
            }),
            ack: Ack::Unsent,
            point: None,
            kind,
        }
    }

    /// Starts writing a feed's unstored resume point, if none is being
    /// written: a new session's at once, others once `point_interval`
    /// passed since the last write (or at once when `now`).
    fn start_store(&mut self, now: bool) {
        if self.store.is_some() {
            return;
        }
        let due = now || tokio::time::Instant::now() >= self.next_store;
        let Some((feed, state)) = self
            .states
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.dirty && (due || s.urgent))
        else {
            return;
        };
        self.next_store = tokio::time::Instant::now() + self.relay.config.point_interval;
        state.urgent = false;
        let Some((session, seq)) = &state.acked else {
            state.dirty = false;
            return;
        };
        let point = ResumePoint {
            session: session.token.clone(),
            last_seq: *seq,
        };
        let seq = *seq;
        state.dirty = false;
        let value = match serde_json::to_vec(&point) {
            Ok(json) => Bytes::from(json),
            Err(_) => return,
        };
        let points = self.relay.points.clone();
        let key = state.key.clone();
        self.store = Some(Box::pin(async move {
            let result = points
                .put(key, value)
                .await
                .map(drop)
                .map_err(|e| e.to_string());
            (feed, seq, result)
        }));
    }

    async fn on_stored(&mut self, feed: usize, seq: u64, result: Result<(), String>) {
        self.store = None;
        match result {
            Ok(()) => self.stats.points_stored += 1,
            Err(error) => {
                let state = &mut self.states[feed];
                tracing::warn!(feed = %state.key, seq, %error, "cannot store the resume point; trying again");
                state.dirty = true;
                tokio::time::sleep(self.retry_delay).await;
                self.retry_delay = (self.retry_delay * 2).min(self.relay.config.max_retry_delay);
            }
        }
    }
}

async fn send(
    js: &jetstream::Context,
    out: &Outgoing,
) -> Result<PublishAckFuture, jetstream::context::PublishError> {
    let mut headers = HeaderMap::new();
    if let Some(feed) = &out.feed {
        headers.insert(FEED_HEADER, feed.as_str());
    }
    if let Some(id) = &out.id {
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
    }
    js.send_publish(
        out.subject.clone(),
        PublishMessage::build()
            .payload(out.payload.clone())
            .headers(headers),
    )
    .await
}
