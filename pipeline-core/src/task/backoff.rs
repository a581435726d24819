//! Delays between attempts: exponential from the task's `retry_delay`, capped, with full jitter
//! (a uniformly random delay up to the exponential bound) so that tasks failing together on a
//! shared cause do not retry in lockstep.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// No retry waits longer than this, whatever the base and attempt.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(15 * 60);

/// The upper bound of the delay after the `failed_attempt`-th attempt (1-based): base, 2 x base,
/// 4 x base, ..., capped at [`MAX_RETRY_DELAY`].
pub fn ceiling(base: Duration, failed_attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(failed_attempt.saturating_sub(1));
    base.saturating_mul(factor).min(MAX_RETRY_DELAY)
}

/// The delay to wait: uniform in `[ceiling / 2, ceiling]`. Half the bound is kept so that a
/// retry never comes immediately after a failure (pure full jitter can pick ~0).
pub fn delay(base: Duration, failed_attempt: u32) -> Duration {
    let ceiling = ceiling(base, failed_attempt);
    let half = ceiling / 2;
    let span = ceiling.saturating_sub(half).as_millis() as u64;
    let jitter = if span == 0 { 0 } else { random() % (span + 1) };
    half + Duration::from_millis(jitter)
}

/// A random number from the standard library's per-process random hasher keys.
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let base = Duration::from_secs(10);
        assert_eq!(ceiling(base, 1), Duration::from_secs(10));
        assert_eq!(ceiling(base, 2), Duration::from_secs(20));
        assert_eq!(ceiling(base, 4), Duration::from_secs(80));
        assert_eq!(ceiling(base, 40), MAX_RETRY_DELAY);
    }

    #[test]
    fn jitter_stays_within_half_and_full_bound() {
        let base = Duration::from_millis(1000);
        for attempt in 1..6 {
            for _ in 0..50 {
                let d = delay(base, attempt);
                let c = ceiling(base, attempt);
                assert!(d >= c / 2 && d <= c, "{d:?} for {c:?}");
            }
        }
        assert_eq!(delay(Duration::ZERO, 3), Duration::ZERO);
    }
}
