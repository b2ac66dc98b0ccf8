//! One client connection: TLS and upgrade, then a reader and a writer.
//!
//! The reader answers requests (through the session, so replies keep their
//! order with data), pings the client and notices when it goes silent. The
//! writer drains the connection's [`Outbox`] in batches (feed many frames,
//! flush once) and, in firehose mode, generates data between batches. Both
//! run in the connection's one task, so aborting the task drops the socket
//! with no close frame.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use argus_core::io::{CLOSE_GOING_AWAY, CLOSE_TOO_BIG};
use argus_core::wire::{
    ErrorCode, PROTOCOL_VERSION, SUBPROTOCOL, ServerMessage, SessionToken, Welcome,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};
use tracing::{debug, info, warn};

use crate::firehose::{Firehose, Next};
use crate::ids::{now_rfc3339, session_token, uuid_v4};
use crate::outbox::{Out, Outbox, Taken};
use crate::request::{self, RateLimit, Rejection, Request as ClientRequest};
use crate::server::{Instance, Shared};
use crate::session::{self, SessionCmd, SessionHandle};
use crate::watched::{IoWatch, Watched};

/// Close codes the protocol's table does not list, from RFC 6455.
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_INVALID_PAYLOAD: u16 = 1007;

/// Serves one accepted TCP connection to its end. The connection was
/// counted against the connection caps when it was accepted.
pub(crate) async fn run(
    tcp: TcpStream,
    peer: SocketAddr,
    inst: Arc<Instance>,
    conn: u64,
    silent: watch::Receiver<bool>,
) {
    let mut guard = ConnGuard {
        inst: inst.clone(),
        conn,
        peer,
        key: None,
        session: None,
        outbox: None,
        upgraded_at: None,
        outcome: "dropped without a close frame".into(),
    };
    let limit = inst.shared.config.handshake_timeout;
    let deadline = Instant::now() + limit;
    match inst.shared.tls.clone() {
        Some(acceptor) => match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => serve(tls, deadline, &inst, silent, &mut guard).await,
            Ok(Err(e)) => debug!(conn, %peer, error = %e, "TLS handshake failed"),
            Err(_) => debug!(conn, %peer, "TLS handshake timed out"),
        },
        None => serve(tcp, deadline, &inst, silent, &mut guard).await,
    }
}

/// The longest request head the server reads before the upgrade.
const MAX_HEAD: usize = 8 * 1024;

/// Why a request head was not handed to tungstenite.
enum BadHead {
    /// The client went away or the read failed: nobody to answer.
    Gone,
    /// Not a WebSocket upgrade: answered with HTTP 400.
    Malformed(&'static str),
}

/// Reads the HTTP request head, up to [`MAX_HEAD`] bytes, and checks that it
/// asks for a WebSocket upgrade (tungstenite would drop it silently
/// otherwise). Returns every byte read, the head and anything after it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, BadHead> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() >= MAX_HEAD {
            return Err(BadHead::Malformed("request head too long"));
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(BadHead::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    check_head(&buf[..end]).map_err(BadHead::Malformed)?;
    Ok(buf)
}

/// Whether a request head (without its blank line) is a WebSocket upgrade.
fn check_head(head: &[u8]) -> Result<(), &'static str> {
    let head = std::str::from_utf8(head).map_err(|_| "request head is not text")?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if method != Some("GET") || parts.next().is_some() {
        return Err("a WebSocket upgrade is a GET request");
    }
    if !target.is_some_and(|t| t.starts_with('/')) || version != Some("HTTP/1.1") {
        return Err("malformed request line");
    }
    let (mut upgrade, mut connection, mut key, mut version13) = (false, false, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err("malformed header line");
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade |= value.eq_ignore_ascii_case("websocket"),
            "connection" => {
                connection |= value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            }
            "sec-websocket-key" => key = !value.is_empty(),
            "sec-websocket-version" => version13 = value == "13",
            _ => {}
        }
    }
    if !(upgrade && connection) {
        return Err("not a WebSocket upgrade request");
    }
    if !(key && version13) {
        return Err("missing Sec-WebSocket-Key or Sec-WebSocket-Version: 13");
    }
    Ok(())
}

/// A complete HTTP response that ends the connection.
pub(crate) fn http_response(status: u16, reason: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Ends the connection's bookkeeping however the task ends, aborts included.
struct ConnGuard {
    inst: Arc<Instance>,
    conn: u64,
    peer: SocketAddr,
    /// The api key, once counted against its cap.
    key: Option<usize>,
    session: Option<SessionHandle>,
    outbox: Option<Arc<Outbox>>,
    upgraded_at: Option<Instant>,
    outcome: String,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(outbox) = &self.outbox {
            outbox.mark_closed();
        }
        if let Some(s) = &self.session {
            s.send(SessionCmd::Detach { conn: self.conn });
        }
        self.inst.forget_connection(self.conn);
        self.inst.release_connection(self.peer.ip(), self.key);
        if let Some(at) = self.upgraded_at {
            self.inst
                .shared
                .stats
                .send_modify(|s| s.live_connections -= 1);
            info!(
                conn = self.conn,
                outcome = %self.outcome,
                duration_ms = at.elapsed().as_millis() as u64,
                "closed"
            );
        }
    }
}

fn error_response(status: StatusCode, body: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(body.to_owned()));
    *r.status_mut() = status;
    r
}

/// Seconds a client refused for a cap is told to wait (`Retry-After`).
pub(crate) const RETRY_AFTER_SECS: u32 = 1;

fn over_cap(conn: u64, what: &str) -> ErrorResponse {
    info!(
        conn,
        status = 503,
        cap = what,
        "upgrade refused: over a cap"
    );
    let mut r = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("too many {what}; retry later"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}

/// Decides the upgrade: 503 while refusing, 404 off the path, 401 without a
/// known key; selects `argus.v1` when the client offers it.
#[allow(clippy::result_large_err)] // the shape of tungstenite's handshake callback
fn admit(
    inst: &Instance,
    conn: u64,
    request: &Request,
    mut response: Response,
    key: &mut Option<usize>,
) -> Result<Response, ErrorResponse> {
    let shared = &*inst.shared;
    if shared.take_refusal() {
        info!(conn, status = 503, "upgrade refused: refusing connections");
        return Err(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "refusing connections for now; retry later",
        ));
    }
    if request.uri().path() != shared.config.path {
        return Err(error_response(
            StatusCode::NOT_FOUND,
            "no WebSocket endpoint here",
        ));
    }
    if shared.config.requires_key() {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        match presented.and_then(|k| shared.key_index(k)) {
            Some(i) => *key = Some(i),
            None => {
                info!(
                    conn,
                    status = 401,
                    "upgrade refused: missing or unknown api key"
                );
                shared
                    .stats
                    .send_modify(|s| s.connections_unauthorized += 1);
                let mut r = error_response(StatusCode::UNAUTHORIZED, "missing or unknown api key");
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return Err(r);
            }
        }
    }
    let offered = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if let Some(k) = *key
        && !inst.claim_key_connection(k)
    {
        *key = None;
        inst.count_over_cap();
        return Err(over_cap(conn, "connections with this api key"));
    }
    if !inst.make_room_for_session(*key) {
        if let Some(k) = key.take() {
            inst.release_connection_key(k);
        }
        inst.count_over_cap();
        return Err(over_cap(conn, "sessions"));
    }
    if offered {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    shared.stats.send_modify(|s| s.connections_accepted += 1);
    Ok(response)
}

/// The key of an `Authorization: Bearer <key>` header.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn ws_config(shared: &Shared) -> WebSocketConfig {
    // The protocol's limit on the wire: a frame announcing more is refused
    // from its header (1009), before its payload is buffered.
    let config = &shared.config;
    let write_buffer = if config.firehose.is_some() {
        256 * 1024
    } else {
        128 * 1024
    };
    WebSocketConfig::default()
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size))
        .read_buffer_size(config.read_buffer_size)
        .write_buffer_size(write_buffer.min(config.max_write_buffer / 2))
        .max_write_buffer_size(config.max_write_buffer)
}

async fn serve<S>(
    mut stream: S,
    deadline: Instant,
    inst: &Arc<Instance>,
    silent: watch::Receiver<bool>,
    guard: &mut ConnGuard,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shared = &inst.shared;
    let conn = guard.conn;
    let peer = guard.peer;
    // The handshake's futures are boxed, so that their memory is given back
    // once the connection is a WebSocket.
    let head = match tokio::time::timeout_at(deadline, Box::pin(read_head(&mut stream))).await {
        Ok(Ok(head)) => head,
        Ok(Err(BadHead::Malformed(why))) => {
            debug!(conn, %peer, why, "malformed upgrade request; answering 400");
            let response = http_response(400, "Bad Request", "", why);
            let _ = tokio::time::timeout_at(deadline, async {
                use tokio::io::AsyncWriteExt;
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            })
            .await;
            return;
        }
        Ok(Err(BadHead::Gone)) => return,
        Err(_) => {
            debug!(conn, %peer, "upgrade timed out");
            return;
        }
    };
    let io = Arc::new(IoWatch::new());
    let stream = Watched::new(stream, head, io.clone());
    let mut key = None;
    #[allow(clippy::result_large_err)] // the shape of tungstenite's handshake callback
    let callback = |req: &Request, resp: Response| admit(inst, conn, req, resp, &mut key);
    let upgrade = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(ws_config(shared)),
    ));
    let upgraded = tokio::time::timeout_at(deadline, upgrade).await;
    // The key's connection count, once claimed, is released by the guard.
    guard.key = key;
    let ws = match upgraded {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            debug!(conn, %peer, error = %e, "no upgrade");
            return;
        }
        Err(_) => {
            debug!(conn, %peer, "upgrade timed out");
            return;
        }
    };
    let (connection_id, token) = match (uuid_v4(), session_token()) {
        (Ok(id), Ok(token)) => (id, token),
        (Err(e), _) | (_, Err(e)) => {
            warn!(conn, error = %e, "no random source; dropping the connection");
            return;
        }
    };
    guard.upgraded_at = Some(Instant::now());
    shared.stats.send_modify(|s| s.live_connections += 1);
    info!(conn, %connection_id, %peer, "connected");

    let outbox = Arc::new(Outbox::new(shared.config.outbound_queue_limit));
    let welcome = ServerMessage::Welcome(Welcome {
        connection_id: Cow::Borrowed(&connection_id),
        session: SessionToken::new(token.as_str()),
        protocol: PROTOCOL_VERSION,
        server_time: Cow::Owned(now_rfc3339()),
    });
    let _ = outbox.push(Out::Text(Utf8Bytes::from(welcome.to_json())));
    guard.outbox = Some(outbox.clone());
    if !inst.register_outbox(conn, &outbox) {
        outbox.close(CLOSE_GOING_AWAY, "server shutting down");
    }
    guard.session = Some(session::spawn(inst, token, key, conn, outbox.clone()));

    let (sink, mut stream) = ws.split();
    let mut reader = Reader {
        inst,
        conn,
        outbox: outbox.clone(),
        key,
        rate: RateLimit::new(shared.config.max_ops_per_second, Instant::now()),
        seen_first: false,
        io: io.clone(),
    };
    let grace = shared.config.close_timeout;
    let firehose = shared
        .config
        .firehose
        .map(|f| Firehose::new(f, shared.config.wire_style));
    let mut writer = Box::pin(write_loop(
        sink,
        outbox.clone(),
        Silence::new(silent.clone()),
        firehose,
        io,
    ));
    let first = {
        let mut read_silence = Silence::new(silent);
        let mut read = Box::pin(read_loop(
            &mut stream,
            &mut reader,
            guard,
            &mut read_silence,
        ));
        tokio::select! {
            w = &mut writer => Ok(w),
            r = &mut read => Err(r),
        }
    };
    // A close the server decided on is enforced: reading has stopped, and
    // the socket goes at the latest `close_timeout` after the decision,
    // whether or not the client reads.
    guard.outcome = match first {
        Err(ReadEnd::Closing | ReadEnd::Failed) => {
            let deadline = Instant::now() + grace;
            match tokio::time::timeout_at(deadline, &mut writer).await {
                Ok(w @ WriteEnd::Closed(..)) => {
                    linger(&mut stream, deadline).await;
                    describe_write_end(&w)
                }
                Ok(w) => describe_write_end(&w),
                Err(_) => "the client did not take the close in time; dropped".to_owned(),
            }
        }
        Err(r) => describe_read_end(&r),
        Ok(w @ WriteEnd::Closed(..)) => {
            linger(&mut stream, Instant::now() + grace).await;
            describe_write_end(&w)
        }
        Ok(w) => describe_write_end(&w),
    };
}

/// Frames read at most while waiting for the client's answer to a close.
const LINGER_FRAMES: usize = 16;

/// After the server's close frame: waits for the client's close frame (or
/// the end of the stream) until `deadline`, reading at most
/// [`LINGER_FRAMES`] frames, whatever they are.
async fn linger<S>(stream: &mut SplitStream<WebSocketStream<S>>, deadline: Instant)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout_at(deadline, async {
        for _ in 0..LINGER_FRAMES {
            match stream.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
}

/// The silence switch of fault injection, as one side of a connection sees it.
struct Silence {
    rx: watch::Receiver<bool>,
    alive: bool,
}

impl Silence {
    fn new(rx: watch::Receiver<bool>) -> Self {
        Self { rx, alive: true }
    }

    fn is_silent(&self) -> bool {
        self.alive && *self.rx.borrow()
    }

    /// Returns when the switch moves; never when it cannot move any more.
    async fn changed(&mut self) {
        if !self.alive {
            return std::future::pending().await;
        }
        if self.rx.changed().await.is_err() {
            self.alive = false;
        }
    }
}

#[derive(Debug)]
enum ReadEnd {
    /// The client closed, with this frame.
    Closed(Option<CloseFrame>),
    /// The connection ended without a closing handshake.
    Lost(String),
    /// Nothing from the client for two ping intervals.
    Silent,
    /// A fatal frame: a close is queued for the writer.
    Failed,
    /// The server decided to close: reading stops at once.
    Closing,
    /// A message begun and not finished, or a write blocked, for too long.
    Stalled(&'static str),
}

fn describe_read_end(end: &ReadEnd) -> String {
    match end {
        ReadEnd::Closed(Some(f)) => format!("client closed with {}", u16::from(f.code)),
        ReadEnd::Closed(None) => "client closed".to_owned(),
        ReadEnd::Lost(why) => format!("lost: {why}"),
        ReadEnd::Silent => "client silent for two ping intervals; dropped".to_owned(),
        ReadEnd::Failed => "protocol failure".to_owned(),
        ReadEnd::Closing => "closing".to_owned(),
        ReadEnd::Stalled(why) => format!("stalled: {why}; dropped"),
    }
}

#[derive(Debug)]
enum WriteEnd {
    /// The server sent a close frame with this code.
    Closed(u16, String),
    /// Writing failed.
    Failed(String),
}

fn describe_write_end(end: &WriteEnd) -> String {
    match end {
        WriteEnd::Closed(code, reason) => format!("server closed with {code} ({reason})"),
        WriteEnd::Failed(why) => format!("write failed: {why}"),
    }
}

/// The reading side's state.
struct Reader<'a> {
    inst: &'a Arc<Instance>,
    conn: u64,
    outbox: Arc<Outbox>,
    key: Option<usize>,
    rate: RateLimit,
    seen_first: bool,
    io: Arc<IoWatch>,
}

async fn read_loop<S>(
    stream: &mut SplitStream<WebSocketStream<S>>,
    r: &mut Reader<'_>,
    guard: &mut ConnGuard,
    silence: &mut Silence,
) -> ReadEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &r.inst.shared.config;
    let interval = config.ping_interval;
    let stall_timeout = config.stall_timeout;
    let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut decided = r.outbox.close_decided();
    let io = r.io.clone();
    let stall = tokio::time::sleep_until(far_future());
    tokio::pin!(stall);
    let mut last_seen = Instant::now();
    let mut client_close = None;
    loop {
        if *decided.borrow_and_update() {
            return ReadEnd::Closing;
        }
        let silent = silence.is_silent();
        // While the socket takes no bytes the reader waits: a peer that
        // sends and never reads cannot make the server queue answers.
        let blocked = io.write_blocked();
        let stall_at = io.stall_deadline(stall_timeout).unwrap_or_else(far_future);
        if stall.deadline() != stall_at {
            stall.as_mut().reset(stall_at);
        }
        tokio::select! {
            biased;
            _ = decided.changed() => {}
            _ = &mut stall, if !silent => {
                if let Some(why) = io.stalled(stall_timeout, Instant::now()) {
                    debug!(conn = r.conn, why, "connection stalled");
                    return ReadEnd::Stalled(why);
                }
            }
            _ = silence.changed() => {
                if !silence.is_silent() {
                    last_seen = Instant::now();
                    ping.reset();
                }
            }
            _ = ping.tick(), if !silent => {
                if last_seen.elapsed() >= interval * 2 {
                    return ReadEnd::Silent;
                }
                r.outbox.push_ping();
            }
            _ = io.unblocked.notified(), if blocked => {}
            msg = stream.next(), if !silent && !blocked => {
                let Some(msg) = msg else {
                    return match client_close.take() {
                        Some(frame) => ReadEnd::Closed(frame),
                        None => ReadEnd::Lost("closed without a close frame".to_owned()),
                    };
                };
                last_seen = Instant::now();
                match msg {
                    Ok(Message::Text(text)) => r.on_text(&text, guard).await,
                    Ok(Message::Binary(_)) => {
                        r.seen_first = true;
                        r.reject(guard, Rejection::new(
                            ErrorCode::BadRequest,
                            "binary frames are not part of the protocol: send JSON in text frames",
                            None,
                        ));
                    }
                    Ok(Message::Close(frame)) => client_close = Some(frame),
                    Ok(_) => {}
                    Err(e) => return r.on_error(e),
                }
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400 * 365)
}

impl Reader<'_> {
    fn session<'g>(&self, guard: &'g ConnGuard) -> Option<&'g SessionHandle> {
        guard.session.as_ref()
    }

    fn on_error(&self, e: WsError) -> ReadEnd {
        let close = |code, reason| {
            debug!(conn = self.conn, error = %e, "closing after a bad frame");
            self.outbox.close(code, reason);
            ReadEnd::Failed
        };
        match &e {
            WsError::Capacity(_) => close(CLOSE_TOO_BIG, "message too big"),
            WsError::Utf8(_) => close(CLOSE_INVALID_PAYLOAD, "text frame is not UTF-8"),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                ReadEnd::Lost("reset without a closing handshake".to_owned())
            }
            WsError::Protocol(_) => close(CLOSE_PROTOCOL_ERROR, "WebSocket protocol error"),
            other => ReadEnd::Lost(other.to_string()),
        }
    }

    /// Answers a request with an error, in order with the session's output.
    /// The session counts it toward the repeated-errors close.
    fn reject(&mut self, guard: &ConnGuard, rejection: Rejection) {
        debug!(conn = self.conn, code = %rejection.code, "request rejected");
        if let Some(s) = self.session(guard) {
            s.send(SessionCmd::Reply {
                conn: self.conn,
                rejection,
            });
        }
    }

    async fn on_text(&mut self, text: &str, guard: &mut ConnGuard) {
        let first = !self.seen_first;
        self.seen_first = true;
        let shared = &self.inst.shared;
        if !self.rate.allow(Instant::now()) {
            let r = Rejection::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} operations per second; slow down",
                    shared.config.max_ops_per_second
                ),
                request::best_effort_id(text),
            );
            self.reject(guard, r);
            return;
        }
        let parsed = request::parse(
            text,
            &shared.universe,
            shared.config.max_symbols_per_subscription,
        );
        match parsed {
            Err(r) => self.reject(guard, r),
            Ok(ClientRequest::Subscribe(spec)) => {
                if let Some(s) = self.session(guard) {
                    s.send(SessionCmd::Subscribe {
                        conn: self.conn,
                        spec: Box::new(spec),
                    });
                }
            }
            Ok(ClientRequest::Unsubscribe(id)) => {
                if let Some(s) = self.session(guard) {
                    s.send(SessionCmd::Unsubscribe {
                        conn: self.conn,
                        id,
                    });
                }
            }
            Ok(ClientRequest::Resume { session, last_seq }) => {
                if first {
                    self.resume(guard, &session, last_seq).await;
                } else {
                    let r = Rejection::new(
                        ErrorCode::ResumeFailed,
                        "resume must be the first message after welcome",
                        None,
                    );
                    info!(
                        conn = self.conn,
                        outcome = "not the first message",
                        "resume failed"
                    );
                    self.reject(guard, r);
                }
            }
        }
    }

    async fn resume(&mut self, guard: &mut ConnGuard, token: &str, last_seq: u64) {
        let Some(current) = guard.session.clone() else {
            return;
        };
        let failed = |reason: String| Rejection::new(ErrorCode::ResumeFailed, reason, None);
        let Some(target) = self.inst.find_session(token) else {
            info!(
                conn = self.conn,
                last_seq,
                outcome = "unknown or expired session",
                "resume failed"
            );
            self.reject(guard, failed("unknown or expired session".to_owned()));
            return;
        };
        let (tx, rx) = oneshot::channel();
        target.send(SessionCmd::Attach {
            conn: self.conn,
            outbox: self.outbox.clone(),
            key: self.key,
            last_seq,
            reply: tx,
        });
        match rx.await {
            Ok(Ok(replayed)) => {
                if target.label != current.label {
                    current.send(SessionCmd::Discard);
                }
                info!(
                    conn = self.conn,
                    session = target.label,
                    last_seq,
                    replayed,
                    "resumed"
                );
                guard.session = Some(target);
            }
            Ok(Err(reason)) => {
                info!(conn = self.conn, session = target.label, last_seq, outcome = %reason, "resume failed");
                self.reject(guard, failed(reason));
            }
            Err(_) => {
                info!(
                    conn = self.conn,
                    last_seq,
                    outcome = "session ended",
                    "resume failed"
                );
                self.reject(guard, failed("unknown or expired session".to_owned()));
            }
        }
    }
}

/// A paced firehose sleeps on the runtime's timer (1 ms grain) until this
/// long before a message is due, then spins, so that every message leaves
/// at its own instant.
const PACING_SPIN: std::time::Duration = std::time::Duration::from_millis(2);

async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    outbox: Arc<Outbox>,
    mut silence: Silence,
    mut firehose: Option<Firehose>,
    io: Arc<IoWatch>,
) -> WriteEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = VecDeque::new();
    loop {
        if silence.is_silent() {
            silence.changed().await;
            continue;
        }
        let mut wrote = false;
        match outbox.try_take(&mut buf) {
            Some(Taken::Close(code, reason)) => return close(&mut sink, code, reason).await,
            Some(Taken::Items) => {
                while let Some(item) = buf.pop_front() {
                    let message = match item {
                        Out::Text(text) => Message::Text(text),
                        Out::Binary(data) => Message::Binary(data),
                        Out::Ping => Message::Ping(Bytes::new()),
                        Out::Close(code, reason) => return close(&mut sink, code, reason).await,
                        Out::Firehose(cmd) => {
                            if let Some(f) = &mut firehose {
                                f.apply(cmd);
                            }
                            continue;
                        }
                    };
                    if let Err(e) = sink.feed(message).await {
                        return WriteEnd::Failed(e.to_string());
                    }
                    wrote = true;
                }
            }
            None => {}
        }
        let next = match &mut firehose {
            Some(f) => f.next(Instant::now()),
            None => Next::Idle,
        };
        let firing = matches!(next, Next::Send(_));
        if let (Next::Send(n), Some(f)) = (&next, &mut firehose) {
            f.stamp();
            for _ in 0..*n {
                if let Err(e) = sink.feed(Message::Text(f.message())).await {
                    return WriteEnd::Failed(e.to_string());
                }
            }
            wrote = true;
        }
        if wrote {
            if let Err(e) = sink.flush().await {
                return WriteEnd::Failed(e.to_string());
            }
            if firing {
                // Let the reader (same task) take its turn between batches.
                tokio::task::yield_now().await;
            }
            continue;
        }
        let wake_at = match next {
            Next::WaitUntil(at) => Some(at),
            _ => None,
        };
        if wake_at.is_some_and(|at| at <= Instant::now() + PACING_SPIN) {
            // The next paced message is due sooner than the timer's grain:
            // spin, letting the runtime's other tasks and the reactor run.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = outbox.wait() => {}
            _ = silence.changed() => {}
            _ = tokio::time::sleep_until(wake_at.map_or_else(Instant::now, |at| at - PACING_SPIN)), if wake_at.is_some() => {}
            // A write the reader started (a pong) is stuck: flush it here, so
            // that the paused reader resumes once the client reads again.
            _ = io.blocked.notified() => {
                if io.write_blocked()
                    && let Err(e) = sink.flush().await
                {
                    return WriteEnd::Failed(e.to_string());
                }
            }
        }
    }
}

async fn close<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    code: u16,
    reason: String,
) -> WriteEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(reason.as_str()),
    };
    match sink.send(Message::Close(Some(frame))).await {
        Ok(()) => WriteEnd::Closed(code, reason),
        Err(e) => WriteEnd::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bearer_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn close_timeout_is_positive() {
        assert!(crate::ServerConfig::default().close_timeout > Duration::ZERO);
    }
}
