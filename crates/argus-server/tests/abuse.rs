//! The server under attack: one test per attack of issue 14, each against a
//! real `argus-server` process on loopback, bounded in time.
//!
//! Each test starts the binary (so that `/proc/<pid>` measures the server
//! alone: its resident memory and its CPU time), runs one attack from raw
//! sockets, and asserts a stated bound on what the attack costs the server.
//! During and after every attack a fresh client must connect, subscribe and
//! get data within 1 s. Attackers bind their own loopback addresses
//! (127.0.0.2 and up) so that per-IP caps do not touch the fresh client.
//! Linux only: it reads `/proc`.
#![cfg(target_os = "linux")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// What a fresh client is allowed, from TCP connect to its first data message.
const FRESH_CLIENT: Duration = Duration::from_secs(1);

/// A server process started for one test; killed when dropped.
struct ServerProc {
    child: Child,
    pid: u32,
    addr: SocketAddr,
}

impl ServerProc {
    /// Starts `argus-server` on a free port with `args`, under a file
    /// descriptor limit when `fds` is given.
    async fn start(args: &[&str], fds: Option<u32>) -> Self {
        let bin = env!("CARGO_BIN_EXE_argus-server");
        let mut all: Vec<String> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--log-level".into(),
            "warn,argus_server::server=info".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut cmd = Command::new("sh");
        let limit = fds.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        cmd.arg("-c")
            .arg(format!("{limit}exec \"$0\" \"$@\""))
            .arg(bin)
            .args(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("server starts");
        let pid = child.id().expect("server pid");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = timeout(Duration::from_secs(10), async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .expect("server output")
                    .expect("server exited before listening");
                if let Some(rest) = line.split("url=ws://").nth(1) {
                    let hostport = rest.split('/').next().unwrap_or_default();
                    break hostport.parse::<SocketAddr>().expect("address in the log");
                }
            }
        })
        .await
        .expect("server listens within 10 s");
        // Keep draining its log so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, pid, addr }
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Resident memory, bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("server still running");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// CPU time used so far (user + system).
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .expect("server still running");
        // Fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // USER_HZ is 100 on every Linux configuration Rust supports.
        Duration::from_millis(ticks * 10)
    }

    /// Highest RSS seen while `work` runs, sampled every 20 ms.
    async fn peak_rss_during<F: Future>(&self, work: F) -> (F::Output, u64) {
        let mut peak = self.rss();
        tokio::pin!(work);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                out = &mut work => return (out, peak.max(self.rss())),
                _ = tick.tick() => peak = peak.max(self.rss()),
            }
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A fresh client connects, subscribes and gets a data message within 1 s;
/// returns how long it took.
async fn fresh_client(url: &str, key: Option<&str>) -> Duration {
    let started = Instant::now();
    let outcome = timeout(FRESH_CLIENT, async {
        let mut request = url.into_client_request().unwrap();
        if let Some(key) = key {
            request.headers_mut().insert(
                "Authorization",
                HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
            );
        }
        let addr = request.uri().authority().unwrap().as_str().to_owned();
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut ws, _) = tokio_tungstenite::client_async(request, tcp)
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
        let subscribe =
            json!({"op":"subscribe","id":"probe","symbols":["AAPL","MSFT"],"data_types":["price"]});
        ws.send(Message::text(subscribe.to_string()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        while let Some(msg) = ws.next().await {
            if let Message::Text(text) = msg.map_err(|e| format!("read: {e}"))? {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["type"] == "price" && v["sub"] == "probe" {
                    let _ = ws.close(None).await;
                    return Ok(());
                }
            }
        }
        Err("connection ended before data".to_owned())
    })
    .await;
    match outcome {
        Ok(Ok(())) => started.elapsed(),
        Ok(Err(e)) => panic!("fresh client failed: {e}"),
        Err(_) => panic!("fresh client got no data within {FRESH_CLIENT:?}"),
    }
}

/// A TCP connection from `127.0.0.<last>`.
async fn tcp_from(last: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
        0,
    ))?;
    socket.connect(to).await
}

/// A raw WebSocket client: handshake by hand, frames by hand.
async fn raw_ws(from: u8, to: SocketAddr, key: Option<&str>) -> Result<TcpStream, String> {
    let tcp = tcp_from(from, to).await.map_err(|e| e.to_string())?;
    upgrade_raw(tcp, to, key).await
}

/// The WebSocket handshake, by hand, on `tcp`.
async fn upgrade_raw(
    mut tcp: TcpStream,
    to: SocketAddr,
    key: Option<&str>,
) -> Result<TcpStream, String> {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {to}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
    );
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let head = read_head(&mut tcp).await?;
    if head.starts_with("HTTP/1.1 101") {
        Ok(tcp)
    } else {
        Err(head)
    }
}

/// Reads an HTTP response head, byte by byte (nothing after it is consumed).
async fn read_head(tcp: &mut TcpStream) -> Result<String, String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    timeout(Duration::from_secs(2), async {
        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
            match tcp.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    })
    .await
    .map_err(|_| "no response head within 2 s".to_owned())?;
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_header(fin, opcode, payload.len() as u64)
        .into_iter()
        .chain(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]))
        .collect()
}

const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// The header of a masked client frame announcing `len` payload bytes.
fn frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= 0xffff {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&MASK);
    h
}

fn text_frame(text: &str) -> Vec<u8> {
    frame(true, 1, text.as_bytes())
}

/// Writes until `deadline`; returns how long writes kept succeeding (the
/// server dropped the connection when it is before `deadline`).
async fn write_until(tcp: &mut TcpStream, data: &[u8], deadline: Instant) -> Duration {
    let started = Instant::now();
    loop {
        match tokio::time::timeout_at(deadline, tcp.write_all(data)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return started.elapsed(),
            Err(_) => return started.elapsed(),
        }
        if Instant::now() >= deadline {
            return started.elapsed();
        }
    }
}

/// Whether the server has dropped `tcp`: a write fails (after the reset
/// comes back) within `within`.
async fn dropped_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let ping = frame(true, 9, b"");
    while Instant::now() < deadline {
        match timeout(Duration::from_millis(50), tcp.write_all(&ping)).await {
            Ok(Err(_)) => return true,
            _ => sleep(Duration::from_millis(50)).await,
        }
    }
    false
}

// Row 1: pings as fast as possible, never reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_peer_that_never_reads_costs_bounded_memory() {
    let server = ServerProc::start(&["--tick-interval", "20ms"], None).await;
    let base = server.rss();
    let addr = server.addr;
    let ping = frame(true, 9, &[b'p'; 125]);
    let burst: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 64).collect();
    let flood = tokio::spawn(async move {
        let mut tcp = raw_ws(2, addr, None).await.expect("attacker upgrades");
        write_until(&mut tcp, &burst, Instant::now() + Duration::from_secs(2)).await;
        tcp
    });
    let url = server.url();
    let (probe, peak) = server
        .peak_rss_during(async {
            sleep(Duration::from_millis(500)).await;
            let during = fresh_client(&url, None).await;
            let _attacker = flood.await.unwrap();
            (during, fresh_client(&url, None).await)
        })
        .await;
    let growth = peak.saturating_sub(base);
    eprintln!(
        "ping flood: RSS {:.1} MiB -> peak {:.1} MiB (+{:.2} MiB); fresh client {:?} during, {:?} after",
        mib(base),
        mib(peak),
        mib(growth),
        probe.0,
        probe.1
    );
    assert!(
        growth < 8 * 1024 * 1024,
        "a ping flood grew the server by {:.1} MiB (bound 8 MiB)",
        mib(growth)
    );
    server.stop().await;
}

// Row 2: junk after the server decided on 1008, never reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decided_close_is_enforced_against_a_peer_that_keeps_sending() {
    let server = ServerProc::start(
        &[
            "--tick-interval",
            "20ms",
            "--max-rejected-in-a-row",
            "5",
            "--close-timeout",
            "1s",
        ],
        None,
    )
    .await;
    let mut tcp = raw_ws(2, server.addr, None)
        .await
        .expect("attacker upgrades");
    // Data it will not read, so that the server's writes soon block; then
    // five rejected requests decide the close; then junk, as fast as it goes.
    let subscribe = json!({"op":"subscribe","id":"all","symbols":["AAPL","MSFT","GOOGL","AMZN","TSLA"],"data_types":["price","volume","orderbook"]});
    tcp.write_all(&text_frame(&subscribe.to_string()))
        .await
        .unwrap();
    let junk = text_frame(&"x".repeat(60_000));
    let started = Instant::now();
    let cpu_before = server.cpu();
    for _ in 0..5 {
        tcp.write_all(&text_frame("not json")).await.unwrap();
    }
    let url = server.url();
    let attack = async {
        let held = write_until(&mut tcp, &junk, started + Duration::from_secs(4)).await;
        (held, server.cpu().saturating_sub(cpu_before))
    };
    let ((held, cpu), during) = tokio::join!(attack, async {
        sleep(Duration::from_millis(300)).await;
        fresh_client(&url, None).await
    });
    let after = fresh_client(&url, None).await;
    eprintln!(
        "junk after 1008: connection held {held:?}, server CPU {cpu:?} over it; fresh client {during:?} during, {after:?} after"
    );
    assert!(
        held < Duration::from_millis(1500),
        "the connection outlived the 1 s close timeout: writes went on for {held:?}"
    );
    assert!(
        cpu < Duration::from_millis(1000),
        "the server spent {cpu:?} of CPU on a connection it had decided to close"
    );
    server.stop().await;
}

// Row 3: a high rate subscribed, nothing read, a ping now and then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_dropped_after_its_4000_although_it_pings() {
    let server = ServerProc::start(
        &[
            "--tick-interval",
            "5ms",
            "--outbound-queue-limit",
            "2000",
            "--close-timeout",
            "1s",
        ],
        None,
    )
    .await;
    let base = server.rss();
    // A small receive window: the server's writes block sooner.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 0))
        .unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let mut tcp = upgrade_raw(tcp, server.addr, None)
        .await
        .expect("attacker upgrades");
    let all: Vec<String> = [
        "AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "META", "NVDA", "JPM", "V", "JNJ", "WMT", "PG",
        "MA", "UNH", "HD", "DIS", "BAC", "XOM", "KO", "PEP", "NFLX", "INTC", "CSCO", "ORCL", "IBM",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let subscribe = json!({"op":"subscribe","id":"all","symbols":all,"data_types":["price","volume","orderbook"]});
    tcp.write_all(&text_frame(&subscribe.to_string()))
        .await
        .unwrap();
    let url = server.url();
    let started = Instant::now();
    let (dropped, peak) = server
        .peak_rss_during(async {
            let during = fresh_client(&url, None).await;
            // A ping every 200 ms, nothing read, for at most 8 s.
            let ping = frame(true, 9, b"alive");
            let mut dropped = None;
            while started.elapsed() < Duration::from_secs(8) {
                if let Ok(Err(_)) = timeout(Duration::from_millis(100), tcp.write_all(&ping)).await
                {
                    dropped = Some(started.elapsed());
                    break;
                }
                sleep(Duration::from_millis(200)).await;
            }
            (dropped, during)
        })
        .await;
    let after = fresh_client(&url, None).await;
    eprintln!(
        "slow consumer: dropped after {:?}; RSS {:.1} MiB, peak {:.1} MiB; fresh client {:?} during, {after:?} after",
        dropped.0,
        mib(base),
        mib(peak),
        dropped.1
    );
    assert!(
        dropped.0.is_some(),
        "a slow consumer that pings was still connected after 8 s"
    );
    assert!(
        peak.saturating_sub(base) < 32 * 1024 * 1024,
        "a slow consumer grew the server by {:.1} MiB (bound 32 MiB)",
        mib(peak.saturating_sub(base))
    );
    server.stop().await;
}

// Row 4: a large message begun and never finished, pings to stay alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_message_is_bounded_by_the_wire_limit_and_dropped_in_time() {
    let server =
        ServerProc::start(&["--tick-interval", "20ms", "--stall-timeout", "1s"], None).await;
    let base = server.rss();
    const PEERS: usize = 20;
    // Each peer sends 1 MB of a fragmented message, never its last frame.
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        let mut tcp = raw_ws(2, server.addr, None)
            .await
            .expect("attacker upgrades");
        let chunk = vec![b'a'; 32 * 1024];
        let mut first = true;
        for _ in 0..32 {
            let opcode = if first { 1 } else { 0 };
            first = false;
            if timeout(
                Duration::from_millis(200),
                tcp.write_all(&frame(false, opcode, &chunk)),
            )
            .await
            .map_or(true, |r| r.is_err())
            {
                break;
            }
        }
        peers.push(tcp);
    }
    let url = server.url();
    let during = fresh_client(&url, None).await;
    let held = server.rss().saturating_sub(base);
    // And one that stays under the limit: 30 KB begun, then only pings.
    let mut staller = raw_ws(3, server.addr, None)
        .await
        .expect("staller upgrades");
    staller
        .write_all(&frame(false, 1, &vec![b'b'; 30_000]))
        .await
        .unwrap();
    let started = Instant::now();
    let dropped = dropped_within(&mut staller, Duration::from_secs(4)).await;
    let after = fresh_client(&url, None).await;
    eprintln!(
        "stalled messages: {PEERS} peers x 1 MB begun: +{:.2} MiB ({:.0} KiB a peer); \
         30 KB stall with pings dropped: {dropped} after {:?}; fresh client {during:?} during, {after:?} after",
        mib(held),
        held as f64 / 1024.0 / PEERS as f64,
        started.elapsed()
    );
    assert!(
        held < (PEERS as u64) * 160 * 1024,
        "{PEERS} unfinished messages hold {:.1} MiB (bound 160 KiB each)",
        mib(held)
    );
    assert!(
        dropped,
        "a message begun and kept alive by pings was not dropped within 4 s (stall timeout 1 s)"
    );
    drop(peers);
    server.stop().await;
}

// Row 5a: idle TCP sockets without a key, past the fd limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_past_the_fd_limit_do_not_lock_out_a_fresh_client() {
    let server = ServerProc::start(&["--tick-interval", "20ms"], Some(512)).await;
    let mut idle = Vec::new();
    for _ in 0..600 {
        match tcp_from(2, server.addr).await {
            Ok(tcp) => idle.push(tcp),
            Err(e) => panic!("attacker connect: {e}"),
        }
    }
    let url = server.url();
    let during = fresh_client(&url, None).await;
    // The ones past the per-IP cap were answered 503 with Retry-After.
    let mut refused = 0;
    for tcp in idle.iter_mut().rev().take(20) {
        if let Ok(head) = read_head(tcp).await
            && head.starts_with("HTTP/1.1 503")
            && head.to_ascii_lowercase().contains("retry-after:")
        {
            refused += 1;
        }
    }
    drop(idle);
    let after = fresh_client(&url, None).await;
    eprintln!(
        "600 idle sockets under 512 fds: last 20 refused with 503: {refused}; fresh client {during:?} during, {after:?} after"
    );
    assert_eq!(
        refused, 20,
        "sockets over the per-IP cap get 503 with Retry-After"
    );
    server.stop().await;
}

// Row 5a, from many addresses: the global cap is reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_at_the_global_cap_make_room_for_a_fresh_client() {
    // 160 descriptors: a global cap of 128 connections (32 kept in reserve).
    let server = ServerProc::start(&["--tick-interval", "20ms"], Some(160)).await;
    let mut idle = Vec::new();
    for i in 0..200u32 {
        idle.push(
            tcp_from(2 + (i % 4) as u8, server.addr)
                .await
                .expect("attacker connects"),
        );
    }
    // Sockets that have not upgraded after 500 ms give way to new ones.
    sleep(Duration::from_millis(600)).await;
    let url = server.url();
    let during = fresh_client(&url, None).await;
    let again = fresh_client(&url, None).await;
    drop(idle);
    eprintln!(
        "200 idle sockets from 4 addresses, global cap 128: fresh clients {during:?}, {again:?}"
    );
    server.stop().await;
}

// Row 5a, out of descriptors before any cap: the accept loop survives EMFILE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_does_not_lock_out_a_fresh_client() {
    // No reserve: the process runs out of descriptors below the cap of 64.
    let server =
        ServerProc::start(&["--tick-interval", "20ms", "--fd-reserve", "0"], Some(64)).await;
    let mut idle = Vec::new();
    for i in 0..100u32 {
        idle.push(
            tcp_from(2 + (i % 4) as u8, server.addr)
                .await
                .expect("attacker connects"),
        );
    }
    sleep(Duration::from_millis(600)).await;
    let url = server.url();
    let during = fresh_client(&url, None).await;
    // The newest sockets were refused while the process had none to spare.
    let refused = read_head(idle.last_mut().unwrap())
        .await
        .unwrap_or_default();
    drop(idle);
    let after = fresh_client(&url, None).await;
    eprintln!(
        "100 idle sockets under 64 descriptors: last one got {:?}; fresh client {during:?} during, {after:?} after",
        refused.lines().next()
    );
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused:?}");
    server.stop().await;
}

// Row 5b: authenticated idle connections, one key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_per_key_and_cost_little_memory() {
    // A slow market, so that its history (kept for resumes) does not count
    // as the connections' memory.
    let server = ServerProc::start(
        &[
            "--tick-interval",
            "200ms",
            "--api-key",
            "attacker-key",
            "--api-key",
            "trader-key",
            "--max-connections-per-key",
            "200",
        ],
        None,
    )
    .await;
    let mut open = Vec::new();
    let mut refused = Vec::new();
    // The first connections also pay one-time costs (buffers, tables,
    // allocator arenas): the baseline is taken after 30 of them.
    let mut base = server.rss();
    for i in 0..230u32 {
        if i == 30 {
            sleep(Duration::from_millis(100)).await;
            base = server.rss();
        }
        // Spread over addresses so that the per-IP cap is not what stops them.
        match raw_ws(2 + (i % 4) as u8, server.addr, Some("attacker-key")).await {
            Ok(tcp) => open.push(tcp),
            Err(head) => refused.push(head),
        }
    }
    sleep(Duration::from_millis(200)).await;
    let per_connection = server.rss().saturating_sub(base) / (open.len() as u64 - 30).max(1);
    let url = server.url();
    let during = fresh_client(&url, Some("trader-key")).await;
    drop(open);
    let after = fresh_client(&url, Some("trader-key")).await;
    eprintln!(
        "idle authenticated connections: {} open, {} refused; {:.1} KiB a connection; fresh client {during:?} during, {after:?} after",
        230 - refused.len(),
        refused.len(),
        per_connection as f64 / 1024.0
    );
    assert_eq!(refused.len(), 30, "the per-key cap is 200");
    assert!(
        refused
            .iter()
            .all(|h| h.starts_with("HTTP/1.1 503")
                && h.to_ascii_lowercase().contains("retry-after:")),
        "over the cap: 503 with Retry-After: {:?}",
        refused.first()
    );
    assert!(
        per_connection <= 32 * 1024,
        "an idle connection costs {:.1} KiB (bound 32 KiB)",
        per_connection as f64 / 1024.0
    );
    server.stop().await;
}

// Malformed handshakes are answered, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_handshake_gets_400() {
    let server = ServerProc::start(&[], None).await;
    for request in [
        "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "\x16\x03\x01 not http at all\r\n\r\n",
    ] {
        let mut tcp = tcp_from(2, server.addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let head = read_head(&mut tcp).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 400"), "{request:?} got {head:?}");
    }
    server.stop().await;
}

/// Opens `n` sessions one after the other from `from`, each subscribing
/// `subs` subscriptions to ten symbols with every data type; each connection
/// drops (without a close) once its subscriptions are confirmed and it has
/// read data for `read_for`. Returns each session's token and the last seq
/// it saw.
async fn abandon_sessions(
    server: &ServerProc,
    from: u8,
    n: usize,
    subs: usize,
    read_for: Duration,
    key: Option<&str>,
) -> Vec<(String, u64)> {
    let mut sessions = Vec::new();
    let symbols = [
        "AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "META", "NVDA", "JPM", "V", "JNJ",
    ];
    for _ in 0..n {
        let mut tcp = raw_ws(from, server.addr, key).await.expect("peer upgrades");
        for s in 0..subs {
            let subscribe = json!({"op":"subscribe","id":format!("s{s}"),"symbols":symbols,"data_types":["price","volume","orderbook"]});
            tcp.write_all(&text_frame(&subscribe.to_string()))
                .await
                .unwrap();
        }
        let mut confirmed = 0;
        let (mut texts, _) = read_frames_until(&mut tcp, Duration::from_secs(2), |text| {
            confirmed += usize::from(text.contains(r#""type":"subscribed""#));
            confirmed == subs
        })
        .await;
        assert_eq!(confirmed, subs, "subscriptions confirmed");
        if !read_for.is_zero() {
            texts.extend(read_frames(&mut tcp, read_for).await.0);
        }
        let welcome: Value = serde_json::from_str(&texts[0]).unwrap();
        let last_seq = texts
            .iter()
            .filter_map(|t| serde_json::from_str::<Value>(t).ok()?["seq"].as_u64())
            .max()
            .unwrap_or(0);
        sessions.push((welcome["session"].as_str().unwrap().to_owned(), last_seq));
    }
    sessions
}

/// Resumes `session` on a fresh connection; returns the answer's `type`
/// (`resumed`) or error code (`resume_failed`).
async fn resume(server: &ServerProc, session: &(String, u64), key: Option<&str>) -> String {
    let mut tcp = raw_ws(1, server.addr, key).await.expect("resumer upgrades");
    let request = json!({"op":"resume","session":session.0,"last_seq":session.1});
    tcp.write_all(&text_frame(&request.to_string()))
        .await
        .unwrap();
    let (texts, _) = read_frames_until(&mut tcp, Duration::from_secs(2), |t| {
        t.contains("resumed") || t.contains("resume_failed")
    })
    .await;
    let answer: Value = serde_json::from_str(texts.last().expect("an answer")).unwrap();
    match answer["type"].as_str() {
        Some("error") => answer["code"].as_str().unwrap_or_default().to_owned(),
        other => other.unwrap_or_default().to_owned(),
    }
}

// Row 6a: sessions opened and abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_sessions_cost_little_memory_and_are_capped() {
    // The market's history, kept for resumes, grows with time (about
    // 0.2 MiB a second at this tick): part of the figure, not per session.
    let server =
        ServerProc::start(&["--tick-interval", "50ms", "--max-sessions", "100"], None).await;
    let base = server.rss();
    let sessions = abandon_sessions(&server, 2, 150, 1, Duration::ZERO, None).await;
    sleep(Duration::from_secs(2)).await;
    let url = server.url();
    let during = fresh_client(&url, None).await;
    let rss = server.rss();
    let per_session = rss.saturating_sub(base) / 100;
    // The oldest were evicted to make room; the newest resumes, catching up
    // on what its subscription matched while it was detached.
    let oldest = resume(&server, &sessions[0], None).await;
    let newest = resume(&server, &sessions[149], None).await;
    eprintln!(
        "150 abandoned sessions (cap 100): RSS {:.1} -> {:.1} MiB, {:.1} KiB a detached session; \
         resume of the oldest: {oldest}, of the newest: {newest}; fresh client {during:?}",
        mib(base),
        mib(rss),
        per_session as f64 / 1024.0
    );
    assert_eq!(
        oldest, "resume_failed",
        "the oldest detached session was evicted"
    );
    assert_eq!(newest, "resumed");
    assert!(
        per_session <= 128 * 1024,
        "a detached session costs {:.1} KiB (bound 128 KiB)",
        per_session as f64 / 1024.0
    );
    server.stop().await;
}

// Row 6a, per key: one key's churn evicts its own sessions only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_capped_per_key() {
    let server = ServerProc::start(
        &[
            "--tick-interval",
            "50ms",
            "--api-key",
            "churner",
            "--api-key",
            "trader",
            "--max-sessions-per-key",
            "5",
        ],
        None,
    )
    .await;
    let trader = abandon_sessions(&server, 2, 1, 1, Duration::ZERO, Some("trader")).await;
    let churned = abandon_sessions(&server, 3, 12, 1, Duration::ZERO, Some("churner")).await;
    let trader_resumes = resume(&server, &trader[0], Some("trader")).await;
    let oldest = resume(&server, &churned[0], Some("churner")).await;
    let newest = resume(&server, &churned[11], Some("churner")).await;
    let url = server.url();
    let after = fresh_client(&url, Some("trader")).await;
    eprintln!(
        "12 sessions of one key, cap 5 a key: its oldest {oldest}, its newest {newest}; \
         another key's session {trader_resumes}; fresh client {after:?}"
    );
    assert_eq!(
        oldest, "resume_failed",
        "the key's oldest detached session was evicted"
    );
    assert_eq!(newest, "resumed");
    assert_eq!(
        trader_resumes, "resumed",
        "another key's session is untouched"
    );
    server.stop().await;
}

// Row 6b: CPU while abandoned sessions sit waiting for a resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_sessions_do_no_market_work() {
    let server = ServerProc::start(&["--tick-interval", "10ms"], None).await;
    abandon_sessions(&server, 2, 20, 10, Duration::ZERO, None).await;
    // Let the last connection end, then measure 2 s of the server's CPU.
    sleep(Duration::from_millis(300)).await;
    let before = server.cpu();
    let started = Instant::now();
    sleep(Duration::from_secs(2)).await;
    let used = server.cpu().saturating_sub(before);
    let share = used.as_secs_f64() / started.elapsed().as_secs_f64();
    let url = server.url();
    let after = fresh_client(&url, None).await;
    eprintln!(
        "20 abandoned sessions x 10 subscriptions: server CPU {:.1}% of a core; fresh client {after:?}",
        share * 100.0
    );
    assert!(
        share < 0.15,
        "20 abandoned sessions cost {:.0}% of a core (bound 15%)",
        share * 100.0
    );
    server.stop().await;
}

// Replay buffers: a byte budget per session...
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_buffer_keeps_to_its_byte_budget() {
    // About 120 KB/s of data a session; 32 KiB is about 270 ms of it.
    let server = ServerProc::start(
        &["--tick-interval", "50ms", "--replay-buffer-bytes", "32768"],
        None,
    )
    .await;
    // Its buffer no longer reaches its first message, but it reaches its last.
    let read_for = Duration::from_millis(600);
    let session = abandon_sessions(&server, 2, 1, 1, read_for, None)
        .await
        .remove(0);
    let from_start = resume(&server, &(session.0.clone(), 1), None).await;
    let from_last = resume(&server, &session, None).await;
    eprintln!(
        "replay budget of 32 KiB after 600 ms of data: resume from seq 1: {from_start}, from the last seq: {from_last}"
    );
    assert_eq!(
        from_start, "resume_failed",
        "32 KiB do not reach back 600 ms"
    );
    assert_eq!(from_last, "resumed");
    server.stop().await;
}

// ... and one for the server, paid by the oldest detached sessions first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_memory_over_its_budget_evicts_the_oldest_detached_session() {
    let server = ServerProc::start(
        &["--tick-interval", "50ms", "--replay-memory-limit", "65536"],
        None,
    )
    .await;
    // Three sessions of about 70 KB each, one after the other.
    let sessions = abandon_sessions(&server, 2, 3, 1, Duration::from_millis(600), None).await;
    let newest = resume(&server, &sessions[2], None).await;
    let oldest = resume(&server, &sessions[0], None).await;
    let url = server.url();
    let after = fresh_client(&url, None).await;
    eprintln!(
        "replay memory of 64 KiB, three sessions: newest {newest}, oldest {oldest}; fresh client {after:?}"
    );
    assert_eq!(newest, "resumed");
    assert_eq!(oldest, "resume_failed", "evicted for the server's budget");
    server.stop().await;
}

/// Reads text frames (unmasked, from the server) until a close frame;
/// returns the texts and the close code.
async fn read_frames(tcp: &mut TcpStream, within: Duration) -> (Vec<String>, Option<u16>) {
    read_frames_until(tcp, within, |_| false).await
}

/// Reads text frames until a close frame, or until `stop` says so for a
/// text; returns the texts and the close code.
async fn read_frames_until(
    tcp: &mut TcpStream,
    within: Duration,
    mut stop: impl FnMut(&str) -> bool,
) -> (Vec<String>, Option<u16>) {
    let mut texts = Vec::new();
    let outcome = timeout(within, async {
        loop {
            let mut h = [0u8; 2];
            if tcp.read_exact(&mut h).await.is_err() {
                return None;
            }
            let mut len = u64::from(h[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                tcp.read_exact(&mut b).await.ok()?;
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                tcp.read_exact(&mut b).await.ok()?;
                len = u64::from_be_bytes(b);
            }
            let mut payload = vec![0u8; len as usize];
            tcp.read_exact(&mut payload).await.ok()?;
            match h[0] & 0x0f {
                1 => {
                    let text = String::from_utf8_lossy(&payload).into_owned();
                    let done = stop(&text);
                    texts.push(text);
                    if done {
                        return None;
                    }
                }
                8 => return Some(u16::from_be_bytes([payload[0], payload[1]])),
                _ => {}
            }
        }
    })
    .await;
    (texts, outcome.ok().flatten())
}

// Row 7: duplicate-subscription errors, within the rate limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_errors_count_toward_the_1008_close() {
    let server = ServerProc::start(&["--tick-interval", "20ms"], None).await;
    let mut tcp = raw_ws(2, server.addr, None)
        .await
        .expect("attacker upgrades");
    let subscribe = json!({"op":"subscribe","id":"dup","symbols":["AAPL"],"data_types":["volume"],"update_frequency":"1m"});
    let frame = text_frame(&subscribe.to_string());
    // The first is accepted; 60 duplicates follow, well within 200 ops/s.
    for _ in 0..61 {
        tcp.write_all(&frame).await.unwrap();
    }
    let url = server.url();
    let during = fresh_client(&url, None).await;
    let (texts, code) = read_frames(&mut tcp, Duration::from_secs(3)).await;
    let duplicates = texts
        .iter()
        .filter(|t| t.contains("duplicate_subscription"))
        .count();
    let after = fresh_client(&url, None).await;
    eprintln!(
        "duplicate subscriptions: {duplicates} errors, then close {code:?}; fresh client {during:?} during, {after:?} after"
    );
    assert_eq!(code, Some(1008), "closed with 1008 after repeated errors");
    assert_eq!(duplicates, 50, "the 50th consecutive error closes");
    server.stop().await;
}

// Row 8: requests that cannot be decoded fully keep their id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_keeps_its_id() {
    let server = ServerProc::start(&["--tick-interval", "20ms"], None).await;
    let mut tcp = raw_ws(2, server.addr, None).await.expect("client upgrades");
    let deep = format!(
        r#"{{"op":"subscribe","id":"deep","symbols":["AAPL"],"data_types":["price"],"x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let huge = r#"{"op":"subscribe","id":"huge","symbols":["AAPL"],"data_types":["price"],"filters":{"min_price":1e309}}"#;
    tcp.write_all(&text_frame(&deep)).await.unwrap();
    tcp.write_all(&text_frame(huge)).await.unwrap();
    let url = server.url();
    let during = fresh_client(&url, None).await;
    let (texts, _) = read_frames(&mut tcp, Duration::from_millis(500)).await;
    let errors: Vec<Value> = texts
        .iter()
        .map(|t| serde_json::from_str::<Value>(t).unwrap())
        .filter(|v| v["type"] == "error")
        .collect();
    eprintln!("undecodable requests answered: {errors:?}; fresh client {during:?}");
    assert_eq!(errors.len(), 2, "{texts:?}");
    assert_eq!(errors[0]["id"], "deep");
    assert_eq!(errors[0]["code"], "bad_request");
    assert_eq!(errors[1]["id"], "huge");
    server.stop().await;
}
