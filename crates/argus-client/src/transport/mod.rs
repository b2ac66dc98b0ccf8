//! Opening a connection, the runtime-independent part: the upgrade request
//! (subprotocol, bearer key, no redirects), the WebSocket limits, the rustls
//! configuration, and the mapping of every failure to the core's
//! [`OpenError`]. An adapter's [`Runtime::open`](crate::Runtime::open) does
//! the I/O in between: TCP, TLS, the upgrade.

use std::io;
use std::sync::Arc;

use argus_core::{Input, LinkError, OpenError, OpenRequest};
use rustls::pki_types::ServerName;
use tungstenite::Error as WsError;
use tungstenite::client::IntoClientRequest;
use tungstenite::error::ProtocolError;
use tungstenite::handshake::client::Request;
use tungstenite::http::{HeaderValue, header};
use tungstenite::protocol::WebSocketConfig;

mod close_code;
#[cfg(feature = "futures-io")]
pub mod futures_io;

pub use close_code::CloseCodeSniffer;

/// The most bytes of outgoing frames buffered for a socket that does not
/// drain. A client sends little (subscribe requests, pings); a link whose
/// buffer fills up this far is treated as lost.
pub const MAX_WRITE_BUFFER: usize = 1 << 20;

/// Bytes read from the socket at a time. tungstenite's default (128 KiB) is
/// zeroed on first use, so every idle client would hold it; 16 KiB still
/// carries well over a hundred ticks per read.
pub const READ_BUFFER: usize = 16 * 1024;

/// The WebSocket limits for a request: frames and messages bounded by the
/// configured `max_message_size`, outgoing frames written eagerly and their
/// buffer bounded.
pub fn ws_config(request: &OpenRequest) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(request.max_message_size))
        .max_frame_size(Some(request.max_message_size))
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
}

/// A connection ready to be opened: where to, and how.
#[derive(Debug)]
#[non_exhaustive]
pub struct Prepared {
    /// The upgrade request, with `Sec-WebSocket-Protocol` and, when there
    /// is a key, `Authorization: Bearer` (marked sensitive).
    pub request: Request,
    /// The host to connect to (without brackets for IPv6).
    pub host: String,
    /// The port (the scheme's default when the URL has none).
    pub port: u16,
    /// For `wss://`, the name the server's certificate must carry.
    pub tls_name: Option<ServerName<'static>>,
    /// The WebSocket limits.
    pub config: WebSocketConfig,
}

/// Checks the URL and builds the upgrade request. Never follows redirects:
/// a 3xx answer is an [`OpenError::Http`] like any other status.
pub fn prepare(request: &OpenRequest) -> Result<Prepared, OpenError> {
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
    let tls_name = if secure {
        Some(
            ServerName::try_from(host.clone())
                .map_err(|_| OpenError::InvalidUrl(format!("`{host}` is not a TLS server name")))?,
        )
    } else {
        None
    };
    Ok(Prepared {
        request: http,
        config: ws_config(request),
        host,
        port,
        tls_name,
    })
}

/// A failed TCP connect to `host:port`.
pub fn connect_error(host: &str, port: u16, error: io::Error) -> OpenError {
    OpenError::Network(format!("connecting to {host}:{port}: {error}"))
}

/// A TLS handshake failure: a rejected certificate is fatal, anything else
/// is a network error worth retrying.
pub fn tls_error(error: io::Error) -> OpenError {
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
pub fn handshake_error(error: WsError) -> OpenError {
    match error {
        WsError::Http(response) => OpenError::from_http_status(response.status().as_u16()),
        WsError::Url(e) => OpenError::InvalidUrl(e.to_string()),
        WsError::HttpFormat(e) => OpenError::InvalidUrl(e.to_string()),
        WsError::Io(e) => OpenError::Network(format!("upgrade: {e}")),
        WsError::Tls(e) => OpenError::Network(format!("upgrade: {e}")),
        other => OpenError::Network(format!("upgrade: {other}")),
    }
}

/// What a failure of an open link is to the core, the same for every
/// transport: an oversized message is [`LinkError::MessageTooBig`] (the
/// core answers with close 1009); the peer or the network going away
/// (I/O errors, a reset, a closed connection) is a link closed without a
/// close frame; anything else the WebSocket layer refuses is a
/// [`LinkError::Socket`].
pub fn link_input(error: &WsError) -> Input<'static> {
    match error {
        WsError::Capacity(_) => Input::Failed(LinkError::MessageTooBig),
        WsError::Io(_)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Input::Closed {
            code: None,
            reason: "",
        },
        other => Input::Failed(LinkError::Socket(other.to_string())),
    }
}

/// The URL without any `user:password@` part, for logs.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// Builds the rustls configuration: the `ring` provider, the safe default
/// protocol versions, and the given roots.
pub fn tls_config(
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
    use tungstenite::http::{Response, StatusCode};

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
    fn urls_lose_their_credentials_in_logs() {
        assert_eq!(
            redact_url("wss://user:pw@feed.example.com/ws?x=1"),
            "wss://***@feed.example.com/ws?x=1"
        );
        assert_eq!(redact_url("ws://h:1/ws"), "ws://h:1/ws");
        assert_eq!(redact_url("ws://h/ws@x"), "ws://h/ws@x");
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

    #[test]
    fn bad_urls_are_invalid() {
        for url in ["ws://exa mple.com/ws", "http://example.com/ws"] {
            let request = OpenRequest {
                url: url.into(),
                api_key: None,
                subprotocol: "argus.v1",
                max_message_size: 1 << 20,
            };
            let error = prepare(&request).unwrap_err();
            assert!(
                matches!(error, OpenError::InvalidUrl(_)),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn the_request_carries_the_subprotocol_and_a_sensitive_key() {
        let request = OpenRequest {
            url: "wss://[::1]:9443/ws".into(),
            api_key: Some(argus_core::ApiKey::new("k-123")),
            subprotocol: "argus.v1",
            max_message_size: 1 << 20,
        };
        let prepared = prepare(&request).unwrap();
        assert_eq!((prepared.host.as_str(), prepared.port), ("::1", 9443));
        assert!(prepared.tls_name.is_some());
        let headers = prepared.request.headers();
        assert_eq!(headers[header::SEC_WEBSOCKET_PROTOCOL], "argus.v1");
        assert!(headers[header::AUTHORIZATION].is_sensitive());
        assert!(!format!("{prepared:?}").contains("k-123"));
    }
}
