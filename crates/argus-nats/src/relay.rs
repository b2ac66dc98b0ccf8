//! The relay: the client's one ordered output, published into JetStream in
//! order, a bounded number of publishes in flight, the resume point of each
//! upstream connection stored once what precedes it is acknowledged.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use argus_client::argus_core::{Event, ResumePoint, SessionToken};
use argus_client::{EventStream, lines};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, kv, stream};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::SelectAll;

use crate::config::RelayConfig;
use crate::names::{SessionName, data_id, data_subject, event_id};

/// The header naming the upstream connection (its resume-point key) on
/// `gap` and `resumed` messages.
pub const FEED_HEADER: &str = "Argus-Feed";

/// Why the relay could not start or go on. Publishing is retried, never
/// abandoned, so a running relay ends with an error only when its resume
/// points cannot be read at start.
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    Pending(
        Pin<
            Box<
                dyn Future<
                        Output = Result<
                            jetstream::publish::PublishAck,
                            jetstream::context::PublishError,
                        >,
                    > + Send,
            >,
        >,
    ),
}

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
    /// The last seq seen in the events (not yet acknowledged, perhaps).
    seen: u64,
}

impl Relay {
    /// Checks `config`, and finds or creates the stream (subjects
    /// `<prefix>.>`, file storage, the de-duplication window) and the
    /// resume-point bucket (file storage, one value a key).
    pub async fn open(js: jetstream::Context, config: RelayConfig) -> Result<Self, RelayError> {
        config.validate()?;
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

    /// The stored resume point of the connection `key`, if any: build its
    /// client with [`ClientBuilder::resume_from`](argus_client::ClientBuilder::resume_from)
    /// so a restarted relay goes on where the last one's acknowledgements
    /// ended.
    pub async fn resume_point(&self, key: &str) -> Result<Option<ResumePoint>, RelayError> {
        let bad = |message: String| RelayError::ResumePoint {
            key: key.to_owned(),
            message,
        };
        match self.points.get(key).await {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| bad(format!("not a resume point ({:?} error)", e.classify()))),
            Err(e) => Err(bad(e.to_string())),
        }
    }

    /// Relays `feeds` until they all end (their clients are gone) or
    /// `shutdown` resolves, then waits for every publish in flight to be
    /// acknowledged and for the last resume points to be stored.
    ///
    /// Each feed's events are published in their order: data to
    /// `<prefix>.<type>.<SYMBOL>` with `Nats-Msg-Id` `<session name>:<seq>`,
    /// gaps and resumes as event lines ([`argus_client::lines`]) to
    /// `<prefix>.gap` and `<prefix>.resumed`. At most `max_in_flight`
    /// publishes await their acknowledgement; then the relay stops reading
    /// events, and the clients stop reading their sockets. A failed or
    /// unanswered publish is sent again, with everything after it, after a
    /// delay growing to `max_retry_delay`: JetStream drops what it already
    /// stored by its id.
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
        };
        run.go(merged, shutdown).await;
        run.stats
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(50);

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
            self.settle();
            self.start_store();
            if closing && self.in_flight.is_empty() && self.store.is_none() {
                return;
            }
            let room = self.in_flight.len() < self.relay.config.max_in_flight;
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
            state.acked = Some(point);
            state.dirty = true;
        }
    }

    async fn on_ack(
        &mut self,
        acked: Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
    ) {
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
                for entry in &mut self.in_flight {
                    if entry.outgoing.is_some() {
                        entry.ack = Ack::Unsent;
                    }
                }
                self.unsent = self.in_flight.len();
                self.send_unsent().await;
            }
        }
    }

    /// Sends every unsent entry, in order; stops at a failure, leaving the
    /// rest unsent, and turns that entry's failure into its answer so the
    /// retry path takes it.
    /// The unsent entries are the last `unsent` of the queue.
    async fn send_unsent(&mut self) {
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
            other => {
                tracing::debug!(feed = %state.key, event = other.name(), "upstream");
                return;
            }
        };
        self.in_flight.push_back(entry);
        self.unsent += 1;
        self.send_unsent().await;
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

    /// Starts writing the oldest unstored resume point, if none is being
    /// written.
    fn start_store(&mut self) {
        if self.store.is_some() {
            return;
        }
        let Some((feed, state)) = self.states.iter_mut().enumerate().find(|(_, s)| s.dirty) else {
            return;
        };
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
