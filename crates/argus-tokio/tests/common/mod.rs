//! Shared helpers of the integration tests: a reference server on loopback,
//! a client configured for fast tests, and bounded waits.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argus_server::{Server, ServerConfig, ServerHandle};
use argus_tokio::{ClientEvent, ConnectionConfig, EventStream, MarketData, WebSocketClient};
use futures_util::StreamExt;
use tokio::sync::watch;

/// The safety net around every wait: far above what any wait takes.
pub const WAIT: Duration = Duration::from_secs(20);

/// Waits for `future`, failing the test with `what` after [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A server that ticks every 5 ms.
pub fn server_config() -> ServerConfig {
    ServerConfig {
        tick_interval: Duration::from_millis(5),
        ..ServerConfig::ephemeral()
    }
}

pub async fn start_server(config: ServerConfig) -> ServerHandle {
    Server::start(config).await.expect("the server starts")
}

/// A client config with short timers: pings every 200 ms, 300 ms to answer,
/// backoff from 20 ms to 100 ms.
pub fn client_config(url: &str) -> ConnectionConfig {
    ConnectionConfig::builder(url)
        .heartbeat_interval(Duration::from_millis(200))
        .timeout(Duration::from_millis(300))
        .reconnect_delay(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(100))
        .max_reconnect_attempts(10)
        .build()
        .expect("a valid config")
}

/// Records the seqs a handler sees, and lets a test wait for a count.
#[derive(Clone)]
pub struct Recorder {
    seqs: Arc<Mutex<Vec<u64>>>,
    count: Arc<watch::Sender<usize>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            seqs: Arc::default(),
            count: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Recorder {
    pub fn record(&self, data: &MarketData) {
        let mut seqs = self.seqs.lock().unwrap();
        seqs.push(data.seq());
        let n = seqs.len();
        drop(seqs);
        self.count.send_replace(n);
    }

    /// A synchronous handler recording into this recorder.
    pub fn handler(&self) -> impl FnMut(&MarketData) + Send + 'static {
        let me = self.clone();
        move |data: &MarketData| me.record(data)
    }

    pub fn seqs(&self) -> Vec<u64> {
        self.seqs.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        *self.count.borrow()
    }

    /// Waits until at least `n` messages were recorded.
    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.count.subscribe();
        within(&format!("{n} messages"), rx.wait_for(|&c| c >= n))
            .await
            .expect("the recorder lives");
    }

    /// Waits for `n` more messages than now.
    pub async fn wait_for_more(&self, n: usize) {
        let target = self.len() + n;
        self.wait_for(target).await;
    }
}

/// Asserts that `seqs` is exactly `first..=last` for some last, in order.
pub fn assert_consecutive(seqs: &[u64], first: u64, context: &str) {
    for (i, pair) in seqs.windows(2).enumerate() {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "{context}: seq {} follows {} at index {}",
            pair[1],
            pair[0],
            i + 1
        );
    }
    if let Some(&head) = seqs.first() {
        assert_eq!(head, first, "{context}: the first seq");
    }
}

/// Waits for the next event matching `pick` on `events`, returning what
/// `pick` made of it.
pub async fn next_event<T>(
    events: &mut EventStream,
    what: &str,
    mut pick: impl FnMut(&ClientEvent) -> Option<T>,
) -> T {
    within(what, async {
        while let Some(event) = events.next().await {
            if let Some(found) = pick(&event) {
                return found;
            }
        }
        panic!("the event stream ended while waiting for {what}");
    })
    .await
}

/// Waits until the client reports `Connected` on `events`.
pub async fn connected(events: &mut EventStream) {
    next_event(events, "a connection", |e| match e {
        ClientEvent::StateChanged {
            to: argus_tokio::ConnectionState::Connected,
            ..
        } => Some(()),
        _ => None,
    })
    .await
}

/// A client of `server` with the fast test config.
pub fn client(server: &ServerHandle) -> WebSocketClient {
    WebSocketClient::new(client_config(&server.url())).expect("a valid client")
}
