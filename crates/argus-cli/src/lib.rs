//! # argus-cli
//!
//! The library behind `argus`, the command-line tool of Argus, a real-time
//! market-data WebSocket SDK. It has four commands:
//!
//! - `argus tail` connects, subscribes, and prints every data message and
//!   event as one JSON object per line (NDJSON) on stdout, in the order they
//!   happened ([`tail::tail`], [`lines`] for the format, [`feed`] for the
//!   client's one ordered stream it reads);
//! - `argus watch` shows a live table, one row per symbol ([`watch`]);
//! - `argus serve` runs the reference server ([`serve`]);
//! - `argus relay` writes the feed into NATS JetStream, sharded by symbol,
//!   resuming its upstream sessions after a restart; `argus tail
//!   --from-nats` reads it back ([`relay`], on `argus-nats`).
//!
//! Exit codes ([`Exit`]): 0 after `--duration` or Ctrl-C, 2 for a bad flag
//! or setting, 3 when the server refused the credentials, 4 after giving up
//! reconnecting. Logs go to stderr (`-v`, `-vv`, `-vvv`), never to stdout.
//!
//! ## The smallest use
//!
//! The binary is this, and a test can run the same commands in-process:
//!
//! ```no_run
//! use clap::Parser;
//!
//! let cli = argus_cli::Cli::parse_from(["argus", "tail", "--symbols", "AAPL", "--duration", "5s"]);
//! let exit = argus_cli::run(cli);
//! std::process::exit(exit.code().into());
//! ```
#![forbid(unsafe_code)]

pub mod args;
pub mod exit;
pub mod feed;
pub mod lines;
pub mod logging;
pub mod relay;
pub mod serve;
pub mod tail;
pub mod watch;

use std::fmt::Display;

pub use args::{
    Cli, Command, ConnectionArgs, FromNatsArgs, Policy, RelayArgs, ServeArgs, StreamArgs, TailArgs,
    UsageError,
};
pub use exit::Exit;

/// Prints an error for the user on stderr.
pub(crate) fn report(message: impl Display) {
    eprintln!("argus: {message}");
}

/// Runs a parsed command line on a new tokio runtime: sets up logging, runs
/// the command, and returns how it ended.
pub fn run(cli: Cli) -> Exit {
    logging::init(cli.verbose, matches!(cli.command, Command::Watch(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            report(format!("cannot start the runtime: {e}"));
            return Exit::Failure;
        }
    };
    runtime.block_on(async move {
        match &cli.command {
            Command::Tail(args) => match &args.nats.from_nats {
                Some(url) => {
                    relay::tail_from_nats(url, args, std::io::stdout(), interrupted()).await
                }
                None => tail::tail(&args.stream, std::io::stdout(), interrupted()).await,
            },
            Command::Watch(args) => watch::watch(args).await,
            Command::Serve(args) => serve::serve(args, interrupted()).await,
            Command::Relay(args) => relay::relay(args, interrupted()).await,
        }
    })
}

/// Resolves at Ctrl-C (SIGINT) or, on Unix, SIGTERM. The handlers are
/// installed when this is called, not when it is first polled.
pub fn interrupted() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
