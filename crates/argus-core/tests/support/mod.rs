//! A virtual-time test bed for argus-core: the client, a small in-memory model
//! of an Argus server, and a transcript of everything that crossed between
//! them. No sockets, no sleeps: time moves only when a test moves it.
#![allow(dead_code, clippy::disallowed_methods)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use argus_core::wire::{
    ClientMessage, ErrorCode, ErrorMessage, PriceTick, Resumed, ServerMessage, SessionToken,
    Subscribed, Unsubscribed, Welcome,
};
use argus_core::{
    Client, ConnectionConfig, Event, GapCause, GiveUpReason, Input, OpenError, Transmit,
};

/// A session as the model server keeps it.
#[derive(Debug, Default)]
pub struct SessionModel {
    pub subs: BTreeMap<String, Vec<String>>,
    pub seq: u64,
    /// (seq, frame) of the most recent data messages.
    pub buffer: VecDeque<(u64, String)>,
}

/// A minimal Argus server: sessions, subscriptions, seqs, a bounded replay
/// buffer, resume; and faults a test can switch on.
#[derive(Debug, Default)]
pub struct ModelServer {
    pub sessions: BTreeMap<String, SessionModel>,
    /// The session of the open connection, and whether a message has arrived on it.
    pub conn: Option<(String, bool)>,
    next_session: u64,
    pub outbound: VecDeque<String>,
    /// Refuse the next N opens (HTTP 503).
    pub refuse: u32,
    /// Answer the next open with 401.
    pub unauthorized: bool,
    /// Stop answering anything (half-open link).
    pub half_open: bool,
    /// The next data message skips a seq.
    pub skip_next: bool,
    /// Never answer a subscribe, unsubscribe or resume (pings are still answered).
    pub mute: bool,
    /// The protocol version its `welcome` announces (1 unless set).
    pub protocol: Option<u32>,
    pub buffer_cap: usize,
    pub opens: u32,
    /// Every subscribe seen on the current connection, in order, with the unsubscribes between.
    pub conn_log: Vec<String>,
}

impl ModelServer {
    pub fn new() -> Self {
        Self {
            buffer_cap: 64,
            ..Self::default()
        }
    }

    /// Answers an open: `Ok` queues `welcome`.
    pub fn open(&mut self) -> Result<(), OpenError> {
        self.opens += 1;
        if self.unauthorized {
            return Err(OpenError::Unauthorized { status: 401 });
        }
        if self.refuse > 0 {
            self.refuse -= 1;
            return Err(OpenError::Http { status: 503 });
        }
        self.next_session += 1;
        let token = format!("s{}", self.next_session);
        self.sessions.insert(token.clone(), SessionModel::default());
        self.conn = Some((token.clone(), false));
        self.conn_log.clear();
        self.half_open = false;
        self.push(ServerMessage::Welcome(Welcome {
            connection_id: format!("c{}", self.opens).into(),
            session: SessionToken::new(token),
            protocol: self.protocol.unwrap_or(1),
            server_time: "2026-11-24T09:49:56.000Z".into(),
        }));
        Ok(())
    }

    fn push(&mut self, m: ServerMessage<'_>) {
        self.outbound.push_back(m.to_json());
    }

    fn session(&mut self) -> Option<&mut SessionModel> {
        let token = self.conn.as_ref()?.0.clone();
        self.sessions.get_mut(&token)
    }

    /// The connection ended (either side); the session lives on.
    pub fn close(&mut self) {
        self.conn = None;
        self.outbound.clear();
    }

    /// Handles one client frame.
    pub fn receive(&mut self, text: &str) {
        let Some((token, first)) = self.conn.clone() else {
            return;
        };
        if let Some(c) = &mut self.conn {
            c.1 = true;
        }
        let Ok(msg) = ClientMessage::decode(text) else {
            return self.error(ErrorCode::BadRequest, None);
        };
        if self.mute {
            self.conn_log.push("unanswered".into());
            return;
        }
        match msg {
            ClientMessage::Subscribe(s) => {
                self.conn_log.push(format!("sub {}", s.id));
                let session = self.sessions.get_mut(&token).expect("live session");
                if session.subs.contains_key(&*s.id) {
                    return self.error(ErrorCode::DuplicateSubscription, Some(&s.id));
                }
                if s.symbols.iter().any(|sym| sym.starts_with("BAD")) {
                    self.conn_log.push(format!("rejected {}", s.id));
                    return self.error(ErrorCode::UnknownSymbol, Some(&s.id));
                }
                let symbols: Vec<String> = s.symbols.iter().map(|x| x.to_string()).collect();
                session.subs.insert(s.id.to_string(), symbols.clone());
                self.push(ServerMessage::Subscribed(Subscribed {
                    id: s.id.clone(),
                    symbols: symbols.into_iter().map(Into::into).collect(),
                    data_types: vec![argus_core::DataType::Price],
                }));
            }
            ClientMessage::Unsubscribe(u) => {
                self.conn_log.push(format!("unsub {}", u.id));
                let session = self.sessions.get_mut(&token).expect("live session");
                if session.subs.remove(&*u.id).is_none() {
                    return self.error(ErrorCode::UnknownSubscription, Some(&u.id));
                }
                self.push(ServerMessage::Unsubscribed(Unsubscribed { id: u.id }));
            }
            ClientMessage::Resume(r) => {
                let old = r.session.expose().to_owned();
                let ok = !first
                    && self.sessions.get(&old).is_some_and(|s| {
                        s.seq == r.last_seq
                            || s.buffer
                                .front()
                                .is_some_and(|(first, _)| *first <= r.last_seq + 1)
                    });
                if !ok {
                    return self.error(ErrorCode::ResumeFailed, None);
                }
                self.sessions.remove(&token);
                self.conn = Some((old.clone(), true));
                let s = &self.sessions[&old];
                let replay: Vec<String> = s
                    .buffer
                    .iter()
                    .filter(|(seq, _)| *seq > r.last_seq)
                    .map(|(_, f)| f.clone())
                    .collect();
                let resumed = ServerMessage::Resumed(Resumed {
                    session: SessionToken::new(old.clone()),
                    subscriptions: s.subs.keys().map(|k| k.clone().into()).collect(),
                    replayed: replay.len() as u64,
                });
                self.push(resumed);
                self.outbound.extend(replay);
            }
            _ => self.error(ErrorCode::BadRequest, None),
        }
    }

    fn error(&mut self, code: ErrorCode, id: Option<&str>) {
        self.push(ServerMessage::Error(ErrorMessage {
            code,
            message: code.as_str().into(),
            id: id.map(|i| i.to_owned().into()),
        }));
    }

    /// Produces one price for every subscription of the live session, in id
    /// order; buffered, and sent unless the link is half-open.
    pub fn tick(&mut self, price: f64) {
        let cap = self.buffer_cap;
        let half_open = self.half_open;
        let skip = std::mem::take(&mut self.skip_next);
        let Some(session) = self.session() else {
            return;
        };
        let mut frames = Vec::new();
        let subs: Vec<(String, String)> = session
            .subs
            .iter()
            .map(|(id, syms)| (id.clone(), syms[0].clone()))
            .collect();
        for (i, (sub, symbol)) in subs.into_iter().enumerate() {
            session.seq += if skip && i == 0 { 2 } else { 1 };
            let frame = ServerMessage::Price(PriceTick {
                sub: sub.into(),
                seq: session.seq,
                symbol: symbol.into(),
                price,
                timestamp: "2026-11-24T09:49:56.123Z".into(),
            })
            .to_json();
            session.buffer.push_back((session.seq, frame.clone()));
            while session.buffer.len() > cap {
                session.buffer.pop_front();
            }
            frames.push(frame);
        }
        if !half_open {
            self.outbound.extend(frames);
        }
    }
}

/// The client, the model server, virtual time, and the transcript.
pub struct Bed {
    pub client: Client,
    pub server: ModelServer,
    pub start: Instant,
    pub now: Instant,
    pub transcript: Vec<String>,
    pub events: Vec<Event>,
}

impl Bed {
    pub fn new(config: ConnectionConfig, seed: u64) -> Self {
        let now = Instant::now();
        Self {
            client: Client::new(config, seed).expect("valid config"),
            server: ModelServer::new(),
            start: now,
            now,
            transcript: Vec::new(),
            events: Vec::new(),
        }
    }

    pub fn config() -> ConnectionConfig {
        ConnectionConfig::builder("ws://model.test/ws")
            .heartbeat_interval(Duration::from_secs(30))
            .timeout(Duration::from_secs(10))
            .reconnect_delay(Duration::from_secs(1))
            .max_backoff(Duration::from_secs(8))
            .build()
            .expect("valid config")
    }

    /// Drains the client's outputs and lets the model server answer, one
    /// input per turn, until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            self.drain();
            let Some(frame) = self.server.outbound.pop_front() else {
                return;
            };
            self.transcript
                .push(format!("recv {}", describe_frame(&frame)));
            self.client.handle_input(self.now, Input::Text(&frame));
        }
        panic!("the exchange did not settle");
    }

    /// Drains every output once, carrying transmits to the model server.
    fn drain(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit() {
                moved = true;
                self.transcript.push(describe_transmit(&t));
                match t {
                    Transmit::Open(_) => match self.server.open() {
                        Ok(()) => self.client.handle_input(self.now, Input::Opened),
                        Err(e) => self.client.handle_input(self.now, Input::OpenFailed(e)),
                    },
                    Transmit::Text(json) if !self.server.half_open => self.server.receive(&json),
                    Transmit::Ping(p) if !self.server.half_open && self.server.conn.is_some() => {
                        self.client.handle_input(self.now, Input::Pong(&p));
                    }
                    Transmit::Close { .. } => self.server.close(),
                    _ => {}
                }
            }
            while let Some(e) = self.client.poll_event() {
                moved = true;
                self.transcript.push(describe_event(&e));
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    /// Jumps to the next deadline and handles it (`step()` in quinn's tests).
    pub fn step(&mut self) -> bool {
        self.settle();
        let Some(deadline) = self.client.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(deadline);
        self.transcript.push(format!(
            "t+{}ms",
            self.now.duration_since(self.start).as_millis()
        ));
        self.handle_timeout();
        true
    }

    /// Advances virtual time by `d`, handling every deadline on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.settle();
        while let Some(deadline) = self.client.poll_timeout().filter(|&t| t <= end) {
            self.now = self.now.max(deadline);
            self.handle_timeout();
        }
        self.now = end;
    }

    /// Calls `handle_timeout(now)` and checks it left no deadline at or
    /// before `now` (a deadline that does not move is a busy loop).
    fn handle_timeout(&mut self) {
        self.client.handle_timeout(self.now);
        if let Some(next) = self.client.poll_timeout() {
            assert!(
                next > self.now,
                "handle_timeout left a deadline at or before now"
            );
        }
        self.settle();
    }

    /// The server closes the connection with `code`.
    pub fn server_close(&mut self, code: Option<u16>) {
        self.server.close();
        self.transcript.push(format!("server closes {code:?}"));
        self.client
            .handle_input(self.now, Input::Closed { code, reason: "" });
        self.settle();
    }

    pub fn feed(&mut self, frame: &str) {
        self.client.handle_input(self.now, Input::Text(frame));
        self.settle();
    }

    /// The transcript since the last call, as `&str`s.
    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.transcript)
    }
}

pub fn describe_transmit(t: &Transmit) -> String {
    match t {
        Transmit::Open(_) => "open".into(),
        Transmit::Text(json) => {
            let v: serde_json::Value = serde_json::from_str(json).expect("client sends JSON");
            match v["op"].as_str() {
                Some("resume") => format!("send resume last_seq={}", v["last_seq"]),
                Some(op) => format!("send {op} {}", v["id"].as_str().unwrap_or("?")),
                None => format!("send {json}"),
            }
        }
        Transmit::Ping(_) => "ping".into(),
        Transmit::Close { code, .. } => format!("close {code}"),
        _ => "other transmit".into(),
    }
}

pub fn describe_frame(frame: &str) -> String {
    match ServerMessage::decode(frame) {
        Ok(ServerMessage::Price(p)) => format!("price {} #{}", p.sub, p.seq),
        Ok(ServerMessage::Error(e)) => format!("error {}", e.code),
        Ok(m) => m.kind().to_owned(),
        Err(_) => "garbage".into(),
    }
}

pub fn describe_event(e: &Event) -> String {
    match e {
        Event::StateChanged { to, .. } => format!("state {to}"),
        Event::Data(d) => format!("data {} #{}", d.subscription(), d.seq()),
        Event::Subscribed(id) => format!("subscribed {id}"),
        Event::SubscribeFailed { id, error } => format!("subscribe_failed {id} {}", error.code),
        Event::SessionStarted { .. } => "session started".into(),
        Event::Resumed { replayed } => format!("resumed replayed={replayed}"),
        Event::Gap(g) => match (g.to, g.cause) {
            (Some(to), GapCause::SeqJump) => format!("gap {}..={to}", g.from),
            (_, cause) => format!("gap {}.. {cause:?}", g.from),
        },
        Event::Disconnected(r) => format!("disconnected {r}"),
        Event::AttemptFailed { attempt, error } => format!("attempt {attempt} failed: {error}"),
        Event::Reconnecting { attempt, delay } => {
            format!("reconnecting attempt={attempt} in {}ms", delay.as_millis())
        }
        Event::GaveUp(GiveUpReason::Fatal(e)) => format!("gave up: fatal {e}"),
        Event::GaveUp(r) => format!("gave up: {r}"),
        Event::ProtocolError(e) => format!("protocol error: {e}"),
        Event::Ignored { kind } => format!("ignored {kind}"),
        Event::RequestTimedOut { request, id, .. } => format!("{request} {id} timed out"),
        _ => "other event".into(),
    }
}
