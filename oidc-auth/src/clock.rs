//! The time source for validation, injectable so tests never sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current Unix time in seconds.
///
/// Validation (`exp`, `nbf`, `iat`) and cache expiry read the clock through this trait, so a test
/// can move time with [`ManualClock`] instead of sleeping.
///
/// ```
/// use oidc_auth::{Clock, SystemClock};
/// assert!(SystemClock.now() > 1_600_000_000);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The longest span [`secs`] gives: a century, which for a running server means "never".
const MAX_SPAN_SECS: i64 = 100 * 365 * 24 * 3600;

/// `duration` in whole seconds for comparisons with [`Clock::now`], saturating at a century. A
/// plain `as i64` turns `Duration::MAX` into -1, which inverts a TTL or a limit; the century cap
/// also keeps `now + secs` far from overflowing.
pub(crate) fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).map_or(MAX_SPAN_SECS, |s| s.min(MAX_SPAN_SECS))
}

/// The longest backoff [`backoff_secs`] gives: 30 s and half of it again as jitter.
pub(crate) const MAX_BACKOFF_SECS: i64 = 45;

/// How long a call to a provider or a store has to have been under way when its caller goes
/// away for that to count as a failure: one that answers does so well within it, one that
/// hangs does not.
pub(crate) const ABANDONED_AFTER_SECS: i64 = 2;

/// The wait after `failures` failed attempts in a row, in clock seconds, for everything that
/// retries something remote: 1 s doubling up to 30 s, plus a jitter drawn uniformly from 0 to
/// half the base (rounded up), so that instances that failed together do not retry in step:
/// 1-2 s after the first failure, 2-3 s after the second, up to 30-45 s. Rounding the half up
/// keeps the jitter real at the low counts, where a rounded-down half would be 0 s.
pub(crate) fn backoff_secs(failures: u32) -> i64 {
    let base = (1i64 << failures.saturating_sub(1).min(5)).min(30);
    let spread = (base + 1) / 2;
    let mut bytes = [0u8; 4];
    let jitter = match aws_lc_rs::rand::fill(&mut bytes) {
        Ok(()) => i64::from(u32::from_le_bytes(bytes)) % (spread + 1),
        Err(_) => 0,
    };
    base + jitter
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock that stands still until told to move; clones share the same time.
///
/// ```
/// use oidc_auth::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(30);
/// assert_eq!(clock.now(), 1_030);
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `now` (Unix seconds).
    pub fn new(now: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now)))
    }

    /// Sets the time.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward (or back, with a negative value).
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations too long for the clock's arithmetic saturate instead of wrapping negative.
    #[test]
    fn spans_saturate_at_a_century() {
        assert_eq!(secs(Duration::from_millis(1500)), 1);
        assert_eq!(secs(Duration::from_secs(600)), 600);
        assert_eq!(secs(Duration::MAX), MAX_SPAN_SECS);
        assert_eq!(secs(Duration::from_secs(u64::MAX / 2)), MAX_SPAN_SECS);
        assert!(SystemClock.now().checked_add(secs(Duration::MAX)).is_some());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..50 {
            assert!((1..=2).contains(&backoff_secs(1)));
            assert!((2..=3).contains(&backoff_secs(2)));
            assert!((4..=6).contains(&backoff_secs(3)));
            assert!((16..=24).contains(&backoff_secs(5)));
            assert!((30..=45).contains(&backoff_secs(20)));
        }
    }

    /// The jitter is real from the first failure on: instances that failed together do not
    /// all retry one second later.
    #[test]
    fn the_first_retry_wait_is_jittered() {
        let waits: std::collections::HashSet<i64> = (0..200).map(|_| backoff_secs(1)).collect();
        assert_eq!(waits, [1, 2].into_iter().collect(), "{waits:?}");
        let waits: std::collections::HashSet<i64> = (0..200).map(|_| backoff_secs(2)).collect();
        assert_eq!(waits, [2, 3].into_iter().collect(), "{waits:?}");
    }

    /// Instances that failed together do not retry in step: the jitter varies.
    #[test]
    fn backoff_is_jittered() {
        let waits: std::collections::HashSet<i64> = (0..200).map(|_| backoff_secs(20)).collect();
        assert!(waits.len() > 3, "{waits:?}");
        assert!(waits.iter().all(|w| (30..=45).contains(w)), "{waits:?}");
    }
}
