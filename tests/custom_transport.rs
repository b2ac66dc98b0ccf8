//! The core driven by a transport of its own (blocking sockets, no async
//! runtime) against the reference server: data, a lost link, a resume, and
//! a refused key, all decided by the same core as the tokio client.

use std::time::Duration;

use argus_core::{
    ConnectionConfig, ConnectionState, DataType, Event, GiveUpReason, OpenError, SubscriptionConfig,
};
use argus_server::{Server, ServerConfig};
use argus_tests::BlockingDriver;

fn fast(url: &str) -> ConnectionConfig {
    ConnectionConfig::builder(url)
        .heartbeat_interval(Duration::from_millis(200))
        .timeout(Duration::from_millis(500))
        .reconnect_delay(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// Runs the driver until `n` data messages arrived, returning their seqs and
/// every other event's description.
fn collect(driver: &mut BlockingDriver, n: usize) -> (Vec<u64>, Vec<String>) {
    let (mut seqs, mut others) = (Vec::new(), Vec::new());
    while seqs.len() < n {
        match driver.next_event().expect("the client keeps going") {
            Event::Data(d) => seqs.push(d.seq()),
            Event::GaveUp(reason) => panic!("gave up: {reason}"),
            other => others.push(format!("{other:?}")),
        }
    }
    (seqs, others)
}

#[test]
fn a_blocking_transport_gets_data_and_resumes_after_a_drop() {
    let server = Server::start_in_background(ServerConfig {
        tick_interval: Duration::from_millis(5),
        ..ServerConfig::ephemeral()
    })
    .expect("the server starts");
    let mut driver = BlockingDriver::new(fast(&server.url()), 7).unwrap();
    driver.connect();
    driver
        .subscribe(
            "main",
            &SubscriptionConfig::new(["AAPL", "MSFT"], [DataType::Price]),
        )
        .unwrap();
    let (first, _) = collect(&mut driver, 20);
    assert_eq!(first, (1..=20).collect::<Vec<_>>());

    assert_eq!(server.drop_connections(), 1);
    let (rest, events) = collect(&mut driver, 40);
    let expected: Vec<u64> = (21..=60).collect();
    assert_eq!(rest, expected, "nothing lost or repeated across the drop");
    assert!(
        events.iter().any(|e| e.starts_with("Disconnected")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.starts_with("Resumed")),
        "{events:?}"
    );
    assert_eq!(driver.core().state(), ConnectionState::Connected);
    assert_eq!(
        driver
            .core()
            .stats(std::time::Instant::now())
            .reconnect_count,
        1
    );
}

#[test]
fn a_refused_key_is_fatal_after_one_attempt() {
    let server = Server::start_in_background(ServerConfig {
        api_keys: vec!["right".into()],
        ..ServerConfig::ephemeral()
    })
    .expect("the server starts");
    let config = ConnectionConfig {
        api_key: Some("wrong".into()),
        ..fast(&server.url())
    };
    let mut driver = BlockingDriver::new(config, 7).unwrap();
    driver.connect();
    let gave_up = loop {
        match driver.next_event().expect("an answer") {
            Event::GaveUp(reason) => break reason,
            _ => continue,
        }
    };
    assert_eq!(
        gave_up,
        GiveUpReason::Fatal(OpenError::Unauthorized { status: 401 })
    );
    assert_eq!(driver.core().state(), ConnectionState::Error);
    assert!(
        driver.next_event().is_none(),
        "no retry after a refused key"
    );
    assert_eq!(server.stats().connection_attempts, 1);
}
