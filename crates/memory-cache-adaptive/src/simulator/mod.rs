//! Hit-ratio simulation: seeded key traces ([`traces`]), Belady's offline optimum
//! ([`belady`]) and a replay harness that runs any [`Policy`] over a trace.
//!
//! Every policy replays the same trace, so their hit ratios compare exactly; the traces are
//! deterministic for a seed, so a run is reproducible.
//!
//! ```
//! use memory_cache_adaptive::simulator::{replay, traces, AdaptivePolicy};
//!
//! let trace = traces::zipf(1_000, 0.99, 20_000, 7);
//! let mut cache = AdaptivePolicy::new(100);
//! let result = replay(&trace, &mut cache);
//! assert!(result.hit_ratio() > 0.4);
//! ```

pub mod belady;
pub mod traces;

use crate::{AdaptiveCache, CacheConfig};
pub use traces::{Request, Trace};

/// A cache under simulation: answers whether an access hit, and admits the key on a miss
/// as a read-through cache would.
pub trait Policy {
    /// A short name for tables.
    fn name(&self) -> String;
    /// Accesses `key`; true on a hit.
    fn access(&mut self, key: u64) -> bool;
}

/// Hits and requests of one replay, overall and over the non-scan requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayResult {
    /// Requests that hit.
    pub hits: u64,
    /// Requests replayed.
    pub requests: u64,
    /// Hits among requests not marked as scan requests.
    pub core_hits: u64,
    /// Requests not marked as scan requests.
    pub core_requests: u64,
}

impl ReplayResult {
    /// Hits over all requests.
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.requests)
    }

    /// Hits over non-scan requests (scan requests are compulsory misses for every policy).
    pub fn core_hit_ratio(&self) -> f64 {
        ratio(self.core_hits, self.core_requests)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Replays `trace` through `policy`.
pub fn replay(trace: &Trace, policy: &mut dyn Policy) -> ReplayResult {
    let mut result = ReplayResult::default();
    for request in &trace.requests {
        let hit = policy.access(request.key);
        result.requests += 1;
        result.hits += u64::from(hit);
        if !request.scan {
            result.core_requests += 1;
            result.core_hits += u64::from(hit);
        }
    }
    result
}

/// This crate's [`AdaptiveCache`] as a simulated policy (no expiry; bounded by entries).
pub struct AdaptivePolicy {
    cache: AdaptiveCache<u64, ()>,
    capacity: usize,
}

impl AdaptivePolicy {
    /// A cache of `capacity` entries with default sharding.
    ///
    /// # Panics
    /// If `capacity` is zero.
    pub fn new(capacity: usize) -> Self {
        Self::with_config(CacheConfig::new(capacity).without_expiry())
    }

    /// A cache with `config` (expiry is ignored by the simulation's lack of time).
    ///
    /// # Panics
    /// If `config` is invalid.
    pub fn with_config(config: CacheConfig) -> Self {
        let capacity = config.max_entries;
        match AdaptiveCache::new(config) {
            Ok(cache) => AdaptivePolicy { cache, capacity },
            Err(e) => panic!("simulated cache config: {e}"),
        }
    }
}

impl Policy for AdaptivePolicy {
    fn name(&self) -> String {
        "adaptive".into()
    }

    fn access(&mut self, key: u64) -> bool {
        if self.cache.get(&key).is_some() {
            return true;
        }
        self.cache.insert(key, ());
        debug_assert!(self.cache.len() <= self.capacity);
        false
    }
}
