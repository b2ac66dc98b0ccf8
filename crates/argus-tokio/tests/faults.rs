//! Faults injected by the reference server: abrupt drops, half-open links,
//! refused connections, a skipped seq, a restart.

use std::time::Duration;

use argus_tests::live::*;
use argus_tokio::{
    ConnectError, ConnectionState, DataType, DisconnectReason, Event, Gap, GapCause, GiveUpReason,
    MessageKind, OpenError, SubscriptionConfig, WebSocketClient,
};
use tokio::time::Instant;

fn prices(symbols: &[&str]) -> SubscriptionConfig {
    SubscriptionConfig::new(symbols.iter().copied(), [DataType::Price])
}

/// A client with `config`, recording every message, with its event stream,
/// connected and subscribed as `main` to `symbols`' prices.
async fn recorded_client(
    config: argus_tokio::ConnectionConfig,
    symbols: &[&str],
) -> (WebSocketClient, Recorder, argus_tokio::EventStream) {
    let client = WebSocketClient::new(config).unwrap();
    let seen = Recorder::default();
    client.add_message_handler(MessageKind::All, seen.handler());
    let events = client.events();
    within("connect", client.connect()).await.unwrap();
    if !symbols.is_empty() {
        within("subscribe", client.subscribe("main", prices(symbols)))
            .await
            .unwrap();
    }
    (client, seen, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_resume_without_loss_or_repeat() {
    let server = start_server(server_config()).await;
    let config = client_config(&server.url());
    let (client, seen, mut events) = recorded_client(config, &["AAPL", "MSFT", "GOOGL"]).await;

    for round in 1..=5 {
        seen.wait_for_more(30).await;
        assert!(
            server.drop_connections() >= 1,
            "round {round}: nothing to drop"
        );
        next_event(&mut events, "the drop", |e| match e {
            Event::Disconnected(DisconnectReason::Lost) => Some(()),
            Event::Disconnected(other) => panic!("round {round}: {other:?}"),
            _ => None,
        })
        .await;
        let replayed = next_event(&mut events, "the resume", |e| match e {
            Event::Resumed { replayed } => Some(*replayed),
            Event::Gap(gap) => panic!("round {round}: {gap:?}"),
            _ => None,
        })
        .await;
        println!("round {round}: resumed, {replayed} replayed");
    }
    seen.wait_for_more(30).await;

    let seqs = seen.seqs();
    assert_consecutive(&seqs, 1, "after five drops");
    let stats = client.stats().await.connection;
    assert_eq!(stats.reconnect_count, 5);
    assert_eq!(stats.gaps, 0);
    assert_eq!(stats.state, ConnectionState::Connected);
    assert_eq!(server.stats().connections_accepted, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_link_is_detected_within_heartbeat_plus_timeout() {
    let server = start_server(server_config()).await;
    let config = client_config(&server.url());
    let bound = config.heartbeat_interval + config.timeout;
    let (_client, seen, mut events) = recorded_client(config.clone(), &["AAPL"]).await;
    seen.wait_for(10).await;

    let silent_at = Instant::now();
    assert_eq!(server.go_silent(), 1);
    next_event(&mut events, "the heartbeat timeout", |e| match e {
        Event::Disconnected(DisconnectReason::HeartbeatTimeout { .. }) => Some(()),
        Event::Disconnected(other) => panic!("{other:?}"),
        _ => None,
    })
    .await;
    let detected = silent_at.elapsed();
    println!("half-open link detected after {detected:?} (bound {bound:?})");
    // A ping goes out at most `heartbeat_interval` after the last frame, and
    // its answer is given `timeout`; allow a little for scheduling.
    assert!(
        detected <= bound + Duration::from_millis(100),
        "detected after {detected:?}, bound {bound:?}"
    );
    assert!(
        detected >= config.timeout,
        "detected too early: {detected:?}"
    );

    connected(&mut events).await;
    seen.wait_for_more(10).await;
    assert_consecutive(&seen.seqs(), 1, "after the half-open link");
    server.end_silence();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_beyond_the_budget_end_in_error_after_exactly_max_attempts() {
    const ATTEMPTS: u32 = 4;
    let server = start_server(server_config()).await;
    let config = argus_tokio::ConnectionConfig {
        max_reconnect_attempts: ATTEMPTS,
        ..client_config(&server.url())
    };
    let client = WebSocketClient::new(config).unwrap();
    let mut events = client.events();
    within("connect", client.connect()).await.unwrap();
    assert_eq!(server.stats().connections_accepted, 1);

    server.refuse_connections(Duration::from_secs(600));
    assert_eq!(server.drop_connections(), 1);
    let reason = next_event(&mut events, "giving up", |e| match e {
        Event::GaveUp(reason) => Some(reason.clone()),
        _ => None,
    })
    .await;
    println!("gave up: {reason}");
    assert_eq!(client.state(), ConnectionState::Error);
    let error = client.wait_for_connection().await.unwrap_err();
    assert_eq!(
        error,
        ConnectError::GaveUp(GiveUpReason::AttemptsExhausted {
            attempts: ATTEMPTS,
            last: OpenError::Http { status: 503 }
        })
    );
    let stats = server.stats();
    assert_eq!(stats.connections_refused, u64::from(ATTEMPTS));
    assert_eq!(stats.connection_attempts, 1 + u64::from(ATTEMPTS));

    // connect() from Error tries again, ATTEMPTS times, and says why it failed.
    let error = within("a second round", client.connect())
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        ConnectError::GaveUp(GiveUpReason::AttemptsExhausted {
            attempts: ATTEMPTS,
            ..
        })
    ));
    assert_eq!(server.stats().connections_refused, 2 * u64::from(ATTEMPTS));

    // Once the server accepts again, connect() succeeds.
    server.accept_connections();
    within("connect", client.connect()).await.unwrap();
    within("wait_for_connection", client.wait_for_connection())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_connect_that_keeps_failing_says_why() {
    let server = start_server(server_config()).await;
    server.refuse_connections(Duration::from_secs(600));
    let config = argus_tokio::ConnectionConfig {
        max_reconnect_attempts: 3,
        ..client_config(&server.url())
    };
    let client = WebSocketClient::new(config).unwrap();
    let error = within("connect", client.connect()).await.unwrap_err();
    assert_eq!(
        error,
        ConnectError::GaveUp(GiveUpReason::AttemptsExhausted {
            attempts: 3,
            last: OpenError::Http { status: 503 }
        })
    );
    assert_eq!(error.open_error(), Some(&OpenError::Http { status: 503 }));
    assert_eq!(server.stats().connections_refused, 3);

    // Nobody listening: a network error, retried the same way.
    let port = server.local_addr().port();
    drop(server);
    let config = argus_tokio::ConnectionConfig {
        max_reconnect_attempts: 2,
        ..client_config(&format!("ws://127.0.0.1:{port}/ws"))
    };
    let client = WebSocketClient::new(config).unwrap();
    let error = within("connect", client.connect()).await.unwrap_err();
    assert!(
        matches!(
            error,
            ConnectError::GaveUp(GiveUpReason::AttemptsExhausted {
                attempts: 2,
                last: OpenError::Network(_)
            })
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_seq_is_a_gap_with_the_missing_range() {
    let server = start_server(server_config()).await;
    let config = client_config(&server.url());
    let (client, seen, mut events) = recorded_client(config, &["AAPL", "MSFT"]).await;
    seen.wait_for(10).await;

    server.skip_seq();
    let gap = next_event(&mut events, "the gap", |e| match e {
        Event::Gap(gap) => Some(*gap),
        _ => None,
    })
    .await;
    assert_eq!(gap.cause, GapCause::SeqJump);
    assert_eq!(gap.to, Some(gap.from), "one seq skipped: {gap:?}");
    seen.wait_for_more(10).await;

    let seqs = seen.seqs();
    let hole = seqs
        .windows(2)
        .find(|w| w[1] != w[0] + 1)
        .expect("a hole in the seqs");
    assert_eq!((hole[0] + 1, hole[1] - 1), (gap.from, gap.to.unwrap()));
    let stats = client.stats().await.connection;
    assert_eq!((stats.gaps, stats.missed_messages), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_resume_resubscribes_everything_and_reports_a_gap() {
    let server = start_server(server_config()).await;
    let config = client_config(&server.url());
    let (client, seen, mut events) = recorded_client(config, &[]).await;
    for id in ["one", "two"] {
        within("subscribe", client.subscribe(id, prices(&["AAPL"])))
            .await
            .unwrap();
    }
    seen.wait_for(10).await;

    // A restart forgets every session: the client's resume must fail.
    within("restart", server.restart()).await.unwrap();
    let reason = next_event(&mut events, "the 1001 close", |e| match e {
        Event::Disconnected(reason) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(reason, DisconnectReason::ServerClosed { code: 1001, .. }),
        "{reason:?}"
    );
    let gap: Gap = next_event(&mut events, "the gap", |e| match e {
        Event::Gap(gap) => Some(*gap),
        Event::Resumed { .. } => panic!("the restarted server resumed a session"),
        _ => None,
    })
    .await;
    assert_eq!(gap.cause, GapCause::ResumeFailed);
    assert_eq!(gap.to, None);
    let mut resubscribed = Vec::new();
    while resubscribed.len() < 2 {
        let id = next_event(&mut events, "a resubscription", |e| match e {
            Event::Subscribed(id) => Some(id.to_string()),
            _ => None,
        })
        .await;
        resubscribed.push(id);
    }
    resubscribed.sort();
    assert_eq!(resubscribed, ["one", "two"]);

    // The new session numbers from 1 again, without holes.
    seen.wait_for_more(10).await;
    let seqs = seen.seqs();
    let restart = seqs
        .iter()
        .rposition(|&s| s == 1)
        .expect("the new session starts at seq 1");
    assert!(restart > 0);
    assert_consecutive(&seqs[..restart], 1, "the old session");
    assert_eq!(
        seqs[restart - 1] + 1,
        gap.from,
        "the gap starts after the old session's last seq"
    );
    assert_consecutive(&seqs[restart..], 1, "the new session");
    assert_eq!(client.stats().await.connection.subscriptions_count, 2);
}
