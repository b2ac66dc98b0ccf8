//! [`Runtime`] for tokio: tasks by `tokio::spawn`, tokio's clock and
//! timers, and sockets by tokio's TCP, tokio-rustls and tokio-tungstenite.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use argus_client::Runtime;
use argus_client::rustls;
use argus_client::transport::{self, CloseCodeSniffer, Prepared};
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
            Some(name) => Stream::Tls(Box::new(
                tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(transport::tls_error)?,
            )),
            None => Stream::Plain(tcp),
        };
        let stream = Transport {
            stream,
            sniffer: CloseCodeSniffer::default(),
        };
        let (socket, _response) =
            tokio_tungstenite::client_async_with_config(http, stream, Some(config))
                .await
                .map_err(transport::handshake_error)?;
        Ok(socket)
    }

    fn sent_close_code(socket: &Self::Socket) -> Option<u16> {
        socket.get_ref().sniffer.close_code()
    }
}

/// A TCP stream, with or without TLS, whose close frames are followed
/// (see [`Runtime::sent_close_code`]).
#[derive(Debug)]
pub struct Transport {
    stream: Stream,
    sniffer: CloseCodeSniffer,
}

#[derive(Debug)]
enum Stream {
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
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = read {
            this.sniffer.observe(&buf.filled()[before..]);
        }
        read
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
