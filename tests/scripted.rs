//! A scripted server for tests of the client against servers that do what
//! the reference server never does (never answer, misbehave, close with
//! invalid codes): on a free loopback port, on a thread and tokio runtime
//! of its own, it selects `argus.v1` and runs the test's script on each
//! connection ([`Conn`]: welcome, answer, send, close with any code). The
//! requests the client sends, and the close code it ends a connection
//! with, reach the test through [`ScriptedServer::request`], in order
//! within each connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::live::within;

type Script = Arc<dyn Fn(Conn) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What the server saw of the client, in order: a request (text frame,
/// parsed) or the close code it ended a connection with (`{"close":code}`).
pub type Seen = (usize, Value);

/// A scripted server on a free loopback port, on a thread and tokio runtime
/// of its own; it selects `argus.v1` and runs the script on each connection.
pub struct ScriptedServer {
    url: String,
    connections: Arc<watch::Sender<usize>>,
    requests: mpsc::UnboundedReceiver<Seen>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedServer {
    /// Starts a server running `script` on every connection.
    pub fn start<F, Fut>(script: F) -> Self
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<()>> + Send + 'static,
    {
        let script: Script = Arc::new(move |conn| {
            let run = script(conn);
            Box::pin(async move {
                let _ = run.await;
            })
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("ws://{}/ws", listener.local_addr().expect("an address"));
        let connections = Arc::new(watch::Sender::new(0));
        let counted = connections.clone();
        let (seen, requests) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                let accept = async {
                    while let Ok((stream, _)) = listener.accept().await {
                        let _ = stream.set_nodelay(true);
                        counted.send_modify(|n| *n += 1);
                        let number = *counted.borrow();
                        let script = script.clone();
                        let seen = seen.clone();
                        tokio::spawn(async move {
                            if let Some(socket) = accept(stream).await {
                                script(Conn {
                                    socket,
                                    number,
                                    seen,
                                })
                                .await;
                            }
                        });
                    }
                };
                futures_util::pin_mut!(accept);
                futures_util::future::select(accept, stopped).await;
            });
        });
        Self {
            url,
            connections,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Its `ws://` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.connections.borrow()
    }

    /// The next thing the server saw of the client: `(connection, request)`
    /// or `(connection, {"close":code})`.
    pub async fn request(&mut self) -> Seen {
        within("a request at the server", self.requests.recv())
            .await
            .expect("the server lives")
    }

    /// The next `n` requests the server saw (closes skipped).
    pub async fn requests(&mut self, n: usize) -> Vec<Seen> {
        let mut seen = Vec::new();
        while seen.len() < n {
            let next = self.request().await;
            if next.1.get("close").is_none() {
                seen.push(next);
            }
        }
        seen
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[allow(clippy::result_large_err)] // tungstenite's callback type
async fn accept(stream: tokio::net::TcpStream) -> Option<WebSocketStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let select = |_: &Request, mut response: Response| {
        response.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("argus.v1"),
        );
        Ok(response)
    };
    tokio_tungstenite::accept_hdr_async(stream, select)
        .await
        .ok()
}

/// One connection of the scripted server. Every method returns `None` once
/// the client has gone, so a script ends with `?`.
pub struct Conn {
    /// The socket, for scripts that drive it themselves.
    pub socket: WebSocketStream<tokio::net::TcpStream>,
    /// 1-based, in accept order.
    pub number: usize,
    seen: mpsc::UnboundedSender<Seen>,
}

impl Conn {
    /// The session token this connection's `welcome` names.
    pub fn session(&self) -> String {
        session(self.number)
    }

    /// Sends `welcome` announcing protocol `version`.
    pub async fn welcome(&mut self, version: u32) -> Option<()> {
        let welcome = format!(
            r#"{{"type":"welcome","connection_id":"conn-{n}","session":"{s}","protocol":{version},"server_time":"2026-12-02T00:00:00.000Z"}}"#,
            n = self.number,
            s = self.session(),
        );
        self.send(welcome).await
    }

    /// Sends one text frame.
    pub async fn send(&mut self, text: impl Into<String>) -> Option<()> {
        self.socket.send(Message::text(text.into())).await.ok()
    }

    /// Sends text frames in one write.
    pub async fn send_all(&mut self, texts: impl IntoIterator<Item = String>) -> Option<()> {
        for text in texts {
            self.socket.feed(Message::text(text)).await.ok()?;
        }
        self.socket.flush().await.ok()
    }

    /// The client's next request (pings are answered while waiting); a
    /// close frame is reported to the test and ends the script.
    pub async fn request(&mut self) -> Option<Value> {
        loop {
            match self.socket.next().await? {
                Ok(Message::Text(text)) => {
                    let request: Value = serde_json::from_str(&text).expect("a JSON request");
                    let _ = self.seen.send((self.number, request.clone()));
                    return Some(request);
                }
                Ok(Message::Close(frame)) => {
                    let code = frame.map(|f| u16::from(f.code));
                    let _ = self
                        .seen
                        .send((self.number, serde_json::json!({ "close": code })));
                    return None;
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads a `subscribe` and acknowledges it; returns its id.
    pub async fn answer_subscribe(&mut self) -> Option<String> {
        let request = self.request().await?;
        assert_eq!(request["op"], "subscribe", "{request}");
        let id = request["id"].as_str().expect("an id").to_owned();
        self.send(subscribed(&id)).await?;
        Some(id)
    }

    /// Closes with `code` as a raw frame, whatever the code (tungstenite
    /// would not send an invalid one), then reads until the client goes.
    pub async fn close_raw(&mut self, code: u16, reason: &str) -> Option<()> {
        self.socket.flush().await.ok()?;
        let mut frame = vec![
            0x88,
            u8::try_from(2 + reason.len()).expect("a short reason"),
        ];
        frame.extend_from_slice(&code.to_be_bytes());
        frame.extend_from_slice(reason.as_bytes());
        self.socket.get_mut().write_all(&frame).await.ok()?;
        self.drain().await
    }

    /// Closes with a valid `code`, then reads until the client goes.
    pub async fn close(&mut self, code: u16) -> Option<()> {
        let frame = CloseFrame {
            code: code.into(),
            reason: "scripted".into(),
        };
        let _ = self.socket.close(Some(frame)).await;
        self.drain().await
    }

    /// Reads (answering pings, reporting requests) until the client goes.
    pub async fn drain(&mut self) -> Option<()> {
        while self.request().await.is_some() {}
        None
    }
}

/// The session token connection number `connection` names.
pub fn session(connection: usize) -> String {
    format!("session-{connection}-0123456789abcdef0123456789abcdef")
}

/// The `subscribed` answer to subscription `id`.
pub fn subscribed(id: &str) -> String {
    format!(r#"{{"type":"subscribed","id":"{id}","symbols":["AAPL"],"data_types":["price"]}}"#)
}
