//! The relay: the client's one ordered output, published into JetStream in
//! order, a bounded number of publishes in flight, the resume point of each
//! upstream connection stored once what precedes it is acknowledged.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

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
use futures_util::future::BoxFuture;
use futures_util::stream::SelectAll;
use futures_util::{FutureExt, StreamExt};

use crate::config::{RelayConfig, UpstreamPlan};
use crate::names::{SessionName, data_id, data_subject, event_id, seq_of, subject};
use crate::pipeline::{EntryId, Kind, NotPublished, Pipeline, PipelineConfig, Published};

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
    /// NATS could not be reached (or refused the credentials).
    #[error("cannot connect to NATS: {0}")]
    Connect(#[source] async_nats::ConnectError),
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
    /// Publishes still unacknowledged when the run gave up waiting for
    /// them at its end (`shutdown_timeout`); 0 when it ended cleanly. The
    /// stored resume points precede them: a restarted relay publishes
    /// them again.
    pub unacknowledged: u64,
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

/// The relay. Cheap to share: it holds its NATS connection (the JetStream
/// context and the resume-point bucket) and how to make another.
#[derive(Clone)]
pub struct Relay {
    /// The NATS server's URL: it may carry credentials, so it is never
    /// printed.
    url: String,
    options: async_nats::ConnectOptions,
    link: Link,
    config: RelayConfig,
}

/// One NATS connection of the relay's, with its JetStream context and the
/// resume-point bucket. It does not reconnect by itself: a broken one is
/// replaced by a new one (see [`Relay::connect`]).
#[derive(Clone)]
struct Link {
    /// Its client, kept to look at the connection (`js.client()` clones).
    client: async_nats::Client,
    js: jetstream::Context,
    points: kv::Store,
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

/// Where each feed stands in its events (the pipeline keeps its points).
struct FeedState {
    key: String,
    session: Option<Arc<Session>>,
    /// The last seq seen in the events (not yet acknowledged, perhaps).
    seen: u64,
}

impl Link {
    /// Connects (async-nats's own reconnection off: at most one connection
    /// attempt, the first) and finds or creates the stream and the
    /// resume-point bucket.
    async fn open(
        url: &str,
        options: &async_nats::ConnectOptions,
        config: &RelayConfig,
    ) -> Result<Self, RelayError> {
        let client = options
            .clone()
            .max_reconnects(1)
            .connect(url)
            .await
            .map_err(RelayError::Connect)?;
        let mut js = jetstream::new(client.clone());
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
        Ok(Self { client, js, points })
    }

    /// Whether its connection is up. Once down it stays down.
    fn is_up(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

impl Relay {
    /// Checks `config`, connects to the NATS server at `url` with `options`
    /// (credentials, TLS, a name: `ConnectOptions::new()` for none), and
    /// finds or creates the stream (subjects `<prefix>.>`, file storage,
    /// the de-duplication window) and the resume-point bucket (file
    /// storage, one value a key).
    ///
    /// The relay's connections do not reconnect by themselves: when one
    /// breaks, the relay makes a new one (backing off up to
    /// `max_retry_delay`) and sends everything unacknowledged again, in
    /// order. A client that reconnected by itself would first write the
    /// publishes queued while it was down, ahead of those the broken
    /// connection lost, and the stream would hold them out of order.
    pub async fn connect(
        url: impl Into<String>,
        options: async_nats::ConnectOptions,
        config: RelayConfig,
    ) -> Result<Self, RelayError> {
        config.validate()?;
        let url = url.into();
        let link = Link::open(&url, &options, &config).await?;
        Ok(Self {
            url,
            options,
            link,
            config,
        })
    }

    /// One attempt at a new connection (the pipeline decides when).
    fn reconnect(&self) -> BoxFuture<'static, Result<Link, RelayError>> {
        let (url, options, config) = (self.url.clone(), self.options.clone(), self.config.clone());
        Box::pin(async move { Link::open(&url, &options, &config).await })
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
        let mut point: ResumePoint = match self.link.points.get(key).await {
            Ok(None) => return Ok(None),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map_err(|e| bad(format!("not a resume point ({:?} error)", e.classify())))?,
            Err(e) => return Err(bad(e.to_string())),
        };
        let name = SessionName::of(&point.session);
        let stream = self
            .link
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
        let config = PipelineConfig {
            max_in_flight: self.config.max_in_flight,
            first_retry_delay: RETRY_FIRST,
            max_retry_delay: self.config.max_retry_delay,
            point_interval: self.config.point_interval,
            shutdown_timeout: self.config.shutdown_timeout,
        };
        let mut pipeline = Pipeline::new(config, feeds.len(), Instant::now());
        let mut states: Vec<FeedState> = Vec::with_capacity(feeds.len());
        let mut merged = SelectAll::new();
        for (i, feed) in feeds.into_iter().enumerate() {
            let session = feed
                .resumed_from
                .map(|p| (Session::new(p.session), p.last_seq));
            if let Some(point) = &session {
                pipeline.set_point(i, point.clone());
            }
            states.push(FeedState {
                key: feed.key,
                seen: session.as_ref().map_or(0, |(_, seq)| *seq),
                session: session.map(|(s, _)| s),
            });
            merged.push(feed.events.map(move |event| (i, event)));
        }
        let mut run = Run {
            relay: self,
            states,
            pipeline,
            acks: VecDeque::with_capacity(self.config.max_in_flight),
            store: None,
            link: self.link.clone(),
            generation: 0,
            reconnecting: None,
        };
        run.go(merged, shutdown).await;
        run.pipeline.stats().clone()
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(50);

/// At most this many events are taken in one turn before what they made is
/// sent (when they are already in: the relay never waits to fill a batch).
const EVENT_BATCH: usize = 32;

/// A point: the session and the seq up to which everything is published.
type Point = (Arc<Session>, u64);

/// JetStream's answer to a publish.
type Acked = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>;

/// The relay's I/O around its [`Pipeline`]: the events in, the publishes
/// and their answers, the resume-point writes, the timers.
struct Run<'a> {
    relay: &'a Relay,
    states: Vec<FeedState>,
    pipeline: Pipeline<Outgoing, Point>,
    /// The answers awaited, in send order, with the entries they are for.
    /// Only the oldest is polled (and wakes the relay): the ones behind it
    /// are mostly in by the time it is, and are taken without a wake-up.
    acks: VecDeque<(EntryId, BoxFuture<'static, Acked>)>,
    /// The one resume-point write in flight.
    store: Option<BoxFuture<'static, bool>>,
    /// The NATS connection in use, and how many replaced it before.
    link: Link,
    generation: u64,
    /// The new connection being made, once the one in use broke.
    reconnecting: Option<BoxFuture<'static, Result<Link, RelayError>>>,
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
        // One timer for the pipeline's deadlines, moved only when they move.
        let timer = tokio::time::sleep(Duration::ZERO);
        let mut timer = std::pin::pin!(timer);
        let mut armed: Option<Instant> = None;
        let mut now = Instant::now();
        loop {
            self.pipeline.handle_timeout(now);
            // The client gives no notice of its connection: `send` looks.
            self.send(now).await;
            if self.store.is_none()
                && let Some((feed, point)) = self.pipeline.poll_store(now)
            {
                self.store = Some(self.store_point(feed, point));
            }
            if self.pipeline.is_done() {
                return;
            }
            let wake = self.pipeline.poll_timeout();
            if wake != armed {
                if let Some(at) = wake {
                    timer.as_mut().reset(at.into());
                }
                armed = wake;
            }
            let room = self.pipeline.has_room();
            let closing = self.pipeline.is_closing();
            tokio::select! {
                biased;
                acked = poll_fn(|cx| match self.acks.front_mut() {
                    Some((_, fut)) => fut.as_mut().poll(cx),
                    None => Poll::Pending,
                }) => {
                    now = Instant::now();
                    self.on_acked(acked, now);
                    // Every answer already in, before the next turn.
                    while let Some(acked) = self
                        .acks
                        .front_mut()
                        .and_then(|(_, fut)| fut.as_mut().now_or_never())
                    {
                        self.on_acked(acked, now);
                    }
                }
                ok = in_slot(&mut self.store) => {
                    now = Instant::now();
                    self.store = None;
                    self.pipeline.on_stored(ok, now);
                }
                next = merged.next(), if room => {
                    now = Instant::now();
                    match next {
                        Some((feed, event)) => self.on_event(feed, event, now),
                        None => self.pipeline.close(now),
                    }
                    // The events already in, while there is room, up to a
                    // batch: then they go out.
                    for _ in 1..EVENT_BATCH {
                        if !self.pipeline.has_room() {
                            break;
                        }
                        match merged.next().now_or_never() {
                            Some(Some((feed, event))) => self.on_event(feed, event, now),
                            Some(None) => self.pipeline.close(now),
                            None => break,
                        }
                    }
                }
                () = &mut shutdown, if !closing => {
                    now = Instant::now();
                    self.pipeline.close(now);
                }
                () = &mut timer, if armed.is_some() => {
                    now = Instant::now();
                    armed = None;
                }
                opened = in_slot(&mut self.reconnecting) => {
                    now = Instant::now();
                    self.reconnecting = None;
                    match opened {
                        Ok(link) => {
                            tracing::info!("NATS: connected again");
                            self.link = link;
                            self.generation += 1;
                            self.pipeline.on_connected();
                        }
                        Err(error) => {
                            // The kind only: the error may quote the URL.
                            let kind = match &error {
                                RelayError::Connect(e) => e.kind().to_string(),
                                _ => "the stream or the bucket".to_owned(),
                            };
                            tracing::warn!(error = %kind, "NATS: cannot connect again");
                            self.pipeline.on_connect_failed(now);
                        }
                    }
                }
            }
        }
    }

    /// JetStream's answer, to the pipeline.
    fn on_acked(&mut self, acked: Acked, now: Instant) {
        let (id, _) = self.acks.pop_front().expect("the answer of the oldest");
        let answer = match acked {
            Ok(ack) if ack.duplicate => Ok(Published::Duplicate),
            Ok(_) => Ok(Published::Stored),
            Err(error) => {
                tracing::debug!(%error, "a publish failed");
                Err(NotPublished)
            }
        };
        self.pipeline.on_ack(id, answer, now);
    }

    /// Sends what the pipeline gives, in order. A failed send is the
    /// pipeline's to retry; nothing more goes until then.
    async fn send(&mut self, now: Instant) {
        loop {
            // The link is looked at before every send, not once a turn: a
            // publish handed to a broken connection is lost with it (and
            // sent again on the next, in order), never queued for later.
            self.pipeline.on_link(self.generation, self.link.is_up());
            if self.pipeline.poll_connect(now) {
                tracing::warn!(
                    in_flight = self.pipeline.in_flight(),
                    "NATS: the connection is down; connecting again"
                );
                self.reconnecting = Some(self.relay.reconnect());
            }
            if self.pipeline.take_resend() {
                self.acks.clear();
            }
            let Some((id, out)) = self.pipeline.poll_send() else {
                return;
            };
            match send(&self.link.js, out).await {
                Ok(ack) => {
                    self.pipeline.on_sent(id);
                    // `into_future` boxes already.
                    self.acks.push_back((id, ack.into_future()));
                }
                Err(error) => {
                    tracing::debug!(%error, "a publish could not be sent");
                    self.pipeline.on_send_failed(id, Instant::now());
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, feed: usize, event: Event, now: Instant) {
        let state = &mut self.states[feed];
        let prefix = &self.relay.config.subject_prefix;
        match event {
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
                let out = Outgoing {
                    subject: Subject::from(data_subject(prefix, &data)),
                    id,
                    feed: None,
                    payload,
                };
                let point = state.session.clone().map(|s| (s, seq));
                self.pipeline.push(feed, Some(out), point, Kind::Data);
            }
            Event::Gap(gap) => {
                let out = self.event_line(feed, &Event::Gap(gap), "gap", gap.from);
                self.pipeline.push(feed, Some(out), None, Kind::Gap);
            }
            Event::Resumed { replayed } => {
                let at = state.seen;
                let out = self.event_line(feed, &Event::Resumed { replayed }, "resumed", at);
                self.pipeline.push(feed, Some(out), None, Kind::Resumed);
            }
            Event::SessionStarted { session } => {
                let session = Session::new(session);
                tracing::info!(feed = %state.key, session = %session.name, "a new upstream session");
                state.session = Some(session.clone());
                state.seen = 0;
                self.pipeline
                    .push(feed, None, Some((session, 0)), Kind::Point);
            }
            Event::GaveUp(reason) => {
                let feed = state.key.clone();
                self.halt(Halt::GaveUp { feed, reason }, now);
            }
            Event::SubscribeFailed { error, .. } => {
                let feed = state.key.clone();
                self.halt(Halt::Refused { feed, error }, now);
            }
            other => tracing::debug!(feed = %state.key, event = other.name(), "upstream"),
        }
    }

    /// Stops taking events: the run ends once what is in flight is
    /// acknowledged and the points are stored.
    fn halt(&mut self, halt: Halt, now: Instant) {
        tracing::error!(%halt, "stopping");
        self.pipeline.halt(halt, now);
    }

    /// An event line (`gap`, `resumed`) to `<prefix>.<name>`, its id from
    /// the session and `seq`.
    fn event_line(&self, feed: usize, event: &Event, name: &str, seq: u64) -> Outgoing {
        let state = &self.states[feed];
        Outgoing {
            subject: Subject::from(format!("{}.{name}", self.relay.config.subject_prefix)),
            id: state
                .session
                .as_ref()
                .map(|session| event_id(&session.name, name, seq)),
            feed: Some(state.key.clone()),
            payload: Bytes::from(lines::event_line(event)),
        }
    }

    /// Writes a feed's resume point to the bucket; resolves to whether it
    /// was stored.
    fn store_point(&self, feed: usize, (session, last_seq): Point) -> BoxFuture<'static, bool> {
        let point = ResumePoint {
            session: session.token.clone(),
            last_seq,
        };
        let value = serde_json::to_vec(&point).map(Bytes::from);
        let points = self.link.points.clone();
        let key = self.states[feed].key.clone();
        Box::pin(async move {
            let Ok(value) = value else { return false };
            match points.put(&key, value).await {
                Ok(_) => true,
                Err(error) => {
                    tracing::warn!(feed = %key, seq = last_seq, %error, "cannot store the resume point");
                    false
                }
            }
        })
    }
}

/// The future in `slot`, if any (never ready when there is none); the slot
/// keeps it if the wait is dropped.
fn in_slot<'a, T: 'a>(slot: &'a mut Option<BoxFuture<'static, T>>) -> impl Future<Output = T> + 'a {
    poll_fn(move |cx| match slot.as_mut() {
        Some(fut) => fut.as_mut().poll(cx),
        None => Poll::Pending,
    })
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
