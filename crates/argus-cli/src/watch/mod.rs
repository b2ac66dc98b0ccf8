//! `argus watch`: a live table of the feed in the terminal.
//!
//! The screen is a pure [`Model`] (fed the client's events, in order, from
//! the [`Feed`](crate::feed::Feed), and its statistics, it keeps one [`Row`]
//! per symbol) and a
//! [`render`] function that draws it, so a test can draw a frame into
//! ratatui's `TestBackend`.

mod model;
mod ui;

use std::io::IsTerminal;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use model::{HISTORY, Model, Row};
pub use ui::render;

use crate::args::{StreamArgs, UsageError};
use crate::exit::Exit;
use crate::feed::Item;
use crate::report;
use crate::tail::{client, start, until};

/// How often the screen is redrawn.
const FRAME: Duration = Duration::from_millis(200);

/// How often the client's statistics are read.
const STATS: Duration = Duration::from_secs(1);

/// Most feed items taken in between two checks of the clock and keyboard.
const BATCH: usize = 4096;

/// Runs `argus watch` until `q` (or Esc, or Ctrl-C), or `--duration`.
/// Without a terminal on stdout it refuses at once (exit code 2). When the
/// client gives up, the screen stays up to show why until `q`; the exit
/// code then says it (3 or 4).
pub async fn watch(args: &StreamArgs) -> Exit {
    if !std::io::stdout().is_terminal() {
        report(UsageError::NotATerminal);
        return Exit::Usage;
    }
    let (client, mut feed, subscription) = match client(args) {
        Ok(parts) => parts,
        Err(e) => {
            report(&e);
            return Exit::Usage;
        }
    };
    let symbols = subscription
        .normalized()
        .map(|n| n.symbols)
        .unwrap_or_default();
    let mut model = Model::new(client.config().url.clone(), symbols);
    let deadline = args.duration.map(|d| Instant::now() + d);

    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore();
            report(format!("cannot set up the terminal: {e}"));
            return Exit::Failure;
        }
    };
    let mut keys = spawn_keyboard();

    let started = start(&client, subscription);
    let stop = until(deadline);
    tokio::pin!(started, stop);
    let mut starting = true;
    let mut frames = tokio::time::interval(FRAME);
    let mut stats = tokio::time::interval(STATS);
    let mut exit = Exit::Success;
    let mut failure: Option<String> = None;
    loop {
        tokio::select! {
            () = &mut stop => break,
            key = keys.recv() => match key {
                Some(Key::Quit) | None => break,
            },
            result = &mut started, if starting => {
                starting = false;
                if let Err(e) = result {
                    exit = e.exit();
                    model.set_problem(e.to_string());
                    failure = Some(e.to_string());
                }
            }
            item = feed.next() => {
                let Some(item) = item else { break };
                take(&mut model, &item, &mut exit, &mut failure);
                for _ in 0..BATCH {
                    let Some(item) = feed.try_next() else { break };
                    take(&mut model, &item, &mut exit, &mut failure);
                }
            }
            _ = stats.tick() => model.apply_stats(&client.stats().await.connection),
            _ = frames.tick() => {
                model.tick(std::time::Instant::now());
                if let Err(e) = terminal.draw(|frame| render(frame, &model)) {
                    failure = Some(format!("cannot draw: {e}"));
                    exit = Exit::Failure;
                    break;
                }
            }
        }
    }
    drop(keys);
    ratatui::restore();
    let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    if let Some(failure) = failure {
        report(failure);
    }
    exit
}

/// Feeds one item to the model, noting when the client gave up.
fn take(model: &mut Model, item: &Item, exit: &mut Exit, failure: &mut Option<String>) {
    match item {
        Ok(event) => {
            model.apply(event);
            if let argus_tokio::Event::GaveUp(reason) = event {
                *exit = Exit::from_give_up(reason);
                *failure = Some(reason.to_string());
            }
        }
        Err(lagged) => model.missed(*lagged),
    }
}

/// What the keyboard asks for.
#[derive(Debug)]
enum Key {
    Quit,
}

/// Reads the keyboard in a thread of its own (crossterm's reads block); it
/// ends once the receiver is dropped.
fn spawn_keyboard() -> mpsc::Receiver<Key> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        while !tx.is_closed() {
            match event::poll(Duration::from_millis(100)) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(_) => break,
            }
            let Ok(Event::Key(key)) = event::read() else {
                continue;
            };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            let quit = matches!(key.code, KeyCode::Char('q') | KeyCode::Esc)
                || (key.code == KeyCode::Char('c')
                    && key.modifiers.contains(KeyModifiers::CONTROL));
            if quit && tx.blocking_send(Key::Quit).is_err() {
                break;
            }
        }
    });
    rx
}
