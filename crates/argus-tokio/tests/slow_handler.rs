//! A handler slower than the feed, under each queue policy.

use std::time::Duration;

use argus_server::{FirehoseConfig, ServerConfig};
use argus_tests::live::*;
use argus_tokio::{
    ClientStats, DataType, MarketData, MessageKind, QueuePolicy, SubscriptionConfig,
    WebSocketClient,
};

const TOTAL: u64 = 300;
const CAPACITY: usize = 8;

/// Runs a firehose of `TOTAL` messages into a handler that takes 2 ms per
/// message, and returns the seqs it saw and the final stats.
async fn run(policy: QueuePolicy, symbols: &[&str]) -> (Vec<u64>, ClientStats) {
    let server = start_server(ServerConfig {
        firehose: Some(FirehoseConfig {
            rate: Some(2_000),
            total: Some(TOTAL),
        }),
        ..server_config()
    })
    .await;
    let config = argus_tokio::ConnectionConfig {
        heartbeat_interval: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        ..client_config(&server.url())
    };
    let client = WebSocketClient::builder(config)
        .queue_capacity(CAPACITY)
        .queue_policy(policy)
        .build()
        .unwrap();
    let seen = Recorder::default();
    let s = seen.clone();
    client.add_message_handler(MessageKind::All, move |data: MarketData| {
        let s = s.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            s.record(&data);
        }
    });
    within("connect", client.connect()).await.unwrap();
    within(
        "subscribe",
        client.subscribe(
            "hose",
            SubscriptionConfig::new(symbols.iter().copied(), [DataType::Price]),
        ),
    )
    .await
    .unwrap();

    // Wait until the core got everything and the handler emptied the queue.
    let stats = within("the feed to be handled", async {
        loop {
            let before = seen.len();
            let stats = client.stats().await;
            let q = &stats.queue;
            if stats.connection.data_messages == TOTAL
                && q.depth == 0
                && q.delivered == seen.len() as u64
            {
                return stats;
            }
            seen.wait_for(before + 1).await;
        }
    })
    .await;
    (seen.seqs(), stats)
}

fn check_counters(stats: &ClientStats) {
    let q = &stats.queue;
    assert_eq!(q.enqueued, TOTAL);
    assert_eq!(
        q.enqueued,
        q.delivered + q.dropped + q.conflated + q.depth as u64,
        "the counters add up: {q:?}"
    );
    assert!(q.max_depth <= CAPACITY, "{q:?}");
    assert_eq!(q.capacity, CAPACITY);
}

fn strictly_increasing(seqs: &[u64]) -> bool {
    seqs.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_loses_nothing() {
    let (seqs, stats) = run(QueuePolicy::Backpressure, &["AAPL", "MSFT"]).await;
    println!("backpressure: {:?}", stats.queue);
    check_counters(&stats);
    assert_eq!((stats.queue.dropped, stats.queue.conflated), (0, 0));
    assert_eq!(seqs, (1..=TOTAL).collect::<Vec<_>>());
    assert_eq!(stats.queue.max_depth, CAPACITY, "the queue did fill up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_drops_and_counts() {
    let (seqs, stats) = run(QueuePolicy::DropOldest, &["AAPL", "MSFT"]).await;
    println!("drop oldest: {:?}", stats.queue);
    check_counters(&stats);
    assert!(stats.queue.dropped > 0);
    assert_eq!(stats.queue.conflated, 0);
    assert_eq!(seqs.len() as u64, stats.queue.delivered);
    assert_eq!(seqs.len() as u64 + stats.queue.dropped, TOTAL);
    assert!(strictly_increasing(&seqs));
    // The newest messages are kept.
    assert_eq!(seqs.last(), Some(&TOTAL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflate_keeps_the_latest_per_symbol() {
    // Two (symbol, type) pairs, well under the capacity: only conflation.
    let (seqs, stats) = run(QueuePolicy::ConflateLatest, &["AAPL", "MSFT"]).await;
    println!("conflate: {:?}", stats.queue);
    check_counters(&stats);
    assert!(stats.queue.conflated > 0);
    assert_eq!(stats.queue.dropped, 0);
    assert_eq!(seqs.len() as u64 + stats.queue.conflated, TOTAL);
    assert!(strictly_increasing(&seqs));
    // The last message of each symbol (the firehose alternates them) got through.
    assert!(
        seqs.contains(&TOTAL) && seqs.contains(&(TOTAL - 1)),
        "{seqs:?}"
    );
}
