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
//! Checks ahead of time: while reads keep coming, a task of the cache's own runs the next
//! check half an interval after the last one started, so that a read finds the last check
//! recent and never waits for one. Once a half interval passes without a read the task
//! ends; the next read then waits for a check as above (and starts the task again). If the
//! store stops answering, the task's check hangs (up to the store's own timeout): reads
//! keep serving from the cache until the interval since the last completed check has
//! passed, then wait for the check in progress like any read that finds it lapsed, and a
//! failed check flushes (the read then goes to the store, which reports its error).
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
use memory_core::feed::{Change, ChangesSince, FeedGap};
use memory_core::stats::ForeignWriteStats;
use tracing::Instrument;

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
    counts: Counts,
    /// A read found the cache fresh since the refresher's last check.
    read_since_check: AtomicBool,
    /// The refresher task is running.
    refreshing: AtomicBool,
}

/// What a cache does about another writer's change (implemented by the caching store).
pub(crate) trait Invalidate {
    /// Drops everything cached: the feed cannot say what changed.
    fn flush(&self);
    /// Drops what `change` makes stale.
    fn invalidate(&self, change: &Change);
}

/// Why a check flushed.
enum Flush {
    Gap(FeedGap),
    Failed,
}

#[derive(Default)]
struct Counts {
    writes: AtomicU64,
    invalidated: AtomicU64,
    no_feed: AtomicU64,
    feed_behind: AtomicU64,
    failed: AtomicU64,
    feed_lag: AtomicU64,
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
            counts: Counts::default(),
            read_since_check: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
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
    /// Returns whether the caller should start the refresher (see [`refresh`]).
    pub(crate) async fn ensure(&self, caches: &impl Invalidate) -> bool {
        let now = self.now();
        if self.recent(now) {
            // Written once per check, not per read: reads on many threads share the line.
            if !self.read_since_check.load(Ordering::Relaxed) {
                self.read_since_check.store(true, Ordering::Relaxed);
            }
            return false;
        }
        self.check(Some(now), caches)
            .instrument(tracing::trace_span!(target: "memory::phase", "change_check_wait"))
            .await;
        !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// When the refresher's next check is due: half an interval after the last check
    /// started (at once if there was none).
    fn next_due(&self) -> Instant {
        let verified = self.verified_at.load(Ordering::Acquire);
        if verified == NEVER {
            return Instant::now();
        }
        self.base + Duration::from_nanos(verified.saturating_add(self.interval / 2))
    }

    /// One check, the others waiting: for a read that found the last one older than the
    /// interval at `now` (it returns at once if another check completed meanwhile), or
    /// for the refresher (`None`: always checks).
    async fn check(&self, now: Option<u64>, caches: &impl Invalidate) {
        let mut state = self.state.lock().await;
        if now.is_some_and(|now| self.recent(now)) {
            return;
        }
        let started = self.now();
        let answer = match state.position {
            Some(last) => self.signal.changes_since(last).await,
            // Nothing to read changes from: the position is all the check needs.
            None => self
                .signal
                .change_position()
                .await
                .map(|position| ChangesSince::Unknown {
                    position,
                    gap: FeedGap::NotKept,
                }),
        };
        match answer {
            Ok(answer) => {
                if !self.signal.reports_before_visible() {
                    self.own.settle().await;
                }
                let current = answer.position();
                match state.position {
                    Some(last) => self.catch_up(last, answer, caches),
                    // No position yet: nothing was cached unless a failure lost it.
                    None if state.unanchored => self.flush(caches, Flush::Failed),
                    None => {}
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
                self.flush(caches, Flush::Failed);
                self.lose_position(&mut state);
            }
        }
    }

    /// Applies what other writers did between the last check's position and `answer`'s:
    /// each item their writes name is dropped, or everything when the feed cannot say.
    fn catch_up(&self, last: u64, answer: ChangesSince, caches: &impl Invalidate) {
        let current = answer.position();
        self.counts
            .feed_lag
            .store(current.saturating_sub(last), Ordering::Relaxed);
        if !self.own.written_elsewhere(last, current) {
            return;
        }
        let writes = match answer {
            ChangesSince::Unknown { gap, .. } => return self.flush(caches, Flush::Gap(gap)),
            ChangesSince::Complete { writes, .. } => writes,
        };
        let listed = writes
            .iter()
            .filter(|w| w.position > last && w.position <= current)
            .count() as u64;
        if listed != current - last {
            // A store must list every position; one that did not is not trusted.
            return self.flush(caches, Flush::Gap(FeedGap::Trimmed));
        }
        let (mut foreign, mut items) = (0, 0);
        for write in writes
            .iter()
            .filter(|w| w.position > last && w.position <= current)
        {
            if self
                .own
                .written_elsewhere(write.position - 1, write.position)
            {
                foreign += 1;
                for change in write.changes.iter() {
                    caches.invalidate(change);
                    items += 1;
                }
            }
        }
        self.counts.writes.fetch_add(foreign, Ordering::Relaxed);
        self.counts.invalidated.fetch_add(items, Ordering::Relaxed);
    }

    fn flush(&self, caches: &impl Invalidate, why: Flush) {
        caches.flush();
        let counter = match why {
            Flush::Gap(FeedGap::NotKept) => &self.counts.no_feed,
            Flush::Gap(FeedGap::Trimmed | FeedGap::TooMany) => &self.counts.feed_behind,
            Flush::Failed => &self.counts.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The refresher: one check every half interval while reads keep coming (see the module
    /// notes). `flush` drops the caches; the task ends when the cache is gone or idle.
    pub(crate) async fn refresh<T: Invalidate + Send + Sync + 'static>(
        owner: std::sync::Weak<T>,
        freshness: impl Fn(&T) -> Option<&Freshness> + Send,
    ) {
        loop {
            let due = match owner.upgrade() {
                Some(owner) => match freshness(&owner) {
                    Some(f) => f.next_due(),
                    None => return,
                },
                None => return,
            };
            // A runtime built without timers makes tokio panic here: caught once, the
            // refresher then stays marked running (never started again) and reads keep
            // checking for themselves.
            let Ok(sleep) = std::panic::catch_unwind(|| tokio::time::sleep_until(due.into()))
            else {
                tracing::warn!("the runtime has no timers: change checks run on reads only");
                return;
            };
            sleep.await;
            let Some(owner) = owner.upgrade() else { return };
            let Some(f) = freshness(&owner) else { return };
            if !f.read_since_check.swap(false, Ordering::AcqRel) {
                f.refreshing.store(false, Ordering::Release);
                return;
            }
            f.check(None, owner.as_ref()).await;
        }
    }

    /// There is no runtime to run the refresher on: reads keep checking for themselves.
    pub(crate) fn refresher_not_started(&self) {
        self.refreshing.store(false, Ordering::Release);
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

    /// What the checks counted.
    pub(crate) fn stats(&self) -> ForeignWriteStats {
        let c = &self.counts;
        ForeignWriteStats {
            writes: c.writes.load(Ordering::Relaxed),
            invalidated: c.invalidated.load(Ordering::Relaxed),
            flushes_no_feed: c.no_feed.load(Ordering::Relaxed),
            flushes_feed_behind: c.feed_behind.load(Ordering::Relaxed),
            flushes_failed: c.failed.load(Ordering::Relaxed),
            feed_lag: c.feed_lag.load(Ordering::Relaxed),
        }
    }
}
