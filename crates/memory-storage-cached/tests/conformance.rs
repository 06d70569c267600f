//! The shared conformance suite through the cached decorator over the in-memory reference
//! backend, with writes cached (write-through, the default) and with writes only
//! invalidating (the libSQL runs live in `memory-storage-turso`'s tests).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

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

/// Several handles on one shared in-memory store: two caches, a cache and the bare store.
mod handles {
    use std::sync::Arc;
    use std::time::Duration;

    use memory_core::{ChangeSignal, InMemoryStorage};
    use memory_storage_cached::{CacheSettings, CachedStorage};

    const INTERVAL: Duration = Duration::from_millis(20);

    fn cache(store: &Arc<InMemoryStorage>) -> CachedStorage<Arc<InMemoryStorage>> {
        let settings = CacheSettings::default().change_check_interval(INTERVAL);
        let signal: Arc<dyn ChangeSignal> = Arc::clone(store) as Arc<dyn ChangeSignal>;
        CachedStorage::new(Arc::clone(store), &settings)
            .expect("default settings are valid")
            .with_change_signal(signal)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_caches_on_one_store_see_each_others_writes() {
        let store = Arc::new(InMemoryStorage::new());
        let (a, b) = (cache(&store), cache(&store));
        memory_core::testing::handles::see_each_other("two caches", &a, &b, INTERVAL, 10)
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cache_sees_writes_through_the_bare_store() {
        let store = Arc::new(InMemoryStorage::new());
        let cached = cache(&store);
        let stale = memory_core::testing::handles::stale_reads(&store, &cached, INTERVAL, 10)
            .await
            .unwrap();
        assert_eq!(stale, 0);
    }
}
