//! [`Runtime`] for async-std: tasks by `async_std::task::spawn`, the std
//! clock, async-io timers (what async-std's own timers are), and sockets by
//! async-std's TCP, futures-rustls and async-tungstenite.

use std::sync::Arc;
use std::time::Instant;

use argus_client::Runtime;
use argus_client::rustls;
use argus_client::transport::futures_io;
use argus_core::{OpenError, OpenRequest};
use async_std::net::TcpStream;
use async_tungstenite::WebSocketStream;

/// The async-std runtime, for [`argus_client`]: every client of this crate
/// runs its tasks on async-std's executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStd;

/// A TCP stream, plain (`ws://`) or with TLS (`wss://`).
pub type Transport = futures_io::Transport<TcpStream>;

impl Runtime for AsyncStd {
    type Socket = WebSocketStream<Transport>;
    type Timer = async_io::Timer;

    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        async_std::task::spawn(task);
    }

    fn now() -> Instant {
        Instant::now()
    }

    fn timer(deadline: Instant) -> Self::Timer {
        async_io::Timer::at(deadline)
    }

    fn reset(timer: &mut Self::Timer, deadline: Instant) {
        timer.set_at(deadline);
    }

    async fn open(
        request: OpenRequest,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self::Socket, OpenError> {
        futures_io::open(request, tls, |host, port| async move {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            // Ticks are small and latency matters more than packet count.
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        })
        .await
    }

    fn sent_close_code(socket: &Self::Socket) -> Option<u16> {
        futures_io::sent_close_code(socket)
    }
}
