//! Noticing other writers: at most every `interval`, one read asks the store's
//! [`ChangeSignal`] whether anyone else wrote since the last look, and flushes the caches if
//! so.
//!
//! The bound: a read serves from the cache only while the last completed check *started*
//! less than `interval` ago. A check sees every write committed before it started, so a
//! foreign write that committed more than `interval` before a read began has been seen and
//! flushed before that read looks at the cache. Reads that find the interval passed wait
//! for the one check in progress rather than serving from the cache meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memory_core::ChangeSignal;

/// `verified_at` before the first check.
const NEVER: u64 = u64::MAX;

pub(crate) struct Freshness {
    signal: Arc<dyn ChangeSignal>,
    interval: u64,
    base: Instant,
    /// Nanoseconds after `base` at which the last completed check started.
    verified_at: AtomicU64,
    /// The store position seen by the last check; the lock makes one check run at a time.
    position: tokio::sync::Mutex<Option<u64>>,
    flushes: AtomicU64,
}

impl Freshness {
    pub(crate) fn new(signal: Arc<dyn ChangeSignal>, interval: Duration) -> Self {
        Freshness {
            signal,
            interval: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            base: Instant::now(),
            verified_at: AtomicU64::new(NEVER),
            position: tokio::sync::Mutex::new(None),
            flushes: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn recent(&self, now: u64) -> bool {
        let verified = self.verified_at.load(Ordering::Acquire);
        verified != NEVER && now.saturating_sub(verified) < self.interval
    }

    /// Flushes with `flush` if another writer changed the store since the last check and
    /// the interval has passed. When the signal cannot be read, flushes too (the read then
    /// goes to the store, which reports its own error).
    pub(crate) async fn ensure(&self, flush: impl FnOnce()) {
        let now = self.now();
        if self.recent(now) {
            return;
        }
        let mut position = self.position.lock().await;
        if self.recent(now) {
            return;
        }
        let started = self.now();
        match self.signal.change_position().await {
            Ok(current) => {
                let foreign = match *position {
                    Some(last) => self.signal.written_elsewhere(last, current),
                    // Nothing to compare with: what was cached before is of unknown age.
                    None => true,
                };
                if foreign {
                    flush();
                    self.flushes.fetch_add(1, Ordering::Relaxed);
                }
                *position = Some(current);
                self.verified_at.store(started, Ordering::Release);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change signal; flushing the cache");
                flush();
                self.flushes.fetch_add(1, Ordering::Relaxed);
                *position = None;
            }
        }
    }

    /// Flushes done because of other writers (or an unreadable signal).
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}
