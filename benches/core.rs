//! Micro-benchmarks of argus-core: decoding every frame of the layout corpus
//! next to the hand-written parse (ending with a per-layout table), the whole path of one data frame through the state machine, subscription
//! work at 10,000 subscriptions, and backoff/timeout computation.
#![allow(missing_docs, clippy::disallowed_methods)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argus_benches::{frames, hand_parse};
use argus_core::wire::ServerMessage;
use argus_core::wire::layout::Layout;
use argus_core::{
    Backoff, Client, ConnectionConfig, DataType, Event, Input, SubscriptionConfig, Transmit,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};

/// Decoding every corpus frame, argus-core next to serde_json into a
/// borrowed struct, the two measured back to back for each frame.
fn decode(c: &mut Criterion) {
    for layout in Layout::ALL {
        for (kind, frame) in frames(layout) {
            let mut g = c.benchmark_group(format!("decode/{layout}/{kind}"));
            g.throughput(Throughput::Bytes(frame.len() as u64));
            g.bench_function("argus", |b| {
                b.iter(|| ServerMessage::decode(black_box(&frame)).ok())
            });
            g.bench_function("serde_json", |b| b.iter(|| hand_parse(black_box(&frame))));
            g.finish();
        }
    }
    assert_eq!(
        argus_core::wire::fallback_decodes(),
        0,
        "a corpus frame took the serde_json fallback"
    );
}

const WELCOME: &str = r#"{"type":"welcome","connection_id":"c1","session":"s1","protocol":1,"server_time":"2026-11-24T09:49:56.000Z"}"#;

/// A client with `n` acknowledged subscriptions `s0..s{n-1}`, live.
fn live_client(n: usize, now: Instant) -> Client {
    let config = ConnectionConfig::builder("ws://bench/ws")
        .max_subscriptions(20_000)
        .build()
        .unwrap();
    let mut client = Client::new(config, 1).unwrap();
    client.connect(now);
    client.handle_input(now, Input::Opened);
    client.handle_input(now, Input::Text(WELCOME));
    for i in 0..n {
        client
            .subscribe(
                now,
                format!("s{i}"),
                &SubscriptionConfig::new([format!("S{i}")], [DataType::Price]),
            )
            .unwrap();
    }
    drain(&mut client);
    for i in 0..n {
        let ack = format!(
            r#"{{"type":"subscribed","id":"s{i}","symbols":["S{i}"],"data_types":["price"]}}"#
        );
        client.handle_input(now, Input::Text(&ack));
    }
    drain(&mut client);
    client
}

fn drain(client: &mut Client) -> usize {
    let mut n = 0;
    while client.poll_transmit().is_some() {
        n += 1;
    }
    while client.poll_event().is_some() {
        n += 1;
    }
    n
}

fn data_path(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group("core/data-frame");
    g.throughput(Throughput::Elements(1));
    let [(_, price), _, (_, book)] = frames(Layout::Reference);
    for (name, template) in [("price", price), ("orderbook", book)] {
        let mut client = live_client(1, now);
        let frame = template.replace(r#""sub":"main""#, r#""sub":"s0""#);
        let prefix_end = frame.find(r#""seq":"#).unwrap() + 6;
        let digits = frame[prefix_end..].find(',').unwrap();
        let (head, tail) = (&frame[..prefix_end], &frame[prefix_end + digits..]);
        let mut seq = 0u64;
        let mut buf = String::with_capacity(frame.len() + 20);
        g.bench_function(name, |b| {
            b.iter(|| {
                seq += 1;
                buf.clear();
                buf.push_str(head);
                buf.push_str(itoa(seq).as_str());
                buf.push_str(tail);
                client.handle_input(now, Input::Text(&buf));
                while let Some(event) = client.poll_event() {
                    if let Event::Data(d) = event {
                        black_box(d);
                    }
                }
            })
        });
    }
    g.finish();
}

fn itoa(n: u64) -> String {
    n.to_string()
}

fn subscriptions(c: &mut Criterion) {
    const N: usize = 10_000;
    let now = Instant::now();
    let configs: Vec<SubscriptionConfig> = (0..N)
        .map(|i| SubscriptionConfig::new([format!("S{i}")], [DataType::Price]))
        .collect();
    let mut g = c.benchmark_group("core/subscriptions-10k");
    g.sample_size(10);
    g.bench_function("subscribe", |b| {
        b.iter_batched(
            || live_client(0, now),
            |mut client| {
                for (i, cfg) in configs.iter().enumerate() {
                    client.subscribe(now, format!("s{i}"), cfg).unwrap();
                }
                drain(&mut client)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("unsubscribe", |b| {
        b.iter_batched(
            || live_client(N, now),
            |mut client| {
                for i in 0..N {
                    client.unsubscribe(now, &format!("s{i}")).unwrap();
                }
                drain(&mut client)
            },
            BatchSize::LargeInput,
        )
    });
    // After a lost link: `resumed` lists half the ids, so the reconcile keeps
    // half and resubscribes the other half.
    let ids: Vec<String> = (0..N).step_by(2).map(|i| format!("\"s{i}\"")).collect();
    let resumed = format!(
        r#"{{"type":"resumed","session":"s1","subscriptions":[{}],"replayed":0}}"#,
        ids.join(",")
    );
    g.bench_function("reconcile-after-resumed", |b| {
        b.iter_batched(
            || {
                let mut client = live_client(N, now);
                client.handle_input(
                    now,
                    Input::Closed {
                        code: Some(1001),
                        reason: "",
                    },
                );
                let next = client.poll_timeout().unwrap();
                client.handle_timeout(next);
                client.handle_input(next, Input::Opened);
                client.handle_input(next, Input::Text(WELCOME));
                drain(&mut client);
                (client, next)
            },
            |(mut client, next)| {
                client.handle_input(next, Input::Text(&resumed));
                let mut sent = 0;
                while let Some(t) = client.poll_transmit() {
                    sent += matches!(t, Transmit::Text(_)) as usize;
                }
                assert_eq!(sent, N / 2);
                drain(&mut client)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn timers(c: &mut Criterion) {
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut attempt = 0u32;
    c.bench_function("core/backoff-delay", |b| {
        b.iter(|| {
            attempt = attempt.wrapping_add(1) % 40;
            backoff.delay(black_box(attempt), 0.5)
        })
    });
    let now = Instant::now();
    let client = live_client(1, now);
    c.bench_function("core/poll-timeout", |b| {
        b.iter(|| black_box(&client).poll_timeout())
    });
    let mut client = live_client(1, now);
    let mut t = now;
    c.bench_function("core/heartbeat-turn", |b| {
        b.iter(|| {
            t += Duration::from_secs(30);
            client.handle_timeout(t);
            client.handle_input(t, Input::Pong(&[0; 8]));
            drain(&mut client)
        })
    });
}

criterion_group!(benches, decode, data_path, subscriptions, timers);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    decode_table();
}

/// Where criterion keeps its results: `$CRITERION_HOME`, else the target
/// directory's `criterion`, as criterion itself decides.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion")
}

/// A benchmark's typical time in ns (the slope estimate, else the mean),
/// from the run that just ended.
fn estimate_ns(group: &str, function: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group.replace('/', "_"))
        .join(function)
        .join("new/estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    ["slope", "mean"]
        .iter()
        .find_map(|k| json[k]["point_estimate"].as_f64())
}

/// The decode results as one table per layout: ns a message and the ratio
/// to serde_json.
fn decode_table() {
    let mut rows = Vec::new();
    for layout in Layout::ALL {
        for (kind, frame) in frames(layout) {
            let group = format!("decode/{layout}/{kind}");
            if let (Some(ours), Some(theirs)) = (
                estimate_ns(&group, "argus"),
                estimate_ns(&group, "serde_json"),
            ) {
                rows.push(format!(
                    "| {layout} | {kind} | {} | {ours:.1} | {theirs:.1} | {:.2}× |",
                    frame.len(),
                    ours / theirs
                ));
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    println!("\n### Decode per layout (ns a message; serde_json into a borrowed struct)\n");
    println!("| layout | type | bytes | argus-core | serde_json | ratio |");
    println!("|---|---|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    println!(
        "\nData frames left to serde_json during the run: {}",
        argus_core::wire::fallback_decodes()
    );
}
