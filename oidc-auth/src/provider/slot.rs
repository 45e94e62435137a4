//! A cached value fetched from the provider, with single-flight refresh, cooldown and backoff.
//!
//! Readers take a snapshot (`current`) without waiting on anything. A refresh goes through an
//! async gate: callers that queued behind a fetch see the new generation and do not fetch again.
//! After a failure no fetch starts until the backoff has passed. Refreshes forced by a request
//! (an unknown `kid`) are further limited to one per cooldown, so that tokens with made-up key
//! ids cannot make the server hammer the provider; scheduled refreshes do not count against it.

use std::future::Future;
use std::sync::{Arc, RwLock};

use tokio::sync::{Mutex, MutexGuard};

use crate::clock::{ABANDONED_AFTER_SECS, MAX_BACKOFF_SECS, backoff_secs};

/// A fetched value and when it was fetched.
#[derive(Debug)]
pub(crate) struct Fetched<T> {
    pub(crate) value: T,
    /// Unix seconds of the successful fetch.
    pub(crate) at: i64,
    pub(crate) generation: u64,
    /// When it was fetched (or restored), on the monotonic clock: its age when `at` is ahead
    /// of the wall clock, which was then set back (see [`within`](Self::within)).
    pub(crate) since: tokio::time::Instant,
}

/// Watches a fetch that runs in its caller's future: a fetch run directly, or one that
/// `provider::detached` could not give a task of its own (no runtime, or too many under way).
/// A caller that goes away (a request cancelled by its client or a timeout layer) drops the
/// fetch unfinished; if it had been
/// under way for [`ABANDONED_AFTER_SECS`], the provider is taken to hang, and the failure is
/// recorded with its backoff from now, so that the next caller answers 503 with `Retry-After`
/// instead of starting a fetch of its own. One dropped sooner records nothing: a caller that
/// gives up at once must not put a provider that answers into backoff.
struct Abandoned<'a, F: Fn() -> i64> {
    gate: &'a mut Gate,
    started: i64,
    now: &'a F,
}

impl<F: Fn() -> i64> Abandoned<'_, F> {
    /// The fetch ended, with whatever outcome: the caller records it.
    fn finished(self) {
        std::mem::forget(self);
    }
}

impl<F: Fn() -> i64> Drop for Abandoned<'_, F> {
    fn drop(&mut self) {
        let now = (self.now)();
        if now.saturating_sub(self.started) >= ABANDONED_AFTER_SECS {
            self.gate.record_failure(now);
            tracing::warn!(
                waited_secs = now.saturating_sub(self.started),
                "a fetch from the identity provider was abandoned unanswered; backing off"
            );
        }
    }
}

impl<T> Fetched<T> {
    /// Whether a refresh is due at `now` after `ttl` seconds: also when the clock has been set
    /// back past the fetch, which would otherwise put the next refresh off by the step back.
    pub(crate) fn due(&self, now: i64, ttl: i64) -> bool {
        now < self.at || now.saturating_sub(self.at) >= ttl
    }

    /// Whether it is at most `limit` seconds old at `now`. Fetched "after" now (the clock has
    /// been set back since), its age on the wall clock would be negative for as long as the
    /// step back, and a stale limit would stretch by that much: the time since it was fetched
    /// on the monotonic clock counts then.
    pub(crate) fn within(&self, now: i64, limit: i64) -> bool {
        if now < self.at {
            let elapsed = i64::try_from(self.since.elapsed().as_secs()).unwrap_or(i64::MAX);
            return elapsed <= limit;
        }
        now.saturating_sub(self.at) <= limit
    }
}

#[derive(Debug, Default)]
pub(crate) struct Gate {
    generation: u64,
    /// After a failure: no fetch before this time.
    retry_at: i64,
    failures: u32,
    last_failed: bool,
    /// When the last forced refresh succeeded.
    forced_at: Option<i64>,
}

impl Gate {
    /// Whether the last fetch failed and its backoff has not passed at `now`: no fetch may
    /// start, so neither may a task that would only find that out.
    ///
    /// A backoff further ahead than the longest one ([`MAX_BACKOFF_SECS`]) is one the clock
    /// was set back under, and is over: it would otherwise last as long as the step back.
    pub(crate) fn backing_off(&self, now: i64) -> bool {
        self.last_failed && now < self.retry_at && self.retry_at - now <= MAX_BACKOFF_SECS
    }

    /// Records a failed fetch at `now` and returns its backoff in seconds.
    fn record_failure(&mut self, now: i64) -> i64 {
        self.failures = self.failures.saturating_add(1);
        self.last_failed = true;
        let backoff = backoff_secs(self.failures);
        self.retry_at = now.saturating_add(backoff);
        backoff
    }
}

/// Outcome of asking for a refresh.
pub(crate) enum Refresh<T> {
    /// A fetch (ours or one we waited for) produced this value.
    Fresh(Arc<Fetched<T>>),
    /// Within the cooldown after a forced fetch: nothing was fetched.
    Cooldown(Option<Arc<Fetched<T>>>),
    /// The fetch failed, or failed recently and we are backing off.
    Failed { retry_after: u64 },
}

#[derive(Debug)]
pub(crate) struct Slot<T> {
    current: RwLock<Option<Arc<Fetched<T>>>>,
    gate: Mutex<Gate>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            current: RwLock::new(None),
            gate: Mutex::new(Gate::default()),
        }
    }
}

impl<T> Slot<T> {
    pub(crate) fn current(&self) -> Option<Arc<Fetched<T>>> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn store(&self, value: Arc<Fetched<T>>) {
        match self.current.write() {
            Ok(mut c) => *c = Some(value),
            Err(p) => *p.into_inner() = Some(value),
        }
    }

    /// The gate, once no other refresh holds it.
    pub(crate) async fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().await
    }

    /// The gate if no refresh is running, for background refreshes that must not queue.
    pub(crate) fn try_gate(&self) -> Option<MutexGuard<'_, Gate>> {
        self.gate.try_lock().ok()
    }

    /// Whether a background refresh is worth starting at `now`: no refresh is running and no
    /// backoff forbids a fetch. Checked before spawning, so that an outage, during which every
    /// validation past the TTL asks for a refresh, does not start a task per request.
    pub(crate) fn may_refresh_now(&self, now: i64) -> bool {
        self.try_gate().is_some_and(|gate| !gate.backing_off(now))
    }

    /// Puts `value`, fetched at `at` by an earlier run and kept elsewhere, into an empty slot:
    /// it ages from `at`, not from now, and the backoff of the failed fetch stays. `None` when
    /// the slot holds a value already, which keeps its own age.
    pub(crate) async fn restore(&self, value: T, at: i64) -> Option<Arc<Fetched<T>>> {
        let mut gate = self.gate().await;
        if self.current().is_some() {
            return None;
        }
        gate.generation += 1;
        let fetched = Arc::new(Fetched {
            value,
            at,
            generation: gate.generation,
            since: tokio::time::Instant::now(),
        });
        self.store(fetched.clone());
        Some(fetched)
    }

    /// Refreshes unless another caller already did since generation `seen`, or the backoff
    /// forbids a fetch now. `forced_cooldown` marks a refresh forced by a request: it is refused
    /// within that many seconds of the previous forced one.
    pub(crate) async fn refresh<F, Fut, E>(
        &self,
        seen: u64,
        now: impl Fn() -> i64,
        forced_cooldown: Option<i64>,
        fetch: F,
    ) -> Refresh<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let gate = self.gate().await;
        self.refresh_locked(gate, seen, now, forced_cooldown, fetch)
            .await
    }

    pub(crate) async fn refresh_locked<F, Fut, E>(
        &self,
        mut gate: MutexGuard<'_, Gate>,
        seen: u64,
        now: impl Fn() -> i64,
        forced_cooldown: Option<i64>,
        fetch: F,
    ) -> Refresh<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        if gate.generation != seen
            && let Some(current) = self.current().filter(|c| c.generation == gate.generation)
        {
            return Refresh::Fresh(current);
        }
        let start = now();
        if gate.backing_off(start) {
            return Refresh::Failed {
                retry_after: (gate.retry_at - start).max(1) as u64,
            };
        }
        // A forced fetch "after" this moment is one the clock was set back under: the cooldown
        // is over, rather than lasting as long as the step back.
        if let (Some(cooldown), Some(forced_at)) = (forced_cooldown, gate.forced_at)
            && forced_at <= start
            && start < forced_at.saturating_add(cooldown)
        {
            return Refresh::Cooldown(self.current());
        }
        let abandoned = Abandoned {
            gate: &mut gate,
            started: start,
            now: &now,
        };
        let fetched = fetch().await;
        abandoned.finished();
        match fetched {
            Ok(value) => {
                gate.generation += 1;
                gate.failures = 0;
                gate.last_failed = false;
                let done = now();
                if forced_cooldown.is_some() {
                    gate.forced_at = Some(done);
                }
                let fetched = Arc::new(Fetched {
                    value,
                    at: done,
                    generation: gate.generation,
                    since: tokio::time::Instant::now(),
                });
                self.store(fetched.clone());
                Refresh::Fresh(fetched)
            }
            Err(error) => {
                let backoff = gate.record_failure(now());
                tracing::warn!(%error, retry_in_secs = backoff, "identity provider fetch failed");
                Refresh::Failed {
                    retry_after: backoff as u64,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_refreshes_fetch_once() {
        let slot = Arc::new(Slot::<u32>::default());
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let slot = slot.clone();
            let fetches = fetches.clone();
            tasks.push(tokio::spawn(async move {
                slot.refresh(
                    0,
                    || 100,
                    Some(15),
                    || async {
                        fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok::<_, String>(7)
                    },
                )
                .await
            }));
        }
        for t in tasks {
            assert!(matches!(t.await, Ok(Refresh::Fresh(_))));
        }
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failure_backs_off_without_fetching_again() {
        let slot = Slot::<u32>::default();
        let first = slot
            .refresh(0, || 100, None, || async { Err::<u32, _>("down") })
            .await;
        assert!(matches!(first, Refresh::Failed { .. }));
        let second = slot
            .refresh(0, || 100, None, || async { Ok::<u32, String>(1) })
            .await;
        assert!(matches!(second, Refresh::Failed { retry_after } if retry_after >= 1));
    }

    /// Starts a refresh whose fetch moves `clock` on by `waited` seconds and then never ends,
    /// and gives up on it, as a cancelled request does.
    async fn abandon(slot: &Slot<u32>, clock: &std::sync::atomic::AtomicI64, waited: i64) {
        use std::sync::atomic::Ordering;
        let hanging = slot.refresh(
            0,
            || clock.load(Ordering::SeqCst),
            None,
            || async {
                clock.fetch_add(waited, Ordering::SeqCst);
                std::future::pending::<Result<u32, String>>().await
            },
        );
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(20), hanging).await;
        assert!(gave_up.is_err(), "the fetch never ends");
    }

    /// A fetch whose caller goes away after it has waited (a request cancelled while the
    /// provider hangs) counts as failed, with its backoff from then: the next caller backs off
    /// instead of starting a fetch of its own, and fetches again once the backoff has passed.
    /// One whose caller gives up at once records nothing, so the next caller fetches.
    #[tokio::test]
    async fn a_fetch_abandoned_after_waiting_backs_off_and_one_abandoned_at_once_does_not() {
        use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
        let clock = AtomicI64::new(100);
        let now = || clock.load(Ordering::SeqCst);
        let fetched = AtomicBool::new(false);
        let fetch = || async {
            fetched.store(true, Ordering::SeqCst);
            Ok::<u32, String>(1)
        };
        let quick = Slot::<u32>::default();
        abandon(&quick, &clock, 0).await;
        assert!(matches!(
            quick.refresh(0, now, None, fetch).await,
            Refresh::Fresh(_)
        ));
        assert!(fetched.swap(false, Ordering::SeqCst));

        let hung = Slot::<u32>::default();
        abandon(&hung, &clock, 10).await;
        let next = hung.refresh(0, now, None, fetch).await;
        assert!(matches!(next, Refresh::Failed { retry_after } if retry_after >= 1));
        assert!(
            !fetched.load(Ordering::SeqCst),
            "fetched during the backoff"
        );
        clock.fetch_add(MAX_BACKOFF_SECS, Ordering::SeqCst);
        assert!(matches!(
            hung.refresh(0, now, None, fetch).await,
            Refresh::Fresh(_)
        ));
    }

    /// The clock set back by an hour: neither a backoff nor a forced refresh's cooldown lasts
    /// as long as the step back.
    #[tokio::test]
    async fn a_clock_set_back_ends_backoff_and_cooldown() {
        let ok = || async { Ok::<u32, String>(1) };
        let slot = Slot::<u32>::default();
        let failed = slot
            .refresh(0, || 1000, None, || async { Err::<u32, _>("down") })
            .await;
        assert!(matches!(failed, Refresh::Failed { .. }));
        assert!(matches!(
            slot.refresh(0, || 1000 - 3600, None, ok).await,
            Refresh::Fresh(_)
        ));
        let forced = Slot::<u32>::default();
        assert!(matches!(
            forced.refresh(0, || 1000, Some(15), ok).await,
            Refresh::Fresh(_)
        ));
        assert!(matches!(
            forced.refresh(1, || 1005, Some(15), ok).await,
            Refresh::Cooldown(_)
        ));
        assert!(matches!(
            forced.refresh(1, || 1000 - 3600, Some(15), ok).await,
            Refresh::Fresh(_)
        ));
    }

    #[tokio::test]
    async fn forced_refreshes_wait_for_the_cooldown_but_scheduled_ones_do_not() {
        let slot = Slot::<u32>::default();
        let ok = || async { Ok::<u32, String>(1) };
        assert!(matches!(
            slot.refresh(0, || 100, Some(15), ok).await,
            Refresh::Fresh(_)
        ));
        assert!(matches!(
            slot.refresh(1, || 110, Some(15), ok).await,
            Refresh::Cooldown(_)
        ));
        assert!(matches!(
            slot.refresh(1, || 110, None, ok).await,
            Refresh::Fresh(_)
        ));
        assert!(matches!(
            slot.refresh(2, || 115, Some(15), ok).await,
            Refresh::Fresh(_)
        ));
    }
}
