//! [`Runtime`] for smol: tasks on smol's global executor, the std clock,
//! async-io timers, and sockets by smol's TCP (async-net), futures-rustls
//! and async-tungstenite.

use std::sync::Arc;
use std::time::Instant;

use argus_client::Runtime;
use argus_client::rustls;
use argus_client::transport::futures_io;
use argus_core::{OpenError, OpenRequest};
use async_tungstenite::WebSocketStream;
use smol::net::TcpStream;

/// The smol runtime, for [`argus_client`]: every client of this crate runs
/// its tasks on smol's global executor (`smol::spawn`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Smol;

/// A TCP stream, plain (`ws://`) or with TLS (`wss://`).
pub type Transport = futures_io::Transport<TcpStream>;

impl Runtime for Smol {
    type Socket = WebSocketStream<Transport>;
    type Timer = async_io::Timer;

    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        smol::spawn(task).detach();
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
