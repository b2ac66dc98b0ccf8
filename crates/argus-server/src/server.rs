//! Starting, observing, faulting, restarting and stopping a server.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use argus_core::Symbol;
use argus_core::io::CLOSE_GOING_AWAY;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{debug, info, warn};

use crate::config::{ServerConfig, TlsConfig};
use crate::ids::now_rfc3339;
use crate::market::{Book, Market, Tick, Universe, build_book};
use crate::outbox::{Out, Outbox};
use crate::replay::DailyBar;
use crate::session::SessionHandle;

/// Why a server could not start (or restart).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting is unusable.
    #[error("{field}: {reason}")]
    Config {
        /// The setting's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The replay file cannot be read.
    #[error("replay file {}: {reason}", path.display())]
    Replay {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A tokio runtime for [`Server::start_in_background`] could not be made.
    #[error("cannot start a runtime for the server: {0}")]
    Runtime(#[source] std::io::Error),
    /// The server was shut down; it cannot restart.
    #[error("the server was shut down")]
    ShutDown,
}

/// Counters a test can read or wait on. They are cumulative over restarts,
/// except `live_connections` and `sessions`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// TCP connections the listener accepted: every client attempt that
    /// reached the server, whatever came of it.
    pub connection_attempts: u64,
    /// Attempts upgraded to a WebSocket (each got a `welcome`).
    pub connections_accepted: u64,
    /// Attempts answered with HTTP 503 while refusing connections.
    pub connections_refused: u64,
    /// Attempts answered with HTTP 401 (missing or unknown api key).
    pub connections_unauthorized: u64,
    /// WebSocket connections open now.
    pub live_connections: usize,
    /// Sessions alive now, attached or waiting for a resume.
    pub sessions: usize,
    /// Connections closed with 4000 because their outbound queue overflowed.
    pub slow_consumer_closes: u64,
    /// Completed restarts.
    pub restarts: u64,
    /// Connections refused with HTTP 503 for a connection or session cap
    /// (global, per IP, per key), or for want of file descriptors.
    pub connections_over_cap: u64,
    /// Detached sessions ended early to make room (session caps, replay
    /// memory).
    pub sessions_evicted: u64,
}

/// How long a connection may sit in its handshake before a new connection
/// at the global cap may take its place.
const HANDSHAKE_GRACE: Duration = Duration::from_millis(500);

/// State shared by every run of the server (it survives restarts).
pub(crate) struct Shared {
    pub config: ServerConfig,
    pub universe: Universe,
    replay_bars: Option<Vec<DailyBar>>,
    pub tls: Option<TlsAcceptor>,
    pub stats: watch::Sender<ServerStats>,
    pub next_conn: AtomicU64,
    pub next_session: AtomicU64,
    /// Each increment makes every live session skip one seq.
    pub skip_epoch: AtomicU64,
    refuse_next: AtomicU64,
    refuse_until: Mutex<Option<Instant>>,
    /// Fixed books of the firehose, by universe index.
    pub firehose_books: Vec<Arc<Book>>,
    /// Bytes of data messages held by every session's replay buffer.
    pub replay_bytes: AtomicUsize,
    /// `max_connections`, lowered to what the file-descriptor limit allows.
    pub max_connections: usize,
    /// Refused sockets waiting for the client's request before closing.
    lingering_refusals: AtomicUsize,
}

impl Shared {
    fn new_market(&self) -> Market {
        let symbols = self.config.symbols.as_deref();
        match &self.replay_bars {
            Some(bars) => match Market::replay(bars, symbols, self.config.seed) {
                Ok((market, _)) => market,
                // Checked when the server started; the inputs have not changed.
                Err(_) => Market::simulated(symbols, self.config.seed).0,
            },
            None => Market::simulated(symbols, self.config.seed).0,
        }
    }

    /// Whether to answer this upgrade with 503 (and counts it if so).
    pub(crate) fn take_refusal(&self) -> bool {
        let by_count = self
            .refuse_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let refuse =
            by_count || lock(&self.refuse_until).is_some_and(|until| Instant::now() < until);
        if refuse {
            self.stats.send_modify(|s| s.connections_refused += 1);
        }
        refuse
    }

    /// The index of `key` among the configured keys.
    pub(crate) fn key_index(&self, key: &str) -> Option<usize> {
        // Compare every key in full so the time taken does not depend on
        // where a guess first differs.
        let mut found = None;
        for (i, k) in self.config.api_keys.iter().enumerate() {
            if constant_time_eq(k.expose().as_bytes(), key.as_bytes()) && found.is_none() {
                found = Some(i);
            }
        }
        found
    }
}

/// Compares SHA-256 digests in full, so that neither the length nor the
/// position of the first difference shows in the time taken.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use ring::digest::{SHA256, digest};
    let (a, b) = (digest(&SHA256, a), digest(&SHA256, b));
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection known to the running server.
pub(crate) struct ConnEntry {
    pub task: Option<JoinHandle<()>>,
    /// Set once the connection is a WebSocket.
    pub outbox: Option<Arc<Outbox>>,
    pub silent: watch::Sender<bool>,
    /// When the TCP connection was accepted.
    pub accepted_at: Instant,
}

#[derive(Default)]
pub(crate) struct Connections {
    pub stopping: bool,
    pub map: HashMap<u64, ConnEntry>,
}

/// A session as the server sees it.
pub(crate) struct SessionEntry {
    pub handle: SessionHandle,
    /// Since when no connection holds it.
    pub detached_since: Option<Instant>,
    /// Asked to end to make room; no longer counted.
    pub evicted: bool,
}

/// Open connections by source and by key, for the connection caps.
#[derive(Default)]
pub(crate) struct ConnCounts {
    pub total: usize,
    pub per_ip: HashMap<IpAddr, usize>,
    pub per_key: HashMap<usize, usize>,
}

/// One run of the server: a listener, a market, connections and sessions.
pub(crate) struct Instance {
    pub shared: Arc<Shared>,
    pub sessions: Mutex<HashMap<Arc<str>, SessionEntry>>,
    /// Sessions detached and not evicted (of `sessions`).
    detached: AtomicUsize,
    pub connections: Mutex<Connections>,
    pub counts: Mutex<ConnCounts>,
    pub market: Option<broadcast::Sender<Arc<Tick>>>,
    /// Recent ticks, from which a resumed session catches up.
    pub history: Arc<Mutex<History>>,
    pub shutdown: watch::Sender<bool>,
}

/// Recent market ticks, oldest first, bounded in bytes and in age.
#[derive(Default)]
pub(crate) struct History {
    pub ticks: std::collections::VecDeque<Arc<Tick>>,
    bytes: usize,
    /// The number of the latest tick (0: none yet).
    pub latest: u64,
}

impl History {
    fn push(&mut self, tick: Arc<Tick>, max_bytes: usize, max_age: Duration) {
        self.latest = tick.no;
        self.bytes += tick.size();
        self.ticks.push_back(tick);
        let now = Instant::now();
        while let Some(old) = self.ticks.front() {
            if self.bytes > max_bytes || now.duration_since(old.at) > max_age {
                self.bytes -= old.size();
                self.ticks.pop_front();
            } else {
                break;
            }
        }
    }
}

impl Instance {
    pub(crate) fn add_session(&self, handle: SessionHandle) {
        let entry = SessionEntry {
            handle: handle.clone(),
            detached_since: None,
            evicted: false,
        };
        let added = lock(&self.sessions)
            .insert(handle.token.clone(), entry)
            .is_none();
        if added {
            self.shared.stats.send_modify(|s| s.sessions += 1);
        }
    }

    pub(crate) fn remove_session(&self, handle: &SessionHandle) {
        let mut map = lock(&self.sessions);
        let removed = map
            .get(&handle.token)
            .is_some_and(|e| e.handle.label == handle.label)
            .then(|| map.remove(&handle.token))
            .flatten();
        drop(map);
        if removed.as_ref().is_some_and(|e| e.detached_since.is_some()) {
            self.detached.fetch_sub(1, Ordering::Relaxed);
        }
        let removed = removed.is_some();
        if removed {
            self.shared.stats.send_modify(|s| s.sessions -= 1);
        }
    }

    pub(crate) fn find_session(&self, token: &str) -> Option<SessionHandle> {
        lock(&self.sessions)
            .get(token)
            .filter(|e| !e.evicted)
            .map(|e| e.handle.clone())
    }

    /// Records whether a session is attached, for eviction order.
    pub(crate) fn set_detached(&self, handle: &SessionHandle, since: Option<Instant>) {
        if let Some(e) = lock(&self.sessions).get_mut(&handle.token)
            && e.handle.label == handle.label
            && !e.evicted
        {
            match (e.detached_since.is_some(), since.is_some()) {
                (false, true) => self.detached.fetch_add(1, Ordering::Relaxed),
                (true, false) => self.detached.fetch_sub(1, Ordering::Relaxed),
                _ => 0,
            };
            e.detached_since = since;
        }
    }

    /// Ends the oldest detached session (of `key` when given); false when
    /// there is none.
    fn evict_oldest_detached(
        &self,
        map: &mut HashMap<Arc<str>, SessionEntry>,
        key: Option<Option<usize>>,
        except: u64,
    ) -> bool {
        let oldest = map
            .values_mut()
            .filter(|e| !e.evicted && e.handle.label != except)
            .filter(|e| key.is_none_or(|k| e.handle.key == k))
            .filter(|e| e.detached_since.is_some())
            .min_by_key(|e| e.detached_since);
        let Some(e) = oldest else { return false };
        e.evicted = true;
        e.detached_since = None;
        self.detached.fetch_sub(1, Ordering::Relaxed);
        e.handle.send(crate::session::SessionCmd::Discard);
        info!(session = e.handle.label, "evicting a detached session");
        self.shared.stats.send_modify(|s| s.sessions_evicted += 1);
        true
    }

    /// Makes room for one more session of `key` under the session caps,
    /// evicting the oldest detached sessions; false when every session
    /// counted is attached.
    pub(crate) fn make_room_for_session(&self, key: Option<usize>) -> bool {
        let config = &self.shared.config;
        let mut map = lock(&self.sessions);
        let live = |map: &HashMap<Arc<str>, SessionEntry>, key: Option<Option<usize>>| {
            map.values()
                .filter(|e| !e.evicted && key.is_none_or(|k| e.handle.key == k))
                .count()
        };
        if key.is_some() {
            while live(&map, Some(key)) >= config.max_sessions_per_key {
                if !self.evict_oldest_detached(&mut map, Some(key), 0) {
                    return false;
                }
            }
        }
        while live(&map, None) >= config.max_sessions {
            if !self.evict_oldest_detached(&mut map, None, 0) {
                return false;
            }
        }
        true
    }

    /// Over the global replay memory: ends the oldest detached session other
    /// than `except` (one catching up is still marked detached); false when
    /// there is none.
    pub(crate) fn evict_for_memory(&self, except: u64) -> bool {
        if self.detached.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut map = lock(&self.sessions);
        self.evict_oldest_detached(&mut map, None, except)
    }

    /// Counts an accepted TCP connection from `ip`; false (and nothing
    /// counted) when it is over the global or the per-IP cap.
    /// At the global cap, the oldest connection still in its handshake
    /// after [`HANDSHAKE_GRACE`] makes room (an idle socket that never
    /// upgrades must not keep out a client that does).
    fn claim_connection(&self, ip: IpAddr) -> bool {
        let mut c = lock(&self.counts);
        let from_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.shared.config.max_connections_per_ip {
            return false;
        }
        if c.total >= self.shared.max_connections && self.evict_oldest_handshake().is_none() {
            return false;
        }
        c.total += 1;
        c.per_ip.insert(ip, from_ip + 1);
        true
    }

    /// Drops the oldest connection that has not upgraded within
    /// [`HANDSHAKE_GRACE`], returning its aborted task (its descriptor is
    /// free once the task has been dropped); `None` when there is none.
    fn evict_oldest_handshake(&self) -> Option<JoinHandle<()>> {
        let mut c = lock(&self.connections);
        let oldest = c
            .map
            .iter()
            .filter(|(_, e)| {
                e.task.is_some() && e.outbox.is_none() && e.accepted_at.elapsed() >= HANDSHAKE_GRACE
            })
            .min_by_key(|(_, e)| e.accepted_at)
            .map(|(conn, _)| *conn);
        let task = oldest.and_then(|conn| c.map.remove(&conn))?.task?;
        // Its count is released when the task drops, a moment later.
        task.abort();
        debug!("dropping the oldest unfinished handshake to make room");
        Some(task)
    }

    /// Counts a connection with api key `key`; false when over its cap.
    pub(crate) fn claim_key_connection(&self, key: usize) -> bool {
        let mut c = lock(&self.counts);
        let n = c.per_key.entry(key).or_insert(0);
        if *n >= self.shared.config.max_connections_per_key {
            return false;
        }
        *n += 1;
        true
    }

    /// Forgets what [`Instance::claim_key_connection`] counted.
    pub(crate) fn release_connection_key(&self, key: usize) {
        let mut c = lock(&self.counts);
        if let Some(n) = c.per_key.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                c.per_key.remove(&key);
            }
        }
    }

    /// Forgets a connection that has ended.
    pub(crate) fn release_connection(&self, ip: IpAddr, key: Option<usize>) {
        if let Some(k) = key {
            self.release_connection_key(k);
        }
        let mut c = lock(&self.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&ip);
            }
        }
    }

    pub(crate) fn count_over_cap(&self) {
        self.shared
            .stats
            .send_modify(|s| s.connections_over_cap += 1);
    }

    /// Records that `conn` is now a WebSocket; false when the server is stopping.
    pub(crate) fn register_outbox(&self, conn: u64, outbox: &Arc<Outbox>) -> bool {
        let mut c = lock(&self.connections);
        if c.stopping {
            return false;
        }
        if let Some(e) = c.map.get_mut(&conn) {
            e.outbox = Some(outbox.clone());
        }
        true
    }

    pub(crate) fn forget_connection(&self, conn: u64) {
        lock(&self.connections).map.remove(&conn);
    }

    fn start(shared: Arc<Shared>, listener: TcpListener) -> Running {
        let (shutdown, _) = watch::channel(false);
        let history = Arc::new(Mutex::new(History::default()));
        let (market_tx, market_task) = if shared.config.firehose.is_some() {
            (None, None)
        } else {
            let (tx, _) = broadcast::channel(4096);
            let task = tokio::spawn(run_market(
                shared.new_market(),
                tx.clone(),
                history.clone(),
                shared.clone(),
                shutdown.subscribe(),
            ));
            (Some(tx), Some(task))
        };
        let inst = Arc::new(Instance {
            shared,
            sessions: Mutex::new(HashMap::new()),
            detached: AtomicUsize::new(0),
            connections: Mutex::new(Connections::default()),
            counts: Mutex::new(ConnCounts::default()),
            market: market_tx,
            history,
            shutdown,
        });
        let accept = tokio::spawn(accept_loop(listener, inst.clone()));
        Running {
            inst,
            accept,
            market: market_task,
        }
    }
}

async fn run_market(
    mut market: Market,
    tx: broadcast::Sender<Arc<Tick>>,
    history: Arc<Mutex<History>>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut timer = tokio::time::interval(config.tick_interval);
    let mut no = 0;
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let updates = market.step();
        no += 1;
        let tick = Arc::new(Tick {
            no,
            at: Instant::now(),
            timestamp: now_rfc3339().into(),
            updates,
        });
        // Kept before it is sent, so that a session that sees tick n live
        // finds every tick before n in the history.
        lock(&history).push(
            tick.clone(),
            config.market_history_bytes,
            config.session_ttl,
        );
        // No receiver (no session yet) is fine: the market moves regardless.
        let _ = tx.send(tick);
    }
}

async fn accept_loop(listener: TcpListener, inst: Arc<Instance>) {
    let mut shutdown = inst.shutdown.subscribe();
    // A descriptor held back for the moment the process runs out: released,
    // it lets the loop accept one connection to answer 503 and close it,
    // instead of leaving connections waiting in the backlog.
    let mut spare = spare_fd();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_out_of_fds(&e) => {
                // An unfinished handshake gives way, as at the connection cap;
                // its descriptor is free once its task is dropped.
                if let Some(evicted) = inst.evict_oldest_handshake() {
                    let _ = tokio::time::timeout(Duration::from_millis(100), evicted).await;
                    continue;
                }
                warn!(error = %e, "out of file descriptors; refusing with 503");
                drop(spare.take());
                // Only a connection waiting now: never wait here without a spare.
                if let Some(Ok((tcp, peer))) =
                    futures_util::FutureExt::now_or_never(listener.accept())
                {
                    debug!(%peer, "refused: out of file descriptors");
                    inst.shared
                        .stats
                        .send_modify(|s| s.connection_attempts += 1);
                    inst.count_over_cap();
                    refuse_raw(tcp, &inst.shared);
                }
                spare = spare_fd();
                if spare.is_none() {
                    // Still none free: let connections end before trying again.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = &inst.shared;
        shared.stats.send_modify(|s| s.connection_attempts += 1);
        if !inst.claim_connection(peer.ip()) {
            debug!(%peer, "over the connection cap; refusing with 503");
            inst.count_over_cap();
            refuse_raw(tcp, shared);
            continue;
        }
        let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
        let (silent_tx, silent_rx) = watch::channel(false);
        {
            let mut c = lock(&inst.connections);
            if c.stopping {
                return;
            }
            c.map.insert(
                conn,
                ConnEntry {
                    task: None,
                    outbox: None,
                    silent: silent_tx,
                    accepted_at: Instant::now(),
                },
            );
        }
        let task = tokio::spawn(crate::connection::run(
            tcp,
            peer,
            inst.clone(),
            conn,
            silent_rx,
        ));
        if let Some(e) = lock(&inst.connections).map.get_mut(&conn) {
            e.task = Some(task);
        }
    }
}

fn spare_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

fn is_out_of_fds(e: &std::io::Error) -> bool {
    // EMFILE (process) and ENFILE (system) on Linux and the BSDs.
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// Answers 503 with `Retry-After` before reading the request, and closes.
/// The socket is fresh, so the write does not wait. The close waits for the
/// client's request (up to 250 ms) so that it does not reset the answer,
/// but at most `fd_reserve / 2` refused sockets wait at once: the others
/// close at once, so that refusals never use up the reserve.
fn refuse_raw(tcp: tokio::net::TcpStream, shared: &Arc<Shared>) {
    let response = crate::connection::http_response(
        503,
        "Service Unavailable",
        &format!("Retry-After: {}\r\n", crate::connection::RETRY_AFTER_SECS),
        "too many connections; retry later",
    );
    let _ = tcp.try_write(&response);
    let lingering = &shared.lingering_refusals;
    if lingering.fetch_add(1, Ordering::AcqRel) >= shared.config.fd_reserve / 2 {
        lingering.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tcp;
        let _ = tcp.shutdown().await;
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_millis(250), async {
            for _ in 0..8 {
                if matches!(tcp.read(&mut sink).await, Ok(0) | Err(_)) {
                    break;
                }
            }
        })
        .await;
        drop(tcp);
        shared.lingering_refusals.fetch_sub(1, Ordering::AcqRel);
    });
}

/// The soft limit on open files, where the system says (Linux).
fn fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct Running {
    inst: Arc<Instance>,
    accept: JoinHandle<()>,
    market: Option<JoinHandle<()>>,
}

impl Running {
    /// Closes every connection with `code` (waiting up to the close timeout
    /// for them to go), then stops the listener, the market and the sessions.
    async fn stop(self, code: u16, reason: &str) {
        let inst = &self.inst;
        inst.shutdown.send_replace(true);
        self.accept.abort();
        let _ = self.accept.await;
        let entries = {
            let mut c = lock(&inst.connections);
            c.stopping = true;
            std::mem::take(&mut c.map)
        };
        let mut tasks = Vec::new();
        for (_, entry) in entries {
            match &entry.outbox {
                Some(outbox) => outbox.close(code, reason),
                None => {
                    if let Some(t) = &entry.task {
                        t.abort();
                    }
                }
            }
            tasks.extend(entry.task);
        }
        let grace = inst.shared.config.close_timeout;
        let all = futures_util::future::join_all(tasks.iter_mut());
        if tokio::time::timeout(grace, all).await.is_err() {
            debug!("clients slow to close; dropping them");
            for t in &tasks {
                t.abort();
            }
            for t in tasks {
                // Those that finished were already awaited by `join_all`.
                if !t.is_finished() {
                    let _ = t.await;
                }
            }
        }
        if let Some(market) = self.market {
            market.abort();
            let _ = market.await;
        }
        let ended = std::mem::take(&mut *lock(&inst.sessions)).len();
        inst.shared.stats.send_modify(|s| s.sessions -= ended);
    }

    /// Drops everything at once, without close frames.
    fn abort(self) {
        self.inst.shutdown.send_replace(true);
        self.accept.abort();
        if let Some(m) = &self.market {
            m.abort();
        }
        let mut c = lock(&self.inst.connections);
        c.stopping = true;
        for entry in c.map.values() {
            if let Some(t) = &entry.task {
                t.abort();
            }
        }
    }
}

/// The server. [`Server::start`] binds, starts serving in the background and
/// returns the [`ServerHandle`] that controls it.
#[derive(Debug)]
pub struct Server;

/// A server on a runtime of its own, from [`Server::start_in_background`]:
/// a [`ServerHandle`] (through `Deref`) that also owns the runtime.
/// Dropping it stops the server.
#[derive(Debug)]
pub struct BackgroundServer {
    handle: ServerHandle,
    runtime: tokio::runtime::Runtime,
}

impl BackgroundServer {
    /// Runs an async method of the handle ([`ServerHandle::restart`], say)
    /// to completion on the server's runtime, from outside any tokio
    /// runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

impl std::ops::Deref for BackgroundServer {
    type Target = ServerHandle;

    fn deref(&self) -> &ServerHandle {
        &self.handle
    }
}

impl Server {
    /// Starts the server on a tokio runtime of its own (one worker thread),
    /// for programs and tests whose own code runs on another runtime or on
    /// none. The server lives as long as the returned value.
    pub fn start_in_background(config: ServerConfig) -> Result<BackgroundServer, ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("argus-server")
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let handle = runtime.block_on(Self::start(config))?;
        Ok(BackgroundServer { handle, runtime })
    }

    /// Validates `config`, loads the replay file and the TLS certificate if
    /// any, binds the listen address and starts serving. Needs a running
    /// tokio runtime (with the time and net drivers).
    pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServerError> {
        config.validate()?;
        let replay_bars = match &config.replay {
            Some(path) => {
                let path = path.clone();
                let load =
                    tokio::task::spawn_blocking(move || crate::replay::load_daily_bars(&path));
                Some(load.await.map_err(|e| ServerError::Replay {
                    path: config.replay.clone().unwrap_or_default(),
                    reason: e.to_string(),
                })??)
            }
            None => None,
        };
        let symbols = config.symbols.as_deref();
        let universe = match &replay_bars {
            Some(bars) => {
                Market::replay(bars, symbols, config.seed)
                    .map_err(|reason| ServerError::Replay {
                        path: config.replay.clone().unwrap_or_default(),
                        reason,
                    })?
                    .1
            }
            None => Market::simulated(symbols, config.seed).1,
        };
        let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
        let firehose_books = match config.firehose {
            Some(_) => {
                let mut rng = fastrand::Rng::with_seed(config.seed);
                (0..universe.len())
                    .map(|i| Arc::new(build_book(universe.start_price(i as u16), &mut rng)))
                    .collect()
            }
            None => Vec::new(),
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let url = url_for(local_addr, &config);
        let max_connections = match fd_limit() {
            Some(fds) if fds.saturating_sub(config.fd_reserve) < config.max_connections => {
                let allowed = fds.saturating_sub(config.fd_reserve).max(1);
                warn!(
                    fds,
                    max_connections = allowed,
                    "the file-descriptor limit lowers the connection cap"
                );
                allowed
            }
            _ => config.max_connections,
        };
        let shared = Arc::new(Shared {
            replay_bytes: AtomicUsize::new(0),
            max_connections,
            lingering_refusals: AtomicUsize::new(0),
            config,
            universe,
            replay_bars,
            tls,
            stats: watch::Sender::new(ServerStats::default()),
            next_conn: AtomicU64::new(0),
            next_session: AtomicU64::new(0),
            skip_epoch: AtomicU64::new(0),
            refuse_next: AtomicU64::new(0),
            refuse_until: Mutex::new(None),
            firehose_books,
        });
        info!(
            %url,
            symbols = shared.universe.len(),
            mode = mode_name(&shared.config),
            auth = shared.config.requires_key(),
            "listening"
        );
        let running = Instance::start(shared.clone(), listener);
        Ok(ServerHandle {
            shared,
            local_addr,
            url,
            running: Mutex::new(Some(running)),
            lifecycle: tokio::sync::Mutex::new(()),
        })
    }
}

fn mode_name(config: &ServerConfig) -> &'static str {
    if config.firehose.is_some() {
        "firehose"
    } else if config.replay.is_some() {
        "replay"
    } else {
        "simulated"
    }
}

fn url_for(addr: SocketAddr, config: &ServerConfig) -> String {
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!(
        "{scheme}://{}{}",
        SocketAddr::new(ip, addr.port()),
        config.path
    )
}

fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, ServerError> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_slice_iter(&tls.cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(
            "certificate chain: no certificate in the PEM".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&tls.private_key_pem)
        .map_err(|e| ServerError::Tls(format!("private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Controls a running server: where it is, what it counts, faults to inject,
/// restart and shutdown. Dropping the handle stops the server at once
/// (without close frames); call [`ServerHandle::shutdown`] for a graceful stop.
pub struct ServerHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    url: String,
    running: Mutex<Option<Running>>,
    lifecycle: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("url", &self.url)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    // Getters.

    /// The address the server listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The endpoint's URL, such as `ws://127.0.0.1:41234/ws` (`wss://` with TLS).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// The symbols served, in the server's order.
    pub fn symbols(&self) -> Vec<Symbol> {
        self.shared.universe.symbols().to_vec()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats.borrow().clone()
    }

    /// WebSocket connections open now.
    pub fn live_connections(&self) -> usize {
        self.shared.stats.borrow().live_connections
    }

    /// Sessions alive now.
    pub fn session_count(&self) -> usize {
        self.shared.stats.borrow().sessions
    }

    /// Waits until the counters satisfy `predicate` and returns them. Wrap it
    /// in a timeout: it waits as long as it takes.
    pub async fn wait_for_stats(
        &self,
        mut predicate: impl FnMut(&ServerStats) -> bool,
    ) -> ServerStats {
        let mut rx = self.shared.stats.subscribe();
        match rx.wait_for(|s| predicate(s)).await {
            Ok(s) => s.clone(),
            // The sender lives as long as `self`.
            Err(_) => self.stats(),
        }
    }

    // Fault injection.

    fn instance(&self) -> Option<Arc<Instance>> {
        lock(&self.running).as_ref().map(|r| r.inst.clone())
    }

    /// Drops every connection abruptly: the TCP connection closes with no
    /// close frame, as when a network path dies. Sessions stay, so clients
    /// can resume. Returns how many connections were dropped.
    pub fn drop_connections(&self) -> usize {
        let Some(inst) = self.instance() else {
            return 0;
        };
        let c = lock(&inst.connections);
        let mut n = 0;
        for entry in c.map.values() {
            if let Some(t) = &entry.task {
                t.abort();
                n += 1;
            }
        }
        info!(connections = n, "fault: dropping every connection");
        n
    }

    /// Makes the current connections half-open: the server stops reading
    /// from and writing to them (no data, no pings, no pongs) but keeps them
    /// open. Connections made later are served normally. Returns how many
    /// connections went silent; [`ServerHandle::end_silence`] undoes it.
    pub fn go_silent(&self) -> usize {
        let Some(inst) = self.instance() else {
            return 0;
        };
        let c = lock(&inst.connections);
        for entry in c.map.values() {
            entry.silent.send_replace(true);
        }
        info!(connections = c.map.len(), "fault: going silent");
        c.map.len()
    }

    /// Ends [`ServerHandle::go_silent`]: silent connections read and write again.
    pub fn end_silence(&self) {
        let Some(inst) = self.instance() else { return };
        let c = lock(&inst.connections);
        for entry in c.map.values() {
            entry.silent.send_replace(false);
        }
        info!("fault: silence ended");
    }

    /// Answers every upgrade with HTTP 503 for `duration`.
    pub fn refuse_connections(&self, duration: Duration) {
        *lock(&self.shared.refuse_until) = Some(Instant::now() + duration);
        info!(?duration, "fault: refusing connections");
    }

    /// Answers the next `n` upgrades with HTTP 503.
    pub fn refuse_next_connections(&self, n: u64) {
        self.shared.refuse_next.store(n, Ordering::SeqCst);
        info!(n, "fault: refusing the next connections");
    }

    /// Stops refusing connections.
    pub fn accept_connections(&self) {
        *lock(&self.shared.refuse_until) = None;
        self.shared.refuse_next.store(0, Ordering::SeqCst);
    }

    /// Makes every live session skip one seq: its next data message's seq is
    /// one more than it should be, leaving a hole a client must report.
    pub fn skip_seq(&self) {
        self.shared.skip_epoch.fetch_add(1, Ordering::SeqCst);
        info!("fault: skipping one seq");
    }

    /// Closes every connection with a close frame of `code` (for example 1001,
    /// 1008, 4000), keeping their sessions for a resume. Returns how many
    /// connections were closed.
    pub fn disconnect_all(&self, code: u16, reason: &str) -> usize {
        let Some(inst) = self.instance() else {
            return 0;
        };
        let c = lock(&inst.connections);
        let mut n = 0;
        for outbox in c.map.values().filter_map(|e| e.outbox.as_ref()) {
            outbox.close(code, reason);
            n += 1;
        }
        info!(connections = n, code, "fault: closing every connection");
        n
    }

    /// Sends `text` as a text frame on every connection, in order with
    /// their other messages: an unknown `type`, malformed JSON, a message
    /// with a forged `seq`, whatever a client test needs to see. Returns how
    /// many connections it was queued on.
    pub fn inject_text(&self, text: &str) -> usize {
        self.inject(|| Out::Text(Utf8Bytes::from(text)))
    }

    /// Sends a binary frame on every connection, which the protocol never
    /// does: a client counts it as a protocol error and carries on. Returns
    /// how many connections it was queued on.
    pub fn inject_binary(&self, data: &[u8]) -> usize {
        let data = bytes::Bytes::copy_from_slice(data);
        self.inject(|| Out::Binary(data.clone()))
    }

    fn inject(&self, item: impl Fn() -> Out) -> usize {
        let Some(inst) = self.instance() else {
            return 0;
        };
        let c = lock(&inst.connections);
        let n = c
            .map
            .values()
            .filter_map(|e| e.outbox.as_ref())
            .filter(|outbox| outbox.push(item()).is_ok())
            .count();
        info!(connections = n, "fault: injecting a frame");
        n
    }

    // Lifecycle.

    /// Shuts down as at a process restart (clients get 1001, sessions and
    /// the market start afresh), then listens again on the same port.
    pub async fn restart(&self) -> Result<(), ServerError> {
        let _guard = self.lifecycle.lock().await;
        let Some(running) = lock(&self.running).take() else {
            return Err(ServerError::ShutDown);
        };
        info!("restarting");
        running.stop(CLOSE_GOING_AWAY, "server restarting").await;
        let mut attempt = 0;
        let listener = loop {
            match TcpListener::bind(self.local_addr).await {
                Ok(l) => break l,
                Err(e) if attempt < 100 && e.kind() == std::io::ErrorKind::AddrInUse => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(source) => {
                    return Err(ServerError::Bind {
                        addr: self.local_addr,
                        source,
                    });
                }
            }
        };
        *lock(&self.running) = Some(Instance::start(self.shared.clone(), listener));
        self.shared.stats.send_modify(|s| s.restarts += 1);
        info!(url = %self.url, "listening again");
        Ok(())
    }

    /// Stops gracefully: stops accepting, closes every client with 1001
    /// (waiting up to the close timeout), ends every session. Later calls do
    /// nothing.
    pub async fn shutdown(&self) {
        let _guard = self.lifecycle.lock().await;
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        info!("shutting down");
        running.stop(CLOSE_GOING_AWAY, "server shutting down").await;
        info!("shut down");
    }

    /// Whether the server is serving (not shut down).
    pub fn is_running(&self) -> bool {
        lock(&self.running).is_some()
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(running) = lock(&self.running).take() {
            running.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    #[test]
    fn the_handle_and_its_futures_can_cross_threads() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<ServerHandle>();
        is_send(&Server::start(ServerConfig::ephemeral()));
        let _ = |h: &ServerHandle| {
            is_send(&h.shutdown());
            is_send(&h.restart());
            is_send(&h.wait_for_stats(|s| s.sessions == 0));
        };
    }

    #[test]
    fn keys_compare_in_full() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn urls_name_a_reachable_address() {
        let config = ServerConfig::default();
        let any: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(url_for(any, &config), "ws://127.0.0.1:9000/ws");
        let v6: SocketAddr = "[::]:9000".parse().unwrap();
        assert_eq!(url_for(v6, &config), "ws://[::1]:9000/ws");
    }
}
