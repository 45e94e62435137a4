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
}
