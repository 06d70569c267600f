//! Noticing other writers: a store's [`ChangeSignal`] (a position every committed write
//! advances) and [`OwnWrites`], the record a cache keeps of the positions its *own* writes
//! produced, so that it can tell them from everybody else's.
//!
//! "Own" means written through that cache, not through the same store handle: a write made
//! through the bare store, through a clone of it or through a second cache on it is someone
//! else's to every cache that did not make it. The link between a cache and the store it
//! wraps is a task-local scope: the cache runs each write inside [`OwnWrites::recording`],
//! and the store, once the write has committed, calls [`report_write`] with the position the
//! write produced. A store that cannot say (or a layer in between that moves the write onto
//! another task) reports nothing, and the cache then takes the write for a foreign one:
//! a needless flush, never a stale read.
//!
//! ```
//! use std::sync::Arc;
//! use memory_core::change::{OwnWrites, report_write};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let own = Arc::new(OwnWrites::new());
//! let write = own.begin();
//! // A store's write, committed at position 7, reports it from inside the scope:
//! own.recording(async { report_write(7) }).await;
//! drop(write);
//! report_write(8); // outside any scope: someone else's
//! assert!(!own.written_elsewhere(6, 7));
//! assert!(own.written_elsewhere(6, 8));
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::error::Result;

/// A cheap signal that a store changed: a position that every committed write transaction
/// of any writer advances (other handles and caches in this process, other processes on one
/// file, other clients of one server).
///
/// A cache reads [`change_position`](Self::change_position) now and then; positions it
/// cannot attribute to its own writes ([`OwnWrites`]) are other writers'. A store that
/// implements it reports each of its writes' positions with [`report_write`].
///
/// ```
/// use memory_core::ChangeSignal;
/// use memory_core::change::OwnWrites;
///
/// // A cache remembers the last position it checked, and flushes when another writer moved it.
/// async fn must_flush(
///     signal: &dyn ChangeSignal,
///     own: &OwnWrites,
///     last: &mut u64,
/// ) -> memory_core::Result<bool> {
///     let now = signal.change_position().await?;
///     own.settle().await; // own writes that may have committed before the read
///     let foreign = own.written_elsewhere(*last, now);
///     *last = now;
///     Ok(foreign)
/// }
/// ```
#[async_trait]
pub trait ChangeSignal: Send + Sync {
    /// The store's current write position, read from the store itself: every write that
    /// committed before this call started has a position at or below the answer.
    async fn change_position(&self) -> Result<u64>;

    /// What the writes after `position` changed, from the store's change feed
    /// ([`crate::feed`]), with the store's position as of the answer (read as
    /// [`change_position`](Self::change_position) reads it). A store without a feed, or
    /// whose feed no longer reaches back to `position`, answers
    /// [`ChangesSince::Unknown`](crate::feed::ChangesSince::Unknown).
    async fn changes_since(&self, position: u64) -> Result<crate::feed::ChangesSince>;

    /// Whether every write of this store that [`report_write`]s (or [`Recorder::record`]s) a
    /// position has done so before any [`change_position`](Self::change_position) can answer
    /// that position or a later one. A cache can then compare positions as soon as it read
    /// one, without first waiting for its own writes in flight
    /// ([`OwnWrites::settle`]); `false` makes it wait.
    fn reports_before_visible(&self) -> bool;
}

/// Where a write reports its position from another thread than its caller's task: taken
/// with [`recorder`] inside the write's [`OwnWrites::recording`] scope.
#[derive(Clone)]
pub struct Recorder(Arc<OwnWrites>);

impl Recorder {
    /// Records `position` as the own write of the cache the recorder was taken for.
    pub fn record(&self, position: u64) {
        self.0.record(position);
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Recorder").finish_non_exhaustive()
    }
}

/// The recorder of the cache whose [`OwnWrites::recording`] scope this runs in, if any: for
/// a store that commits on a thread of its own and reports from there.
///
/// ```
/// use std::sync::Arc;
/// use memory_core::change::{OwnWrites, recorder};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let own = Arc::new(OwnWrites::new());
/// assert!(recorder().is_none());
/// let taken = own.recording(async { recorder() }).await.unwrap();
/// std::thread::spawn(move || taken.record(3)).join().unwrap();
/// assert!(!own.written_elsewhere(2, 3));
/// # });
/// ```
pub fn recorder() -> Option<Recorder> {
    RECORDING.try_with(|own| Recorder(Arc::clone(own))).ok()
}

tokio::task_local! {
    static RECORDING: Arc<OwnWrites>;
}

/// Called by a store after a write committed at `position`: records it as the own write of
/// the cache whose [`OwnWrites::recording`] scope the write runs in (outside any scope it
/// does nothing: the write is nobody's own).
pub fn report_write(position: u64) {
    let _ = RECORDING.try_with(|own| own.record(position));
}

/// Own positions remembered as ranges; beyond this many separate ranges the oldest are
/// forgotten, and a question reaching below them is answered "someone else may have written".
const REMEMBERED_RANGES: usize = 65_536;

/// The positions one cache's own writes produced, and which of its writes are in flight.
///
/// Memory stays small: positions are kept as ranges (consecutive own writes are one range),
/// and a cache [`forget_through`](Self::forget_through)s what its last check covered.
#[derive(Default)]
pub struct OwnWrites {
    remembered: Mutex<Remembered>,
    /// Sequence numbers of the writes begun and not yet finished.
    in_flight: Mutex<BTreeSet<u64>>,
    next_write: AtomicU64,
    finished: tokio::sync::Notify,
}

#[derive(Default)]
struct Remembered {
    /// Own positions: range start → range end (inclusive).
    ranges: BTreeMap<u64, u64>,
    /// Every own position at or below this has been forgotten.
    forgotten_through: u64,
}

impl OwnWrites {
    /// An empty record.
    pub fn new() -> Self {
        OwnWrites::default()
    }

    /// Marks one write as in flight until the returned guard is dropped. Take it before the
    /// write can commit and drop it after the write returned (its position reported): a
    /// check that read the store's position meanwhile [`settle`](Self::settle)s on it.
    pub fn begin(&self) -> InFlightWrite<'_> {
        let seq = self.next_write.fetch_add(1, Ordering::SeqCst);
        self.in_flight.lock().insert(seq);
        InFlightWrite { own: self, seq }
    }

    /// Runs `write` so that the positions the store reports from inside it with
    /// [`report_write`] are recorded here.
    pub async fn recording<F: Future>(self: &Arc<Self>, write: F) -> F::Output {
        RECORDING.scope(Arc::clone(self), write).await
    }

    /// Waits until every write begun before this call has finished: after a check read the
    /// store's position, each own write that could have committed before that read has then
    /// reported its position (or finished without one, and counts as foreign).
    pub async fn settle(&self) {
        let horizon = self.next_write.load(Ordering::SeqCst);
        loop {
            let finished = self.finished.notified();
            tokio::pin!(finished);
            // Registered before the look, so a write finishing in between still wakes us.
            finished.as_mut().enable();
            let oldest = self.in_flight.lock().first().copied();
            if oldest.is_none_or(|seq| seq >= horizon) {
                return;
            }
            finished.await;
        }
    }

    fn record(&self, position: u64) {
        let mut inner = self.remembered.lock();
        if position <= inner.forgotten_through {
            return;
        }
        let below = inner
            .ranges
            .range(..=position)
            .next_back()
            .map(|(s, e)| (*s, *e));
        if below.is_some_and(|(_, end)| end >= position) {
            return;
        }
        let mut start = position;
        let mut end = position;
        if let Some((s, e)) = below
            && e.checked_add(1) == Some(position)
        {
            start = s;
        }
        if let Some(next_end) = position
            .checked_add(1)
            .and_then(|next| inner.ranges.remove(&next))
        {
            end = next_end;
        }
        inner.ranges.insert(start, end);
        if inner.ranges.len() > REMEMBERED_RANGES
            && let Some((_, oldest_end)) = inner.ranges.pop_first()
        {
            inner.forgotten_through = oldest_end;
        }
    }

    /// Whether a position in `(from, to]` is not one of this cache's own writes (true when
    /// unsure: it remembers a bounded number of ranges).
    pub fn written_elsewhere(&self, from: u64, to: u64) -> bool {
        if to <= from {
            return false;
        }
        let inner = self.remembered.lock();
        if from < inner.forgotten_through {
            return true;
        }
        let first = from + 1; // `to > from`, so no overflow
        let mut own = 0u64;
        // The range starting at or below `first` (it may reach into the interval), then the
        // ranges starting inside it.
        let below = inner.ranges.range(..=first).next_back();
        let inside = inner.ranges.range((
            std::ops::Bound::Excluded(first),
            std::ops::Bound::Included(to),
        ));
        for (start, end) in below.into_iter().chain(inside) {
            let (lo, hi) = ((*start).max(first), (*end).min(to));
            if lo <= hi {
                own += hi - lo + 1;
            }
        }
        own < to - from
    }

    /// Forgets own positions at or below `position` (a check covered them).
    pub fn forget_through(&self, position: u64) {
        let mut inner = self.remembered.lock();
        while let Some((&start, &end)) = inner.ranges.first_key_value() {
            if start > position {
                break;
            }
            inner.ranges.remove(&start);
            if end > position {
                inner.ranges.insert(position.saturating_add(1), end);
                break;
            }
        }
    }
}

impl std::fmt::Debug for OwnWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnWrites")
            .field("ranges", &self.remembered.lock().ranges.len())
            .field("in_flight", &self.in_flight.lock().len())
            .finish()
    }
}

/// One write in flight (see [`OwnWrites::begin`]); finished when dropped, also when the
/// write's future is dropped half-way.
pub struct InFlightWrite<'a> {
    own: &'a OwnWrites,
    seq: u64,
}

impl Drop for InFlightWrite<'_> {
    fn drop(&mut self) {
        self.own.in_flight.lock().remove(&self.seq);
        self.own.finished.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(positions: &[u64]) -> OwnWrites {
        let own = OwnWrites::new();
        for p in positions {
            own.record(*p);
        }
        own
    }

    #[test]
    fn own_ranges_are_told_from_foreign_ones() {
        let own = recorded(&[3, 4]);
        assert!(!own.written_elsewhere(2, 4), "3 and 4 are ours");
        assert!(own.written_elsewhere(2, 5), "5 is not");
        assert!(own.written_elsewhere(1, 3), "2 is not");
        assert!(!own.written_elsewhere(4, 4), "nothing happened");
        assert!(!own.written_elsewhere(3, 4));
    }

    #[test]
    fn ranges_merge_in_any_order_and_repeat_harmlessly() {
        let own = recorded(&[5, 3, 4, 4, 10, 8, 9, 7]);
        assert_eq!(own.remembered.lock().ranges.len(), 2, "3..=5 and 7..=10");
        assert!(!own.written_elsewhere(2, 5));
        assert!(own.written_elsewhere(2, 7), "6 is not ours");
        assert!(!own.written_elsewhere(6, 10));
        assert!(!own.written_elsewhere(7, 9), "inside one range");
    }

    #[test]
    fn forgetting_keeps_what_is_above() {
        let own = recorded(&[1, 2, 3, 4, 5]);
        own.forget_through(3);
        assert!(!own.written_elsewhere(3, 5));
        assert!(
            own.written_elsewhere(2, 5),
            "3 was forgotten: not vouched for"
        );
    }

    #[test]
    fn too_many_ranges_forget_the_oldest() {
        let own = OwnWrites::new();
        for i in 0..=REMEMBERED_RANGES as u64 {
            own.record(10 + 2 * i); // never adjacent: one range each
        }
        assert!(own.written_elsewhere(9, 10), "forgotten: unsure, so yes");
        assert!(!own.written_elsewhere(13, 14));
    }

    #[tokio::test]
    async fn reports_outside_a_scope_and_from_other_caches_are_not_ours() {
        let a = Arc::new(OwnWrites::new());
        let b = Arc::new(OwnWrites::new());
        a.recording(async { report_write(1) }).await;
        b.recording(async { report_write(2) }).await;
        report_write(3);
        assert!(!a.written_elsewhere(0, 1));
        assert!(a.written_elsewhere(1, 2));
        assert!(b.written_elsewhere(0, 1));
        assert!(!b.written_elsewhere(1, 2));
        assert!(a.written_elsewhere(2, 3) && b.written_elsewhere(2, 3));
    }

    #[tokio::test]
    async fn settle_waits_for_writes_begun_before_it() {
        let own = Arc::new(OwnWrites::new());
        let write = own.begin();
        let settled = {
            let own = Arc::clone(&own);
            tokio::spawn(async move { own.settle().await })
        };
        tokio::task::yield_now().await;
        assert!(!settled.is_finished(), "the write is still in flight");
        // A write begun after the settle started is not waited for.
        let later = own.begin();
        drop(write);
        tokio::time::timeout(std::time::Duration::from_secs(5), settled)
            .await
            .expect("settled once the earlier write finished")
            .unwrap();
        drop(later);
    }
}
