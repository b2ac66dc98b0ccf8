//! What `argus watch` shows, as plain data: fed the client's [`Event`]s and
//! statistics, it keeps one [`Row`] per symbol and the status line's figures.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use argus_core::Symbol;
use argus_core::wire::Level;
use argus_tokio::{ConnectionState, Event, Lagged, MarketData, Stats};

/// Prices kept per symbol for the sparkline.
pub const HISTORY: usize = 48;

/// How far back the message rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// One symbol's row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The symbol.
    pub symbol: Symbol,
    /// The first price seen since `watch` started.
    pub first: Option<f64>,
    /// The last price.
    pub last: Option<f64>,
    /// The cumulative traded volume.
    pub volume: Option<u64>,
    /// The best bid.
    pub bid: Option<Level>,
    /// The best ask.
    pub ask: Option<Level>,
    /// Recent prices, oldest first.
    pub history: VecDeque<f64>,
}

impl Row {
    fn new(symbol: Symbol) -> Self {
        Self {
            symbol,
            first: None,
            last: None,
            volume: None,
            bid: None,
            ask: None,
            history: VecDeque::with_capacity(HISTORY),
        }
    }

    /// The change since the first price seen.
    pub fn change(&self) -> Option<f64> {
        Some(self.last? - self.first?)
    }

    /// The change since the first price seen, in percent.
    pub fn change_percent(&self) -> Option<f64> {
        let first = self.first?;
        (first != 0.0).then(|| self.change().unwrap_or(0.0) / first * 100.0)
    }

    /// The last `width` prices as bars, lowest `▁` to highest `█`.
    pub fn sparkline(&self, width: usize) -> String {
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let skip = self.history.len().saturating_sub(width);
        let prices = self.history.iter().skip(skip);
        let (lo, hi) = prices
            .clone()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &p| {
                (lo.min(p), hi.max(p))
            });
        prices
            .map(|&p| {
                if hi > lo {
                    let i = ((p - lo) / (hi - lo) * 7.0).round() as usize;
                    BARS[i.min(7)]
                } else {
                    BARS[3]
                }
            })
            .collect()
    }

    fn apply(&mut self, data: &MarketData) {
        match data {
            MarketData::Price(p) => {
                self.first.get_or_insert(p.price);
                self.last = Some(p.price);
                if self.history.len() == HISTORY {
                    self.history.pop_front();
                }
                self.history.push_back(p.price);
            }
            MarketData::Volume(v) => self.volume = Some(v.volume),
            MarketData::OrderBook(b) => {
                self.bid = b.bids.first().copied();
                self.ask = b.asks.first().copied();
            }
            _ => {}
        }
    }
}

/// Everything the screen shows.
#[derive(Clone, Debug)]
pub struct Model {
    url: String,
    rows: Vec<Row>,
    index: HashMap<Symbol, usize>,
    state: ConnectionState,
    data_messages: u64,
    gaps: u64,
    missed_events: u64,
    reconnects: u64,
    rtt: Option<Duration>,
    samples: VecDeque<(Instant, u64)>,
    rate: f64,
    problem: Option<String>,
}

impl Model {
    /// A model for a feed from `url`, with a row for each of `symbols` (in
    /// that order) before any data arrives.
    pub fn new(url: impl Into<String>, symbols: impl IntoIterator<Item = Symbol>) -> Self {
        let mut model = Self {
            url: url.into(),
            rows: Vec::new(),
            index: HashMap::new(),
            state: ConnectionState::Disconnected,
            data_messages: 0,
            gaps: 0,
            missed_events: 0,
            reconnects: 0,
            rtt: None,
            samples: VecDeque::new(),
            rate: 0.0,
            problem: None,
        };
        for symbol in symbols {
            model.row(symbol);
        }
        model
    }

    fn row(&mut self, symbol: Symbol) -> &mut Row {
        let i = *self.index.entry(symbol).or_insert_with(|| {
            self.rows.push(Row::new(symbol));
            self.rows.len() - 1
        });
        &mut self.rows[i]
    }

    /// Takes in one event of the feed.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Data(data) => {
                self.data_messages += 1;
                self.row(data.symbol()).apply(data);
            }
            Event::StateChanged { to, .. } => {
                self.state = *to;
                if *to == ConnectionState::Connected {
                    self.problem = None;
                }
            }
            Event::Gap(_) => self.gaps += 1,
            Event::Disconnected(reason) => self.problem = Some(reason.to_string()),
            Event::AttemptFailed { error, .. } => self.problem = Some(error.to_string()),
            Event::GaveUp(reason) => self.problem = Some(format!("gave up: {reason}")),
            Event::SubscribeFailed { error, .. } => {
                self.problem = Some(format!("subscription refused: {error}"));
            }
            Event::RequestTimedOut { request, id, .. } => {
                self.problem = Some(format!("the server did not answer {request} `{id}`"));
            }
            Event::ProtocolError(e) => self.problem = Some(e.to_string()),
            _ => {}
        }
    }

    /// Takes in a lossy feed's report of events it missed.
    pub fn missed(&mut self, Lagged(missed): Lagged) {
        self.missed_events += missed;
    }

    /// Takes in the client's statistics (round-trip time, reconnects, gaps).
    pub fn apply_stats(&mut self, stats: &Stats) {
        self.rtt = stats.rtt;
        self.reconnects = stats.reconnect_count;
        self.gaps = self.gaps.max(stats.gaps);
        self.state = stats.state;
    }

    /// Notes a problem to show on the status line.
    pub fn set_problem(&mut self, problem: impl Into<String>) {
        self.problem = Some(problem.into());
    }

    /// Updates the message rate; call it regularly.
    pub fn tick(&mut self, now: Instant) {
        self.samples.push_back((now, self.data_messages));
        while self
            .samples
            .front()
            .is_some_and(|&(at, _)| now.duration_since(at) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        if let (Some(&(t0, n0)), Some(&(t1, n1))) = (self.samples.front(), self.samples.back()) {
            let span = t1.duration_since(t0).as_secs_f64();
            self.rate = if span > 0.0 {
                (n1 - n0) as f64 / span
            } else {
                0.0
            };
        }
    }

    /// The rows, in the order of `--symbols`, then first seen.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Data messages per second, over the last two seconds.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Data messages taken in.
    pub fn data_messages(&self) -> u64 {
        self.data_messages
    }

    /// Successful reconnections.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Gaps reported.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Events the feed missed because the screen fell behind.
    pub fn missed_events(&self) -> u64 {
        self.missed_events
    }

    /// Round-trip time of the last answered ping.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The last problem, cleared on reconnection.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }
}
