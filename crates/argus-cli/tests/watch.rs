//! `argus watch`'s screen: the model fed data and events, drawn into
//! ratatui's `TestBackend`.

mod common;

use std::time::Instant;

use argus_cli::feed::Feed;
use argus_cli::watch::{Model, render};
use argus_core::Symbol;
use argus_core::wire::ServerMessage;
use argus_tokio::{
    ConnectionState, DataType, Event, Lagged, MarketData, QueuePolicy, SubscriptionConfig,
    SubscriptionId, WebSocketClient,
};
use common::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

fn data(json: &str) -> Event {
    let msg = ServerMessage::decode(json).unwrap();
    Event::Data(
        MarketData::from_wire(&msg, SubscriptionId::new("cli").unwrap())
            .unwrap()
            .unwrap(),
    )
}

fn price(seq: u64, symbol: &str, price: f64) -> Event {
    data(&format!(
        r#"{{"type":"price","sub":"cli","seq":{seq},"symbol":"{symbol}","price":{price},"timestamp":"2026-11-24T09:49:56.123Z"}}"#
    ))
}

fn symbols(names: &[&str]) -> Vec<Symbol> {
    names.iter().map(|s| Symbol::parse(s).unwrap()).collect()
}

/// The buffer's rows as text.
fn text(buffer: &Buffer) -> Vec<String> {
    let width = buffer.area.width as usize;
    buffer
        .content
        .chunks(width)
        .map(|row| row.iter().map(|cell| cell.symbol()).collect::<String>())
        .collect()
}

fn draw(model: &Model, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| render(frame, model)).unwrap();
    terminal.backend().buffer().clone()
}

#[test]
fn one_frame_shows_a_row_per_symbol_and_the_status() {
    let mut model = Model::new("ws://feed.example/ws", symbols(&["AAPL", "MSFT", "GOOGL"]));
    model.apply(&Event::StateChanged {
        from: ConnectionState::Connecting,
        to: ConnectionState::Connected,
    });
    model.apply(&price(1, "AAPL", 190.0));
    model.apply(&price(2, "MSFT", 420.0));
    model.apply(&price(3, "AAPL", 189.5));
    model.apply(&price(4, "MSFT", 421.25));
    model.apply(&data(
        r#"{"type":"volume","sub":"cli","seq":5,"symbol":"AAPL","volume":1200,"timestamp":"2026-11-24T09:49:56.124Z"}"#,
    ));
    model.apply(&data(
        r#"{"type":"orderbook","sub":"cli","seq":6,"symbol":"AAPL","bids":[[189.49,300],[189.48,500]],"asks":[[189.52,200]],"timestamp":"2026-11-24T09:49:56.125Z"}"#,
    ));
    model.tick(Instant::now());

    let buffer = draw(&model, 110, 8);
    let rows = text(&buffer);
    let row = |symbol: &str| {
        rows.iter()
            .position(|r| r.contains(&format!("│{symbol} ")))
            .unwrap_or_else(|| panic!("no {symbol} row in\n{}", rows.join("\n")))
    };
    let (aapl, msft, googl) = (row("AAPL"), row("MSFT"), row("GOOGL"));
    assert!(aapl < msft && msft < googl, "rows in --symbols order");
    for expected in ["189.50", "-0.50", "-0.26%", "1200", "189.49", "189.52", "▁"] {
        assert!(
            rows[aapl].contains(expected),
            "{expected} in {}",
            rows[aapl]
        );
    }
    for expected in ["421.25", "+1.25", "+0.30%"] {
        assert!(
            rows[msft].contains(expected),
            "{expected} in {}",
            rows[msft]
        );
    }
    assert!(rows[googl].contains('—'), "no data yet: {}", rows[googl]);
    assert!(
        rows.iter()
            .any(|r| r.contains("Symbol") && r.contains("Last")),
        "a header"
    );
    assert!(rows[0].contains("ws://feed.example/ws"), "{}", rows[0]);
    let status = rows.last().unwrap();
    for expected in [
        "connected",
        "msg/s",
        "reconnects 0",
        "gaps 0",
        "rtt —",
        "q quits",
    ] {
        assert!(status.contains(expected), "{expected} in {status}");
    }

    // The change is red when down, green when up.
    let colour_of = |row: usize, needle: &str| {
        let x = rows[row].find(needle).unwrap();
        let x = rows[row][..x].chars().count() as u16;
        buffer[(x, row as u16)].fg
    };
    assert_eq!(colour_of(aapl, "-0.50"), Color::Red);
    assert_eq!(colour_of(msft, "+1.25"), Color::Green);
}

#[test]
fn gaps_and_problems_reach_the_status_line() {
    let mut model = Model::new("ws://x/ws", symbols(&["AAPL"]));
    model.apply(&Event::Gap(argus_tokio::Gap {
        from: 4,
        to: Some(4),
        cause: argus_tokio::GapCause::SeqJump,
    }));
    model.apply(&Event::StateChanged {
        from: ConnectionState::Connected,
        to: ConnectionState::Reconnecting,
    });
    model.apply(&Event::Disconnected(argus_tokio::DisconnectReason::Lost));
    model.missed(Lagged(7));
    let rows = text(&draw(&model, 160, 5));
    let status = rows.last().unwrap();
    assert!(status.contains("reconnecting"), "{status}");
    assert!(status.contains("gaps 1"), "{status}");
    assert!(status.contains("lost without a close frame"), "{status}");
    assert!(status.contains("missed events 7"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_feed_fills_every_row() {
    let server = start_server(&[]).await;
    let client = WebSocketClient::new(argus_tokio::ConnectionConfig::new(server.url())).unwrap();
    let mut feed = Feed::new(&client, QueuePolicy::Backpressure);
    within("connect", client.connect()).await.unwrap();
    within(
        "subscribe",
        client.subscribe(
            "cli",
            SubscriptionConfig::new(["AAPL", "MSFT"], DataType::ALL),
        ),
    )
    .await
    .unwrap();
    let mut model = Model::new(server.url(), symbols(&["AAPL", "MSFT"]));
    within("a full table", async {
        while !model
            .rows()
            .iter()
            .all(|r| r.last.is_some() && r.volume.is_some() && r.bid.is_some() && r.ask.is_some())
        {
            let item = feed.next().await.expect("the feed goes on");
            model.apply(&item.expect("a lossless feed never lags"));
        }
    })
    .await;
    let stats = client.stats().await;
    model.apply_stats(&stats.connection);
    assert_eq!(model.state(), ConnectionState::Connected);

    let rows = text(&draw(&model, 110, 6));
    for symbol in ["AAPL", "MSFT"] {
        let row = rows.iter().find(|r| r.contains(symbol)).unwrap();
        assert!(!row.contains('—'), "every column filled: {row}");
    }
}
