//! [`Runtime`] for tokio: tasks by `tokio::spawn`, tokio's clock and
//! timers, and sockets by tokio's TCP, tokio-rustls and tokio-tungstenite.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use argus_client::Runtime;
use argus_client::rustls;
use argus_client::transport::{self, Prepared};
use argus_core::{OpenError, OpenRequest};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

/// The tokio runtime, for [`argus_client`]: every client of this crate runs
/// on the tokio runtime of the task that first uses it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    type Socket = WebSocketStream<Transport>;
    type Timer = Pin<Box<tokio::time::Sleep>>;

    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(task);
    }

    /// tokio's clock, so a test may pause it.
    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn timer(deadline: Instant) -> Self::Timer {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn reset(timer: &mut Self::Timer, deadline: Instant) {
        let deadline = tokio::time::Instant::from_std(deadline);
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
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
            Some(name) => Transport::Tls(Box::new(
                tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(transport::tls_error)?,
            )),
            None => Transport::Plain(tcp),
        };
        let (socket, _response) =
            tokio_tungstenite::client_async_with_config(http, stream, Some(config))
                .await
                .map_err(transport::handshake_error)?;
        Ok(socket)
    }
}

/// A TCP stream, with or without TLS.
#[derive(Debug)]
pub enum Transport {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
