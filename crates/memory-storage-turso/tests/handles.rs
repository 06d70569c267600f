//! Several handles on one libSQL database in one process, as programs hold them: two caches
//! on one handle, a cache beside its bare handle, caches on clones, `open_cached` twice on
//! one file. A write through any one is seen through every other within the change-check
//! interval. And a cache's own writes, concurrent or made before its first check, never
//! flush it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use memory_core::testing::handles;
use memory_core::{Episode, EpisodeId, StorageBackend};
use memory_storage_turso::{CacheSettings, CachedStorage, TursoConfig, TursoStorage};

const INTERVAL: Duration = Duration::from_millis(50);
const TRIALS: usize = 20;

fn settings() -> CacheSettings {
    CacheSettings::default().change_check_interval(INTERVAL)
}

fn episode(id: EpisodeId, revision: usize) -> Episode {
    handles::revision(id, revision)
}

async fn sees_each_other(name: &str, a: &dyn StorageBackend, b: &dyn StorageBackend) {
    handles::see_each_other(name, a, b, INTERVAL, TRIALS)
        .await
        .unwrap();
}

async fn local(dir: &tempfile::TempDir) -> (TursoConfig, TursoStorage) {
    let config = TursoConfig::local(dir.path().join("handles.db")).cache(settings());
    let store = TursoStorage::open(config.clone()).await.unwrap();
    (config, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_caches_on_one_handle_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local(&dir).await;
    let a = store.cached(&settings()).unwrap();
    let b = store.cached(&settings()).unwrap();
    sees_each_other("two caches on one handle", &a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_sees_writes_through_its_bare_handle() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local(&dir).await;
    let cached = store.cached(&settings()).unwrap();
    let stale = handles::stale_reads(&store, &cached, INTERVAL, TRIALS)
        .await
        .unwrap();
    println!("bare writer, cached reader: {stale} of {TRIALS} reads stale");
    assert_eq!(stale, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_on_clones_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local(&dir).await;
    let a = store.clone().cached(&settings()).unwrap();
    let b = store.clone().cached(&settings()).unwrap();
    sees_each_other("caches on clones", &a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_cached_twice_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = local(&dir).await;
    let a = TursoStorage::open_cached(config.clone()).await.unwrap();
    let b = TursoStorage::open_cached(config).await.unwrap();
    sees_each_other("open_cached twice", a.as_ref(), b.as_ref()).await;
}

/// Eight tasks writing and reading through one cache, no other writer anywhere: no flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_concurrent_writes_never_flush_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local(&dir).await;
    let cached = Arc::new(store.cached(&settings()).unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let cached = Arc::clone(&cached);
            tokio::spawn(async move {
                let ids: Vec<EpisodeId> = (0..20).map(|_| EpisodeId::new()).collect();
                let mut round = 0;
                while tokio::time::Instant::now() < deadline {
                    let id = ids[round % ids.len()];
                    if round % 3 == 0 {
                        let batch: Vec<Episode> =
                            (0..4).map(|_| episode(EpisodeId::new(), round)).collect();
                        cached.store_episodes(&batch).await.unwrap();
                    } else {
                        cached.store_episode(&episode(id, round)).await.unwrap();
                    }
                    let seen = cached.get_episode(id).await.unwrap();
                    if round % 3 != 0 {
                        assert_eq!(seen.unwrap().description, format!("revision {round}"));
                    }
                    round += 1;
                }
                (task, round)
            })
        })
        .collect();
    let mut writes = 0;
    for task in tasks {
        writes += task.await.unwrap().1;
    }
    let stats = cached.stats();
    println!(
        "8 tasks, {writes} writes, {} hits: {} whole-cache flushes",
        stats.episodes.hits,
        stats.foreign.flushes()
    );
    assert!(writes > 100, "the load ran: {writes} writes");
    assert_eq!(
        stats.foreign.flushes(),
        0,
        "own writes taken for foreign ones"
    );
}

/// What a new cache writes through before its first change check is still cached after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_written_before_the_first_check_stay_cached() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local(&dir).await;
    let cached: CachedStorage<TursoStorage> = store.cached(&settings()).unwrap();
    let mut ids = Vec::new();
    for chunk in 0..20 {
        let batch: Vec<Episode> = (0..100).map(|_| episode(EpisodeId::new(), chunk)).collect();
        ids.extend(batch.iter().map(|e| e.id));
        cached.store_episodes(&batch).await.unwrap();
    }
    for i in 0..50 {
        let single = episode(EpisodeId::new(), i);
        ids.push(single.id);
        cached.store_episode(&single).await.unwrap();
    }
    for id in &ids {
        assert!(cached.get_episode(*id).await.unwrap().is_some());
    }
    let stats = cached.stats();
    println!(
        "{} written through, then read: {} hits, {} misses, {} flushes",
        ids.len(),
        stats.episodes.hits,
        stats.episodes.misses,
        stats.foreign.flushes()
    );
    assert_eq!(stats.foreign.flushes(), 0);
    assert_eq!(stats.episodes.hits, ids.len() as u64, "{stats:?}");
}
