//! One shard's policy: an admission window in front of a main region, both CLOCK queues,
//! with TinyLFU admission between them, a window share tuned by hill climbing, lazy expiry
//! and an amortized sweep.
//!
//! New entries enter the window. While the window is over its share, its CLOCK victim
//! moves to the main region; when the shard is over its bounds, that candidate duels the
//! main region's CLOCK victim by estimated frequency and the less frequent one leaves (one
//! scan of cold keys cannot flush the hot set). Every sample period the window share moves
//! a step in the direction that last improved the shard's hit ratio (recency-heavy
//! workloads grow it, frequency-heavy ones shrink it).
//!
//! Entries live in one lock-free index shared by all shards; reads find them there without
//! any lock and only set per-entry atomics (reference count, hit count, last access), and
//! only when the value changes. Each shard's policy state sits behind a mutex that writers
//! take, and every index change for a shard's keys happens under that shard's mutex, so
//! the queues and the index agree.
//!
//! Queues hold `(key, stamp)`; an entry removed out of order leaves a tombstone that is
//! skipped when reached and compacted away once tombstones outnumber live entries.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::sketch::FrequencySketch;
use crate::stats::{Counters, EvictionReason, Stripes};

/// What a key maps to: a value, or a remembered "not found".
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Slot<V> {
    Present(V),
    Absent,
}

const WINDOW: u8 = 0;
const MAIN: u8 = 1;

const MAX_REFERENCE: u8 = 3;
/// Last-access times are recorded to this precision (1 ms), in nanoseconds.
const ACCESS_GRANULARITY: u64 = 1_000_000;
/// Entries looked at for expiry by every write.
const SWEEP_PER_WRITE: usize = 4;

/// The lock-free index of every entry.
pub(crate) type Index<K, V> = papaya::HashMap<K, Entry<V>, foldhash::fast::FixedState>;
/// The index, pinned for the current operation.
pub(crate) type Pinned<'a, K, V> =
    papaya::HashMapRef<'a, K, Entry<V>, foldhash::fast::FixedState, papaya::LocalGuard<'a>>;

/// Fields a read touches come first (`repr(C)` keeps the order), right after the index's
/// key, so that a read usually touches one cache line; the entry carries no hash, which
/// keeps it and the key within 64 bytes.
#[repr(C)]
pub(crate) struct Entry<V> {
    slot: Slot<V>,
    hits: AtomicU32,
    reference: AtomicU8,
    /// `WINDOW` or `MAIN`; written only under the owning shard's mutex.
    region: AtomicU8,
    last_access: AtomicU64,
    inserted_at: u64,
    weight: u64,
    stamp: u64,
}

impl<V> Entry<V> {
    fn region(&self) -> u8 {
        self.region.load(Ordering::Relaxed)
    }
}

/// Expiry settings in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expiry {
    pub(crate) idle_min: Option<u64>,
    /// Hits beyond which the idle allowance no longer grows (so hot entries stop writing).
    pub(crate) hits_cap: u32,
    pub(crate) idle_max: u64,
    pub(crate) max_age: Option<u64>,
    pub(crate) negative_ttl: Option<u64>,
}

impl Expiry {
    /// Whether any expiry rule needs the time.
    pub(crate) fn uses_time(&self) -> bool {
        self.idle_min.is_some() || self.max_age.is_some() || self.negative_ttl.is_some()
    }

    /// Why `entry` has expired at `now`, if it has.
    fn check<V>(&self, entry: &Entry<V>, now: u64) -> Option<EvictionReason> {
        let age = now.saturating_sub(entry.inserted_at);
        if matches!(entry.slot, Slot::Absent) && self.negative_ttl.is_none_or(|ttl| age >= ttl) {
            return Some(EvictionReason::Age);
        }
        if self.max_age.is_some_and(|max| age >= max) {
            return Some(EvictionReason::Age);
        }
        if let Some(min) = self.idle_min {
            let hits = entry.hits.load(Ordering::Relaxed).min(40);
            let allowed = min.saturating_mul(1u64 << hits).min(self.idle_max);
            let idle = now.saturating_sub(entry.last_access.load(Ordering::Relaxed));
            if idle >= allowed {
                return Some(EvictionReason::Idle);
            }
        }
        None
    }
}

/// The answer of a read.
pub(crate) enum Found<V> {
    Hit(Slot<V>),
    Expired,
    Missing,
}

/// Reads `key` without any lock: a live entry records the access.
pub(crate) fn read<K: Hash + Eq, V: Clone>(
    index: &Pinned<'_, K, V>,
    key: &K,
    now: u64,
    expiry: &Expiry,
) -> Found<V> {
    let Some(entry) = index.get(key) else {
        return Found::Missing;
    };
    if expiry.check(entry, now).is_some() {
        return Found::Expired;
    }
    // Each store is skipped when it would change nothing: a hot entry read by several
    // cores then stays in every core's cache instead of bouncing between them.
    let hits = entry.hits.load(Ordering::Relaxed);
    if hits < expiry.hits_cap {
        entry.hits.store(hits + 1, Ordering::Relaxed);
    }
    let reference = entry.reference.load(Ordering::Relaxed);
    if reference < MAX_REFERENCE {
        entry.reference.store(reference + 1, Ordering::Relaxed);
    }
    // A coarser last access can only make an entry expire earlier, never later.
    if expiry.idle_min.is_some()
        && now.saturating_sub(entry.last_access.load(Ordering::Relaxed)) >= ACCESS_GRANULARITY
    {
        entry.last_access.store(now, Ordering::Relaxed);
    }
    Found::Hit(entry.slot.clone())
}

/// Capacity of one shard.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_entries: usize,
    pub(crate) max_weight: u64,
    /// The window's starting share of the shard, as a fraction.
    pub(crate) window_share: f64,
    /// Shards of the whole cache: the climber samples cache-wide hit counters, so its
    /// period is measured against the whole cache's entries (this shard's times this).
    pub(crate) shards: usize,
}

const MIN_WINDOW_SHARE: f64 = 0.01;
const MAX_WINDOW_SHARE: f64 = 0.8;
const CLIMB_STEP: f64 = 0.0625;
const CLIMB_DECAY: f64 = 0.98;
/// A hit-ratio change this large means the workload changed: climb with full steps again.
const CLIMB_RESTART: f64 = 0.05;

/// Hill climbing of the window share on the cache's hit ratio.
struct Climber {
    share: f64,
    step: f64,
    previous_ratio: Option<f64>,
    hits_seen: u64,
    lookups_seen: u64,
}

impl Climber {
    fn new(share: f64) -> Self {
        Climber {
            share,
            step: CLIMB_STEP,
            previous_ratio: None,
            hits_seen: 0,
            lookups_seen: 0,
        }
    }

    /// Moves the share after each sample period of lookups: ten per entry the cache holds
    /// now. Held entries, not the entry bound: a cache bounded by bytes may hold far fewer
    /// entries than its entry bound, and would then climb too slowly to adapt.
    fn observe(&mut self, hits: u64, lookups: u64, entries: u64) {
        let period = (entries * 10).max(5_000);
        if lookups.saturating_sub(self.lookups_seen) < period {
            return;
        }
        let ratio = hits.saturating_sub(self.hits_seen) as f64
            / lookups.saturating_sub(self.lookups_seen) as f64;
        self.hits_seen = hits;
        self.lookups_seen = lookups;
        if let Some(previous) = self.previous_ratio {
            let change = ratio - previous;
            if change < 0.0 {
                self.step = -self.step;
            }
            self.step = if change.abs() >= CLIMB_RESTART {
                CLIMB_STEP.copysign(self.step)
            } else {
                self.step * CLIMB_DECAY
            };
        }
        self.previous_ratio = Some(ratio);
        self.share = (self.share + self.step).clamp(MIN_WINDOW_SHARE, MAX_WINDOW_SHARE);
    }
}

/// One shard's policy state (behind the shard's mutex).
pub(crate) struct Shard<K> {
    window: VecDeque<(K, u64)>,
    main: VecDeque<(K, u64)>,
    window_weight: u64,
    main_weight: u64,
    window_len: usize,
    len: usize,
    next_stamp: u64,
    limits: Limits,
    climber: Climber,
    writes_since_climb: u32,
    /// Whether the shard has been at its bounds: before that the window share decides
    /// nothing, and hit-ratio changes are the warm-up's, so the climber waits.
    full: bool,
}

/// Writes between two looks of the climber at the cache's hit counters.
const CLIMB_CHECK_EVERY: u32 = 64;

/// What a writer needs besides the shard: the pinned index and the shared machinery.
pub(crate) struct Ctx<'a, 'g, K, V> {
    pub(crate) index: &'a Pinned<'g, K, V>,
    pub(crate) hasher: &'a foldhash::fast::FixedState,
    pub(crate) sketch: &'a FrequencySketch,
    pub(crate) counters: &'a Counters,
    pub(crate) stats: &'a Stripes,
    pub(crate) expiry: &'a Expiry,
    pub(crate) now: u64,
}

impl<K: Hash + Eq + Clone + Send + Sync> Shard<K> {
    pub(crate) fn new(limits: Limits) -> Self {
        Shard {
            window: VecDeque::new(),
            main: VecDeque::new(),
            window_weight: 0,
            main_weight: 0,
            window_len: 0,
            len: 0,
            next_stamp: 0,
            climber: Climber::new(limits.window_share),
            limits,
            writes_since_climb: 0,
            full: false,
        }
    }
}

impl<K: Hash + Eq + Clone + Send + Sync> Shard<K> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn weight(&self) -> u64 {
        self.window_weight + self.main_weight
    }

    /// Removes `key` if it has expired (after a read found it expired).
    pub(crate) fn remove_if_expired<V: Clone + Send + Sync>(
        &mut self,
        key: &K,
        ctx: &Ctx<'_, '_, K, V>,
    ) {
        let reason = ctx
            .index
            .get(key)
            .and_then(|e| ctx.expiry.check(e, ctx.now));
        if let Some(reason) = reason {
            self.remove(key, reason, ctx);
        }
    }

    /// Removes `key` if its value fails `valid`; true if removed.
    pub(crate) fn remove_unless<V: Clone + Send + Sync>(
        &mut self,
        key: &K,
        valid: impl Fn(&V) -> bool,
        ctx: &Ctx<'_, '_, K, V>,
    ) -> bool {
        let invalid = match ctx.index.get(key) {
            Some(Entry {
                slot: Slot::Present(v),
                ..
            }) => !valid(v),
            _ => false,
        };
        if invalid {
            self.remove(key, EvictionReason::Invalidated, ctx);
        }
        invalid
    }

    /// Stores `slot` under `key`. Returns false if the entry alone exceeds the shard's
    /// weight bound (nothing is stored then).
    pub(crate) fn insert<V: Clone + Send + Sync>(
        &mut self,
        key: K,
        slot: Slot<V>,
        weight: u64,
        ctx: &Ctx<'_, '_, K, V>,
    ) -> bool {
        // Only reads feed the frequency sketch: a read-through miss followed by this insert
        // is one access, and must not look like two.
        if weight > self.limits.max_weight {
            self.remove(&key, EvictionReason::Invalidated, ctx);
            Counters::bump(&ctx.counters.admissions_rejected);
            return false;
        }
        Counters::bump(&ctx.counters.inserts);
        let now = ctx.now;
        let previous = ctx.index.get(&key).map(|e| {
            (
                e.stamp,
                e.region(),
                e.weight,
                e.reference.load(Ordering::Relaxed),
            )
        });
        let (stamp, region, reference) = match previous {
            // Replace in place: the entry keeps its queue position, region and CLOCK
            // reference (the key is as popular as before, and readers then find nothing to
            // update). Its idle allowance starts afresh with the new value.
            Some((stamp, region, old, reference)) => {
                if region == WINDOW {
                    self.window_weight = self.window_weight - old + weight;
                } else {
                    self.main_weight = self.main_weight - old + weight;
                }
                (stamp, region, reference)
            }
            None => {
                let stamp = self.next_stamp;
                self.next_stamp += 1;
                self.window.push_back((key.clone(), stamp));
                self.window_weight += weight;
                self.window_len += 1;
                self.len += 1;
                (stamp, WINDOW, 0)
            }
        };
        ctx.index.insert(
            key,
            Entry {
                slot,
                weight,
                stamp,
                inserted_at: now,
                region: AtomicU8::new(region),
                last_access: AtomicU64::new(now),
                hits: AtomicU32::new(0),
                reference: AtomicU8::new(reference),
            },
        );
        self.sweep(ctx);
        self.writes_since_climb += 1;
        if self.writes_since_climb >= CLIMB_CHECK_EVERY && self.full {
            self.writes_since_climb = 0;
            let (hits, lookups) = ctx.stats.hits_and_lookups();
            let entries = (self.len * self.limits.shards) as u64;
            self.climber.observe(hits, lookups, entries);
            ctx.sketch.sample_for(self.len);
        }
        self.enforce(ctx);
        self.compact(ctx.index);
        true
    }

    /// Removes `key` for `reason`; true if it was present.
    pub(crate) fn remove<V: Clone + Send + Sync>(
        &mut self,
        key: &K,
        reason: EvictionReason,
        ctx: &Ctx<'_, '_, K, V>,
    ) -> bool {
        let Some(entry) = ctx.index.remove(key) else {
            return false;
        };
        if entry.region() == WINDOW {
            self.window_weight -= entry.weight;
            self.window_len -= 1;
        } else {
            self.main_weight -= entry.weight;
        }
        self.len -= 1;
        ctx.counters.evicted(reason);
        self.compact(ctx.index);
        true
    }

    /// Removes every entry of this shard, counting them as invalidated.
    pub(crate) fn clear<V: Clone + Send + Sync>(&mut self, ctx: &Ctx<'_, '_, K, V>) {
        let items: Vec<(K, u64)> = self.window.drain(..).chain(self.main.drain(..)).collect();
        for (key, stamp) in items {
            if ctx.index.get(&key).is_some_and(|e| e.stamp == stamp)
                && ctx.index.remove(&key).is_some()
            {
                ctx.counters.evicted(EvictionReason::Invalidated);
            }
        }
        self.window_weight = 0;
        self.main_weight = 0;
        self.window_len = 0;
        self.len = 0;
    }

    /// Removes every expired entry of this shard; returns how many.
    pub(crate) fn sweep_all<V: Clone + Send + Sync>(&mut self, ctx: &Ctx<'_, '_, K, V>) -> usize {
        let expired: Vec<(K, EvictionReason)> = self
            .window
            .iter()
            .chain(self.main.iter())
            .filter_map(|item| {
                let entry = ctx.index.get(&item.0).filter(|e| e.stamp == item.1)?;
                ctx.expiry
                    .check(entry, ctx.now)
                    .map(|r| (item.0.clone(), r))
            })
            .collect();
        for (key, reason) in &expired {
            self.remove(key, *reason, ctx);
        }
        expired.len()
    }

    /// The live entry a queue item refers to, if it is still in `region`.
    fn live<'e, V>(
        index: &'e Pinned<'_, K, V>,
        item: &(K, u64),
        region: u8,
    ) -> Option<&'e Entry<V>> {
        index
            .get(&item.0)
            .filter(|e| e.stamp == item.1 && e.region() == region)
    }

    fn queue(&self, region: u8) -> &VecDeque<(K, u64)> {
        if region == WINDOW {
            &self.window
        } else {
            &self.main
        }
    }

    fn pop(&mut self, region: u8) -> Option<(K, u64)> {
        if region == WINDOW {
            self.window.pop_front()
        } else {
            self.main.pop_front()
        }
    }

    /// Looks at a few of the oldest entries of each queue and drops the expired ones.
    fn sweep<V: Clone + Send + Sync>(&mut self, ctx: &Ctx<'_, '_, K, V>) {
        if !ctx.expiry.uses_time() {
            return;
        }
        for region in [WINDOW, MAIN] {
            for _ in 0..SWEEP_PER_WRITE {
                let Some(item) = self.queue(region).front() else {
                    break;
                };
                let verdict =
                    Self::live(ctx.index, item, region).map(|e| ctx.expiry.check(e, ctx.now));
                match verdict {
                    Some(Some(reason)) => {
                        // Pop before removing: removal may compact the queue.
                        if let Some((key, _)) = self.pop(region) {
                            self.remove(&key, reason, ctx);
                        }
                    }
                    Some(None) => break,
                    None => {
                        self.pop(region);
                    }
                }
            }
        }
    }

    fn over_bounds(&mut self) -> bool {
        let over = self.len > self.limits.max_entries || self.weight() > self.limits.max_weight;
        self.full |= over;
        over
    }

    fn window_over_share(&self) -> bool {
        let share = self.climber.share;
        self.window_len as f64 > self.limits.max_entries as f64 * share
            || self.window_weight as f64 > self.limits.max_weight as f64 * share
    }

    /// Restores the window share and the shard bounds.
    fn enforce<V: Clone + Send + Sync>(&mut self, ctx: &Ctx<'_, '_, K, V>) {
        loop {
            if self.window_over_share() {
                let Some(candidate) = self.clock_victim(WINDOW, ctx.index, ctx.hasher) else {
                    break;
                };
                if !self.over_bounds() {
                    self.promote(candidate, ctx.index);
                    continue;
                }
                match self.clock_victim(MAIN, ctx.index, ctx.hasher) {
                    Some(victim)
                        if ctx.sketch.estimate(victim.1) >= ctx.sketch.estimate(candidate.1) =>
                    {
                        Counters::bump(&ctx.counters.admissions_rejected);
                        self.window.pop_front();
                        self.remove(&candidate.0, EvictionReason::Capacity, ctx);
                    }
                    Some(victim) => {
                        self.main.pop_front();
                        self.remove(&victim.0, EvictionReason::Capacity, ctx);
                        self.promote(candidate, ctx.index);
                    }
                    None => {
                        // Nothing in the main region to duel: the window alone is too big.
                        self.window.pop_front();
                        self.remove(&candidate.0, EvictionReason::Capacity, ctx);
                    }
                }
            } else if self.over_bounds() {
                let region = if self.len > self.window_len {
                    MAIN
                } else {
                    WINDOW
                };
                let Some(victim) = self.clock_victim(region, ctx.index, ctx.hasher) else {
                    break;
                };
                self.pop(region);
                self.remove(&victim.0, EvictionReason::Capacity, ctx);
            } else {
                break;
            }
        }
    }

    /// Moves the window's front entry (the CLOCK victim just found) into the main region.
    fn promote<V>(&mut self, candidate: (K, u64), index: &Pinned<'_, K, V>) {
        let Some(item) = self.window.pop_front() else {
            return;
        };
        if let Some(entry) = index.get(&candidate.0) {
            entry.region.store(MAIN, Ordering::Relaxed);
            self.window_weight -= entry.weight;
            self.window_len -= 1;
            self.main_weight += entry.weight;
        }
        self.main.push_back(item);
    }

    /// Turns `region`'s CLOCK hand until its oldest entry has no reference left, and returns
    /// that entry's key and hash (it stays at the front). Each turn spends a reference, so
    /// the work is amortized O(1).
    fn clock_victim<V>(
        &mut self,
        region: u8,
        index: &Pinned<'_, K, V>,
        hasher: &foldhash::fast::FixedState,
    ) -> Option<(K, u64)> {
        loop {
            let item = self.queue(region).front()?;
            let Some(entry) = Self::live(index, item, region) else {
                self.pop(region);
                continue;
            };
            let reference = entry.reference.load(Ordering::Relaxed);
            if reference == 0 {
                return Some((item.0.clone(), hasher.hash_one(&item.0)));
            }
            // A window entry gets one second chance; a main entry one per reference.
            let left = if region == WINDOW { 0 } else { reference - 1 };
            entry.reference.store(left, Ordering::Relaxed);
            if let Some(item) = self.pop(region) {
                if region == WINDOW {
                    self.window.push_back(item);
                } else {
                    self.main.push_back(item);
                }
            }
        }
    }

    /// Drops tombstones once they outnumber live entries, keeping queue memory O(entries).
    fn compact<V>(&mut self, index: &Pinned<'_, K, V>) {
        if self.window.len() + self.main.len() <= 2 * self.len + 64 {
            return;
        }
        self.window
            .retain(|item| Self::live(index, item, WINDOW).is_some());
        self.main
            .retain(|item| Self::live(index, item, MAIN).is_some());
    }
}
