//! Multi-threaded stress: four threads mixing inserts, reads, invalidations and coalesced
//! loads over shared keys, bounded in operations. Every read returns a version no newer
//! than the newest published and, for the key's owner, never older than its own last
//! write; the bounds hold; hits + misses = lookups.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use memory_cache_adaptive::{AdaptiveCache, CacheConfig, CacheStats, QueryCache};

const THREADS: u64 = 4;
const KEYS: u64 = 512;
const OPS: u64 = 100_000;
const MAX_ENTRIES: usize = 200;

#[derive(Debug)]
struct Versioned {
    key: u64,
    version: u64,
}

fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn invariants_hold_under_concurrency() {
    let cache: AdaptiveCache<u64, Arc<Versioned>> = AdaptiveCache::new(
        CacheConfig::new(MAX_ENTRIES)
            .max_weight(MAX_ENTRIES as u64 * 64 * 3 / 4)
            .idle_between(Duration::from_millis(1), Duration::from_millis(50))
            .max_age(Duration::from_millis(200))
            .shards(4),
    )
    .unwrap();
    let latest: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, latest) = (cache.clone(), Arc::clone(&latest));
            std::thread::spawn(move || {
                let mut state = 0x9E37_79B9 + t;
                let mut lookups = 0u64;
                for _ in 0..OPS {
                    let r = rng(&mut state);
                    let key = r % KEYS;
                    let owned = key % THREADS == t;
                    match (r >> 32) % 10 {
                        0..=2 if owned => {
                            let version = latest[key as usize].load(Ordering::SeqCst) + 1;
                            latest[key as usize].store(version, Ordering::SeqCst);
                            cache.insert(key, Arc::new(Versioned { key, version }));
                            lookups += 1;
                            if let Some(v) = cache.get(&key) {
                                assert_eq!(v.version, version, "owner reads its own write");
                            }
                        }
                        3 if owned => {
                            cache.invalidate(&key);
                            lookups += 1;
                            assert!(cache.get(&key).is_none(), "owner reads its invalidation");
                        }
                        4 => {
                            lookups += 1;
                            let published = latest[key as usize].load(Ordering::SeqCst);
                            let loaded = futures::executor::block_on(
                                cache.get_or_load(key, || async { Ok::<_, ()>(None) }),
                            );
                            if let Ok(Some(v)) = loaded {
                                assert_eq!(v.key, key);
                                assert!(v.version <= latest[key as usize].load(Ordering::SeqCst));
                                if owned {
                                    assert_eq!(v.version, published);
                                }
                            }
                        }
                        _ => {
                            lookups += 1;
                            let published = latest[key as usize].load(Ordering::SeqCst);
                            if let Some(v) = cache.get(&key) {
                                assert_eq!(v.key, key, "a value under the wrong key");
                                let newest = latest[key as usize].load(Ordering::SeqCst);
                                assert!(v.version <= newest, "a version never written");
                                if owned {
                                    assert_eq!(v.version, published, "owner sees an old version");
                                }
                            }
                        }
                    }
                    assert!(cache.len() <= MAX_ENTRIES);
                }
                lookups
            })
        })
        .collect();
    let lookups: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let s = cache.snapshot();
    assert_eq!(s.hits + s.misses, lookups, "hits + misses = lookups");
    assert!(s.hits > 0 && s.misses > 0);
    assert!(cache.len() <= MAX_ENTRIES);
    assert!(cache.weight() <= MAX_ENTRIES as u64 * 64 * 3 / 4);
}

#[test]
fn query_cache_never_serves_across_an_invalidation_under_concurrency() {
    // Each thread owns one dependency; it bumps a version, invalidates, and then must never
    // read a result computed from an older version.
    let cache: QueryCache<u64, u64, u64> = QueryCache::new(CacheConfig::new(64)).unwrap();
    let versions: Arc<Vec<AtomicU64>> = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, versions) = (cache.clone(), Arc::clone(&versions));
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    let current = versions[t as usize].load(Ordering::SeqCst);
                    if i % 7 == 0 {
                        versions[t as usize].store(current + 1, Ordering::SeqCst);
                        cache.invalidate(&t);
                        continue;
                    }
                    let v = futures::executor::block_on(cache.get_or_load(t, &[t], || async {
                        Ok::<_, ()>(versions[t as usize].load(Ordering::SeqCst))
                    }))
                    .unwrap();
                    assert_eq!(
                        v, current,
                        "served a result older than the last invalidation"
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// Loads that return a value while another thread writes the same key: two writer threads
/// write every key through (`begin_load` before the source changes, `complete_write`
/// after, as the cached store does; a quarter of the time three keys at once through
/// `complete_writes`) or invalidate it, and two reader threads load through
/// `get_or_load` from the same source, pausing between reading the source and answering so
/// that writes land inside their loads. Every read returns a version at least as new as the
/// last one acknowledged (written and told to the cache) before the read began: a load that
/// overlapped a write is never cached over it.
#[test]
fn a_load_overlapping_a_write_of_its_key_is_never_cached_over_it() {
    const HOT_KEYS: u64 = 16;
    const WRITES: u64 = 20_000;
    let cache: AdaptiveCache<u64, Arc<Versioned>> =
        AdaptiveCache::new(CacheConfig::new(1_000).shards(4)).unwrap();
    let source: Arc<Vec<AtomicU64>> = Arc::new((0..HOT_KEYS).map(|_| AtomicU64::new(0)).collect());
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..HOT_KEYS).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // One lock per key orders the commits of one key's writers, as a database's write lock
    // does; their cache bookkeeping runs after it, in either order.
    let locks: Arc<Vec<parking_lot::Mutex<()>>> =
        Arc::new((0..HOT_KEYS).map(|_| parking_lot::Mutex::new(())).collect());
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let (cache, source, acked, locks) = (
                cache.clone(),
                Arc::clone(&source),
                Arc::clone(&acked),
                Arc::clone(&locks),
            );
            std::thread::spawn(move || {
                let mut state = 0xABCD_0000 + w;
                for i in 0..WRITES {
                    if i % 8 == 0 {
                        std::thread::yield_now(); // give the readers' loads room to overlap
                    }
                    let r = rng(&mut state);
                    let key = r % HOT_KEYS;
                    if (r >> 48).is_multiple_of(4) {
                        // A batch of three keys written through together.
                        let mut keys = [key, (key + 5) % HOT_KEYS, (key + 11) % HOT_KEYS];
                        keys.sort_unstable();
                        let tickets: Vec<_> = keys.iter().map(|k| cache.begin_load(k)).collect();
                        let versions: Vec<u64> = {
                            let _commit: Vec<_> =
                                keys.iter().map(|k| locks[*k as usize].lock()).collect();
                            keys.iter()
                                .map(|k| source[*k as usize].fetch_add(1, Ordering::SeqCst) + 1)
                                .collect()
                        };
                        cache.complete_writes(keys.iter().zip(tickets).zip(&versions).map(
                            |((k, t), v)| {
                                (
                                    *k,
                                    t,
                                    Arc::new(Versioned {
                                        key: *k,
                                        version: *v,
                                    }),
                                )
                            },
                        ));
                        for (k, v) in keys.iter().zip(&versions) {
                            acked[*k as usize].fetch_max(*v, Ordering::SeqCst);
                        }
                        continue;
                    }
                    let ticket = cache.begin_load(&key);
                    let version = {
                        let _commit = locks[key as usize].lock();
                        source[key as usize].fetch_add(1, Ordering::SeqCst) + 1
                    };
                    if (r >> 40).is_multiple_of(2) {
                        cache.complete_write(key, ticket, Arc::new(Versioned { key, version }));
                    } else {
                        drop(ticket);
                        cache.invalidate(&key);
                    }
                    acked[key as usize].fetch_max(version, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let (cache, source, acked, done) = (
                cache.clone(),
                Arc::clone(&source),
                Arc::clone(&acked),
                Arc::clone(&done),
            );
            std::thread::spawn(move || {
                let mut state = 0x1234_0000 + r;
                let (mut reads, mut overlapped) = (0u64, 0u64);
                while !done.load(Ordering::SeqCst) {
                    let key = rng(&mut state) % HOT_KEYS;
                    let floor = acked[key as usize].load(Ordering::SeqCst);
                    let got = futures::executor::block_on(cache.get_or_load(key, || async {
                        let version = source[key as usize].load(Ordering::SeqCst);
                        // Let writes land between reading the source and answering.
                        for _ in 0..500 {
                            std::hint::spin_loop();
                        }
                        std::thread::yield_now();
                        if source[key as usize].load(Ordering::SeqCst) != version {
                            overlapped += 1;
                        }
                        Ok::<_, ()>(Some(Arc::new(Versioned { key, version })))
                    }))
                    .unwrap()
                    .unwrap();
                    assert_eq!(got.key, key);
                    assert!(
                        got.version >= floor,
                        "key {key}: read version {} after version {floor} was acknowledged",
                        got.version
                    );
                    reads += 1;
                }
                (reads, overlapped)
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (mut reads, mut overlapped) = (0, 0);
    for reader in readers {
        let (r, o) = reader.join().unwrap();
        reads += r;
        overlapped += o;
    }
    println!("{reads} reads, {overlapped} loads overlapped a write of their key");
    // The race was really run (usually over a thousand times).
    assert!(
        overlapped >= 100,
        "loads overlapped writes only {overlapped} times"
    );
}
