//! `argus tail`: the feed as NDJSON, one line per data message or event.

use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::time::Duration;

use argus_tokio::{ConnectError, Event, SubscribeError, SubscriptionConfig, WebSocketClient};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::args::{StreamArgs, UsageError};
use crate::exit::Exit;
use crate::feed::{Feed, Item};
use crate::lines::{item_line, stats_line};
use crate::report;

/// The id of the subscription `tail` and `watch` make.
pub const SUBSCRIPTION_ID: &str = "cli";

/// Lines waiting for the writer thread.
const LINE_CHANNEL: usize = 1024;

/// Items taken at exit beyond the feed's buffer: the events of the
/// exchange that ended the run.
const EXIT_SLACK: usize = 64;

/// How long the close handshake may take at exit.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How long the lines still waiting at exit may take to reach a stdout that
/// is read slowly (or not at all).
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// Builds the client `tail` and `watch` use, with a [`Feed`] attached.
pub(crate) fn client(
    args: &StreamArgs,
) -> Result<(WebSocketClient, Feed, SubscriptionConfig), UsageError> {
    let config = args.connection_config()?;
    let subscription = args.subscription()?;
    let client = WebSocketClient::builder(config)
        .event_capacity(args.queue_capacity)
        .build()
        .map_err(UsageError::Build)?;
    let feed = Feed::new(&client, args.policy.into());
    Ok((client, feed, subscription))
}

/// Why connecting and subscribing did not work out.
#[derive(Debug)]
pub(crate) enum StartError {
    Connect(ConnectError),
    Subscribe(SubscribeError),
}

impl StartError {
    pub(crate) fn exit(&self) -> Exit {
        match self {
            Self::Connect(e) => Exit::from_connect_error(e),
            Self::Subscribe(SubscribeError::Rejected { .. } | SubscribeError::Invalid(_)) => {
                Exit::Usage
            }
            Self::Subscribe(SubscribeError::GaveUp(reason)) => Exit::from_give_up(reason),
            Self::Subscribe(_) => Exit::Failure,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "{e}"),
            Self::Subscribe(e) => write!(f, "{e}"),
        }
    }
}

/// Connects and subscribes.
pub(crate) async fn start(
    client: &WebSocketClient,
    subscription: SubscriptionConfig,
) -> Result<(), StartError> {
    client.connect().await.map_err(StartError::Connect)?;
    client
        .subscribe(SUBSCRIPTION_ID, subscription)
        .await
        .map_err(StartError::Subscribe)?;
    Ok(())
}

/// Sleeps until `deadline`, or forever without one.
pub(crate) async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Runs `argus tail`: connects, subscribes, and writes NDJSON to `out` until
/// `--duration` passes, `stop` resolves (Ctrl-C), or the client gives up;
/// then writes the `stats` line. Errors go to stderr. Returns the exit code.
pub async fn tail<W>(args: &StreamArgs, out: W, stop: impl Future<Output = ()>) -> Exit
where
    W: Write + Send + 'static,
{
    let deadline = args.duration.map(|d| Instant::now() + d);
    let (client, mut feed, subscription) = match client(args) {
        Ok(parts) => parts,
        Err(e) => {
            report(&e);
            return Exit::Usage;
        }
    };
    let (mut output, writer) = Output::start(out);

    let started = start(&client, subscription);
    let stop = until_either(stop, until(deadline));
    tokio::pin!(started, stop);
    let mut starting = true;
    let mut unsent = None;
    // Said on stderr once stdout has the lines that led to it.
    let mut failure: Option<String> = None;
    let exit = loop {
        tokio::select! {
            () = &mut stop => break Exit::Success,
            result = &mut started, if starting => {
                starting = false;
                if let Err(e) = result {
                    // What led to it (the gave_up line) is printed at exit.
                    failure = Some(e.to_string());
                    break e.exit();
                }
                tracing::info!("subscribed; streaming");
            }
            item = feed.next() => {
                let Some(item) = item else {
                    break Exit::Failure;
                };
                let gave_up = match &item {
                    Ok(Event::GaveUp(reason)) => Some(reason.clone()),
                    _ => None,
                };
                // A stdout that is not read must not keep Ctrl-C waiting;
                // a line not sent yet goes first at exit.
                tokio::select! {
                    biased;
                    () = output.item(&item) => {}
                    () = &mut stop => {
                        unsent = Some(item);
                        break Exit::Success;
                    }
                }
                if let Some(reason) = gave_up {
                    failure = Some(reason.to_string());
                    break Exit::from_give_up(&reason);
                }
                if !output.open {
                    // stdout was closed (`argus tail | head`): a quiet end.
                    break Exit::Success;
                }
            }
        }
    };

    // What already happened still comes out, then the statistics.
    let flush_by = Instant::now() + FLUSH_WAIT;
    let last_lines = async {
        if let Some(item) = unsent {
            output.item(&item).await;
        }
        // What is ready now, but not what a client still streaming adds.
        let mut budget = args.queue_capacity.saturating_add(EXIT_SLACK);
        while let Some(item) = feed.try_next().filter(|_| budget > 0) {
            budget -= 1;
            output.item(&item).await;
        }
        let stats = client.stats().await;
        output.line(stats_line(&stats, feed.stats())).await;
    };
    let flushed = tokio::time::timeout_at(flush_by, last_lines).await.is_ok();
    let _ = tokio::time::timeout(CLOSE_WAIT, client.disconnect()).await;
    let exit = output.finish(writer, exit).await;
    if let Some(failure) = failure {
        report(failure);
    }
    if flushed || exit == Exit::Failure {
        exit
    } else {
        stdout_not_read()
    }
}

fn stdout_not_read() -> Exit {
    report(format!(
        "stdout was not read for {FLUSH_WAIT:?}; the last lines are lost"
    ));
    Exit::Failure
}

/// Resolves when either future does.
pub(crate) async fn until_either(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    tokio::select! {
        () = a => {}
        () = b => {}
    }
}

/// The sending side of the writer thread.
pub(crate) struct Output {
    lines: mpsc::Sender<String>,
    /// False once the writer thread stopped (stdout closed).
    pub(crate) open: bool,
}

/// The writer thread's answer: how writing ended.
pub(crate) type Written = oneshot::Receiver<io::Result<()>>;

impl Output {
    /// Starts the writer thread on `out`.
    pub(crate) fn start<W: Write + Send + 'static>(out: W) -> (Self, Written) {
        let (lines, rx) = mpsc::channel::<String>(LINE_CHANNEL);
        let (written, writer) = oneshot::channel();
        std::thread::spawn(move || {
            let _ = written.send(write_lines(rx, out));
        });
        (Self { lines, open: true }, writer)
    }

    /// Closes the output and waits (at most [`FLUSH_WAIT`]) for the writer
    /// thread to write what is left: `exit`, or a failure to write.
    pub(crate) async fn finish(self, writer: Written, exit: Exit) -> Exit {
        drop(self);
        match tokio::time::timeout(FLUSH_WAIT, writer).await {
            Ok(Ok(Ok(()))) => exit,
            Ok(Ok(Err(e))) if e.kind() == io::ErrorKind::BrokenPipe => exit,
            Ok(Ok(Err(e))) => {
                report(format!("cannot write to stdout: {e}"));
                Exit::Failure
            }
            Err(_) => stdout_not_read(),
            Ok(Err(_)) => Exit::Failure,
        }
    }

    async fn item(&mut self, item: &Item) {
        self.line(item_line(item)).await;
    }

    /// Sends a line; cancel-safe (a line is sent whole or not at all).
    pub(crate) async fn line(&mut self, line: String) {
        if self.open && self.lines.send(line).await.is_err() {
            self.open = false;
        }
    }
}

/// The writer thread: writes each line and a newline, flushing whenever no
/// more lines are waiting.
fn write_lines<W: Write>(mut lines: mpsc::Receiver<String>, out: W) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    while let Some(line) = lines.blocking_recv() {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        if lines.is_empty() {
            out.flush()?;
        }
    }
    out.flush()
}
