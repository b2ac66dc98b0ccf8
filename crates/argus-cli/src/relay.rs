//! `argus relay`: the feed into NATS JetStream (on `argus-nats`), and
//! `argus tail --from-nats`: a relay's stream back as `tail`'s NDJSON.

use std::future::Future;
use std::io::Write;

use argus_client::transport::redact_url;
use argus_nats::{Halt, Relay, RelayConfig, plan_upstream, read_stream, start_upstream};
use argus_tokio::Tokio;
use tokio::time::Instant;

use crate::args::{RelayArgs, TailArgs, UsageError};
use crate::exit::Exit;
use crate::report;
use crate::tail::{Output, until, until_either};

async fn jetstream(url: &str) -> Result<async_nats::jetstream::Context, Exit> {
    match async_nats::connect(url).await {
        Ok(client) => Ok(async_nats::jetstream::new(client)),
        Err(e) => Err(nats_unreachable(url, &e)),
    }
}

/// Reports that NATS at `url` cannot be reached. A NATS URL may carry a
/// user and password: never printed, in the URL or in what the client
/// says about it.
fn nats_unreachable(url: &str, e: &async_nats::ConnectError) -> Exit {
    let mut error = e.to_string();
    if let Some(credentials) = credentials(url) {
        error = error.replace(credentials, "***");
    }
    report(format!(
        "cannot connect to NATS at {}: {error}",
        redact_url(url)
    ));
    Exit::Failure
}

/// The `user:password` (or token) part of a URL, if it has one.
fn credentials(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority
        .rfind('@')
        .map(|at| &authority[..at])
        .filter(|c| !c.is_empty())
}

/// Runs `argus relay`: prints a `relaying` line on stdout once the stream
/// exists and the upstream connections are up, relays until `--duration`
/// passes, `stop` resolves (Ctrl-C, SIGTERM) or an upstream client gives
/// up; then waits for what is in flight to be acknowledged, stores the
/// resume points, and prints one `relay_stats` line.
pub async fn relay(args: &RelayArgs, stop: impl Future<Output = ()>) -> Exit {
    let usage = |e: UsageError| {
        report(&e);
        Exit::Usage
    };
    let config = match args.connection.connection_config() {
        Ok(config) => config,
        Err(e) => return usage(e),
    };
    let relay_config = RelayConfig {
        stream: args.stream.clone(),
        subject_prefix: args.subject_prefix.clone(),
        bucket: args.bucket.clone(),
        max_in_flight: args.max_in_flight,
        ack_timeout: args.ack_timeout,
        shutdown_timeout: args.shutdown_timeout,
        ..RelayConfig::default()
    };
    if let Err(e) = relay_config.validate() {
        return usage(UsageError::Relay(e));
    }
    let types: Vec<String> = args.types.iter().map(|t| t.as_str().to_owned()).collect();
    let plan = match plan_upstream(
        &args.symbols,
        &types,
        args.shard,
        args.symbols_per_connection,
    ) {
        Ok(plan) => plan,
        Err(e) => return usage(UsageError::Relay(e)),
    };
    if plan.is_empty() {
        report(format!(
            "no symbol of --symbols falls in shard {}",
            args.shard
        ));
        return Exit::Usage;
    }
    let deadline = args.duration.map(|d| Instant::now() + d);
    let relay = match Relay::connect(
        args.nats.as_str(),
        async_nats::ConnectOptions::new(),
        relay_config,
    )
    .await
    {
        Ok(relay) => relay,
        Err(argus_nats::RelayError::Connect(e)) => return nats_unreachable(&args.nats, &e),
        Err(e) => {
            report(&e);
            return Exit::Failure;
        }
    };
    let upstream = match start_upstream::<Tokio>(&relay, &config, &plan, &args.types).await {
        Ok(upstream) => upstream,
        Err(argus_nats::UpstreamError::Connect { key, source }) => {
            report(format!("connection `{key}`: {source}"));
            return Exit::from_connect_error(&source);
        }
        Err(e) => {
            report(&e);
            return Exit::Failure;
        }
    };
    let started = serde_json::json!({
        "event": "relaying",
        "connections": plan.len(),
        "symbols": plan.iter().map(|c| c.symbols.len()).sum::<usize>(),
        "shard": args.shard.to_string(),
        "stream": relay.config().stream,
    });
    println!("{started}");
    let stats = relay
        .run(upstream.feeds, until_either(stop, until(deadline)))
        .await;
    upstream.manager.close_all().await;
    let line = serde_json::json!({
        "event": "relay_stats",
        "connections": plan.len(),
        "symbols": plan.iter().map(|c| c.symbols.len()).sum::<usize>(),
        "published": stats.published,
        "duplicates": stats.duplicates,
        "gaps": stats.gaps,
        "resumes": stats.resumes,
        "retries": stats.retries,
        "points_stored": stats.points_stored,
        "unacknowledged": stats.unacknowledged,
    });
    println!("{line}");
    match &stats.halted {
        Some(halt) => {
            report(halt);
            match halt {
                Halt::GaveUp { reason, .. } => Exit::from_give_up(reason),
                _ => Exit::Usage,
            }
        }
        None if stats.unacknowledged > 0 => {
            report(format!(
                "{} publishes were not acknowledged within --shutdown-timeout; \
                 the stored resume points precede them, so the next run publishes them again",
                stats.unacknowledged
            ));
            Exit::Failure
        }
        None => Exit::Success,
    }
}

/// Runs `argus tail --from-nats`: the messages of a relay's stream, from
/// its start (or after the durable consumer's last acknowledgement), each
/// as one line on `out` (data as the protocol's JSON, gaps and resumes as
/// `tail`'s event lines), until `--duration` passes or `stop` resolves.
pub async fn tail_from_nats<W>(
    url: &str,
    args: &TailArgs,
    out: W,
    stop: impl Future<Output = ()>,
) -> Exit
where
    W: Write + Send + 'static,
{
    let deadline = args.stream.duration.map(|d| Instant::now() + d);
    let js = match jetstream(url).await {
        Ok(js) => js,
        Err(exit) => return exit,
    };
    let filter = args.nats.filter.as_deref().unwrap_or_default();
    let mut messages =
        match read_stream(&js, &args.nats.stream, filter, args.nats.durable.as_deref()).await {
            Ok(messages) => messages,
            Err(e) => {
                report(format!(
                    "cannot read the stream `{}`: {e}",
                    args.nats.stream
                ));
                return Exit::Failure;
            }
        };
    let (mut output, writer) = Output::start(out);
    let stop = until_either(stop, until(deadline));
    tokio::pin!(stop);
    let mut stopping = false;
    let exit = loop {
        tokio::select! {
            // A durable reader still prints (and acknowledges) what it had
            // asked for, so that its next run starts right after it.
            () = &mut stop, if !stopping => {
                messages.stop();
                stopping = true;
            }
            message = messages.next() => match message {
                Some(Ok(message)) => {
                    output.line(String::from_utf8_lossy(&message.payload).into_owned()).await;
                    if args.nats.durable.is_some()
                        && let Err(e) = message.ack().await
                    {
                        tracing::warn!(error = %e, "cannot acknowledge a message");
                    }
                    if !output.open {
                        break Exit::Success;
                    }
                }
                Some(Err(e)) => {
                    report(format!("reading the stream: {e}"));
                    break Exit::Failure;
                }
                None => break Exit::Success,
            },
        }
    };
    // The acknowledgements of what was written reach the server before
    // the process ends, so a durable consumer goes on right after it.
    if let Err(e) = js.client().flush().await {
        tracing::warn!(error = %e, "cannot flush the acknowledgements");
    }
    output.finish(writer, exit).await
}
