//! The shared conformance suite through the cached decorator over the in-memory reference
//! backend (the libSQL runs live in `memory-storage-turso`'s tests).

use memory_core::InMemoryStorage;
use memory_core::testing::Fixture;
use memory_storage_cached::{CacheSettings, CachedStorage};

async fn cached_memory() -> anyhow::Result<Fixture> {
    Ok(Fixture::new(CachedStorage::new(
        InMemoryStorage::new(),
        &CacheSettings::default(),
    )?))
}

memory_core::conformance_tests!(cached_memory);
