//! A cached write to redb whose caller stops waiting (a timeout that fires while the durable
//! commit runs on its blocking thread) still finishes, and the cache then agrees with the
//! file: it never keeps serving what the write replaced. The change check is an hour away,
//! so nothing else would repair a stale entry.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use memory_core::testing::handles;
use memory_storage_cached::CacheSettings;
use memory_storage_redb::RedbStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_gave_up_leaves_no_stale_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStorage::open(dir.path().join("cancel.redb")).unwrap();
    let settings = CacheSettings::default().change_check_interval(Duration::from_secs(3_600));
    let cached = store.cached(&settings).unwrap();
    let (cut, stale) = handles::cut_off_writes(&store, &cached, 40, Duration::from_micros(100))
        .await
        .unwrap();
    println!("40 writes, {cut} cut off by their caller's timeout: {stale} stale cache entries");
    assert!(cut >= 1, "the timeouts cut writes off: {cut}");
    assert_eq!(stale, 0);
}
