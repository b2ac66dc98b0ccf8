//! A real `nats-server -js` for the tests: on a free loopback port, with a
//! store directory of its own, stopped (and its store removed) on drop.
//! A test that needs it fails with a clear message when the binary is
//! missing; it never skips.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A running `nats-server` with JetStream.
pub struct NatsServer {
    child: Child,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    /// Starts one and waits until it says it is ready (at most 20 s).
    ///
    /// # Panics
    /// When `nats-server` is not on `PATH` (install the Debian package
    /// `nats-server`; `.ci/run` does), or does not become ready.
    pub fn start() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let store = std::env::temp_dir().join(format!(
            "argus-nats-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = spawn(port, &store);
        Self { child, port, store }
    }

    /// Its URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no clean shutdown) and starts it again on the same
    /// port and store, waiting until it is ready.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.store);
    }

    /// Kills it (SIGKILL) and waits for it to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// `nats-server` on `PATH`, or where Debian's package puts it (`/usr/sbin`,
/// which a non-root `PATH` may lack).
fn program() -> &'static str {
    const DEBIAN: &str = "/usr/sbin/nats-server";
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("nats-server").is_file())
    });
    if !on_path && std::path::Path::new(DEBIAN).is_file() {
        DEBIAN
    } else {
        "nats-server"
    }
}

fn spawn(port: u16, store: &std::path::Path) -> Child {
    let mut child = Command::new(program())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start `nats-server` ({e}): the NATS tests need a real JetStream server. \
                 Install it (Debian: `apt-get install nats-server`; `.ci/run` does this) and run again."
            )
        });
    let stderr = child.stderr.take().expect("piped stderr");
    let (ready, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let mut said = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !said && line.contains("Server is ready") {
                said = true;
                let _ = ready.send(());
            }
        }
    });
    if wait.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        panic!("nats-server on port {port} did not say it was ready within 20 s");
    }
    child
}
