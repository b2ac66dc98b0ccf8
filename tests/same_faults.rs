//! One fault, one answer, whatever the transport: the tokio adapter, the
//! async-std adapter and the blocking transport of this crate are driven
//! through the same faults of the reference server (401, 503, a reset, an
//! oversized message, close 1001), and the user sees the same events from
//! each. The events carry what the transport handed the core (the open
//! error of an attempt, the close code or link failure of a lost link), so
//! identical events mean identical inputs. The core decides the rest: the
//! same seed gives the same backoff.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use argus_client::{Runtime, WebSocketClient};
use argus_core::{ConnectionConfig, DataType, Event, SubscriptionConfig};
use argus_server::{BackgroundServer, ServerConfig};
use argus_tests::BlockingDriver;
use argus_tests::live::{server, server_config, within};
use futures_util::StreamExt;

const SEED: u64 = 7;
const MAX_MESSAGE: usize = 4096;

#[derive(Clone, Copy, Debug)]
enum Fault {
    Unauthorized,
    Refused,
    Reset,
    TooBig,
    GoingAway,
}

impl Fault {
    fn server(self) -> BackgroundServer {
        let config = match self {
            Self::Unauthorized => ServerConfig {
                api_keys: vec!["the-right-key".into()],
                ..server_config()
            },
            _ => server_config(),
        };
        let bed = server(config);
        if let Self::Refused = self {
            bed.refuse_next_connections(2);
        }
        bed
    }

    /// Whether the client is subscribed before the fault (a refusal and a
    /// bad key strike at the first attempt).
    fn strikes_live(self) -> bool {
        !matches!(self, Self::Unauthorized | Self::Refused)
    }

    fn strike(self, bed: &BackgroundServer) {
        match self {
            Self::Unauthorized | Self::Refused => {}
            Self::Reset => assert_eq!(bed.drop_connections(), 1),
            Self::TooBig => {
                let big = format!(
                    r#"{{"type":"note","pad":"{}"}}"#,
                    "x".repeat(2 * MAX_MESSAGE)
                );
                assert_eq!(bed.inject_text(&big), 1);
            }
            Self::GoingAway => assert_eq!(bed.disconnect_all(1001, "going away"), 1),
        }
    }

    /// Whether `event` ends the run: the client gave up, or is live again.
    fn ends(self, event: &Event) -> bool {
        match self {
            Self::Unauthorized => matches!(event, Event::GaveUp(_)),
            Self::Refused => matches!(event, Event::Subscribed(_)),
            _ => matches!(event, Event::Resumed { .. }),
        }
    }
}

fn config(url: &str) -> ConnectionConfig {
    ConnectionConfig::builder(url)
        .api_key("a-wrong-key")
        .heartbeat_interval(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .reconnect_delay(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(100))
        .max_message_size(MAX_MESSAGE)
        .build()
        .unwrap()
}

fn subscription() -> SubscriptionConfig {
    SubscriptionConfig::new(["AAPL"], [DataType::Price])
}

/// What the user saw, without data and without what timing decides (how
/// many messages a resume replayed).
fn describe(event: &Event) -> Option<String> {
    match event {
        Event::Data(_) => None,
        Event::Resumed { .. } => Some("resumed".into()),
        other => Some(format!("{other:?}")),
    }
}

fn blocking(fault: Fault) -> Vec<String> {
    let bed = fault.server();
    let mut driver = BlockingDriver::new(config(&bed.url()), SEED).unwrap();
    let mut seen = Vec::new();
    driver.connect();
    driver.subscribe("main", &subscription()).unwrap();
    let mut struck = !fault.strikes_live();
    for _ in 0..100_000 {
        let event = driver.next_event().expect("the client goes on");
        seen.extend(describe(&event));
        if !struck && matches!(event, Event::Subscribed(_)) {
            fault.strike(&bed);
            struck = true;
        } else if struck && fault.ends(&event) {
            return seen;
        }
    }
    panic!("{fault:?}: no end: {seen:?}");
}

fn on_runtime<R: Runtime>(
    fault: Fault,
    block_on: fn(Pin<Box<dyn Future<Output = ()> + '_>>),
) -> Vec<String> {
    let bed = fault.server();
    let mut seen = Vec::new();
    block_on(Box::pin(async {
        let client = WebSocketClient::<R>::builder(config(&bed.url()))
            .rng_seed(SEED)
            .build()
            .unwrap();
        let mut events = client.events();
        let connecting = client.clone();
        R::spawn(async move {
            if connecting.connect().await.is_ok() {
                let _ = connecting.subscribe("main", subscription()).await;
            }
        });
        let mut struck = !fault.strikes_live();
        within(&format!("{fault:?}"), async {
            while let Some(event) = events.next().await {
                seen.extend(describe(&event));
                if !struck && matches!(event, Event::Subscribed(_)) {
                    fault.strike(&bed);
                    struck = true;
                } else if struck && fault.ends(&event) {
                    return;
                }
            }
            panic!("{fault:?}: the stream ended");
        })
        .await;
    }));
    seen
}

fn on_tokio(test: Pin<Box<dyn Future<Output = ()> + '_>>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

fn on_async_std(test: Pin<Box<dyn Future<Output = ()> + '_>>) {
    async_std::task::block_on(test);
}

fn same_events(fault: Fault, expected: &[&str]) {
    let blocking = blocking(fault);
    let tokio = on_runtime::<argus_tokio::Tokio>(fault, on_tokio);
    let async_std = on_runtime::<argus_async_std::AsyncStd>(fault, on_async_std);
    assert_eq!(
        tokio, blocking,
        "{fault:?}: tokio against the blocking transport"
    );
    assert_eq!(
        async_std, blocking,
        "{fault:?}: async-std against the blocking transport"
    );
    for want in expected {
        assert!(
            blocking.iter().any(|line| line.contains(want)),
            "{fault:?}: no `{want}` in {blocking:#?}"
        );
    }
}

#[test]
fn unauthorized() {
    same_events(
        Fault::Unauthorized,
        &[
            "AttemptFailed { attempt: 1, error: Unauthorized { status: 401 } }",
            "GaveUp(Fatal(Unauthorized { status: 401 }))",
        ],
    );
}

#[test]
fn refused_with_503() {
    same_events(
        Fault::Refused,
        &[
            "AttemptFailed { attempt: 2, error: Http { status: 503 } }",
            "Reconnecting { attempt: 2",
        ],
    );
}

#[test]
fn reset() {
    same_events(Fault::Reset, &["Disconnected(Lost)", "resumed"]);
}

#[test]
fn oversized_message() {
    same_events(
        Fault::TooBig,
        &["Disconnected(Failed { error: MessageTooBig })", "resumed"],
    );
}

#[test]
fn going_away() {
    same_events(
        Fault::GoingAway,
        &[
            "Disconnected(ServerClosed { code: 1001, reason: \"going away\" })",
            "resumed",
        ],
    );
}
