//! `storage_operations`: single reads and a domain query through [`TursoStorage`] beside a
//! raw-libsql baseline doing the same work (a reused prepared statement on one
//! connection, payload decoded the same way), on the same local file, in the same run.
//!
//! ```sh
//! cargo bench -p memory-bench --bench storage_operations
//! ```

#![allow(clippy::expect_used)] // a failed operation must stop a benchmark, not be timed

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use memory_core::testing::samples;
use memory_core::testing::typical::TYPICAL_DOMAINS;
use memory_core::{Episode, EpisodeQuery, StorageBackend};
use support::{
    Raw, copy_database, load, local_store, runtime, scattered, timed, timed_against, typical,
};

/// Typical episodes in the database (and as many small ones).
const EPISODES: u64 = 10_000;

fn storage_operations(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("bench.db");
    let typical_set = typical(0..EPISODES);
    let small_set: Vec<Episode> = (0..EPISODES).map(samples::episode).collect();
    rt.block_on(async {
        let loader = local_store(&path).await?;
        load(&loader, &typical_set).await?;
        load(&loader, &small_set).await
    })
    .expect("loading the data set");
    // Opened after loading, like the raw connection: both start with cold page caches.
    let store = rt.block_on(local_store(&path)).expect("opening the store");
    // Four copies of the data: each side of a comparison reads its own, interleaved with
    // an identical twin on another (see `timed_against`).
    let copy = |name: &str| {
        let to = dir.path().join(name);
        copy_database(&path, &to).expect("copying the database");
        to
    };
    let twin_store = rt
        .block_on(local_store(&copy("twin_store.db")))
        .expect("opening the twin store");
    let raw = rt
        .block_on(Raw::local(&copy("raw.db")))
        .expect("a raw connection");
    let twin_raw = rt
        .block_on(Raw::local(&copy("twin_raw.db")))
        .expect("a raw connection");
    let twin_lookup = rt
        .block_on(twin_raw.lookup_statement())
        .expect("preparing the raw lookup");
    let lookup = rt
        .block_on(raw.lookup_statement())
        .expect("preparing the raw lookup");

    for (name, set) in [("get_typical", &typical_set), ("get_small", &small_set)] {
        let id = |i: u64| set[scattered(i, EPISODES)].id;
        // The twin reads another item than the measured side in the same iteration.
        let twin_id = |i: u64| set[scattered(i + EPISODES / 2, EPISODES)].id;
        let mut group = c.benchmark_group(format!("storage_operations/{name}"));
        group.bench_function("store", |b| {
            b.iter_custom(|iters| {
                timed_against(
                    &rt,
                    iters,
                    async |i| {
                        let found = store.get_episode(id(i)).await?;
                        black_box(found.expect("a stored episode"));
                        Ok(())
                    },
                    async |i| {
                        black_box(twin_store.get_episode(twin_id(i)).await?);
                        Ok(())
                    },
                )
            })
        });
        group.bench_function("raw_prepared", |b| {
            b.iter_custom(|iters| {
                timed_against(
                    &rt,
                    iters,
                    async |i| {
                        black_box(raw.get_with(&lookup, id(i)).await?);
                        Ok(())
                    },
                    async |i| {
                        black_box(twin_raw.get_with(&twin_lookup, twin_id(i)).await?);
                        Ok(())
                    },
                )
            })
        });
        group.finish();
    }

    // The store's own SQL for this query shape, so both sides run the same plan.
    let query_sql = "SELECT e.id, e.encoding, e.payload FROM episodes e WHERE 1 = 1 \
                     AND e.domain = ? ORDER BY e.start_time DESC, e.id DESC LIMIT ?";
    let query_stmt = rt
        .block_on(raw.conn.prepare(query_sql))
        .expect("preparing the raw query");
    let mut group = c.benchmark_group("storage_operations/query_domain_20");
    group.bench_function("store", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, async |i| {
                let domain = TYPICAL_DOMAINS[i as usize % 4];
                let page = store
                    .query_episodes(&EpisodeQuery::new().domain(domain).limit(20))
                    .await?;
                anyhow::ensure!(page.items.len() == 20, "a short page");
                black_box(page);
                Ok(())
            })
        })
    });
    group.bench_function("raw_prepared", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, async |i| {
                let domain = TYPICAL_DOMAINS[i as usize % 4];
                let items = raw_query(&query_stmt, domain).await;
                query_stmt.reset();
                let items = items?;
                anyhow::ensure!(items.len() == 21, "a short page");
                black_box(items);
                Ok(())
            })
        })
    });
    group.finish();
}

/// The raw query: 21 rows (one past the page, as the store fetches), each decoded.
async fn raw_query(
    stmt: &libsql::Statement,
    domain: &str,
) -> anyhow::Result<Vec<std::sync::Arc<Episode>>> {
    let mut rows = stmt.query((domain, 21i64)).await?;
    let mut out = Vec::with_capacity(21);
    while let Some(row) = rows.next().await? {
        let encoding: i64 = row.get(1)?;
        let bytes: Vec<u8> = row.get(2)?;
        let episode: Episode = memory_storage_turso::testing::decode_payload(
            encoding,
            &bytes,
            format_args!("episode"),
        )?;
        out.push(std::sync::Arc::new(episode));
    }
    Ok(out)
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = storage_operations
}
criterion_main!(benches);
