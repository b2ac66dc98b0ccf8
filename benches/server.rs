//! The reference server in a child process, for the end-to-end benchmarks:
//! the benchmark binary re-runs itself as `serve`, so the server's CPU is
//! not counted in the measured process.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use argus_server::{FirehoseConfig, Server, ServerConfig};

/// A server in a child process (the current binary, run as `serve ARGS`);
/// dropped, it ends.
pub struct ServerProcess {
    child: Child,
    /// Its WebSocket URL.
    pub url: String,
}

impl ServerProcess {
    /// Starts `<this binary> serve <args>` and reads the URL it prints.
    ///
    /// # Panics
    /// When the child cannot be started or prints no URL.
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .arg("serve")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server's url");
        Self {
            child,
            url: line.trim().to_owned(),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `serve [--rate N] [--total N] [--ticks] [--wire-style LAYOUT]`: a
/// reference server whose subscriptions are served by the firehose (paced
/// at `--rate` messages a second, each in its own write, or as fast as the
/// socket takes them; `--total` messages a connection), or by the market
/// with `--ticks`; prints its URL, and runs until stdin closes.
///
/// # Panics
/// On a bad argument or when the server cannot start.
pub fn serve(args: &[String]) {
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut config = ServerConfig::ephemeral();
    config.max_symbols_per_subscription = 10;
    // A thousand friendly clients from loopback: above the caps that guard
    // against one hostile address.
    config.max_connections_per_ip = usize::MAX;
    config.max_connections_per_key = usize::MAX;
    if let Some(i) = args.iter().position(|a| a == "--wire-style") {
        config.wire_style = args[i + 1].parse().expect("a layout");
    }
    if !args.iter().any(|a| a == "--ticks") {
        config.firehose = Some(FirehoseConfig {
            rate: value("--rate"),
            total: value("--total"),
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = Server::start(config).await.expect("start");
        println!("{}", server.url());
        std::io::stdout().flush().expect("flush");
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()))
            .await
            .ok();
        server.shutdown().await;
    });
}
