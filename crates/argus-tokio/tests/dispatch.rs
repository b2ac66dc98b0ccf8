//! How market data reaches the handlers: a synchronous handler is called by
//! the connection task itself under backpressure; an async handler runs
//! behind the handler queue. An async handler joining and leaving mid-feed
//! loses and reorders nothing for either.

use argus_server::{FirehoseConfig, ServerConfig};
use argus_tests::live::*;
use argus_tokio::Tokio;
use argus_tokio::{DataType, MarketData, MessageKind, SubscriptionConfig};

const TOTAL: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_handler_joining_and_leaving_disturbs_no_handler() {
    let server = start_server(ServerConfig {
        firehose: Some(FirehoseConfig {
            rate: Some(20_000),
            total: Some(TOTAL),
        }),
        ..server_config()
    })
    .await;
    let client = client::<Tokio>(&server.url());
    let sync_seen = Recorder::default();
    client.add_message_handler(MessageKind::All, sync_seen.handler());
    within("connect", client.connect()).await.unwrap();
    within(
        "subscribe",
        client.subscribe("hose", SubscriptionConfig::new(["AAPL"], [DataType::Price])),
    )
    .await
    .unwrap();

    // Only synchronous handlers: nothing is ever queued.
    sync_seen.wait_for(500).await;
    let direct = client.stats().await.queue;
    assert_eq!(direct.max_depth, 0, "{direct:?}");
    assert!(direct.inline >= 500, "{direct:?}");

    // A slow async handler joins: the feed goes through the queue from
    // here, and the queue fills (1 ms a message against 20 a ms).
    let async_seen = Recorder::default();
    let a = async_seen.clone();
    let id = client.add_message_handler(MessageKind::Price, move |data: MarketData| {
        let a = a.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            a.record(&data);
        }
    });
    async_seen.wait_for(20).await;
    assert!(client.remove_message_handler(id));
    let after_removal = async_seen.len();
    // The synchronous handler was called inline all along.
    sync_seen.wait_for(TOTAL as usize).await;
    assert_consecutive(&sync_seen.seqs(), 1, "the synchronous handler");
    assert_eq!(sync_seen.len() as u64, TOTAL);
    let async_seqs = async_seen.seqs();
    // A call under way when it was removed may finish; no call starts after.
    assert!(
        async_seqs.len() <= after_removal + 1,
        "called after its removal: {} then {}",
        after_removal,
        async_seqs.len()
    );
    assert_consecutive(&async_seqs, async_seqs[0], "the async handler");

    let stats = client.stats().await;
    let q = &stats.queue;
    assert_eq!(q.inline, TOTAL, "{q:?}");
    assert!(q.enqueued as usize >= async_seqs.len(), "{q:?}");
    assert_eq!((q.enqueued, q.depth), (q.delivered, 0), "{q:?}");
    assert_eq!(stats.connection.data_messages, TOTAL);
    assert_eq!(stats.connection.gaps, 0);
}
