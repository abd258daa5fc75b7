//! Exponential backoff: the wait before each retry doubles from a first
//! step up to a cap. One shape for every retry loop (mail sends, outcome
//! records, state writes, Apple checks) so they cannot drift apart (pure).

use std::time::Duration;

/// Doubling is capped at 2^31 steps; any real cap is reached long before.
const MAX_DOUBLINGS: u32 = 31;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The wait before retry `n` (n = 0 and 1 both give `first`):
    /// first·2^(n-1), capped at `max`.
    pub fn nth(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(MAX_DOUBLINGS);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// [`Backoff::nth`] times (1 + jitter), jitter clamped to ±20 %, in
    /// whole milliseconds: retries of many items spread out instead of
    /// hitting a recovering server at once.
    pub fn nth_jittered(&self, n: u32, jitter: f64) -> Duration {
        let factor = 1.0 + jitter.clamp(-0.2, 0.2);
        Duration::from_millis((self.nth(n).as_secs_f64() * factor * 1000.0) as u64)
    }

    /// The same doubling from another first step, the cap scaled alike
    /// (tests shorten a one-hour backoff to seconds this way).
    pub fn scaled(self, first: Duration) -> Backoff {
        let max = if self.first.is_zero() {
            self.max
        } else {
            let nanos = self.max.as_nanos() * first.as_nanos() / self.first.as_nanos();
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        };
        Backoff { first, max }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECS: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubles_from_the_first_step_and_caps() {
        let b = Backoff::new(SECS(30), SECS(3600));
        assert_eq!(b.nth(0), SECS(30));
        assert_eq!(b.nth(1), SECS(30));
        assert_eq!(b.nth(2), SECS(60));
        assert_eq!(b.nth(40), SECS(3600));
        assert_eq!(b.nth(u32::MAX), SECS(3600));
        let state = Backoff::new(SECS(5), SECS(60));
        let waits: Vec<u64> = (1..=6).map(|n| state.nth(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
    }

    #[test]
    fn jitter_is_clamped_to_a_fifth_either_way() {
        let b = Backoff::new(SECS(5), SECS(3600));
        assert_eq!(b.nth_jittered(1, 0.0), SECS(5));
        assert_eq!(b.nth_jittered(2, 0.0), SECS(10));
        assert_eq!(b.nth_jittered(3, 0.0), SECS(20));
        assert_eq!(b.nth_jittered(20, 0.0), SECS(3600));
        assert_eq!(b.nth_jittered(1, 0.2), SECS(6));
        assert_eq!(b.nth_jittered(1, -0.9), SECS(4));
    }

    #[test]
    fn a_shorter_first_step_scales_the_doubling_and_the_cap() {
        let b = Backoff::new(SECS(5), SECS(3600)).scaled(Duration::from_millis(100));
        assert_eq!(b.nth_jittered(1, 0.0), Duration::from_millis(100));
        assert_eq!(b.nth_jittered(3, 0.0), Duration::from_millis(400));
        assert_eq!(b.nth_jittered(30, 0.0), SECS(72));
    }
}
