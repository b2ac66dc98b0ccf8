//! The feed against a live server with a dropping queue policy: the
//! handler's queue drops data, and the feed neither stalls nor reorders.

mod common;

use argus_cli::feed::{Feed, Item};
use argus_tokio::{
    ClientEvent, ConnectionConfig, DataType, QueuePolicy, SubscriptionConfig, WebSocketClient,
};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_data_neither_stalls_nor_reorders_the_feed() {
    let server = start_server(&[]).await;
    let capacity = 1;
    let client = WebSocketClient::builder(ConnectionConfig::new(server.url()))
        .queue_capacity(capacity)
        .queue_policy(QueuePolicy::DropOldest)
        .event_capacity(Feed::event_capacity(capacity))
        .build()
        .unwrap();
    let mut feed = Feed::attach(&client);
    within("connect", client.connect()).await.unwrap();
    within(
        "subscribe",
        client.subscribe(
            "cli",
            SubscriptionConfig::new(
                [
                    "AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "META", "NVDA", "JPM",
                ],
                [DataType::Price, DataType::Volume],
            ),
        ),
    )
    .await
    .unwrap();

    // A queue of one keeps one message of each burst the socket delivers.
    within("drops", async {
        while client.stats().await.queue.dropped < 20 {
            tokio::task::yield_now().await;
        }
    })
    .await;

    let mut seqs = Vec::new();
    let mut events = Vec::new();
    within("data after the drops", async {
        while seqs.len() < 50 {
            match feed.next().await.expect("the feed goes on") {
                Item::Data(data) => seqs.push(data.seq()),
                Item::Event(event) => events.push(event),
            }
        }
    })
    .await;
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs only increase: {seqs:?}"
    );
    assert!(
        seqs.windows(2).any(|w| w[1] > w[0] + 1),
        "the dropped seqs are missing: {seqs:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, ClientEvent::Lagged(_))),
        "the event stream kept up: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Subscribed(_))),
        "{events:?}"
    );
}
