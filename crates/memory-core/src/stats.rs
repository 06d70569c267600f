//! The statistics every layer reports and the metrics layer reads: snapshot types and the
//! traits that produce them, for caches, connection pools and prepared-statement caches.
//!
//! They live here, below every store, so that a program can export the metrics of any
//! store without building the others (the metrics crate depends on no store).
//!
//! ```
//! use memory_core::stats::{PoolStats, PoolStatsSnapshot};
//!
//! struct Fixed;
//! impl PoolStats for Fixed {
//!     fn pool_stats(&self) -> PoolStatsSnapshot {
//!         PoolStatsSnapshot { max_size: 4, open: 1, idle: 1, ..PoolStatsSnapshot::default() }
//!     }
//! }
//! assert_eq!(Fixed.pool_stats().open, 1);
//! ```

use std::time::Duration;

// ---- caches ----

/// Anything that reports cache statistics (`memory_cache_adaptive`'s caches do; metrics read
/// them through this).
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
}

impl std::ops::AddAssign<&CacheStatsSnapshot> for CacheStatsSnapshot {
    fn add_assign(&mut self, other: &CacheStatsSnapshot) {
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

// ---- a caching store's caches together ----

/// What every cache of a caching store (`memory_storage_cached::CachedStorage`) counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CachedStorageStats {
    /// The episode cache.
    pub episodes: CacheStatsSnapshot,
    /// The pattern cache.
    pub patterns: CacheStatsSnapshot,
    /// The heuristic cache.
    pub heuristics: CacheStatsSnapshot,
    /// Cached `query_episodes` results.
    pub episode_queries: CacheStatsSnapshot,
    /// Cached `query_patterns` results.
    pub pattern_queries: CacheStatsSnapshot,
    /// What the change checks did about other writers.
    pub foreign: ForeignWriteStats,
}

/// What a caching store's change checks did about other writers' writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForeignWriteStats {
    /// Other writers' writes the checks saw in the store's change feed.
    pub writes: u64,
    /// Items those writes changed, each dropped from the caches on its own.
    pub invalidated: u64,
    /// Every cache dropped because the store keeps no change feed.
    pub flushes_no_feed: u64,
    /// Every cache dropped because the feed no longer reached back to the last check
    /// (trimmed by age or count) or held more writes than one answer carries.
    pub flushes_feed_behind: u64,
    /// Every cache dropped because the change signal could not be read.
    pub flushes_failed: u64,
    /// Positions between the last two checks (own and other writers'): how far the last
    /// check had to catch up.
    pub feed_lag: u64,
}

impl ForeignWriteStats {
    /// Full flushes, whatever the reason.
    pub fn flushes(&self) -> u64 {
        self.flushes_no_feed + self.flushes_feed_behind + self.flushes_failed
    }
}

/// Anything that reports what its caches counted (metrics read caches through this trait).
pub trait CachedStats {
    /// Every cache's counters as of now.
    fn cached_stats(&self) -> CachedStorageStats;
}

// ---- connection pools ----

/// Anything that reports connection-pool statistics.
pub trait PoolStats {
    /// The counters as of now.
    fn pool_stats(&self) -> PoolStatsSnapshot;
}

/// Pool counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatsSnapshot {
    /// The most connections the pool opens.
    pub max_size: u64,
    /// Connections open now (in use plus idle).
    pub open: u64,
    /// Connections checked out now.
    pub in_use: u64,
    /// Open connections waiting in the pool.
    pub idle: u64,
    /// Checkouts that found no free connection and had to wait.
    pub waits: u64,
    /// Time checkouts spent waiting, in all.
    pub wait_time: Duration,
    /// Waits by duration: `wait_histogram[i]` counts waits no longer than
    /// [`WAIT_BUCKETS`]`[i]` and longer than the bound before; the last slot counts the
    /// longer ones. Not cumulative; the counts add up to `waits`.
    pub wait_histogram: [u64; WAIT_SLOTS],
    /// Checkouts that gave up after the checkout timeout.
    pub timeouts: u64,
    /// Connections opened.
    pub created: u64,
    /// Connections thrown away (failed a health check or broke in use).
    pub discarded: u64,
}

/// Upper bounds of the pool's wait-time histogram: from a short contention blip to the
/// longest checkout timeout one would configure.
pub const WAIT_BUCKETS: [Duration; 14] = [
    Duration::from_micros(10),
    Duration::from_micros(50),
    Duration::from_micros(100),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// Slots of [`PoolStatsSnapshot::wait_histogram`]: one per bound plus "longer".
pub const WAIT_SLOTS: usize = WAIT_BUCKETS.len() + 1;

// ---- prepared-statement caches ----

/// Anything that reports prepared-statement cache statistics (the store does, summed over
/// every pooled connection; metrics read them through this trait).
pub trait StatementCacheStats {
    /// The counters as of now.
    fn statement_stats(&self) -> StatementStatsSnapshot;
}

/// Prepared-statement cache counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatementStatsSnapshot {
    /// Statements found prepared.
    pub hits: u64,
    /// Statements that had to be prepared.
    pub misses: u64,
    /// Statements dropped to make room.
    pub evictions: u64,
    /// Time spent preparing, in all.
    pub prepare_time: Duration,
}

impl StatementStatsSnapshot {
    /// `hits / (hits + misses)`, or 0 before the first use.
    pub fn hit_ratio(&self) -> f64 {
        let uses = self.hits + self.misses;
        if uses == 0 {
            0.0
        } else {
            self.hits as f64 / uses as f64
        }
    }
}
