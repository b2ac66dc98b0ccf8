//! Helpers for the integration tests: a plain tokio-tungstenite client over
//! real sockets, JSON read with serde_json (not with Argus types, so the tests
//! check the wire format of PROTOCOL.md independently), and timeouts that only
//! ever act as a safety net.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use argus_server::{Server, ServerConfig, ServerHandle};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// Runs a test body with an overall bound.
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(Duration::from_secs(45), body)
        .await
        .expect("test took longer than 45 s");
}

/// Starts a server on a free port of 127.0.0.1.
pub async fn start(config: ServerConfig) -> ServerHandle {
    Server::start(config).await.expect("server starts")
}

/// A config for fast tests: a 5 ms market tick, and a short wait for
/// clients that do not answer a close.
pub fn fast() -> ServerConfig {
    ServerConfig {
        tick_interval: Duration::from_millis(5),
        close_timeout: Duration::from_millis(300),
        ..ServerConfig::ephemeral()
    }
}

/// How to open a connection.
#[derive(Clone, Debug, Default)]
pub struct Opts {
    pub key: Option<String>,
    pub subprotocol: bool,
}

/// A test client: a bare WebSocket.
pub struct Client<S = TcpStream> {
    pub ws: WebSocketStream<S>,
    pub response: Response,
}

/// Opens a connection to `server`, offering `argus.v1`.
pub async fn connect(server: &ServerHandle) -> Client {
    try_connect(
        server,
        Opts {
            subprotocol: true,
            ..Opts::default()
        },
    )
    .await
    .expect("connects")
}

/// Connects and reads the `welcome`.
pub async fn connect_welcomed(server: &ServerHandle) -> (Client, Value) {
    let mut c = connect(server).await;
    let w = c.next_json().await;
    assert_eq!(w["type"], "welcome", "{w}");
    (c, w)
}

/// Opens a connection, returning the handshake's error as is.
pub async fn try_connect(server: &ServerHandle, opts: Opts) -> Result<Client, WsError> {
    let tcp = TcpStream::connect(server.local_addr())
        .await
        .expect("tcp connect");
    handshake(&server.url(), tcp, opts).await
}

/// The WebSocket handshake over any stream.
pub async fn handshake<S>(url: &str, stream: S, opts: Opts) -> Result<Client<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = url.into_client_request()?;
    if let Some(key) = &opts.key {
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
        );
    }
    if opts.subprotocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("argus.v1"),
        );
    }
    let (ws, response) =
        tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("handshake in time")?;
    Ok(Client { ws, response })
}

/// The HTTP status of a refused upgrade.
pub fn http_status(e: &WsError) -> u16 {
    match e {
        WsError::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

/// How a connection ended.
#[derive(Debug)]
pub enum End {
    /// A close frame arrived.
    Close(Option<CloseFrame>),
    /// The connection ended without a close frame.
    Abrupt(String),
}

impl End {
    pub fn code(&self) -> Option<u16> {
        match self {
            End::Close(Some(f)) => Some(f.code.into()),
            _ => None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next frame of any kind.
    pub async fn next_frame(&mut self) -> Option<Result<Message, WsError>> {
        tokio::time::timeout(WAIT, self.ws.next())
            .await
            .expect("a frame in time")
    }

    /// The next application message, as JSON; fails on a close.
    pub async fn next_json(&mut self) -> Value {
        loop {
            match self.next_frame().await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(&t).expect("every frame is JSON");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads until a message satisfies `pred`, returning it and what came before.
    pub async fn until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let v = self.next_json().await;
            if pred(&v) {
                return (v, before);
            }
            before.push(v);
        }
    }

    /// The next message that is not data.
    pub async fn next_control(&mut self) -> Value {
        self.until(|v| !is_data(v)).await.0
    }

    /// Reads (discarding data) until the connection ends.
    pub async fn end(&mut self) -> End {
        loop {
            match self.next_frame().await {
                Some(Ok(Message::Close(frame))) => {
                    // Finish the closing handshake: reading flushes our reply,
                    // then the server ends the TCP connection.
                    let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
                    let _ = tokio::time::timeout(WAIT, drain).await;
                    return End::Close(frame);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return End::Abrupt(e.to_string()),
                None => return End::Abrupt("stream ended".into()),
            }
        }
    }

    /// Subscribes and waits for `subscribed` (other control messages fail).
    pub async fn subscribe(&mut self, id: &str, symbols: &[&str], data_types: &[&str]) -> Value {
        self.send_json(json!({"op":"subscribe","id":id,"symbols":symbols,"data_types":data_types}))
            .await;
        let reply = self.next_control().await;
        assert_eq!(reply["type"], "subscribed", "{reply}");
        assert_eq!(reply["id"], id);
        reply
    }
}

/// Whether a message is a data message.
pub fn is_data(v: &Value) -> bool {
    matches!(v["type"].as_str(), Some("price" | "volume" | "orderbook"))
}

/// The seq of a data message.
pub fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().expect("data carries seq")
}

/// Parses an RFC 3339 UTC timestamp with microseconds into microseconds
/// since the epoch, checking the format on the way.
pub fn micros(ts: &str) -> i64 {
    // 2026-11-24T09:49:56.123456Z
    assert_eq!(
        ts.len(),
        27,
        "timestamp {ts} is not RFC 3339 with microseconds"
    );
    assert!(
        ts.ends_with('Z') && &ts[10..11] == "T" && &ts[19..20] == ".",
        "{ts}"
    );
    let n = |a: usize, b: usize| ts[a..b].parse::<i64>().expect("digits");
    let (y, mo, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from the civil date (proleptic Gregorian).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    secs * 1_000_000 + n(20, 26)
}
