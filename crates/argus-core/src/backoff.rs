//! Reconnect backoff: exponential, capped, with jitter from a seeded source.
//!
//! The delay before attempt *n* (1-based) is drawn from
//! `[b/2, b]` where `b = min(reconnect_delay × 2^(n−1), max_backoff)`
//! ("equal jitter"): clients that lost the same server spread out, and none
//! retries sooner than half the nominal delay. The random source is passed
//! in, so the same seed always gives the same delays.

use std::time::Duration;

/// Computes reconnect delays. Pure: it holds no clock and no random state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first attempt, before jitter.
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
}

impl Backoff {
    /// A backoff starting at `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// The nominal delay before attempt `attempt` (1-based), before jitter.
    pub fn nominal(&self, attempt: u32) -> Duration {
        2u32.checked_pow(attempt.saturating_sub(1))
            .and_then(|factor| self.base.checked_mul(factor))
            .unwrap_or(Duration::MAX)
            .min(self.cap)
    }

    /// The jittered delay before attempt `attempt` (1-based); `unit` is a
    /// uniform draw from `[0, 1]`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let nominal = self.nominal(attempt);
        let half = nominal / 2;
        half + (nominal - half).mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let n: Vec<u64> = (1..=7).map(|a| b.nominal(a).as_secs()).collect();
        assert_eq!(n, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.nominal(u32::MAX), Duration::from_secs(30));
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(b.delay(3, 1.0), Duration::from_secs(4));
        let zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.delay(9, 0.7), Duration::ZERO);
    }
}
