//! The byte budget bounds real memory: after a write-heavy churn of typical episodes, the
//! heap the caches free when dropped is within 20 % of the bytes they account, measured by
//! a counting global allocator (the only test in this binary, so nothing else allocates
//! meanwhile).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use memory_core::testing::typical::typical_episode;
use memory_core::{InMemoryStorage, StorageBackend};
use memory_storage_cached::{CacheSettings, CachedStorage};

#[global_allocator]
static HEAP: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

#[tokio::test(flavor = "current_thread")]
async fn the_heap_the_caches_hold_is_what_they_account() {
    let settings = CacheSettings::default().budget_bytes(8 << 20);
    // The store outlives the cache: dropping the cache frees what the caches alone hold.
    let store = Arc::new(InMemoryStorage::new());
    let cached = CachedStorage::new(store.clone(), &settings).unwrap();
    // Written through: the cache holds copies of its own (the store keeps another), and
    // every write past the budget evicts one, so retired values pile up if they can.
    for round in 0..3 {
        for n in 0..1_500 {
            let mut episode = typical_episode(n);
            episode.description = format!("round {round}: {}", episode.description);
            cached.store_episode(&episode).await.unwrap();
        }
    }
    let stats = cached.stats();
    let accounted = stats.episodes.weight + stats.episode_queries.weight;
    assert!(
        accounted > 4 << 20,
        "the episode cache is full: {accounted} bytes"
    );
    let live = HEAP.allocated();
    drop(cached);
    let freed = (live - HEAP.allocated()) as f64;
    let ratio = freed / accounted as f64;
    println!("freed {freed} bytes for {accounted} accounted: {ratio:.2}x");
    assert_eq!(store.count_episodes().await.unwrap(), 1_500);
    assert!(
        (0.8..=1.2).contains(&ratio),
        "the caches held {ratio:.2}x the bytes they account"
    );
}
