//! Behaviour of both caches: bounds, expiry, negative caching, coalesced loads and the
//! in-flight invalidation race, each forced deterministically.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memory_cache_adaptive::{
    AdaptiveCache, CacheConfig, CacheStats, Clock, Lookup, ManualClock, QueryCache,
};
use tokio::sync::oneshot;

fn cache(config: CacheConfig) -> (AdaptiveCache<u64, Arc<Vec<u8>>>, ManualClock) {
    let clock = ManualClock::new();
    let cache = AdaptiveCache::builder(config)
        .weigher(|_, v: &Arc<Vec<u8>>| v.len() as u64)
        .clock(Arc::new(clock.clone()) as Arc<dyn Clock>)
        .build()
        .unwrap();
    (cache, clock)
}

fn value(n: usize) -> Arc<Vec<u8>> {
    Arc::new(vec![7; n])
}

#[test]
fn insert_get_replace_invalidate_without_a_runtime() {
    let (c, _) = cache(CacheConfig::new(100).without_expiry());
    assert_eq!(c.get(&1), None);
    c.insert(1, value(3));
    assert_eq!(c.get(&1), Some(value(3)));
    c.insert(1, value(5));
    assert_eq!(c.get(&1), Some(value(5)));
    c.invalidate(&1);
    assert_eq!(c.get(&1), None);
    c.insert(2, value(1));
    c.insert(3, value(1));
    c.invalidate_all();
    assert!(c.is_empty());
    let s = c.snapshot();
    assert_eq!((s.hits, s.misses, s.inserts), (2, 2, 4));
    assert_eq!(s.evicted_invalidated, 3);
}

#[test]
fn entry_and_weight_bounds_hold() {
    let (c, _) = cache(CacheConfig::new(500).without_expiry().shards(4));
    for k in 0..5_000 {
        c.insert(k, value(10));
        c.get(&(k % 50));
        assert!(c.len() <= 500, "len {} after {k}", c.len());
    }
    let (c, _) = cache(
        CacheConfig::new(100_000)
            .max_weight(64 * 1024)
            .without_expiry()
            .shards(2),
    );
    for k in 0..5_000 {
        c.insert(k, value(100 + (k as usize % 900)));
        assert!(c.weight() <= 64 * 1024, "weight {} after {k}", c.weight());
    }
    assert!(c.weight() > 48 * 1024, "the budget is used: {}", c.weight());
    assert!(c.snapshot().evicted_capacity > 0);
}

#[test]
fn a_value_heavier_than_a_shard_is_not_cached() {
    let (c, _) = cache(
        CacheConfig::new(100)
            .max_weight(1_000)
            .without_expiry()
            .shards(1),
    );
    assert!(!c.insert(1, value(2_000)));
    assert_eq!(c.get(&1), None);
    assert_eq!(c.weight(), 0);
}

#[test]
fn idle_time_grows_with_use_but_age_is_absolute() {
    let config = CacheConfig::new(100)
        .idle_between(Duration::from_secs(10), Duration::from_secs(80))
        .max_age(Duration::from_secs(100))
        .shards(1);
    let (c, clock) = cache(config);
    c.insert(1, value(1)); // never read: may idle 10 s
    c.insert(2, value(1)); // read 3 times: may idle 80 s
    for _ in 0..3 {
        assert!(c.get(&2).is_some());
    }
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        c.get(&1),
        None,
        "an unused entry expires after the minimum idle time"
    );
    clock.advance(Duration::from_secs(60));
    assert!(c.get(&2).is_some(), "a used entry may idle longer");
    // Keep reading entry 2 often: it still expires at the maximum age.
    for _ in 0..6 {
        clock.advance(Duration::from_secs(4));
        assert!(c.get(&2).is_some());
    }
    clock.advance(Duration::from_secs(5)); // 11 + 60 + 24 + 5 = 100 s after insertion
    assert_eq!(c.get(&2), None, "no entry outlives the maximum age");
    let s = c.snapshot();
    assert_eq!((s.evicted_idle, s.evicted_age), (1, 1));
}

#[test]
fn sweep_removes_expired_entries_without_reads() {
    let (c, clock) = cache(
        CacheConfig::new(1_000)
            .idle_between(Duration::from_secs(5), Duration::from_secs(5))
            .shards(2),
    );
    for k in 0..100 {
        c.insert(k, value(1));
    }
    clock.advance(Duration::from_secs(6));
    assert_eq!(c.len(), 100);
    assert_eq!(c.sweep_expired(), 100);
    assert!(c.is_empty());
}

#[test]
fn negative_entries_answer_not_found_for_their_ttl() {
    let (c, clock) = cache(
        CacheConfig::new(100)
            .negative_ttl(Duration::from_secs(2))
            .shards(1),
    );
    assert!(c.insert_not_found(9));
    assert_eq!(c.lookup(&9), Lookup::NotFound);
    assert_eq!(c.get(&9), None);
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.lookup(&9), Lookup::Miss);
    let s = c.snapshot();
    assert_eq!((s.hits, s.negative_hits, s.misses), (2, 2, 1));
    let (plain, _) = cache(CacheConfig::new(100));
    assert!(
        !plain.insert_not_found(9),
        "negative caching is off by default"
    );
    assert_eq!(plain.lookup(&9), Lookup::Miss);
}

fn read_through(c: &AdaptiveCache<u64, Arc<Vec<u8>>>, key: u64) {
    if c.get(&key).is_none() {
        c.insert(key, value(1));
    }
}

#[test]
fn one_scan_does_not_flush_the_hot_set() {
    let (c, _) = cache(CacheConfig::new(1_000).without_expiry().shards(1));
    let hot: Vec<u64> = (0..500).collect();
    for _ in 0..20 {
        for k in &hot {
            read_through(&c, *k);
        }
    }
    // A scan three times the cache size, with no hot traffic meanwhile.
    for cold in 10_000..13_000 {
        read_through(&c, cold);
    }
    let kept = hot.iter().filter(|k| c.contains_key(k)).count();
    assert!(
        kept >= 490,
        "only {kept} of 500 hot keys survived a 3,000-key scan"
    );
}

#[test]
fn a_long_scan_amid_hot_traffic_does_not_flush_the_hot_set() {
    let (c, _) = cache(CacheConfig::new(1_000).without_expiry().shards(1));
    let hot: Vec<u64> = (0..500).collect();
    for _ in 0..20 {
        for k in &hot {
            read_through(&c, *k);
        }
    }
    // 50,000 cold keys, one hot read after every ten of them.
    for (i, cold) in (100_000..150_000).enumerate() {
        read_through(&c, cold);
        if i % 10 == 0 {
            read_through(&c, hot[(i / 10) % hot.len()]);
        }
    }
    let kept = hot.iter().filter(|k| c.contains_key(k)).count();
    assert!(kept >= 475, "only {kept} of 500 hot keys survived");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn concurrent_misses_run_the_loader_once() {
    let (c, _) = cache(CacheConfig::new(100));
    let calls = Arc::new(AtomicUsize::new(0));
    let results = runtime().block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (c, calls) = (c.clone(), calls.clone());
                tokio::spawn(async move {
                    c.get_or_load(5, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, String>(Some(value(5)))
                    })
                    .await
                })
            })
            .collect();
        futures::future::join_all(tasks).await
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    for r in results {
        assert_eq!(r.unwrap(), Ok(Some(value(5))));
    }
    assert_eq!(c.get(&5), Some(value(5)));
    assert_eq!(c.snapshot().loads, 1);
}

#[test]
fn a_loader_error_reaches_every_waiter_and_is_not_cached() {
    let (c, _) = cache(CacheConfig::new(100).negative_ttl(Duration::from_secs(60)));
    let calls = Arc::new(AtomicUsize::new(0));
    let results = runtime().block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (c, calls) = (c.clone(), calls.clone());
                tokio::spawn(async move {
                    c.get_or_load(1, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<Option<Arc<Vec<u8>>>, _>("disk on fire".to_string())
                    })
                    .await
                })
            })
            .collect();
        futures::future::join_all(tasks).await
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    for r in results {
        assert_eq!(r.unwrap(), Err("disk on fire".to_string()));
    }
    assert_eq!(
        c.lookup(&1),
        Lookup::Miss,
        "errors are not cached, not even negatively"
    );
    let retry = futures::executor::block_on(c.get_or_load(1, || async { Ok::<_, String>(None) }));
    assert_eq!(retry, Ok(None));
    assert_eq!(
        c.lookup(&1),
        Lookup::NotFound,
        "a successful `None` is cached negatively"
    );
}

#[test]
fn a_load_overlapping_an_invalidation_is_returned_but_not_stored() {
    let (c, _) = cache(CacheConfig::new(100));
    let rt = runtime();
    let (release, gate) = oneshot::channel::<()>();
    let (started_tx, started) = oneshot::channel::<()>();
    let reader = {
        let c = c.clone();
        rt.spawn(async move {
            c.get_or_load(1, || async move {
                // The read happens before the write: it sees the old value.
                started_tx.send(()).unwrap();
                gate.await.unwrap();
                Ok::<_, String>(Some(value(1)))
            })
            .await
        })
    };
    rt.block_on(started).unwrap();
    // The write lands while the read is in flight.
    c.invalidate(&1);
    // A read that starts after the write does not join the stale flight.
    let fresh = rt.block_on(c.get_or_load(1, || async { Ok::<_, String>(Some(value(2))) }));
    assert_eq!(fresh, Ok(Some(value(2))));
    release.send(()).unwrap();
    let old = rt.block_on(reader).unwrap();
    assert_eq!(
        old,
        Ok(Some(value(1))),
        "the in-flight caller still gets its result"
    );
    assert_eq!(c.get(&1), Some(value(2)), "the stale result was not stored");
    assert_eq!(c.snapshot().loads_discarded, 1);
}

#[test]
fn a_load_overlapping_an_insert_is_not_stored_even_after_a_cancelled_load() {
    let (c, _) = cache(CacheConfig::new(100));
    let rt = runtime();
    // A load whose caller gives up mid-flight must not leave the cache believing that no
    // load is in flight (writers then skip fencing loads off).
    let cancelled = c.get_or_load(1, std::future::pending::<Result<_, String>>);
    let timed_out =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(10), cancelled).await });
    assert!(timed_out.is_err());
    let (release, gate) = oneshot::channel::<()>();
    let (started_tx, started) = oneshot::channel::<()>();
    let reader = {
        let c = c.clone();
        rt.spawn(async move {
            c.get_or_load(1, || async move {
                started_tx.send(()).unwrap();
                gate.await.unwrap();
                Ok::<_, String>(Some(value(1)))
            })
            .await
        })
    };
    rt.block_on(started).unwrap();
    assert!(c.insert(1, value(2)));
    release.send(()).unwrap();
    assert_eq!(rt.block_on(reader).unwrap(), Ok(Some(value(1))));
    assert_eq!(
        c.get(&1),
        Some(value(2)),
        "the older load did not replace the write"
    );
    assert_eq!(c.snapshot().loads_discarded, 1);
}

#[derive(Clone, Hash, PartialEq, Eq, Debug)]
enum Query {
    Domain(&'static str),
    All,
}

#[derive(Hash)]
enum Dep {
    Domain(&'static str),
    Everything,
}

fn query_cache() -> QueryCache<Query, Dep, Arc<Vec<u32>>> {
    QueryCache::with_weigher(
        CacheConfig::new(1_000).max_weight(1 << 20),
        |_, r: &Arc<Vec<u32>>| 4 * r.len() as u64,
        None,
    )
    .unwrap()
}

#[test]
fn query_results_follow_their_dependencies() {
    let q = query_cache();
    let web = Query::Domain("web");
    let deps = [Dep::Domain("web"), Dep::Everything];
    let ticket = q.begin(&deps);
    assert!(q.complete(web.clone(), ticket, Arc::new(vec![1, 2])));
    assert!(q.complete(
        Query::All,
        q.begin(&[Dep::Everything]),
        Arc::new(vec![1, 2, 3])
    ));
    assert_eq!(q.get(&web), Some(Arc::new(vec![1, 2])));
    q.invalidate(&Dep::Domain("cli"));
    assert_eq!(
        q.get(&web),
        Some(Arc::new(vec![1, 2])),
        "unrelated writes keep results"
    );
    q.invalidate(&Dep::Domain("web"));
    assert_eq!(q.get(&web), None, "a dependency changed");
    assert_eq!(q.get(&Query::All), Some(Arc::new(vec![1, 2, 3])));
    q.invalidate(&Dep::Everything);
    assert_eq!(q.get(&Query::All), None);
    let s = q.snapshot();
    assert_eq!(s.evicted_invalidated, 2);
    assert_eq!(s.hits + s.misses, 5);
}

#[test]
fn a_query_read_overlapping_an_invalidation_is_not_stored() {
    let q = query_cache();
    let web = Query::Domain("web");
    // Manual cache-aside: begin, (write happens), complete.
    let ticket = q.begin(&[Dep::Domain("web")]);
    q.invalidate(&Dep::Domain("web"));
    assert!(!q.complete(web.clone(), ticket, Arc::new(vec![1])));
    assert_eq!(q.get(&web), None);

    // The same through get_or_load, with the write forced into the loader's flight.
    let rt = runtime();
    let (release, gate) = oneshot::channel::<()>();
    let (started_tx, started) = oneshot::channel::<()>();
    let reader = {
        let q = q.clone();
        let web = web.clone();
        rt.spawn(async move {
            q.get_or_load(web, &[Dep::Domain("web")], || async move {
                started_tx.send(()).unwrap();
                gate.await.unwrap();
                Ok::<_, String>(Arc::new(vec![1]))
            })
            .await
        })
    };
    rt.block_on(started).unwrap();
    q.invalidate(&Dep::Domain("web"));
    let fresh = rt.block_on(q.get_or_load(web.clone(), &[Dep::Domain("web")], || async {
        Ok::<_, String>(Arc::new(vec![1, 9]))
    }));
    assert_eq!(fresh, Ok(Arc::new(vec![1, 9])));
    release.send(()).unwrap();
    assert_eq!(rt.block_on(reader).unwrap(), Ok(Arc::new(vec![1])));
    assert_eq!(q.get(&web), Some(Arc::new(vec![1, 9])));
    assert_eq!(q.snapshot().loads_discarded, 1);
}

#[test]
fn a_write_through_fences_off_loads_that_read_the_old_value() {
    let (c, _) = cache(CacheConfig::new(100));
    // A reader starts, reads the old value from the source; then a write happens and is
    // written through; the reader's answer must not replace the written value.
    let read = c.begin_load(&1);
    let write = c.begin_load(&1);
    assert!(c.complete_write(1, write, value(2)));
    assert!(!c.complete_load(1, read, Some(value(1))));
    assert_eq!(c.get(&1), Some(value(2)));
}

#[test]
fn of_two_overlapping_write_throughs_neither_is_cached() {
    // Which of two overlapping writes committed last is unknown to the cache: the first
    // to finish caches its value and fences the other, which then removes the key.
    let (c, _) = cache(CacheConfig::new(100));
    let a = c.begin_load(&1);
    let b = c.begin_load(&1);
    assert!(c.complete_write(1, b, value(2)));
    assert!(!c.complete_write(1, a, value(1)));
    assert_eq!(c.get(&1), None);
}

#[test]
fn a_write_through_too_heavy_to_cache_removes_the_old_value() {
    let (c, _) = cache(CacheConfig::new(100).max_weight(1_000).shards(1));
    c.insert(1, value(10));
    let t = c.begin_load(&1);
    assert!(!c.complete_write(1, t, value(5_000)));
    assert_eq!(c.get(&1), None);
}
