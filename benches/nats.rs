//! The NATS relay benchmark: the reference server's firehose, through
//! `argus_nats::Relay`, into a real `nats-server -js`. Run it with
//! `cargo xtask bench` (or `argus-nats-bench [--quick]`).
//!
//! One invocation measures, against one `nats-server` it starts itself:
//!
//! 1. **Throughput**: the relay (an argus-tokio client on the unpaced
//!    firehose, publishing each data message) against a bare async-nats
//!    publish loop of the same payloads (read from the same firehose and
//!    encoded before the clock starts), both with the same number of
//!    acknowledgements in flight, into a fresh stream of the relay's
//!    configuration each run. Rounds interleave the two.
//! 2. **Latency** at 10,000 msg/s, paced one message every 100 µs: the
//!    server's timestamp in each message to an ordered JetStream consumer
//!    of the stream receiving it.
//! 3. **Memory**: the relay process's RSS at full speed, and while
//!    `nats-server` is stopped (SIGSTOP, so publish acks stall) and after it
//!    continues (SIGCONT).
//!
//! Every contender runs in a child process (this binary, re-run as `relay`
//! or `loop`) on the multi-thread tokio runtime `argus relay` uses, so its
//! CPU time and RSS are its own; the reference server runs in another
//! (`serve`).
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use argus_benches::server::{ServerProcess, serve};
use argus_client::WebSocketClient;
use argus_core::{ConnectionConfig, DataType, SubscriptionConfig, Timestamp};
use argus_nats::{
    Relay, RelayConfig, SessionName, Shard, data_id, data_subject, plan_upstream, read_stream,
    start_upstream,
};
use argus_tests::nats::NatsServer;
use argus_tokio::{Event, Tokio};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use bytes::Bytes;
use futures_util::StreamExt;

/// The symbols of the one upstream connection (the bench server's limit
/// is 10 a subscription).
const SYMBOLS: [&str; 10] = [
    "AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "META", "NVDA", "JPM", "V", "NFLX",
];

/// The stream and the resume-point bucket the relay uses (its defaults);
/// both are deleted after each run.
const STREAM: &str = argus_nats::DEFAULT_STREAM;

fn config() -> RelayConfig {
    RelayConfig::default()
}

/// The stream as `Relay::connect` creates it: the loop publishes into the
/// same configuration.
fn stream_config() -> stream::Config {
    let config = config();
    stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        storage: stream::StorageType::File,
        duplicate_window: config.duplicate_window,
        ..Default::default()
    }
}

/// The contenders' runtime: tokio's multi-thread default, as `argus relay`,
/// or current-thread with `ARGUS_BENCH_RUNTIME=current`.
fn runtime() -> tokio::runtime::Runtime {
    let mut builder = if std::env::var("ARGUS_BENCH_RUNTIME").as_deref() == Ok("current") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build().expect("runtime")
}

async fn jetstream(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.expect("NATS connects"))
}

fn cpu_time() -> Duration {
    cpu_time::ProcessTime::now().as_duration()
}

fn ws_config(url: &str) -> ConnectionConfig {
    ConnectionConfig::builder(url)
        .max_message_size(1 << 20)
        .build()
        .expect("config")
}

/// What a contender child prints last: `key=value` pairs.
fn report(pairs: &[(&str, String)]) {
    let line: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{}", line.join(" "));
    std::io::stdout().flush().expect("flush");
}

/// Resolves when stdin closes (the parent's signal to stop).
async fn stdin_closed() {
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()))
        .await
        .ok();
}

/// `relay NATS_URL WS_URL COUNT`: the relay of the one connection to
/// `SYMBOLS`' prices, with its default settings. It prints `ready` once
/// it relays, and its figures at the end: when the stream holds `COUNT`
/// messages, or, with `COUNT` 0, when stdin closes.
fn relay_child(args: &[String]) {
    let (nats, ws) = (&args[0], &args[1]);
    let count: u64 = args[2].parse().expect("count");
    runtime().block_on(async {
        let js = jetstream(nats).await;
        let relay = Relay::connect(nats.as_str(), async_nats::ConnectOptions::new(), config())
            .await
            .expect("the relay opens");
        let symbols: Vec<String> = SYMBOLS.iter().map(|s| (*s).to_owned()).collect();
        let plan = plan_upstream(&symbols, &["price".to_owned()], Shard::ALL, 1000).expect("plan");
        let upstream = start_upstream::<Tokio>(&relay, &ws_config(ws), &plan, &[DataType::Price])
            .await
            .expect("the upstream starts");
        println!("ready");
        std::io::stdout().flush().expect("flush");
        let (start, cpu) = (Instant::now(), cpu_time());
        let client = upstream.manager.get(&plan[0].key).expect("the client");
        let shutdown = async {
            if count == 0 {
                return stdin_closed().await;
            }
            // Until the client has read every message, its own counter
            // (a local question); then the stream's count, which asks the
            // broker and so is left to the last few milliseconds.
            while client.stats().await.connection.data_messages < count {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let stream = js.get_stream(STREAM).await.expect("the stream");
            loop {
                let info = stream.get_info().await.expect("stream info");
                if info.state.messages >= count {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        let stats = relay.run(upstream.feeds, shutdown).await;
        let (elapsed, cpu) = (start.elapsed(), cpu_time() - cpu);
        upstream.manager.close_all().await;
        report(&[
            ("published", stats.published.to_string()),
            ("duplicates", stats.duplicates.to_string()),
            ("retries", stats.retries.to_string()),
            ("points", stats.points_stored.to_string()),
            ("elapsed", elapsed.as_secs_f64().to_string()),
            ("cpu", cpu.as_secs_f64().to_string()),
        ]);
    });
}

/// `loop NATS_URL WS_URL COUNT IN_FLIGHT`: the limit. Reads `COUNT` data
/// messages from the firehose and encodes them as the relay does (subject,
/// JSON body), then, on the clock, publishes them in a bare loop: a
/// `Nats-Msg-Id` header each, `IN_FLIGHT` acknowledgements awaited in
/// order, pipelined.
fn loop_child(args: &[String]) {
    let (nats, ws) = (&args[0], &args[1]);
    let count: usize = args[2].parse().expect("count");
    let in_flight: usize = args[3].parse().expect("in flight");
    runtime().block_on(async {
        let js = jetstream(nats).await;
        js.get_or_create_stream(stream_config())
            .await
            .expect("the stream");
        // The same payloads as the relay's: the firehose's messages, as the
        // relay encodes them.
        let client = WebSocketClient::<Tokio>::new(ws_config(ws)).expect("client");
        let mut events = client.events();
        client.connect().await.expect("connect");
        client
            .subscribe(
                argus_nats::SUBSCRIPTION_ID,
                SubscriptionConfig::new(SYMBOLS, [DataType::Price]),
            )
            .await
            .expect("subscribe");
        let prefix = config().subject_prefix;
        let mut messages = Vec::with_capacity(count);
        while messages.len() < count {
            match events.next().await.expect("events") {
                Event::Data(data) => messages.push((
                    data_subject(&prefix, &data),
                    data.seq(),
                    Bytes::from(serde_json::to_vec(&data).expect("JSON")),
                )),
                _ => continue,
            }
        }
        client.disconnect().await;
        let body = messages.iter().map(|(_, _, p)| p.len()).sum::<usize>() as f64 / count as f64;
        println!("encoded");
        std::io::stdout().flush().expect("flush");
        let session = SessionName::of(&argus_core::SessionToken::new("bench-loop"));

        let (start, cpu) = (Instant::now(), cpu_time());
        let mut acks = VecDeque::with_capacity(in_flight);
        for (subject, seq, payload) in messages {
            if acks.len() == in_flight {
                let ack: jetstream::context::PublishAckFuture =
                    acks.pop_front().expect("a full queue");
                ack.await.expect("acknowledged");
            }
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                data_id(&session, seq).as_str(),
            );
            let ack = js
                .send_publish(
                    subject,
                    PublishMessage::build().payload(payload).headers(headers),
                )
                .await
                .expect("sent");
            acks.push_back(ack);
        }
        for ack in acks {
            ack.await.expect("acknowledged");
        }
        let (elapsed, cpu) = (start.elapsed(), cpu_time() - cpu);
        report(&[
            ("published", count.to_string()),
            ("body", body.to_string()),
            ("elapsed", elapsed.as_secs_f64().to_string()),
            ("cpu", cpu.as_secs_f64().to_string()),
        ]);
    });
}

/// A contender in a child process.
struct Contender {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Contender {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a contender");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            child,
            stdin,
            lines,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) {
        let line = self.lines.next().expect("a line").expect("readable");
        assert_eq!(line, "ready", "the relay did not start");
    }

    /// Closes stdin (the relay's shutdown), and reads its figures.
    fn finish(mut self) -> Figures {
        drop(self.stdin.take());
        let line = self
            .lines
            .next()
            .expect("the contender's figures")
            .expect("readable");
        let _ = self.child.wait();
        Figures(
            line.split(' ')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
                .collect(),
        )
    }
}

/// A contender's `key=value` figures.
struct Figures(Vec<(String, f64)>);

impl Figures {
    fn get(&self, key: &str) -> f64 {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or_else(|| panic!("no `{key}` in the figures"), |(_, v)| *v)
    }
}

/// `VmRSS` and `RssAnon` of a process, in KiB.
fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// CPU time of a process (user and system), from `/proc/<pid>/stat`
/// (clock ticks of 10 ms).
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command (which may hold spaces) end with `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after `)`.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Samples a process's RSS every `every` until stopped: the samples (KiB,
/// `VmRSS` and `RssAnon`).
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u64, u64)>>,
}

impl Sampler {
    fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                samples.push(rss_of(pid));
                std::thread::sleep(every);
            }
            samples
        });
        Self { stop, thread }
    }

    fn stop(self) -> Vec<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the sampler")
    }
}

fn max_of(samples: &[(u64, u64)]) -> (u64, u64) {
    samples
        .iter()
        .fold((0, 0), |(a, b), (x, y)| (a.max(*x), b.max(*y)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The parent's view of the broker: stream state, and deleting what a run
/// left.
struct Broker {
    rt: tokio::runtime::Runtime,
    js: jetstream::Context,
}

impl Broker {
    fn connect(url: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let js = rt.block_on(jetstream(url));
        Self { rt, js }
    }

    /// Messages and bytes in the stream.
    fn state(&self) -> (u64, u64) {
        self.rt.block_on(async {
            let info = self
                .js
                .get_stream(STREAM)
                .await
                .expect("the stream")
                .get_info()
                .await
                .expect("stream info");
            (info.state.messages, info.state.bytes)
        })
    }

    /// Deletes the stream and the resume-point bucket, so the next run
    /// starts fresh (a new stream, no resume point).
    fn reset(&self) {
        self.rt.block_on(async {
            let _ = self.js.delete_stream(STREAM).await;
            let _ = self
                .js
                .delete_stream(format!("KV_{}", argus_nats::DEFAULT_BUCKET))
                .await;
        });
    }
}

struct Round {
    rate: f64,
    cpu_us: f64,
    /// nats-server's CPU a message, µs.
    broker_us: f64,
    /// The firehose server's CPU a message, µs.
    upstream_us: f64,
    stored_bytes: f64,
    rss: (u64, u64),
    /// Resume points the relay stored (0 for the loop).
    points: f64,
    /// The mean body, bytes (the loop's figure; 0 for the relay).
    body: f64,
}

/// One contender's run: `relay` or `loop`, `count` messages.
fn throughput_run(
    kind: &str,
    nats: &NatsServer,
    server: &ServerProcess,
    count: u64,
    broker: &Broker,
) -> Round {
    let nats_url = nats.url();
    let count_arg = count.to_string();
    let in_flight = config().max_in_flight.to_string();
    let mut args = vec![kind, &nats_url, &server.url, &count_arg];
    if kind == "loop" {
        args.push(&in_flight);
    }
    let mut contender = Contender::start(&args);
    let sampler = Sampler::start(contender.pid(), Duration::from_millis(50));
    if kind == "relay" {
        contender.wait_ready();
    } else {
        // The loop reads its messages before its clock starts.
        let line = contender.lines.next().expect("a line").expect("readable");
        assert_eq!(line, "encoded");
    }
    let (broker_cpu, upstream_cpu) = (cpu_of(nats.pid()), cpu_of(server.pid()));
    let figures = contender.finish();
    // The broker's and the upstream's CPU from the contender's start to its
    // end (10 ms ticks; a run takes seconds).
    let broker_cpu = cpu_of(nats.pid()) - broker_cpu;
    let upstream_cpu = cpu_of(server.pid()) - upstream_cpu;
    let rss = max_of(&sampler.stop());
    let (messages, bytes) = broker.state();
    assert_eq!(messages, count, "{kind}: the stream holds every message");
    assert_eq!(figures.get("published") as u64, count, "{kind}");
    broker.reset();
    Round {
        rate: count as f64 / figures.get("elapsed"),
        cpu_us: figures.get("cpu") / count as f64 * 1e6,
        broker_us: broker_cpu.as_secs_f64() / count as f64 * 1e6,
        upstream_us: upstream_cpu.as_secs_f64() / count as f64 * 1e6,
        stored_bytes: bytes as f64 / messages as f64,
        rss,
        points: if kind == "relay" {
            figures.get("points")
        } else {
            0.0
        },
        body: if kind == "loop" {
            figures.get("body")
        } else {
            0.0
        },
    }
}

fn throughput(runs: usize, count: u64, nats: &NatsServer, broker: &Broker) {
    let server = ServerProcess::start(&["--total", &count.to_string()]);
    let kinds = ["loop", "relay"];
    let mut rounds: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for round in 0..runs {
        // Alternate who goes first, so that a trend in the machine's load
        // falls on both.
        for k in 0..2 {
            let k = (k + round) % 2;
            rounds[k].push(throughput_run(kinds[k], nats, &server, count, broker));
        }
    }
    println!(
        "\n### Throughput into JetStream ({count} `price` messages of {:.0} bytes a run, {runs} rounds, interleaved; {} publishes in flight)\n",
        median(rounds[0].iter().map(|r| r.body).collect()),
        config().max_in_flight
    );
    println!(
        "| publisher | msg/s median | min – max | ratio to the loop | CPU µs a message: publisher | nats-server | firehose | stored bytes a message | peak VmRSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let loop_rate = median(rounds[0].iter().map(|r| r.rate).collect());
    let names = [
        "bare async-nats publish loop (pre-encoded)",
        "argus-nats `Relay` (firehose → client → JetStream)",
    ];
    for (k, name) in names.iter().enumerate() {
        let rates: Vec<f64> = rounds[k].iter().map(|r| r.rate).collect();
        let (lo, hi) = rates
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), r| (a.min(*r), b.max(*r)));
        let rate = median(rates);
        println!(
            "| {name} | {:.1} k | {:.1} – {:.1} k | {:.2}× | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
            rate / 1e3,
            lo / 1e3,
            hi / 1e3,
            rate / loop_rate,
            median(rounds[k].iter().map(|r| r.cpu_us).collect()),
            median(rounds[k].iter().map(|r| r.broker_us).collect()),
            median(rounds[k].iter().map(|r| r.upstream_us).collect()),
            median(rounds[k].iter().map(|r| r.stored_bytes).collect()),
            mib(rounds[k].iter().map(|r| r.rss.0).max().unwrap_or(0)),
        );
    }
    let ratios: Vec<String> = rounds[1]
        .iter()
        .zip(&rounds[0])
        .map(|(r, l)| format!("{:.2}", r.rate / l.rate))
        .collect();
    println!("\nRelay / loop, round by round: {}×.", ratios.join("×, "));
    let points = median(rounds[1].iter().map(|r| r.points).collect());
    println!(
        "Resume points the relay stored: {points:.0} a run (median), one per {:.0} messages.",
        count as f64 / points
    );
}

/// Latency at `rate` msg/s paced: server timestamp to an ordered consumer.
fn latency(runs: usize, rate: u64, seconds: u64, nats: &NatsServer, broker: &Broker) {
    let server = ServerProcess::start(&["--rate", &rate.to_string()]);
    let url = nats.url();
    let mut all = Vec::new();
    let mut rss = Vec::new();
    let mut cpu = Vec::new();
    let mut broker_cpu = Vec::new();
    let mut received_rate = Vec::new();
    let mut points_rate = Vec::new();
    for _ in 0..runs {
        let mut relay = Contender::start(&["relay", &url, &server.url, "0"]);
        relay.wait_ready();
        let sampler = Sampler::start(relay.pid(), Duration::from_millis(100));
        let cpu_before = (cpu_of(relay.pid()), cpu_of(nats.pid()));
        let (latencies, elapsed) = broker.rt.block_on(async {
            let mut messages = read_stream(&broker.js, STREAM, "argus.>", None)
                .await
                .expect("a consumer");
            let mut latencies = Vec::with_capacity((rate * seconds) as usize);
            let start = Instant::now();
            let end = start + Duration::from_secs(seconds);
            while let Ok(Some(message)) = tokio::time::timeout_at(end.into(), messages.next()).await
            {
                let now = Timestamp::from_system_time(SystemTime::now());
                let message = message.expect("a message");
                let body: serde_json::Value =
                    serde_json::from_slice(&message.payload).expect("JSON");
                let Some(stamp) = body["timestamp"].as_str() else {
                    continue;
                };
                let stamp = Timestamp::parse(stamp).expect("a timestamp");
                latencies.push((now.unix_nanos() - stamp.unix_nanos()) as f64 / 1000.0);
            }
            (latencies, start.elapsed())
        });
        let cpu_used = cpu_of(relay.pid()) - cpu_before.0;
        let broker_used = cpu_of(nats.pid()) - cpu_before.1;
        let samples = sampler.stop();
        let figures = relay.finish();
        points_rate.push(figures.get("points") / figures.get("elapsed"));
        broker.reset();
        received_rate.push(latencies.len() as f64 / elapsed.as_secs_f64());
        cpu.push(cpu_used.as_secs_f64() / elapsed.as_secs_f64() * 100.0);
        broker_cpu.push(broker_used.as_secs_f64() / elapsed.as_secs_f64() * 100.0);
        // Steady state: leave out the first 10% (connections warming up).
        all.extend(latencies.iter().skip(latencies.len() / 10));
        rss.extend(samples.iter().skip(samples.len() / 10).copied());
    }
    all.sort_by(f64::total_cmp);
    let (vm, anon) = max_of(&rss);
    println!(
        "\n### Latency at {rate} msg/s, paced (a message every {} µs; {seconds} s a run, {runs} runs; server timestamp → relay → JetStream → ordered consumer)\n",
        1_000_000 / rate
    );
    println!(
        "| received msg/s | p50 µs | p90 µs | p99 µs | p99.9 µs | relay CPU % of a core | relay CPU µs a message | nats-server CPU % of a core | resume points stored a second | relay VmRSS (peak) | RssAnon (peak) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (received, cpu) = (median(received_rate), median(cpu));
    println!(
        "| {received:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {cpu:.1} | {:.0} | {:.1} | {:.0} | {} | {} |",
        percentile(&all, 0.5),
        percentile(&all, 0.9),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        cpu / 100.0 / received * 1e6,
        median(broker_cpu),
        median(points_rate),
        mib(vm),
        mib(anon),
    );
}

/// Sends a signal to a process.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// The relay at full speed, then `nats-server` stopped for each of
/// `stalls` (publish acks stall), then continued.
fn slow_jetstream(nats: &NatsServer, phase: Duration, stalls: &[Duration], broker: &Broker) {
    let server = ServerProcess::start(&[]);
    let url = nats.url();
    let mut relay = Contender::start(&["relay", &url, &server.url, "0"]);
    relay.wait_ready();
    let pid = relay.pid();
    let mut rows = Vec::new();
    // One phase: its RSS peak, the relay's CPU, and what the stream gained.
    let mut measure = |name: String, length: Duration, stalled: bool| {
        let before = (!stalled).then(|| broker.state().0);
        let cpu = cpu_of(pid);
        let sampler = Sampler::start(pid, Duration::from_millis(20));
        std::thread::sleep(length);
        let (vm, anon) = max_of(&sampler.stop());
        let cpu = (cpu_of(pid) - cpu).as_secs_f64() / length.as_secs_f64() * 100.0;
        let stored = before.map(|b| (broker.state().0 - b) as f64 / length.as_secs_f64());
        rows.push((name, vm, anon, cpu, stored));
    };
    measure("full speed".into(), phase, false);
    for stall in stalls {
        signal(nats.pid(), "STOP");
        measure(
            format!("nats-server stopped {} s", stall.as_secs()),
            *stall,
            true,
        );
        signal(nats.pid(), "CONT");
        measure("after SIGCONT".into(), phase, false);
    }
    let figures = relay.finish();
    broker.reset();
    println!(
        "\n### Relay memory, and a stalled JetStream (unpaced firehose; `nats-server` SIGSTOPped, then SIGCONTed; {} publishes in flight at most)\n",
        config().max_in_flight
    );
    println!(
        "| phase | relay VmRSS (peak) | RssAnon (peak) | relay CPU % of a core | stored msg/s |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, vm, anon, cpu, stored) in rows {
        println!(
            "| {name} | {} | {} | {cpu:.0} | {} |",
            mib(vm),
            mib(anon),
            stored.map_or("— (broker stopped)".to_owned(), |s| format!(
                "{:.1} k",
                s / 1e3
            ))
        );
    }
    println!(
        "\nThe relay's own count: {} published, {} duplicates, {} retries, {} resume points stored.",
        figures.get("published"),
        figures.get("duplicates"),
        figures.get("retries"),
        figures.get("points")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => return serve(&args[1..]),
        Some("relay") => return relay_child(&args[1..]),
        Some("loop") => return loop_child(&args[1..]),
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (runs, count, latency_runs, seconds, phase, stalls) = if quick {
        (
            2,
            50_000,
            1,
            3,
            Duration::from_secs(2),
            vec![Duration::from_secs(3)],
        )
    } else {
        (
            7,
            200_000,
            3,
            8,
            Duration::from_secs(3),
            vec![Duration::from_secs(3), Duration::from_secs(8)],
        )
    };
    let nats = NatsServer::start();
    let url = nats.url();
    let broker = Broker::connect(&url);
    let version = Command::new("nats-server")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("## NATS relay{}\n", if quick { " (quick)" } else { "" });
    println!(
        "Machine: {} cores; {version} (`-js`, file storage in {}); the reference server, nats-server and each contender in processes of their own.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::temp_dir().display()
    );
    throughput(runs, count, &nats, &broker);
    latency(latency_runs, 10_000, seconds, &nats, &broker);
    slow_jetstream(&nats, phase, &stalls, &broker);
}
