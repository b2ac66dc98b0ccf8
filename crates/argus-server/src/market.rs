//! The market a server serves: a seeded simulation, or a replay of daily bars.
//!
//! [`Market::step`] advances it by one tick and returns what changed; it
//! reads no clock, so a seed gives the same sequence of ticks every time.

use std::collections::HashMap;
use std::sync::Arc;

use argus_core::Symbol;
use argus_core::wire::Level;

use crate::config::DEFAULT_UNIVERSE;
use crate::replay::DailyBar;

/// Levels a side of every order book.
pub(crate) const BOOK_DEPTH: usize = 10;
/// Chance that a simulated symbol trades in one tick.
const TRADE_PROBABILITY: f64 = 0.8;
/// Standard deviation of one tick's log return.
const TICK_VOLATILITY: f64 = 0.0008;

/// The symbols served, each with a small index.
#[derive(Debug)]
pub(crate) struct Universe {
    symbols: Vec<Symbol>,
    start_prices: Vec<f64>,
    index: HashMap<Symbol, u16>,
}

impl Universe {
    fn new(entries: Vec<(Symbol, f64)>) -> Self {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (*s, i as u16))
            .collect();
        let (symbols, start_prices) = entries.into_iter().unzip();
        Self {
            symbols,
            start_prices,
            index,
        }
    }

    /// Index of `symbol`, if it is served.
    pub(crate) fn index_of(&self, symbol: &Symbol) -> Option<u16> {
        self.index.get(symbol).copied()
    }

    /// The symbol at `idx`.
    pub(crate) fn symbol(&self, idx: u16) -> Symbol {
        self.symbols[usize::from(idx)]
    }

    /// Number of symbols.
    pub(crate) fn len(&self) -> usize {
        self.symbols.len()
    }

    /// The first price of the symbol at `idx`.
    pub(crate) fn start_price(&self, idx: u16) -> f64 {
        self.start_prices[usize::from(idx)]
    }

    /// Every symbol, in index order.
    pub(crate) fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }
}

/// A top-of-book snapshot.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Book {
    /// Best (highest) first.
    pub bids: Vec<Level>,
    /// Best (lowest) first.
    pub asks: Vec<Level>,
}

/// What one tick changed for one symbol: a trade at `price`, the cumulative
/// volume after it, and the book around it.
#[derive(Clone, Debug)]
pub(crate) struct Update {
    pub idx: u16,
    pub price: f64,
    pub volume: u64,
    pub book: Arc<Book>,
}

/// One tick of the market, stamped when it was produced.
#[derive(Debug)]
pub(crate) struct Tick {
    /// The tick's number: 1, 2, 3, … over one run of the server.
    pub no: u64,
    /// When it was produced.
    pub at: tokio::time::Instant,
    /// RFC 3339 UTC with microseconds.
    pub timestamp: Arc<str>,
    pub updates: Vec<Update>,
}

impl Tick {
    /// About how many bytes the tick holds (its books included).
    pub(crate) fn size(&self) -> usize {
        let book = |b: &Book| (b.bids.len() + b.asks.len()) * std::mem::size_of::<Level>() + 64;
        std::mem::size_of::<Self>()
            + self
                .updates
                .iter()
                .map(|u| std::mem::size_of::<Update>() + book(&u.book))
                .sum::<usize>()
    }
}

struct ReplayPath {
    steps: Vec<(f64, u64)>,
    cursor: usize,
}

/// A seeded market: every call to [`Market::step`] is one tick.
pub(crate) struct Market {
    rng: fastrand::Rng,
    prices: Vec<f64>,
    volumes: Vec<u64>,
    replay: Option<Vec<ReplayPath>>,
}

impl Market {
    /// A simulated market over `symbols` (the default universe when `None`).
    pub(crate) fn simulated(symbols: Option<&[Symbol]>, seed: u64) -> (Self, Universe) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let entries: Vec<(Symbol, f64)> = match symbols {
            Some(list) => list
                .iter()
                .map(|s| {
                    let known = DEFAULT_UNIVERSE
                        .iter()
                        .find(|(name, _)| *name == s.as_str());
                    let price = match known {
                        Some((_, p)) => *p,
                        None => round_cents(20.0 + rng.f64() * 480.0),
                    };
                    (*s, price)
                })
                .collect(),
            None => DEFAULT_UNIVERSE
                .iter()
                .filter_map(|(name, p)| Some((Symbol::parse(name).ok()?, *p)))
                .collect(),
        };
        let universe = Universe::new(dedup(entries));
        let market = Self {
            rng,
            prices: universe.start_prices.clone(),
            volumes: vec![0; universe.len()],
            replay: None,
        };
        (market, universe)
    }

    /// A market replaying `bars`, restricted to `symbols` when given.
    pub(crate) fn replay(
        bars: &[DailyBar],
        symbols: Option<&[Symbol]>,
        seed: u64,
    ) -> Result<(Self, Universe), String> {
        let mut order: Vec<Symbol> = Vec::new();
        let mut per_symbol: HashMap<Symbol, Vec<&DailyBar>> = HashMap::new();
        for bar in bars {
            per_symbol
                .entry(bar.ticker)
                .or_insert_with(|| {
                    order.push(bar.ticker);
                    Vec::new()
                })
                .push(bar);
        }
        if let Some(wanted) = symbols {
            if let Some(missing) = wanted.iter().find(|s| !per_symbol.contains_key(*s)) {
                return Err(format!("the replay file has no bars of {missing}"));
            }
            order = wanted.to_vec();
        }
        let order = dedup_symbols(order);
        if order.len() > usize::from(u16::MAX) {
            return Err("more than 65535 tickers".to_owned());
        }
        let mut entries = Vec::new();
        let mut paths = Vec::new();
        for symbol in order {
            let mut symbol_bars = per_symbol.remove(&symbol).unwrap_or_default();
            // Dates are ISO, so text order is time order; stable for equal dates.
            symbol_bars.sort_by(|a, b| a.date.cmp(&b.date));
            let steps: Vec<(f64, u64)> = symbol_bars.iter().flat_map(|b| b.ticks()).collect();
            entries.push((symbol, steps[0].0));
            paths.push(ReplayPath { steps, cursor: 0 });
        }
        let universe = Universe::new(entries);
        let market = Self {
            rng: fastrand::Rng::with_seed(seed),
            prices: universe.start_prices.clone(),
            volumes: vec![0; universe.len()],
            replay: Some(paths),
        };
        Ok((market, universe))
    }

    /// Advances one tick and returns the symbols that traded.
    pub(crate) fn step(&mut self) -> Vec<Update> {
        let mut updates = Vec::with_capacity(self.prices.len());
        for i in 0..self.prices.len() {
            let (price, traded) = match &mut self.replay {
                Some(paths) => {
                    let path = &mut paths[i];
                    let step = path.steps[path.cursor];
                    path.cursor = (path.cursor + 1) % path.steps.len();
                    step
                }
                None => {
                    if self.rng.f64() >= TRADE_PROBABILITY {
                        continue;
                    }
                    let z = standard_normal(&mut self.rng);
                    let price = round_cents(self.prices[i] * (TICK_VOLATILITY * z).exp()).max(0.01);
                    (price, self.rng.u64(1..=50) * 100)
                }
            };
            self.prices[i] = price;
            self.volumes[i] += traded;
            let book = build_book(price, &mut self.rng);
            updates.push(Update {
                idx: i as u16,
                price,
                volume: self.volumes[i],
                book: Arc::new(book),
            });
        }
        updates
    }
}

fn dedup(entries: Vec<(Symbol, f64)>) -> Vec<(Symbol, f64)> {
    let mut out: Vec<(Symbol, f64)> = Vec::with_capacity(entries.len());
    for e in entries {
        if !out.iter().any(|(s, _)| *s == e.0) {
            out.push(e);
        }
    }
    out
}

fn dedup_symbols(symbols: Vec<Symbol>) -> Vec<Symbol> {
    let mut out: Vec<Symbol> = Vec::with_capacity(symbols.len());
    for s in symbols {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Rounds to whole cents.
pub(crate) fn round_cents(price: f64) -> f64 {
    (price * 100.0).round() / 100.0
}

fn standard_normal(rng: &mut fastrand::Rng) -> f64 {
    // Box-Muller; 1 - u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A book around `price`, one cent a level, 1–2 cents each side of the price:
/// the best bid is always below the price and the best ask above it, so the
/// book is never crossed.
pub(crate) fn build_book(price: f64, rng: &mut fastrand::Rng) -> Book {
    let cents = (price * 100.0).round() as i64;
    let best_bid = cents - rng.i64(1..=2);
    let best_ask = cents + rng.i64(1..=2);
    let mut size = || rng.u64(1..=20) * 100;
    let bids = (0..BOOK_DEPTH as i64)
        .map(|i| best_bid - i)
        .take_while(|c| *c > 0)
        .map(|c| Level {
            price: c as f64 / 100.0,
            size: size(),
        })
        .collect();
    let asks = (0..BOOK_DEPTH as i64)
        .map(|i| Level {
            price: (best_ask + i) as f64 / 100.0,
            size: size(),
        })
        .collect();
    Book { bids, asks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_market() {
        let (mut a, ua) = Market::simulated(None, 7);
        let (mut b, _) = Market::simulated(None, 7);
        assert!(ua.len() >= 20);
        for name in ["AAPL", "GOOGL", "MSFT", "TSLA", "AMZN"] {
            assert!(ua.index_of(&Symbol::parse(name).unwrap()).is_some());
        }
        for _ in 0..100 {
            let (x, y) = (a.step(), b.step());
            assert_eq!(x.len(), y.len());
            for (u, v) in x.iter().zip(&y) {
                assert_eq!((u.idx, u.price, u.volume), (v.idx, v.price, v.volume));
                assert_eq!(u.book, v.book);
            }
        }
        let (mut c, _) = Market::simulated(None, 8);
        let prices = |m: &mut Market| m.step().iter().map(|u| u.price).collect::<Vec<_>>();
        assert_ne!(prices(&mut a), prices(&mut c));
    }

    #[test]
    fn books_are_never_crossed_and_volume_rises() {
        let (mut m, u) = Market::simulated(None, 1);
        let mut last_volume = vec![0; u.len()];
        for _ in 0..2000 {
            for up in m.step() {
                let b = &up.book;
                assert_eq!(b.bids.len(), BOOK_DEPTH);
                assert_eq!(b.asks.len(), BOOK_DEPTH);
                assert!(b.bids[0].price < up.price && up.price < b.asks[0].price);
                assert!(b.bids.windows(2).all(|w| w[0].price > w[1].price));
                assert!(b.asks.windows(2).all(|w| w[0].price < w[1].price));
                assert!(up.volume > last_volume[usize::from(up.idx)]);
                last_volume[usize::from(up.idx)] = up.volume;
            }
        }
    }

    #[test]
    fn tiny_prices_keep_positive_bids() {
        let book = build_book(0.02, &mut fastrand::Rng::with_seed(3));
        assert!(book.bids.iter().all(|l| l.price > 0.0));
        assert!(book.bids.len() < BOOK_DEPTH);
    }

    #[test]
    fn replay_walks_the_bars() {
        let csv = "Ticker,Date,Open,High,Low,Close,Volume\n\
                   X,2000-01-02,10,12,9,11,400\n\
                   X,2000-01-01,5,6,4,4.5,40\n";
        let bars = crate::replay::parse_daily_bars(csv.as_bytes()).unwrap();
        let (mut m, u) = Market::replay(&bars, None, 1).unwrap();
        assert_eq!(u.len(), 1);
        let path: Vec<(f64, u64)> = (0..9)
            .map(|_| {
                let up = m.step().remove(0);
                (up.price, up.volume)
            })
            .collect();
        assert_eq!(
            path,
            [
                (5.0, 10),
                (6.0, 20),
                (4.0, 30),
                (4.5, 40),
                (10.0, 140),
                (9.0, 240),
                (12.0, 340),
                (11.0, 440),
                (5.0, 450)
            ]
        );
        let missing = [Symbol::parse("Y").unwrap()];
        assert!(Market::replay(&bars, Some(&missing), 1).is_err());
    }
}
