//! The shared conformance suite on a redb file, bare and behind the shared cache.

use memory_core::testing::Fixture;
use memory_storage_cached::{CacheSettings, CachedStorage};
use memory_storage_redb::RedbStorage;

async fn redb_file() -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let store = RedbStorage::open(dir.path().join("conformance.redb"))?;
    Ok(Fixture::new(store).with_guard(dir))
}

async fn cached_redb_file() -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let store = RedbStorage::open(dir.path().join("conformance.redb"))?;
    Ok(Fixture::new(CachedStorage::new(store, &CacheSettings::default())?).with_guard(dir))
}

mod bare {
    memory_core::conformance_tests!(super::redb_file);
}

mod cached {
    memory_core::conformance_tests!(super::cached_redb_file);
}
