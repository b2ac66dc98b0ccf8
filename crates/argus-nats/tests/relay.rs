//! The relay against a real `nats-server -js` and the reference server:
//! everything upstream reaches the stream exactly once, in order, across a
//! broker restart and a relay restart, and a broker that never answers
//! holds the relay to its window.

use std::collections::BTreeMap;

use argus_nats::{
    Relay, RelayConfig, RelayStats, Shard, plan_upstream, read_stream, start_upstream,
};
use argus_tests::live::{client_config, server_config, start_server, within};
use argus_tests::nats::NatsServer;
use argus_tokio::{DataType, Event, Tokio};
use async_nats::{ConnectOptions, jetstream};
use futures_util::StreamExt;
use serde_json::Value;

async fn jetstream(url: &str) -> jetstream::Context {
    let client = within("NATS", async_nats::connect(url))
        .await
        .expect("NATS connects");
    jetstream::new(client)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// What the stream holds: data seqs by session name, and the event lines.
#[derive(Debug, Default)]
struct Stored {
    seqs: BTreeMap<String, Vec<u64>>,
    gaps: Vec<Value>,
    resumed: Vec<Value>,
    data: usize,
}

impl Stored {
    async fn read(js: &jetstream::Context, stream: &str) -> Self {
        let count = js
            .get_stream(stream)
            .await
            .expect("the stream exists")
            .get_info()
            .await
            .expect("stream info")
            .state
            .messages;
        let mut messages = read_stream(js, stream, "argus.>", None)
            .await
            .expect("a consumer");
        let mut stored = Self::default();
        within("the stored messages", async {
            for _ in 0..count {
                let message = messages.next().await.expect("a message").expect("no error");
                let body: Value = serde_json::from_slice(&message.payload).expect("JSON");
                match message.subject.as_str() {
                    "argus.gap" => stored.gaps.push(body),
                    "argus.resumed" => stored.resumed.push(body),
                    subject => {
                        let id = message
                            .headers
                            .as_ref()
                            .and_then(|h| h.get("Nats-Msg-Id"))
                            .expect("every data message has an id")
                            .to_string();
                        let (session, seq) = id.split_once(':').expect("session:seq");
                        assert_eq!(body["seq"].as_u64(), Some(seq.parse().unwrap()));
                        assert_eq!(
                            subject,
                            format!(
                                "argus.{}.{}",
                                body["type"].as_str().unwrap(),
                                body["symbol"].as_str().unwrap()
                            )
                        );
                        stored
                            .seqs
                            .entry(session.to_owned())
                            .or_default()
                            .push(seq.parse().unwrap());
                        stored.data += 1;
                    }
                }
            }
        })
        .await;
        stored
    }

    /// Each session's seqs are 1, 2, 3, … with no hole and no repeat.
    fn assert_exactly_once_in_order(&self) {
        for (session, seqs) in &self.seqs {
            let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert!(
                *seqs == expected,
                "session {session}: {} seqs, not 1..=n in order: {:?}",
                seqs.len(),
                first_difference(seqs)
            );
        }
    }
}

fn first_difference(seqs: &[u64]) -> Option<(usize, u64)> {
    seqs.iter()
        .enumerate()
        .find(|(i, s)| **s != *i as u64 + 1)
        .map(|(i, s)| (i, *s))
}

/// Runs a relay of `symbols` (two a connection) until the first
/// connection's client has seen `count` data messages.
async fn relay_until(relay: &Relay, url: &str, symbols: &[&str], count: usize) -> RelayStats {
    relay_with(relay, url, symbols, count, || {}).await
}

/// [`relay_until`], calling `midway` once the first connection's client
/// has seen half of `count`.
async fn relay_with(
    relay: &Relay,
    url: &str,
    symbols: &[&str],
    count: usize,
    midway: impl FnOnce() + Send,
) -> RelayStats {
    let plan = plan_upstream(&strings(symbols), &strings(&["price"]), Shard::ALL, 2).unwrap();
    let upstream = within(
        "the upstream",
        start_upstream::<Tokio>(relay, &client_config(url), &plan, &[DataType::Price]),
    )
    .await
    .expect("the upstream starts");
    let mut watch = upstream.manager.get(&plan[0].key).unwrap().events();
    let enough = async move {
        let mut seen = 0;
        let mut midway = Some(midway);
        while let Some(event) = watch.next().await {
            seen += usize::from(matches!(event, Event::Data(_)));
            if seen == count / 2
                && let Some(f) = midway.take()
            {
                tokio::task::block_in_place(f);
            }
            if seen == count {
                return;
            }
        }
    };
    let stats = within("the relay", relay.run(upstream.feeds, enough)).await;
    upstream.manager.close_all().await;
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_seq_reaches_the_stream_exactly_once_in_order() {
    let nats = NatsServer::start();
    let server = start_server(server_config()).await;
    let js = jetstream(&nats.url()).await;
    let relay = Relay::connect(nats.url(), ConnectOptions::new(), RelayConfig::default())
        .await
        .unwrap();
    let stats = relay_until(
        &relay,
        &server.url(),
        &["AAPL", "MSFT", "GOOGL", "AMZN"],
        300,
    )
    .await;

    let stored = Stored::read(&js, "ARGUS").await;
    assert_eq!(stored.seqs.len(), 2, "one session per connection");
    stored.assert_exactly_once_in_order();
    assert!(stored.data >= 300, "{stored:?}");
    assert_eq!(stored.data as u64, stats.published);
    assert_eq!(stats.duplicates, 0);
    assert!(stored.gaps.is_empty() && stored.resumed.is_empty());
    assert!(stats.points_stored > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_and_repeats_nothing() {
    let mut nats = NatsServer::start();
    let server = start_server(server_config()).await;
    let js = jetstream(&nats.url()).await;
    let config = RelayConfig {
        ack_timeout: std::time::Duration::from_millis(500),
        ..RelayConfig::default()
    };
    let relay = Relay::connect(nats.url(), ConnectOptions::new(), config)
        .await
        .unwrap();
    let stats = relay_with(&relay, &server.url(), &["AAPL", "MSFT"], 1200, || {
        nats.restart()
    })
    .await;

    let stored = Stored::read(&js, "ARGUS").await;
    assert_eq!(stored.seqs.len(), 1);
    // Publishes the dying broker swallowed are sent again on a new
    // connection before anything newer, and the broken connection never
    // comes back with a queue of its own: each seq once, in order.
    stored.assert_exactly_once_in_order();
    assert!(stored.data >= 1200, "{stored:?}");
    // Every data message is acknowledged once at the end: as new, or as a
    // duplicate of what an attempt before the failure had stored.
    assert_eq!(
        stats.published + stats.duplicates,
        stored.data as u64,
        "{stats:?}"
    );
}

/// Sends `signal` (`-STOP`, `-CONT`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// The attack on `max_in_flight`: a broker that takes publishes and never
/// answers. The relay takes at most `max_in_flight` more events after the
/// answers stop, its client's event queue fills, and the client stops
/// reading its socket; without the relay's window, async-nats would take
/// thousands of publishes first (and keep every one until answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_never_answers_holds_the_relay_to_max_in_flight() {
    const MAX_IN_FLIGHT: usize = 8;
    let nats = NatsServer::start();
    let server = start_server(argus_server::ServerConfig {
        firehose: Some(argus_server::FirehoseConfig {
            rate: Some(20_000),
            total: None,
        }),
        stall_timeout: std::time::Duration::from_secs(120),
        ..argus_server::ServerConfig::ephemeral()
    })
    .await;
    let js = jetstream(&nats.url()).await;
    let config = RelayConfig {
        max_in_flight: MAX_IN_FLIGHT,
        // No retry during the test: the window stays full.
        ack_timeout: std::time::Duration::from_secs(60),
        ..RelayConfig::default()
    };
    let relay = Relay::connect(nats.url(), ConnectOptions::new(), config)
        .await
        .unwrap();
    let plan = plan_upstream(&strings(&["AAPL"]), &strings(&["price"]), Shard::ALL, 1).unwrap();
    // The default heartbeat (30 s): a client held back by the relay does not
    // read its pongs either, and must not give up on the server meanwhile.
    let upstream = start_upstream::<Tokio>(
        &relay,
        &argus_tokio::ConnectionConfig::new(server.url()),
        &plan,
        &[DataType::Price],
    )
    .await
    .expect("the upstream starts");
    let client = upstream.manager.get(&plan[0].key).unwrap();
    let read = || async { client.stats().await.connection.data_messages };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn({
        let relay = relay.clone();
        async move {
            relay
                .run(upstream.feeds, async {
                    stopped.await.ok();
                })
                .await
        }
    });
    let stream = js.get_stream("ARGUS").await.unwrap();
    within("the first messages in the stream", async {
        while stream.clone().get_info().await.unwrap().state.messages < 200 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;

    signal(nats.pid(), "-STOP");
    let at_stop = read().await;
    // The client's count stops moving (a counter with no event to wait
    // for: looked at every 50 ms, until two looks agree).
    let held = within("the client to stop reading", async {
        let mut last = at_stop;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let now = read().await;
            if now == last {
                return now;
            }
            last = now;
        }
    })
    .await;
    signal(nats.pid(), "-CONT");
    let taken = held - at_stop;
    eprintln!("after the broker stopped answering the client read {taken} more messages");
    // What was in flight at the stop (≤ MAX_IN_FLIGHT, some answered on the
    // way), MAX_IN_FLIGHT more, the client's event queue and what one read
    // decodes. Without the window: 5,985 in one run (async-nats's own bound).
    let bound = (2 * MAX_IN_FLIGHT + argus_tokio::DEFAULT_EVENT_CAPACITY + 512) as u64;
    assert!(
        taken <= bound,
        "{taken} messages read with no answer, over {bound}"
    );

    // Answered again, the relay goes on, and the stream is one history.
    let resumed_from = read().await;
    within("the client to read again", async {
        while read().await < resumed_from + 1_000 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    stop.send(()).unwrap();
    let stats = within("the relay to finish", run).await.unwrap();
    upstream.manager.close_all().await;
    let stored = Stored::read(&js, "ARGUS").await;
    stored.assert_exactly_once_in_order();
    assert_eq!(stats.retries, 0, "{stats:?}");
}
