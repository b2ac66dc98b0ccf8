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

use argus_core::io::{CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TOO_BIG};
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

/// Close codes the protocol's table does not list, from RFC 6455.
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_INVALID_PAYLOAD: u16 = 1007;

/// Serves one accepted TCP connection to its end.
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
        session: None,
        outbox: None,
        upgraded_at: None,
        outcome: "dropped without a close frame".into(),
    };
    let limit = inst.shared.config.handshake_timeout;
    match inst.shared.tls.clone() {
        Some(acceptor) => match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => serve(tls, peer, &inst, silent, &mut guard).await,
            Ok(Err(e)) => debug!(conn, %peer, error = %e, "TLS handshake failed"),
            Err(_) => debug!(conn, %peer, "TLS handshake timed out"),
        },
        None => serve(tcp, peer, &inst, silent, &mut guard).await,
    }
}

/// Ends the connection's bookkeeping however the task ends, aborts included.
struct ConnGuard {
    inst: Arc<Instance>,
    conn: u64,
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

/// Decides the upgrade: 503 while refusing, 404 off the path, 401 without a
/// known key; selects `argus.v1` when the client offers it.
#[allow(clippy::result_large_err)] // the shape of tungstenite's handshake callback
fn admit(
    shared: &Shared,
    conn: u64,
    request: &Request,
    mut response: Response,
    key: &mut Option<usize>,
) -> Result<Response, ErrorResponse> {
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
    // tungstenite's own limits are a backstop well above the protocol's; the
    // reader applies the protocol's limit itself, so that an oversized message
    // is read whole and the connection can still close cleanly with 1009.
    let hard = shared
        .config
        .max_message_size
        .saturating_mul(16)
        .max(1 << 20);
    let write_buffer = if shared.config.firehose.is_some() {
        256 * 1024
    } else {
        128 * 1024
    };
    WebSocketConfig::default()
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard))
        .write_buffer_size(write_buffer)
}

async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    inst: &Arc<Instance>,
    silent: watch::Receiver<bool>,
    guard: &mut ConnGuard,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shared = &inst.shared;
    let conn = guard.conn;
    let mut key = None;
    #[allow(clippy::result_large_err)] // the shape of tungstenite's handshake callback
    let callback = |req: &Request, resp: Response| admit(shared, conn, req, resp, &mut key);
    let upgrade =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config(shared)));
    let ws = match tokio::time::timeout(shared.config.handshake_timeout, upgrade).await {
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
        rejected_in_a_row: 0,
    };
    let outcome = {
        let firehose = shared
            .config
            .firehose
            .map(|f| Firehose::new(f, shared.config.wire_style));
        let writer = write_loop(sink, outbox.clone(), Silence::new(silent.clone()), firehose);
        let mut read_silence = Silence::new(silent);
        let read = read_loop(&mut stream, &mut reader, guard, &mut read_silence);
        tokio::pin!(writer);
        tokio::pin!(read);
        let grace = shared.config.close_timeout;
        tokio::select! {
            w = &mut writer => {
                // The server closed (give the client time to answer), or the
                // socket failed (the reader says why, if it can).
                let r = tokio::time::timeout(grace, &mut read).await;
                match (&w, r) {
                    (WriteEnd::Failed(_), Ok(r)) => describe_read_end(&r),
                    _ => describe_write_end(&w),
                }
            }
            r = &mut read => match r {
                ReadEnd::Failed => match tokio::time::timeout(grace, &mut writer).await {
                    Ok(w) => describe_write_end(&w),
                    Err(_) => "closing timed out".to_owned(),
                },
                other => describe_read_end(&other),
            },
        }
    };
    guard.outcome = outcome;
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
}

fn describe_read_end(end: &ReadEnd) -> String {
    match end {
        ReadEnd::Closed(Some(f)) => format!("client closed with {}", u16::from(f.code)),
        ReadEnd::Closed(None) => "client closed".to_owned(),
        ReadEnd::Lost(why) => format!("lost: {why}"),
        ReadEnd::Silent => "client silent for two ping intervals; dropped".to_owned(),
        ReadEnd::Failed => "protocol failure".to_owned(),
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
    rejected_in_a_row: u32,
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
    let interval = r.inst.shared.config.ping_interval;
    let max = r.inst.shared.config.max_message_size;
    let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();
    let mut client_close = None;
    loop {
        let silent = silence.is_silent();
        tokio::select! {
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
            msg = stream.next(), if !silent => {
                let Some(msg) = msg else {
                    return match client_close.take() {
                        Some(frame) => ReadEnd::Closed(frame),
                        None => ReadEnd::Lost("closed without a close frame".to_owned()),
                    };
                };
                last_seen = Instant::now();
                match msg {
                    Ok(Message::Text(text)) => {
                        if text.len() > max {
                            r.too_big(text.len());
                        } else {
                            r.on_text(&text, guard).await;
                        }
                    }
                    Ok(Message::Binary(data)) => {
                        if data.len() > max {
                            r.too_big(data.len());
                        } else {
                            r.seen_first = true;
                            r.reject(guard, Rejection::new(
                                ErrorCode::BadRequest,
                                "binary frames are not part of the protocol: send JSON in text frames",
                                None,
                            ));
                        }
                    }
                    Ok(Message::Close(frame)) => client_close = Some(frame),
                    Ok(_) => {}
                    Err(e) => return r.on_error(e),
                }
            }
        }
    }
}

impl Reader<'_> {
    fn session<'g>(&self, guard: &'g ConnGuard) -> Option<&'g SessionHandle> {
        guard.session.as_ref()
    }

    fn too_big(&self, len: usize) {
        debug!(conn = self.conn, len, "message too big");
        self.outbox.close(CLOSE_TOO_BIG, "message too big");
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
    fn reject(&mut self, guard: &ConnGuard, rejection: Rejection) {
        debug!(conn = self.conn, code = %rejection.code, "request rejected");
        if let Some(s) = self.session(guard) {
            s.send(SessionCmd::Reply {
                conn: self.conn,
                rejection,
            });
        }
        self.rejected_in_a_row += 1;
        if let Some(limit) = self.inst.shared.config.abuse_error_limit
            && self.rejected_in_a_row >= limit
        {
            info!(
                conn = self.conn,
                rejected = self.rejected_in_a_row,
                "too many rejected requests; closing with 1008"
            );
            // Through the session, so that the close follows the replies.
            if let Some(s) = self.session(guard) {
                s.send(SessionCmd::CloseAfter {
                    conn: self.conn,
                    code: CLOSE_POLICY,
                    reason: "too many rejected requests",
                });
            }
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
                self.rejected_in_a_row = 0;
                if let Some(s) = self.session(guard) {
                    s.send(SessionCmd::Subscribe {
                        conn: self.conn,
                        spec,
                    });
                }
            }
            Ok(ClientRequest::Unsubscribe(id)) => {
                self.rejected_in_a_row = 0;
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
                self.rejected_in_a_row = 0;
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
