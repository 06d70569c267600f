//! Cache statistics: event counters striped by thread (a thread only ever writes its own
//! cache line, so counting never makes cores contend) and summed into a
//! [`CacheStatsSnapshot`] on demand.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

/// Anything that reports cache statistics (both caches here; metrics read them through this).
pub trait CacheStats {
    /// The counters as of now.
    fn snapshot(&self) -> CacheStatsSnapshot;
}

/// Why an entry left the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EvictionReason {
    /// Room was needed (entry or weight bound), including candidates the admission filter
    /// turned away.
    Capacity,
    /// Not read within its allowed idle time.
    Idle,
    /// Older than the maximum age (or, for a negative entry, its negative TTL).
    Age,
    /// Removed by `invalidate`, replaced by a write, or found stale by its dependencies.
    Invalidated,
}

impl EvictionReason {
    /// Every reason.
    pub const ALL: [EvictionReason; 4] = [
        EvictionReason::Capacity,
        EvictionReason::Idle,
        EvictionReason::Age,
        EvictionReason::Invalidated,
    ];

    /// Lower-case name for metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            EvictionReason::Capacity => "capacity",
            EvictionReason::Idle => "idle",
            EvictionReason::Age => "age",
            EvictionReason::Invalidated => "invalidated",
        }
    }
}

/// Counters of one cache at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStatsSnapshot {
    /// Lookups answered from the cache (negative hits included).
    pub hits: u64,
    /// Of `hits`, those answered by a remembered "not found".
    pub negative_hits: u64,
    /// Lookups the cache could not answer.
    pub misses: u64,
    /// Entries written (new or replacing).
    pub inserts: u64,
    /// Entries removed for lack of room.
    pub evicted_capacity: u64,
    /// Entries removed for being idle too long.
    pub evicted_idle: u64,
    /// Entries removed for being too old.
    pub evicted_age: u64,
    /// Entries removed by invalidation.
    pub evicted_invalidated: u64,
    /// New entries the frequency filter turned away (also counted in `evicted_capacity`).
    pub admissions_rejected: u64,
    /// Loads that ran a loader (coalesced waiters not counted).
    pub loads: u64,
    /// Load results not stored because a write invalidated them while in flight.
    pub loads_discarded: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now (value weights plus per-entry overhead).
    pub weight: u64,
}

impl CacheStatsSnapshot {
    /// `hits / (hits + misses)`, or 0 before the first lookup.
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }

    /// Evictions for `reason`.
    pub fn evictions(&self, reason: EvictionReason) -> u64 {
        match reason {
            EvictionReason::Capacity => self.evicted_capacity,
            EvictionReason::Idle => self.evicted_idle,
            EvictionReason::Age => self.evicted_age,
            EvictionReason::Invalidated => self.evicted_invalidated,
        }
    }

    fn add(&mut self, other: &CacheStatsSnapshot) {
        self.hits += other.hits;
        self.negative_hits += other.negative_hits;
        self.misses += other.misses;
        self.inserts += other.inserts;
        self.evicted_capacity += other.evicted_capacity;
        self.evicted_idle += other.evicted_idle;
        self.evicted_age += other.evicted_age;
        self.evicted_invalidated += other.evicted_invalidated;
        self.admissions_rejected += other.admissions_rejected;
        self.loads += other.loads;
        self.loads_discarded += other.loads_discarded;
        self.entries += other.entries;
        self.weight += other.weight;
    }
}

/// One stripe of event counters (one cache line group per stripe).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) inserts: AtomicU64,
    pub(crate) evicted: [AtomicU64; 4],
    pub(crate) admissions_rejected: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) loads_discarded: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn evicted(&self, reason: EvictionReason) {
        Self::bump(&self.evicted[reason as usize]);
    }

    pub(crate) fn snapshot(&self) -> CacheStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStatsSnapshot {
            hits: get(&self.hits),
            negative_hits: get(&self.negative_hits),
            misses: get(&self.misses),
            inserts: get(&self.inserts),
            evicted_capacity: get(&self.evicted[EvictionReason::Capacity as usize]),
            evicted_idle: get(&self.evicted[EvictionReason::Idle as usize]),
            evicted_age: get(&self.evicted[EvictionReason::Age as usize]),
            evicted_invalidated: get(&self.evicted[EvictionReason::Invalidated as usize]),
            admissions_rejected: get(&self.admissions_rejected),
            loads: get(&self.loads),
            loads_discarded: get(&self.loads_discarded),
            entries: 0,
            weight: 0,
        }
    }
}

const STRIPES: usize = 32;

/// Event counters striped by thread.
pub(crate) struct Stripes {
    stripes: Box<[CachePadded<Counters>]>,
}

fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

impl Stripes {
    pub(crate) fn new() -> Self {
        Stripes {
            stripes: (0..STRIPES)
                .map(|_| CachePadded::new(Counters::default()))
                .collect(),
        }
    }

    /// The calling thread's stripe.
    pub(crate) fn local(&self) -> &Counters {
        &self.stripes[thread_stripe()]
    }

    /// Hits and lookups (hits + misses) over every stripe.
    pub(crate) fn hits_and_lookups(&self) -> (u64, u64) {
        self.stripes.iter().fold((0, 0), |(h, l), s| {
            let hits = s.hits.load(Ordering::Relaxed);
            (h + hits, l + hits + s.misses.load(Ordering::Relaxed))
        })
    }

    /// Every stripe summed (occupancy fields left at zero).
    pub(crate) fn sum(&self) -> CacheStatsSnapshot {
        let mut total = CacheStatsSnapshot::default();
        for stripe in self.stripes.iter() {
            total.add(&stripe.snapshot());
        }
        total
    }
}
