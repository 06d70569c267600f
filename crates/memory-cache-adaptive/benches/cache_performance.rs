//! `cache_performance`: get-hit, get-miss, insert and a mixed workload on one and two
//! threads, for this crate's cache, moka and `Mutex<lru::LruCache>`, in the same run.
//!
//! ```sh
//! cargo bench -p memory-cache-adaptive --bench cache_performance
//! ```

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memory_cache_adaptive::{AdaptiveCache, CacheConfig};
use parking_lot::Mutex;

const CAPACITY: usize = 20_000;
const PRESENT: u64 = 10_000;

type Value = Arc<String>;

/// The three caches behind one interface, so every benchmark runs the same code on each.
trait Bench: Send + Sync {
    fn get(&self, key: u64) -> Option<Value>;
    fn insert(&self, key: u64, value: Value);
}

impl Bench for AdaptiveCache<u64, Value> {
    fn get(&self, key: u64) -> Option<Value> {
        AdaptiveCache::get(self, &key)
    }
    fn insert(&self, key: u64, value: Value) {
        AdaptiveCache::insert(self, key, value);
    }
}

impl Bench for moka::sync::Cache<u64, Value> {
    fn get(&self, key: u64) -> Option<Value> {
        moka::sync::Cache::get(self, &key)
    }
    fn insert(&self, key: u64, value: Value) {
        moka::sync::Cache::insert(self, key, value);
    }
}

struct LockedLru(Mutex<lru::LruCache<u64, Value>>);

impl Bench for LockedLru {
    fn get(&self, key: u64) -> Option<Value> {
        self.0.lock().get(&key).cloned()
    }
    fn insert(&self, key: u64, value: Value) {
        self.0.lock().put(key, value);
    }
}

fn caches() -> Vec<(&'static str, Arc<dyn Bench>)> {
    let adaptive: AdaptiveCache<u64, Value> =
        match AdaptiveCache::new(CacheConfig::new(CAPACITY).without_expiry()) {
            Ok(cache) => cache,
            Err(e) => panic!("bench cache config: {e}"),
        };
    let lru = match NonZeroUsize::new(CAPACITY) {
        Some(n) => LockedLru(Mutex::new(lru::LruCache::new(n))),
        None => panic!("zero capacity"),
    };
    let caches: Vec<(&'static str, Arc<dyn Bench>)> = vec![
        ("adaptive", Arc::new(adaptive)),
        ("moka", Arc::new(moka::sync::Cache::new(CAPACITY as u64))),
        ("lru_mutex", Arc::new(lru)),
    ];
    for (_, cache) in &caches {
        // Each key gets its own value, as real entries do (one shared `Arc` would make every
        // hit bump the same reference count).
        for key in 0..PRESENT {
            cache.insert(key, Arc::new(format!("{key:064}")));
        }
        // Reads make the entries frequent, so admission keeps them.
        for _ in 0..3 {
            for key in 0..PRESENT {
                black_box(cache.get(key));
            }
        }
    }
    caches
}

/// A fixed pseudo-random key sequence, so no RNG runs in the timed loops.
fn keys(count: usize, modulo: u64, offset: u64) -> Vec<u64> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            offset + state % modulo
        })
        .collect()
}

fn single_ops(c: &mut Criterion) {
    let caches = caches();
    let hits = keys(4_096, PRESENT, 0);
    let misses = keys(4_096, 1 << 40, 1 << 41);
    let mut group = c.benchmark_group("cache_performance");
    for (name, cache) in &caches {
        for (i, key) in hits.iter().enumerate() {
            assert!(cache.get(*key).is_some(), "{name}: key {i} must be present");
        }
        let mut i = 0;
        group.bench_function(BenchmarkId::new("get_hit", name), |b| {
            b.iter(|| {
                i = (i + 1) & 4_095;
                black_box(cache.get(hits[i]))
            })
        });
        group.bench_function(BenchmarkId::new("get_miss", name), |b| {
            b.iter(|| {
                i = (i + 1) & 4_095;
                black_box(cache.get(misses[i]))
            })
        });
        let mut next = 1u64 << 42;
        group.bench_function(BenchmarkId::new("insert", name), |b| {
            b.iter_batched(
                || {
                    next += 1;
                    (next, Arc::new(format!("{next:064}")))
                },
                |(key, value)| cache.insert(key, value),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Reads over a key set half of which is present, and one insert every `insert_every`
/// operations (0: none); `threads` threads share the cache and the reported time is wall
/// time per operation.
fn mixed(cache: &Arc<dyn Bench>, threads: usize, ops: u64, insert_every: u64) -> Duration {
    let keys = Arc::new(keys(8_192, PRESENT * 2, 0));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (cache, keys) = (Arc::clone(cache), Arc::clone(&keys));
            scope.spawn(move || {
                // Values are made before the clock starts mattering: one per slot, reused.
                let values: Vec<Value> =
                    (0..64).map(|i| Arc::new(format!("{t}-{i:062}"))).collect();
                let per_thread = ops / threads as u64;
                for i in 0..per_thread {
                    let key = keys[((i as usize) * 7 + t * 4_099) & 8_191];
                    if insert_every > 0 && i % insert_every == 0 {
                        cache.insert(key, Arc::clone(&values[(i / insert_every) as usize & 63]));
                    } else {
                        black_box(cache.get(key));
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn mixed_workload(c: &mut Criterion) {
    let caches = caches();
    let mut group = c.benchmark_group("cache_performance_mixed");
    for (name, cache) in &caches {
        for (mix, insert_every) in [("read_only", 0), ("10pct_insert", 10)] {
            for threads in [1usize, 2] {
                let id = BenchmarkId::new(format!("{mix}/{threads}_thread"), name);
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        mixed(cache, threads, iters.max(threads as u64), insert_every)
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = single_ops, mixed_workload
}
criterion_main!(benches);
