//! A concurrent adaptive cache for entities and a query-result cache that never serves data
//! older than an acknowledged write. Generic: it knows nothing about what it caches.
//!
//! - [`AdaptiveCache`]: sharded, bounded by entries and bytes, TinyLFU admission in front of
//!   a CLOCK main region (scan resistant), adaptive idle expiry under a hard maximum age,
//!   negative caching, coalesced loads ([`AdaptiveCache::get_or_load`]).
//! - [`QueryCache`]: results keyed by typed queries, each tied to the generations of what it
//!   depends on; invalidating a dependency makes every dependent result unservable, and a
//!   read that overlapped the invalidation is not stored.
//! - [`CacheStats`]: counters for both, read by the metrics layer.
//!
//! Neither cache needs a tokio runtime or a background task. With the `simulator` feature,
//! [`simulator`] replays seeded key traces through any policy and computes Belady's
//! optimum (see `examples/hit_rates.rs`).
//!
//! Why this design, and the hit ratios it reaches: `plans/0008-cache-admission-policy.md`.

mod cache;
mod clock;
mod config;
mod flights;
mod generations;
mod query;
mod shard;
mod sketch;
mod stats;

#[cfg(feature = "simulator")]
pub mod simulator;

pub use cache::{AdaptiveCache, CacheBuilder, LoadTicket, Lookup};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{CacheConfig, ConfigError, IdleExpiry, Weigher};
pub use query::{QueryCache, ReadTicket};
pub use stats::{CacheStats, CacheStatsSnapshot, EvictionReason};

impl<K, V> CacheStats for AdaptiveCache<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn snapshot(&self) -> CacheStatsSnapshot {
        self.stats_snapshot()
    }
}
