//! `search`: top-10 searches on a local libSQL file in one run: through the vector index
//! (unfiltered and with a domain filter matching a third of the items) beside the store's
//! exact scan of the same file, by text (2 of a stored episode's words drawn from a Zipf
//! vocabulary), hybrid, and a
//! repeated search answered by the cached store's query-result cache.
//!
//! ```sh
//! cargo bench -p memory-bench --bench search
//! ```
//!
//! With `--bench`: 20,000 typical episodes with 384-value embeddings (loading takes about a
//! minute). Without it (as `cargo test --benches` runs it): 1,500 with 64 values, each search
//! once. Recall and latency percentiles at 100,000 items are `memory-bench search`'s.

#![allow(clippy::expect_used)] // a failed operation must stop a benchmark, not be timed

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use memory_bench::search::corpus;
use memory_core::search::EpisodeSearch;
use memory_core::testing::samples::DOMAINS;
use memory_core::{EpisodeQuery, StorageBackend};
use memory_storage_turso::{CacheSettings, TursoConfig, TursoStorage};
use support::{load, runtime, timed};

/// Results per search.
const K: usize = 10;
/// Query vectors and word pairs drawn up front, cycled through.
const QUERIES: usize = 256;

struct Scale {
    items: usize,
    dimension: usize,
}

const FULL: Scale = Scale {
    items: 20_000,
    dimension: 384,
};
const SMALL: Scale = Scale {
    items: 1_500,
    dimension: 64,
};

fn search(c: &mut Criterion) {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { &FULL } else { &SMALL };
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("search.db");
    let (episodes, mut vectors, _) = corpus(scale.dimension, scale.items, 71).expect("the corpus");
    let store = rt
        .block_on(TursoStorage::open(TursoConfig::local(&path)))
        .expect("opening the store");
    rt.block_on(load(&store, &episodes)).expect("loading");
    // Two of the Zipf words of a stored episode: every text query has a match.
    let pairs: Vec<String> = episodes
        .iter()
        .step_by(episodes.len() / QUERIES)
        .take(QUERIES)
        .map(|e| {
            let all = memory_core::text::words(&e.description);
            all[all.len() - 8..all.len() - 6].join(" ")
        })
        .collect();
    drop(episodes);
    let exact = rt
        .block_on(TursoStorage::open(
            TursoConfig::local(&path).exact_search_below(u32::MAX),
        ))
        .expect("opening the exact store");
    let cached = store
        .clone()
        .cached(&CacheSettings::default())
        .expect("a cached store");
    let vectors: Vec<_> = (0..QUERIES).map(|_| vectors.next()).collect();
    let domain = EpisodeQuery::new().domain(DOMAINS[1]);
    let nth = |i: u64| i as usize % QUERIES;

    let mut group = c.benchmark_group("search");
    group.sample_size(if full { 50 } else { 10 });
    group.measurement_time(Duration::from_secs(if full { 10 } else { 1 }));
    let mut bench =
        |name: &str, store: &dyn StorageBackend, make: &dyn Fn(u64) -> EpisodeSearch| {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    timed(&rt, iters, async |i| {
                        let found = store.search_episodes(&make(i)).await?;
                        anyhow::ensure!(!found.is_empty(), "{name}: nothing found");
                        black_box(found);
                        Ok(())
                    })
                })
            });
        };
    let by_vector = |i: u64| EpisodeSearch::new(vectors[nth(i)].clone(), K);
    bench("index_unfiltered", &store, &by_vector);
    bench("index_one_domain", &store, &|i| {
        by_vector(i).filter(domain.clone())
    });
    bench("exact_unfiltered", &exact, &by_vector);
    bench("text_2_words", &store, &|i| {
        EpisodeSearch::text(pairs[nth(i)].clone(), K)
    });
    bench("hybrid", &store, &|i| {
        EpisodeSearch::hybrid(vectors[nth(i)].clone(), pairs[nth(i)].clone(), K)
    });
    // The same search again and again: after the first, the query-result cache answers.
    bench("cached_repeat", &cached, &|_| by_vector(0));
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
