//! Model-based property test: any operation sequence, checked against a plain model of
//! what may be served. A get never returns a value other than the last one stored for its
//! key, never one invalidated, never one expired (by idle time, maximum age or negative
//! TTL); the entry and weight bounds hold after every operation; hits + misses = gets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use memory_cache_adaptive::{AdaptiveCache, CacheConfig, CacheStats, Clock, Lookup, ManualClock};
use proptest::prelude::*;

#[derive(Debug, PartialEq)]
struct Val {
    id: u64,
    bytes: u64,
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, u16),
    NotFound(u8),
    Get(u8),
    Invalidate(u8),
    InvalidateAll,
    Advance(u8),
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..24, 0u16..400).prop_map(|(k, b)| Op::Insert(k, b)),
        1 => (0u8..24).prop_map(Op::NotFound),
        8 => (0u8..24).prop_map(Op::Get),
        1 => (0u8..24).prop_map(Op::Invalidate),
        1 => Just(Op::InvalidateAll),
        2 => (0u8..30).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
    ]
}

const MAX_ENTRIES: usize = 8;
const MAX_WEIGHT: u64 = 1_500;
const SECOND: u64 = 1_000_000_000;
const IDLE_MIN: u64 = 10 * SECOND;
const IDLE_MAX: u64 = 80 * SECOND;
const MAX_AGE: u64 = 100 * SECOND;
const NEGATIVE_TTL: u64 = 5 * SECOND;

struct Model {
    /// Last stored value id (`None` for "not found"), when stored, last access, hits since.
    entries: HashMap<u8, (Option<u64>, u64, u64, u32)>,
}

impl Model {
    fn servable(&self, key: u8, now: u64) -> Option<Option<u64>> {
        let &(value, stored, last, hits) = self.entries.get(&key)?;
        let age = now - stored;
        if age >= MAX_AGE || (value.is_none() && age >= NEGATIVE_TTL) {
            return None;
        }
        let allowed = IDLE_MIN.saturating_mul(1 << hits.min(40)).min(IDLE_MAX);
        (now - last < allowed).then_some(value)
    }
}

fn run(ops: &[Op], shards: usize) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let cache: AdaptiveCache<u8, Arc<Val>> = AdaptiveCache::builder(
        CacheConfig::new(MAX_ENTRIES)
            .max_weight(MAX_WEIGHT)
            .idle_between(
                Duration::from_nanos(IDLE_MIN),
                Duration::from_nanos(IDLE_MAX),
            )
            .max_age(Duration::from_nanos(MAX_AGE))
            .negative_ttl(Duration::from_nanos(NEGATIVE_TTL))
            .shards(shards),
    )
    .weigher(|_, v: &Arc<Val>| v.bytes)
    .clock(Arc::new(clock.clone()) as Arc<dyn Clock>)
    .build()
    .unwrap();
    let mut model = Model {
        entries: HashMap::new(),
    };
    let (mut gets, mut next_id) = (0u64, 0u64);
    for op in ops {
        let now = clock.now_nanos();
        match *op {
            Op::Insert(k, bytes) => {
                next_id += 1;
                let stored = cache.insert(
                    k,
                    Arc::new(Val {
                        id: next_id,
                        bytes: u64::from(bytes),
                    }),
                );
                if stored {
                    model.entries.insert(k, (Some(next_id), now, now, 0));
                } else {
                    model.entries.remove(&k);
                }
            }
            Op::NotFound(k) => {
                prop_assert!(cache.insert_not_found(k));
                model.entries.insert(k, (None, now, now, 0));
            }
            Op::Get(k) => {
                gets += 1;
                let servable = model.servable(k, now);
                match cache.lookup(&k) {
                    Lookup::Hit(v) => {
                        prop_assert_eq!(servable, Some(Some(v.id)), "key {} served {:?}", k, v);
                    }
                    Lookup::NotFound => {
                        prop_assert_eq!(servable, Some(None), "key {} served not-found", k);
                    }
                    Lookup::Miss => {
                        model.entries.remove(&k);
                        continue;
                    }
                }
                if let Some(e) = model.entries.get_mut(&k) {
                    e.2 = now;
                    e.3 += 1;
                }
            }
            Op::Invalidate(k) => {
                cache.invalidate(&k);
                model.entries.remove(&k);
            }
            Op::InvalidateAll => {
                cache.invalidate_all();
                model.entries.clear();
            }
            Op::Advance(secs) => clock.advance(Duration::from_secs(u64::from(secs))),
            Op::Sweep => {
                cache.sweep_expired();
            }
        }
        prop_assert!(cache.len() <= MAX_ENTRIES, "{} entries", cache.len());
        prop_assert!(cache.weight() <= MAX_WEIGHT, "{} bytes", cache.weight());
        let s = cache.snapshot();
        prop_assert_eq!(s.hits + s.misses, gets);
        prop_assert_eq!(s.entries, cache.len() as u64);
        prop_assert_eq!(s.weight, cache.weight());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn never_serves_stale_and_stays_bounded(
        ops in proptest::collection::vec(op(), 1..200),
        shards in prop_oneof![Just(1usize), Just(2), Just(4)],
    ) {
        run(&ops, shards)?;
    }
}
