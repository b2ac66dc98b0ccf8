//! Opening a connection: TCP, optional TLS (rustls with the `ring` provider),
//! and the WebSocket upgrade, with every failure mapped to the core's
//! [`OpenError`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use argus_core::{OpenError, OpenRequest};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The most bytes of outgoing frames buffered for a socket that does not
/// drain. A client sends little (subscribe requests, pings); a link whose
/// buffer fills up this far is treated as lost.
pub(crate) const MAX_WRITE_BUFFER: usize = 1 << 20;

/// An open WebSocket over plain TCP or TLS.
pub(crate) type Socket = WebSocketStream<Transport>;

/// A TCP stream, with or without TLS.
#[derive(Debug)]
pub(crate) enum Transport {
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

/// The WebSocket limits for a request: frames and messages bounded by the
/// configured `max_message_size`, outgoing frames written eagerly and their
/// buffer bounded.
/// Bytes read from the socket at a time. tungstenite's default (128 KiB) is
/// zeroed on first use, so every idle client would hold it; 16 KiB still
/// carries well over a hundred ticks per read.
pub(crate) const READ_BUFFER: usize = 16 * 1024;

pub(crate) fn ws_config(request: &OpenRequest) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(request.max_message_size))
        .max_frame_size(Some(request.max_message_size))
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
}

/// Opens the connection the core asked for. Never follows redirects: a 3xx
/// answer is an [`OpenError::Http`] like any other status.
pub(crate) async fn open(
    request: OpenRequest,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Socket, OpenError> {
    let mut http = request
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| OpenError::InvalidUrl(e.to_string()))?;
    let uri = http.uri().clone();
    let secure = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("wss") => true,
        Some(s) if s.eq_ignore_ascii_case("ws") => false,
        _ => return Err(OpenError::InvalidUrl("the scheme must be ws or wss".into())),
    };
    let host = uri
        .host()
        .ok_or_else(|| OpenError::InvalidUrl("the URL has no host".into()))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });

    let headers = http.headers_mut();
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(request.subprotocol),
    );
    if let Some(value) = request.authorization() {
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| OpenError::InvalidUrl("the api key cannot be sent in a header".into()))?;
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
    }

    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| OpenError::Network(format!("connecting to {host}:{port}: {e}")))?;
    // Ticks are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let transport = if secure {
        let name = ServerName::try_from(host.clone())
            .map_err(|_| OpenError::InvalidUrl(format!("`{host}` is not a TLS server name")))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(tls_error)?;
        Transport::Tls(Box::new(stream))
    } else {
        Transport::Plain(tcp)
    };

    let config = ws_config(&request);
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(http, transport, Some(config))
            .await
            .map_err(handshake_error)?;
    Ok(socket)
}

/// A TLS handshake failure: a rejected certificate is fatal, anything else
/// is a network error worth retrying.
fn tls_error(error: io::Error) -> OpenError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(why)) => OpenError::Certificate(why.to_string()),
        Some(rustls::Error::NoCertificatesPresented) => {
            OpenError::Certificate("the server presented no certificate".into())
        }
        Some(other) => OpenError::Network(format!("TLS handshake: {other}")),
        None => OpenError::Network(format!("TLS handshake: {error}")),
    }
}

/// A failed WebSocket upgrade.
fn handshake_error(error: WsError) -> OpenError {
    match error {
        WsError::Http(response) => match response.status().as_u16() {
            status @ (401 | 403) => OpenError::Unauthorized { status },
            status => OpenError::Http { status },
        },
        WsError::Url(e) => OpenError::InvalidUrl(e.to_string()),
        WsError::HttpFormat(e) => OpenError::InvalidUrl(e.to_string()),
        WsError::Io(e) => OpenError::Network(format!("upgrade: {e}")),
        WsError::Tls(e) => OpenError::Network(format!("upgrade: {e}")),
        other => OpenError::Network(format!("upgrade: {other}")),
    }
}

/// Builds the rustls configuration: the `ring` provider, the safe default
/// protocol versions, and the given roots.
pub(crate) fn tls_config(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::http::{Response, StatusCode};

    fn http(status: u16) -> WsError {
        let mut response = Response::new(None);
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        WsError::Http(Box::new(response))
    }

    #[test]
    fn statuses_map_to_open_errors() {
        assert_eq!(
            handshake_error(http(401)),
            OpenError::Unauthorized { status: 401 }
        );
        assert_eq!(
            handshake_error(http(403)),
            OpenError::Unauthorized { status: 403 }
        );
        assert_eq!(handshake_error(http(503)), OpenError::Http { status: 503 });
        // A redirect is not followed.
        assert_eq!(handshake_error(http(301)), OpenError::Http { status: 301 });
        assert!(matches!(
            handshake_error(WsError::Io(io::Error::other("reset"))),
            OpenError::Network(_)
        ));
    }

    #[test]
    fn certificate_failures_are_fatal() {
        let bad = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let error = tls_error(bad);
        assert!(matches!(error, OpenError::Certificate(_)), "{error:?}");
        assert!(error.is_fatal());
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert!(matches!(tls_error(eof), OpenError::Network(_)));
    }

    #[tokio::test]
    async fn bad_urls_are_invalid() {
        let roots = rustls::RootCertStore::empty();
        let tls = tls_config(roots).unwrap();
        for url in ["ws://exa mple.com/ws", "http://example.com/ws"] {
            let request = OpenRequest {
                url: url.into(),
                api_key: None,
                subprotocol: "argus.v1",
                max_message_size: 1 << 20,
            };
            let error = open(request, tls.clone()).await.unwrap_err();
            assert!(
                matches!(error, OpenError::InvalidUrl(_)),
                "{url}: {error:?}"
            );
        }
    }
}
