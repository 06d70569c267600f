//! Export holds at most two pages, whatever the store's size: the heap's peak while exporting five
//! times as many typical episodes is not higher (the counting allocator, sampled every
//! 200 µs).
//! With pages of the query limit (10,000) the peak grew with the store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use memory_cli::jsonl::{self, Kinds};
use memory_core::testing::typical::typical_episode;
use memory_core::{EpisodeQuery, StorageBackend};
use memory_storage_turso::{TursoConfig, TursoStorage};

#[global_allocator]
static HEAP: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// The heap's peak above its level at the start, while exporting a store of `items`
/// typical episodes.
async fn export_peak(items: u64) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let store = TursoStorage::open(TursoConfig::local(dir.path().join("s.db")))
        .await
        .unwrap();
    let all: Vec<_> = (0..items).map(typical_episode).collect();
    for chunk in all.chunks(500) {
        store.store_episodes(chunk).await.unwrap();
    }
    drop(all);
    let start = HEAP.allocated();
    let (stop, peak) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(start)),
    );
    let sampler = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(HEAP.allocated(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let counts = jsonl::export(
        &store,
        Kinds::ALL,
        &EpisodeQuery::new(),
        &mut std::io::sink(),
        |_| {},
    )
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed).saturating_sub(start);
    assert_eq!(counts.episodes, items);
    assert_eq!(store.count_episodes().await.unwrap(), items);
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_heap_peak_does_not_grow_with_the_store() {
    let small = export_peak(600).await;
    let large = export_peak(3_000).await;
    println!(
        "export heap peak: {:.1} MiB at 600 episodes, {:.1} MiB at 3,000",
        small as f64 / 1048576.0,
        large as f64 / 1048576.0
    );
    // A page of 200 typical episodes decodes to about 5 MiB; the store's size must not
    // show (the variation between pages of one size is well under 1.5x).
    assert!(
        (large as f64) < small as f64 * 1.5,
        "the peak grew with the store: {small} bytes at 600 episodes, {large} at 3,000"
    );
    assert!(
        large < 32 << 20,
        "an export of typical episodes held {large} bytes"
    );
}
