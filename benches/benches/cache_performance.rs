//! `cache_performance`: get-hit, get-miss, insert and a mixed workload on one and two
//! threads, for this crate's cache, moka and `Mutex<lru::LruCache>`, in the same run.
//!
//! ```sh
//! cargo bench -p memory-bench --bench cache_performance
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

/// What the writes of a mixed run write.
#[derive(Clone, Copy)]
enum Writes {
    /// Reads only.
    None,
    /// New keys, as agents recording new episodes do (each thread its own).
    NewKeys,
    /// Keys the threads also read, so both threads keep replacing entries the other one
    /// reads (the adversarial case for sharing).
    SharedKeys,
}

/// Reads over a key set half of which is present, and one write in ten operations as
/// `writes` says; `threads` threads share the cache and the reported time is wall time per
/// operation.
fn mixed(cache: &Arc<dyn Bench>, threads: usize, ops: u64, writes: Writes) -> Duration {
    let insert_every = match writes {
        Writes::None => 0,
        Writes::NewKeys | Writes::SharedKeys => 10,
    };
    let keys = Arc::new(keys(8_192, PRESENT * 2, 0));
    // Every insert gets a value of its own, made before the clock starts: values shared
    // between keys would make both threads bump the same reference counts on every hit,
    // which real entries (one value per episode) do not.
    let per_thread = ops / threads as u64;
    let inserts = if insert_every > 0 {
        per_thread.div_ceil(insert_every) as usize
    } else {
        0
    };
    let mut pools: Vec<Vec<Value>> = (0..threads)
        .map(|t| {
            (0..inserts.min(VALUE_POOL))
                .map(|i| Arc::new(format!("{t}-{i:062}")))
                .collect()
        })
        .collect();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for (t, values) in pools.iter_mut().enumerate() {
            let (cache, keys) = (Arc::clone(cache), Arc::clone(&keys));
            scope.spawn(move || {
                let mut next = 0;
                for i in 0..per_thread {
                    let key = keys[((i as usize) * 7 + t * 4_099) & 8_191];
                    if insert_every > 0 && i % insert_every == 0 {
                        let key = match writes {
                            Writes::NewKeys => (t as u64 + 1) << 48 | i,
                            Writes::None | Writes::SharedKeys => key,
                        };
                        cache.insert(key, Arc::clone(&values[next]));
                        next = (next + 1) % values.len();
                    } else {
                        black_box(cache.get(key));
                    }
                }
            });
        }
    });
    start.elapsed()
}

/// Distinct values per thread in the mixed runs: more than the key set, so a value is held
/// under at most one key at a time.
const VALUE_POOL: usize = 16_384;

fn mixed_workload(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_performance_mixed");
    for (mix, writes) in [
        ("read_only", Writes::None),
        ("10pct_insert", Writes::NewKeys),
        ("10pct_update", Writes::SharedKeys),
    ] {
        for threads in [1usize, 2] {
            // Fresh caches for every run: one run's writes must not shape the next one.
            for (name, cache) in &caches() {
                let id = BenchmarkId::new(format!("{mix}/{threads}_thread"), name);
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| mixed(cache, threads, iters.max(threads as u64), writes))
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
