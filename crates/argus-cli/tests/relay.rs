//! `argus relay` and `argus tail --from-nats` as processes, against a real
//! `nats-server -js` and the reference server: a relay killed with SIGKILL
//! and restarted loses and repeats nothing; after its session expired it
//! says so with one gap, at the exact place; two shards cover every symbol
//! once; a stalled JetStream slows the upstream reading and the relay's
//! memory stays bounded.

mod common;

use std::time::Duration;

use argus_nats::Shard;
use argus_server::{FirehoseConfig, Server, ServerConfig, ServerHandle};
use argus_tests::nats::NatsServer;
use common::{FAST, Running, argus, data_seqs, events, within};
use serde_json::Value;

async fn start_server(config: ServerConfig) -> ServerHandle {
    Server::start(ServerConfig {
        listen: ServerConfig::ephemeral().listen,
        ..config
    })
    .await
    .expect("the server starts")
}

fn ticking(every: Duration) -> ServerConfig {
    ServerConfig {
        tick_interval: every,
        ..ServerConfig::ephemeral()
    }
}

/// `argus relay` of `symbols` from `server` into `nats`, with `extra` flags.
async fn relay(server: &ServerHandle, nats: &NatsServer, symbols: &str, extra: &[&str]) -> Running {
    let url = server.url();
    let nats_url = nats.url();
    let mut args = vec![
        "relay",
        "--url",
        &url,
        "--symbols",
        symbols,
        "--nats",
        &nats_url,
    ];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    let mut running = Running::spawn(argus(&args));
    let started = running
        .read_until("the relaying line", |l| l["event"] == "relaying")
        .await;
    assert_eq!(started["stream"], "ARGUS");
    running
}

/// `argus tail --from-nats` of the whole stream.
fn reader(nats: &NatsServer) -> Running {
    Running::spawn(argus(&[
        "tail",
        "--from-nats",
        &nats.url(),
        "--stream",
        "ARGUS",
    ]))
}

/// Checks that `lines` (one session's stream as `tail` prints it) are one
/// ordered history: each data seq follows the last, a seq-jump gap names
/// exactly the missing range, and a lost session's gap starts right after
/// the last seq, with the new session's data from 1.
fn assert_one_history(lines: &[Value]) {
    let mut next = 1;
    for (i, line) in lines.iter().enumerate() {
        if line["event"] == "gap" {
            assert_eq!(line["from"].as_u64(), Some(next), "line {i}: {line}");
            next = match line["to"].as_u64() {
                Some(to) => to + 1,
                None => 1,
            };
        } else if let Some(seq) = line["seq"].as_u64() {
            assert_eq!(seq, next, "line {i}: {line}");
            next += 1;
        }
    }
}

/// Interrupts a relay and returns its `relay_stats` line.
async fn stop(relay: Running) -> Value {
    relay.interrupt();
    let finished = relay.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    events(&finished.lines, "relay_stats")
        .next()
        .expect("a relay_stats line")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_and_restarted_within_the_session_lifetime_loses_and_repeats_nothing() {
    let nats = NatsServer::start();
    let server = start_server(ticking(Duration::from_millis(5))).await;
    let first = relay(&server, &nats, "AAPL,MSFT", &[]).await;
    let mut consumer = reader(&nats);
    consumer.read_data(200).await;
    first.kill().await; // SIGKILL: no clean stop, the resume point may lag
    let second = relay(&server, &nats, "AAPL,MSFT", &[]).await;
    consumer.read_data(500).await;
    let stats = stop(second).await;
    let lines = consumer.kill().await;

    assert_one_history(&lines);
    assert_eq!(
        events(&lines, "gap").count(),
        0,
        "no gap within the session lifetime"
    );
    assert_eq!(
        events(&lines, "resumed").count(),
        1,
        "the second relay resumed the session"
    );
    // It resumed right after the last message the stream held: nothing was
    // published twice.
    assert_eq!(stats["duplicates"], 0, "{stats}");
    assert!(data_seqs(&lines).len() >= 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_restarted_after_its_session_expired_publishes_one_gap_at_the_exact_place() {
    let nats = NatsServer::start();
    let server = start_server(ServerConfig {
        session_ttl: Duration::from_millis(200),
        ..ticking(Duration::from_millis(5))
    })
    .await;
    let first = relay(&server, &nats, "AAPL,MSFT", &[]).await;
    let mut consumer = reader(&nats);
    consumer.read_data(200).await;
    first.kill().await;
    within(
        "the session to expire",
        server.wait_for_stats(|s| s.sessions == 0),
    )
    .await;
    let second = relay(&server, &nats, "AAPL,MSFT", &[]).await;
    let gap = consumer
        .read_until("the gap", |l| l["event"] == "gap")
        .await;
    let before = data_seqs(&consumer.lines).len();
    consumer.read_data(before + 100).await;
    stop(second).await;
    let lines = consumer.kill().await;

    assert_eq!(events(&lines, "gap").count(), 1, "one gap");
    assert_eq!(gap["cause"], "resume_failed");
    assert_eq!(gap["to"], Value::Null);
    assert_eq!(
        gap["from"].as_u64(),
        Some(before as u64 + 1),
        "right after the last stored seq"
    );
    assert_one_history(&lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_cover_every_symbol_once() {
    let symbols = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA"];
    let shards: [Shard; 2] = ["0/2".parse().unwrap(), "1/2".parse().unwrap()];
    for shard in shards {
        assert!(
            symbols.iter().any(|s| shard.contains(s)),
            "each shard has a symbol"
        );
    }
    let nats = NatsServer::start();
    let server = start_server(ticking(Duration::from_millis(5))).await;
    let list = symbols.join(",");
    let a = relay(&server, &nats, &list, &["--shard", "0/2"]).await;
    let b = relay(&server, &nats, &list, &["--shard", "1/2"]).await;
    let mut consumer = reader(&nats);
    consumer.read_data(600).await;
    let stats = [stop(a).await, stop(b).await];
    let lines = consumer.kill().await;

    for (shard, stats) in shards.iter().zip(&stats) {
        let mine: Vec<Value> = lines
            .iter()
            .filter(|l| l["symbol"].as_str().is_some_and(|s| shard.contains(s)))
            .cloned()
            .collect();
        assert!(!mine.is_empty(), "shard {shard}");
        // One session's seqs, 1, 2, 3, …: every message of the shard once.
        assert_one_history(&mine);
        let expected = symbols.iter().filter(|s| shard.contains(s)).count();
        assert_eq!(stats["symbols"], expected, "{stats}");
    }
    let seen: std::collections::BTreeSet<&str> =
        lines.iter().filter_map(|l| l["symbol"].as_str()).collect();
    assert_eq!(seen.len(), symbols.len(), "every symbol: {seen:?}");
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The bound on a relay's resident memory while JetStream does not answer
/// (it holds at most `--max-in-flight` publishes and the client's bounded
/// queues).
const STALLED_RSS_BOUND_KIB: u64 = 64 * 1024;

/// A paced firehose of 20,000 messages a second, which writes only as fast
/// as the client reads (and does not close a client that stops reading).
fn paced_firehose() -> ServerConfig {
    ServerConfig {
        firehose: Some(FirehoseConfig {
            rate: Some(20_000),
            total: None,
        }),
        stall_timeout: Duration::from_secs(120),
        ..ServerConfig::ephemeral()
    }
}

/// Waits until the relay has stopped reading its upstream socket on `port`:
/// the bytes pile up in the kernel's receive queue, and a full queue is not
/// drained at all between two looks 50 ms apart (at 20,000 messages a
/// second, a reading relay would). Returns the queue's size.
async fn stopped_reading(port: u16) -> u64 {
    within("the relay to stop reading upstream", async {
        let mut last = 0;
        loop {
            let backlog = upstream_backlog(port).unwrap_or(0);
            if backlog >= STOPPED_READING_BYTES && backlog == last {
                return backlog;
            }
            last = backlog;
            // Polls a kernel counter, which has no event to wait for.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_jetstream_slows_the_upstream_and_bounds_the_relays_memory() {
    let nats = NatsServer::start();
    let server = start_server(paced_firehose()).await;
    let port = server.local_addr().port();
    let symbols = "AAPL,MSFT,GOOGL,AMZN,TSLA,NVDA,META,JPM,V,JNJ";
    let relay = relay(&server, &nats, symbols, &["--max-in-flight", "256"]).await;
    let pid = relay.pid();
    let mut consumer = reader(&nats);
    consumer.read_data(500).await;
    let idle = rss_kib(pid).expect("the relay's RSS");
    let flowing = upstream_backlog(port).expect("the relay's upstream socket");

    // Freeze the broker: publishes go unacknowledged.
    signal(nats.pid(), "-STOP");
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(idle));
    let sampling = {
        let peak = peak.clone();
        let (done, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(5))
            {
                if let Some(rss) = rss_kib(pid) {
                    peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        (done, thread)
    };
    // The relay's bounded queues fill, and it stops reading upstream.
    let stalled = stopped_reading(port).await;
    signal(nats.pid(), "-CONT");
    drop(sampling.0);
    sampling.1.join().unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "relay RSS: {idle} KiB before, {peak} KiB peak while JetStream was stalled; \
         upstream receive queue {flowing} bytes flowing, {stalled} stalled"
    );
    assert!(
        peak <= STALLED_RSS_BOUND_KIB,
        "relay RSS {peak} KiB over {STALLED_RSS_BOUND_KIB} KiB"
    );

    // Afterwards it goes on, and the stream is one history.
    let before = data_seqs(&consumer.lines).len();
    consumer.read_data(before + 500).await;
    stop(relay).await;
    let lines = consumer.kill().await;
    assert_one_history(&lines);
}

/// Bytes waiting in the kernel to be read from a loopback connection to
/// `port`, summed over such connections (the relay's upstream socket).
fn upstream_backlog(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let wanted = format!(":{port:04X}");
    let mut found = None;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(remote), Some(queues), Some(state)) =
            (fields.get(2), fields.get(4), fields.get(3))
        else {
            continue;
        };
        if remote.ends_with(&wanted) && *state == "01" {
            let rx = queues
                .split(':')
                .nth(1)
                .and_then(|q| u64::from_str_radix(q, 16).ok())?;
            *found.get_or_insert(0) += rx;
        }
    }
    found
}

/// A receive queue this full, and not drained, means the relay stopped
/// reading (a reading relay keeps it near empty).
const STOPPED_READING_BYTES: u64 = 32 * 1024;

fn signal(pid: u32, which: &str) {
    let status = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_stops_the_relay_with_a_usage_error() {
    let nats = NatsServer::start();
    let server = start_server(ticking(Duration::from_millis(5))).await;
    let relay = relay(&server, &nats, "AAPL,NOPE", &[]).await;
    let finished = relay.finish().await;
    assert_eq!(finished.code(), Some(2), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("no such symbol: NOPE"),
        "{}",
        finished.stderr
    );
    assert!(events(&finished.lines, "relay_stats").next().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_reader_goes_on_where_it_stopped() {
    let nats = NatsServer::start();
    // Fast enough that messages are on their way to the first reader when
    // it is interrupted: it must handle those too, or they are held back
    // from the second (skipped 2-3 in 3 runs of 5 when it did not).
    let server = start_server(ticking(Duration::from_millis(1))).await;
    let relay = relay(&server, &nats, "AAPL,MSFT", &[]).await;
    let durable = |nats: &NatsServer| {
        Running::spawn(argus(&[
            "tail",
            "--from-nats",
            &nats.url(),
            "--durable",
            "desk-1",
        ]))
    };
    let mut first = durable(&nats);
    first.read_data(100).await;
    first.interrupt();
    let first = first.finish().await;
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    let printed = data_seqs(&first.lines);
    let mut second = durable(&nats);
    second.read_data(50).await;
    let again = data_seqs(&second.kill().await);
    stop(relay).await;
    assert_eq!(
        again[0],
        printed.last().unwrap() + 1,
        "right after the last line printed"
    );
    assert_one_history(&first.lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_credentials_never_reach_the_output() {
    let server = start_server(ticking(Duration::from_millis(5))).await;
    let url = server.url();
    // Nothing listens on port 1: the connection is refused at once.
    let finished = common::run(argus(&[
        "relay",
        "--url",
        &url,
        "--symbols",
        "AAPL",
        "--nats",
        "nats://desk:hunter2@127.0.0.1:1",
    ]))
    .await;
    assert_eq!(finished.code(), Some(1), "{}", finished.stderr);
    assert!(
        finished
            .stderr
            .contains("cannot connect to NATS at nats://***@127.0.0.1:1"),
        "{}",
        finished.stderr
    );
    assert!(!finished.stderr.contains("hunter2") && !finished.stdout.contains("hunter2"));
}

/// A broker that stops answering does not keep the relay from exiting:
/// told to stop, it waits `--shutdown-timeout` for what is due, then
/// exits 1, counting what was not acknowledged (the stored points precede
/// it, so the next run publishes it again). Without the timeout it waited
/// for the acknowledgements forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_whose_broker_stopped_answering_exits_after_its_shutdown_timeout() {
    let nats = NatsServer::start();
    let server = start_server(paced_firehose()).await;
    let port = server.local_addr().port();
    let relay = relay(
        &server,
        &nats,
        "AAPL,MSFT",
        &[
            "--max-in-flight",
            "16",
            "--ack-timeout",
            "60s",
            "--shutdown-timeout",
            "1s",
        ],
    )
    .await;
    let mut consumer = reader(&nats);
    consumer.read_data(200).await;
    consumer.kill().await;

    // The broker freezes; the relay's window fills with 16 publishes that
    // get no answer, and it stops reading upstream.
    signal(nats.pid(), "-STOP");
    stopped_reading(port).await;
    let stopped = std::time::Instant::now();
    relay.interrupt();
    let finished = relay.finish().await;
    let waited = stopped.elapsed();
    signal(nats.pid(), "-CONT");
    assert_eq!(finished.code(), Some(1), "{}", finished.stderr);
    let stats = events(&finished.lines, "relay_stats")
        .next()
        .expect("a relay_stats line")
        .clone();
    assert_eq!(stats["unacknowledged"], 16, "{stats}");
    assert!(
        finished.stderr.contains("--shutdown-timeout"),
        "{}",
        finished.stderr
    );
    // The timeout and the exit, with room for a loaded machine.
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}
