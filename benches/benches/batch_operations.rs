//! `batch_operations`: inserting 1,000 typical episodes in one call, through
//! [`TursoStorage::store_episodes`] (one transaction of multi-row statements) and through a
//! raw-libsql loader (one transaction, a reused prepared single-row insert per table, the
//! same full-text index; and once more without that index, to show its cost), into
//! an empty database each time, on the local file and on a real sqld over loopback, in the
//! same run. Throughput is in episodes per second.
//!
//! ```sh
//! cargo bench -p memory-bench --bench batch_operations
//! ```

#![allow(clippy::expect_used)] // a failed operation must stop a benchmark, not be timed

mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memory_core::{Episode, StorageBackend};
use memory_storage_turso::{TursoConfig, TursoStorage};
use support::{Raw, runtime, typical};

const BATCH: u64 = 1_000;

/// Times `insert` on an emptied database for each iteration; emptying is not timed.
fn empty_then_time<I>(
    rt: &tokio::runtime::Runtime,
    raw: &Raw,
    iters: u64,
    mut insert: I,
) -> Duration
where
    I: AsyncFnMut() -> anyhow::Result<()>,
{
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            raw.clear().await.expect("emptying the database");
            let started = Instant::now();
            insert().await.expect("a benchmarked batch failed");
            total += started.elapsed();
        }
        total
    })
}

fn insert_pair(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: &TursoStorage,
    raw: &Raw,
    batch: &[Episode],
) {
    let mut group = c.benchmark_group(format!("batch_operations/insert_1000/{name}"));
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(10);
    group.bench_function("store", |b| {
        b.iter_custom(|iters| {
            empty_then_time(rt, raw, iters, async || {
                Ok(store.store_episodes(batch).await?)
            })
        })
    });
    group.bench_function("raw_prepared", |b| {
        b.iter_custom(|iters| {
            empty_then_time(rt, raw, iters, async || raw.insert_episodes(batch).await)
        })
    });
    // What the full-text index costs: the same loader without it.
    group.bench_function("raw_prepared_without_text", |b| {
        b.iter_custom(|iters| {
            empty_then_time(rt, raw, iters, async || {
                raw.insert_episodes_with(batch, false).await
            })
        })
    });
    group.finish();
}

fn batch_operations(c: &mut Criterion) {
    let rt = runtime();
    let batch = typical(0..BATCH);

    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("bench.db");
    let store = rt
        .block_on(TursoStorage::open(TursoConfig::local(&path)))
        .expect("opening the local store");
    let raw = rt.block_on(Raw::local(&path)).expect("a raw connection");
    insert_pair(c, &rt, "local", &store, &raw, &batch);

    let server = rt
        .block_on(support::sqld::Sqld::start())
        .expect("starting sqld (scripts/install-sqld.sh installs it)");
    let remote = rt
        .block_on(TursoStorage::open(TursoConfig::remote(server.url(), None)))
        .expect("opening the remote store");
    let raw_remote = rt
        .block_on(Raw::remote(&server.url()))
        .expect("a raw remote connection");
    insert_pair(c, &rt, "sqld", &remote, &raw_remote, &batch);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = batch_operations
}
criterion_main!(benches);
