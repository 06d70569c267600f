//! `metrics_overhead`: what `Instrumented` adds to the cheapest call there is, a cached
//! get (1,000 hot episodes in a `CachedStorage` over the in-memory store, watching the
//! store's change position as users run it), in one run: bare, then instrumented.
//!
//! ```sh
//! cargo bench -p memory-bench --bench metrics_overhead
//! ```

#![allow(clippy::expect_used)] // a failed operation must stop a benchmark, not be timed

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use memory_bench::replay;
use memory_bench::zipf::ZipfWorkload;
use memory_core::{ChangeSignal, EpisodeId, InMemoryStorage, StorageBackend};
use memory_metrics::{Instrumented, OperationMetrics};
use memory_storage_cached::{CacheSettings, CachedStorage};

fn hot_store(
    ids: &[EpisodeId],
    rt: &tokio::runtime::Runtime,
) -> CachedStorage<Arc<InMemoryStorage>> {
    let inner = Arc::new(InMemoryStorage::new());
    let signal: Arc<dyn ChangeSignal> = inner.clone();
    let store = CachedStorage::new(inner, &CacheSettings::default())
        .expect("cache settings")
        .with_change_signal(signal);
    rt.block_on(async {
        replay::load(
            &store,
            (0..ids.len() as u64).map(ZipfWorkload::episode),
            1_000,
        )
        .await?;
        for id in ids {
            replay::get_existing(&store, *id).await?;
        }
        anyhow::Ok(())
    })
    .expect("warming the cache");
    store
}

fn metrics_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let ids: Vec<EpisodeId> = (0..1_000).map(ZipfWorkload::id_of).collect();
    let bare = hot_store(&ids, &rt);
    let registry = prometheus::Registry::new();
    let metrics = OperationMetrics::register(&registry).expect("registering the metrics");
    let instrumented = Instrumented::new(hot_store(&ids, &rt), &metrics);
    let stores: [(&str, &dyn StorageBackend); 2] =
        [("bare", &bare), ("instrumented", &instrumented)];

    let mut group = c.benchmark_group("metrics_overhead/cached_get");
    for (name, store) in stores {
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = std::time::Instant::now();
                    for _ in 0..iters {
                        i += 1;
                        store
                            .get_episode(black_box(ids[i % ids.len()]))
                            .await
                            .expect("a get failed")
                            .expect("an episode is missing");
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, metrics_overhead);
criterion_main!(benches);
