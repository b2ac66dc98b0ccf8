//! Daily bars read from a CSV file, for the replay mode.
//!
//! The file has a header naming at least `Ticker`, `Open`, `High`, `Low`,
//! `Close` and `Volume` (any order, other columns ignored), one bar per line,
//! and may be gzip-compressed. Each bar becomes four ticks on the accelerated
//! clock, one per tick interval: the open, then the low and the high (low
//! first on an up day, high first on a down day), then the close; the bar's
//! volume is spread over the four.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use argus_core::Symbol;

use crate::ServerError;

/// One daily bar of one ticker.
#[derive(Clone, Debug, PartialEq)]
pub struct DailyBar {
    /// The ticker.
    pub ticker: Symbol,
    /// The date as written in the file (empty when the file has no `Date`).
    pub date: String,
    /// Opening price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Closing price.
    pub close: f64,
    /// Shares traded that day.
    pub volume: u64,
}

impl DailyBar {
    /// The four ticks the replay makes of this bar: `(price, volume traded)`,
    /// open → low/high → close.
    pub fn ticks(&self) -> [(f64, u64); 4] {
        let (second, third) = if self.close >= self.open {
            (self.low, self.high)
        } else {
            (self.high, self.low)
        };
        let quarter = self.volume / 4;
        let last = self.volume - 3 * quarter;
        [
            (self.open, quarter),
            (second, quarter),
            (third, quarter),
            (self.close, last),
        ]
    }
}

/// Reads every bar of a CSV file, gzip-compressed or not, in file order.
pub fn load_daily_bars(path: &Path) -> Result<Vec<DailyBar>, ServerError> {
    let fail = |reason: String| ServerError::Replay {
        path: path.to_owned(),
        reason,
    };
    let mut file = BufReader::new(File::open(path).map_err(|e| fail(e.to_string()))?);
    let gzip = file
        .fill_buf()
        .map_err(|e| fail(e.to_string()))?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    parse_daily_bars(BufReader::new(reader)).map_err(fail)
}

/// Parses CSV text of daily bars; the first line is the header.
pub fn parse_daily_bars(reader: impl BufRead) -> Result<Vec<DailyBar>, String> {
    let mut lines = reader.lines();
    let header = match lines.next() {
        Some(line) => line.map_err(|e| e.to_string())?,
        None => return Err("the file is empty".to_owned()),
    };
    let names: Vec<String> = header
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let column = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| format!("the header has no `{name}` column"))
    };
    let (ticker, open, high, low, close, volume) = (
        column("ticker")?,
        column("open")?,
        column("high")?,
        column("low")?,
        column("close")?,
        column("volume")?,
    );
    let date = names.iter().position(|n| n == "date");
    let mut bars = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let lineno = n + 2;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let field = |i: usize| {
            fields
                .get(i)
                .copied()
                .ok_or_else(|| format!("line {lineno}: too few fields"))
        };
        let price = |i: usize| -> Result<f64, String> {
            let text = field(i)?;
            match text.parse::<f64>() {
                Ok(p) if p.is_finite() && p > 0.0 => Ok(p),
                _ => Err(format!("line {lineno}: `{text}` is not a price")),
            }
        };
        let raw_ticker = field(ticker)?;
        let symbol = Symbol::normalize(raw_ticker)
            .map_err(|_| format!("line {lineno}: `{raw_ticker}` is not a symbol"))?;
        let raw_volume = field(volume)?;
        let volume = raw_volume
            .parse::<u64>()
            .ok()
            .or_else(|| {
                raw_volume
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .map(|v| v as u64)
            })
            .ok_or_else(|| format!("line {lineno}: `{raw_volume}` is not a volume"))?;
        bars.push(DailyBar {
            ticker: symbol,
            date: match date {
                Some(i) => field(i)?.to_owned(),
                None => String::new(),
            },
            open: price(open)?,
            high: price(high)?,
            low: price(low)?,
            close: price(close)?,
            volume,
        });
    }
    if bars.is_empty() {
        return Err("the file has no bars".to_owned());
    }
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_ticks() {
        let csv = "Ticker,Date,Open,High,Low,Close,Volume,Adj Close\n\
                   AAPL,2000-03-01,118.56,132.06,118.5,130.31,9616100,4.18\n\
                   AAPL,2000-03-02,127.0,127.94,120.69,122.0,2779100,3.9\n";
        let bars = parse_daily_bars(csv.as_bytes()).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].ticker.as_str(), "AAPL");
        let up: Vec<f64> = bars[0].ticks().iter().map(|t| t.0).collect();
        assert_eq!(up, [118.56, 118.5, 132.06, 130.31]);
        let down: Vec<f64> = bars[1].ticks().iter().map(|t| t.0).collect();
        assert_eq!(down, [127.0, 127.94, 120.69, 122.0]);
        assert_eq!(bars[0].ticks().iter().map(|t| t.1).sum::<u64>(), 9616100);
    }

    #[test]
    fn rejects_bad_files() {
        assert!(parse_daily_bars("".as_bytes()).is_err());
        assert!(parse_daily_bars("Ticker,Open\n".as_bytes()).is_err());
        let bad = "Ticker,Open,High,Low,Close,Volume\nAAPL,x,1,1,1,1\n";
        assert!(
            parse_daily_bars(bad.as_bytes())
                .unwrap_err()
                .contains("line 2")
        );
    }

    #[test]
    fn reads_the_shipped_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/stocks-daily.csv.gz");
        let bars = load_daily_bars(&path).unwrap();
        assert_eq!(bars.len(), 12_154);
        assert_eq!(bars[0].date, "2000-03-01");
    }
}
