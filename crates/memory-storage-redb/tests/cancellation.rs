//! A cached write to redb whose caller stops waiting (a timeout that fires while the durable
//! commit runs on its blocking thread) still finishes, and the cache then agrees with the
//! file: it never keeps serving what the write replaced. The change check is an hour away,
//! so nothing else would repair a stale entry.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use memory_core::testing::handles::revision;
use memory_core::{EpisodeId, StorageBackend};
use memory_storage_cached::CacheSettings;
use memory_storage_redb::RedbStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_gave_up_leaves_no_stale_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStorage::open(dir.path().join("cancel.redb")).unwrap();
    let settings = CacheSettings::default().change_check_interval(Duration::from_secs(3_600));
    let cached = store.cached(&settings).unwrap();
    let (mut cut, mut stale) = (0, 0);
    for trial in 0..40u64 {
        let x = EpisodeId::new();
        cached.store_episode(&revision(x, 0)).await.unwrap();
        for _ in 0..2 {
            cached.get_episode(x).await.unwrap();
        }
        let limit = Duration::from_micros(trial * 100);
        if tokio::time::timeout(limit, cached.store_episode(&revision(x, 1)))
            .await
            .is_err()
        {
            cut += 1;
        }
        // The commit finishes on its own; wait until the file has it.
        for _ in 0..200 {
            if store.get_episode(x).await.unwrap().unwrap().description == "revision 1" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let truth = store.get_episode(x).await.unwrap().unwrap();
        let seen = cached.get_episode(x).await.unwrap().unwrap();
        assert_eq!(
            truth.description, "revision 1",
            "trial {trial}: the write finished"
        );
        if seen.description != truth.description {
            stale += 1;
        }
    }
    println!("40 writes, {cut} cut off by their caller's timeout: {stale} stale cache entries");
    assert!(cut >= 1, "the timeouts cut writes off: {cut}");
    assert_eq!(stale, 0);
}
