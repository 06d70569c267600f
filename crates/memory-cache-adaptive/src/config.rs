//! [`CacheConfig`]: bounds, expiry and sharding of a cache, checked when the cache is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Gives the size in bytes of a cached value (the cache adds its own per-entry overhead).
pub type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;

/// Bounds and expiry of an [`AdaptiveCache`](crate::AdaptiveCache) or
/// [`QueryCache`](crate::QueryCache).
///
/// ```
/// use std::time::Duration;
/// use memory_cache_adaptive::CacheConfig;
///
/// let config = CacheConfig::new(100_000)
///     .max_weight(200 * 1024 * 1024)
///     .idle_between(Duration::from_secs(60), Duration::from_secs(1800))
///     .max_age(Duration::from_secs(3600))
///     .negative_ttl(Duration::from_secs(5));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries held (positive and negative).
    pub max_entries: usize,
    /// Most bytes held, counting the weigher's value sizes plus the per-entry overhead;
    /// `None` bounds by entry count only.
    pub max_weight: Option<u64>,
    /// Bytes added to every entry's weight for the key, bookkeeping and index.
    pub entry_overhead: u64,
    /// Idle expiry: an entry not read for `min_idle × 2^hits` (at most `max_idle`) expires.
    /// `None` disables idle expiry.
    pub idle: Option<IdleExpiry>,
    /// No entry is served longer than this after it was stored, however often it is read.
    /// `None` disables age expiry.
    pub max_age: Option<Duration>,
    /// How long a remembered "not found" is served; `None` disables negative caching.
    pub negative_ttl: Option<Duration>,
    /// Independent shards (a power of two); `None` picks 64, fewer for small capacities.
    pub shards: Option<usize>,
    /// Share of each shard's capacity given to the admission window, in percent (1–50).
    pub window_percent: u8,
    /// Replaced or removed entries each thread keeps before the index frees them together
    /// (1–4096). Each batch costs a process-wide memory barrier, so large batches are
    /// cheaper; but until freed, up to this many values per thread hold memory the budget
    /// no longer counts: caches of large values want small batches.
    pub retire_batch: usize,
}

/// Bounds of the adaptive idle time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleExpiry {
    /// Idle time allowed to an entry never read since it was stored.
    pub min: Duration,
    /// Idle time allowed to the most used entries.
    pub max: Duration,
}

impl CacheConfig {
    /// Defaults for a cache of at most `max_entries` entries: no weight bound, idle expiry
    /// from 2 minutes (never read) to 30 minutes (hot), a maximum age of 1 hour, no negative
    /// caching, automatic sharding, a 1 % admission window.
    pub fn new(max_entries: usize) -> Self {
        CacheConfig {
            max_entries,
            max_weight: None,
            entry_overhead: 64,
            idle: Some(IdleExpiry {
                min: Duration::from_secs(120),
                max: Duration::from_secs(1800),
            }),
            max_age: Some(Duration::from_secs(3600)),
            negative_ttl: None,
            shards: None,
            window_percent: 1,
            retire_batch: 512,
        }
    }

    /// Bounds the cache by bytes too.
    pub fn max_weight(mut self, bytes: u64) -> Self {
        self.max_weight = Some(bytes);
        self
    }

    /// Sets the idle-time range.
    pub fn idle_between(mut self, min: Duration, max: Duration) -> Self {
        self.idle = Some(IdleExpiry { min, max });
        self
    }

    /// Sets the maximum age.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Turns off idle and age expiry (entries leave only by eviction or invalidation).
    pub fn without_expiry(mut self) -> Self {
        self.idle = None;
        self.max_age = None;
        self
    }

    /// Remembers "not found" for `ttl`.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Sets how many replaced or removed entries a thread keeps before they are freed
    /// together (see [`retire_batch`](Self::retire_batch)).
    pub fn retire_batch(mut self, entries: usize) -> Self {
        self.retire_batch = entries;
        self
    }

    /// Fixes the shard count (a power of two).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Checks every value; the cache constructors call this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.max_entries == 0 {
            return bad("max_entries", "must be at least 1");
        }
        if self.max_entries > 1 << 32 {
            return bad("max_entries", "must be at most 2^32");
        }
        if self.max_weight == Some(0) {
            return bad("max_weight", "must be at least 1 byte");
        }
        if let Some(idle) = self.idle {
            if idle.min.is_zero() {
                return bad("idle.min", "must be longer than zero");
            }
            if idle.max < idle.min {
                return bad("idle.max", "must not be shorter than idle.min");
            }
        }
        if self.max_age.is_some_and(|a| a.is_zero()) {
            return bad("max_age", "must be longer than zero");
        }
        if self.negative_ttl.is_some_and(|t| t.is_zero()) {
            return bad("negative_ttl", "must be longer than zero");
        }
        if let Some(shards) = self.shards
            && (shards == 0 || !shards.is_power_of_two() || shards > 1024)
        {
            return bad("shards", "must be a power of two from 1 to 1024");
        }
        if !(1..=50).contains(&self.window_percent) {
            return bad("window_percent", "must be from 1 to 50");
        }
        if !(1..=4096).contains(&self.retire_batch) {
            return bad("retire_batch", "must be from 1 to 4096");
        }
        Ok(())
    }

    /// The shard count used: the configured one, else 64 while that keeps at least 256
    /// entries per shard (small shards hurt the hit ratio). Not tied to the core count, so
    /// a cache behaves the same on every machine: even two threads collide on 8 shards'
    /// mutexes often enough to park (measured in plan 0008), and 64 cost no hit ratio.
    pub(crate) fn shard_count(&self) -> usize {
        if let Some(shards) = self.shards {
            return shards;
        }
        let by_size = (self.max_entries / 256).max(1);
        let mut shards = 1;
        while shards * 2 <= DEFAULT_MAX_SHARDS && shards * 2 <= by_size {
            shards *= 2;
        }
        shards
    }
}

/// Shards of a cache whose config leaves the count open, when it is large enough.
const DEFAULT_MAX_SHARDS: usize = 64;

/// An invalid [`CacheConfig`] value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid cache config: {field} {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for IdleExpiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}..{:?}", self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_nonsense() {
        assert_eq!(
            CacheConfig::new(0).validate().unwrap_err().field,
            "max_entries"
        );
        assert!(CacheConfig::new(10).max_weight(0).validate().is_err());
        assert!(CacheConfig::new(10).shards(3).validate().is_err());
        assert!(
            CacheConfig::new(10)
                .idle_between(Duration::from_secs(5), Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(
            CacheConfig::new(10)
                .max_age(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(CacheConfig::new(10).validate().is_ok());
    }

    #[test]
    fn shard_count_keeps_shards_large() {
        assert_eq!(CacheConfig::new(100).shard_count(), 1);
        assert_eq!(CacheConfig::new(1_000_000).shard_count(), 64);
        assert_eq!(CacheConfig::new(4_096).shard_count(), 16);
        assert_eq!(CacheConfig::new(1_000_000).shards(2).shard_count(), 2);
    }
}
