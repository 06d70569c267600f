//! The shared conformance suite through the cached decorator over the in-memory reference
//! backend, with writes cached (write-through, the default) and with writes only
//! invalidating (the libSQL runs live in `memory-storage-turso`'s tests).

use memory_core::InMemoryStorage;
use memory_core::testing::Fixture;
use memory_storage_cached::{CacheSettings, CachedStorage};

async fn cached_memory() -> anyhow::Result<Fixture> {
    Ok(Fixture::new(CachedStorage::new(
        InMemoryStorage::new(),
        &CacheSettings::default(),
    )?))
}

async fn cached_memory_invalidating() -> anyhow::Result<Fixture> {
    Ok(Fixture::new(CachedStorage::new(
        InMemoryStorage::new(),
        &CacheSettings::default().write_through(false),
    )?))
}

mod write_through {
    memory_core::conformance_tests!(super::cached_memory);
}

mod invalidate_only {
    memory_core::conformance_tests!(super::cached_memory_invalidating);
}
