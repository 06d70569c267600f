//! `prepared_statements`: the same lookup by id repeated, with the statement prepared once
//! and reused against prepared for every use, on the local file and on a real sqld over
//! loopback, in the same run. Both through the store (statement cache on, and off with
//! capacity 0) and through raw libsql. Remote `prepare` asks the server to describe the
//! statement: one more round trip per use without the cache.
//!
//! ```sh
//! cargo bench -p memory-bench --bench prepared_statements
//! ```

#![allow(clippy::expect_used)] // a failed operation must stop a benchmark, not be timed

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use memory_core::testing::samples;
use memory_core::{Episode, StorageBackend};
use memory_storage_turso::{TursoConfig, TursoStorage};
use support::{Raw, load, runtime, scattered, timed};

const EPISODES: u64 = 1_000;

fn lookups(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    config: TursoConfig,
    raw: &Raw,
    set: &[Episode],
) {
    let cached = rt
        .block_on(TursoStorage::open(config.clone()))
        .expect("opening the store");
    let uncached = rt
        .block_on(TursoStorage::open(config.statement_cache_capacity(0)))
        .expect("opening the store without a statement cache");
    let n = set.len() as u64;
    let mut group = c.benchmark_group(format!("prepared_statements/get/{name}"));
    for (label, store) in [("store_cached", &cached), ("store_uncached", &uncached)] {
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                timed(rt, iters, async |i| {
                    let found = store.get_episode(set[scattered(i, n)].id).await?;
                    black_box(found.expect("a stored episode"));
                    Ok(())
                })
            })
        });
    }
    group.bench_function("raw_reused", |b| {
        // Prepared here, not before the group: sqld expires a stream idle for 10 s, and a
        // statement prepared then would be gone by now.
        let lookup = rt
            .block_on(raw.lookup_statement())
            .expect("preparing the raw lookup");
        b.iter_custom(|iters| {
            timed(rt, iters, async |i| {
                black_box(raw.get_with(&lookup, set[scattered(i, n)].id).await?);
                Ok(())
            })
        })
    });
    group.bench_function("raw_prepare_each", |b| {
        b.iter_custom(|iters| {
            timed(rt, iters, async |i| {
                black_box(raw.get_preparing(set[scattered(i, n)].id).await?);
                Ok(())
            })
        })
    });
    group.finish();
}

fn prepared_statements(c: &mut Criterion) {
    let rt = runtime();
    // Small episodes: the statement's cost is what is measured, not decoding.
    let set: Vec<Episode> = (0..EPISODES).map(samples::episode).collect();

    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("bench.db");
    let config = TursoConfig::local(&path);
    rt.block_on(async { load(&TursoStorage::open(config.clone()).await?, &set).await })
        .expect("loading the local data set");
    let raw = rt.block_on(Raw::local(&path)).expect("a raw connection");
    lookups(c, &rt, "local", config, &raw, &set);

    let server = rt
        .block_on(support::sqld::Sqld::start())
        .expect("starting sqld (scripts/install-sqld.sh installs it)");
    let config = TursoConfig::remote(server.url(), None);
    rt.block_on(async { load(&TursoStorage::open(config.clone()).await?, &set).await })
        .expect("loading the remote data set");
    let raw = rt
        .block_on(Raw::remote(&server.url()))
        .expect("a raw remote connection");
    lookups(c, &rt, "sqld", config, &raw, &set);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = prepared_statements
}
criterion_main!(benches);
