//! `argus tail` run as a child process against the reference server started
//! in the test, its stdout checked line by line.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The stats fields of the original SDK, all on the `stats` line.
const SEED_STATS: [&str; 8] = argus_core::Stats::SEED_FIELDS;

fn tail_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["tail", "--url", url, "--symbols", "AAPL,MSFT,GOOGL"];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seqs_stay_contiguous_across_a_server_side_drop() {
    let server = start_server(&[]).await;
    let url = server.url();
    let mut tail = Running::spawn(argus(&tail_args(&url, &[])));

    tail.read_data(30).await;
    assert!(server.drop_connections() >= 1, "nothing to drop");
    tail.read_until("the resume", |l| l["event"] == "resumed")
        .await;
    let before = data_seqs(&tail.lines).len();
    tail.read_data(before + 30).await;
    let lines = tail.kill().await;

    assert_consecutive(&data_seqs(&lines), "across the drop");
    assert_eq!(events(&lines, "gap").count(), 0, "no gap: {lines:?}");
    let lost = position(&lines, |l| l["event"] == "disconnected").expect("a disconnected line");
    let reconnecting = position(&lines, |l| {
        l["event"] == "state" && l["state"] == "reconnecting"
    })
    .expect("a reconnecting state line");
    let resumed = position(&lines, |l| l["event"] == "resumed").unwrap();
    let connected_again = lines
        .iter()
        .enumerate()
        .skip(reconnecting)
        .find(|(_, l)| l["event"] == "state" && l["state"] == "connected")
        .map(|(i, _)| i)
        .expect("connected again");
    assert!(lost < reconnecting && reconnecting < connected_again && connected_again < resumed);
    assert_eq!(lines[lost]["kind"], "lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_seq_is_a_gap_line_in_its_place() {
    let server = start_server(&[]).await;
    let url = server.url();
    let mut tail = Running::spawn(argus(&tail_args(&url, &[])));

    tail.read_data(10).await;
    server.skip_seq();
    let gap = tail.read_until("the gap", |l| l["event"] == "gap").await;
    let at = tail.lines.len() - 1;
    tail.read_data(data_seqs(&tail.lines).len() + 1).await;
    let lines = tail.kill().await;

    let from = gap["from"].as_u64().unwrap();
    assert_eq!(gap["to"].as_u64(), Some(from), "one seq skipped: {gap}");
    assert_eq!(gap["cause"], "seq_jump");
    let before = data_seqs(&lines[..at]);
    let after = data_seqs(&lines[at + 1..]);
    assert_consecutive(&before, "before the gap");
    assert_eq!(before.last(), Some(&(from - 1)), "the line before the gap");
    assert_eq!(after.first(), Some(&(from + 1)), "the line after the gap");
    assert_eq!(events(&lines, "gap").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_exits_3_after_exactly_one_attempt() {
    let server = start_server(&["right-key-0000"]).await;
    let url = server.url();
    let key = "wrong-key-4f9a1c";
    // FAST allows 10 attempts: one is all the client may make.
    let out = run(argus(&tail_args(&url, &["-vvv", "--api-key", key]))).await;

    assert_eq!(out.code(), Some(3), "stderr: {}", out.stderr);
    let stats = server.stats();
    assert_eq!(stats.connection_attempts, 1, "{stats:?}");
    assert_eq!(stats.connections_unauthorized, 1, "{stats:?}");
    assert_eq!(stats.connections_accepted, 0, "{stats:?}");
    let failed: Vec<&Value> = out
        .lines
        .iter()
        .filter(|l| l["kind"] == "attempt_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", out.lines);
    assert_eq!(events(&out.lines, "reconnecting").count(), 0);
    assert!(out.lines.iter().any(|l| l["kind"] == "gave_up"));
    let last = out.lines.last().unwrap();
    assert_eq!(last["event"], "stats");
    assert_eq!(last["state"], "error");
    assert!(
        out.stderr.contains("refused the credentials"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains(key) && !out.stderr.contains(key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_exits_4_within_the_backoffs_bounds() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/ws");
    let attempts = 4u32;
    let (base, cap) = (Duration::from_millis(100), Duration::from_millis(300));
    let attempts_flag = attempts.to_string();
    let args = [
        "tail",
        "--url",
        &url,
        "--reconnect-delay",
        "100ms",
        "--max-backoff",
        "300ms",
        "--max-reconnect-attempts",
        &attempts_flag,
    ];
    let mut tail = Running::spawn(argus(&args));
    tail.read_until("the first line", |_| true).await;
    let first_line = Instant::now();
    let out = tail.finish().await;
    let elapsed = first_line.elapsed();

    assert_eq!(out.code(), Some(4), "stderr: {}", out.stderr);
    assert_eq!(
        out.lines
            .iter()
            .filter(|l| l["kind"] == "attempt_failed")
            .count(),
        attempts as usize
    );
    // Before attempt n+1 the client waits between half and all of
    // min(base * 2^(n-1), cap).
    let nominal: Vec<Duration> = (0..attempts - 1)
        .map(|n| (base * 2u32.pow(n)).min(cap))
        .collect();
    let waits: Vec<Duration> = events(&out.lines, "reconnecting")
        .map(|l| Duration::from_secs_f64(l["delay"].as_f64().unwrap()))
        .collect();
    assert_eq!(waits.len(), nominal.len(), "{:?}", out.lines);
    for (wait, nominal) in waits.iter().zip(&nominal) {
        assert!(
            *wait >= *nominal / 2 && wait <= nominal,
            "{wait:?} vs {nominal:?}"
        );
    }
    let low: Duration = waits.iter().sum();
    let high: Duration = nominal.iter().sum();
    assert!(
        elapsed >= low,
        "exited after {elapsed:?}, before the backoff's {low:?}"
    );
    assert!(
        elapsed <= high + Duration::from_secs(2),
        "exited after {elapsed:?}; the backoff allows {high:?}"
    );
    assert!(out.lines.iter().any(|l| l["kind"] == "gave_up"));
    assert_eq!(out.lines.last().unwrap()["event"], "stats");
    assert!(
        out.stderr.contains("gave up after 4 failed attempts"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_exits_0_with_stats_and_the_key_never_shows() {
    let key = "sk-live-7d2e9b41";
    let server = start_server(&[key]).await;
    let url = server.url();
    let mut command = argus(&tail_args(&url, &["-vvv"]));
    command.env("ARGUS_API_KEY", key);
    let mut tail = Running::spawn(command);
    tail.read_data(5).await;
    tail.interrupt();
    let out = tail.finish().await;

    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    let stats = out.lines.last().unwrap();
    assert_eq!(stats["event"], "stats", "{stats}");
    for field in SEED_STATS {
        assert!(stats.get(field).is_some(), "stats lack {field}: {stats}");
    }
    assert_eq!(stats["state"], "connected");
    assert_eq!(stats["subscriptions_count"], 1);
    assert_eq!(stats["feed"]["policy"], "backpressure", "{stats}");
    assert_eq!(stats["feed"]["missed_events"], 0, "{stats}");
    assert!(stats["messages_received"].as_u64().unwrap() >= 5);
    assert_consecutive(&data_seqs(&out.lines), "one connection");
    // -vvv logged plenty, and none of it is on stdout.
    assert!(out.stderr.contains("DEBUG"), "{}", out.stderr);
    assert!(
        out.lines
            .iter()
            .all(|l| l.get("type").is_some() || l.get("event").is_some())
    );
    assert!(!out.stdout.contains(key), "the key is on stdout");
    assert!(!out.stderr.contains(key), "the key is on stderr");
    assert_eq!(server.stats().connections_unauthorized, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_ends_the_run_with_exit_0() {
    let server = start_server(&[]).await;
    let url = server.url();
    let started = Instant::now();
    let out = run(argus(&tail_args(
        &url,
        &["--duration", "400ms", "--types", "price,volume,orderbook"],
    )))
    .await;

    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(out.lines.last().unwrap()["event"], "stats");
    let seqs = data_seqs(&out.lines);
    assert!(!seqs.is_empty(), "{:?}", out.lines);
    assert_consecutive(&seqs, "one connection");
    for line in out.lines.iter().filter(|l| l.get("type").is_some()) {
        for field in ["sub", "seq", "symbol", "timestamp"] {
            assert!(line.get(field).is_some(), "{line}");
        }
        assert_eq!(line["sub"], "cli");
        let body = match line["type"].as_str().unwrap() {
            "price" => "price",
            "volume" => "volume",
            "orderbook" => "bids",
            other => panic!("type {other}"),
        };
        assert!(line.get(body).is_some(), "{line}");
    }
    assert!(
        out.stderr.is_empty(),
        "nothing to say at the default level: {}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_exit_2_naming_the_field() {
    for (args, expected) in [
        (vec!["--heartbeat", "0s"], "heartbeat_interval"),
        (vec!["--timeout", "0s"], "--timeout"),
        (vec!["--url", "http://example.com/ws"], "url"),
        (vec!["--symbols", "AA PL"], "--symbols"),
        (vec!["--types", "trades"], "--types"),
        (vec!["--frequency", "2s"], "--frequency"),
        (vec!["--min-price", "10", "--max-price", "1"], "filters"),
        (vec!["--queue-capacity", "0"], "--queue-capacity"),
        (vec!["--api-key", "has space"], "api_key"),
    ] {
        let mut all = vec!["tail"];
        all.extend(&args);
        let out = run(argus(&all)).await;
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        assert!(out.lines.is_empty(), "{args:?}: {:?}", out.lines);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_symbol_exits_2() {
    let server = start_server(&[]).await;
    let url = server.url();
    let out = run(argus(&["tail", "--url", &url, "--symbols", "AAPL,NOPE"])).await;
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("unknown_symbol"), "{}", out.stderr);
    assert_eq!(out.lines.last().unwrap()["event"], "stats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_refuses_without_a_terminal() {
    let out = run(argus(&["watch", "--url", "ws://127.0.0.1:1/ws"])).await;
    assert_eq!(out.code(), Some(2));
    assert!(out.stderr.contains("terminal"), "{}", out.stderr);
    assert!(out.lines.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_then_tail() {
    let mut serve = Running::spawn(argus(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tick-interval",
        "5ms",
        "--symbols",
        "AAPL,MSFT",
    ]));
    // The URL is the first line; it is not JSON.
    let url = serve.next_raw_line().await.expect("serve prints its URL");
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with("/ws"),
        "{url}"
    );

    let mut tail = Running::spawn(argus(&["tail", "--url", &url, "--symbols", "MSFT"]));
    tail.read_data(3).await;
    tail.interrupt();
    let out = tail.finish().await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(data_seqs(&out.lines).len() >= 3);
    assert!(
        out.lines
            .iter()
            .filter(|l| l.get("type").is_some())
            .all(|l| l["symbol"] == "MSFT")
    );

    serve.interrupt();
    let served = serve.finish().await;
    assert_eq!(served.code(), Some(0), "{}", served.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_server_for_good_exits_4() {
    let server = start_server(&[]).await;
    let url = server.url();
    let mut tail = Running::spawn(argus(&[
        "tail",
        "--url",
        &url,
        "--symbols",
        "AAPL",
        "--heartbeat",
        "200ms",
        "--reconnect-delay",
        "20ms",
        "--max-backoff",
        "50ms",
        "--max-reconnect-attempts",
        "3",
    ]));
    tail.read_data(5).await;
    server.shutdown().await;
    let out = tail.finish().await;

    assert_eq!(out.code(), Some(4), "stderr: {}", out.stderr);
    assert_consecutive(&data_seqs(&out.lines), "before the shutdown");
    let closed = events(&out.lines, "disconnected")
        .next()
        .expect("a disconnected line");
    assert_eq!(closed["kind"], "server_closed");
    assert_eq!(closed["code"], 1001);
    let failed = out
        .lines
        .iter()
        .filter(|l| l["kind"] == "attempt_failed")
        .count();
    assert_eq!(failed, 3, "{:?}", out.lines);
    let n = out.lines.len();
    assert_eq!(out.lines[n - 2]["kind"], "gave_up");
    assert_eq!(out.lines[n - 1]["event"], "stats");
    assert_eq!(out.lines[n - 1]["state"], "error");
}
