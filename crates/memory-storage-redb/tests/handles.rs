//! Several handles on one redb store in one process (the file lock keeps other processes
//! out, not other handles in this one): two caches on one handle, a cache beside its bare
//! handle, caches on clones. A write through any one is seen through every other within
//! the change-check interval.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use memory_core::testing::handles;
use memory_storage_cached::CacheSettings;
use memory_storage_redb::RedbStorage;

const INTERVAL: Duration = Duration::from_millis(50);
const TRIALS: usize = 10;

fn settings() -> CacheSettings {
    CacheSettings::default().change_check_interval(INTERVAL)
}

fn open(dir: &tempfile::TempDir) -> RedbStorage {
    RedbStorage::open(dir.path().join("handles.redb")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_caches_on_one_handle_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (a, b) = (
        store.cached(&settings()).unwrap(),
        store.cached(&settings()).unwrap(),
    );
    handles::see_each_other("two caches on one handle", &a, &b, INTERVAL, TRIALS)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_on_clones_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = store.clone().cached(&settings()).unwrap();
    let b = store.clone().cached(&settings()).unwrap();
    handles::see_each_other("caches on clones", &a, &b, INTERVAL, TRIALS)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_sees_writes_through_its_bare_handle() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let cached = store.cached(&settings()).unwrap();
    let stale = handles::stale_reads(&store, &cached, INTERVAL, TRIALS)
        .await
        .unwrap();
    assert_eq!(stale, 0, "{stale} of {TRIALS} stale");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_writes_do_not_flush() {
    let dir = tempfile::tempdir().unwrap();
    let cached = open(&dir).cached(&settings()).unwrap();
    for i in 0..50 {
        let e = handles::revision(memory_core::EpisodeId::new(), i);
        memory_core::StorageBackend::store_episode(&cached, &e)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            memory_core::StorageBackend::get_episode(&cached, e.id)
                .await
                .unwrap()
                .is_some()
        );
    }
    let stats = cached.stats();
    assert_eq!(
        (stats.foreign.flushes(), stats.episodes.hits),
        (0, 50),
        "{stats:?}"
    );
}
