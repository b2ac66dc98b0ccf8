//! Logs: `tracing` to stderr, never to stdout.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Directives that always apply: tungstenite logs the whole upgrade request,
/// `Authorization` header included, at trace level.
const QUIET: &str = "tungstenite=debug,tokio_tungstenite=debug";

/// The filter for `-v` counted `verbose` times, or for `RUST_LOG` when set.
pub fn filter(verbose: u8, rust_log: Option<&str>) -> String {
    let base = match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        // Whatever RUST_LOG says of tungstenite is replaced by QUIET.
        Some(directives) => directives
            .split(',')
            .filter(|d| {
                !d.trim_start().starts_with("tungstenite") && !d.contains("tokio_tungstenite")
            })
            .collect::<Vec<_>>()
            .join(","),
        None => match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
        .to_owned(),
    };
    if base.is_empty() {
        QUIET.to_owned()
    } else {
        format!("{base},{QUIET}")
    }
}

/// Sends logs to stderr, at the level `verbose` asks for. With `quiet`
/// (the full-screen `watch` on a terminal, which stderr would scribble
/// over) nothing is logged unless stderr is redirected.
pub fn init(verbose: u8, quiet: bool) {
    let stderr = std::io::stderr();
    if quiet && stderr.is_terminal() {
        return;
    }
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(filter(verbose, rust_log.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(filter(verbose, None)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr.is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tungstenite_never_logs_at_trace() {
        assert_eq!(
            filter(0, None),
            "warn,tungstenite=debug,tokio_tungstenite=debug"
        );
        assert_eq!(
            filter(5, None),
            "trace,tungstenite=debug,tokio_tungstenite=debug"
        );
        assert_eq!(
            filter(
                0,
                Some("trace,tungstenite=trace,tokio_tungstenite::x=trace")
            ),
            "trace,tungstenite=debug,tokio_tungstenite=debug"
        );
        assert_eq!(filter(0, Some("tungstenite=trace")), QUIET);
    }
}
