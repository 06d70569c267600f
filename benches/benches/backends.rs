//! `backends`: the same operations on every store, in one run: the in-memory reference,
//! redb on a local file, and libSQL on a local file (both uncached, so the stores
//! themselves are compared). Typical episodes (1–32 KiB).
//!
//! - `get`: one episode by id, scattered over 10,000;
//! - `query`: the newest 20 episodes of a domain (the domains in turn);
//! - `batch_insert_100`: 100 new episodes in one `store_episodes` call (one transaction).
//!
//! ```sh
//! cargo bench -p memory-bench --bench backends
//! ```

#![allow(clippy::expect_used)] // a failed operation must stop a benchmark, not be timed

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use memory_bench::{agent, replay};
use memory_core::testing::typical::TYPICAL_DOMAINS;
use memory_core::{Episode, EpisodeId, EpisodeQuery, InMemoryStorage, StorageBackend};
use memory_storage_redb::RedbStorage;
use memory_storage_turso::{TursoConfig, TursoStorage};

const EPISODES: u64 = 10_000;
const BATCH: u64 = 100;

fn backends(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let stores: Vec<(&str, Arc<dyn StorageBackend>)> = vec![
        ("memory", Arc::new(InMemoryStorage::new())),
        (
            "redb",
            Arc::new(RedbStorage::open(dir.path().join("bench.redb")).expect("opening redb")),
        ),
        (
            "libsql_local",
            Arc::new(
                rt.block_on(TursoStorage::open(TursoConfig::local(
                    dir.path().join("bench.db"),
                )))
                .expect("opening libSQL"),
            ),
        ),
    ];
    for (_, store) in &stores {
        rt.block_on(replay::load(
            store.as_ref(),
            (0..EPISODES).map(|n| agent::episode(n, 0)),
            1_000,
        ))
        .expect("loading the data set");
    }
    let ids: Vec<EpisodeId> = (0..EPISODES)
        .map(|i| agent::id_of(memory_bench::scatter(i, EPISODES)))
        .collect();

    let mut group = c.benchmark_group("backends/get");
    for (name, store) in &stores {
        let mut i = 0usize;
        group.bench_function(*name, |b| {
            b.iter(|| {
                i += 1;
                rt.block_on(store.get_episode(black_box(ids[i % ids.len()])))
                    .expect("a get failed")
                    .expect("an episode is missing")
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("backends/query");
    for (name, store) in &stores {
        let mut i = 0usize;
        group.bench_function(*name, |b| {
            b.iter(|| {
                i += 1;
                let query = EpisodeQuery::new()
                    .domain(TYPICAL_DOMAINS[i % TYPICAL_DOMAINS.len()])
                    .limit(20);
                let page = rt
                    .block_on(store.query_episodes(&query))
                    .expect("a query failed");
                assert!(!page.items.is_empty(), "an empty page");
                page
            })
        });
    }
    group.finish();

    // New episode numbers, never stored before, for every insert of every store.
    let next = AtomicU64::new(1_000_000);
    let fresh = || -> Vec<Episode> {
        let first = next.fetch_add(BATCH, Ordering::Relaxed);
        (first..first + BATCH)
            .map(|n| agent::episode(n, 0))
            .collect()
    };
    let mut group = c.benchmark_group("backends/batch_insert_100");
    group.throughput(Throughput::Elements(BATCH));
    for (name, store) in &stores {
        group.bench_function(*name, |b| {
            b.iter_batched(
                fresh,
                |batch| {
                    rt.block_on(store.store_episodes(&batch))
                        .expect("a batch failed")
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, backends);
criterion_main!(benches);
