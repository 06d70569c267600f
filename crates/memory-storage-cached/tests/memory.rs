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

/// Writes `rounds` revisions of typical episodes `0..n` through `cached`, from `tasks`
/// tasks each owning a slice of the ids.
async fn churn(cached: &Arc<CachedStorage<Arc<InMemoryStorage>>>, tasks: u64, n: u64) {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let cached = cached.clone();
        handles.push(tokio::spawn(async move {
            for round in 0..3 {
                for id in (task..n).step_by(tasks as usize) {
                    let mut episode = typical_episode(id);
                    episode.description = format!("round {round}: {}", episode.description);
                    cached.store_episode(&episode).await.unwrap();
                }
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

/// The heap dropping a full cache frees over what it accounts, after a churn by `tasks`.
async fn held_over_accounted(tasks: u64) -> f64 {
    let settings = CacheSettings::default().budget_bytes(8 << 20);
    // The store outlives the cache: dropping the cache frees what the caches alone hold.
    let store = Arc::new(InMemoryStorage::new());
    let cached = Arc::new(CachedStorage::new(store.clone(), &settings).unwrap());
    // Written through: the cache holds copies of its own (the store keeps another), and
    // every write past the budget evicts one, so retired values pile up if they can (each
    // thread keeps its own batch of them).
    churn(&cached, tasks, 1_500).await;
    let stats = cached.stats();
    let accounted = stats.episodes.weight + stats.episode_queries.weight;
    assert!(
        accounted > 4 << 20,
        "the episode cache is full: {accounted} bytes"
    );
    let live = HEAP.allocated();
    drop(cached);
    let freed = (live - HEAP.allocated()) as f64;
    assert_eq!(store.count_episodes().await.unwrap(), 1_500);
    let ratio = freed / accounted as f64;
    println!("{tasks} task(s): freed {freed} bytes for {accounted} accounted: {ratio:.2}x");
    ratio
}

// One test in this binary, so that nothing else allocates while it counts; the many-task
// phase runs on a runtime of its own with several worker threads.
#[test]
fn the_heap_the_caches_hold_is_what_they_account() {
    let one = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(held_over_accounted(1));
    let many = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap()
        .block_on(held_over_accounted(8));
    for (what, ratio) in [("one task", one), ("8 tasks on 4 threads", many)] {
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{what}: the caches held {ratio:.2}x the bytes they account"
        );
    }
}
