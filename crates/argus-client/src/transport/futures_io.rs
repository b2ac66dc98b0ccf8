//! Opening a connection over a futures-io TCP stream (async-std, smol): the
//! one `Runtime::open` of every runtime built on the `futures` I/O traits,
//! with futures-rustls for `wss://` and async-tungstenite for the upgrade.
//! The runtime gives only its TCP connect.

use std::future::Future;
use std::io;
use std::sync::Arc;

use argus_core::{OpenError, OpenRequest};
use async_tungstenite::WebSocketStream;
use futures_rustls::client::TlsStream;
use futures_util::future::Either;
use futures_util::io::{AsyncRead, AsyncWrite};

use super::{Prepared, connect_error, handshake_error, prepare, tls_error};

/// A TCP stream of type `S`, plain (`ws://`) or with TLS (`wss://`).
pub type Transport<S> = Either<S, Box<TlsStream<S>>>;

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
    let (socket, _response) =
        async_tungstenite::client_async_with_config(http, stream, Some(config))
            .await
            .map_err(handshake_error)?;
    Ok(socket)
}
