//! `memory_pressure`: caches of real, variously sized values (1–32 KiB, log-uniform, like
//! encoded episodes) under a byte budget a tenth of the data, on Zipf 0.99 reads that load
//! on a miss: this crate's weighted cache, moka with a weigher and a `Mutex<lru::LruCache>`
//! that evicts by bytes, in the same run.
//!
//! Before the timed part each cache replays the same 400,000 reads once, and the bench
//! prints its hit ratio and the bytes of values it holds against the budget; it fails if
//! this crate's cache holds more than its budget. A miss allocates and fills its value, as
//! loading an episode would, so the timed reads include that cost at each cache's miss rate.
//!
//! ```sh
//! cargo bench -p memory-bench --bench memory_pressure
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memory_bench::zipf::ZipfWorkload;
use memory_cache_adaptive::{AdaptiveCache, CacheConfig};
use parking_lot::Mutex;

/// Distinct values.
const KEYS: u64 = 20_000;
/// Reads in the reporting pass.
const READS: usize = 400_000;

type Value = Arc<Vec<u8>>;

/// The size of value `key`: log-uniform over 1–32 KiB, fixed per key.
fn size_of(key: u64) -> usize {
    let unit = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    (1_024.0 * 32f64.powf(unit)) as usize
}

fn value_of(key: u64) -> Value {
    Arc::new(vec![(key % 251) as u8; size_of(key)])
}

trait Bench: Send + Sync {
    fn contains(&self, key: u64) -> bool;
    fn insert(&self, key: u64, value: Value);
    /// Bytes held as the cache weighs them (value bytes; this crate's cache adds 64 bytes
    /// of bookkeeping per entry).
    fn held(&self) -> u64;
}

/// Reads `key`, loading (allocating) its value on a miss; true on a hit.
fn read(cache: &dyn Bench, key: u64) -> bool {
    if cache.contains(key) {
        return true;
    }
    cache.insert(key, value_of(key));
    false
}

impl Bench for AdaptiveCache<u64, Value> {
    fn contains(&self, key: u64) -> bool {
        self.get(&key).is_some()
    }
    fn insert(&self, key: u64, value: Value) {
        AdaptiveCache::insert(self, key, value);
    }
    fn held(&self) -> u64 {
        self.weight()
    }
}

impl Bench for moka::sync::Cache<u64, Value> {
    fn contains(&self, key: u64) -> bool {
        self.get(&key).is_some()
    }
    fn insert(&self, key: u64, value: Value) {
        moka::sync::Cache::insert(self, key, value);
    }
    fn held(&self) -> u64 {
        self.run_pending_tasks();
        self.weighted_size()
    }
}

/// An LRU that evicts by bytes, as a hand-written cache would.
struct BytesLru {
    inner: Mutex<(lru::LruCache<u64, Value>, u64)>,
    budget: u64,
}

impl Bench for BytesLru {
    fn contains(&self, key: u64) -> bool {
        self.inner.lock().0.get(&key).is_some()
    }
    fn insert(&self, key: u64, value: Value) {
        let mut guard = self.inner.lock();
        let (cache, held) = &mut *guard;
        *held += value.len() as u64;
        if let Some(old) = cache.put(key, value) {
            *held -= old.len() as u64;
        }
        while *held > self.budget {
            match cache.pop_lru() {
                Some((_, v)) => *held -= v.len() as u64,
                None => break,
            }
        }
    }
    fn held(&self) -> u64 {
        self.inner.lock().1
    }
}

fn budget() -> u64 {
    (0..KEYS).map(|k| size_of(k) as u64).sum::<u64>() / 10
}

fn caches() -> Vec<(&'static str, Arc<dyn Bench>)> {
    let budget = budget();
    let adaptive: AdaptiveCache<u64, Value> = match AdaptiveCache::builder(
        CacheConfig::new(KEYS as usize)
            .max_weight(budget)
            .without_expiry(),
    )
    .weigher(|_, v: &Value| v.len() as u64)
    .build()
    {
        Ok(cache) => cache,
        Err(e) => panic!("bench cache config: {e}"),
    };
    let moka: moka::sync::Cache<u64, Value> = moka::sync::Cache::builder()
        .max_capacity(budget)
        .weigher(|_, v: &Value| u32::try_from(v.len()).unwrap_or(u32::MAX))
        .build();
    vec![
        ("adaptive", Arc::new(adaptive)),
        ("moka", Arc::new(moka)),
        (
            "lru_mutex",
            Arc::new(BytesLru {
                inner: Mutex::new((lru::LruCache::unbounded(), 0)),
                budget,
            }),
        ),
    ]
}

fn report(reads: &[u64]) {
    let budget = budget();
    println!(
        "memory_pressure: {KEYS} values of 1-32 KiB, budget {:.1} MiB (a tenth of the data), {READS} Zipf 0.99 reads",
        budget as f64 / 1_048_576.0
    );
    for (name, cache) in caches() {
        let hits = reads.iter().filter(|k| read(cache.as_ref(), **k)).count();
        let held = cache.held();
        println!(
            "  {name:<10} hit ratio {:.4}  holds {:.1} MiB by its own weighing ({:.1} % of the budget)",
            hits as f64 / reads.len() as f64,
            held as f64 / 1_048_576.0,
            held as f64 * 100.0 / budget as f64
        );
        if name == "adaptive" {
            assert!(
                held <= budget,
                "the cache holds {held} bytes over its budget {budget}"
            );
        }
    }
}

fn pressure(c: &mut Criterion) {
    let reads: Vec<u64> = ZipfWorkload::new(KEYS, 0.99, 11).reads(READS);
    report(&reads);
    let mut group = c.benchmark_group("memory_pressure");
    for (name, cache) in caches() {
        // Warm to the steady state: full, evicting.
        for key in &reads[..READS / 2] {
            read(cache.as_ref(), *key);
        }
        let mut i = 0;
        group.bench_function(BenchmarkId::new("read_or_load", name), |b| {
            b.iter(|| {
                i = (i + 1) % reads.len();
                black_box(read(cache.as_ref(), reads[i]))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = pressure
}
criterion_main!(benches);
