//! Chaos: while the feed runs, the server injects random faults drawn from a
//! seed (abrupt drops, half-open links, 1001 restarts, close codes, refusals
//! shorter than the retry budget). At the end, every seq of every session
//! reached the handler exactly once and in order; a session ends only where
//! the client reported a failed resume.
//!
//! `ARGUS_CHAOS_SECS` sets the duration (default 20), `ARGUS_CHAOS_SEED` the
//! seed (default: random, printed).

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argus_tests::live::*;
use argus_tokio::{
    ConnectionConfig, DataType, Event, Gap, GapCause, MessageKind, SubscriptionConfig,
    WebSocketClient,
};
use futures_util::StreamExt;
use tokio::time::Instant;

/// Prints the seed if the test fails, so the run can be repeated.
struct SeedOnFailure(u64);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "chaos failed with seed {0}; rerun with ARGUS_CHAOS_SEED={0}",
                self.0
            );
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_keeps_every_seq_exactly_once_in_order() {
    let secs = env_u64("ARGUS_CHAOS_SECS").unwrap_or(20);
    let seed = env_u64("ARGUS_CHAOS_SEED").unwrap_or_else(|| RandomState::new().hash_one(1u8));
    let _report = SeedOnFailure(seed);
    println!("chaos: {secs} s, seed {seed} (ARGUS_CHAOS_SEED={seed} repeats it)");
    let mut rng = fastrand_like::Rng::new(seed);

    let server = start_server(server_config()).await;
    // A retry budget (30 attempts, 20 ms doubling to 200 ms: over 2.5 s)
    // far longer than any refusal below (at most 500 ms).
    let config = ConnectionConfig {
        max_reconnect_attempts: 30,
        max_backoff: Duration::from_millis(200),
        ..client_config(&server.url())
    };
    let client = WebSocketClient::builder(config)
        .rng_seed(seed)
        .event_capacity(1 << 16)
        .build()
        .unwrap();
    let seen = Recorder::default();
    client.add_message_handler(MessageKind::All, seen.handler());

    // Collect every gap and every data seq the event stream sees, in the
    // background (the stream is lossless: it cannot lag).
    let gaps: Arc<Mutex<Vec<Gap>>> = Arc::default();
    let streamed: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut events = client.events();
    let collector = {
        let (gaps, streamed) = (gaps.clone(), streamed.clone());
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Event::Gap(gap) => gaps.lock().unwrap().push(gap),
                    Event::Data(data) => streamed.lock().unwrap().push(data.seq()),
                    _ => {}
                }
            }
        })
    };

    within("connect", client.connect()).await.unwrap();
    within(
        "subscribe",
        client.subscribe(
            "chaos",
            SubscriptionConfig::new(
                ["AAPL", "MSFT", "NVDA"],
                [DataType::Price, DataType::Volume],
            ),
        ),
    )
    .await
    .unwrap();
    seen.wait_for(10).await;

    let end = Instant::now() + Duration::from_secs(secs);
    let mut faults = [0u32; 6];
    while Instant::now() < end {
        // The schedule of faults (not a synchronisation).
        tokio::time::sleep(Duration::from_millis(rng.range(50, 400))).await;
        let fault = rng.range(0, 6) as usize;
        faults[fault] += 1;
        match fault {
            0 => {
                server.drop_connections();
            }
            1 => {
                server.go_silent();
            }
            2 => within("a restart", server.restart()).await.unwrap(),
            3 => {
                server.refuse_connections(Duration::from_millis(rng.range(50, 500)));
                server.drop_connections();
            }
            4 => {
                let code = [1001, 1008, 4000][rng.range(0, 3) as usize];
                server.disconnect_all(code, "chaos");
            }
            _ => {
                server.refuse_next_connections(rng.range(1, 4));
                server.drop_connections();
            }
        }
    }
    server.accept_connections();
    println!(
        "faults: {} drops, {} half-open, {} restarts, {} timed refusals, {} close codes, {} counted refusals",
        faults[0], faults[1], faults[2], faults[3], faults[4], faults[5]
    );

    // Settle: connected again, and data flowing.
    within("the final connection", client.wait_for_connection())
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: the client did not reconnect: {e}"));
    seen.wait_for_more(50).await;
    let stats = client.stats().await;
    drop(client);
    within("the event collector", collector).await.unwrap();

    // Split the seqs into sessions: a new session starts at seq 1.
    let seqs = seen.seqs();
    let mut sessions: Vec<&[u64]> = Vec::new();
    let mut start = 0;
    for i in 1..seqs.len() {
        if seqs[i] <= seqs[i - 1] {
            sessions.push(&seqs[start..i]);
            start = i;
        }
    }
    sessions.push(&seqs[start..]);
    let gaps = gaps.lock().unwrap().clone();
    println!(
        "{} messages in {} sessions; {} gaps; {:?}",
        seqs.len(),
        sessions.len(),
        gaps.len(),
        stats.connection
    );
    let streamed = streamed.lock().unwrap().clone();
    assert_eq!(
        streamed, seqs,
        "seed {seed}: the event stream and the handler saw different data"
    );
    for (n, session) in sessions.iter().enumerate() {
        assert_consecutive(session, 1, &format!("seed {seed}, session {n}"));
    }
    // Every gap is a failed resume, one per new session, starting right
    // after the old session's last seq.
    assert!(
        gaps.iter()
            .all(|g| g.cause == GapCause::ResumeFailed && g.to.is_none()),
        "seed {seed}: {gaps:?}"
    );
    // A session can fail to resume before it delivered anything (two
    // restarts in a row): its gap starts at 1 and it leaves no seqs behind.
    let breaks: Vec<_> = gaps.iter().filter(|g| g.from > 1).collect();
    assert_eq!(breaks.len(), sessions.len() - 1, "seed {seed}: {gaps:?}");
    for (gap, session) in breaks.iter().zip(&sessions) {
        assert_eq!(
            gap.from,
            session.last().unwrap() + 1,
            "seed {seed}: a session lost its tail"
        );
    }
    assert_eq!(stats.connection.gaps, gaps.len() as u64);
    assert!(stats.connection.reconnect_count > 0);
}

/// A small seeded generator (splitmix64), so the schedule repeats per seed.
mod fastrand_like {
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Self(seed)
        }

        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// A number in `lo..hi`.
        pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
            lo + self.next() % (hi - lo)
        }
    }
}
