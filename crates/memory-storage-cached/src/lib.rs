//! The adaptive caches of `memory-cache-adaptive` in front of any episodic-memory
//! [`StorageBackend`]: one decorator, [`CachedStorage`], for every store (libSQL, redb, the
//! in-memory reference).
//!
//! - Entity caches for episodes, patterns and heuristics (values are shared `Arc`s), with
//!   coalesced loads and negative caching; query-result caches for `query_episodes`,
//!   `query_patterns` and both searches; all within one byte budget ([`CacheSettings::budget_bytes`]).
//! - Never stale for its own writes: each write invalidates exactly what it affects (a
//!   batch in one pass), and a read that overlapped a write is not cached.
//! - Other writers (other processes on the same file, other clients of one server) are
//!   noticed through the store's [`ChangeSignal`] within
//!   [`CacheSettings::change_check_interval`].
//! - Off by configuration, [`layer`] returns the store itself: nothing in between.
//!
//! ```
//! use std::sync::Arc;
//! use memory_core::{InMemoryStorage, StorageBackend};
//! use memory_storage_cached::{CacheSettings, layer};
//!
//! let cached = layer(InMemoryStorage::new(), &CacheSettings::default(), None).unwrap();
//! let bare = layer(InMemoryStorage::new(), &CacheSettings::disabled(), None).unwrap();
//! assert_eq!(cached.backend_name(), bare.backend_name());
//! ```

mod backend;
mod deps;
mod freshness;
mod reads;
mod settings;
mod store;
mod writes;

use std::sync::Arc;

pub use memory_cache_adaptive::ConfigError;
use memory_core::{ChangeSignal, StorageBackend};
pub use settings::{CachePart, CacheSettings};
pub use store::{CachedStats, CachedStorage, CachedStorageStats, entity_cache_config};

/// `inner` behind caches as `settings` say, watching `signal` for other writers; with the
/// cache disabled, `inner` itself.
pub fn layer<S: StorageBackend + 'static>(
    inner: S,
    settings: &CacheSettings,
    signal: Option<Arc<dyn ChangeSignal>>,
) -> Result<Arc<dyn StorageBackend>, ConfigError> {
    settings.validate()?;
    if !settings.enabled {
        return Ok(Arc::new(inner));
    }
    let cached = CachedStorage::new(inner, settings)?;
    Ok(Arc::new(match signal {
        Some(signal) => cached.with_change_signal(signal),
        None => cached,
    }))
}
