//! Helpers shared by the Argus examples: where to connect, and logging.
//!
//! Every example connects to `ARGUS_URL` when it is set (with
//! `ARGUS_API_KEY` if given), and otherwise starts the reference server
//! in-process on a free port of 127.0.0.1 and connects there. Each runs for
//! a bounded time: `--seconds N`, or `ARGUS_SECONDS`, or its own default.
#![forbid(unsafe_code)]

use std::time::Duration;

use argus_server::{Server, ServerConfig, ServerError, ServerHandle};

/// Where an example connects.
#[derive(Debug)]
pub struct Target {
    /// The server's URL.
    pub url: String,
    /// The api key, from `ARGUS_API_KEY`.
    pub api_key: Option<String>,
    /// The in-process server, when `ARGUS_URL` is unset. Dropping it stops
    /// the server.
    pub server: Option<ServerHandle>,
}

/// `ARGUS_URL` (and `ARGUS_API_KEY`), or an in-process reference server.
pub async fn target() -> Result<Target, ServerError> {
    target_accepting(&[]).await
}

/// Like [`target`], but an in-process server accepts only `keys` (and
/// `ARGUS_API_KEY`, when set); with no key at all it is open.
pub async fn target_accepting(keys: &[&str]) -> Result<Target, ServerError> {
    let api_key = std::env::var("ARGUS_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    if let Some(url) = std::env::var("ARGUS_URL").ok().filter(|u| !u.is_empty()) {
        return Ok(Target {
            url,
            api_key,
            server: None,
        });
    }
    let server = Server::start(ServerConfig {
        tick_interval: Duration::from_millis(250),
        api_keys: keys
            .iter()
            .copied()
            .chain(api_key.as_deref())
            .map(Into::into)
            .collect(),
        ..ServerConfig::ephemeral()
    })
    .await?;
    println!(
        "ARGUS_URL is unset: started the reference server at {}",
        server.url()
    );
    Ok(Target {
        url: server.url(),
        api_key,
        server: Some(server),
    })
}

/// How long an example runs: `--seconds N` on its command line
/// (`cargo run --example quickstart -- --seconds 10`), else
/// `ARGUS_SECONDS`, else `default` seconds.
pub fn run_time(default: u64) -> Duration {
    let flag = std::env::args().skip_while(|a| a != "--seconds").nth(1);
    Duration::from_secs(
        flag.or_else(|| std::env::var("ARGUS_SECONDS").ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`). tungstenite
/// logs the upgrade request, `Authorization` included, at trace level: the
/// filter always caps it at debug.
pub fn init_logging() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
    let filter = tracing_subscriber::EnvFilter::new(format!("{filter},tungstenite=debug"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
