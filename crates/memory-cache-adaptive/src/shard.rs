//! One shard's policy: an admission window in front of a main region, both CLOCK queues,
//! with TinyLFU admission between them, a window share tuned by hill climbing, lazy expiry
//! and an amortized sweep.
//!
//! New entries enter the window. While the window is over its share, its CLOCK victim
//! moves to the main region; when the shard is over its bounds, that candidate duels the
//! main region's CLOCK victim by estimated frequency and the less frequent one leaves (one
//! scan of cold keys cannot flush the hot set). Every sample period the window share moves
//! a step in the direction that last improved the shard's hit ratio (recency-heavy
//! workloads grow it, frequency-heavy ones shrink it). Reads only set per-entry atomics
//! (reference count, hit count, last access), so they run under the shard's read lock.
//!
//! Queues hold `(key, stamp)`; an entry removed out of order leaves a tombstone that is
//! skipped when reached and compacted away once tombstones outnumber live entries.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::sketch::FrequencySketch;
use crate::stats::{Counters, EvictionReason};

/// What a key maps to: a value, or a remembered "not found".
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Slot<V> {
    Present(V),
    Absent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    Window,
    Main,
}

const MAX_REFERENCE: u8 = 3;
/// Entries looked at for expiry by every write.
const SWEEP_PER_WRITE: usize = 4;

pub(crate) struct Entry<V> {
    slot: Slot<V>,
    hash: u64,
    weight: u64,
    stamp: u64,
    region: Region,
    inserted_at: u64,
    last_access: AtomicU64,
    hits: AtomicU32,
    reference: AtomicU8,
}

/// Expiry settings in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expiry {
    pub(crate) idle_min: Option<u64>,
    pub(crate) idle_max: u64,
    pub(crate) max_age: Option<u64>,
    pub(crate) negative_ttl: Option<u64>,
}

impl Expiry {
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
            let allowed = min.saturating_mul(1u64 << hits.min(40)).min(self.idle_max);
            let idle = now.saturating_sub(entry.last_access.load(Ordering::Relaxed));
            if idle >= allowed {
                return Some(EvictionReason::Idle);
            }
        }
        None
    }
}

/// Capacity of one shard.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_entries: usize,
    pub(crate) max_weight: u64,
    /// The window's starting share of the shard, as a fraction.
    pub(crate) window_share: f64,
}

const MIN_WINDOW_SHARE: f64 = 0.01;
const MAX_WINDOW_SHARE: f64 = 0.8;
const CLIMB_STEP: f64 = 0.0625;
const CLIMB_DECAY: f64 = 0.98;
/// A hit-ratio change this large means the workload changed: climb with full steps again.
const CLIMB_RESTART: f64 = 0.05;

/// Hill climbing of the window share on the shard's hit ratio.
struct Climber {
    share: f64,
    step: f64,
    previous_ratio: Option<f64>,
    hits_seen: u64,
    lookups_seen: u64,
    period: u64,
}

impl Climber {
    fn new(share: f64, max_entries: usize) -> Self {
        Climber {
            share,
            step: CLIMB_STEP,
            previous_ratio: None,
            hits_seen: 0,
            lookups_seen: 0,
            period: (max_entries as u64 * 10).max(5_000),
        }
    }

    /// Moves the share after each sample period of lookups.
    fn observe(&mut self, hits: u64, lookups: u64) {
        if lookups.saturating_sub(self.lookups_seen) < self.period {
            return;
        }
        let ratio = (hits - self.hits_seen) as f64 / (lookups - self.lookups_seen) as f64;
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

/// The answer of a read.
pub(crate) enum Found<V> {
    Hit(Slot<V>),
    Expired,
    Missing,
}

pub(crate) struct Shard<K, V> {
    map: HashMap<K, Entry<V>, foldhash::fast::FixedState>,
    window: VecDeque<(K, u64)>,
    main: VecDeque<(K, u64)>,
    window_weight: u64,
    main_weight: u64,
    window_len: usize,
    next_stamp: u64,
    limits: Limits,
    climber: Climber,
}

impl<K: Hash + Eq + Clone, V: Clone> Shard<K, V> {
    pub(crate) fn new(limits: Limits) -> Self {
        Shard {
            map: HashMap::with_hasher(foldhash::fast::FixedState::default()),
            window: VecDeque::new(),
            main: VecDeque::new(),
            window_weight: 0,
            main_weight: 0,
            window_len: 0,
            next_stamp: 0,
            climber: Climber::new(limits.window_share, limits.max_entries),
            limits,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.window_weight + self.main_weight
    }

    /// Reads `key` (under the read lock): a live entry records the access.
    pub(crate) fn read(&self, key: &K, now: u64, expiry: &Expiry) -> Found<V> {
        let Some(entry) = self.map.get(key) else {
            return Found::Missing;
        };
        if expiry.check(entry, now).is_some() {
            return Found::Expired;
        }
        let hits = entry.hits.load(Ordering::Relaxed);
        if hits < u32::MAX {
            entry.hits.store(hits + 1, Ordering::Relaxed);
        }
        let reference = entry.reference.load(Ordering::Relaxed);
        if reference < MAX_REFERENCE {
            entry.reference.store(reference + 1, Ordering::Relaxed);
        }
        entry.last_access.store(now, Ordering::Relaxed);
        Found::Hit(entry.slot.clone())
    }

    /// Removes `key` if it has expired by `now` (after a read found it expired).
    pub(crate) fn remove_if_expired(
        &mut self,
        key: &K,
        now: u64,
        expiry: &Expiry,
        counters: &Counters,
    ) {
        let reason = self.map.get(key).and_then(|e| expiry.check(e, now));
        if let Some(reason) = reason {
            self.remove(key, reason, counters);
        }
    }

    /// Whether `key` holds an entry, expired or not (for checks).
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Checks a stored value and removes it if `valid` rejects it; returns the value if kept.
    pub(crate) fn remove_unless(
        &mut self,
        key: &K,
        valid: impl Fn(&V) -> bool,
        counters: &Counters,
    ) -> bool {
        let invalid = match self.map.get(key) {
            Some(Entry {
                slot: Slot::Present(v),
                ..
            }) => !valid(v),
            _ => false,
        };
        if invalid {
            self.remove(key, EvictionReason::Invalidated, counters);
        }
        invalid
    }

    /// Stores `slot` under `key`. Returns false if the entry alone exceeds the shard's
    /// weight bound (nothing is stored then).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &mut self,
        key: K,
        hash: u64,
        slot: Slot<V>,
        weight: u64,
        now: u64,
        expiry: &Expiry,
        sketch: &FrequencySketch,
        counters: &Counters,
    ) -> bool {
        // Only reads feed the frequency sketch: a read-through miss followed by this insert
        // is one access, and must not look like two.
        if weight > self.limits.max_weight {
            if self.map.contains_key(&key) {
                self.remove(&key, EvictionReason::Invalidated, counters);
            }
            Counters::bump(&counters.admissions_rejected);
            return false;
        }
        Counters::bump(&counters.inserts);
        if let Some(entry) = self.map.get_mut(&key) {
            // Replace in place: the entry keeps its queue position and region.
            let old = std::mem::replace(&mut entry.weight, weight);
            entry.slot = slot;
            entry.inserted_at = now;
            entry.last_access.store(now, Ordering::Relaxed);
            entry.hits.store(0, Ordering::Relaxed);
            match entry.region {
                Region::Window => self.window_weight = self.window_weight - old + weight,
                Region::Main => self.main_weight = self.main_weight - old + weight,
            }
        } else {
            let stamp = self.next_stamp;
            self.next_stamp += 1;
            self.window.push_back((key.clone(), stamp));
            self.window_weight += weight;
            self.window_len += 1;
            self.map.insert(
                key,
                Entry {
                    slot,
                    hash,
                    weight,
                    stamp,
                    region: Region::Window,
                    inserted_at: now,
                    last_access: AtomicU64::new(now),
                    hits: AtomicU32::new(0),
                    reference: AtomicU8::new(0),
                },
            );
        }
        self.sweep(now, expiry, counters);
        let hits = counters.hits.load(Ordering::Relaxed);
        self.climber
            .observe(hits, hits + counters.misses.load(Ordering::Relaxed));
        self.enforce(sketch, counters);
        self.compact();
        self.publish(counters);
        true
    }

    /// Removes `key` for `reason`; true if it was present.
    pub(crate) fn remove(&mut self, key: &K, reason: EvictionReason, counters: &Counters) -> bool {
        let Some(entry) = self.map.remove(key) else {
            return false;
        };
        match entry.region {
            Region::Window => {
                self.window_weight -= entry.weight;
                self.window_len -= 1;
            }
            Region::Main => self.main_weight -= entry.weight,
        }
        counters.evicted(reason);
        self.compact();
        self.publish(counters);
        true
    }

    /// Removes every entry, counting them as invalidated.
    pub(crate) fn clear(&mut self, counters: &Counters) {
        for _ in 0..self.map.len() {
            counters.evicted(EvictionReason::Invalidated);
        }
        self.map.clear();
        self.window.clear();
        self.main.clear();
        self.window_weight = 0;
        self.main_weight = 0;
        self.window_len = 0;
        self.publish(counters);
    }

    /// Removes every expired entry; returns how many.
    pub(crate) fn sweep_all(&mut self, now: u64, expiry: &Expiry, counters: &Counters) -> usize {
        let expired: Vec<(K, EvictionReason)> = self
            .map
            .iter()
            .filter_map(|(k, e)| expiry.check(e, now).map(|r| (k.clone(), r)))
            .collect();
        for (key, reason) in &expired {
            self.remove(key, *reason, counters);
        }
        expired.len()
    }

    fn publish(&self, counters: &Counters) {
        counters
            .entries
            .store(self.map.len() as u64, Ordering::Relaxed);
        counters.weight.store(self.weight(), Ordering::Relaxed);
    }

    /// The live entry a queue item refers to, if it is still in `region`.
    fn live(&self, item: &(K, u64), region: Region) -> Option<&Entry<V>> {
        self.map
            .get(&item.0)
            .filter(|e| e.stamp == item.1 && e.region == region)
    }

    /// Looks at a few of the oldest entries of each queue and drops the expired ones.
    fn sweep(&mut self, now: u64, expiry: &Expiry, counters: &Counters) {
        for region in [Region::Window, Region::Main] {
            for _ in 0..SWEEP_PER_WRITE {
                let queue = match region {
                    Region::Window => &self.window,
                    Region::Main => &self.main,
                };
                let Some(item) = queue.front() else { break };
                let verdict = self.live(item, region).map(|e| expiry.check(e, now));
                match verdict {
                    Some(Some(reason)) => {
                        // Pop before removing: removal may compact the queue.
                        if let Some((key, _)) = self.pop(region) {
                            self.remove(&key, reason, counters);
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

    fn pop(&mut self, region: Region) -> Option<(K, u64)> {
        match region {
            Region::Window => self.window.pop_front(),
            Region::Main => self.main.pop_front(),
        }
    }

    fn over_bounds(&self) -> bool {
        self.map.len() > self.limits.max_entries || self.weight() > self.limits.max_weight
    }

    fn window_over_share(&self) -> bool {
        let share = self.climber.share;
        self.window_len as f64 > self.limits.max_entries as f64 * share
            || self.window_weight as f64 > self.limits.max_weight as f64 * share
    }

    /// Restores the window share and the shard bounds.
    fn enforce(&mut self, sketch: &FrequencySketch, counters: &Counters) {
        loop {
            if self.window_over_share() {
                let Some(candidate) = self.clock_victim(Region::Window) else {
                    break;
                };
                if !self.over_bounds() {
                    self.promote(candidate);
                    continue;
                }
                match self.clock_victim(Region::Main) {
                    Some(victim) if sketch.estimate(victim.1) >= sketch.estimate(candidate.1) => {
                        Counters::bump(&counters.admissions_rejected);
                        self.window.pop_front();
                        self.remove(&candidate.0, EvictionReason::Capacity, counters);
                    }
                    Some(victim) => {
                        self.main.pop_front();
                        self.remove(&victim.0, EvictionReason::Capacity, counters);
                        self.promote(candidate);
                    }
                    None => {
                        // Nothing in the main region to duel: the window alone is too big.
                        self.window.pop_front();
                        self.remove(&candidate.0, EvictionReason::Capacity, counters);
                    }
                }
            } else if self.over_bounds() {
                let region = if self.map.len() > self.window_len {
                    Region::Main
                } else {
                    Region::Window
                };
                let Some(victim) = self.clock_victim(region) else {
                    break;
                };
                self.pop(region);
                self.remove(&victim.0, EvictionReason::Capacity, counters);
            } else {
                break;
            }
        }
    }

    /// Moves the window's front entry (the CLOCK victim just found) into the main region.
    fn promote(&mut self, candidate: (K, u64)) {
        let Some(item) = self.window.pop_front() else {
            return;
        };
        if let Some(entry) = self.map.get_mut(&candidate.0) {
            entry.region = Region::Main;
            self.window_weight -= entry.weight;
            self.window_len -= 1;
            self.main_weight += entry.weight;
        }
        self.main.push_back(item);
    }

    /// Turns `region`'s CLOCK hand until its oldest entry has no reference left, and returns
    /// that entry's key and hash (it stays at the front). Each turn spends a reference, so
    /// the work is amortized O(1).
    fn clock_victim(&mut self, region: Region) -> Option<(K, u64)> {
        loop {
            let queue = match region {
                Region::Window => &self.window,
                Region::Main => &self.main,
            };
            let item = queue.front()?;
            let Some(entry) = self.live(item, region) else {
                self.pop(region);
                continue;
            };
            let reference = entry.reference.load(Ordering::Relaxed);
            if reference == 0 {
                return Some((item.0.clone(), entry.hash));
            }
            // A window entry gets one second chance; a main entry one per reference.
            let left = if region == Region::Window {
                0
            } else {
                reference - 1
            };
            entry.reference.store(left, Ordering::Relaxed);
            if let Some(item) = self.pop(region) {
                match region {
                    Region::Window => self.window.push_back(item),
                    Region::Main => self.main.push_back(item),
                }
            }
        }
    }

    /// Drops tombstones once they outnumber live entries, keeping queue memory O(entries).
    fn compact(&mut self) {
        if self.window.len() + self.main.len() <= 2 * self.map.len() + 64 {
            return;
        }
        let map = &self.map;
        let keep = |region: Region| {
            move |item: &(K, u64)| {
                map.get(&item.0)
                    .is_some_and(|e| e.stamp == item.1 && e.region == region)
            }
        };
        self.window.retain(keep(Region::Window));
        self.main.retain(keep(Region::Main));
    }
}
