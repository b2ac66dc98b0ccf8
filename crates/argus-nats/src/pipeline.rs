//! The relay's decisions, without I/O: which message to publish next,
//! what to send again after a failure or a reconnection, when the window
//! is full, when to try a new connection, and which resume point to store
//! when. Time is passed in; the
//! driver ([`Relay::run`](crate::Relay::run)) does the publishing, the
//! storing and the waiting, and reports back.
//!
//! The pipeline knows nothing of NATS: a message `M` is whatever the
//! driver publishes, a point `P` whatever it stores. So it can carry the
//! same feed onto another bus, and its rules are tested in virtual time
//! (the unit and property tests below).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use argus_nats::pipeline::{Kind, Pipeline, PipelineConfig, Published};
//!
//! let now = Instant::now();
//! let mut p: Pipeline<&str, u64> = Pipeline::new(PipelineConfig::default(), 1, now);
//! p.push(0, Some("price 1"), Some(1), Kind::Data);
//! let (id, message) = p.poll_send().expect("the link is up and nothing failed");
//! assert_eq!(*message, "price 1");
//! p.on_sent(id);
//! p.on_ack(id, Ok(Published::Stored), now);
//! // Everything up to point 1 is stored on the bus: the point may be kept.
//! assert_eq!(p.poll_store(now), Some((0, 1)));
//! p.on_stored(true, now);
//! // The next routine point waits for `point_interval`.
//! assert_eq!(p.poll_timeout(), None);
//! p.push(0, Some("price 2"), Some(2), Kind::Data);
//! let (id, _) = p.poll_send().unwrap();
//! p.on_sent(id);
//! p.on_ack(id, Ok(Published::Stored), now);
//! assert_eq!(p.poll_store(now), None);
//! assert_eq!(p.poll_timeout(), Some(now + Duration::from_millis(100)));
//! assert_eq!(p.stats().published, 2);
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::RelayStats;
use crate::relay::Halt;

/// The pipeline's settings (the relevant part of
/// [`RelayConfig`](crate::RelayConfig)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// At most this many entries wait for their acknowledgement; then
    /// [`Pipeline::has_room`] is false and the driver stops reading.
    pub max_in_flight: usize,
    /// The first delay before sending again after a failure; it doubles at
    /// each failure in a row.
    pub first_retry_delay: Duration,
    /// The longest delay before sending again.
    pub max_retry_delay: Duration,
    /// A resume point is stored at most this often (a new session's at
    /// once).
    pub point_interval: Duration,
    /// How long a closed pipeline waits for its answers and its last
    /// points before it is done anyway.
    pub shutdown_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 512,
            first_retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_secs(2),
            point_interval: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// What an entry is, for the statistics and the points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A data message.
    Data,
    /// A gap event.
    Gap,
    /// A resume event.
    Resumed,
    /// A new session: nothing to publish, a point to store at once.
    Point,
}

/// An entry's place in the pipeline: the `n`th pushed (from 0). A send and
/// its acknowledgement name the entry they are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(pub u64);

/// The bus's answer to a publish that succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Stored.
    Stored,
    /// Already stored (the de-duplication window dropped this copy).
    Duplicate,
}

/// A publish that failed or was not answered in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotPublished;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Nothing to publish.
    Nothing,
    /// Not sent (yet, or again after a failure).
    Unsent,
    /// Sent; waiting for the answer.
    Sent,
    /// Answered: stored or duplicate.
    Done,
}

struct Entry<M, P> {
    feed: usize,
    message: Option<M>,
    status: Status,
    /// The point this entry completes: stored once it and everything before
    /// it are acknowledged.
    point: Option<P>,
    kind: Kind,
}

/// Where a feed's resume point stands.
struct FeedPoint<P> {
    /// The last point everything up to which is acknowledged.
    acked: Option<P>,
    /// Whether `acked` is newer than the stored point.
    dirty: bool,
    /// Whether `acked` names a session the store does not hold yet: it is
    /// stored without waiting for `point_interval`.
    urgent: bool,
}

/// The relay's state machine: entries in feed order, a bounded number
/// waiting for their acknowledgement, each sent again after a failure with
/// everything after it, in order, and each feed's resume point stored once
/// what precedes it is acknowledged.
///
/// The driver's loop: report the link ([`on_link`](Self::on_link)) and the
/// time ([`handle_timeout`](Self::handle_timeout)); if
/// [`poll_connect`](Self::poll_connect), start a new connection; if
/// [`take_resend`](Self::take_resend), forget the answers it waits for;
/// send what [`poll_send`](Self::poll_send) gives, reporting
/// [`on_sent`](Self::on_sent) or [`on_send_failed`](Self::on_send_failed);
/// store what [`poll_store`](Self::poll_store) gives; then wait for an
/// answer ([`on_ack`](Self::on_ack), [`on_stored`](Self::on_stored),
/// [`on_connected`](Self::on_connected) or
/// [`on_connect_failed`](Self::on_connect_failed)), an
/// event ([`push`](Self::push), while [`has_room`](Self::has_room)) or
/// [`poll_timeout`](Self::poll_timeout), until [`is_done`](Self::is_done).
pub struct Pipeline<M, P> {
    config: PipelineConfig,
    entries: VecDeque<Entry<M, P>>,
    /// The id of `entries[0]`.
    first: u64,
    /// Where sending goes on: entries before it are sent or have nothing to
    /// send.
    next_send: usize,
    feeds: Vec<FeedPoint<P>>,
    /// After a failure: nothing is sent before this instant.
    retry_at: Option<Instant>,
    retry_delay: Duration,
    /// A new connection is being made (the link is down).
    connecting: bool,
    /// After a failed connection: none is tried before this instant.
    connect_at: Option<Instant>,
    connect_delay: Duration,
    /// Everything unanswered was marked to go again: the driver drops the
    /// answers it waits for.
    resend: bool,
    /// The link is down: sends wait for it.
    held: bool,
    /// The link's generation when what is in flight was sent.
    epoch: Option<u64>,
    /// The feed whose point is being stored, and whether it was urgent.
    storing: Option<(usize, bool)>,
    /// When the next routine store may start.
    next_store: Instant,
    /// After a failed store: no store starts before this instant.
    store_retry_at: Option<Instant>,
    /// Once closed: when it is done, answered or not.
    deadline: Option<Instant>,
    /// The deadline passed before everything was answered and stored.
    gave_up: bool,
    stats: RelayStats,
}

impl<M, P: Clone> Pipeline<M, P> {
    /// A pipeline for `feeds` feeds (numbered from 0), at `now`.
    pub fn new(config: PipelineConfig, feeds: usize, now: Instant) -> Self {
        Self {
            entries: VecDeque::with_capacity(config.max_in_flight),
            first: 0,
            next_send: 0,
            feeds: (0..feeds)
                .map(|_| FeedPoint {
                    acked: None,
                    dirty: false,
                    urgent: false,
                })
                .collect(),
            retry_at: None,
            retry_delay: config.first_retry_delay,
            connecting: false,
            connect_at: None,
            connect_delay: config.first_retry_delay,
            resend: false,
            held: false,
            epoch: None,
            storing: None,
            next_store: now,
            store_retry_at: None,
            deadline: None,
            gave_up: false,
            stats: RelayStats::default(),
            config,
        }
    }

    /// A feed's point known at the start (a resumed session's): the one
    /// the store holds, so not stored again until it moves.
    pub fn set_point(&mut self, feed: usize, point: P) {
        self.feeds[feed].acked = Some(point);
    }

    /// What the run did so far.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// Ends the run at `now`: no more events; [`is_done`](Self::is_done)
    /// once what is in flight is acknowledged and the last points are
    /// stored, or once `shutdown_timeout` has passed (what was not
    /// acknowledged is counted in [`RelayStats::unacknowledged`]).
    pub fn close(&mut self, now: Instant) {
        if self.deadline.is_none() {
            self.deadline = Some(now + self.config.shutdown_timeout);
        }
    }

    /// Ends the run because a feed cannot go on: what came before is
    /// still published.
    pub fn halt(&mut self, halt: Halt, now: Instant) {
        self.stats.halted = Some(halt);
        self.close(now);
    }

    /// Whether the run is ending ([`close`](Self::close) or
    /// [`halt`](Self::halt)).
    pub fn is_closing(&self) -> bool {
        self.deadline.is_some()
    }

    /// Whether the driver may take another event: the run goes on and
    /// fewer than `max_in_flight` entries wait.
    pub fn has_room(&self) -> bool {
        self.deadline.is_none() && self.entries.len() < self.config.max_in_flight
    }

    /// How many entries wait for their acknowledgement (or their turn).
    pub fn in_flight(&self) -> usize {
        self.entries.len()
    }

    /// Whether the run is over: closed, everything acknowledged, every
    /// point stored.
    pub fn is_done(&self) -> bool {
        self.deadline.is_some()
            && (self.gave_up
                || (self.entries.is_empty()
                    && self.storing.is_none()
                    && !self.feeds.iter().any(|f| f.dirty && f.acked.is_some())))
    }

    /// The next step of feed `feed`: a message to publish (or none), the
    /// point it completes (or none), and what it is.
    pub fn push(&mut self, feed: usize, message: Option<M>, point: Option<P>, kind: Kind) {
        let status = if message.is_some() {
            Status::Unsent
        } else {
            Status::Nothing
        };
        self.entries.push_back(Entry {
            feed,
            message,
            status,
            point,
            kind,
        });
        self.settle();
    }

    /// The link's state: its generation (one more at each new connection)
    /// and whether it is up. After a reconnection what was in
    /// flight may have been lost with the old connection, so everything
    /// unanswered goes again at once, in order (the bus drops what it
    /// already stored by its id); while the link is down nothing is sent,
    /// or it would wait in the client's buffer and go out on the next
    /// connection before what the broken one lost.
    pub fn on_link(&mut self, generation: u64, up: bool) {
        if self.epoch.is_some_and(|e| e != generation)
            && self.entries.iter().any(|e| e.status == Status::Sent)
        {
            self.stats.retries += 1;
            tracing::warn!(
                in_flight = self.entries.len(),
                "a new NATS connection: sending what was not acknowledged again, in order"
            );
            self.mark_all_unsent();
        }
        self.epoch = Some(generation);
        self.held = !up;
    }

    /// Whether the driver should start making a new connection now: the
    /// link is down, none is being made, and the delay after the last
    /// failed one has passed. Report the outcome with
    /// [`on_connected`](Self::on_connected) or
    /// [`on_connect_failed`](Self::on_connect_failed).
    pub fn poll_connect(&mut self, now: Instant) -> bool {
        if !self.held || self.connecting || self.connect_at.is_some_and(|at| now < at) {
            return false;
        }
        self.connecting = true;
        self.connect_at = None;
        true
    }

    /// The new connection is made (then report it with
    /// [`on_link`](Self::on_link), a new generation, up).
    pub fn on_connected(&mut self) {
        self.connecting = false;
        self.connect_delay = self.config.first_retry_delay;
    }

    /// The new connection could not be made: the next try waits, the wait
    /// doubling up to `max_retry_delay`.
    pub fn on_connect_failed(&mut self, now: Instant) {
        self.connecting = false;
        tracing::warn!(delay = ?self.connect_delay, "cannot connect again; trying again");
        self.connect_at = Some(now + self.connect_delay);
        self.connect_delay = (self.connect_delay * 2).min(self.config.max_retry_delay);
    }

    /// Whether something waits to be sent until the link is up again (a
    /// driver whose link gives no notice of coming back looks again soon).
    pub fn is_held(&self) -> bool {
        self.held && self.next_send < self.entries.len()
    }

    /// The time: a retry that is due marks everything unanswered to go
    /// again.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            self.mark_all_unsent();
        }
        if self.deadline.is_some_and(|at| at <= now) && !self.is_done() {
            let left = self.entries.iter().filter(|e| e.message.is_some()).count();
            tracing::warn!(
                unacknowledged = left,
                "the run ends with publishes unacknowledged; the stored points precede them"
            );
            self.stats.unacknowledged = left as u64;
            self.gave_up = true;
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout),
    /// [`poll_store`](Self::poll_store) or
    /// [`poll_connect`](Self::poll_connect) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let store = if self.storing.is_some() {
            None
        } else {
            self.feeds
                .iter()
                .filter(|f| f.dirty)
                .map(|f| match self.store_retry_at {
                    // An urgent point waits for nothing else.
                    Some(retry) if f.urgent => retry,
                    Some(retry) => retry.max(self.next_store),
                    None => self.next_store,
                })
                .min()
        };
        let connect = self.connect_at.filter(|_| self.held && !self.connecting);
        [self.retry_at, store, self.deadline, connect]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether everything in flight was marked to go again since the last
    /// call: the driver drops the answers it still waits for (they may
    /// never come).
    pub fn take_resend(&mut self) -> bool {
        std::mem::take(&mut self.resend)
    }

    /// The next message to send, in order, unless the link is down or a
    /// failure waits for its retry.
    pub fn poll_send(&mut self) -> Option<(EntryId, &M)> {
        if self.held || self.retry_at.is_some() {
            return None;
        }
        while let Some(entry) = self.entries.get(self.next_send) {
            if entry.status == Status::Unsent {
                let id = EntryId(self.first + self.next_send as u64);
                return self.entries[self.next_send]
                    .message
                    .as_ref()
                    .map(|m| (id, m));
            }
            self.next_send += 1;
        }
        None
    }

    /// The message [`poll_send`](Self::poll_send) gave went out; its
    /// answer will come.
    pub fn on_sent(&mut self, id: EntryId) {
        if let Some(index) = self.index(id)
            && self.entries[index].status == Status::Unsent
        {
            self.entries[index].status = Status::Sent;
            self.next_send = self.next_send.max(index + 1);
        }
    }

    /// The message could not be handed to the bus: it and everything after
    /// it go again after the retry delay, and nothing is sent before.
    pub fn on_send_failed(&mut self, id: EntryId, now: Instant) {
        if self.index(id).is_some() {
            self.fail(now);
        }
    }

    /// The bus's answer to entry `id`. An answer to a send that was since
    /// marked to go again is ignored.
    pub fn on_ack(&mut self, id: EntryId, answer: Result<Published, NotPublished>, now: Instant) {
        let Some(index) = self.index(id) else { return };
        if self.entries[index].status != Status::Sent {
            return;
        }
        match answer {
            Ok(published) => {
                self.retry_delay = self.config.first_retry_delay;
                let entry = &mut self.entries[index];
                entry.status = Status::Done;
                match published {
                    Published::Duplicate => self.stats.duplicates += 1,
                    Published::Stored if entry.kind == Kind::Data => self.stats.published += 1,
                    Published::Stored => {}
                }
                self.settle();
            }
            Err(NotPublished) => self.fail(now),
        }
    }

    /// The next resume point to store, if none is being stored: a new
    /// session's at once, others once `point_interval` passed since the
    /// last store (at once when the run is ending).
    pub fn poll_store(&mut self, now: Instant) -> Option<(usize, P)> {
        if self.storing.is_some() || self.store_retry_at.is_some_and(|at| now < at) {
            return None;
        }
        self.store_retry_at = None;
        let due = now >= self.next_store || (self.is_closing() && self.entries.is_empty());
        let (feed, state) = self
            .feeds
            .iter_mut()
            .enumerate()
            .find(|(_, f)| f.dirty && (due || f.urgent))?;
        let urgent = std::mem::take(&mut state.urgent);
        state.dirty = false;
        let point = state.acked.clone()?;
        self.next_store = now + self.config.point_interval;
        self.storing = Some((feed, urgent));
        Some((feed, point))
    }

    /// The store's answer for the point [`poll_store`](Self::poll_store)
    /// gave. After a failure no store starts for the retry delay; then the
    /// feed's newest point goes (at once if the failed one was a new
    /// session's).
    pub fn on_stored(&mut self, ok: bool, now: Instant) {
        let Some((feed, urgent)) = self.storing.take() else {
            return;
        };
        if ok {
            self.stats.points_stored += 1;
        } else {
            let state = &mut self.feeds[feed];
            state.dirty = true;
            state.urgent |= urgent;
            tracing::warn!(feed, delay = ?self.retry_delay, "cannot store a resume point; trying again");
            self.store_retry_at = Some(now + self.retry_delay);
            self.retry_delay = (self.retry_delay * 2).min(self.config.max_retry_delay);
        }
    }

    fn index(&self, id: EntryId) -> Option<usize> {
        let index = usize::try_from(id.0.checked_sub(self.first)?).ok()?;
        (index < self.entries.len()).then_some(index)
    }

    fn fail(&mut self, now: Instant) {
        if self.retry_at.is_some() {
            return;
        }
        self.stats.retries += 1;
        tracing::warn!(in_flight = self.entries.len(), delay = ?self.retry_delay,
            "a publish was not acknowledged: sending it and everything after it again");
        self.retry_at = Some(now + self.retry_delay);
        self.retry_delay = (self.retry_delay * 2).min(self.config.max_retry_delay);
    }

    fn mark_all_unsent(&mut self) {
        for entry in &mut self.entries {
            if entry.status == Status::Sent {
                entry.status = Status::Unsent;
            }
        }
        self.next_send = 0;
        self.resend = true;
    }

    /// Pops what is answered at the front, moving each feed's point.
    fn settle(&mut self) {
        while self
            .entries
            .front()
            .is_some_and(|e| matches!(e.status, Status::Nothing | Status::Done))
        {
            let entry = self.entries.pop_front().expect("front");
            self.first += 1;
            self.next_send = self.next_send.saturating_sub(1);
            match entry.kind {
                Kind::Gap => self.stats.gaps += 1,
                Kind::Resumed => self.stats.resumes += 1,
                Kind::Data | Kind::Point => {}
            }
            if let Some(point) = entry.point {
                let feed = &mut self.feeds[entry.feed];
                feed.urgent |= entry.kind == Kind::Point;
                feed.acked = Some(point);
                feed.dirty = true;
            }
        }
    }
}

#[cfg(test)]
mod tests;
