//! Reconnection delays: exponential backoff with full jitter (a uniformly random delay
//! between zero and `min(cap, base · 2^attempt)`), so that a fleet of agents cut off by a
//! control-plane restart does not come back in one wave.

use std::time::Duration;

use rand::Rng;

/// First ceiling.
pub const DEFAULT_BASE: Duration = Duration::from_secs(1);
/// Largest ceiling.
pub const DEFAULT_CAP: Duration = Duration::from_secs(60);
/// A stream that stayed up this long (or delivered a message) was healthy: the next failure
/// starts from the base again.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// Backoff state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(DEFAULT_BASE, DEFAULT_CAP)
    }
}

impl Backoff {
    /// A backoff from `base` doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The ceiling of the current attempt.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay, drawn from `rng`, and one more attempt.
    pub fn next_delay_with(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(0..=millis))
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(&mut rand::rng())
    }

    /// Back to the base after a healthy stream.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut rng = StdRng::seed_from_u64(7);
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling().as_secs());
            let d = b.next_delay_with(&mut rng);
            assert!(d <= Duration::from_secs(60));
        }
        assert_eq!(ceilings, vec![1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        for _ in 0..100 {
            b.next_delay_with(&mut rng);
        }
        assert_eq!(b.ceiling(), Duration::from_secs(60), "no overflow");
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn delays_are_spread_over_the_whole_range() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut low = 0;
        let mut high = 0;
        for _ in 0..1000 {
            let mut b = Backoff::new(Duration::from_secs(8), Duration::from_secs(60));
            let d = b.next_delay_with(&mut rng);
            assert!(d <= Duration::from_secs(8));
            if d < Duration::from_secs(2) {
                low += 1;
            }
            if d > Duration::from_secs(6) {
                high += 1;
            }
        }
        // Full jitter: roughly a quarter each; far from zero either way.
        assert!(low > 150 && high > 150, "low {low} high {high}");
    }
}
