//! The server's modes: replay of the shipped CSV, TLS, the firehose, and the
//! binary itself.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use argus_core::Symbol;
use argus_core::wire::ServerMessage;
use argus_core::wire::layout::Layout;
use argus_server::{FirehoseConfig, Server, ServerConfig, ServerError, TlsConfig};
use common::*;
use serde_json::{Value, json};

fn data_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/stocks-daily.csv.gz")
}

/// AAPL's price path as the README describes it, read independently of the
/// server: bars by date, each open → low/high → close, with the volume of
/// each step.
fn expected_aapl_path() -> Vec<(f64, u64)> {
    let file = std::fs::File::open(data_file()).unwrap();
    let text = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut bars: Vec<(String, [f64; 4], u64)> = Vec::new();
    for line in text.lines().skip(1) {
        let line = line.unwrap();
        let f: Vec<&str> = line.split(',').collect();
        if f[0] != "AAPL" {
            continue;
        }
        let p = |i: usize| f[i].parse::<f64>().unwrap();
        bars.push((
            f[1].to_owned(),
            [p(2), p(3), p(4), p(5)],
            f[6].parse().unwrap(),
        ));
    }
    bars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut path = Vec::new();
    for (_, [open, high, low, close], volume) in bars {
        let q = volume / 4;
        let mid = if close >= open {
            [low, high]
        } else {
            [high, low]
        };
        path.extend([(open, q), (mid[0], q), (mid[1], q), (close, volume - 3 * q)]);
    }
    path
}

#[tokio::test]
async fn replay_sends_the_csv_prices_in_order() {
    bounded(async {
        let server = start(ServerConfig {
            replay: Some(data_file()),
            tick_interval: Duration::from_millis(2),
            ..fast()
        })
        .await;
        let served: HashSet<String> = server.symbols().iter().map(|s| s.to_string()).collect();
        let want: HashSet<String> = ["AAPL", "MSFT", "IBM", "GOOG", "FB"]
            .map(String::from)
            .into();
        assert_eq!(served, want);

        let (mut c, _) = connect_welcomed(&server).await;
        c.send_json(json!({"op":"subscribe","id":"x","symbols":["TSLA"],"data_types":["price"]}))
            .await;
        assert_eq!(c.next_control().await["code"], "unknown_symbol");
        c.subscribe("aapl", &["AAPL"], &["price", "volume"]).await;
        // (price, volume) per tick, as received.
        let mut ticks: Vec<(f64, u64)> = Vec::new();
        let mut price = None;
        while ticks.len() < 120 {
            let v = c.next_json().await;
            match v["type"].as_str().unwrap() {
                "price" => price = v["price"].as_f64(),
                "volume" => {
                    if let Some(p) = price.take() {
                        ticks.push((p, v["volume"].as_u64().unwrap()));
                    }
                }
                other => panic!("{other}"),
            }
        }
        let path = expected_aapl_path();
        assert_eq!(path.len(), 3270 * 4);
        // The ticks are a stretch of the path: find where it starts.
        let prices: Vec<f64> = ticks.iter().map(|t| t.0).collect();
        let start = (0..path.len())
            .find(|&s| {
                prices
                    .iter()
                    .enumerate()
                    .all(|(i, p)| path[(s + i) % path.len()].0 == *p)
            })
            .expect("the prices follow the CSV");
        // Cumulative volume grows by each step's share of the bar's volume.
        for (i, w) in ticks.windows(2).enumerate() {
            assert_eq!(w[1].1 - w[0].1, path[(start + i + 1) % path.len()].1);
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn replay_rejects_a_symbol_the_file_lacks() {
    let err = Server::start(ServerConfig {
        replay: Some(data_file()),
        symbols: Some(vec![Symbol::parse("TSLA").unwrap()]),
        ..ServerConfig::ephemeral()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, ServerError::Replay { .. }), "{err}");
    let err = Server::start(ServerConfig {
        replay: Some(PathBuf::from("/nonexistent.csv.gz")),
        ..ServerConfig::ephemeral()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nonexistent"), "{err}");
}

fn client_tls(trusted: Option<&rcgen::Certificate>) -> tokio_rustls::TlsConnector {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(cert) = trusted {
        roots.add(cert.der().clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_serves_wss_with_the_given_certificate() {
    bounded(async {
        let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let server = start(ServerConfig {
            tls: Some(TlsConfig {
                cert_chain_pem: issued.cert.pem().into_bytes(),
                private_key_pem: issued.signing_key.serialize_pem().into_bytes(),
            }),
            ..fast()
        })
        .await;
        assert!(
            server.url().starts_with("wss://127.0.0.1:"),
            "{}",
            server.url()
        );
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();

        let tcp = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        let tls = client_tls(Some(&issued.cert))
            .connect(name.clone(), tcp)
            .await
            .expect("the client trusts the certificate");
        let url = server.url().replace("127.0.0.1", "localhost");
        let mut c = handshake(
            &url,
            tls,
            Opts {
                subprotocol: true,
                ..Opts::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(c.next_json().await["type"], "welcome");
        c.subscribe("main", &["AAPL"], &["price"]).await;
        assert_eq!(seq(&c.next_json().await), 1);

        // A client that does not trust it fails at the TLS handshake.
        let tcp = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        assert!(client_tls(None).connect(name, tcp).await.is_err());

        let (end, ()) = tokio::join!(c.end(), server.shutdown());
        assert_eq!(end.code(), Some(1001));
    })
    .await;
}

#[tokio::test]
async fn the_firehose_sends_valid_numbered_messages_per_subscription() {
    bounded(async {
        let server = start(ServerConfig {
            firehose: Some(FirehoseConfig::default()),
            ..fast()
        })
        .await;
        let (mut c, w) = connect_welcomed(&server).await;
        c.subscribe("f", &["AAPL", "MSFT"], &["price", "volume"])
            .await;
        let mut kinds = HashSet::new();
        for want in 1..=20_000u64 {
            let v = c.next_json().await;
            assert_eq!((seq(&v), &v["sub"]), (want, &json!("f")));
            kinds.insert((
                v["symbol"].as_str().unwrap().to_owned(),
                v["type"].as_str().unwrap().to_owned(),
            ));
            if want % 5000 == 1 {
                micros(v["timestamp"].as_str().unwrap());
            }
        }
        assert_eq!(kinds.len(), 4);
        // Swap subscriptions: after `subscribed` only the new one flows,
        // numbered on from where the old one stopped.
        c.send_json(json!({"op":"unsubscribe","id":"f"})).await;
        c.send_json(
            json!({"op":"subscribe","id":"g","symbols":["TSLA"],"data_types":["orderbook"]}),
        )
        .await;
        let mut last = 20_000;
        let mut control = Vec::new();
        while control.len() < 2 {
            let v = c.next_json().await;
            if is_data(&v) {
                assert_eq!(seq(&v), last + 1);
                last += 1;
            } else {
                control.push(v["type"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(control, ["unsubscribed", "subscribed"]);
        for _ in 0..1000 {
            let v = c.next_json().await;
            assert_eq!(
                (seq(&v), &v["sub"], &v["type"]),
                (last + 1, &json!("g"), &json!("orderbook"))
            );
            last += 1;
        }
        // Firehose sessions keep no replay buffer.
        let (mut d, _) = connect_welcomed(&server).await;
        d.send_json(json!({"op":"resume","session":w["session"],"last_seq":last}))
            .await;
        assert_eq!(d.next_control().await["code"], "resume_failed");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_paced_firehose_keeps_its_rate_and_total() {
    bounded(async {
        let server = start(ServerConfig {
            firehose: Some(FirehoseConfig {
                rate: Some(2000),
                total: Some(300),
            }),
            ..fast()
        })
        .await;
        let (mut c, _) = connect_welcomed(&server).await;
        c.subscribe("f", &["AAPL"], &["price"]).await;
        let started = tokio::time::Instant::now();
        for want in 1..=300 {
            assert_eq!(seq(&c.next_json().await), want);
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(120),
            "300 at 2000/s took {took:?}"
        );
        // The total is reached: the next message is the reply.
        c.send_json(json!({"op":"unsubscribe","id":"f"})).await;
        assert_eq!(c.next_json().await, json!({"type":"unsubscribed","id":"f"}));
        server.shutdown().await;
    })
    .await;
}

/// The next data message's raw text.
async fn next_data_text(c: &mut Client) -> String {
    loop {
        if let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = c.next_frame().await
            && is_data(&serde_json::from_str::<Value>(&t).expect("JSON"))
        {
            return t.to_string();
        }
    }
}

#[tokio::test]
async fn data_messages_come_in_the_configured_wire_style() {
    bounded(async {
        for (layout, firehose) in [
            (Layout::Python, None),
            (Layout::Shuffled, Some(FirehoseConfig::default())),
            (Layout::Pretty, None),
            (Layout::Numbers, Some(FirehoseConfig::default())),
            (Layout::Escaped, Some(FirehoseConfig::default())),
        ] {
            let server = start(ServerConfig {
                wire_style: layout,
                firehose,
                ..fast()
            })
            .await;
            let (mut c, _) = connect_welcomed(&server).await;
            c.subscribe("f", &["AAPL"], &["price", "volume", "orderbook"])
                .await;
            let mut kinds = HashSet::new();
            while kinds.len() < 3 {
                let text = next_data_text(&mut c).await;
                let message = ServerMessage::decode(&text).expect("decodes");
                // Written exactly as the layout writes that message.
                assert_eq!(layout.write(&message), text, "{layout}");
                kinds.insert(message.kind());
            }
            server.shutdown().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_paced_firehose_stamps_and_writes_each_message_at_its_own_time() {
    bounded(async {
        let server = start(ServerConfig {
            firehose: Some(FirehoseConfig {
                rate: Some(2000),
                total: Some(300),
            }),
            ..fast()
        })
        .await;
        let (mut c, _) = connect_welcomed(&server).await;
        c.subscribe("f", &["AAPL"], &["price"]).await;
        let mut stamps = Vec::new();
        for _ in 0..300 {
            stamps.push(micros(c.next_json().await["timestamp"].as_str().unwrap()));
        }
        // Every message has a stamp of its own (a 1 ms timer would send
        // two at a time with one stamp), most about 500 µs after the last
        // one (after a stall, say the thread preempted, pacing restarts
        // rather than bursting).
        let distinct: HashSet<_> = stamps.iter().collect();
        assert!(distinct.len() >= 290, "{} distinct stamps", distinct.len());
        let mut gaps: Vec<i64> = stamps.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_unstable();
        let median = gaps[gaps.len() / 2];
        assert!((250..=1000).contains(&median), "median gap {median} µs");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_binary_serves_and_stops_on_sigterm() {
    bounded(async {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_argus-server"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--tick-interval",
                "5ms",
                "--symbols",
                "AAPL,MSFT",
            ])
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let url = loop {
            let line = tokio::time::timeout(WAIT, lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .expect("the server logs its URL");
            if let Some(at) = line.find("ws://") {
                let url: String = line[at..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                break url;
            }
        };
        assert!(url.ends_with("/ws"), "{url}");
        let addr: std::net::SocketAddr = url["ws://".len()..url.len() - 3].parse().unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut c = handshake(
            &url,
            tcp,
            Opts {
                subprotocol: true,
                ..Opts::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(c.next_json().await["type"], "welcome");
        let reply: Value = c.subscribe("m", &["MSFT"], &["price"]).await;
        assert_eq!(reply["symbols"], json!(["MSFT"]));

        let pid = child.id().unwrap().to_string();
        let killed = std::process::Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap();
        assert!(killed.success());
        assert_eq!(c.end().await.code(), Some(1001));
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status}");
        // Drain the rest of the log so the child never blocks on a full pipe.
        while let Ok(Ok(Some(_))) = tokio::time::timeout(WAIT, lines.next_line()).await {}
    })
    .await;
}
