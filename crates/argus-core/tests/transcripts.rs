//! Transcript tests: each main scenario as the whole sequence of what crossed
//! between the client, the model server and the application, compared whole.

mod support;

use std::time::Duration;

use argus_core::{ConnectionState, DataType, SubscriptionConfig};
use support::Bed;

fn prices(symbols: &[&str]) -> SubscriptionConfig {
    SubscriptionConfig::new(symbols.iter().copied(), [DataType::Price])
}

fn connected_with_main(seed: u64) -> Bed {
    let mut bed = Bed::new(Bed::config(), seed);
    bed.client.connect(bed.now);
    bed.client
        .subscribe(bed.now, "main", &prices(&["AAPL"]))
        .unwrap();
    bed.settle();
    bed.take();
    bed
}

fn assert_transcript(actual: Vec<String>, expected: &[&str]) {
    let actual: Vec<&str> = actual.iter().map(String::as_str).collect();
    assert_eq!(
        actual,
        expected,
        "\nactual transcript:\n{}",
        actual.join("\n")
    );
}

#[test]
fn connect_welcome_subscribe_data() {
    let mut bed = Bed::new(Bed::config(), 1);
    bed.client.connect(bed.now);
    bed.settle();
    bed.client
        .subscribe(bed.now, "main", &prices(&["aapl", "GOOGL"]))
        .unwrap();
    bed.settle();
    bed.server.tick(189.5);
    bed.settle();
    assert_transcript(
        bed.take(),
        &[
            "open",
            "state connecting",
            "recv welcome",
            "session started",
            "state connected",
            "send subscribe main",
            "recv subscribed",
            "subscribed main",
            "recv price main #1",
            "data main #1",
        ],
    );
}

#[test]
fn subscribe_while_disconnected_is_sent_on_connect() {
    let mut bed = Bed::new(Bed::config(), 1);
    bed.client
        .subscribe(bed.now, "early", &prices(&["MSFT"]))
        .unwrap();
    bed.settle();
    assert!(bed.take().is_empty(), "nothing is sent before connect");
    bed.client.connect(bed.now);
    bed.settle();
    assert_transcript(
        bed.take(),
        &[
            "open",
            "state connecting",
            "recv welcome",
            "send subscribe early",
            "session started",
            "state connected",
            "recv subscribed",
            "subscribed early",
        ],
    );
}

#[test]
fn server_restart_backoff_reconnect_resume_replay_live() {
    let mut bed = connected_with_main(2);
    bed.server.tick(1.0);
    bed.settle();
    // Two messages are produced while the client is away.
    bed.server_close(Some(1001));
    bed.server.conn = Some(("s1".into(), true));
    bed.server.tick(2.0);
    bed.server.tick(3.0);
    bed.server.close();
    bed.step();
    bed.server.tick(4.0);
    bed.settle();
    assert_transcript(
        bed.take(),
        &[
            "recv price main #1",
            "data main #1",
            "server closes Some(1001)",
            "disconnected the server closed the connection with code 1001: ",
            "state reconnecting",
            "reconnecting attempt=1 in 601ms",
            "t+601ms",
            "open",
            "recv welcome",
            "send resume last_seq=1",
            "state connected",
            "recv resumed",
            "resumed replayed=2",
            "recv price main #2",
            "data main #2",
            "recv price main #3",
            "data main #3",
            "recv price main #4",
            "data main #4",
        ],
    );
    assert_eq!(bed.client.stats(bed.now).reconnect_count, 1);
}

#[test]
fn resume_failed_resubscribes_everything_and_reports_a_gap() {
    let mut bed = connected_with_main(3);
    bed.client
        .subscribe(bed.now, "second", &prices(&["MSFT"]))
        .unwrap();
    bed.server.tick(1.0);
    bed.settle();
    bed.take();
    bed.server_close(None);
    bed.server.sessions.clear(); // the server forgot every session
    bed.step();
    assert_transcript(
        bed.take(),
        &[
            "server closes None",
            "disconnected the connection was lost without a close frame",
            "state reconnecting",
            "reconnecting attempt=1 in 790ms",
            "t+790ms",
            "open",
            "recv welcome",
            "send resume last_seq=1",
            "state connected",
            "recv error resume_failed",
            "send subscribe main",
            "send subscribe second",
            "gap 2.. ResumeFailed",
            "session started",
            "recv subscribed",
            "subscribed main",
            "recv subscribed",
            "subscribed second",
        ],
    );
    bed.server.tick(5.0);
    bed.settle();
    assert_transcript(
        bed.take(),
        &[
            "recv price main #1",
            "data main #1",
            "recv price second #2",
            "data second #2",
        ],
    );
}

#[test]
fn heartbeat_timeout_reconnects() {
    let mut bed = connected_with_main(4);
    bed.step(); // t+30s: ping, answered
    bed.server.half_open = true;
    bed.step(); // t+60s: ping, unanswered
    bed.step(); // t+70s: dead
    bed.step(); // reconnect
    assert_transcript(
        bed.take(),
        &[
            "t+30000ms",
            "ping",
            "t+60000ms",
            "ping",
            "t+70000ms",
            "close 1001",
            "disconnected no frame within 10s after a ping: the link is dead",
            "state reconnecting",
            "reconnecting attempt=1 in 561ms",
            "t+70561ms",
            "open",
            "recv welcome",
            "send resume last_seq=0",
            "state connected",
            "recv resumed",
            "resumed replayed=0",
        ],
    );
    assert!(bed.client.stats(bed.now).rtt.is_some());
}

#[test]
fn unauthorized_is_fatal_without_retry() {
    let mut bed = Bed::new(Bed::config(), 5);
    bed.server.unauthorized = true;
    bed.client.connect(bed.now);
    bed.settle();
    assert!(!bed.step(), "no timer left after a fatal error");
    assert_transcript(
        bed.take(),
        &[
            "open",
            "state connecting",
            "attempt 1 failed: the server refused the credentials (HTTP 401); check the api key",
            "state error",
            "gave up: fatal the server refused the credentials (HTTP 401); check the api key",
        ],
    );
    assert_eq!(bed.server.opens, 1);
}

#[test]
fn attempts_exhausted_is_an_error() {
    let config = argus_core::ConnectionConfig {
        max_reconnect_attempts: 3,
        ..Bed::config()
    };
    let mut bed = Bed::new(config, 6);
    bed.server.refuse = 100;
    bed.client.connect(bed.now);
    while bed.step() {}
    assert_transcript(
        bed.take(),
        &[
            "open",
            "state connecting",
            "attempt 1 failed: the server answered the upgrade with HTTP 503",
            "state reconnecting",
            "reconnecting attempt=1 in 857ms",
            "t+857ms",
            "open",
            "attempt 2 failed: the server answered the upgrade with HTTP 503",
            "reconnecting attempt=2 in 1693ms",
            "t+2551ms",
            "open",
            "attempt 3 failed: the server answered the upgrade with HTTP 503",
            "state error",
            "gave up: gave up after 3 failed attempts; last: the server answered the upgrade with HTTP 503",
        ],
    );
    assert_eq!(bed.server.opens, 3);
    assert_eq!(bed.client.state(), ConnectionState::Error);
}

#[test]
fn connect_timeout_counts_as_a_failed_attempt() {
    let mut bed = Bed::new(Bed::config(), 7);
    bed.client.connect(bed.now);
    bed.take();
    // The open never completes: the transport hangs.
    bed.client.poll_transmit();
    bed.advance(Duration::from_secs(10));
    let t = bed.take();
    assert!(t.contains(&"close 1000".to_owned()), "{t:?}");
    assert!(
        t.iter()
            .any(|l| l.starts_with("attempt 1 failed: no welcome within 10s")),
        "{t:?}"
    );
}

#[test]
fn a_skipped_seq_is_a_gap_with_the_missing_range() {
    let mut bed = connected_with_main(8);
    bed.server.tick(1.0);
    bed.server.skip_next = true;
    bed.server.tick(2.0);
    bed.settle();
    assert_transcript(
        bed.take(),
        &[
            "recv price main #1",
            "data main #1",
            "recv price main #3",
            "gap 2..=2",
            "data main #3",
        ],
    );
    let stats = bed.client.stats(bed.now);
    assert_eq!((stats.gaps, stats.missed_messages), (1, 1));
}

#[test]
fn server_refusal_of_a_subscribe_is_a_typed_event_and_frees_the_id() {
    let mut bed = connected_with_main(9);
    bed.client
        .subscribe(bed.now, "bad", &prices(&["BADX"]))
        .unwrap();
    bed.settle();
    assert_transcript(
        bed.take(),
        &[
            "send subscribe bad",
            "recv error unknown_symbol",
            "subscribe_failed bad unknown_symbol",
        ],
    );
    assert_eq!(bed.client.subscriptions().count(), 1);
    bed.client
        .subscribe(bed.now, "bad", &prices(&["IBM"]))
        .unwrap();
}

#[test]
fn local_mistakes_are_typed_errors_and_send_nothing() {
    use argus_core::{SubscribeError, UnsubscribeError};
    let config = argus_core::ConnectionConfig {
        max_subscriptions: 1,
        ..Bed::config()
    };
    let mut bed = Bed::new(config, 10);
    let now = bed.now;
    bed.client.subscribe(now, "a", &prices(&["AAPL"])).unwrap();
    assert!(matches!(
        bed.client.subscribe(now, "a", &prices(&["MSFT"])),
        Err(SubscribeError::Duplicate(_))
    ));
    assert!(matches!(
        bed.client.subscribe(now, "b", &prices(&["MSFT"])),
        Err(SubscribeError::TooMany { max: 1 })
    ));
    assert!(matches!(
        bed.client.subscribe(now, "no spaces", &prices(&["MSFT"])),
        Err(SubscribeError::InvalidId(_))
    ));
    assert!(matches!(
        bed.client.subscribe(now, "c", &prices(&["A B"])),
        Err(SubscribeError::InvalidConfig(_))
    ));
    assert_eq!(
        bed.client.unsubscribe(now, "zzz"),
        Err(UnsubscribeError::Unknown("zzz".into()))
    );
    bed.settle();
    assert!(bed.take().is_empty());
}

#[test]
fn changes_made_while_away_are_reconciled_after_resume() {
    let mut bed = connected_with_main(11);
    bed.client
        .subscribe(bed.now, "keep", &prices(&["IBM"]))
        .unwrap();
    bed.settle();
    bed.server_close(Some(1001));
    bed.client.unsubscribe(bed.now, "main").unwrap();
    bed.client
        .subscribe(bed.now, "new", &prices(&["MSFT"]))
        .unwrap();
    bed.take();
    bed.step();
    assert_transcript(
        bed.take(),
        &[
            "t+952ms",
            "open",
            "recv welcome",
            "send resume last_seq=0",
            "state connected",
            "recv resumed",
            "send unsubscribe main",
            "send subscribe new",
            "resumed replayed=0",
            "recv unsubscribed",
            "recv subscribed",
            "subscribed new",
        ],
    );
    let session = &bed.server.sessions[&bed.server.conn.as_ref().unwrap().0];
    assert_eq!(session.subs.keys().collect::<Vec<_>>(), ["keep", "new"]);
}

#[test]
fn bad_frames_never_kill_the_connection() {
    let mut bed = connected_with_main(12);
    for frame in [
        "",
        "not json",
        "[1,2]",
        r#"{"type":"price","sub":"main"}"#,
        r#"{"type":"brand_new"}"#,
    ] {
        bed.feed(frame);
    }
    bed.client
        .handle_input(bed.now, argus_core::Input::Binary(&[1, 2, 3]));
    bed.server.tick(1.0);
    bed.settle();
    let t = bed.take();
    assert_eq!(
        t.iter().filter(|l| l.starts_with("protocol error")).count(),
        5,
        "{t:?}"
    );
    assert!(t.contains(&"ignored brand_new".to_owned()), "{t:?}");
    assert!(t.contains(&"data main #1".to_owned()), "{t:?}");
    assert_eq!(bed.client.state(), ConnectionState::Connected);
    assert_eq!(bed.client.stats(bed.now).errors, 5);
}

#[test]
fn disconnect_closes_normally_and_stays_down() {
    let mut bed = connected_with_main(13);
    bed.client.disconnect(bed.now);
    bed.settle();
    assert!(!bed.step(), "no timers after a user disconnect");
    assert_transcript(bed.take(), &["close 1000", "state disconnected"]);
    assert_eq!(bed.client.subscriptions().count(), 0);
}

#[test]
fn a_link_failure_seen_by_the_transport_reconnects_and_says_why() {
    let mut bed = connected_with_main(14);
    bed.client.handle_input(
        bed.now,
        argus_core::Input::Failed(argus_core::LinkError::MessageTooBig),
    );
    bed.server.close();
    bed.step();
    let t = bed.take();
    assert_eq!(
        t[..4],
        [
            "close 1009",
            "disconnected the link failed: an incoming message exceeded max_message_size",
            "state reconnecting",
            "reconnecting attempt=1 in 513ms",
        ],
        "{t:?}"
    );
    assert_eq!(bed.client.state(), ConnectionState::Connected);
}

#[test]
fn a_subscribe_never_answered_times_out_and_the_link_stays_up() {
    let mut bed = connected_with_main(15);
    bed.server.mute = true;
    bed.client
        .subscribe(bed.now, "late", &prices(&["MSFT"]))
        .unwrap();
    bed.settle();
    // The subscribe's deadline (10 s) comes before the first ping (30 s).
    bed.step();
    bed.step();
    bed.step();
    assert_transcript(
        bed.take(),
        &[
            "send subscribe late",
            "t+10000ms",
            "send unsubscribe late",
            "subscribe late timed out",
            "t+20000ms",
            "unsubscribe late timed out",
            "t+30000ms",
            "ping",
        ],
    );
    assert_eq!(bed.client.state(), ConnectionState::Connected);
    let ids: Vec<_> = bed
        .client
        .subscriptions()
        .map(|(id, ..)| id.as_str())
        .collect();
    assert_eq!(ids, ["main"], "the subscribe that timed out is gone");
    assert_eq!(bed.client.stats(bed.now).errors, 2);
}

#[test]
fn an_answer_in_time_cancels_the_deadline() {
    let mut bed = connected_with_main(16);
    bed.client
        .subscribe(bed.now, "quick", &prices(&["MSFT"]))
        .unwrap();
    bed.client.unsubscribe(bed.now, "main").unwrap();
    bed.settle();
    assert!(bed.step());
    assert_transcript(
        bed.take(),
        &[
            "send subscribe quick",
            "send unsubscribe main",
            "recv subscribed",
            "subscribed quick",
            "recv unsubscribed",
            // No deadline left but the heartbeat's.
            "t+30000ms",
            "ping",
        ],
    );
}

#[test]
fn a_resume_never_answered_is_a_lost_session() {
    let mut bed = connected_with_main(17);
    bed.server.tick(1.0);
    bed.settle();
    bed.server_close(Some(1001));
    bed.server.mute = true;
    bed.take();
    bed.step(); // the reconnect
    bed.server.mute = false;
    bed.step(); // the resume's deadline
    assert_transcript(
        bed.take(),
        &[
            "t+962ms",
            "open",
            "recv welcome",
            "send resume last_seq=1",
            "state connected",
            "t+10962ms",
            "send subscribe main",
            "gap 2.. ResumeTimedOut",
            "session started",
            "recv subscribed",
            "subscribed main",
        ],
    );
    assert_eq!(bed.client.state(), ConnectionState::Connected);
}

#[test]
fn a_protocol_version_the_client_does_not_speak_is_fatal_at_once() {
    let mut bed = Bed::new(Bed::config(), 18);
    bed.server.protocol = Some(2);
    bed.client.connect(bed.now);
    bed.settle();
    assert!(!bed.step(), "no retry is scheduled");
    assert_transcript(
        bed.take(),
        &[
            "open",
            "state connecting",
            "recv welcome",
            "close 1002",
            "attempt 1 failed: the server speaks protocol version 2; this client speaks 1",
            "state error",
            "gave up: fatal the server speaks protocol version 2; this client speaks 1",
        ],
    );
    assert_eq!(bed.server.opens, 1);
}

fn price_frame(seq: u64) -> String {
    format!(
        r#"{{"type":"price","sub":"main","seq":{seq},"symbol":"AAPL","price":1.5,"timestamp":"2026-11-24T09:49:56.123Z"}}"#
    )
}

#[test]
fn a_seq_too_far_ahead_is_an_error_not_data_and_the_client_starts_over() {
    let mut bed = connected_with_main(19);
    bed.server.tick(1.0);
    bed.settle();
    bed.feed(&price_frame((1 << 63) + 5));
    bed.take();
    bed.step(); // the reconnect, without a resume: the session is gone
    bed.server.tick(2.0);
    bed.server.tick(3.0);
    bed.settle();
    let t = bed.take();
    assert_eq!(
        t[..4],
        ["t+923ms", "open", "recv welcome", "send subscribe main"],
        "{t:?}"
    );
    assert!(t.contains(&"send subscribe main".to_owned()), "{t:?}");
    assert!(!t.iter().any(|l| l.starts_with("send resume")), "{t:?}");
    assert!(
        t.ends_with(&[
            "recv price main #1".into(),
            "data main #1".into(),
            "recv price main #2".into(),
            "data main #2".into()
        ]),
        "{t:?}"
    );
    let gaps: Vec<_> = bed
        .events
        .iter()
        .filter_map(|e| match e {
            argus_core::Event::Gap(g) => Some(*g),
            _ => None,
        })
        .collect();
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].from, gaps[0].to), (2, None));
    let shown: Vec<String> = bed.events.iter().map(support::describe_event).collect();
    assert!(
        shown.iter().any(|e| e.contains(
            "protocol error: seq 9223372036854775813 after 1 jumps further than max_seq_jump"
        )),
        "{shown:?}"
    );
    assert!(
        shown.iter().all(|e| !e.contains("#9223372036854775813")),
        "never delivered: {shown:?}"
    );
}

#[test]
fn seqs_at_the_top_of_the_range_never_wrap() {
    let config = argus_core::ConnectionConfig {
        max_seq_jump: u64::MAX,
        ..Bed::config()
    };
    let mut bed = Bed::new(config, 20);
    bed.client.connect(bed.now);
    bed.client
        .subscribe(bed.now, "main", &prices(&["AAPL"]))
        .unwrap();
    bed.settle();
    for seq in [1, u64::MAX - 1, u64::MAX, u64::MAX, 7] {
        bed.feed(&price_frame(seq));
    }
    assert_eq!(bed.client.last_seq(), Some(u64::MAX));
    // A resume refused at the top: the gap starts at the top, not at 0.
    bed.server_close(Some(1001));
    bed.server.sessions.clear(); // the server forgot every session
    bed.take();
    bed.step();
    let gaps: Vec<_> = bed
        .events
        .iter()
        .filter_map(|e| match e {
            argus_core::Event::Gap(g) => Some((g.from, g.to)),
            _ => None,
        })
        .collect();
    assert_eq!(gaps, [(2, Some(u64::MAX - 2)), (u64::MAX, None)]);
    assert_eq!(bed.client.stats(bed.now).duplicates, 2);
}

#[test]
fn a_server_that_welcomes_and_closes_meets_a_growing_backoff_then_the_limit() {
    let config = argus_core::ConnectionConfig {
        max_reconnect_attempts: 3,
        ..Bed::config()
    };
    let mut bed = Bed::new(config, 21);
    bed.client.connect(bed.now);
    bed.client
        .subscribe(bed.now, "main", &prices(&["AAPL"]))
        .unwrap();
    bed.settle();
    for _ in 0..3 {
        bed.server_close(Some(1000));
        bed.step();
    }
    let t: Vec<String> = bed
        .take()
        .into_iter()
        .filter(|l| l.starts_with("reconnecting") || l.starts_with("gave up"))
        .collect();
    assert_transcript(
        t,
        &[
            "reconnecting attempt=1 in 719ms",
            "reconnecting attempt=2 in 1491ms",
            "gave up: gave up after 3 failed attempts; last: the connection ended before it was of any use: the server closed the connection with code 1000: ",
        ],
    );
    assert_eq!(bed.client.state(), ConnectionState::Error);
}

#[test]
fn oversized_content_is_refused_before_it_is_copied_and_the_feed_goes_on() {
    let mut bed = connected_with_main(22);
    let levels = |n: usize| {
        (0..n)
            .map(|i| format!("[{}.5,{}]", 100 + i, i + 1))
            .collect::<Vec<_>>()
            .join(",")
    };
    let deep = format!(
        r#"{{"type":"orderbook","sub":"main","seq":1,"symbol":"AAPL","bids":[{}],"asks":[{}],"timestamp":"2026-11-24T09:49:56.123Z"}}"#,
        levels(100_000),
        levels(1)
    );
    let long_symbol = format!(
        r#"{{"type":"price","sub":"main","seq":2,"symbol":"{}","price":1.5,"timestamp":"2026-11-24T09:49:56.123Z"}}"#,
        "X".repeat(1 << 20)
    );
    let long_seq = format!(
        r#"{{"type":"price","sub":"main","seq":"{}","symbol":"AAPL","price":1.5,"timestamp":"2026-11-24T09:49:56.123Z"}}"#,
        "9".repeat(1 << 20)
    );
    bed.feed(&deep);
    bed.feed(&long_symbol);
    bed.feed(&long_seq);
    bed.feed(&price_frame(3));
    let shown: Vec<String> = bed.events.iter().map(support::describe_event).collect();
    let errors: Vec<&String> = shown
        .iter()
        .filter(|e| e.starts_with("protocol error"))
        .collect();
    assert_eq!(errors.len(), 3, "{shown:?}");
    assert!(
        errors[0]
            .contains("order book of at least 11 bids and 1 asks; the protocol allows 10 a side"),
        "{errors:?}"
    );
    assert!(errors[1].contains("(1048576 bytes)"), "{errors:?}");
    assert!(
        errors.iter().all(|e| e.len() < 300),
        "errors keep excerpts only: {errors:?}"
    );
    assert!(shown.contains(&"data main #3".to_owned()), "{shown:?}");
    assert_eq!(bed.client.state(), ConnectionState::Connected);
}

/// A process that persisted its resume point, died and restarted: the new
/// client resumes the session from the persisted seq, and the server
/// replays what came after it.
fn restarted_from_seq_1(forget_sessions: bool) -> Vec<String> {
    let mut bed = connected_with_main(21);
    for price in [1.0, 2.0, 3.0] {
        bed.server.tick(price);
    }
    bed.settle();
    let mut point = bed.client.resume_point().cloned().expect("a session");
    assert_eq!(point.last_seq, 3);
    point.last_seq = 1; // persisted after #1 only
    assert!(!format!("{point:?}").contains(point.session.expose()));
    bed.server.close();
    if forget_sessions {
        bed.server.sessions.clear();
    }
    bed.client = argus_core::Client::new(Bed::config(), 22).unwrap();
    bed.client
        .subscribe(bed.now, "main", &prices(&["AAPL"]))
        .unwrap();
    assert!(bed.client.resume_from(point));
    bed.client.connect(bed.now);
    bed.take();
    bed.settle();
    assert!(
        !bed.client
            .resume_from(bed.client.resume_point().cloned().unwrap()),
        "only before connecting"
    );
    bed.take()
}

#[test]
fn a_restarted_process_resumes_its_persisted_point() {
    assert_transcript(
        restarted_from_seq_1(false),
        &[
            "open",
            "state connecting",
            "recv welcome",
            "send resume last_seq=1",
            "state connected",
            "recv resumed",
            "resumed replayed=2",
            "recv price main #2",
            "data main #2",
            "recv price main #3",
            "data main #3",
        ],
    );
}

#[test]
fn a_restart_after_the_session_expired_reports_one_gap_from_the_persisted_seq() {
    assert_transcript(
        restarted_from_seq_1(true),
        &[
            "open",
            "state connecting",
            "recv welcome",
            "send resume last_seq=1",
            "state connected",
            "recv error resume_failed",
            "send subscribe main",
            "gap 2.. ResumeFailed",
            "session started",
            "recv subscribed",
            "subscribed main",
        ],
    );
}
