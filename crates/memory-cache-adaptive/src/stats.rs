//! Cache statistics: event counters striped by thread (a thread only ever writes its own
//! cache line, so counting never makes cores contend) and summed into a
//! [`CacheStatsSnapshot`] on demand.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
pub use memory_core::stats::{CacheStats, CacheStatsSnapshot, EvictionReason};

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
            total += &stripe.snapshot();
        }
        total
    }
}
