//! `argus tail` reads the client's one ordered stream: under backpressure
//! every data message comes out once, in order, with each event at its
//! place; under a lossy policy every loss is said where it happened.

mod common;

use common::*;
use serde_json::Value;

/// Most lines a test reads before it gives up on what it waits for.
const MAX_LINES: usize = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_drops_and_a_skipped_seq_lose_nothing_and_place_the_gap() {
    let server = start_server(&[]).await;
    let url = server.url();
    // A queue of one: the stream is full at every event, so the client
    // reads its socket only as fast as stdout takes the lines.
    let mut args = vec![
        "tail",
        "--url",
        &url,
        "--symbols",
        "AAPL,MSFT,GOOGL",
        "--queue-capacity",
        "1",
    ];
    args.extend_from_slice(FAST);
    let mut tail = Running::spawn(argus(&args));

    tail.read_data(10).await;
    for drop in 1..=5 {
        assert!(
            server.drop_connections() >= 1,
            "drop {drop}: nothing to drop"
        );
        tail.read_until("the resume", |l| l["event"] == "resumed")
            .await;
        if drop == 3 {
            server.skip_seq();
            tail.read_until("the gap", |l| l["event"] == "gap").await;
        }
        let read = data_seqs(&tail.lines).len();
        tail.read_data(read + 10).await;
    }
    let lines = tail.kill().await;

    assert_eq!(events(&lines, "resumed").count(), 5, "{lines:?}");
    assert_eq!(events(&lines, "disconnected").count(), 5, "{lines:?}");
    assert!(
        !lines.iter().any(|l| l["kind"] == "lagged"),
        "a lossless stream never lags"
    );
    let gaps: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l["event"] == "gap")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(gaps.len(), 1, "one gap: {lines:?}");
    let (at, gap) = (gaps[0], &lines[gaps[0]]);
    let from = gap["from"].as_u64().unwrap();
    assert_eq!(gap["to"].as_u64(), Some(from), "one seq skipped: {gap}");
    assert_eq!(gap["cause"], "seq_jump");
    let before = data_seqs(&lines[..at]);
    let after = data_seqs(&lines[at + 1..]);
    assert_consecutive(&before, "before the gap");
    assert_eq!(before.last(), Some(&(from - 1)), "the line before the gap");
    let expected: Vec<u64> = (from + 1..).take(after.len()).collect();
    assert_eq!(after, expected, "after the gap, from {}", from + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_policy_says_what_it_dropped_where_it_dropped_it() {
    let server = start_server(&[]).await;
    let url = server.url();
    // A queue of one keeps one event of each burst the socket delivers.
    let mut args = vec![
        "tail",
        "--url",
        &url,
        "--symbols",
        "AAPL,MSFT,GOOGL,AMZN,TSLA,META,NVDA,JPM",
        "--types",
        "price,volume,orderbook",
        "--policy",
        "drop-oldest",
        "--queue-capacity",
        "1",
    ];
    args.extend_from_slice(FAST);
    let mut tail = Running::spawn(argus(&args));

    let mut lagged_lines = 0;
    let mut data_after = 0;
    while data_after < 50 {
        assert!(tail.lines.len() < MAX_LINES, "no loss in {MAX_LINES} lines");
        let line = tail.next_line().await.expect("tail goes on");
        if line["kind"] == "lagged" {
            lagged_lines += 1;
        } else if lagged_lines > 0 && line.get("type").is_some() {
            data_after += 1;
        }
    }
    tail.interrupt();
    let out = tail.finish().await;
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let lines = out.lines;

    let seqs = data_seqs(&lines);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs only increase: {seqs:?}"
    );
    // Between two data lines, the missed events the lagged lines report
    // are exactly the seqs missing there: no silent loss, no false report.
    let first_data = lines.iter().position(|l| l.get("type").is_some()).unwrap();
    let mut previous: Option<u64> = None;
    let mut missed = 0;
    for line in &lines[first_data..] {
        if line["kind"] == "lagged" {
            missed += line["missed_events"].as_u64().expect("missed_events");
        } else if let Some(seq) = line.get("seq").and_then(Value::as_u64) {
            if let Some(previous) = previous {
                assert_eq!(
                    missed,
                    seq - previous - 1,
                    "from seq {previous} to {seq}: {missed} reported missing"
                );
            }
            previous = Some(seq);
            missed = 0;
        }
    }
    assert!(
        seqs.windows(2).any(|w| w[1] > w[0] + 1),
        "some seqs were dropped: {seqs:?}"
    );
    let reported: u64 = lines
        .iter()
        .filter(|l| l["kind"] == "lagged")
        .map(|l| l["missed_events"].as_u64().unwrap())
        .sum();
    let stats = lines.last().unwrap();
    assert_eq!(stats["event"], "stats", "{stats}");
    assert_eq!(stats["feed"]["policy"], "drop_oldest", "{stats}");
    assert_eq!(stats["feed"]["missed_events"], reported, "{stats}");
}
