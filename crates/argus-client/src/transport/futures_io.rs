//! Opening a connection over a futures-io TCP stream (async-std, smol): the
//! one `Runtime::open` of every runtime built on the `futures` I/O traits,
//! with futures-rustls for `wss://` and async-tungstenite for the upgrade.
//! The runtime gives only its TCP connect.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use argus_core::{OpenError, OpenRequest};
use async_tungstenite::WebSocketStream;
use futures_rustls::client::TlsStream;
use futures_util::future::Either;
use futures_util::io::{AsyncRead, AsyncWrite};

use super::{CloseCodeSniffer, Prepared, connect_error, handshake_error, prepare, tls_error};

/// A TCP stream of type `S`, plain (`ws://`) or with TLS (`wss://`), whose
/// close frames are followed (see [`sent_close_code`]).
pub type Transport<S> = Sniffed<Either<S, Box<TlsStream<S>>>>;

/// A stream whose incoming bytes a [`CloseCodeSniffer`] follows.
#[derive(Debug)]
pub struct Sniffed<T> {
    inner: T,
    sniffer: CloseCodeSniffer,
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniffed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = read {
            this.sniffer.observe(&buf[..n]);
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniffed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// The code of the last close frame the server sent on `socket`, as sent.
pub fn sent_close_code<S>(socket: &WebSocketStream<Transport<S>>) -> Option<u16>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    socket.get_ref().sniffer.close_code()
}

/// Opens the connection the core asked for: `connect(host, port)` for TCP
/// (the runtime's; it should set `TCP_NODELAY`), then TLS with `tls` for
/// `wss://`, then the upgrade, every failure mapped to the core's
/// [`OpenError`].
pub async fn open<S, F, Fut>(
    request: OpenRequest,
    tls: Arc<rustls::ClientConfig>,
    connect: F,
) -> Result<WebSocketStream<Transport<S>>, OpenError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(String, u16) -> Fut,
    Fut: Future<Output = io::Result<S>>,
{
    let Prepared {
        request: http,
        host,
        port,
        tls_name,
        config,
        ..
    } = prepare(&request)?;
    let tcp = connect(host.clone(), port)
        .await
        .map_err(|e| connect_error(&host, port, e))?;
    let stream = match tls_name {
        Some(name) => Either::Right(Box::new(
            futures_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(tls_error)?,
        )),
        None => Either::Left(tcp),
    };
    let stream = Sniffed {
        inner: stream,
        sniffer: CloseCodeSniffer::default(),
    };
    let (socket, _response) =
        async_tungstenite::client_async_with_config(http, stream, Some(config))
            .await
            .map_err(handshake_error)?;
    Ok(socket)
}
