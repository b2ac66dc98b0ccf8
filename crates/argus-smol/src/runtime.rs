//! [`Runtime`] for smol: tasks on smol's global executor, the std clock,
//! async-io timers, and sockets by smol's TCP (async-net), futures-rustls
//! and async-tungstenite.

use std::sync::Arc;
use std::time::Instant;

use argus_client::Runtime;
use argus_client::rustls;
use argus_client::transport::{self, Prepared};
use argus_core::{OpenError, OpenRequest};
use async_tungstenite::WebSocketStream;
use futures_rustls::client::TlsStream;
use futures_util::future::Either;
use smol::net::TcpStream;

/// The smol runtime, for [`argus_client`]: every client of this crate runs
/// its tasks on smol's global executor (`smol::spawn`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Smol;

/// A TCP stream, plain (`ws://`) or with TLS (`wss://`).
pub type Transport = Either<TcpStream, Box<TlsStream<TcpStream>>>;

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
        let Prepared {
            request: http,
            host,
            port,
            tls_name,
            config,
            ..
        } = transport::prepare(&request)?;
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| transport::connect_error(&host, port, e))?;
        // Ticks are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let stream = match tls_name {
            Some(name) => Either::Right(Box::new(
                futures_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(transport::tls_error)?,
            )),
            None => Either::Left(tcp),
        };
        let (socket, _response) =
            async_tungstenite::client_async_with_config(http, stream, Some(config))
                .await
                .map_err(transport::handshake_error)?;
        Ok(socket)
    }
}
