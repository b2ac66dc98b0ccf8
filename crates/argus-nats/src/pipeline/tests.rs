//! The pipeline in virtual time, against a model bus that stores by id
//! (as JetStream's de-duplication does) and loses what a broken
//! connection held.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const MS: Duration = Duration::from_millis(1);

fn config(max_in_flight: usize) -> PipelineConfig {
    PipelineConfig {
        max_in_flight,
        ..PipelineConfig::default()
    }
}

/// A pipeline of `feeds` feeds with a window of 8, its link up, and its
/// start.
fn linked(feeds: usize) -> (Instant, Pipeline<u64, u64>) {
    let t0 = Instant::now();
    let mut p = Pipeline::new(config(8), feeds, t0);
    p.on_link(1, true);
    (t0, p)
}

/// Sends everything the pipeline gives; returns the ids sent.
fn send_all(p: &mut Pipeline<u64, u64>) -> Vec<EntryId> {
    let mut sent = Vec::new();
    while let Some((id, _)) = p.poll_send() {
        p.on_sent(id);
        sent.push(id);
    }
    sent
}

#[test]
fn the_window_bounds_what_waits_and_an_answer_frees_a_place() {
    let t0 = Instant::now();
    let mut p = Pipeline::new(config(3), 1, t0);
    p.on_link(1, true);
    for n in 0..3 {
        assert!(p.has_room());
        p.push(0, Some(n), Some(n), Kind::Data);
    }
    assert!(!p.has_room());
    assert_eq!(send_all(&mut p), vec![EntryId(0), EntryId(1), EntryId(2)]);
    // An answer behind an unanswered one frees nothing: points move in order.
    p.on_ack(EntryId(1), Ok(Published::Stored), t0);
    assert!(!p.has_room());
    p.on_ack(EntryId(0), Ok(Published::Stored), t0);
    assert_eq!(p.in_flight(), 1);
    assert!(p.has_room());
    assert_eq!(p.stats().published, 2);
}

#[test]
fn a_failure_holds_sends_until_the_retry_then_everything_unanswered_goes_again_in_order() {
    let (t0, mut p) = linked(1);
    for n in 0..4 {
        p.push(0, Some(n), None, Kind::Data);
    }
    send_all(&mut p);
    p.on_ack(EntryId(0), Ok(Published::Stored), t0);
    p.on_ack(EntryId(1), Err(NotPublished), t0);
    p.push(0, Some(4), None, Kind::Data);
    assert!(p.poll_send().is_none(), "nothing goes before the retry");
    assert_eq!(p.poll_timeout(), Some(t0 + 50 * MS));
    p.handle_timeout(t0 + 49 * MS);
    assert!(!p.take_resend());
    p.handle_timeout(t0 + 50 * MS);
    assert!(
        p.take_resend(),
        "the driver forgets the answers it waited for"
    );
    assert_eq!(
        send_all(&mut p),
        vec![EntryId(1), EntryId(2), EntryId(3), EntryId(4)]
    );
    // The next failure in a row waits twice as long; a success resets it.
    p.on_ack(EntryId(1), Err(NotPublished), t0 + 60 * MS);
    assert_eq!(p.poll_timeout(), Some(t0 + 160 * MS));
    p.handle_timeout(t0 + 160 * MS);
    send_all(&mut p);
    p.on_ack(EntryId(1), Ok(Published::Duplicate), t0 + 170 * MS);
    p.on_ack(EntryId(2), Err(NotPublished), t0 + 170 * MS);
    assert_eq!(p.poll_timeout(), Some(t0 + 220 * MS));
    assert_eq!(p.stats().retries, 3);
    assert_eq!(p.stats().duplicates, 1);
}

#[test]
fn a_stale_answer_after_a_resend_is_ignored() {
    let (t0, mut p) = linked(1);
    p.push(0, Some(0), None, Kind::Data);
    send_all(&mut p);
    p.on_link(2, true);
    assert!(p.take_resend());
    // The old connection's answer, after the mark: not counted.
    p.on_ack(EntryId(0), Ok(Published::Stored), t0);
    assert_eq!(p.in_flight(), 1);
    assert_eq!(send_all(&mut p), vec![EntryId(0)]);
    p.on_ack(EntryId(0), Ok(Published::Stored), t0);
    assert_eq!(p.in_flight(), 0);
    assert_eq!(p.stats().published, 1);
}

#[test]
fn while_the_link_is_down_nothing_is_sent_and_a_reconnection_sends_everything_again() {
    let (t0, mut p) = linked(1);
    p.push(0, Some(0), None, Kind::Data);
    p.push(0, Some(1), None, Kind::Data);
    send_all(&mut p);
    p.on_link(1, false);
    p.push(0, Some(2), None, Kind::Data);
    assert!(p.poll_send().is_none());
    assert!(p.is_held());
    p.on_link(2, true);
    assert!(p.take_resend());
    assert!(!p.is_held());
    assert_eq!(send_all(&mut p), vec![EntryId(0), EntryId(1), EntryId(2)]);
    assert_eq!(p.stats().retries, 1);
    // A reconnection with nothing sent resends nothing.
    for id in 0..3 {
        p.on_ack(EntryId(id), Ok(Published::Stored), t0);
    }
    p.on_link(3, true);
    assert!(!p.take_resend());
    assert_eq!(p.stats().retries, 1);
}

#[test]
fn a_down_link_is_replaced_one_attempt_at_a_time_backing_off_after_failures() {
    let (t0, mut p) = linked(1);
    assert!(!p.poll_connect(t0), "the link is up");
    p.on_link(1, false);
    assert!(p.poll_connect(t0));
    assert!(!p.poll_connect(t0), "one attempt at a time");
    p.on_connect_failed(t0);
    assert!(!p.poll_connect(t0 + 49 * MS));
    assert_eq!(p.poll_timeout(), Some(t0 + 50 * MS));
    assert!(p.poll_connect(t0 + 50 * MS));
    p.on_connect_failed(t0 + 50 * MS);
    assert_eq!(p.poll_timeout(), Some(t0 + 150 * MS), "twice as long");
    assert!(p.poll_connect(t0 + 150 * MS));
    p.on_connected();
    p.on_link(2, true);
    assert!(!p.poll_connect(t0 + 150 * MS));
    // After a success the next failure waits the first delay again.
    p.on_link(2, false);
    assert!(p.poll_connect(t0 + 200 * MS));
    p.on_connect_failed(t0 + 200 * MS);
    assert_eq!(p.poll_timeout(), Some(t0 + 250 * MS));
}

#[test]
fn a_new_sessions_point_is_stored_at_once_others_every_interval_the_last_at_close() {
    let (t0, mut p) = linked(2);
    // The first routine store may go at once; the interval starts there.
    p.push(0, Some(1), Some(1), Kind::Data);
    send_all(&mut p);
    p.on_ack(EntryId(0), Ok(Published::Stored), t0);
    assert_eq!(p.poll_store(t0), Some((0, 1)));
    p.on_stored(true, t0);
    p.push(0, Some(2), Some(2), Kind::Data);
    send_all(&mut p);
    p.on_ack(EntryId(1), Ok(Published::Stored), t0 + MS);
    assert_eq!(p.poll_store(t0 + MS), None, "not before point_interval");
    assert_eq!(p.poll_timeout(), Some(t0 + 100 * MS));
    // Feed 1 starts a session: stored without waiting.
    p.push(1, None, Some(0), Kind::Point);
    assert_eq!(p.poll_store(t0 + 2 * MS), Some((1, 0)));
    // One store at a time; after a failure none for the retry delay, then
    // the failed new session's point first.
    assert_eq!(p.poll_store(t0 + 200 * MS), None);
    p.on_stored(false, t0 + 3 * MS);
    assert_eq!(p.poll_store(t0 + 3 * MS), None);
    assert_eq!(p.poll_timeout(), Some(t0 + 53 * MS));
    assert_eq!(p.poll_store(t0 + 53 * MS), Some((1, 0)), "still urgent");
    p.on_stored(true, t0 + 54 * MS);
    p.push(0, Some(3), Some(3), Kind::Data);
    send_all(&mut p);
    p.close(t0 + 54 * MS);
    assert!(!p.has_room());
    assert!(!p.is_done(), "an answer is awaited");
    p.on_ack(EntryId(3), Ok(Published::Stored), t0 + 55 * MS);
    assert_eq!(
        p.poll_store(t0 + 55 * MS),
        Some((0, 3)),
        "at close, at once"
    );
    assert!(!p.is_done());
    p.on_stored(true, t0 + 56 * MS);
    assert!(p.is_done());
    assert_eq!(p.stats().points_stored, 3);
}

#[test]
fn a_resumed_feeds_known_point_is_not_stored_again_until_it_moves() {
    let t0 = Instant::now();
    let mut p: Pipeline<u64, u64> = Pipeline::new(config(8), 1, t0);
    p.set_point(0, 41);
    p.close(t0);
    assert_eq!(p.poll_store(t0), None);
    assert!(p.is_done());
}

#[test]
fn a_halt_closes_after_what_came_before() {
    let (t0, mut p) = linked(1);
    p.push(0, Some(0), None, Kind::Gap);
    send_all(&mut p);
    p.halt(
        Halt::GaveUp {
            feed: "f".into(),
            reason: argus_client::argus_core::GiveUpReason::Fatal(
                argus_client::argus_core::OpenError::Unauthorized { status: 401 },
            ),
        },
        t0,
    );
    assert!(!p.has_room());
    assert!(!p.is_done());
    p.on_ack(EntryId(0), Ok(Published::Stored), t0);
    assert!(p.is_done());
    assert_eq!(p.stats().gaps, 1);
    assert!(p.stats().halted.is_some());
}

#[test]
fn a_closed_run_waits_for_its_answers_until_the_shutdown_timeout_then_counts_what_is_left() {
    let (t0, mut p) = linked(1);
    for n in 0..3 {
        p.push(0, Some(n), Some(n), Kind::Data);
    }
    send_all(&mut p);
    p.on_ack(EntryId(0), Ok(Published::Stored), t0);
    p.close(t0 + MS);
    // The first point goes at once; the others wait for answers that do
    // not come (a broker that is gone).
    assert_eq!(p.poll_store(t0 + MS), Some((0, 0)));
    p.on_stored(true, t0 + MS);
    assert_eq!(p.poll_timeout(), Some(t0 + MS + 10 * 1000 * MS));
    p.handle_timeout(t0 + 10 * 1000 * MS);
    assert!(!p.is_done(), "not before the deadline");
    p.handle_timeout(t0 + MS + 10 * 1000 * MS);
    assert!(p.is_done());
    assert_eq!(p.stats().unacknowledged, 2);
    // A second close does not move the deadline.
    let (t0, mut q) = linked(1);
    q.push(0, Some(0), None, Kind::Data);
    send_all(&mut q);
    q.close(t0);
    q.close(t0 + 5 * 1000 * MS);
    q.handle_timeout(t0 + 10 * 1000 * MS);
    assert!(q.is_done());
}

/// What a chaos run does, step by step.
#[derive(Clone, Debug)]
enum Op {
    /// The next entry of a feed: data (with a point), or a new session.
    Push { feed: usize, session: bool },
    /// The bus takes up to `n` messages off the wire, storing each by id.
    Deliver(usize),
    /// The driver gets up to `n` answers, in send order.
    Answer(usize),
    /// The answer to the oldest send does not come in time.
    Timeout,
    /// The connection breaks: what is on the wire is lost, and so are the
    /// answers not yet read; the link is down.
    Break,
    /// The link is back (a new connection).
    Reconnect,
    /// Virtual time passes.
    Advance(u64),
    /// The store answers.
    Store(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, proptest::bool::weighted(0.1))
            .prop_map(|(feed, session)| Op::Push { feed, session }),
        4 => (1..6usize).prop_map(Op::Deliver),
        4 => (1..6usize).prop_map(Op::Answer),
        1 => Just(Op::Timeout),
        1 => Just(Op::Break),
        2 => Just(Op::Reconnect),
        2 => (0..300u64).prop_map(Op::Advance),
        2 => proptest::bool::weighted(0.8).prop_map(Op::Store),
    ]
}

/// JetStream as the pipeline sees it: one connection at a time, messages
/// stored in arrival order, a copy of a stored id dropped as a duplicate.
#[derive(Default)]
struct Bus {
    stored: Vec<u64>,
    ids: HashSet<u64>,
    wire: VecDeque<EntryId>,
    answers: HashMap<EntryId, Published>,
    connects: u64,
    up: bool,
}

struct Harness {
    p: Pipeline<u64, u64>,
    bus: Bus,
    now: Instant,
    /// The driver's awaited answers, in send order.
    awaiting: VecDeque<EntryId>,
    /// The point being stored.
    storing: Option<(usize, u64)>,
    /// Every point stored, per feed, in order.
    points: Vec<Vec<u64>>,
    /// Per feed, the points pushed (in order), and every message id pushed.
    pushed_points: Vec<Vec<u64>>,
    pushed: Vec<u64>,
    next: u64,
    max_in_flight: usize,
}

impl Harness {
    fn new(max_in_flight: usize) -> Self {
        let now = Instant::now();
        Self {
            // Eventual completion is the property here, not the deadline.
            p: Pipeline::new(
                PipelineConfig {
                    shutdown_timeout: Duration::from_secs(3600),
                    ..config(max_in_flight)
                },
                3,
                now,
            ),
            bus: Bus {
                connects: 1,
                up: true,
                ..Bus::default()
            },
            now,
            awaiting: VecDeque::new(),
            storing: None,
            points: vec![Vec::new(); 3],
            pushed_points: vec![Vec::new(); 3],
            pushed: Vec::new(),
            next: 0,
            max_in_flight,
        }
    }

    /// One turn of the driver's loop, before it waits.
    fn turn(&mut self) {
        self.p.on_link(self.bus.connects, self.bus.up);
        self.p.handle_timeout(self.now);
        if self.p.take_resend() {
            self.awaiting.clear();
        }
        while let Some((id, message)) = self.p.poll_send() {
            assert_eq!(*message, id.0, "an entry's own message");
            assert!(self.bus.up, "nothing is sent while the link is down");
            self.bus.wire.push_back(id);
            self.awaiting.push_back(id);
            self.p.on_sent(id);
        }
        if let Some((feed, point)) = self.p.poll_store(self.now) {
            assert!(self.storing.is_none(), "one store at a time");
            // Everything up to the point is stored on the bus.
            for id in self.pushed.iter().filter(|&&id| id <= point) {
                assert!(
                    self.bus.ids.contains(id),
                    "point {point} before {id} is stored"
                );
            }
            self.storing = Some((feed, point));
        }
        assert!(self.p.in_flight() <= self.max_in_flight);
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Push { feed, session } => {
                if self.p.has_room() {
                    let n = self.next;
                    self.next += 1;
                    if session {
                        self.p.push(feed, None, Some(n), Kind::Point);
                    } else {
                        self.p.push(feed, Some(n), Some(n), Kind::Data);
                        self.pushed.push(n);
                    }
                    self.pushed_points[feed].push(n);
                }
            }
            Op::Deliver(n) => {
                for _ in 0..n {
                    let Some(id) = self.bus.wire.pop_front() else {
                        break;
                    };
                    let answer = if self.bus.ids.insert(id.0) {
                        self.bus.stored.push(id.0);
                        Published::Stored
                    } else {
                        Published::Duplicate
                    };
                    self.bus.answers.insert(id, answer);
                }
            }
            Op::Answer(n) => {
                for _ in 0..n {
                    let Some(&id) = self.awaiting.front() else {
                        break;
                    };
                    let Some(answer) = self.bus.answers.remove(&id) else {
                        break;
                    };
                    self.awaiting.pop_front();
                    self.p.on_ack(id, Ok(answer), self.now);
                }
            }
            Op::Timeout => {
                if let Some(id) = self.awaiting.pop_front() {
                    self.bus.answers.remove(&id);
                    self.p.on_ack(id, Err(NotPublished), self.now);
                }
            }
            Op::Break => {
                self.bus.wire.clear();
                self.bus.answers.clear();
                self.bus.up = false;
            }
            Op::Reconnect => {
                if !self.bus.up {
                    self.bus.connects += 1;
                    self.bus.up = true;
                }
            }
            Op::Advance(ms) => self.now += Duration::from_millis(ms),
            Op::Store(ok) => {
                if let Some((feed, point)) = self.storing.take() {
                    if ok {
                        self.points[feed].push(point);
                    }
                    self.p.on_stored(ok, self.now);
                }
            }
        }
        self.turn();
    }

    /// A healthy bus and store until the closed run is done.
    fn finish(&mut self) {
        self.apply(&Op::Reconnect);
        self.p.close(self.now);
        for _ in 0..10_000 {
            if self.p.is_done() {
                return;
            }
            for op in [
                Op::Deliver(usize::MAX),
                Op::Answer(usize::MAX),
                Op::Store(true),
                Op::Advance(2_000),
            ] {
                self.apply(&op);
            }
            // An answer lost in the chaos: the driver's timeout.
            if self.bus.wire.is_empty()
                && self
                    .awaiting
                    .front()
                    .is_some_and(|id| !self.bus.answers.contains_key(id))
            {
                self.apply(&Op::Timeout);
            }
        }
        panic!("the run never ended: {} in flight", self.p.in_flight());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the bus loses, times out or answers late, and whatever
    /// the store refuses: the bus ends with every message exactly once, in
    /// the order pushed; each feed's stored points only move forward, each
    /// stored only once everything before it is on the bus, the last being
    /// the feed's last; the window is never exceeded; and nothing is sent
    /// while the link is down.
    #[test]
    fn every_message_once_in_order_and_points_only_after_what_precedes_them(
        ops in proptest::collection::vec(op(), 1..200),
        max_in_flight in 1..16usize,
    ) {
        let mut h = Harness::new(max_in_flight);
        h.turn();
        for op in &ops {
            h.apply(op);
        }
        h.finish();
        prop_assert_eq!(&h.bus.stored, &h.pushed);
        let stats = h.p.stats();
        // Each message's one answer: stored, or a duplicate when the
        // answer to the send that stored it was lost.
        prop_assert_eq!((stats.published + stats.duplicates) as usize, h.pushed.len());
        for feed in 0..3 {
            let stored = &h.points[feed];
            prop_assert!(stored.windows(2).all(|w| w[0] < w[1]), "feed {}: {:?}", feed, stored);
            prop_assert_eq!(stored.last(), h.pushed_points[feed].last());
        }
    }
}
