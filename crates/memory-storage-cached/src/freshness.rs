//! Noticing other writers: at most every `interval`, one read asks the store's
//! [`ChangeSignal`] for its position and flushes the caches if a position since the last
//! look is not one of this cache's own writes ([`OwnWrites`]).
//!
//! The bound: a read serves from the cache only while the last completed check *started*
//! less than `interval` ago. A check sees every write committed before it started, so a
//! foreign write that committed more than `interval` before a read began has been seen and
//! flushed before that read looks at the cache. Reads that find the interval passed wait
//! for the one check in progress rather than serving from the cache meanwhile.
//!
//! Own writes: each runs inside [`OwnWrites::recording`] and is marked in flight from before
//! it can commit until its position is recorded. A check that read the position waits for
//! the own writes in flight at that moment ([`OwnWrites::settle`]), so an own write that
//! committed just before the read is never mistaken for a foreign one. The first write
//! takes the starting position, so that what it writes through is not flushed by the
//! first check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memory_core::ChangeSignal;
use memory_core::change::{InFlightWrite, OwnWrites};

/// `verified_at` before the first check.
const NEVER: u64 = u64::MAX;

pub(crate) struct Freshness {
    signal: Arc<dyn ChangeSignal>,
    own: Arc<OwnWrites>,
    interval: u64,
    base: Instant,
    /// Nanoseconds after `base` at which the last completed check started.
    verified_at: AtomicU64,
    /// Whether `state` holds a position (a fast path for writes).
    positioned: AtomicBool,
    /// The lock makes one check (or starting-position read) run at a time.
    state: tokio::sync::Mutex<State>,
    flushes: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The store position seen by the last check.
    position: Option<u64>,
    /// Something may have been cached since the position was lost (a check or a starting
    /// position failed): without a position to compare with, the next check flushes.
    unanchored: bool,
}

impl Freshness {
    pub(crate) fn new(signal: Arc<dyn ChangeSignal>, interval: Duration) -> Self {
        Freshness {
            signal,
            own: Arc::new(OwnWrites::new()),
            interval: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            base: Instant::now(),
            verified_at: AtomicU64::new(NEVER),
            positioned: AtomicBool::new(false),
            state: tokio::sync::Mutex::new(State::default()),
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
        let mut state = self.state.lock().await;
        if self.recent(now) {
            return;
        }
        let started = self.now();
        match self.signal.change_position().await {
            Ok(current) => {
                self.own.settle().await;
                let foreign = match state.position {
                    Some(last) => self.own.written_elsewhere(last, current),
                    // No position yet: nothing was cached unless a failure lost it.
                    None => state.unanchored,
                };
                if foreign {
                    flush();
                    self.flushes.fetch_add(1, Ordering::Relaxed);
                }
                self.own.forget_through(current);
                *state = State {
                    position: Some(current),
                    unanchored: false,
                };
                self.positioned.store(true, Ordering::Release);
                self.verified_at.store(started, Ordering::Release);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change signal; flushing the cache");
                flush();
                self.flushes.fetch_add(1, Ordering::Relaxed);
                self.lose_position(&mut state);
            }
        }
    }

    fn lose_position(&self, state: &mut State) {
        *state = State {
            position: None,
            unanchored: true,
        };
        self.positioned.store(false, Ordering::Release);
    }

    /// Before a write: takes the starting position if there is none yet (the write's own
    /// position will then be told from foreign ones), and marks the write in flight. Run
    /// the write inside [`recording`](Self::recording) and drop the guard after it.
    pub(crate) async fn before_write(&self) -> InFlightWrite<'_> {
        if !self.positioned.load(Ordering::Acquire) {
            let mut state = self.state.lock().await;
            if state.position.is_none() {
                match self.signal.change_position().await {
                    Ok(current) if !state.unanchored => {
                        state.position = Some(current);
                        self.positioned.store(true, Ordering::Release);
                    }
                    // A failure lost track: the next check flushes whatever is cached.
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the change signal before a write");
                        self.lose_position(&mut state);
                    }
                }
            }
        }
        self.own.begin()
    }

    /// Runs a write so that the position the store reports for it is recorded as own.
    pub(crate) async fn recording<F: Future>(&self, write: F) -> F::Output {
        self.own.recording(write).await
    }

    /// Flushes done because of other writers (or an unreadable signal).
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}
