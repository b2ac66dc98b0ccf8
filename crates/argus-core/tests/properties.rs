//! Property tests: arbitrary interleavings of application commands, server
//! behaviour, faults and time steps, with the core's invariants checked after
//! every step.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use argus_core::{ConnectionConfig, DataType, Event, GapCause, SubscriptionConfig};
use proptest::prelude::*;
use support::Bed;

const MAX_SUBSCRIPTIONS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Connect,
    Disconnect,
    Subscribe { id: u8, symbol: u8 },
    Unsubscribe { id: u8 },
    Tick,
    ServerClose(Option<u16>),
    SkipSeq,
    ForgetSessions,
    Refuse(u32),
    HalfOpen,
    Garbage(String),
    Advance(u64),
    Step,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Connect),
        1 => Just(Op::Disconnect),
        4 => (0..6u8, 0..4u8).prop_map(|(id, symbol)| Op::Subscribe { id, symbol }),
        2 => (0..6u8).prop_map(|id| Op::Unsubscribe { id }),
        6 => Just(Op::Tick),
        2 => prop::sample::select(vec![None, Some(1000), Some(1001), Some(1008), Some(1009), Some(4000)])
            .prop_map(Op::ServerClose),
        1 => Just(Op::SkipSeq),
        1 => Just(Op::ForgetSessions),
        1 => (0..4u32).prop_map(Op::Refuse),
        1 => Just(Op::HalfOpen),
        1 => any::<String>().prop_map(Op::Garbage),
        3 => (0..40_000u64).prop_map(Op::Advance),
        3 => Just(Op::Step),
    ]
}

fn config() -> ConnectionConfig {
    ConnectionConfig {
        max_subscriptions: MAX_SUBSCRIPTIONS,
        max_reconnect_attempts: 4,
        ..Bed::config()
    }
}

/// Checks what the application saw so far.
#[derive(Default)]
struct Watcher {
    seen: usize,
    last_seq: u64,
    gaps: usize,
}

impl Watcher {
    fn check(&mut self, bed: &Bed) {
        let cap = bed.client.config().max_backoff;
        for event in &bed.events[self.seen..] {
            match event {
                Event::Data(d) => {
                    assert!(
                        d.seq() > self.last_seq,
                        "seq {} after {}",
                        d.seq(),
                        self.last_seq
                    );
                    self.last_seq = d.seq();
                }
                Event::Gap(g) => {
                    self.gaps += 1;
                    if g.cause == GapCause::ResumeFailed {
                        self.last_seq = 0; // a new session numbers from 1
                    }
                }
                Event::StateChanged {
                    to: argus_core::ConnectionState::Disconnected,
                    ..
                } => {
                    self.last_seq = 0; // the user ended the session
                }
                Event::Reconnecting { delay, .. } => {
                    assert!(*delay <= cap, "backoff {delay:?} above the cap {cap:?}");
                }
                _ => {}
            }
        }
        self.seen = bed.events.len();
        assert!(bed.client.subscriptions().count() <= MAX_SUBSCRIPTIONS);
        // Each subscription is sent at most once per connection, unless it was
        // unsubscribed in between.
        let mut live: BTreeMap<&str, bool> = BTreeMap::new();
        for line in &bed.server.conn_log {
            match line.split_once(' ') {
                Some(("sub", id)) => {
                    assert!(
                        !live.get(id).copied().unwrap_or(false),
                        "{id} sent twice: {:?}",
                        bed.server.conn_log
                    );
                    live.insert(id, true);
                }
                Some(("unsub" | "rejected", id)) => {
                    live.insert(id, false);
                }
                _ => {}
            }
        }
    }
}

fn run(ops: &[Op], seed: u64, buffer_cap: usize) -> (Vec<String>, Watcher) {
    let mut bed = Bed::new(config(), seed);
    bed.server.buffer_cap = buffer_cap;
    let mut watcher = Watcher::default();
    let mut price = 100.0;
    for op in ops {
        match op {
            Op::Connect => bed.client.connect(bed.now),
            Op::Disconnect => bed.client.disconnect(bed.now),
            Op::Subscribe { id, symbol } => {
                let symbol = ["AAPL", "MSFT", "IBM", "BADX"][usize::from(*symbol)];
                let _ = bed.client.subscribe(
                    bed.now,
                    format!("s{id}"),
                    &SubscriptionConfig::new([symbol], [DataType::Price]),
                );
            }
            Op::Unsubscribe { id } => {
                let _ = bed.client.unsubscribe(bed.now, &format!("s{id}"));
            }
            Op::Tick => {
                price += 0.25;
                bed.server.tick(price);
            }
            Op::ServerClose(code) => {
                if bed.server.conn.is_some() {
                    bed.server_close(*code);
                }
            }
            Op::SkipSeq => bed.server.skip_next = true,
            Op::ForgetSessions => {
                let live = bed.server.conn.as_ref().map(|(token, _)| token.clone());
                bed.server
                    .sessions
                    .retain(|token, _| Some(token) == live.as_ref());
            }
            Op::Refuse(n) => bed.server.refuse = *n,
            Op::HalfOpen => bed.server.half_open = true,
            Op::Garbage(text) => bed.feed(text),
            Op::Advance(ms) => bed.advance(Duration::from_millis(*ms)),
            Op::Step => {
                bed.step();
            }
        }
        bed.settle();
        watcher.check(&bed);
    }
    (bed.transcript, watcher)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_any_interleaving(ops in prop::collection::vec(op(), 1..80), seed in any::<u64>()) {
        run(&ops, seed, 10_000);
    }

    #[test]
    fn a_small_replay_buffer_only_costs_reported_gaps(ops in prop::collection::vec(op(), 1..80), seed in any::<u64>()) {
        run(&ops, seed, 3);
    }

    #[test]
    fn without_faults_nothing_is_lost(ops in prop::collection::vec(op(), 1..80), seed in any::<u64>()) {
        let ops: Vec<Op> = ops
            .into_iter()
            .filter(|op| !matches!(op, Op::SkipSeq | Op::ForgetSessions))
            .collect();
        let (_, watcher) = run(&ops, seed, 10_000);
        prop_assert_eq!(watcher.gaps, 0);
    }

    #[test]
    fn the_same_seed_gives_the_same_transcript(ops in prop::collection::vec(op(), 1..60), seed in any::<u64>()) {
        let (a, _) = run(&ops, seed, 10_000);
        let (b, _) = run(&ops, seed, 10_000);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn the_strategy_itself_is_deterministic() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let draw = || {
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
        let mut runner = TestRunner::new_with_rng(Config::default(), rng);
        let tree = prop::collection::vec(op(), 20)
            .new_tree(&mut runner)
            .unwrap();
        format!("{:?}", tree.current())
    };
    assert_eq!(draw(), draw());
}

/// Seqs from anywhere in the range, the top of it most of all.
fn any_seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => 0..64u64,
        3 => (0..64u64).prop_map(|d| u64::MAX - d),
        1 => any::<u64>(),
        1 => (0..64u64).prop_map(|d| (1 << 63) + d),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever seqs a server sends, near `u64::MAX` included: nothing
    /// wraps or panics, delivered seqs increase within a session, a jump
    /// past `max_seq_jump` is never delivered, and a later good message is
    /// never silenced by an earlier bad one.
    #[test]
    fn seqs_anywhere_in_the_range_never_wrap_and_never_silence_the_feed(
        seqs in prop::collection::vec(any_seq(), 1..40),
        bound in prop_oneof![Just(1u64), Just(1_000_000u64), Just(u64::MAX)],
    ) {
        let config = ConnectionConfig { max_seq_jump: bound, ..Bed::config() };
        let mut bed = Bed::new(config, 5);
        bed.client.connect(bed.now);
        bed.client
            .subscribe(bed.now, "main", &SubscriptionConfig::new(["AAPL"], [DataType::Price]))
            .unwrap();
        bed.settle();
        for seq in seqs {
            let frame = format!(
                r#"{{"type":"price","sub":"main","seq":{seq},"symbol":"AAPL","price":1.5,"timestamp":"2026-11-24T09:49:56.123Z"}}"#
            );
            bed.feed(&frame);
            while bed.client.state() == argus_core::ConnectionState::Reconnecting {
                prop_assert!(bed.step());
            }
            // A message one past the last is always delivered.
            if let Some(last) = bed.client.last_seq().filter(|&l| l < u64::MAX) {
                let before = bed.client.stats(bed.now).data_messages;
                bed.feed(&frame.replace(&format!(r#""seq":{seq}"#), &format!(r#""seq":{}"#, last + 1)));
                prop_assert_eq!(bed.client.stats(bed.now).data_messages, before + 1);
            }
        }
        let mut last = 0u64;
        for event in &bed.events {
            match event {
                Event::Data(d) => {
                    prop_assert!(d.seq() > last, "seq {} after {}", d.seq(), last);
                    prop_assert!(d.seq() - last - 1 <= bound, "a jump past the bound was delivered");
                    last = d.seq();
                }
                Event::Gap(g) => {
                    if let Some(to) = g.to {
                        prop_assert!(g.from <= to);
                    }
                    if g.cause == GapCause::SeqOutOfRange {
                        last = 0; // a new session starts at 1
                    }
                }
                _ => {}
            }
        }
    }
}
