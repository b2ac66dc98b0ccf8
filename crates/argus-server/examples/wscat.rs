//! A bare WebSocket console for hand sessions: sends each line typed on
//! stdin as a text frame and prints every frame received.
//!
//! ```text
//! cargo run -p argus-server --example wscat -- ws://127.0.0.1:8000/ws [API_KEY]
//! {"op":"subscribe","id":"main","symbols":["AAPL"],"data_types":["price"]}
//! ```
//!
//! It offers the `argus.v1` subprotocol and, given a key, sends it as
//! `Authorization: Bearer <key>`. Ctrl-D closes the connection.

use std::io::Write;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8000/ws".to_owned());
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("argus.v1"),
    );
    if let Some(key) = args.next() {
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {key}"))?,
        );
    }
    let host = request.uri().host().unwrap_or("127.0.0.1").to_owned();
    let port = request.uri().port_u16().unwrap_or(80);
    if url.starts_with("wss://") {
        return Err("this console speaks ws:// only".into());
    }
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await?;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut typing = true;
    loop {
        tokio::select! {
            line = stdin.next_line(), if typing => match line? {
                Some(line) if !line.trim().is_empty() => ws.send(Message::Text(line.into())).await?,
                Some(_) => {}
                None => {
                    typing = false;
                    ws.close(None).await?;
                }
            },
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if writeln!(std::io::stdout(), "{text}").is_err() {
                        return Ok(()); // stdout closed
                    }
                }
                Some(Ok(Message::Close(frame))) => eprintln!("closed: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
}
