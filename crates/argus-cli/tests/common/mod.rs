//! Shared helpers: the reference server on loopback, and the `argus` binary
//! run as a child whose stdout is read line by line.
#![allow(dead_code)]

use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use argus_server::{Server, ServerConfig, ServerHandle};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

/// The safety net around every wait: far above what any wait takes.
pub const WAIT: Duration = Duration::from_secs(30);

/// Client flags for fast tests: pings every 200 ms, backoff from 20 ms to
/// 100 ms.
pub const FAST: &[&str] = &[
    "--heartbeat",
    "200ms",
    "--timeout",
    "2s",
    "--reconnect-delay",
    "20ms",
    "--max-backoff",
    "100ms",
    "--max-reconnect-attempts",
    "10",
];

/// Waits for `future`, failing the test with `what` after [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A server on a free loopback port that ticks every 5 ms.
pub async fn start_server(api_keys: &[&str]) -> ServerHandle {
    let config = ServerConfig {
        tick_interval: Duration::from_millis(5),
        api_keys: api_keys.iter().map(|k| (*k).into()).collect(),
        ..ServerConfig::ephemeral()
    };
    Server::start(config).await.expect("the server starts")
}

/// The `argus` binary, with a clean environment for the variables it reads.
pub fn argus(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_argus"));
    command
        .args(args)
        .env_remove("ARGUS_API_KEY")
        .env_remove("ARGUS_API_KEYS")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A running `argus`: its stdout read line by line (each line is JSON for
/// `tail`), its stderr collected in the background.
pub struct Running {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<String>,
    /// Every stdout line read so far, parsed.
    pub lines: Vec<Value>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub lines: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl Running {
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.spawn().expect("argus starts");
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text).await;
            text
        });
        Self {
            child,
            stdout,
            stderr,
            lines: Vec::new(),
        }
    }

    /// The next stdout line as it is; `None` at the end of stdout.
    pub async fn next_raw_line(&mut self) -> Option<String> {
        within("a line on stdout", self.stdout.next_line())
            .await
            .expect("stdout is readable")
    }

    /// The next stdout line, parsed; `None` at the end of stdout.
    pub async fn next_line(&mut self) -> Option<Value> {
        let line = within("a line on stdout", self.stdout.next_line())
            .await
            .expect("stdout is readable")?;
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        self.lines.push(value.clone());
        Some(value)
    }

    /// Reads lines until one satisfies `pick`, and returns it.
    pub async fn read_until(&mut self, what: &str, mut pick: impl FnMut(&Value) -> bool) -> Value {
        loop {
            match self.next_line().await {
                Some(line) if pick(&line) => return line,
                Some(_) => {}
                None => panic!("stdout ended while waiting for {what}"),
            }
        }
    }

    /// Reads lines until `n` data lines were read in all.
    pub async fn read_data(&mut self, n: usize) {
        while data_seqs(&self.lines).len() < n {
            if self.next_line().await.is_none() {
                panic!(
                    "stdout ended after {} data lines of {n}",
                    data_seqs(&self.lines).len()
                );
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Reads stdout to its end and waits for the exit.
    pub async fn finish(mut self) -> Finished {
        while self.next_line().await.is_some() {}
        let status = within("the exit", self.child.wait()).await.unwrap();
        let stderr = within("stderr", self.stderr).await.unwrap();
        let stdout = self
            .lines
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        Finished {
            status,
            lines: self.lines,
            stdout,
            stderr,
        }
    }

    /// Kills the child and returns what it printed.
    pub async fn kill(mut self) -> Vec<Value> {
        let _ = self.child.kill().await;
        self.lines
    }
}

/// Runs `argus` to its end with stdout and stderr collected.
pub async fn run(command: Command) -> Finished {
    Running::spawn(command).finish().await
}

/// The data lines' seqs, in order.
pub fn data_seqs(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l.get("type").is_some())
        .map(|l| l["seq"].as_u64().expect("a data line has a seq"))
        .collect()
}

/// The event lines named `event`.
pub fn events<'a>(lines: &'a [Value], event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    lines.iter().filter(move |l| l["event"] == event)
}

/// The index of the first line matching `pick`.
pub fn position(lines: &[Value], pick: impl FnMut(&Value) -> bool) -> Option<usize> {
    lines.iter().position(pick)
}

/// Asserts that `seqs` is 1, 2, 3, ... without a hole or a repeat.
pub fn assert_consecutive(seqs: &[u64], context: &str) {
    for (i, &seq) in seqs.iter().enumerate() {
        assert_eq!(
            seq,
            i as u64 + 1,
            "{context}: data line {i} has seq {seq}; seqs: {seqs:?}"
        );
    }
}
