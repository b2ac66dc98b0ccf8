//! `argus serve`: the reference server (argus-server), started from the
//! command line with a few flags; `cargo run -p argus-server -- --help` has
//! them all.

use std::future::Future;

use argus_core::Symbol;
use argus_server::{FirehoseConfig, Server, ServerConfig, ServerError};

use crate::args::{ServeArgs, UsageError};
use crate::exit::Exit;
use crate::report;

impl ServeArgs {
    /// The server's configuration.
    pub fn server_config(&self) -> Result<ServerConfig, UsageError> {
        let symbols = if self.symbols.is_empty() {
            None
        } else {
            let symbols = self
                .symbols
                .iter()
                .map(|s| {
                    Symbol::normalize(s).map_err(|e| UsageError::Server(format!("--symbols: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(symbols)
        };
        Ok(ServerConfig {
            listen: self.listen,
            symbols,
            api_keys: self.api_keys.clone(),
            tick_interval: self.tick_interval,
            seed: self.seed,
            firehose: self.firehose.then_some(FirehoseConfig {
                rate: self.firehose_rate,
                total: None,
            }),
            ..ServerConfig::default()
        })
    }
}

/// Runs `argus serve`: starts the server, prints its URL as the first line
/// of stdout, and serves until `stop` resolves (Ctrl-C), then shuts down
/// gracefully (clients get close code 1001).
pub async fn serve(args: &ServeArgs, stop: impl Future<Output = ()>) -> Exit {
    let config = match args.server_config() {
        Ok(config) => config,
        Err(e) => {
            report(&e);
            return Exit::Usage;
        }
    };
    let server = match Server::start(config).await {
        Ok(server) => server,
        Err(e @ ServerError::Config { .. }) => {
            report(format!("invalid setting: {e}"));
            return Exit::Usage;
        }
        Err(e) => {
            report(&e);
            return Exit::Failure;
        }
    };
    println!("{}", server.url());
    tracing::info!(url = %server.url(), keys = args.api_keys.len(), "serving; Ctrl-C stops");
    stop.await;
    server.shutdown().await;
    Exit::Success
}
