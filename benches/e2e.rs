//! End-to-end benchmark on loopback: the reference server's firehose, to a
//! client, to a handler that counts. Run it with `cargo xtask bench`.
//!
//! The server runs in a child process (this binary, re-run as `serve`), so
//! the CPU time (`CLOCK_PROCESS_CPUTIME_ID`) is the client's alone. Every
//! contender is measured in the same invocation, interleaved, five runs each.
//! Adding a contender is one entry in [`CONTENDERS`].
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use argus_async_std::AsyncStd;
use argus_benches::hand_parse;
use argus_benches::server::{ServerProcess, serve};
use argus_client::{QueuePolicy, Runtime, WebSocketClient};
use argus_core::wire::layout::Layout;
use argus_core::{ConnectionConfig, DataType, MarketData, SubscriptionConfig, Timestamp};
use argus_smol::Smol;
use argus_tokio::Tokio;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

/// What one client must do in a run: connect to `url`, subscribe to one
/// symbol's prices, and call `on_message(latency)` for each message until
/// `count` messages arrived.
struct Job {
    url: String,
    count: u64,
    /// Compute each message's latency from its server timestamp.
    latency: bool,
}

/// What a run measured.
#[derive(Default)]
struct Outcome {
    elapsed: Duration,
    cpu: Duration,
    latencies_us: Vec<f64>,
}

type RunFn = fn(Job) -> Pin<Box<dyn Future<Output = Outcome>>>;

/// The clients compared. The hand-written loop is the limit.
const CONTENDERS: &[(&str, RunFn)] = &[
    ("hand-written tokio-tungstenite + serde_json", |job| {
        Box::pin(hand_loop(job))
    }),
    ("argus-tokio", |job| Box::pin(argus_client::<Tokio>(job))),
    // The client's tasks run on async-std's executor; this invocation's
    // tokio runtime only waits for the outcome.
    ("argus-async-std", |job| {
        Box::pin(async_std::task::spawn(argus_client::<AsyncStd>(job)))
    }),
    // The same on smol's global executor.
    ("argus-smol", |job| {
        Box::pin(smol::spawn(argus_client::<Smol>(job)))
    }),
];

fn latency_of(ts: Timestamp) -> f64 {
    let now = Timestamp::from_system_time(SystemTime::now());
    (now.unix_nanos() - ts.unix_nanos()) as f64 / 1000.0
}

/// CPU time of this process so far (user and system, all threads), from
/// `CLOCK_PROCESS_CPUTIME_ID`: nanosecond resolution, unlike `/proc`'s
/// 10 ms ticks.
fn cpu_time() -> Duration {
    cpu_time::ProcessTime::now().as_duration()
}

/// The process's anonymous resident memory (heap, stacks), from `RssAnon`
/// in `/proc/self/status`. Not `VmRSS`: that also counts the binary's code
/// pages as they are first touched, which moves with code layout (a change
/// elsewhere in the binary once shifted it by 64 KiB for one client).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn hand_loop(job: Job) -> Outcome {
    let (mut ws, _) = tokio_tungstenite::connect_async(job.url.as_str())
        .await
        .expect("connect");
    ws.send(Message::text(
        r#"{"op":"subscribe","id":"bench","symbols":["AAPL"],"data_types":["price"]}"#,
    ))
    .await
    .expect("subscribe");
    let mut seen = 0u64;
    let mut outcome = Outcome::default();
    let mut handler = |seq: u64, latency: Option<f64>| {
        std::hint::black_box(seq);
        if let Some(l) = latency {
            outcome.latencies_us.push(l);
        }
    };
    let (mut start, mut cpu) = (Instant::now(), cpu_time());
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Some(tick) = hand_parse(&text) else {
            continue;
        };
        if tick.kind != "price" {
            continue;
        }
        if seen == 0 {
            (start, cpu) = (Instant::now(), cpu_time());
        }
        let latency = job.latency.then(|| {
            Timestamp::parse(&tick.timestamp)
                .map(latency_of)
                .unwrap_or(0.0)
        });
        handler(tick.seq, latency);
        seen += 1;
        if seen == job.count {
            break;
        }
    }
    let (elapsed, cpu) = (start.elapsed(), cpu_time() - cpu);
    let _ = ws.close(None).await;
    Outcome {
        elapsed,
        cpu,
        ..outcome
    }
}

/// An Argus client on runtime `R`, with its defaults (backpressure, one
/// synchronous handler).
async fn argus_client<R: Runtime>(job: Job) -> Outcome {
    let config = ConnectionConfig::builder(job.url.as_str())
        .max_message_size(1 << 20)
        .build()
        .expect("config");
    let client = WebSocketClient::<R>::builder(config)
        .queue_policy(QueuePolicy::Backpressure)
        .build()
        .expect("client");
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let marks = Arc::new(std::sync::Mutex::new((
        Instant::now(),
        cpu_time(),
        Vec::new(),
    )));
    {
        let (seen, done, marks, count, latency) = (
            seen.clone(),
            done.clone(),
            marks.clone(),
            job.count,
            job.latency,
        );
        client.add_message_handler(DataType::Price, move |data: &MarketData| {
            let n = seen.fetch_add(1, Ordering::Relaxed);
            if n == 0 {
                let mut m = marks.lock().unwrap();
                m.0 = Instant::now();
                m.1 = cpu_time();
            }
            if latency {
                marks.lock().unwrap().2.push(latency_of(data.timestamp()));
            }
            std::hint::black_box(data.seq());
            if n + 1 == count {
                done.notify_one();
            }
        });
    }
    client.connect().await.expect("connect");
    client
        .subscribe(
            "bench",
            SubscriptionConfig::new(["AAPL"], [DataType::Price]),
        )
        .await
        .expect("subscribe");
    done.notified().await;
    let end = (Instant::now(), cpu_time());
    client.disconnect().await;
    let mut m = marks.lock().unwrap();
    Outcome {
        elapsed: end.0 - m.0,
        cpu: end.1 - m.1,
        latencies_us: std::mem::take(&mut m.2),
    }
}

/// The clients' runtime: current-thread, or tokio's multi-thread default
/// with `ARGUS_BENCH_RUNTIME=multi`.
fn runtime() -> tokio::runtime::Runtime {
    let mut builder = if std::env::var("ARGUS_BENCH_RUNTIME").as_deref() == Ok("multi") {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("runtime")
}

fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The throughput of every contender on every corpus layout: one server
/// per layout, and rounds that run each contender on each layout in turn,
/// so that a change in the machine's load falls on all of them alike.
fn throughput(runs: usize, count: u64) {
    let servers: Vec<(Layout, ServerProcess)> = Layout::ALL
        .iter()
        .map(|&layout| {
            let args = ["--total", &count.to_string(), "--wire-style", layout.name()];
            (layout, ServerProcess::start(&args))
        })
        .collect();
    // [layout][contender] -> one figure a round.
    let mut rates = vec![vec![Vec::new(); CONTENDERS.len()]; servers.len()];
    let mut cpus = rates.clone();
    let rt = runtime();
    let fallbacks = argus_core::wire::fallback_decodes();
    for _ in 0..runs {
        for (l, (_, server)) in servers.iter().enumerate() {
            for (i, (_, run)) in CONTENDERS.iter().enumerate() {
                let job = Job {
                    url: server.url.clone(),
                    count,
                    latency: false,
                };
                let o = rt.block_on(run(job));
                rates[l][i].push(count as f64 / o.elapsed.as_secs_f64());
                cpus[l][i].push(o.cpu.as_secs_f64() / count as f64 * 1e6);
            }
        }
    }
    println!(
        "\n### Throughput per layout: firehose to a counting handler ({count} messages a run, {runs} rounds, interleaved)\n"
    );
    println!(
        "| layout | client | msg/s median | min – max | ratio to limit | CPU s per M msgs | CPU ratio |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (l, (layout, _)) in servers.iter().enumerate() {
        let limit = median_min_max(rates[l][0].clone()).0;
        let limit_cpu = median_min_max(cpus[l][0].clone()).0;
        for (i, (name, _)) in CONTENDERS.iter().enumerate() {
            let (med, min, max) = median_min_max(rates[l][i].clone());
            let (cpu, _, _) = median_min_max(cpus[l][i].clone());
            println!(
                "| {layout} | {name} | {:.2} M | {:.2} – {:.2} M | {:.2}× | {cpu:.3} | {:.2}× |",
                med / 1e6,
                min / 1e6,
                max / 1e6,
                med / limit,
                cpu / limit_cpu
            );
        }
    }
    println!(
        "\nData frames the Argus clients left to serde_json: {}",
        argus_core::wire::fallback_decodes() - fallbacks
    );
}

fn latency(runs: usize, rate: u64, seconds: u64) {
    let server = ServerProcess::start(&["--rate", &rate.to_string()]);
    let count = rate * seconds;
    let rt = runtime();
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); CONTENDERS.len()];
    let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); CONTENDERS.len()];
    for _ in 0..runs {
        for (i, (_, run)) in CONTENDERS.iter().enumerate() {
            let job = Job {
                url: server.url.clone(),
                count,
                latency: true,
            };
            let o = rt.block_on(run(job));
            // Leave out the first 10% (connection warm-up).
            all[i].extend(o.latencies_us.iter().skip(o.latencies_us.len() / 10));
            cpus[i].push(o.cpu.as_secs_f64() / o.elapsed.as_secs_f64() * 100.0);
        }
    }
    println!(
        "\n### Latency at {rate} msg/s, paced ({seconds} s a run, {runs} rounds, interleaved; server timestamp to handler)\n"
    );
    println!("| client | p50 µs | p99 µs | p99.9 µs | client CPU % of a core |");
    println!("|---|---:|---:|---:|---:|");
    for (i, (name, _)) in CONTENDERS.iter().enumerate() {
        let mut v = std::mem::take(&mut all[i]);
        v.sort_by(f64::total_cmp);
        let (cpu, _, _) = median_min_max(cpus[i].clone());
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {cpu:.1} |",
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            percentile(&v, 0.999)
        );
    }
}

/// `rss N`: RSS growth of N argus-tokio clients, each subscribed to 5 symbols,
/// created through the manager; prints KiB.
fn rss(args: &[String]) {
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1);
    let url = args.get(1).cloned().expect("url");
    let rt = runtime();
    rt.block_on(async {
        // One client first, kept: what every client shares (the runtime, the
        // TLS configuration, the allocator's arenas) is then counted out,
        // and no later client reuses memory it freed.
        let first =
            WebSocketClient::<Tokio>::new(ConnectionConfig::new(url.as_str())).expect("client");
        first.connect().await.expect("connect");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib();
        let manager = argus_tokio::WebSocketClientManager::new();
        for i in 0..n {
            let client = manager
                .create_client(format!("c{i}"), ConnectionConfig::new(url.as_str()))
                .expect("client");
            client.connect().await.expect("connect");
            if n > 1 {
                let symbols = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA"];
                client
                    .subscribe("s", SubscriptionConfig::new(symbols, [DataType::Price]))
                    .await
                    .expect("subscribe");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!("{}", rss_kib().saturating_sub(before));
        manager.close_all().await;
        first.disconnect().await;
    });
}

fn rss_table() {
    let server = ServerProcess::start(&["--ticks"]);
    let measure = |n: usize| -> u64 {
        let out = Command::new(std::env::current_exe().expect("own path"))
            .args(["rss", &n.to_string(), &server.url])
            .output()
            .expect("rss child");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the rss child failed: {out:?}"))
    };
    let one = measure(1);
    let thousand = measure(1000);
    println!("\n### Memory (anonymous RSS growth of the client process)\n");
    println!("| what | RSS |");
    println!("|---|---:|");
    println!("| one idle connected argus-tokio client | {one} KiB |");
    println!(
        "| 1,000 clients through the manager, 5 symbols each | {:.1} MiB ({:.0} KiB a client) |",
        thousand as f64 / 1024.0,
        thousand as f64 / 1000.0
    );
}

fn decode_only(args: &[String]) {
    let layout: Layout = args
        .first()
        .map_or("reference", String::as_str)
        .parse()
        .expect("layout");
    let serde = args.get(1).is_some_and(|a| a == "serde_json");
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let kind = args.get(3);
    let frames: Vec<String> = argus_benches::frames(layout)
        .into_iter()
        .filter(|(k, _)| kind.is_none_or(|want| want == k))
        .map(|(_, f)| f)
        .collect();
    for _ in 0..n {
        for frame in &frames {
            if serde {
                std::hint::black_box(hand_parse(std::hint::black_box(frame)));
            } else {
                std::hint::black_box(argus_core::wire::ServerMessage::decode(
                    std::hint::black_box(frame),
                ))
                .ok();
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => return serve(&args[1..]),
        Some("rss") => return rss(&args[1..]),
        // `decode LAYOUT argus|serde_json N [TYPE]`: decodes the layout's
        // corpus frames (of one type) N times each; run under callgrind for instruction
        // counts (subtract N = 0).
        Some("decode") => return decode_only(&args[1..]),
        // `once I N [LAYOUT]`: contender I alone, N messages; for profilers.
        Some("once") => {
            let index: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
            let count: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100_000);
            let layout = args.get(3).map_or("reference", String::as_str);
            let server =
                ServerProcess::start(&["--total", &count.to_string(), "--wire-style", layout]);
            let job = Job {
                url: server.url.clone(),
                count,
                latency: false,
            };
            let o = runtime().block_on((CONTENDERS[index].1)(job));
            println!(
                "{}: {:.0} msg/s",
                CONTENDERS[index].0,
                count as f64 / o.elapsed.as_secs_f64()
            );
            return;
        }
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (runs, count, seconds) = if quick {
        (2, 200_000, 1)
    } else {
        (5, 2_000_000, 3)
    };
    println!(
        "## End to end on loopback{}\n",
        if quick { " (quick)" } else { "" }
    );
    println!(
        "Machine: {} cores; server in a child process; clients on a {} tokio runtime.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if std::env::var("ARGUS_BENCH_RUNTIME").as_deref() == Ok("multi") {
            "multi-thread"
        } else {
            "current-thread"
        }
    );
    throughput(runs, count);
    for rate in [10_000, 50_000, 200_000] {
        latency(if quick { 1 } else { runs }, rate, seconds);
    }
    rss_table();
}
