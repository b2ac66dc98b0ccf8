//! Helpers of the live tests, for clients of any [`Runtime`]: the reference
//! server on loopback (on a runtime of its own), a client configured for
//! fast tests, recorders of what consumers saw, and bounded waits that work
//! under any executor.
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argus_client::{EventStream, Runtime, WebSocketClient};
use argus_core::{ConnectionConfig, ConnectionState, Event, GapCause, MarketData};
use argus_server::{BackgroundServer, Server, ServerConfig};
use futures_util::StreamExt;
use tokio::sync::watch;

/// The safety net around every wait: far above what any wait takes.
pub const WAIT: Duration = Duration::from_secs(20);

/// Waits for `future`, failing the test with `what` after [`WAIT`]. The
/// timer is async-io's, so this works under any executor.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    let timer = async {
        async_io::Timer::after(WAIT).await;
        panic!("timed out after {WAIT:?} waiting for {what}");
    };
    futures_util::pin_mut!(future, timer);
    match futures_util::future::select(future, timer).await {
        futures_util::future::Either::Left((value, _)) => value,
        futures_util::future::Either::Right((never, _)) => never,
    }
}

/// Sleeps, under any executor (for workload, never for synchronisation).
pub async fn pause(duration: Duration) {
    async_io::Timer::after(duration).await;
}

/// A server config that ticks every 5 ms.
pub fn server_config() -> ServerConfig {
    ServerConfig {
        tick_interval: Duration::from_millis(5),
        ..ServerConfig::ephemeral()
    }
}

/// The reference server, on a tokio runtime of its own.
pub fn server(config: ServerConfig) -> BackgroundServer {
    Server::start_in_background(config).expect("the server starts")
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

/// A client of `url` with the fast test config.
pub fn client<R: Runtime>(url: &str) -> WebSocketClient<R> {
    WebSocketClient::new(client_config(url)).expect("a valid client")
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
    /// Records one message.
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

    /// The seqs so far.
    pub fn seqs(&self) -> Vec<u64> {
        self.seqs.lock().unwrap().clone()
    }

    /// How many so far.
    pub fn len(&self) -> usize {
        *self.count.borrow()
    }

    /// Whether none so far.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

/// One line of what a consumer saw of data and gaps: `#17` for data,
/// `gap 18..=18` for a gap, in order. Two consumers of one client see the
/// same lines.
pub fn journal_line(event: &Event) -> Option<String> {
    match event {
        Event::Data(data) => Some(format!("#{}", data.seq())),
        Event::Gap(gap) => Some(match (gap.to, gap.cause) {
            (Some(to), GapCause::SeqJump) => format!("gap {}..={to}", gap.from),
            (_, cause) => format!("gap {}.. {cause:?}", gap.from),
        }),
        _ => None,
    }
}

/// Waits for the next event matching `pick` on `events`, returning what
/// `pick` made of it.
pub async fn next_event<T>(
    events: &mut EventStream,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
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
        Event::StateChanged {
            to: ConnectionState::Connected,
            ..
        } => Some(()),
        _ => None,
    })
    .await
}

/// The reference server on the calling task's tokio runtime (for tests that
/// run on tokio; [`server`] works under any runtime).
pub async fn start_server(config: ServerConfig) -> argus_server::ServerHandle {
    Server::start(config).await.expect("the server starts")
}
